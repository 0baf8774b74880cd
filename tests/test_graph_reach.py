"""Graph reachability (lib.tasks.graph_reach): the graphs are what the docstring says, the answer
is reachable and the other candidate is not, nothing but the path tells them apart, and no test
graph is ever a training graph."""

from __future__ import annotations

import pytest
import torch

from lib.tasks.graph_reach import (
    GraphSpec, answer_accuracy, child_table, frontier_questions, graph_eval_sets, parent_table, sample_graph_batch,
)
from lib.tasks.splits import split_overlap

SPEC = GraphSpec()


def _reachable(edges, start):
    seen, frontier = {start}, {start}
    while frontier:
        frontier = {v for u, v in edges if u in frontier} - seen
        seen |= frontier
    return seen


def _depth(edges, start, target):
    frontier, seen, d = {start}, {start}, 0
    while frontier and target not in frontier:
        frontier = {v for u, v in edges if u in frontier} - seen
        seen |= frontier
        d += 1
    return d if target in frontier else None


@pytest.mark.parametrize("layout", ["table", "pairs"])
def test_every_question_has_one_reachable_candidate_at_its_depth(layout):
    spec = GraphSpec(layout=layout)
    b = sample_graph_batch(spec, 200, torch.Generator().manual_seed(0), "train", "dense", (1, 2, 3, 4, 5))
    for i in range(len(b.tokens)):
        edges = [tuple(e) for e in b.edges[i].tolist()]
        s, a = int(b.start[i]), int(b.answers[i])
        other = [c for c in b.candidates[i].tolist() if c != a]
        assert len(other) == 1 and a in b.candidates[i].tolist()
        reach = _reachable(edges, s)
        assert a in reach and other[0] not in reach
        assert _depth(edges, s, a) == int(b.depths[i])
        # the other candidate is as deep below the other root: depth alone cannot tell them apart
        assert _depth(edges, int(b.other_root[i]), other[0]) == int(b.depths[i])
        # every node has at most one parent; the frontier after k steps is level k of the start's component
        targets = [v for _, v in edges]
        assert len(targets) == len(set(targets))
        frontier, seen = {s}, {s}
        for k in range(spec.levels):
            frontier = {v for u, v in edges if u in frontier} - seen
            seen |= frontier
            assert frontier == set(b.levels_start[i, k].tolist())
        # the path walks edges from s to the answer
        path = [s] + b.path[i, : int(b.depths[i])].tolist()
        assert all((u, v) in edges for u, v in zip(path, path[1:])) and path[-1] == a


@pytest.mark.parametrize("filler", ["none", "pause", "dense"])
def test_a_frontier_question_names_a_node_exactly_its_depth_from_the_start(filler):
    b = sample_graph_batch(SPEC, 120, torch.Generator().manual_seed(3), "train", filler, (1, 2, 3, 4, 5))
    before = (b.tokens.clone(), b.targets.clone())
    tokens, targets = frontier_questions(b, torch.Generator().manual_seed(4))
    assert torch.equal(b.tokens, before[0]) and torch.equal(b.targets, before[1])  # the batch is not changed
    q = SPEC.question_pos
    assert (tokens[:, q + 1 : q + 3] == SPEC.none_id).all()  # no candidates left to pick between
    changed = (tokens != b.tokens).nonzero(as_tuple=True)[1]
    assert set(changed.tolist()) <= {q + 1, q + 2} | set(b.answer_pos.tolist())
    assert ((targets != -100).sum(dim=1) == 1).all()
    picked = set()
    for i in range(len(tokens)):
        node = int(targets[i, b.answer_pos[i] - 1])
        assert int(tokens[i, b.answer_pos[i]]) == node  # teacher-forced where the answer sits
        edges = [tuple(e) for e in b.edges[i].tolist()]
        assert _depth(edges, int(b.start[i]), node) == int(b.depths[i])
        picked.add(int(node == int(b.levels_start[i, b.depths[i] - 1, 0])))
    assert picked == {0, 1}  # both nodes of a frontier get asked


def test_the_layout_puts_the_start_last_and_the_fillers_after_it():
    b = sample_graph_batch(SPEC, 64, torch.Generator().manual_seed(1), "train", "dense")
    q = SPEC.question_pos
    assert (b.tokens[:, q] == SPEC.query_id).all()
    assert torch.equal(b.tokens[:, q + 1 : q + 3], b.candidates) and torch.equal(b.tokens[:, q + 3], b.start)
    n_dense = (b.tokens == SPEC.dense_id).sum(dim=1)
    assert torch.equal(n_dense, b.depths - 1) and torch.equal(b.useful.sum(dim=1), b.depths - 1)
    rows = torch.arange(64)
    assert torch.equal(b.tokens[rows, b.answer_pos], b.answers) and torch.equal(b.targets[rows, b.answer_pos - 1], b.answers)
    assert ((b.targets != -100).sum(dim=1) == 1).all()
    # the child table: node i's slots hold exactly its children
    table = b.tokens[:, :q].view(64, SPEC.n_labels, SPEC.width)
    for i in range(4):
        for node in range(SPEC.n_labels):
            kids = {v for u, v in b.edges[i].tolist() if u == node}
            assert set(table[i, node].tolist()) - {SPEC.none_id} == kids
    n_none = SPEC.vocab_size - 1
    assert SPEC.none_id == n_none and SPEC.seq_len("none") == q + 5


def test_no_shortcut_tells_the_candidates_apart():
    """Counts that need no search (in-degree, out-degree, listing order) pick the answer at chance."""
    b = sample_graph_batch(SPEC, 4000, torch.Generator().manual_seed(2), "test", "none")
    edges = b.edges
    def count(nodes, col):
        return (edges[:, :, col][:, :, None] == nodes[:, None, :]).sum(dim=1)
    first_is_answer = b.candidates[:, 0] == b.answers
    assert (count(b.candidates, 1) == 1).all()  # in-degree: one parent each, always a tie
    out = count(b.candidates, 0)  # out-degree: 0 .. width children each, at random
    decided = out[:, 0] != out[:, 1]
    assert decided.sum() > 1000
    more_children_first = (out[:, 0] > out[:, 1])[decided]
    assert abs((more_children_first == first_is_answer[decided]).float().mean().item() - 0.5) < 0.05
    assert abs(first_is_answer.float().mean().item() - 0.5) < 0.03


def test_no_test_graph_occurs_in_100000_training_draws():
    gen = torch.Generator().manual_seed(0)
    train = [sample_graph_batch(SPEC, 1000, gen, "train", "none") for _ in range(100)]
    sets = graph_eval_sets(SPEC, 300, 4321, "none")
    for split in ("val", "test", "test_ood"):
        overlap = split_overlap(train, list(sets[split].values()))
        assert overlap["train_draws"] == 100_000 and overlap["overlap"] == 0, (split, overlap)
    # the check can fail: test graphs asked again count as seen
    seen = split_overlap(train + list(sets["test"].values()), list(sets["test"].values()))
    assert seen["overlap_fraction"] == 1.0


def test_the_split_is_a_function_of_the_graph_not_of_how_it_is_written():
    b = sample_graph_batch(SPEC, 32, torch.Generator().manual_seed(3), "val", "none")
    shuffled = b.edges[:, torch.randperm(b.edges.shape[1], generator=torch.Generator().manual_seed(4))]
    assert torch.equal(parent_table(shuffled, SPEC.n_labels, SPEC.none_id), b.canonical_rows())
    t1 = child_table(b.edges, SPEC.n_labels, SPEC.width, SPEC.none_id, torch.Generator().manual_seed(5))
    t2 = child_table(b.edges, SPEC.n_labels, SPEC.width, SPEC.none_id, torch.Generator().manual_seed(6))
    assert not torch.equal(t1, t2)  # the children are written in a random order ...
    assert torch.equal(t1.view(32, -1, SPEC.width).sort(-1).values, t2.view(32, -1, SPEC.width).sort(-1).values)  # ... of the same sets


def test_accuracy_compares_the_two_candidates_only():
    b = sample_graph_batch(SPEC, 50, torch.Generator().manual_seed(7), "test", "none")
    logits = torch.zeros(*b.tokens.shape, SPEC.vocab_size)
    rows = torch.arange(50)
    logits[rows, b.answer_pos - 1, b.answers] = 1.0
    assert answer_accuracy(logits, b) == 1.0
    logits[rows, b.answer_pos - 1, SPEC.query_id] = 5.0  # a non-candidate's logit does not count
    assert answer_accuracy(logits, b) == 1.0
    logits[rows, b.answer_pos - 1, b.answers] = -1.0
    assert answer_accuracy(logits, b) == 0.0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="GraphSpec.n_labels"):
        GraphSpec(n_labels=10)
    with pytest.raises(ValueError, match="GraphSpec.train_depth"):
        GraphSpec(train_depth=6)
    with pytest.raises(ValueError, match="GraphSpec.layout"):
        GraphSpec(layout="list")
    with pytest.raises(ValueError, match="depths"):
        sample_graph_batch(SPEC, 4, torch.Generator(), "train", "dense", 6)
    with pytest.raises(ValueError, match="split"):
        sample_graph_batch(SPEC, 4, torch.Generator(), "dev")
