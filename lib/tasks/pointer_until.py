"""Pointer chasing until the first marked node: how many lookups a question needs is written in its
table, not in its prompt.

In :mod:`lib.tasks.pointer_task` the hop count is a prompt token ``HOP_h``, so a model that writes
``h - 1`` dense tokens may only be reading that token, not tracking its own progress. Here the
question is "start at ``x`` and follow the table until you land on a *marked* node; name it",
where the marked nodes are the labels ``0 .. n_marked - 1`` (a property of the label, the same in
every table). The number of lookups ``h`` is how far along the chain the first marked node sits,
which only following the chain reveals. The layout is pointer chasing's with filler ``"none"``,
the hop slot holding the pause token, which carries nothing::

    f(0) f(1) ... f(n-1)  QUERY  <|pause|>  x  answer

Every table has the same shape, whatever ``h``: one *lane* per marked node, ``lane`` unmarked
nodes in a row that point on to the next and, from the last, to the lane's marked node; each
marked node points to the head of a lane (a random matching). ``x`` sits ``h`` nodes before the
end of its lane, never at its head (``lane`` is one more than the deepest question), so nothing
about ``x``'s neighbourhood, the other lanes or the table's make-up changes with ``h``: looking
backwards from the marked nodes finds runs of the same length for all of them, and only the chain
from ``x`` tells which marked node ends it and how far away it is. Node labels are a random
permutation of the lanes' slots. What the table does not hide: the marked labels are the same in
every table, so a model can look forward from ``x`` and back from the marked nodes at once and
meet in the middle (one pass of a 1-layer model answers 2 lookups so, measured in
:mod:`lib.experiments.adaptive_until`): the passes a question needs grow with ``h``, about half as
fast. Tables go to train, val and test by a keyed hash of the table
(as in :mod:`lib.tasks.pointer_splits`, under a domain of their own): no test table is ever a
training table. Training asks 1..``train_hops`` lookups; the test split also asks the deeper
``train_hops + 1 .. train_hops + ood_extra_hops``.
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


@dataclass(frozen=True)
class UntilSpec(HopRange):
    """``n_marked`` lanes of ``train_hops + ood_extra_hops + 1`` unmarked nodes, each ending in a
    marked node (so ``n_nodes = n_marked * (lane + 1)``); training on 1..``train_hops`` lookups,
    out-of-distribution questions at ``train_hops + 1 .. train_hops + ood_extra_hops``."""

    n_marked: int = 2
    train_hops: int = 2
    ood_extra_hops: int = 1

    def __post_init__(self) -> None:
        checks.check_int(self.n_marked, "UntilSpec.n_marked", min=2)  # one marked node would be the answer to everything
        checks.check_int(self.train_hops, "UntilSpec.train_hops", min=1)
        checks.check_int(self.ood_extra_hops, "UntilSpec.ood_extra_hops", min=0)

    @property
    def lane(self) -> int:
        """Unmarked nodes per lane: one more than the deepest question, so ``x`` is never a lane's head."""
        return self.train_hops + self.ood_extra_hops + 1

    @property
    def n_nodes(self) -> int:
        return self.n_marked * (self.lane + 1)


def build_until_table(task: UntilSpec, hops: int, generator: torch.Generator) -> tuple[Int[Tensor, " n_nodes"], int]:
    """One table and start ``x`` whose chain meets its first marked node after exactly ``hops``
    lookups: the lanes filled with the unmarked labels in a random order, each marked node at the
    end of a random lane and pointing to the head of a random lane, ``x`` in a random lane ``hops``
    nodes before its end."""
    checks.check_type(task, "task", UntilSpec)
    checks.check_int(hops, "hops", min=1, max=task.spec.max_hops)
    m, length = task.n_marked, task.lane
    unmarked = (m + torch.randperm(task.n_nodes - m, generator=generator)).tolist()
    ends = torch.randperm(m, generator=generator).tolist()  # lane i ends in marked node ends[i]
    heads = torch.randperm(m, generator=generator).tolist()  # marked node ends[i] points to lane heads[i]'s head
    table = [-1] * task.n_nodes
    lanes = [unmarked[i * length : (i + 1) * length] for i in range(m)]
    for lane, end in zip(lanes, ends):
        for a, b in zip(lane, lane[1:] + [end]):
            table[a] = b
    for end, head in zip(ends, heads):
        table[end] = lanes[head][0]
    lane = int(torch.randint(0, m, (1,), generator=generator))
    return torch.tensor(table), lanes[lane][length - hops]


def first_marked_hops(tables: Int[Tensor, "batch n_nodes"], starts: Int[Tensor, " batch"], n_marked: int,
                      limit: int) -> Int[Tensor, " batch"]:
    """Lookups from each start until the first marked node (``limit + 1`` where none is met within
    ``limit``): the hop count a table implies, read by following it."""
    checks.check_tensor(tables, "tables", ndim=2, dtype="int")
    checks.check_tensor(starts, "starts", ndim=1, dtype="int")
    checks.check_int(n_marked, "n_marked", min=1)
    checks.check_int(limit, "limit", min=1)
    current, out = starts.clone(), torch.full_like(starts, limit + 1)
    for k in range(1, limit + 1):
        current = tables.gather(1, current[:, None])[:, 0]
        out = torch.where((out > limit) & (current < n_marked), torch.full_like(out, k), out)
    return out


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
            table, x = build_until_table(task, h, generator)
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


__all__ = ["UNTIL_DOMAIN", "UntilSpec", "build_until_table", "first_marked_hops", "sample_until", "until_eval_sets"]
