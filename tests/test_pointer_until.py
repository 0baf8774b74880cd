"""Pointer chasing until the first marked node: the lookups a question needs are in its table and not
in its prompt, no rule that skips the start node finds the answer, and test tables never occur in
training."""

from __future__ import annotations

import pytest
import torch

from lib.tasks.pointer_until import (
    UntilSpec, build_until_table, first_marked_hops, sample_until, until_eval_sets,
)
from lib.tasks.splits import split_overlap

TASK = UntilSpec()


def _parts(batch):
    n = TASK.n_nodes
    return batch.tokens[:, :n], batch.tokens[:, n + 2]


@pytest.mark.parametrize("hops", [None, (4, 5)])
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


def _backward_rule(batch, generator) -> float:
    # Pick the marked node with the longest run of unmarked nodes pointing into it: a rule that
    # never looks at the start node (ties broken at random).
    tables, _ = _parts(batch)
    before = tables.argsort(dim=1)  # before[r, j]: the node whose entry is j
    right = 0
    for r in range(tables.shape[0]):
        runs = []
        for mark in range(TASK.n_marked):
            node, run = mark, 0
            for _ in range(TASK.n_nodes):
                node = int(before[r, node])
                if node < TASK.n_marked:
                    break
                run += 1
            runs.append(run)
        best = [m for m in range(TASK.n_marked) if runs[m] == max(runs)]
        right += best[int(torch.randint(0, len(best), (1,), generator=generator))] == int(batch.answers[r])
    return right / tables.shape[0]


def test_looking_backwards_from_the_marked_nodes_finds_the_answer_at_chance_only_because_of_the_decoys(monkeypatch):
    batch = sample_until(TASK, 2000, torch.Generator().manual_seed(1), "test", (2, 3))
    assert abs(_backward_rule(batch, torch.Generator().manual_seed(2)) - 0.5) < 0.04
    # the control: decoy chains of one node make the same rule find the answer far above chance
    import lib.tasks.pointer_until as until

    real = until.build_until_table
    monkeypatch.setattr(until, "build_until_table", lambda task, hops, gen, decoy_hops=None: real(task, hops, gen, (1,)))
    short = sample_until(TASK, 2000, torch.Generator().manual_seed(1), "test", (2, 3))
    assert _backward_rule(short, torch.Generator().manual_seed(2)) > 0.6


def test_no_test_question_occurs_among_100000_training_questions():
    train = (sample_until(TASK, 10_000, torch.Generator().manual_seed(10 + i), "train") for i in range(10))
    sets = until_eval_sets(TASK, 300, seed=7)
    counted = split_overlap(train, list(sets["test"].values()) + list(sets["test_ood"].values()))
    assert counted["overlap"] == 0 and counted["train_draws"] == 100_000 and counted["test_items"] == 1500
    # the check can fail: training questions against themselves overlap completely
    again = split_overlap([sample_until(TASK, 500, torch.Generator().manual_seed(3), "train")],
                          [sample_until(TASK, 500, torch.Generator().manual_seed(3), "train")])
    assert again["overlap"] == 500


def test_a_table_and_the_samplers_check_their_arguments():
    table, x = build_until_table(TASK, 3, torch.Generator().manual_seed(0))
    assert first_marked_hops(table[None], torch.tensor([x]), TASK.n_marked, 5).item() == 3
    with pytest.raises(ValueError, match="unmarked nodes"):
        UntilSpec(n_nodes=8, n_marked=2, train_hops=3, ood_extra_hops=2)
    with pytest.raises(ValueError, match="hops"):
        sample_until(TASK, 4, torch.Generator(), "test", 6)
    with pytest.raises(ValueError, match="split"):
        sample_until(TASK, 4, torch.Generator(), "holdout")
    with pytest.raises(ValueError, match="at least one"):
        sample_until(TASK, 4, torch.Generator(), "test", ())
    assert first_marked_hops(torch.tensor([[3, 0, 1, 2]]), torch.tensor([3]), 1, 1).item() == 2  # none within the limit
