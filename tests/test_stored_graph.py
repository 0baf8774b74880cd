"""The stored graph-reachability runs (notebook 10) and the dense model shipped beside them come from
this code, checked in ways that hold on any CPU (no last digits of a trained number are compared):
the file's protocol and gates, its leakage count, the probe stored with every dense, coconut and
looped seed, the opening losses of stored runs, the five dense seeds at the shipped model's rate,
and the shipped checkpoint against its own header."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lib.core.paths import REPO_ROOT
from lib.core.training import make_reproducible
from lib.experiments.frontier_probe import GROUPS, READOUTS
from lib.experiments.graph_checkpoint import GRAPH_CHECKPOINT, TASK, load_graph_checkpoint
from lib.experiments.harness import final_runs, load_results, run_gate
from lib.experiments.harness.graph_reach import PROBE_DEPTHS, graph_accuracy, graph_task
from lib.experiments.harness.spec import LOOPS
from lib.experiments.stored_checks import OPENING_TOLERANCE, opening_mismatch

GRAPH_PATH = REPO_ROOT / "data" / "results" / "harness_graph.json"


@pytest.fixture(scope="module")
def graph():
    return load_results(GRAPH_PATH)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    make_reproducible(seed=0, threads=1)
    yield
    torch.set_num_threads(threads)


def test_graph_file_follows_the_protocol(graph):
    prov, size = graph["provenance"], graph["size"]
    assert prov["command"].startswith("python -m lib.experiments.harness --size medium --tasks graph_reach_unseen")
    for batch in [prov] + prov.get("added", []):  # runs kept from an earlier sitting came from committed code
        assert not batch["uncommitted_changes"] and not any("+" in c for c in batch.get("resumed_run_commits", []))
    assert len(size.seeds) >= 5 and size.sweep_seed not in size.seeds and size.graph_unseen_steps == 7500
    cells = sorted({(r.task, r.method) for r in graph["runs"]})
    stored = {m for t, m in cells if t == "graph_reach_unseen"}
    assert {"baseline", "pause", "cot", "dense", "coconut", "pause_curriculum", "looped"} <= stored
    for task, method in cells:
        runs = [r for r in graph["runs"] if (r.task, r.method) == (task, method)]
        final = [r for r in runs if r.role == "final"]
        assert sorted(r.seed for r in final) == sorted(size.seeds), f"{method}: every reported seed, once"
        assert all(r.seed == size.sweep_seed for r in runs if r.role == "sweep"), f"{method}: tuning on the tuning seed"
        assert len({r.lr for r in final}) == 1 and final[0].lr in {r.lr for r in runs if r.role == "sweep"}
        for r in runs:
            assert set(r.extra["by_hops"]) == {1, 2, 3} and set(r.extra["ood_by_hops"]) == {4, 5}
            assert isinstance(r.gate_passed, bool) and r.gate_passed == run_gate(r, graph["references"][task])
            assert 0 <= r.value <= 1 and 0 <= r.ood_value <= 1


def test_graph_file_measured_no_overlap_and_rules_that_do_not_search_stay_low(graph):
    for task, splits in graph["splits"].items():
        assert set(splits) == {"val", "test", "test_ood"}
        for split, record in splits.items():
            assert record["overlap"] == 0 and record["train_draws"] >= 100_000 and record["test_items"] >= 1000, (task, split)
    for task, refs in graph["references"].items():
        assert refs["best_shortcut"] < 0.56 and refs["chance"] == 0.5, task


@pytest.mark.parametrize("method", ["dense", "coconut", "looped"])
def test_every_stored_seed_of_a_probed_arm_carries_its_probe_and_the_untrained_control(graph, method):
    assert len(final_runs(graph["runs"], TASK, method)) >= 5, f"notebook 10 reads the probe of five {method} seeds"
    for task in graph["references"]:
        for run in final_runs(graph["runs"], task, method):
            for key in ("probe", "probe_untrained"):
                probe = run.extra[key]
                for readout in READOUTS:
                    by_depth = probe["group_means"][readout]
                    assert sorted(by_depth) == sorted(str(d) for d in PROBE_DEPTHS)
                    for d, by_k in by_depth.items():
                        thoughts = LOOPS if method == "looped" else int(d)  # a looped model's thoughts are its loops
                        assert sorted(by_k, key=int) == [str(k) for k in range(1, thoughts + 1)]
                        assert all(set(means) == set(GROUPS) for means in by_k.values())
                assert all(0 <= v <= 1 for by_k in probe["whole_frontier"].values() for v in by_k.values() if v is not None)


@pytest.mark.parametrize("method,seed", [("pause", 1), ("baseline", 2), ("dense", 3), ("cot", 4), ("coconut", 0),
                                         ("pause_curriculum", 1), ("looped", 2)])
def test_the_opening_losses_of_a_stored_graph_run_come_back(graph, one_thread, method, seed):
    (run,) = [r for r in final_runs(graph["runs"], TASK, method) if r.seed == seed]
    worst, _ = opening_mismatch(run, graph["size"])
    assert worst < OPENING_TOLERANCE, f"{method}/seed {seed}: opening losses moved by {worst:.2e}"


def test_the_shipped_checkpoint_is_what_its_header_says(graph):
    model, meta = load_graph_checkpoint(GRAPH_CHECKPOINT)
    assert meta["task"] == TASK and meta["method"] == "dense" and meta["seed"] not in (graph["size"].sweep_seed,)
    assert meta["steps"] == graph["size"].graph_unseen_steps and meta["n_per_depth"] == graph["size"].eval_questions
    assert meta["provenance"]["command"].startswith("python -m lib.experiments.graph_checkpoint --lr")
    assert not meta["provenance"]["uncommitted_changes"]
    # evaluating the shipped weights is no training run: it gives back its header's accuracy on any CPU
    accuracy = graph_accuracy(model, graph_task(TASK), "dense", meta["n_per_depth"])
    for split, by_depth in accuracy.items():
        for d, a in by_depth.items():
            assert a == pytest.approx(meta["accuracy"][split][str(d)], abs=0.005), (split, d)
    # a model worth probing: past the gate every stored arm is held to
    refs = graph["references"][TASK]
    test = accuracy["test"]
    assert test[1] >= refs["one_hop_needed"] and sum(test.values()) / len(test) > refs["best_shortcut"]
    for key in ("probe", "probe_untrained", "attention", "attention_untrained"):
        assert meta[key], key


def test_the_header_alone_reads_without_building_the_model():
    from lib.experiments.graph_checkpoint import graph_checkpoint_metadata

    meta = graph_checkpoint_metadata()
    assert meta == load_graph_checkpoint()[1] and meta["task"] == TASK


RATE_PATH = REPO_ROOT / "data" / "results" / "harness_graph_dense_3e-3.json"


def test_the_dense_seeds_at_the_shipped_models_rate_are_five_seeds_at_one_rate_with_no_sweep(graph):
    # Notebook 10 asks how often dense tokens learn at 3e-3, the rate of the shipped model, which
    # the stored sweep tried on its tuning seed but did not choose: five reported seeds, no tuning.
    rate = load_results(RATE_PATH)
    assert rate["provenance"]["command"].startswith(
        "python -m lib.experiments.harness --size medium --tasks graph_reach_unseen --methods dense --lrs 3e-3")
    assert not rate["provenance"]["uncommitted_changes"]
    assert rate["size"].lrs == (3e-3,) and rate["size"] == replace(graph["size"], lrs=(3e-3,))
    runs = rate["runs"]
    assert sorted(r.seed for r in runs) == sorted(graph["size"].seeds) and {(r.role, r.lr, r.method) for r in runs} == {
        ("final", 3e-3, "dense")}
    for r in runs:
        assert r.gate_passed == run_gate(r, rate["references"][TASK]) and "probe" in r.extra
    assert rate["splits"][TASK] == graph["splits"][TASK]  # the same unseen graphs, counted the same way
    # the shipped model is seed 0 of this file: the same seed, rate and steps (its numbers: notebook 10)
    meta = load_graph_checkpoint(GRAPH_CHECKPOINT)[1]
    assert (meta["seed"], meta["lr"], meta["steps"]) == (0, rate["size"].lrs[0], rate["size"].graph_unseen_steps)


def test_the_opening_losses_of_a_dense_seed_at_3e3_come_back(one_thread):
    rate = load_results(RATE_PATH)
    (run,) = [r for r in rate["runs"] if r.seed == 1]
    worst, _ = opening_mismatch(run, rate["size"])
    assert worst < OPENING_TOLERANCE, f"dense at 3e-3, seed 1: opening losses moved by {worst:.2e}"
