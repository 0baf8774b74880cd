"""The graph-reachability tasks of the harness (lib.experiments.harness.graph_reach): every arm's
training stream, the rules that do not search, the gate and the measured overlap."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lib.experiments.harness import registry
from lib.experiments.harness.graph_reach import (
    BATCH, FRONTIER_BATCH, TASKS, curriculum_depths, graph_accuracy, graph_task, shortcut_accuracy, shortcut_choices, training_stream,
)
from lib.experiments.harness.spec import SMALL, CellResult
from lib.tasks.graph_reach import sample_graph_batch


def test_the_two_tasks_differ_only_in_the_frontier_width():
    chain, reach = graph_task("graph_chain_unseen"), graph_task("graph_reach_unseen")
    assert (chain.width, reach.width) == (1, 2)
    assert replace(chain, width=2) == reach
    assert chain.id_depths == (1, 2, 3) and chain.ood_depths == (4, 5)
    with pytest.raises(ValueError, match="task must be one of"):
        graph_task("graph_unseen")


@pytest.mark.parametrize("filler", ["none", "pause", "dense"])
def test_every_step_holds_reach_questions_then_depth_one_frontier_questions(filler):
    spec = graph_task("graph_reach_unseen")
    tokens, targets = training_stream(spec, filler, torch.Generator().manual_seed(0), 30)(0)
    assert tokens.shape == (BATCH + FRONTIER_BATCH, spec.seq_len(filler)) and targets.shape == tokens.shape
    q = spec.question_pos
    reach, frontier = tokens[:BATCH], tokens[BATCH:]
    assert (reach[:, q + 1 : q + 3] < spec.n_labels).all()  # two real candidates
    assert (frontier[:, q + 1 : q + 3] == spec.none_id).all()  # none: name a child of the start
    assert ((targets != -100).sum(dim=1) == 1).all()  # one scored token a row: the answer
    if filler != "none":  # a depth-1 question has no filler slot
        assert not (frontier == spec.filler_id(filler)).any()


def test_the_depth_curriculum_adds_one_depth_per_third_of_the_run():
    assert [curriculum_depths(s, 30, 3) for s in (0, 9, 10, 19, 20, 29)] == [(1,), (1,), (1, 2), (1, 2), (1, 2, 3), (1, 2, 3)]
    assert curriculum_depths(0, 2, 3) == (1,) and curriculum_depths(1, 2, 3) == (1, 2)  # shorter than its stages
    spec = graph_task("graph_reach_unseen")
    fn = training_stream(spec, "dense", torch.Generator().manual_seed(0), 30)
    dense_slots = lambda step: (fn(step)[0][:BATCH] == spec.dense_id).sum(dim=1)  # d - 1 per reach question
    assert dense_slots(0).max() == 0 and dense_slots(10).max() == 1 and dense_slots(29).max() == 2


def test_the_stream_is_the_same_for_every_filler():
    """The arms see the same graphs and questions; only the layout differs."""
    spec = graph_task("graph_chain_unseen")
    none = training_stream(spec, "none", torch.Generator().manual_seed(5), 30)(25)[1]
    dense = training_stream(spec, "dense", torch.Generator().manual_seed(5), 30)(25)[1]
    answers = lambda t: t[t != -100]
    assert torch.equal(answers(none), answers(dense))


def test_no_rule_that_does_not_search_beats_chance():
    for task in TASKS:
        rules = shortcut_accuracy(graph_task(task), 200)  # 1,000 questions: 0.5 +- 0.016
        assert set(rules) == {"more incoming edges", "more outgoing edges", "first listed"}
        assert all(0.44 < v < 0.56 for v in rules.values()), (task, rules)


def test_the_rules_would_find_a_degree_difference_if_there_were_one():
    """The positive control: give each row's answer a second incoming edge and three outgoing ones
    (no node has more than two) and the degree rules pick it on every row."""
    spec = graph_task("graph_reach_unseen")
    b = sample_graph_batch(spec, 50, torch.Generator().manual_seed(2), "test", "none", 2)
    assert 0.3 < (b.candidates[:, 0] == b.answers).float().mean() < 0.7  # listed in a random order
    b.edges[:, 0, 1] = b.answers  # the first edge now also points at the answer
    b.edges[:, 1:4, 0] = b.answers[:, None]  # and the next three leave it
    picks = shortcut_choices(b)
    assert torch.equal(picks["more incoming edges"], b.answers)
    assert torch.equal(picks["more outgoing edges"], b.answers)


def _run(by_hops, value):
    return CellResult("graph_reach_unseen", "dense", 0, 1e-3, value, value, 1, 3.0, 1.0, {"by_hops": by_hops})


def test_an_arm_is_gated_on_the_lookup_and_on_beating_the_rules():
    refs = {"one_hop_needed": 0.9, "best_shortcut": 0.52}
    gate = registry.TASK_REGISTRY["graph_reach_unseen"].run_gate
    assert gate(_run({1: 1.0, 2: 0.5, 3: 0.5}, 0.667), refs)
    assert not gate(_run({1: 0.8, 2: 0.9, 3: 0.9}, 0.867), refs)  # the lookup not learned
    assert not gate(_run({1: 0.9, 2: 0.3, 3: 0.3}, 0.5), refs)  # no better than a rule that does not search


def test_the_training_graphs_never_include_a_test_graph():
    tiny = replace(SMALL, seeds=(0, 1), graph_unseen_steps=20, eval_questions=50)
    record = registry.TASK_REGISTRY["graph_reach_unseen"].splits(tiny, tiny.seeds)
    assert set(record) == {"val", "test", "test_ood"}
    for r in record.values():
        assert r["overlap"] == 0 and r["train_draws"] == 2 * 20 * (BATCH + FRONTIER_BATCH)


def test_accuracy_is_scored_per_split_and_depth():
    spec = graph_task("graph_chain_unseen")
    from lib.core.model import GPT
    from lib.tasks.graph_reach import graph_model_config

    torch.manual_seed(0)
    model = GPT(graph_model_config(spec))
    acc = graph_accuracy(model, spec, "dense", 20)
    assert set(acc) == {"val", "test", "test_ood"}
    assert set(acc["test"]) == {1, 2, 3} and set(acc["test_ood"]) == {4, 5}
    assert all(0 <= v <= 1 for by in acc.values() for v in by.values())


def test_bad_arguments_are_named():
    spec = graph_task("graph_chain_unseen")
    with pytest.raises(ValueError, match="filler"):
        training_stream(spec, "thoughts", torch.Generator(), 10)
    with pytest.raises(TypeError, match="spec"):
        training_stream("graph", "dense", torch.Generator(), 10)
    with pytest.raises(ValueError, match="steps"):
        training_stream(spec, "dense", torch.Generator(), 0)
    with pytest.raises(TypeError, match="batch"):
        shortcut_choices(torch.zeros(3))
    with pytest.raises(TypeError, match="model"):
        graph_accuracy("a model", spec, "dense", 4)


def test_chain_of_thought_writes_the_path_into_the_dense_slots():
    from lib.tasks.graph_reach import written_path

    spec = graph_task("graph_reach_unseen")
    b = sample_graph_batch(spec, 32, torch.Generator().manual_seed(4), "train", "dense", (1, 2, 3, 4, 5))
    tokens, targets = written_path(b)
    first = spec.question_pos + 4
    for r in range(32):
        d = int(b.depths[r])
        assert tokens[r, first : first + d - 1].tolist() == b.path[r, : d - 1].tolist()  # s -> ... -> answer, written
        assert targets[r, first - 1 : first + d - 1].tolist() == b.path[r, :d].tolist()  # every step and the answer
        assert int(b.path[r, d - 1]) == int(b.answers[r])
        for k in range(d - 1):  # each written node is on the start's frontier of its step
            assert int(tokens[r, first + k]) in b.levels_start[r, k].tolist()
    assert torch.equal(b.tokens[:, :first], tokens[:, :first]) and (b.tokens == spec.dense_id).sum() > 0
    with pytest.raises(ValueError, match="dense"):
        written_path(sample_graph_batch(spec, 2, torch.Generator().manual_seed(4), "train", "pause", 2))


def test_the_chain_of_thought_stream_asks_the_same_questions():
    spec = graph_task("graph_reach_unseen")
    plain = training_stream(spec, "dense", torch.Generator().manual_seed(0), 30)(25)  # the last third: depths 1-3
    written = training_stream(spec, "dense", torch.Generator().manual_seed(0), 30, written=True)(25)
    same = plain[0] == written[0]
    assert same[:, : spec.question_pos + 4].all() and not same.all()  # only the slots differ
    assert (written[1] != -100).sum() > (plain[1] != -100).sum()
    with pytest.raises(ValueError, match="filler must be 'dense'"):
        training_stream(spec, "pause", torch.Generator().manual_seed(0), 30, written=True)


def test_chain_of_thought_is_an_arm_of_both_graph_tasks_and_writes_at_test():
    for task in TASKS:
        assert "cot" in registry.TASK_METHODS[task]
    small = replace(SMALL, graph_unseen_steps=20, eval_questions=20)
    run = registry.RUNNERS["graph_reach_unseen"]("cot", 0, small)
    assert run.forward_passes_per_step == 1.0 and run.extra["passes_per_question"] == {"in_distribution": 2.0, "ood": 4.5}
    assert "probe" not in run.extra and set(run.extra["ood_by_hops"]) == {4, 5}


def test_the_curriculum_writes_each_new_slot_before_it_hides_it():
    from lib.experiments.harness.graph_reach import curriculum_latent_slots

    steps, depth = 60, 3
    latent = [curriculum_latent_slots(t, steps, depth) for t in range(steps)]
    # stage 1 (depth 1) has no slots; stage 2 (depths 1-2) writes slot 1 (0 latent), then hides it;
    # stage 3 (depths 1-3) writes slot 2 (1 latent), then hides it: each slot is written before it is hidden
    assert latent == [0] * 30 + [1] * 20 + [2] * 10
    for t, k in enumerate(latent):
        slots = max(curriculum_depths(t, steps, depth)) - 1
        assert k <= slots  # never more latent slots than the deepest question has
    with pytest.raises(ValueError, match="step"):
        curriculum_latent_slots(60, steps, depth)
    # the last stage takes the leftover steps and still splits them in halves
    odd = [curriculum_latent_slots(t, 100, depth) for t in range(100)]
    assert odd[66:] == [1] * 17 + [2] * 17


@pytest.mark.parametrize("latent", ["dense", "pause"])
def test_a_curriculum_stage_hides_the_first_slots_and_writes_the_rest(latent):
    from lib.methods.curriculum import staged_path
    from lib.tasks.graph_reach import written_path

    spec = graph_task("graph_reach_unseen")
    b = sample_graph_batch(spec, 32, torch.Generator().manual_seed(5), "train", "dense", (1, 2, 3, 4, 5))
    written, written_targets = written_path(b)
    first = spec.question_pos + 4  # slot 1
    for hidden in (0, 1, 2):
        tokens, targets = staged_path(b, hidden, latent)
        for r in range(32):
            d = int(b.depths[r])
            n = min(hidden, d - 1)
            assert (tokens[r, first : first + n] == spec.filler_id(latent)).all()
            assert (targets[r, first - 1 : first - 1 + n] == -100).all()  # a latent slot has no target
            assert torch.equal(tokens[r, first + n :], written[r, first + n :])
            assert torch.equal(targets[r, first - 1 + n :], written_targets[r, first - 1 + n :])
    assert torch.equal(staged_path(b, 0, latent)[0], written)  # stage 0 is chain of thought
    with pytest.raises(ValueError, match="latent"):
        staged_path(b, 1, "thoughts")


def test_the_curriculum_stream_asks_the_same_questions():
    spec = graph_task("graph_reach_unseen")
    plain = training_stream(spec, "dense", torch.Generator().manual_seed(0), 30)(29)
    staged = training_stream(spec, "dense", torch.Generator().manual_seed(0), 30, curriculum="dense")(29)
    assert torch.equal(plain[0], staged[0]) and torch.equal(plain[1], staged[1])  # the last sixth: the dense arm's layout and targets
    early = training_stream(spec, "dense", torch.Generator().manual_seed(0), 30, curriculum="pause")(20)
    assert (early[0] == spec.pause_id).any() and (early[1] != -100).sum() > (plain[1] != -100).sum()
    with pytest.raises(ValueError, match="pass one"):
        training_stream(spec, "dense", torch.Generator(), 30, written=True, curriculum="dense")
    with pytest.raises(ValueError, match="filler must be 'dense'"):
        training_stream(spec, "none", torch.Generator(), 30, curriculum="dense")


def test_the_curriculum_and_looped_arms_are_arms_of_both_graph_tasks_and_run():
    small = replace(SMALL, graph_unseen_steps=12, eval_questions=12)
    base = registry.RUNNERS["graph_reach_unseen"]("baseline", 0, small)
    runs = {}
    for method in ("coconut", "pause_curriculum", "looped", "looped_injected"):
        assert all(method in registry.TASK_METHODS[t] for t in TASKS)
        runs[method] = run = registry.RUNNERS["graph_reach_unseen"](method, 0, small)
        assert run.n_params == base.n_params  # the same weights: loops are tied, curricula change only the data
        assert set(run.extra["by_hops"]) == {1, 2, 3} and set(run.extra["ood_by_hops"]) == {4, 5}
        # the continuous thoughts and the loops are probed, with the untrained control
        assert ("probe" in run.extra) == ("probe_untrained" in run.extra) == (method != "pause_curriculum")
        if method.startswith("looped"):
            assert run.forward_passes_per_step == 3.0
        if method == "coconut":  # only its latent slots unroll (a batch of 64 always has a row of the stage's depth)
            assert 1.0 < run.forward_passes_per_step < 3.0
    assert runs["looped_injected"].extra["test_loops"] == {"in_distribution": 3, "ood": [4, 5]}
    # one state per loop, as many loops as the question was answered with
    for method, loops in (("looped", {"3": 3, "4": 3, "5": 3}), ("looped_injected", {"3": 3, "4": 4, "5": 5})):
        probe = runs[method].extra["probe"]
        assert {d: len(by_k) for d, by_k in probe["whole_frontier"].items()} == loops
        assert {d: len(by_k) for d, by_k in probe["group_means"]["embedding"].items()} == loops


def test_the_injected_loop_runs_as_deep_as_each_question(monkeypatch):
    from lib.methods.looped import InjectedLoopedGPT
    from lib.tasks.graph_reach import graph_model_config

    spec = graph_task("graph_chain_unseen")
    torch.manual_seed(0)
    model = InjectedLoopedGPT(graph_model_config(spec), 3)
    seen = []
    run = InjectedLoopedGPT._run

    def spy(self, *args, **kwargs):
        seen.append(self.n_loops)
        return run(self, *args, **kwargs)

    monkeypatch.setattr(InjectedLoopedGPT, "_run", spy)
    graph_accuracy(model, spec, "none", 4)
    assert sorted(set(seen)) == [3, 4, 5] and model.n_loops == 3
    with pytest.raises(ValueError, match="without slots"):
        graph_accuracy(model, spec, "dense", 4)
