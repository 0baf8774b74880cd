"""Checkers for notebook 10 (what a continuous thought holds on graph reachability)."""

from __future__ import annotations

import math
from typing import Callable

import torch

from lib.exercises import call_learner, checker, expect, explain, report
from lib.experiments.frontier_probe import GROUPS, group_means
from lib.tasks.graph_reach import GraphSpec, sample_graph_batch


def reference_bfs_frontiers(edges: list[tuple[int, int]], start: int, n_steps: int) -> list[set[int]]:
    """The solution: breadth-first search, one level per step, each node in the first level that reaches it."""
    children: dict[int, list[int]] = {}
    for u, v in edges:
        children.setdefault(u, []).append(v)
    frontiers, seen = [{start}], {start}
    for _ in range(n_steps):
        new = {v for u in frontiers[-1] for v in children.get(u, []) if v not in seen}
        seen |= new
        frontiers.append(new)
    return frontiers


def reference_reachable_candidate(edges: list[tuple[int, int]], start: int, candidates: tuple[int, int]) -> int:
    """The solution: the candidate some frontier of the start holds (the graph has at most len(edges) levels)."""
    reached = set().union(*reference_bfs_frontiers(edges, start, len(edges)))
    return candidates[0] if candidates[0] in reached else candidates[1]


def reference_group_means(scores: torch.Tensor, groups: torch.Tensor) -> dict[str, float]:
    return group_means(scores, groups)


# --------------------------------------------------------------------------- hand-made graphs
_DIAMOND = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (5, 0)]  # two paths meet at 3; 5 points INTO the start
_CYCLE = [(0, 1), (1, 2), (2, 0), (2, 3), (3, 4)]  # the edge 2 -> 0 leads back to the start


def _task_rows(n: int = 3):
    """``n`` questions of the course's task (depths 1-3, unseen test graphs) as plain edge lists."""
    spec = GraphSpec()
    batch = sample_graph_batch(spec, n, torch.Generator().manual_seed(3), "test", "none", (1, 2, 3))
    rows = []
    for b in range(n):
        edges = [tuple(int(x) for x in e) for e in batch.edges[b]]
        levels = [set(int(x) for x in level) for level in batch.levels_start[b]]
        rows.append((edges, int(batch.start[b]), (int(batch.candidates[b, 0]), int(batch.candidates[b, 1])),
                     int(batch.answers[b]), levels))
    return rows


def _frontier_mistakes(edges, start, n_steps) -> dict[str, list[set[int]]]:
    children: dict[int, list[int]] = {}
    undirected: dict[int, list[int]] = {}
    for u, v in edges:
        children.setdefault(u, []).append(v)
        undirected.setdefault(u, []).append(v)
        undirected.setdefault(v, []).append(u)
    no_seen, cumulative = [{start}], [{start}]
    for _ in range(n_steps):
        no_seen.append({v for u in no_seen[-1] for v in children.get(u, [])})
    for front in reference_bfs_frontiers(edges, start, n_steps)[1:]:
        cumulative.append(cumulative[-1] | front)
    both_ways, seen = [{start}], {start}
    for _ in range(n_steps):
        new = {v for u in both_ways[-1] for v in undirected.get(u, []) if v not in seen}
        seen |= new
        both_ways.append(new)
    return {
        "a node came back in a later frontier: keep the set of nodes already reached and leave them out "
        "(a frontier holds only the nodes reached for the FIRST time)": no_seen,
        "your k-th set holds every node reached within k steps: the frontier is only the nodes first reached at "
        "exactly k": cumulative,
        "you followed edges both ways: an edge (u, v) leads from u to v only": both_ways,
        "the list starts at the first step: frontier 0 is {start} itself": reference_bfs_frontiers(edges, start, n_steps)[1:],
    }


@checker("bfs_frontiers")
def check_bfs_frontiers(fn: Callable) -> None:
    """``fn(edges, start, n_steps) -> [set, ...]``: the ``n_steps + 1`` frontiers, frontier 0 = ``{start}``."""
    name = "bfs_frontiers"
    cases = [("a diamond: two paths meet at node 3, and node 5 points into the start", _DIAMOND, 0, 4),
             ("a cycle back to the start", _CYCLE, 0, 4)]
    for i, (edges, start, _, _, _) in enumerate(_task_rows()):
        cases.append((f"a graph of the course's task (question {i})", edges, start, 5))
    outputs = []
    for case, edges, start, n_steps in cases:
        got = call_learner(name, fn, list(edges), start, n_steps)
        expect(isinstance(got, (list, tuple)) and all(isinstance(s, (set, frozenset)) for s in got), name, case,
               f"return a list of sets, got {type(got).__name__}" + (
                   f" of {sorted({type(s).__name__ for s in got})}" if isinstance(got, (list, tuple)) else ""))
        outputs.append([set(s) for s in got])
    for at, ((case, edges, start, n_steps), got) in enumerate(zip(cases, outputs)):
        expected = reference_bfs_frontiers(edges, start, n_steps)
        if got == expected:
            continue
        candidates = {d: [_frontier_mistakes(e, s, n)[d] for _, e, s, n in cases] for d in _frontier_mistakes(edges, start, n_steps)}
        named = explain(outputs, candidates, same=lambda a, b: a == b, at=at)
        wrong = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        expect(False, name, case,
               f"expected {len(expected)} sets {expected}, got {len(got)}: {got} (first difference: frontier {wrong}). "
               + (f"It looks like {named}. " if named else "")
               + "Frontier k + 1 is every child of a frontier-k node that no earlier frontier holds")
    report(name, len(cases))


def _reach_mistakes(edges, start, candidates) -> dict[str, int]:
    children = {u for e in edges for u in [e[1]] if e[0] == start}
    backwards = reference_reachable_candidate([(v, u) for u, v in edges], start, candidates)
    incoming = [sum(v == c for _, v in edges) for c in candidates]
    return {
        "you looked one step only (the start's children): a candidate can be several steps away":
            candidates[0] if candidates[0] in children else candidates[1],
        "you followed the edges backwards (which candidate leads TO the start): an edge (u, v) goes from u to v":
            backwards,
        "you returned the candidate's position (0 or 1): return its label": 0 if reference_reachable_candidate(
            edges, start, candidates) == candidates[0] else 1,
        "you picked the candidate with more incoming edges: that is the shortcut the task is built to defeat":
            candidates[1] if incoming[1] > incoming[0] else candidates[0],
    }


@checker("reachable_candidate")
def check_reachable_candidate(fn: Callable) -> None:
    """``fn(edges, start, candidates) -> int``: the label of the one candidate reachable from ``start``."""
    name = "reachable_candidate"
    # hand-made: 2 is reachable in two steps; 9 has two incoming edges and leads to the start
    tricky = [(0, 1), (1, 2), (9, 0), (7, 9), (8, 9)]
    cases = [("the reachable one is two steps away; the other leads into the start", tricky, 0, (9, 2)),
             ("the same, candidates swapped", tricky, 0, (2, 9))]
    for i, (edges, start, cands, _, _) in enumerate(_task_rows(4)):
        cases.append((f"a question of the course's task ({i})", edges, start, cands))
    outputs = [call_learner(name, fn, list(e), s, c) for _, e, s, c in cases]
    for at, ((case, edges, start, cands), got) in enumerate(zip(cases, outputs)):
        expected = reference_reachable_candidate(edges, start, cands)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = int(got)
        if got == expected and not isinstance(got, bool):
            continue
        candidates = {d: [_reach_mistakes(e, s, c)[d] for _, e, s, c in cases] for d in _reach_mistakes(edges, start, cands)}
        named = explain(outputs, candidates, same=lambda a, b: a == b, at=at)
        expect(False, name, f"{case}: start {start}, candidates {cands}",
               f"expected {expected}, got {got!r}. " + (f"It looks like {named}. " if named else "")
               + "Search forward from the start (your bfs_frontiers does it) and return the candidate it reaches")
    report(name, len(cases))


def _same_means(a, b) -> bool:
    if not isinstance(a, dict) or set(a) != set(b):
        return False
    return all((math.isnan(b[k]) and isinstance(a[k], float) and math.isnan(a[k]))
               or (not math.isnan(b[k]) and isinstance(a[k], (int, float)) and abs(a[k] - b[k]) < 1e-5) for k in b)


def _means_mistakes(scores, groups) -> dict[str, dict[str, float]]:
    pooled, zero_rows, nan_as_zero = {}, {}, {}
    for g, name in enumerate(GROUPS):
        member = (groups == g).float()
        count = member.sum(dim=1)
        total = (scores * member).sum(dim=1)
        pooled[name] = (total.sum() / count.sum()).item() if count.sum() > 0 else float("nan")
        zero_rows[name] = (total / count.clamp(min=1)).mean().item()
    for name, v in group_means(scores, groups).items():
        nan_as_zero[name] = 0.0 if math.isnan(v) else v
    return {
        "you pooled every member of a group across rows: take each row's mean first, then the mean over rows "
        "(a row with many members would otherwise count more)": pooled,
        "rows without a member of the group counted as 0: skip them": zero_rows,
        "a group no row has got 0: it has no mean, return NaN (float('nan'))": nan_as_zero,
    }


@checker("group_means")
def check_group_means(fn: Callable) -> None:
    """``fn(scores [batch, n_labels], groups [batch, n_labels]) -> {group name: mean}`` over :data:`GROUPS`."""
    name = "group_means"
    gen = torch.Generator().manual_seed(0)
    groups_a = torch.tensor([[0, 0, 1, 2, 3, -1], [0, 1, 1, 1, 3, 2], [1, 2, 2, 3, -1, -1]])
    groups_b = torch.tensor([[0, 1, 1, -1], [1, 1, 3, -1]])  # no row has "reachable later"
    cases = [("three rows, one without a frontier node, unused labels (-1)", torch.randn(3, 6, generator=gen), groups_a),
             ("a group no row has", torch.randn(2, 4, generator=gen), groups_b)]
    outputs = [call_learner(name, fn, s.clone(), g.clone()) for _, s, g in cases]
    for at, ((case, scores, groups), got) in enumerate(zip(cases, outputs)):
        expected = group_means(scores, groups)
        if isinstance(got, dict):
            got = {k: (float(v) if isinstance(v, (torch.Tensor, int, float)) else v) for k, v in got.items()}
        if _same_means(got, expected):
            continue
        expect(isinstance(got, dict) and set(got) == set(expected), name, case,
               f"return a dict whose keys are the four group names {list(GROUPS)}, got {got!r}")
        candidates = {d: [_means_mistakes(s, g)[d] for _, s, g in cases] for d in _means_mistakes(scores, groups)}
        named = explain(outputs, candidates, same=_same_means, at=at)
        shown = {k: round(v, 4) for k, v in expected.items()}
        expect(False, name, case, f"expected {shown}, got {got}. " + (f"It looks like {named}. " if named else "")
               + "For each group: each row's mean over its members, then the mean over the rows that have any")
    report(name, len(cases))
