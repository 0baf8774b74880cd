"""The harness's registries: every list it uses is read off the arms and tasks, and a new arm is
one entry (the worked example of CONTRIBUTING.md, "Adding an arm to the harness")."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lib.experiments.harness import graph_reach, registry
from lib.experiments.harness.protocol import harness_jobs, tune_and_run
from lib.experiments.harness.spec import CellResult, Size
from lib.experiments.harness.summary import format_table, summarize

TINY = Size("tiny", (0, 1, 2, 3, 4), (1e-3, 3e-3), text_steps=1, text_batch=1, text_window=8, text_d_model=8,
            text_layers=2, text_every=4, text_val_windows=1, text_test_windows=1, pointer_steps=1, path_steps=1,
            sweep_seed=100, lr_extensions=0)


def test_the_tables_are_read_off_the_arms():
    tables = registry.arm_tables(registry.ARMS)
    assert tables["ALL_METHODS"] == registry.METHODS + registry.NEW_METHODS + registry.CONTROLS
    assert registry.CONTROLS == ("cot", "token_feedback", "coconut", "pause_curriculum", "looped_injected", "mtp",
                                 "teacherless")
    for name in registry.CONTROLS:  # the literature's controls run only where test items are unseen
        assert set(registry.ARMS[name].runs) <= {"pointer_unseen", "path_star_unseen", *graph_reach.TASKS}, name
    for task, methods in registry.TASK_METHODS.items():
        assert all(task in registry.ARMS[m].runs for m in methods)
        assert set(methods) | set(registry.REFERENCE_RUNS.get(task, ())) == {
            name for name, arm in registry.ARMS.items() if task in arm.runs}
    assert registry.REFERENCE_RUNS == {"path_star": ("reversed",), "path_star_unseen": ("reversed",)}
    assert set(registry.METHOD_NAMES) == set(registry.ARMS)
    assert set(registry.RUNNERS) == set(registry.TASKS) == set(registry.TASK_REGISTRY)


def test_an_arm_group_must_be_known():
    bad = {**registry.ARMS, "odd": registry.Arm("odd", "an odd arm", {"pointer": None}, group="extra")}
    with pytest.raises(ValueError, match="arm group must be"):
        registry.arm_tables(bad)


def _chance_arm(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """A stand-in arm that answers pointer questions at a fixed accuracy: what the protocol does
    with an arm does not depend on how the arm trains."""
    acc = 0.5 + 0.01 * seed + (0.1 if lr == 3e-3 else 0.0)
    return CellResult("pointer", method, seed, lr, acc, acc, 100, 1.0, 0.0, {"by_hops": {1: 0.95, 2: acc, 3: acc}})


def test_a_new_arm_is_one_registry_entry(monkeypatch):
    arms = {**registry.ARMS, "toy": registry.Arm("toy", "a stand-in arm", {"pointer": _chance_arm}, "open question")}
    monkeypatch.setattr(registry, "ARMS", arms)
    for name, value in registry.arm_tables(arms).items():
        monkeypatch.setattr(registry, name, value)
    assert ("pointer", "toy") in harness_jobs(("pointer",), None)
    assert ("pointer", "toy") not in harness_jobs(("shakespeare",), None)
    runs = tune_and_run("pointer", "toy", TINY)
    # the sweep (tuning seed 100 at both rates) picks 3e-3 on validation; then seeds 0-4 at that rate
    assert [(r.seed, r.lr, r.role) for r in runs] == [(100, 1e-3, "sweep"), (100, 3e-3, "sweep")] + [
        (s, 3e-3, "final") for s in range(5)]
    baseline = [CellResult("pointer", "baseline", s, 3e-3, 0.4, 0.4, 100, 1.0, 0.0, {"by_hops": {1: 0.95, 2: 0.1, 3: 0.1}})
                for s in range(5)]
    summary = summarize(runs + baseline, {"pointer": {"chance": 1 / 6, "one_hop_needed": 0.9}})
    assert summary["pointer"]["toy"]["verdict"] == "better" and summary["pointer"]["toy"]["n"] == 5
    assert "toy" in format_table(summary)
    with pytest.raises(ValueError, match="does not apply to shakespeare"):
        registry.RUNNERS["shakespeare"]("toy", 0, TINY, "cpu", 1e-3)


def test_runners_check_their_arguments_before_running():
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        registry.RUNNERS["pointer"]("baseline", -1, TINY)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        registry.RUNNERS["pointer"]("baseline", 0, TINY, lr=float("nan"))
    with pytest.raises(ValueError, match="unknown task"):
        registry.task_references("chess", TINY)


def test_the_worked_example_of_contributing_runs(monkeypatch):
    # The arm of CONTRIBUTING.md, "Adding an arm to the harness", as written there.
    import time

    from lib.experiments.harness import pointer
    from lib.experiments.harness.pointer import BATCH, QUESTION_SEEDS, _finish

    def run_dense_depth3(method, seed, size, device, lr):
        from lib.experiments.pointer_runs import evaluate_pointer, train_pointer_model
        from lib.tasks.pointer_task import PointerSpec

        start = time.perf_counter()
        spec = PointerSpec()
        run = train_pointer_model("dense-3", seed, spec, steps=size.pointer_steps, batch_size=BATCH, lr=lr, device=device)
        accuracy = {s: evaluate_pointer(run.model, spec, "dense", size.eval_questions, seed=q) for s, q in QUESTION_SEEDS.items()}
        return _finish(method, seed, lr, accuracy, run.model, 4.0, {}, start)

    arms = {**registry.ARMS, "dense_depth3": registry.Arm("dense_depth3", "dense tokens unrolled to depth 3",
                                                          {"pointer": run_dense_depth3}, "open question")}
    monkeypatch.setattr(registry, "ARMS", arms)
    for name, value in registry.arm_tables(arms).items():
        monkeypatch.setattr(registry, name, value)
    size = Size("tiny", (0,), (3e-3,), text_steps=1, text_batch=1, text_window=8, text_d_model=8, text_layers=2,
                text_every=4, text_val_windows=1, text_test_windows=1, pointer_steps=2, path_steps=1, eval_questions=8)
    result = registry.RUNNERS["pointer"]("dense_depth3", 0, size)
    base = registry.RUNNERS["pointer"]("dense", 0, size)
    assert 0.0 <= result.value <= 1.0 and set(result.extra["by_hops"]) == {1, 2, 3}
    assert result.n_params == base.n_params and result.forward_passes_per_step == 4.0
    assert "dense_depth3" in registry.TASK_METHODS["pointer"] and pointer.run_filler is registry.ARMS["dense"].runs["pointer"]


def _toy_registry(monkeypatch, fn):
    arms = {**registry.ARMS, "toy": registry.Arm("toy", "a stand-in arm", {"pointer": fn}, "open question")}
    monkeypatch.setattr(registry, "ARMS", arms)
    for name, value in registry.arm_tables(arms).items():
        monkeypatch.setattr(registry, name, value)


def test_more_seeds_reuse_the_stored_sweep_and_add_only_new_seeds(monkeypatch, tmp_path):
    from dataclasses import replace

    from lib.experiments.harness.protocol import run_harness
    from lib.experiments.harness.results import check_mergeable, load_results, merge_results, stored_cells, write_results

    _toy_registry(monkeypatch, _chance_arm)
    three = replace(TINY, seeds=(0, 1, 2))
    refs = {"pointer": {"chance": 1 / 6, "one_hop_needed": 0.9}}
    path = write_results(tmp_path / "r.json", three, tune_and_run("pointer", "toy", three), refs, {"command": "first"})
    stored = load_results(path)
    assert stored_cells(stored)[("pointer", "toy")] == (3e-3, [1e-3, 3e-3], {0, 1, 2})
    check_mergeable(stored, TINY, more_seeds=True)
    with pytest.raises(ValueError, match="cannot merge"):
        check_mergeable(stored, TINY)  # a plain --add needs the very same size
    with pytest.raises(ValueError, match="more reported seeds"):
        check_mergeable(stored, replace(TINY, lrs=(1e-3,)), more_seeds=True)  # only the seeds may differ
    new = run_harness(TINY, ("pointer",), ("toy",), progress=False, references=False, known=stored_cells(stored))
    assert [(r.seed, r.lr, r.role) for r in new] == [(3, 3e-3, "final"), (4, 3e-3, "final")]  # no sweep rerun
    assert new[0].extra["lr_grid"] == [1e-3, 3e-3] and new[0].extra["lr_at_edge"]
    merge_results(path, TINY, new, refs, {"command": "more"}, more_seeds=True)
    merged = load_results(path)
    assert merged["size"].seeds == TINY.seeds and [r.seed for r in merged["runs"] if r.role == "final"] == [0, 1, 2, 3, 4]
    assert merged["provenance"]["added"][0]["cells"] == ["pointer/toy"]
    with pytest.raises(ValueError, match="must be new seeds"):
        merge_results(path, TINY, new, refs, {"command": "again"}, more_seeds=True)


def test_a_diverging_rate_loses_the_sweep_not_the_batch(monkeypatch):
    def explodes_fast(method, seed, size, device, lr):
        if lr > 2e-3:
            raise FloatingPointError("loss is nan at step 3")
        return _chance_arm(method, seed, size, device, lr)

    _toy_registry(monkeypatch, explodes_fast)
    runs = tune_and_run("pointer", "toy", TINY)
    sweep = [r for r in runs if r.role == "sweep"]
    assert sweep[1].extra["diverged"] == "loss is nan at step 3" and sweep[1].value == 0.0
    assert all(r.lr == 1e-3 for r in runs if r.role == "final")  # the rate that diverged is never chosen
    assert not registry.run_gate(sweep[1], {"one_hop_needed": 0.9})


def test_nothing_to_run_is_an_error_not_an_empty_file():
    from lib.experiments.harness.protocol import run_harness

    with pytest.raises(ValueError, match="nothing to run"):
        run_harness(TINY, ("pointer_unseen",), ("thoughts",), progress=False)


def test_a_size_and_the_protocol_refuse_what_would_fail_later():
    from dataclasses import replace

    from lib.experiments.harness.protocol import loss_curve, next_rate

    with pytest.raises(ValueError, match="Size.lrs"):
        replace(TINY, lrs=())
    with pytest.raises(ValueError, match="Size.lrs"):
        replace(TINY, lrs=(1e-3, 1e-3))
    with pytest.raises(ValueError, match="Size.seeds"):
        replace(TINY, seeds=(0, 0))
    with pytest.raises(ValueError, match="never reported"):
        tune_and_run("pointer", "baseline", replace(TINY, sweep_seed=0))
    with pytest.raises(ValueError, match="not one of the rates tried"):
        next_rate([1e-3, 3e-3], 2e-3)
    with pytest.raises(ValueError, match="points"):
        loss_curve([1.0, 2.0], points=0)
    with pytest.raises(ValueError, match="does not apply"):
        tune_and_run("shakespeare", "cot", TINY)


def test_the_table_marks_a_rate_still_at_the_grids_edge():
    runs = [CellResult("pointer", m, s, 3e-3, 0.5, 0.5, 100, 1.0, 0.0,
                       {"by_hops": {1: 0.95, 2: 0.5, 3: 0.5}, "lr_at_edge": m == "pause"}) for m in ("baseline", "pause")
            for s in range(3)]
    table = format_table(summarize(runs, {"pointer": {"chance": 1 / 6, "one_hop_needed": 0.9}}))
    assert "3e-03*" in table and "still at the edge" in table and table.count("3e-03*") == 1


def test_a_diverged_run_scores_worst_everywhere_and_a_resume_takes_only_what_this_batch_asks(monkeypatch, tmp_path):
    from dataclasses import replace

    from lib.experiments.harness.protocol import DIVERGED_LOSS, diverged_run, run_harness

    text = diverged_run("shakespeare", "baseline", 0, 1e-2, "loss is nan")
    assert text.value == DIVERGED_LOSS and text.ood_value is None
    unseen = diverged_run("pointer_unseen", "dense", 0, 1e-2, "loss is nan")
    assert unseen.value == 0.0 and unseen.ood_value == 0.0  # the OOD mean counts it too
    summarize([replace(text, seed=s) for s in range(3)])  # a summary can hold it (finite)
    _toy_registry(monkeypatch, _chance_arm)
    from lib.experiments.harness.results import append_run, code_stamp

    target = tmp_path / "r.json"
    stray = CellResult("pointer", "dense", 0, 3e-3, 0.9, 0.9, 1, 1.0, 0.0, {"by_hops": {1: 1.0, 2: 1.0, 3: 1.0}})
    foreign_seed = CellResult("pointer", "toy", 77, 3e-3, 0.9, 0.9, 1, 1.0, 0.0, {"by_hops": {1: 1.0, 2: 1.0, 3: 1.0}})
    for run in (stray, foreign_seed):  # kept by an earlier batch that asked for other pairs and seeds
        append_run(target, run, TINY, code_stamp("cpu", torch.get_num_threads()))
    out = run_harness(TINY, ("pointer",), ("toy",), progress=False, references=False, keep=target)
    assert {r.method for r in out} == {"toy"} and 77 not in {r.seed for r in out} and len(out) == 7


def test_the_cli_refuses_repeated_seeds_before_running(capsys):
    from lib.experiments.harness.cli import main

    with pytest.raises(SystemExit):
        main(["--tasks", "pointer", "--methods", "baseline", "--seeds", "0", "0"])
    assert "--seeds: Size.seeds must be distinct" in capsys.readouterr().err


def _kept(target, size, like=None):
    from lib.experiments.harness.results import read_kept

    return [run for run, _ in read_kept(target, size, like)]


def test_a_batch_keeps_every_run_and_a_resumed_batch_makes_only_the_runs_it_lacks(monkeypatch, tmp_path):
    # A batch longer than one sitting: the runs file has every finished run, a later sitting makes
    # only the missing ones and gets the same results as one uninterrupted batch.
    from dataclasses import replace

    from lib.experiments.harness.protocol import run_harness
    from lib.experiments.harness.results import runs_path

    _toy_registry(monkeypatch, _chance_arm)
    target = tmp_path / "r.json"
    whole = run_harness(TINY, ("pointer",), ("toy",), progress=False, references=False, keep=target)
    assert runs_path(target).name == "r.json.runs.jsonl" and not any("kept_from" in r.extra for r in whole)
    kept = _kept(target, TINY)
    assert [(r.seed, r.lr) for r in kept] == [(r.seed, r.lr) for r in whole]
    assert all(r.role is None for r in kept)  # a kept run has no role until a batch gives it one
    assert kept[0].extra["by_hops"] == {1: 0.95, 2: whole[0].value, 3: whole[0].value}  # hop counts are ints again
    # the first sitting ended after the sweep and two seeds; the last line was cut short by a crash
    lines = runs_path(target).read_text().splitlines()
    runs_path(target).write_text("\n".join(lines[:4]) + "\n" + lines[4][:30])
    made = []

    def counting_arm(method, seed, size, device, lr):
        made.append((seed, lr))
        return _chance_arm(method, seed, size, device, lr)

    _toy_registry(monkeypatch, counting_arm)
    again = run_harness(TINY, ("pointer",), ("toy",), progress=False, references=False, keep=target)
    assert made == [(2, 3e-3), (3, 3e-3), (4, 3e-3)]  # the sweep's two runs and seeds 0-1 were kept
    assert [(r.seed, r.lr, r.role, r.value) for r in again] == [(r.seed, r.lr, r.role, r.value) for r in whole]
    assert [r.seed for r in again if "kept_from" in r.extra] == [100, 100, 0, 1]  # marked with the code that made them
    assert len(_kept(target, TINY)) == 7  # the four kept runs and the three made now
    # runs made at another size are not this batch's runs; more reported seeds are the same runs
    assert _kept(target, replace(TINY, pointer_steps=2)) == []
    assert [(r.seed, r.lr) for r in _kept(target, replace(TINY, seeds=(0, 1, 2, 3, 4, 5)))] == [
        (r.seed, r.lr) for r in _kept(target, TINY)]
    assert _kept(tmp_path / "none.json", TINY) == []
    with pytest.raises(TypeError, match="keep must be a results path"):
        run_harness(TINY, ("pointer",), ("toy",), progress=False, references=False, keep=3)


def test_a_kept_run_is_reused_only_on_its_device_threads_and_lib(monkeypatch, tmp_path):
    # The last digits of a trained number depend on the device and the threads per run, and a
    # change of lib/ may change the run: a kept run made otherwise is made again, not reused.
    from lib.experiments.harness.protocol import tune_and_run
    from lib.experiments.harness.results import append_run, code_stamp, open_run_store, read_kept

    _toy_registry(monkeypatch, _chance_arm)
    here = {"commit": "abc", "uncommitted_changes": False, "lib_diff_sha256": None, "device": "cpu", "threads": 1}
    marked = lambda seed, lr: replace(_chance_arm("toy", seed, TINY, "cpu", lr), value=0.123)  # noqa: E731
    target = tmp_path / "r.json"
    for seed, stamp in ((0, {**here, "device": "cuda"}), (1, {**here, "threads": 2}),
                        (2, {**here, "lib_diff_sha256": "f" * 64}), (3, here)):
        append_run(target, marked(seed, 3e-3), TINY, stamp)
    assert len(read_kept(target, TINY)) == 4 and len(read_kept(target, TINY, here)) == 1
    store = open_run_store(target, TINY, "cpu", 1)
    out = tune_and_run("pointer", "toy", TINY, store=store)
    finals = {r.seed: r for r in out if r.role == "final"}
    assert [s for s, r in finals.items() if r.value == 0.123] == [3]  # only the run made here, as this batch makes it
    assert finals[3].extra["kept_from"] == "abc"
    assert len(read_kept(target, TINY, store.stamp)) == len(out)  # every run made now is kept too, beside the reused one
    assert open_run_store(target, TINY, reuse=False).kept == {}
    with pytest.raises(ValueError, match="store or run_many"):
        tune_and_run("pointer", "toy", TINY, run_many=lambda todo: [], store=store)
    with pytest.raises(TypeError, match="store must be a RunStore"):
        tune_and_run("pointer", "toy", TINY, store=str(target))
    with pytest.raises(ValueError, match="threads an int"):
        code_stamp("cpu", 0)


def test_the_cli_keeps_runs_for_resume_and_removes_them_when_the_batch_is_stored(monkeypatch, tmp_path):
    from lib.experiments.harness import cli
    from lib.experiments.harness.results import append_run, code_stamp, load_results, runs_path

    _toy_registry(monkeypatch, _chance_arm)
    monkeypatch.setattr(cli, "SIZES", {**cli.SIZES, "tiny": TINY})
    target = tmp_path / "r.json"
    from dataclasses import replace

    # left by an earlier sitting of this batch: seed 0 at the rate the sweep will choose, marked by
    # a value the toy arm never gives, so the stored file shows whether it was reused or made again
    early = replace(_chance_arm("toy", 0, TINY, "cpu", 3e-3), value=0.123)
    threads = max(1, min(2, torch.get_num_threads()))  # what the CLI runs one batch with, in this process
    machine = {"device": "cpu", "threads": threads}
    append_run(target, early, TINY, {"commit": "abc", "uncommitted_changes": False, "lib_diff_sha256": None, **machine})
    monkeypatch.setattr(registry, "task_references", lambda task, size: {"chance": 1 / 6, "one_hop_needed": 0.9})
    assert cli.main(["--size", "tiny", "--tasks", "pointer", "--methods", "toy", "--json", str(target), "--resume"]) == 0
    stored = load_results(target)
    (seed_0,) = [r for r in stored["runs"] if r.seed == 0]
    assert seed_0.value == 0.123 and seed_0.role == "final"  # reused, and given its role by the protocol
    assert stored["provenance"]["resumed_runs"] == 1 and stored["provenance"]["resumed_run_commits"] == ["abc"]
    assert not runs_path(target).exists()  # the batch is stored: nothing is left to resume
    append_run(target, early, TINY, code_stamp(**machine))
    assert cli.main(["--size", "tiny", "--tasks", "pointer", "--methods", "toy", "--json", str(target)]) == 0
    stored = load_results(target)
    assert "resumed_runs" not in stored["provenance"]  # without --resume a batch starts afresh ...
    assert [r.value for r in stored["runs"] if r.seed == 0] == [_chance_arm("toy", 0, TINY, "cpu", 3e-3).value]  # ... and makes every run


def _append_many(args):
    path, worker, n = args
    from lib.experiments.harness.results import append_run

    for i in range(n):  # lines far longer than a pipe buffer, as a run with its probe and curve is
        run = CellResult("pointer", "toy", worker * 1000 + i, 1e-3, 0.5, 0.5, 1, 1.0, 0.0, {"pad": "x" * 20_000})
        append_run(path, run, TINY, {"commit": "c", "uncommitted_changes": False, "lib_diff_sha256": None, "device": "cpu",
                                     "threads": 1})


def test_worker_processes_appending_runs_at_once_lose_none(tmp_path):
    import multiprocessing as mp

    target = tmp_path / "r.json"
    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_append_many, [(str(target), w, 40) for w in range(4)])
    kept = _kept(target, TINY)
    assert sorted(r.seed for r in kept) == sorted(w * 1000 + i for w in range(4) for i in range(40))
    assert all(len(r.extra["pad"]) == 20_000 for r in kept)


def test_the_cli_runs_a_fixed_rate_without_a_sweep_and_keeps_it_out_of_a_swept_file(monkeypatch, tmp_path, capsys):
    from lib.experiments.harness import cli
    from lib.experiments.harness.results import load_results

    _toy_registry(monkeypatch, _chance_arm)
    monkeypatch.setattr(cli, "SIZES", {**cli.SIZES, "tiny": TINY})
    monkeypatch.setattr(registry, "task_references", lambda task, size: {"chance": 1 / 6, "one_hop_needed": 0.9})
    fixed = tmp_path / "fixed.json"
    assert cli.main(["--size", "tiny", "--tasks", "pointer", "--methods", "toy", "--lrs", "1e-3", "--json", str(fixed)]) == 0
    stored = load_results(fixed)
    assert stored["size"].lrs == (1e-3,) and {(r.role, r.lr) for r in stored["runs"]} == {("final", 1e-3)}
    assert sorted(r.seed for r in stored["runs"]) == list(TINY.seeds)  # no run on the tuning seed: nothing was tuned
    swept = tmp_path / "swept.json"
    assert cli.main(["--size", "tiny", "--tasks", "pointer", "--methods", "toy", "--json", str(swept)]) == 0
    with pytest.raises(SystemExit):
        cli.main(["--size", "tiny", "--tasks", "pointer", "--methods", "toy", "--lrs", "1e-3", "--add", "--json", str(swept)])
    assert "other settings" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--tasks", "pointer", "--methods", "toy", "--lrs", "1e-3", "1e-3"])
    assert "--lrs: Size.lrs must be distinct" in capsys.readouterr().err


def test_per_depth_accuracy_and_picked_cells_read_stored_runs():
    from lib.experiments.harness.graph_reach import learned_search
    from lib.experiments.harness.summary import by_depth, format_cells, mean_by_depth, pick_cells

    def run(seed, d2, ood=0.5):
        return CellResult("pointer_unseen", "toy", seed, 1e-3, 0.7, 0.7, 1, 1.0, 0.0,
                          {"by_hops": {1: 1.0, 2: d2, 3: 0.5}, "ood_by_hops": {4: ood}}, role="final")
    runs = [run(0, 0.9, 0.7), run(1, 0.5)]
    assert by_depth(runs[0]) == {1: 1.0, 2: 0.9, 3: 0.5, 4: 0.7}  # trained depths, then the never-trained ones
    assert mean_by_depth(runs) == pytest.approx({1: 1.0, 2: 0.7, 3: 0.5, 4: 0.6})
    assert [learned_search(r) for r in runs] == [True, False]
    with pytest.raises(ValueError, match="non-empty"):
        mean_by_depth([])
    with pytest.raises(ValueError, match="by_hops"):
        by_depth(replace(runs[0], extra={}))
    with pytest.raises(ValueError, match="every run must have"):
        mean_by_depth([runs[0], replace(runs[1], extra={"by_hops": {1: 1.0}})])
    summary = {"pointer_unseen": {"baseline": {"mean": 0.5, "ood_mean": 0.4, "gate": {"passed": 4, "of": 5}}, "toy": {"mean": 0.7}}}
    cells = pick_cells(summary, "pointer_unseen", ("toy", "absent", "baseline"))
    assert list(cells) == ["toy", "baseline"]  # the order asked, an arm not stored left out
    text = format_cells(cells, "title")
    assert text.splitlines() == ["title", f"  {'toy':<17}  0.700{'':>9}   gate -", f"  {'baseline':<17}  0.500    0.400   gate 4/5"]
    with pytest.raises(ValueError, match="not in the summary"):
        pick_cells(summary, "graph_reach_unseen", ("toy",))
