"""Each notebook-10 checker passes on a correct answer and fails, naming the mistake, on a stub and on
typical mistakes (each written here as a learner would write it, not taken from the checker)."""

import math

import pytest
import torch

from lib.exercises import ExerciseFailed, unwritten_exercise
from lib.exercises.catalog import EXERCISES
from lib.exercises.graphs import (
    check_bfs_frontiers, check_group_means, check_reachable_candidate, reference_bfs_frontiers,
    reference_group_means, reference_reachable_candidate,
)
from lib.experiments.frontier_probe import GROUPS

pytestmark = pytest.mark.usefixtures("strict_checkers")
stub = unwritten_exercise


def test_the_exercises_are_in_the_catalog():
    for name in ("bfs_frontiers", "reachable_candidate", "group_means"):
        assert EXERCISES[name].notebook == "10"


def _children(edges):
    out = {}
    for u, v in edges:
        out.setdefault(u, []).append(v)
    return out


def bfs_written(edges, start, n_steps):  # a learner's correct answer, written independently
    kids, seen, frontier, out = _children(edges), {start}, {start}, [{start}]
    for _ in range(n_steps):
        frontier = {v for u in frontier for v in kids.get(u, ()) if v not in seen}
        seen.update(frontier)
        out.append(frontier)
    return out


def bfs_no_seen(edges, start, n_steps):
    kids, out = _children(edges), [{start}]
    for _ in range(n_steps):
        out.append({v for u in out[-1] for v in kids.get(u, ())})
    return out


def bfs_cumulative(edges, start, n_steps):
    out = bfs_written(edges, start, n_steps)
    for k in range(1, len(out)):
        out[k] = out[k] | out[k - 1]
    return out


def bfs_undirected(edges, start, n_steps):
    return bfs_written(edges + [(v, u) for u, v in edges], start, n_steps)


def test_bfs_frontiers_checker():
    check_bfs_frontiers(bfs_written)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_bfs_frontiers(stub)
    for wrong, says in ((bfs_no_seen, "already reached"), (bfs_cumulative, "within k steps"),
                        (bfs_undirected, "both ways"), (lambda e, s, n: bfs_written(e, s, n)[1:], "frontier 0 is"),
                        (lambda e, s, n: [list(f) for f in bfs_written(e, s, n)], "list of sets")):
        with pytest.raises(ExerciseFailed, match=says):
            check_bfs_frontiers(wrong)


def test_bfs_reference_matches_the_task_levels():
    from lib.tasks.graph_reach import GraphSpec, sample_graph_batch

    spec = GraphSpec()
    b = sample_graph_batch(spec, 8, torch.Generator().manual_seed(0), "test", "none", (1, 2, 3))
    for r in range(8):
        edges = [tuple(int(x) for x in e) for e in b.edges[r]]
        fronts = reference_bfs_frontiers(edges, int(b.start[r]), spec.levels)
        assert fronts[1:] == [set(int(x) for x in level) for level in b.levels_start[r]]


def reach_written(edges, start, candidates):
    reached = set().union(*bfs_written(edges, start, len(edges)))
    return candidates[0] if candidates[0] in reached else candidates[1]


def test_reachable_candidate_checker():
    check_reachable_candidate(reach_written)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_reachable_candidate(stub)

    def one_step(edges, start, candidates):
        kids = _children(edges).get(start, [])
        return candidates[0] if candidates[0] in kids else candidates[1]

    def backwards(edges, start, candidates):
        return reach_written([(v, u) for u, v in edges], start, candidates)

    def position(edges, start, candidates):
        return candidates.index(reach_written(edges, start, candidates))

    def more_incoming(edges, start, candidates):
        n = [sum(v == c for _, v in edges) for c in candidates]
        return candidates[1] if n[1] > n[0] else candidates[0]

    for wrong, says in ((one_step, "one step only"), (backwards, "backwards"), (position, "position"),
                        (more_incoming, "shortcut")):
        with pytest.raises(ExerciseFailed, match=says):
            check_reachable_candidate(wrong)
    assert reference_reachable_candidate([(0, 1), (1, 2)], 0, (5, 2)) == 2


def means_written(scores, groups):
    out = {}
    for g, name in enumerate(GROUPS):
        per_row = [scores[r][groups[r] == g].mean().item() for r in range(len(scores)) if (groups[r] == g).any()]
        out[name] = sum(per_row) / len(per_row) if per_row else float("nan")
    return out


def test_group_means_checker():
    check_group_means(means_written)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_group_means(stub)

    def pooled(scores, groups):
        return {n: scores[groups == g].mean().item() for g, n in enumerate(GROUPS)}

    def zero_rows(scores, groups):
        out = {}
        for g, name in enumerate(GROUPS):
            m = (groups == g).float()
            out[name] = ((scores * m).sum(1) / m.sum(1).clamp(min=1)).mean().item()
        return out

    def nan_as_zero(scores, groups):
        return {k: (0.0 if math.isnan(v) else v) for k, v in means_written(scores, groups).items()}

    for wrong, says in ((pooled, "pooled"), (zero_rows, "counted as 0"), (nan_as_zero, "NaN"),
                        (lambda s, g: list(means_written(s, g).values()), "keys are the four group names")):
        with pytest.raises(ExerciseFailed, match=says):
            check_group_means(wrong)
    out = reference_group_means(torch.zeros(1, 3), torch.tensor([[0, 1, -1]]))
    assert out["frontier"] == 0.0 and math.isnan(out["unreachable"])
