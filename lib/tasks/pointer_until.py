"""Pointer chasing until the first marked node: how many lookups a question needs is written in its
table, not in its prompt.

In :mod:`lib.tasks.pointer_task` the hop count is a prompt token ``HOP_h``, so a model that writes
``h - 1`` dense tokens may only be reading that token, not tracking its own progress. Here the
question is "start at ``x`` and follow the table until you land on a *marked* node; name it". The
number of lookups ``h`` is how far along the chain the first marked node sits, which only following
the chain reveals. Two designs of the marks (``UntilSpec.marks``):

- ``"loops"`` (the default): each table marks labels of its own, drawn at random, and a marked node
  points to itself, so the question is "follow the table until it stops moving". Nothing in the
  prompt names the marked nodes; a model finds one by looking it up and seeing the same node come
  back, or by noticing the labels the table holds twice. In one pass a one-layer model can only
  look forward from ``x``: its query knows ``x`` alone, so it cannot yet ask for the entries that
  point to a marked node. A later pass could, so from 3 lookups on a question may need fewer passes
  than lookups; measured in :mod:`lib.experiments.adaptive_until`, one pass answers 1 lookup and
  is near a guess at 2 (0.59; a guess gives 0.5), and 1 dense token answers 2. A model that follows the table too far loses nothing
  (a marked node maps to itself); one that stops too early answers an unmarked node.
- ``"fixed"`` (the control): the labels ``0 .. n_marked - 1`` are marked in every table and each
  points to the head of a lane (a random matching). Measured in :mod:`lib.experiments.adaptive_until`,
  one pass then answers 2 lookups: it looks forward from ``x`` (``f(x)``) and back from the marked
  labels (the positions that hold them) and meets in the middle, so the passes needed grow about
  half as fast as ``h``. (A third design, tried and dropped: each table marks two labels of its
  own and the prompt names them; in 2,000 steps at 1e-3 no budget of 0-2 dense tokens answered
  even one lookup above 0.81, as the model must compare every node it reaches with the named ones.)

The prompt is pointer chasing's with filler ``"none"``, the hop slot holding the pause token,
which carries nothing::

    f(0) f(1) ... f(n-1)  QUERY  <|pause|>  x  answer

Every table has the same make-up, whatever ``h``: one *lane* per marked node, unmarked nodes in a
row that point on to the next and, from the last, to the lane's marked node (which points to
itself, or with fixed marks to the head of a lane). ``x`` sits ``h`` nodes before the end of its
lane, after a *lead* of 1..``max_hops`` nodes drawn uniformly and apart from ``h`` (so ``x`` is
never a lane's head, and how far back the head lies says nothing about ``h``); the other lanes
share the rest of the unmarked nodes, each at least one. Nothing about ``x``'s neighbourhood within
the lead's reach changes with ``h``: only following the chain from ``x`` tells which marked node
ends it and how far away it is. (With lanes of one length, tried first, the node before ``x`` was a
head exactly when ``h`` was the deepest count: a rule that reads in-degrees found ``h`` without
following the chain.) Node labels are a random
permutation of the lanes' slots. Tables go to train, val and test by a keyed hash of the table
alone (as in :mod:`lib.tasks.pointer_splits`, under a domain of their own): no test table is ever a
training table, whichever labels it marks. Training asks 1..``train_hops`` lookups; the test split
also asks the deeper ``train_hops + 1 .. train_hops + ood_extra_hops``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from lib.core import checks
from lib.tasks.pointer_splits import HopRange
from lib.tasks.pointer_task import PointerBatch, _assemble
from lib.tasks.splits import check_split, draw_in_split

UNTIL_DOMAIN = "pointer-until-table"  # the hash key of these tables (not pointer chasing's: other tables)
MARKS = ("loops", "fixed")


@dataclass(frozen=True)
class UntilSpec(HopRange):
    """``n_marked`` lanes of unmarked nodes, ``n_marked * lane`` of them in all, each lane ending in a
    marked node (so ``n_nodes = n_marked * (lane + 1)``); training on 1..``train_hops`` lookups,
    out-of-distribution questions at ``train_hops + 1 .. train_hops + ood_extra_hops``. ``marks``:
    ``"loops"`` (each table marks labels of its own, each pointing to itself) or ``"fixed"`` (the
    labels ``0 .. n_marked - 1`` in every table, each pointing to a lane's head)."""

    n_marked: int = 2
    train_hops: int = 2
    ood_extra_hops: int = 1
    marks: str = "loops"

    def __post_init__(self) -> None:
        checks.check_int(self.n_marked, "UntilSpec.n_marked", min=2)  # one marked node would be the answer to everything
        checks.check_choice(self.marks, "UntilSpec.marks", MARKS)
        checks.check_int(self.train_hops, "UntilSpec.train_hops", min=1)
        checks.check_int(self.ood_extra_hops, "UntilSpec.ood_extra_hops", min=0)

    @property
    def lane(self) -> int:
        """Unmarked nodes per lane on average: one more than the deepest question. ``x``'s lane holds
        its lead (1..``max_hops``) and ``h`` nodes, at most ``2 * max_hops``, which leaves every other
        lane at least one node."""
        return self.train_hops + self.ood_extra_hops + 1

    @property
    def n_nodes(self) -> int:
        return self.n_marked * (self.lane + 1)


def build_until_table(task: UntilSpec, hops: int, generator: torch.Generator
                      ) -> tuple[Int[Tensor, " n_nodes"], int, Int[Tensor, " n_marked"]]:
    """One table, start ``x`` and marked labels (in increasing order), the chain from ``x`` meeting
    its first marked node after exactly ``hops`` lookups: the marked labels (drawn, or
    ``0 .. n_marked - 1`` when ``task.marks == "fixed"``); ``x``'s lane of a lead of
    1..``max_hops`` nodes (uniform, drawn apart from ``hops``), ``x`` and ``hops - 1`` more; the other
    lanes sharing the remaining unmarked nodes at random, each at least one; every lane ending in a
    random marked node, which points to itself (fixed marks: to the head of a random lane)."""
    checks.check_type(task, "task", UntilSpec)
    checks.check_int(hops, "hops", min=1, max=task.spec.max_hops)
    checks.check_type(generator, "generator", torch.Generator)
    m, deepest = task.n_marked, task.spec.max_hops
    labels = torch.randperm(task.n_nodes, generator=generator) if task.marks == "loops" else torch.arange(task.n_nodes)
    marked = labels[:m]
    unmarked = labels[m:][torch.randperm(task.n_nodes - m, generator=generator)].tolist()
    lead = 1 + int(torch.randint(0, deepest, (1,), generator=generator))
    rest = len(unmarked) - lead - hops  # >= m - 1 (see UntilSpec.lane)
    cuts = sorted((1 + torch.randperm(rest - 1, generator=generator)[: m - 2]).tolist())  # m - 1 lanes of >= 1
    sizes = [lead + hops] + [b - a for a, b in zip([0] + cuts, cuts + [rest])]
    starts = [sum(sizes[:i]) for i in range(m)]
    lanes = [unmarked[a : a + n] for a, n in zip(starts, sizes)]
    ends = marked[torch.randperm(m, generator=generator)].tolist()  # lane i ends in marked node ends[i]
    table = [-1] * task.n_nodes
    for lane, end in zip(lanes, ends):
        for a, b in zip(lane, lane[1:] + [end]):
            table[a] = b
    if task.marks == "loops":
        for end in ends:
            table[end] = end
    else:
        heads = torch.randperm(m, generator=generator).tolist()  # marked node ends[i] points to lane heads[i]'s head
        for end, head in zip(ends, heads):
            table[end] = lanes[head][0]
    return torch.tensor(table), lanes[0][lead], marked.sort().values


def first_marked_hops(tables: Int[Tensor, "batch n_nodes"], starts: Int[Tensor, " batch"],
                      marked: Int[Tensor, "batch n_marked"], limit: int) -> Int[Tensor, " batch"]:
    """Lookups from each start until the first node among that row's ``marked`` labels (``limit + 1``
    where none is met within ``limit``): the hop count a table implies, read by following it."""
    checks.check_tensor(tables, "tables", ndim=2, dtype="int")
    checks.check_tensor(starts, "starts", ndim=1, dtype="int")
    checks.check_tensor(marked, "marked", ndim=2, dtype="int")
    checks.check_int(limit, "limit", min=1)
    if not tables.shape[0] == starts.shape[0] == marked.shape[0]:
        raise ValueError(f"tables, starts and marked must have one row per question, got {tables.shape[0]}, "
                         f"{starts.shape[0]} and {marked.shape[0]}")
    if marked.shape[1] == 0:
        raise ValueError("marked must name at least one label per row")
    n = tables.shape[1]
    for name, t in (("tables", tables), ("starts", starts), ("marked", marked)):
        if t.numel() and not (0 <= int(t.min()) and int(t.max()) < n):
            raise ValueError(f"{name} must hold node labels in 0..{n - 1}, got {int(t.min())}..{int(t.max())}")
    current, out = starts.clone(), torch.full_like(starts, limit + 1)
    for k in range(1, limit + 1):
        current = tables.gather(1, current[:, None])[:, 0]
        is_marked = (marked == current[:, None]).any(dim=1)
        out = torch.where((out > limit) & is_marked, torch.full_like(out, k), out)
    return out


def marked_labels(task: UntilSpec, tables: Int[Tensor, "batch n_nodes"]) -> Int[Tensor, "batch n_marked"]:
    """The labels each table marks, in increasing order: those that point to themselves
    (``marks="loops"``), or ``0 .. n_marked - 1`` on every row (``"fixed"``)."""
    checks.check_type(task, "task", UntilSpec)
    checks.check_tensor(tables, "tables", ndim=2, dtype="int")
    if tables.shape[1] != task.n_nodes:
        raise ValueError(f"tables must have task.n_nodes = {task.n_nodes} columns, got {tables.shape[1]}")
    if task.marks == "fixed":
        return torch.arange(task.n_marked).expand(tables.shape[0], -1).clone()
    loops = tables == torch.arange(task.n_nodes)
    if not (loops.sum(dim=1) == task.n_marked).all():
        raise ValueError(f"every table must have exactly n_marked = {task.n_marked} nodes that point to themselves")
    return loops.nonzero()[:, 1].view(-1, task.n_marked)


def sample_until(task: UntilSpec, batch_size: int, generator: torch.Generator, split: str,
                 hops: int | tuple[int, ...] | None = None) -> PointerBatch:
    """``batch_size`` questions on tables of ``split``, laid out with filler ``"none"`` and the hop
    slot holding the pause token. ``hops``: None draws uniformly from ``task.id_hops``, an int asks
    that many lookups, a tuple draws uniformly from it. ``batch.hops`` records each question's
    lookups for scoring only: the prompt never shows them."""
    checks.check_type(task, "task", UntilSpec)
    checks.check_int(batch_size, "batch_size", min=1)
    checks.check_type(generator, "generator", torch.Generator)
    check_split(split)
    choices = task.id_hops if hops is None else ((hops,) if isinstance(hops, int) else tuple(hops))
    if not choices:
        raise ValueError("hops must name at least one hop count")
    for h in choices:
        checks.check_int(h, "hops (each hop count)", min=1, max=task.spec.max_hops)
    n = task.n_nodes

    def draw(k: int) -> Tensor:  # rows: the table, then x, then h
        rows = []
        for h in torch.tensor(choices)[torch.randint(0, len(choices), (k,), generator=generator)].tolist():
            table, x, _ = build_until_table(task, h, generator)
            rows.append(torch.cat([table, torch.tensor([x, h])]))
        return torch.stack(rows)

    items = draw_in_split(draw, lambda rows: rows[:, :n], UNTIL_DOMAIN, split, batch_size)
    spec = task.spec
    batch = _assemble(spec, items[:, :n], items[:, n], items[:, n + 1], torch.zeros(batch_size, dtype=torch.long), "none", 0)
    batch.tokens[:, n + 1] = spec.pause_id  # the hop slot: a token that carries nothing
    return batch


def until_eval_sets(task: UntilSpec, n_per_hop: int, seed: int) -> dict[str, dict[int, PointerBatch]]:
    """Fixed evaluation questions, ``n_per_hop`` per hop count: ``"val"`` and ``"test"`` at the
    trained lookups, ``"test_ood"`` (test tables) at the deeper ones; one generator per (split, hops)."""
    checks.check_type(task, "task", UntilSpec)
    checks.check_int(n_per_hop, "n_per_hop", min=1)
    checks.check_int(seed, "seed", min=0)
    plan = {"val": ("val", task.id_hops), "test": ("test", task.id_hops), "test_ood": ("test", task.ood_hops)}
    return {name: {h: sample_until(task, n_per_hop, torch.Generator().manual_seed(seed + 1000 * i + h), split, h)
                   for h in hop_counts}
            for i, (name, (split, hop_counts)) in enumerate(plan.items())}


__all__ = ["MARKS", "UNTIL_DOMAIN", "UntilSpec", "build_until_table", "first_marked_hops", "marked_labels", "sample_until",
           "until_eval_sets"]
