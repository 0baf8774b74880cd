"""Path-star graphs split by graph, at a size that cannot be memorised, and an out-of-distribution split.

Why: at the harness's old size (degree 2, paths of 3 nodes, 5 labels) there are 120 distinct
problems, and a training run sees all of them. Here every graph belongs to one split by a hash of
its canonical form (:func:`graph_rows`: the centre, then the sorted list of edges pointing away
from it), so neither the order the edges are listed in nor the leaf asked for changes its split:
no test graph occurs in training under any listing or query. The samplers draw graphs of one
split only, by rejection (:mod:`lib.tasks.splits`: 80% train, 10% val, 10% test).

The default size (:class:`PathStarSplitSpec`): degree 2, paths of 4 nodes (3 edges per arm), 10
labels: 10!/3!/2 = 302,400 graphs (242,020 train, 30,155 val, 30,225 test), each with 6! edge
orders and 2 queries, so 435 million prompts. It is the size at which a small GPT (2 layers,
d_model 64, 4 heads) was seen to learn the reversed order on a CPU: 100% on val and test graphs
after 4000 steps of 64 at lr 3e-3, for 2 of 3 seeds (the third stayed near 7%; these runs were
made while choosing the size and are not stored). At degree 3 with 14
or 20 labels, or degree 2 with 12 or 20, no run learned it within 2000-6000 steps, so a bigger size
would leave the reversed reference unreached and the forward arms unreadable.

Out of distribution: **longer arms** (``path_len + ood_extra_len``), same degree. The degree stays,
so the forward-order plateau (1/degree, :func:`lib.tasks.references.path_star_forward_references`)
is the same line in and out of distribution, and the reversed order needs more lookups in a row
than training ever asked: the OOD split tests depth, as the pointer task's deeper hops do. A
higher degree would instead move the plateau and mix "more arms" with "unseen graphs". The longer
prompt and path need more positions: build the model with ``n_ctx = task.n_ctx`` (the OOD
sequence length) from the start; those extra positions are never trained, and a model with
learned absolute positions is not expected to carry the lookup over to them (the runs above that
learned the reversed order scored 0% out of distribution).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from lib.core import checks
from lib.tasks.path_star import PathStarBatch, PathStarSpec, _assemble, star_edges
from lib.tasks.splits import SPLITS, check_split, draw_in_split, split_codes

GRAPH_DOMAIN = "path-star-graph"  # the hash key of path-star graphs
EDGE_BASE = 1 << 20  # an edge (u, v) is coded u * EDGE_BASE + v: independent of the spec's label count


@dataclass(frozen=True)
class PathStarSplitSpec:
    """Path-star with graph splits: training graphs of ``degree`` arms and ``path_len`` nodes per
    path, labels from ``range(n_nodes)``; out-of-distribution graphs with ``ood_extra_len`` more
    nodes on every arm."""

    degree: int = 2
    path_len: int = 4
    n_nodes: int = 10
    ood_extra_len: int = 1

    def __post_init__(self) -> None:
        checks.check_int(self.degree, "PathStarSplitSpec.degree", min=2)
        checks.check_int(self.path_len, "PathStarSplitSpec.path_len", min=3)  # path_len 2: the leaf is the arm, no choice
        checks.check_int(self.n_nodes, "PathStarSplitSpec.n_nodes", min=2)
        checks.check_int(self.ood_extra_len, "PathStarSplitSpec.ood_extra_len", min=1)
        self.ood_spec  # noqa: B018 (raises if the labels do not cover the larger graphs)

    @property
    def spec(self) -> PathStarSpec:
        """The training (and in-distribution evaluation) size."""
        return PathStarSpec(self.degree, self.path_len, self.n_nodes)

    @property
    def ood_spec(self) -> PathStarSpec:
        """The out-of-distribution size: every arm ``ood_extra_len`` nodes longer."""
        return PathStarSpec(self.degree, self.path_len + self.ood_extra_len, self.n_nodes)

    @property
    def n_ctx(self) -> int:
        """Positions a model needs for every split: the OOD sequence length."""
        return self.ood_spec.seq_len

    @property
    def vocab_size(self) -> int:
        """Token ids of every split (the OOD size uses the same labels and markers)."""
        return self.spec.vocab_size


def _canonical(spec: PathStarSpec, edges: Int[Tensor, "batch n_edges 2"], centre: Int[Tensor, " batch"]) -> Tensor:
    codes = (edges[..., 0] * EDGE_BASE + edges[..., 1]).sort(dim=1).values
    return torch.cat([centre[:, None], codes], dim=1)


def graph_rows(batch: PathStarBatch) -> Int[Tensor, "batch 1+n_edges"]:
    """The canonical form of each prompt's graph, read back from the prompt: the centre, then the
    edges (as listed, pointing away from the centre) coded ``u * EDGE_BASE + v`` and sorted."""
    checks.check_type(batch, "batch", PathStarBatch)
    spec = batch.spec
    edges = batch.tokens[:, : 2 * spec.n_edges].reshape(-1, spec.n_edges, 2)
    centre = batch.tokens[:, 2 * spec.n_edges + 1]
    return _canonical(spec, edges, centre)


def graph_splits(batch: PathStarBatch) -> list[str]:
    """The split of each prompt's graph ("train", "val" or "test")."""
    return [SPLITS[c] for c in split_codes(graph_rows(batch), GRAPH_DOMAIN).tolist()]


def sample_star_labels(spec: PathStarSpec, count: int, generator: torch.Generator, split: str) -> Int[Tensor, "count n_graph_nodes"]:
    """Labels of ``count`` random graphs of ``split`` (centre first, then each arm in turn), by rejection."""
    checks.check_type(spec, "spec", PathStarSpec)
    checks.check_int(count, "count", min=1)
    checks.check_type(generator, "generator", torch.Generator)
    check_split(split)

    def draw(k: int) -> Tensor:
        return torch.rand(k, spec.n_nodes, generator=generator).argsort(dim=1)[:, : spec.n_graph_nodes]

    def canonical(labels: Tensor) -> Tensor:
        return _canonical(spec, star_edges(spec, labels), labels[:, 0])

    return draw_in_split(draw, canonical, GRAPH_DOMAIN, split, count)


def sample_path_star_split(
    spec: PathStarSpec, batch_size: int, generator: torch.Generator, split: str, reverse: bool = False
) -> PathStarBatch:
    """``batch_size`` random problems on graphs of ``split`` ("train", "val" or "test"), laid out
    as :func:`lib.tasks.path_star.sample_path_star` lays them out. Pass ``task.spec`` for
    training and in-distribution evaluation, ``task.ood_spec`` (with ``split="test"``) for the
    out-of-distribution questions."""
    checks.check_type(spec, "spec", PathStarSpec)
    checks.check_int(batch_size, "batch_size", min=1)
    checks.check_type(generator, "generator", torch.Generator)
    check_split(split)
    checks.check_bool(reverse, "reverse")
    labels = sample_star_labels(spec, batch_size, generator, split)
    order = torch.rand(batch_size, spec.n_edges, generator=generator).argsort(dim=1)
    target_arm = torch.randint(0, spec.degree, (batch_size,), generator=generator)
    return _assemble(spec, labels, order, target_arm, reverse)


def path_star_eval_sets(task: PathStarSplitSpec, n_questions: int, seed: int, reverse: bool = False) -> dict[str, PathStarBatch]:
    """Fixed evaluation problems: ``"val"`` (val graphs), ``"test"`` (test graphs) and
    ``"test_ood"`` (test graphs with longer arms), ``n_questions`` each, each from its own
    generator seeded from ``seed``."""
    checks.check_type(task, "task", PathStarSplitSpec)
    checks.check_int(n_questions, "n_questions", min=1)
    checks.check_int(seed, "seed", min=0)
    checks.check_bool(reverse, "reverse")
    plan = {"val": (task.spec, "val"), "test": (task.spec, "test"), "test_ood": (task.ood_spec, "test")}
    return {name: sample_path_star_split(spec, n_questions, torch.Generator().manual_seed(seed + offset), split, reverse)
            for offset, (name, (spec, split)) in enumerate(plan.items())}


__all__ = ["EDGE_BASE", "GRAPH_DOMAIN", "PathStarSplitSpec", "graph_rows", "graph_splits", "path_star_eval_sets",
           "sample_path_star_split", "sample_star_labels"]
