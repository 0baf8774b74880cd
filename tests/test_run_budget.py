"""What regenerating the stored results costs (lib.experiments.run_budget): read from the files'
own seconds and wall times, never from a clock here."""

from __future__ import annotations

import json

import pytest

from lib.experiments import run_budget


def _write(tmp_path, name, runs=None, wall=100.0, added=(), jobs=2):
    prov = {"wall_seconds": wall, "jobs": jobs, "added": [{"wall_seconds": w, "jobs": jobs} for w in added]}
    body = {"provenance": prov}
    if runs is not None:
        body["runs"] = [{"role": role, "seconds": s} for role, s in runs]
    (tmp_path / name).write_text(json.dumps(body))
    return name


def test_cpu_minutes_come_from_the_runs_and_the_bound_from_the_jobs(tmp_path):
    a = _write(tmp_path, "a.json", [("sweep", 600.0), ("final", 1200.0), ("final", 600.0)], wall=900.0, added=(300.0,))
    b = _write(tmp_path, "b.json", None, wall=600.0)  # no runs: its batch's wall time times its jobs
    cost = run_budget.whole_run_cost((a, b), jobs=2, budget_minutes=30, results_dir=tmp_path)
    assert cost["files"][a] == {"sweep_cpu_min": 10.0, "final_cpu_min": 30.0, "batch_wall_min": 20.0, "from_runs": True}
    assert cost["files"][b] == {"sweep_cpu_min": 0.0, "final_cpu_min": 20.0, "batch_wall_min": 10.0, "from_runs": False}
    assert cost["wall_lower_bound_min"] == 30.0 and cost["finals_wall_lower_bound_min"] == 25.0
    assert cost["fits"] and cost["finals_fit"] and cost["speedup_needed"] == 1.0
    tight = run_budget.whole_run_cost((a, b), jobs=2, budget_minutes=29, results_dir=tmp_path)
    assert not tight["fits"] and tight["finals_fit"]
    one_job = run_budget.whole_run_cost((a, b), jobs=1, budget_minutes=30, results_dir=tmp_path)
    assert one_job["wall_lower_bound_min"] == 60.0 and not one_job["finals_fit"]
    assert "does not fit" in run_budget.format_cost(one_job) and "at least 2.0x cheaper" in run_budget.format_cost(one_job)
    assert "fits" in run_budget.format_cost(cost) and "cheaper" not in run_budget.format_cost(cost)
    assert "* no per-run seconds" in run_budget.format_cost(cost)
    with pytest.raises(ValueError, match="jobs must be at most 2"):  # the runs were timed beside one other job
        run_budget.whole_run_cost((a, b), jobs=3, results_dir=tmp_path)


def test_one_long_run_bounds_the_wall_time_however_many_jobs(tmp_path):
    a = _write(tmp_path, "a.json", [("final", 3000.0), ("final", 60.0)])
    cost = run_budget.whole_run_cost((a,), jobs=2, budget_minutes=40, results_dir=tmp_path)
    assert cost["wall_lower_bound_min"] == 50.0 and not cost["fits"]  # not (3000 + 60) / 2 / 60 = 25.5


def test_bad_inputs_are_refused_with_the_argument_named(tmp_path):
    good = _write(tmp_path, "good.json", [("final", 60.0)])
    for kwargs, match in (({"files": ()}, "files"), ({"files": ("missing.json",)}, "files"), ({"jobs": 0}, "jobs"),
                          ({"budget_minutes": 0}, "budget_minutes"), ({"budget_minutes": True}, "budget_minutes")):
        with pytest.raises(ValueError, match=match):
            run_budget.whole_run_cost(**{"files": (good,), "results_dir": tmp_path, **kwargs})
    for name, runs in (("no_role.json", [("tuning", 60.0)]), ("nan.json", [("final", float("nan"))]),
                       ("negative.json", [("final", -1.0)]), ("bool.json", [("final", True)])):
        _write(tmp_path, name, runs)
        with pytest.raises(ValueError, match="role"):
            run_budget.whole_run_cost((name,), results_dir=tmp_path)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json"):
        run_budget.whole_run_cost(("broken.json",), results_dir=tmp_path)
    with pytest.raises(ValueError, match="results_dir"):
        run_budget.whole_run_cost((good,), results_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="cost"):
        run_budget.format_cost({})
    for bad in ({"runs": []}, {"provenance": {"wall_seconds": 1.0, "added": [{"jobs": 2}]}}):
        with pytest.raises(ValueError, match="provenance"):
            run_budget.batch_wall_seconds(bad)


def test_the_stored_whole_run_reads():
    # Its numbers are claimed where they are read (notebook 08); here only that every file is there and reads.
    cost = run_budget.whole_run_cost()
    assert set(cost["files"]) == set(run_budget.WHOLE_RUN)
    assert all(f["final_cpu_min"] > 0 for f in cost["files"].values())


def test_late_drop_says_whether_the_loss_was_still_falling():
    flat = [3.0, 2.0, 1.5] + [1.0, 1.01, 0.99, 1.0] * 3 + [1.0]  # 16 points: stretches of 3, level
    drop, error = run_budget.late_drop(flat)
    assert abs(drop) < 1e-9 or abs(drop) < 2 * error
    falling = [3.0 - 0.1 * i for i in range(20)]  # still falling at the same pace: last fifth 0.4 below the one before
    drop, error = run_budget.late_drop(falling)
    assert abs(drop - 0.4) < 1e-9 and drop > 2 * error
    noisy_plateau = [1.0 + (0.05 if i % 2 else -0.05) for i in range(20)]
    drop, error = run_budget.late_drop(noisy_plateau)
    assert drop <= 2 * error  # noise is not learning
    for bad in ([1.0, 2.0, 3.0], "loss", [1.0] * 9 + [float("nan")]):
        with pytest.raises(ValueError, match="curve"):
            run_budget.late_drop(bad)
    for bad in (0, 0.6, True):
        with pytest.raises(ValueError, match="fifth"):
            run_budget.late_drop(falling, bad)
    result = {"runs": [{"role": "final", "task": "t", "method": "m", "extra": {"loss_curve": json.dumps(falling)}},
                       {"role": "sweep", "task": "t", "method": "m", "extra": {"loss_curve": falling}},
                       {"role": "final", "task": "t", "method": "m", "extra": {"loss_curve": []}}]}  # diverged: none stored
    assert list(run_budget.late_drops_by_arm(result)) == ["t/m"] and len(run_budget.late_drops_by_arm(result)["t/m"]) == 1
    with pytest.raises(ValueError, match="result"):
        run_budget.late_drops_by_arm("nonsense")


def test_late_drops_read_a_results_file_as_the_harness_loads_it():
    from lib.core.paths import REPO_ROOT
    from lib.experiments.harness import load_results

    path = REPO_ROOT / "data" / "results" / "harness_unseen.json"
    loaded, raw = load_results(path), json.loads(path.read_text())
    assert run_budget.late_drops_by_arm(loaded) == run_budget.late_drops_by_arm(raw)
    assert len(run_budget.late_drops_by_arm(loaded)["path_star_unseen/mtp"]) == 5
