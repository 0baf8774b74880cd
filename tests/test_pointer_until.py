"""Pointer chasing until the first marked node: the lookups a question needs are in its table and not
in its prompt, no rule that skips the start node finds the answer, and test tables never occur in
training."""

from __future__ import annotations

import pytest
import torch

from lib.tasks.pointer_until import (
    UNTIL_DOMAIN, UntilSpec, build_until_table, first_marked_hops, sample_until, until_eval_sets,
)
from lib.tasks.splits import SPLITS, split_codes, split_overlap

TASK = UntilSpec()


def _parts(batch):
    n = TASK.n_nodes
    return batch.tokens[:, :n], batch.tokens[:, n + 2]


@pytest.mark.parametrize("hops", [None, (3,)])
def test_the_lookups_are_where_the_first_marked_node_sits_and_the_prompt_does_not_say(hops):
    batch = sample_until(TASK, 600, torch.Generator().manual_seed(0), "test", hops)
    tables, starts = _parts(batch)
    assert (tables.sort(dim=1).values == torch.arange(TASK.n_nodes)).all()  # every table is a permutation
    assert (first_marked_hops(tables, starts, TASK.n_marked, TASK.spec.max_hops) == batch.hops).all()
    assert set(batch.hops.tolist()) == set(TASK.id_hops if hops is None else hops)  # drawn over every count asked
    assert (starts >= TASK.n_marked).all() and (batch.answers < TASK.n_marked).all()
    spec = TASK.spec
    assert (batch.tokens[:, TASK.n_nodes + 1] == spec.pause_id).all()  # the hop slot carries nothing ...
    hop_ids = [spec.hop_id(h) for h in range(1, spec.max_hops + 1)]
    assert not torch.isin(batch.tokens, torch.tensor(hop_ids)).any()  # ... and no hop token appears anywhere
    assert (batch.targets[torch.arange(600), batch.answer_pos - 1] == batch.answers).all()


def _backward_runs(batch, until_x: bool) -> list[list[int]]:
    # Per question and marked node: how many unmarked nodes point into it one after another, walking
    # backwards through the table (until_x: 1 if that walk meets x within a lane, else 0).
    tables, starts = _parts(batch)
    before = tables.argsort(dim=1)  # before[r, j]: the node whose entry is j
    out = []
    for r in range(tables.shape[0]):
        runs = []
        for mark in range(TASK.n_marked):
            node, run, met = mark, 0, 0
            for _ in range(TASK.lane):
                node = int(before[r, node])
                if node < TASK.n_marked:
                    break
                run, met = run + 1, met or int(node == int(starts[r]))
            runs.append(met if until_x else run)
        out.append(runs)
    return out


def test_nothing_but_the_chain_from_x_tells_the_answer_or_the_lookups():
    # Every table has the same shape at every lookup count: a run of `lane` unmarked nodes into
    # every marked node, x's predecessor unmarked. So looking backwards from the marked nodes
    # (which has the longer run?) cannot pick the answer, while the same walk that looks for x does.
    for hops in (1, 2, 3):
        batch = sample_until(TASK, 300, torch.Generator().manual_seed(hops), "test", hops)
        runs = _backward_runs(batch, until_x=False)
        assert all(r == [TASK.lane] * TASK.n_marked for r in runs)  # the same for every node, question and count
        tables, starts = _parts(batch)
        assert (tables.argsort(dim=1).gather(1, starts[:, None])[:, 0] >= TASK.n_marked).all()  # x's predecessor: unmarked
        found = [r.index(1) for r in _backward_runs(batch, until_x=True)]
        assert found == batch.answers.tolist()  # the control: the walk that uses x finds every answer
def test_no_test_question_occurs_among_100000_training_questions():
    # At a size with 96 tables in all, 100,000 training questions use every training table many
    # times over: without the split, every test table would be among them.
    tiny = UntilSpec(n_marked=2, train_hops=1, ood_extra_hops=0)
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
    table, x = build_until_table(TASK, 3, torch.Generator().manual_seed(0))
    assert first_marked_hops(table[None], torch.tensor([x]), TASK.n_marked, 3).item() == 3
    with pytest.raises(ValueError, match="n_marked"):
        UntilSpec(n_marked=1)
    assert (TASK.lane, TASK.n_nodes, TASK.spec.max_hops) == (4, 10, 3)
    with pytest.raises(ValueError, match="hops"):
        sample_until(TASK, 4, torch.Generator(), "test", 4)
    with pytest.raises(ValueError, match="split"):
        sample_until(TASK, 4, torch.Generator(), "holdout")
    with pytest.raises(ValueError, match="at least one"):
        sample_until(TASK, 4, torch.Generator(), "test", ())
    assert first_marked_hops(torch.tensor([[3, 0, 1, 2]]), torch.tensor([3]), 1, 1).item() == 2  # none within the limit
