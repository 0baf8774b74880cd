"""Pointer chasing until the first marked node: the lookups a question needs are in its table and not
in its prompt, no rule that skips the start node finds the answer, and test tables never occur in
training."""

from __future__ import annotations

import pytest
import torch

from lib.tasks.pointer_until import (
    UNTIL_DOMAIN, UntilSpec, build_until_table, first_marked_hops, marked_labels, sample_until, until_eval_sets,
)
from lib.tasks.splits import SPLITS, split_codes, split_overlap

TASK = UntilSpec()  # marked nodes point to themselves, each table its own
FIXED = UntilSpec(marks="fixed")  # the control: labels 0 and 1 marked in every table


def _parts(batch):
    n = TASK.n_nodes
    return batch.tokens[:, :n], batch.tokens[:, n + 2]


@pytest.mark.parametrize("task", [TASK, FIXED], ids=["loops", "fixed"])
@pytest.mark.parametrize("hops", [None, (3,)])
def test_the_lookups_are_where_the_first_marked_node_sits_and_the_prompt_does_not_say(task, hops):
    batch = sample_until(task, 600, torch.Generator().manual_seed(0), "test", hops)
    tables, starts = _parts(batch)
    marked = marked_labels(task, tables)
    assert (first_marked_hops(tables, starts, marked, task.spec.max_hops) == batch.hops).all()
    assert set(batch.hops.tolist()) == set(task.id_hops if hops is None else hops)  # drawn over every count asked
    assert not (marked == starts[:, None]).any() and (marked == batch.answers[:, None]).any(dim=1).all()
    spec = task.spec
    hop_ids = [spec.hop_id(h) for h in range(1, spec.max_hops + 1)]
    assert not torch.isin(batch.tokens, torch.tensor(hop_ids)).any()  # no hop token appears anywhere
    assert (batch.targets[torch.arange(600), batch.answer_pos - 1] == batch.answers).all()
    assert (batch.tokens[:, task.n_nodes + 1] == spec.pause_id).all()  # the hop slot carries nothing
    if task.marks == "fixed":
        assert (tables.sort(dim=1).values == torch.arange(task.n_nodes)).all()  # every table is a permutation
    else:  # each table marks labels of its own, each pointing to itself
        assert len({tuple(r) for r in marked.tolist()}) > 30
        assert 0.4 < (batch.answers == marked[:, 0]).float().mean().item() < 0.6  # "the smaller marked label" is a guess
        assert (batch.answers < 2).float().mean().item() < 0.4  # fixed labels would always answer 0 or 1
        # following the table further changes nothing: a marked node stays put
        assert (tables.gather(1, batch.answers[:, None])[:, 0] == batch.answers).all()


def _in_degrees(tables):
    return torch.stack([torch.bincount(row, minlength=tables.shape[1]) for row in tables])


def _lead(tables, starts, marked):
    # How many nodes lie before x in its lane: walk back from x until a node nothing unmarked points to.
    out = []
    for row, x, marks in zip(tables.tolist(), starts.tolist(), marked.tolist()):
        before = {b: a for a, b in enumerate(row) if a not in marks}
        node, lead = x, 0
        while node in before:
            node, lead = before[node], lead + 1
        out.append(lead)
    return torch.tensor(out)


@pytest.mark.parametrize("task", [TASK, FIXED], ids=["loops", "fixed"])
def test_nothing_near_x_but_the_chain_ahead_tells_the_lookups(task):
    # x's lane starts 1..max_hops nodes before it, drawn apart from h: so the node before x is a
    # lane's head (nothing points to it) equally often at every h, and the nodes before x are
    # distributed alike at every h. (With lanes of one length the node before x was a head exactly
    # when h was the deepest count.)
    deepest = task.spec.max_hops
    by_hops = {}
    for hops in range(1, deepest + 1):
        batch = sample_until(task, 900, torch.Generator().manual_seed(hops), "test", hops)
        tables, starts = _parts(batch)
        marked = marked_labels(task, tables)
        assert (tables >= 0).all()
        degree = _in_degrees(tables)
        if task.marks == "loops":  # marked nodes twice (the lane's last node and themselves), heads never
            assert (degree.gather(1, marked) == 2).all() and ((degree == 0).sum(dim=1) == task.n_marked).all()
        pred = (tables == starts[:, None]).float().argmax(dim=1)
        assert (tables.gather(1, pred[:, None])[:, 0] == starts).all() and not (marked == pred[:, None]).any()
        lead = _lead(tables, starts, marked)
        assert set(lead.tolist()) == set(range(1, deepest + 1))  # x is never a lane's head
        by_hops[hops] = ((lead == 1).float().mean().item(), lead.float().mean().item())
    head_share = [v[0] for v in by_hops.values()]
    mean_lead = [v[1] for v in by_hops.values()]
    assert max(head_share) - min(head_share) < 0.1 and max(mean_lead) - min(mean_lead) < 0.2, by_hops
    # the control: the walk forward from x meets the answer after exactly h lookups, in every table
    batch = sample_until(task, 300, torch.Generator().manual_seed(9), "test")
    tables, starts = _parts(batch)
    walked = starts.clone()
    for k in range(1, deepest + 1):
        walked = torch.where(batch.hops >= k, tables.gather(1, walked[:, None])[:, 0], walked)
    assert (walked == batch.answers).all()


@pytest.mark.parametrize("marks", ["loops", "fixed"])
def test_no_test_question_occurs_among_100000_training_questions(marks):
    # At a size with a few hundred tables in all, 100,000 training questions use every training
    # table many times over: without the split, every test table would be among them.
    tiny = UntilSpec(n_marked=2, train_hops=1, ood_extra_hops=0, marks=marks)
    train = (sample_until(tiny, 10_000, torch.Generator().manual_seed(10 + i), "train") for i in range(10))
    test = sample_until(tiny, 500, torch.Generator().manual_seed(7), "test")
    counted = split_overlap(train, test)
    assert counted["overlap"] == 0 and counted["train_draws"] == 100_000 and counted["train_distinct"] > 50
    assert set(split_codes(test.tokens[:, : tiny.n_nodes], UNTIL_DOMAIN).tolist()) == {SPLITS.index("test")}
    sets = until_eval_sets(TASK, 50, seed=7)  # the course's size: every scored table is a test table
    for split, by_hops in (("val", sets["val"]), ("test", sets["test"]), ("test", sets["test_ood"])):
        for batch in by_hops.values():
            assert set(split_codes(batch.tokens[:, : TASK.n_nodes], UNTIL_DOMAIN).tolist()) == {SPLITS.index(split)}
    # the check can fail: training questions against themselves overlap completely
    again = split_overlap([sample_until(TASK, 500, torch.Generator().manual_seed(3), "train")],
                          [sample_until(TASK, 500, torch.Generator().manual_seed(3), "train")])
    assert again["overlap"] == 500


def test_a_table_and_the_samplers_check_their_arguments():
    table, x, marked = build_until_table(TASK, 3, torch.Generator().manual_seed(0))
    assert first_marked_hops(table[None], torch.tensor([x]), marked[None], 3).item() == 3
    with pytest.raises(ValueError, match="n_marked"):
        UntilSpec(n_marked=1)
    assert UntilSpec(n_marked=3).n_nodes == 15
    with pytest.raises(ValueError, match="exactly n_marked"):
        marked_labels(TASK, torch.arange(TASK.n_nodes)[None])  # every node points to itself
    with pytest.raises(ValueError, match="columns"):
        marked_labels(TASK, table[None, :4])
    with pytest.raises(ValueError, match="marks"):
        UntilSpec(marks="hidden")
    with pytest.raises(ValueError, match="one row per question"):
        first_marked_hops(table[None], torch.tensor([x, x]), marked[None], 3)
    assert (TASK.lane, TASK.n_nodes, TASK.spec.max_hops) == (4, 10, 3)
    with pytest.raises(ValueError, match="hops"):
        sample_until(TASK, 4, torch.Generator(), "test", 4)
    with pytest.raises(ValueError, match="split"):
        sample_until(TASK, 4, torch.Generator(), "holdout")
    with pytest.raises(ValueError, match="at least one"):
        sample_until(TASK, 4, torch.Generator(), "test", ())
    assert first_marked_hops(torch.tensor([[3, 0, 1, 2]]), torch.tensor([3]), torch.tensor([[0]]), 1).item() == 2  # none within the limit
