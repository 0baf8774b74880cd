"""Pointer chasing on tables no training question used, and at depths no training question asked for.

Why: at the notebooks' size (6 nodes: 720 tables) a training run sees almost every question, so
a test score cannot tell a learned lookup from a memorised answer. Here every table (the
permutation, as a row of node ids) belongs to one split by a hash of the table itself
(:mod:`lib.tasks.splits`: 80% train, 10% val, 10% test), and the samplers draw tables of one split
only. A test question (table, start, hop count) therefore never occurs in training, at any
number of training draws and at any size.

Size: :data:`DEFAULT_N_NODES` = 8 (40,320 tables: 32,215 train, 4,169 val, 3,936 test) is what
notebook 05's 1-layer GPT (d_model 64, dense-2) learns on a CPU in 600 steps of 64 (seed 0, lr
3e-3): 100% on val and test tables at 1-3 hops, and 100% at 4-6 hops, dense unrolled exactly. A run
that long draws about 70% of the train tables, so memorising them is not ruled out, but it cannot
help on test tables. For tables no run can enumerate take ``n_nodes=10`` (3.6 million tables): the
same model needs about 2000 steps (73% / 52% / 43% at 1 / 2 / 3 hops after 1000 steps, 100% after
2000); 12 nodes needs more.

Out-of-distribution depth: training asks 1..``train_hops`` hops; the test split also asks
``train_hops + 1 .. train_hops + ood_extra_hops``. The hop count is a prompt token ``HOP_h``, so
the spec (:attr:`PointerSplitSpec.spec`) is a :class:`PointerSpec` whose ``max_hops`` already
counts the out-of-distribution hops: its vocabulary holds ``HOP_h`` for every h and its
``seq_len`` has room for their fillers. A model built from that spec from the start has embedding
rows (and positions) for the deeper questions, untrained until they are asked; one built from
``PointerSpec(max_hops=train_hops)`` could not even read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from lib.core import checks
from lib.tasks.pointer_task import FILLERS, Filler, PointerBatch, PointerSpec, _assemble
from lib.tasks.splits import SPLITS, check_split, draw_in_split, split_codes

TABLE_DOMAIN = "pointer-table"  # the hash key of pointer tables
DEFAULT_N_NODES = 8


class HopRange:
    """What a pointer task with a deeper test gives (for a spec with ``n_nodes``, ``train_hops`` and
    ``ood_extra_hops``): its token layout and the hop counts training and evaluation ask."""

    @property
    def spec(self) -> PointerSpec:
        """The task's token layout, ``max_hops`` counting the out-of-distribution hops: build the
        model (``pointer_model_config(spec)``) from this, so vocabulary and positions fit every question."""
        return PointerSpec(n_nodes=self.n_nodes, max_hops=self.train_hops + self.ood_extra_hops)

    @property
    def id_hops(self) -> tuple[int, ...]:
        """The hop counts training asks (in distribution)."""
        return tuple(range(1, self.train_hops + 1))

    @property
    def ood_hops(self) -> tuple[int, ...]:
        """The hop counts only evaluation asks (deeper than any training question)."""
        return tuple(range(self.train_hops + 1, self.train_hops + self.ood_extra_hops + 1))


@dataclass(frozen=True)
class PointerSplitSpec(HopRange):
    """Pointer chasing with table splits: ``n_nodes`` nodes, training on 1..``train_hops`` hops,
    out-of-distribution questions at ``train_hops + 1 .. train_hops + ood_extra_hops`` hops."""

    n_nodes: int = DEFAULT_N_NODES
    train_hops: int = 3
    ood_extra_hops: int = 3

    def __post_init__(self) -> None:
        checks.check_int(self.n_nodes, "PointerSplitSpec.n_nodes", min=2)
        checks.check_int(self.train_hops, "PointerSplitSpec.train_hops", min=1)
        checks.check_int(self.ood_extra_hops, "PointerSplitSpec.ood_extra_hops", min=0)


def table_splits(tables: Int[Tensor, "batch n_nodes"]) -> Int[Tensor, " batch"]:
    """The split of each table as an index into :data:`lib.tasks.splits.SPLITS` (0 train, 1 val,
    2 test): a function of the table's entries alone."""
    checks.check_tensor(tables, "tables", ndim=2, dtype="int")
    return split_codes(tables, TABLE_DOMAIN)


def pointer_batch_splits(batch: PointerBatch) -> list[str]:
    """The split of each question's table."""
    checks.check_type(batch, "batch", PointerBatch)
    return [SPLITS[c] for c in table_splits(batch.tokens[:, : batch.spec.n_nodes]).tolist()]


def sample_pointer_tables(n_nodes: int, count: int, generator: torch.Generator, split: str) -> Int[Tensor, "count n_nodes"]:
    """``count`` random tables (permutations of ``range(n_nodes)``) of ``split``, by rejection."""
    checks.check_int(n_nodes, "n_nodes", min=2)
    checks.check_int(count, "count", min=1)
    checks.check_type(generator, "generator", torch.Generator)
    check_split(split)

    def draw(k: int) -> Tensor:
        return torch.rand(k, n_nodes, generator=generator).argsort(dim=1)

    return draw_in_split(draw, lambda t: t, TABLE_DOMAIN, split, count)


def _hop_choices(task: PointerSplitSpec, hops) -> tuple[int, ...]:
    if hops is None:
        return task.id_hops
    top = task.spec.max_hops
    if isinstance(hops, (tuple, list)):
        if not hops:
            raise ValueError("hops must name at least one hop count")
        for h in hops:
            checks.check_int(h, "hops (each hop count)", min=1, max=top)
        return tuple(int(h) for h in hops)
    return (checks.check_int(hops, "hops", min=1, max=top),)


def sample_pointer_split(
    task: PointerSplitSpec,
    batch_size: int,
    generator: torch.Generator,
    split: str,
    filler: Filler = "dense",
    hops: int | tuple[int, ...] | None = None,
    decoys: int = 0,
) -> PointerBatch:
    """``batch_size`` questions on tables of ``split`` ("train", "val" or "test"), laid out as
    :func:`lib.tasks.pointer_task.sample_pointer_batch` lays them out (on ``task.spec``).

    ``hops``: ``None`` draws the hop count uniformly from ``task.id_hops`` (the training
    distribution), an int asks that many hops (1 .. ``task.spec.max_hops``), a tuple draws
    uniformly from its hop counts (``task.ood_hops`` for the out-of-distribution questions).
    Deeper-than-trained hops are allowed on every split, so that depth can be told apart from
    unseen tables; a training stream should leave ``hops=None``."""
    checks.check_type(task, "task", PointerSplitSpec)
    checks.check_int(batch_size, "batch_size", min=1)
    checks.check_type(generator, "generator", torch.Generator)
    check_split(split)
    checks.check_choice(filler, "filler", FILLERS)
    choices = _hop_choices(task, hops)
    checks.check_int(decoys, "decoys", min=0)
    if decoys and filler == "none":
        raise ValueError("decoys need a filler token (pause or dense)")
    spec, B = task.spec, batch_size
    perm = sample_pointer_tables(spec.n_nodes, B, generator, split)
    x = torch.randint(0, spec.n_nodes, (B,), generator=generator)
    pick = torch.randint(0, len(choices), (B,), generator=generator)
    h = torch.tensor(choices, dtype=torch.long)[pick]
    r = torch.randint(0, decoys + 1, (B,), generator=generator) if decoys else torch.zeros(B, dtype=torch.long)
    return _assemble(spec, perm, x, h, r, filler, decoys)


def pointer_eval_sets(
    task: PointerSplitSpec, n_per_hop: int, seed: int, filler: Filler = "dense", decoys: int = 0
) -> dict[str, dict[int, PointerBatch]]:
    """Fixed evaluation questions, ``n_per_hop`` per hop count: ``"val"`` (val tables,
    in-distribution hops), ``"test"`` (test tables, in-distribution hops) and ``"test_ood"`` (test
    tables, the deeper hops). Each (split, hop count) has its own generator, seeded from ``seed``,
    so the questions do not depend on which others are drawn."""
    checks.check_type(task, "task", PointerSplitSpec)
    checks.check_int(n_per_hop, "n_per_hop", min=1)
    checks.check_int(seed, "seed", min=0)
    plan = {"val": ("val", task.id_hops), "test": ("test", task.id_hops), "test_ood": ("test", task.ood_hops)}
    out: dict[str, dict[int, PointerBatch]] = {}
    for offset, (name, (split, hop_counts)) in enumerate(plan.items()):
        out[name] = {
            h: sample_pointer_split(task, n_per_hop, torch.Generator().manual_seed(seed + 1000 * offset + h), split,
                                    filler, h, decoys)
            for h in hop_counts
        }
    return out


__all__ = ["DEFAULT_N_NODES", "HopRange", "PointerSplitSpec", "TABLE_DOMAIN", "pointer_batch_splits", "pointer_eval_sets",
           "sample_pointer_split", "sample_pointer_tables", "table_splits"]
