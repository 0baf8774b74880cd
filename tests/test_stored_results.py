"""The stored medium results come from this code, checked in ways that hold on any CPU.

A long training run does not reproduce bitwise on another CPU (lib/experiments/stored_checks.py says why and
what was measured), so no test here asks for the stored number's last digits. Instead:
- the opening losses of stored runs, rerun, must match the ones stored beside them (fast); a run
  with another learning rate must not (the check can fail);
- (slow) whole reruns must land inside their cell's stored range, widened by a stated margin.

Also checks what the README and notebook 08 read off the file: its schema, its provenance, and
that every task's baseline passed its reference line (otherwise no verdict in it may be quoted).
"""

from __future__ import annotations

import pytest
import torch

from lib.experiments.harness import MEDIUM, RUNNERS, final_runs, load_results, summarize
from lib.core.paths import REPO_ROOT
from lib.experiments.stored_checks import OPENING_STEPS, OPENING_TOLERANCE, opening_mismatch, rerun_margin, stored_range
from lib.core.training import make_reproducible

MEDIUM_PATH = REPO_ROOT / "data" / "results" / "harness_medium.json"
RUN_KEYS = {"task", "method", "seed", "lr", "value", "n_params", "forward_passes_per_step", "seconds"}


@pytest.fixture(scope="module")
def medium():
    return load_results(MEDIUM_PATH)


@pytest.fixture
def one_thread():
    # the medium file was made by worker processes of one thread each (provenance: threads_per_job)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    make_reproducible(seed=0, threads=1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def test_medium_file_has_provenance_references_and_three_seeds_per_cell(medium):
    prov = medium["provenance"]
    for key in ("commit", "command", "torch", "threads_per_job", "date", "wall_seconds", "fingerprints"):
        assert key in prov, f"provenance lacks {key}"
    # the command as it was typed at the file's commit (the harness was lib/harness.py then)
    assert prov["command"].startswith(("python -m lib.experiments.harness --size medium", "python -m lib.harness --size medium"))
    assert medium["size"] == MEDIUM, "the stored size is the code's medium size"
    refs = medium["references"]
    assert "bigram" in refs["shakespeare"] and "one_over_degree" in refs["path_star"] and "chance" in refs["pointer"]
    cells = {}
    for r in medium["runs"]:
        assert RUN_KEYS <= set(vars(r)), f"run lacks {RUN_KEYS - set(vars(r))}"
        cells.setdefault((r.task, r.method), set())
    for task, method in cells:
        seeds = [r.seed for r in final_runs(medium["runs"], task, method)]
        assert len(seeds) >= 3 and len(set(seeds)) == len(seeds), f"{task}/{method}: {seeds}"


def test_every_reported_run_carries_its_opening_losses_and_the_file_says_how_they_are_compared(medium):
    fp = medium["provenance"]["fingerprints"]
    assert fp["steps"] == OPENING_STEPS and fp["tolerance"] == OPENING_TOLERANCE
    assert "opening_losses" in fp["compares"] and "standard deviation" in fp["compares"]
    for r in medium["runs"]:
        if r.role == "final":
            losses = r.extra.get("opening_losses")
            assert losses and len(losses) == OPENING_STEPS, f"{r.task}/{r.method}/seed {r.seed}"
            assert all(0 < x < 20 for x in losses)


def test_medium_baselines_are_past_their_references(medium):
    summary = summarize(medium["runs"], medium["references"])
    for task in ("shakespeare", "pointer", "path_star"):
        assert summary[task]["_reference"]["passed"], summary[task]["_reference"]["why"]
    refs = medium["references"]
    assert summary["shakespeare"]["baseline"]["mean"] < refs["shakespeare"]["bigram"]
    assert summary["path_star"]["baseline"]["mean"] >= 0.9 * refs["path_star"]["one_over_degree"]
    assert summary["path_star"]["reversed"]["mean"] >= 0.9


# One run per task's code path (pointer: the headline dense arm and the adaptive arm, whose whole
# rerun is the least stable cell of the file).
RERUN = [("pointer", "dense", 1), ("path_star", "baseline", 1), ("shakespeare", "baseline", 1), ("pointer", "dense_adaptive", 1)]


def _stored(medium, task, method, seed):
    (run,) = [r for r in final_runs(medium["runs"], task, method) if r.seed == seed]
    return run


@pytest.mark.parametrize("task,method,seed", RERUN)
def test_the_opening_losses_of_a_stored_run_come_back(medium, one_thread, task, method, seed):
    worst, got = opening_mismatch(_stored(medium, task, method, seed), MEDIUM)
    assert worst < OPENING_TOLERANCE, f"{task}/{method}/seed {seed}: opening losses moved by {worst:.2e}"


def test_the_opening_losses_tell_another_learning_rate_apart(medium, one_thread):
    from dataclasses import replace

    stored = _stored(medium, "path_star", "baseline", 1)
    other = replace(stored, lr=stored.lr / 3)
    worst, _ = opening_mismatch(other, MEDIUM)
    assert worst > 10 * OPENING_TOLERANCE, "a run with another learning rate must not pass as the stored one"
    with pytest.raises(ValueError, match="no opening_losses"):
        opening_mismatch(replace(stored, extra={}), MEDIUM)


def test_the_rerun_margin_is_the_larger_of_twice_the_effect_and_the_spread():
    assert rerun_margin([1.0, 1.0, 1.0], 0.02) == pytest.approx(0.04)
    assert rerun_margin([0.0, 1.0], 0.02) == pytest.approx(0.5 ** 0.5)
    with pytest.raises(ValueError, match="at least two"):
        rerun_margin([1.0], 0.02)
    with pytest.raises(ValueError, match="min_effect"):
        rerun_margin([1.0, 2.0], -1.0)


@pytest.mark.slow
@pytest.mark.parametrize("task,method,seed", RERUN)
def test_a_whole_rerun_lands_in_its_cells_stored_range(medium, one_thread, task, method, seed):
    stored = _stored(medium, task, method, seed)
    again = RUNNERS[task](method, seed, MEDIUM, "cpu", lr=stored.lr)
    low, high = stored_range(medium["runs"], task, method)
    assert low <= again.value <= high, f"{task}/{method}/seed {seed}: {again.value:.4f} outside [{low:.4f}, {high:.4f}]"
    assert again.n_params == stored.n_params and again.forward_passes_per_step == stored.forward_passes_per_step


@pytest.mark.slow
def test_one_run_of_every_stored_cell_opens_as_stored(medium, one_thread):
    cells = sorted({(r.task, r.method) for r in medium["runs"]})
    moved = {}
    for task, method in cells:
        worst, _ = opening_mismatch(final_runs(medium["runs"], task, method)[1], MEDIUM)
        if worst >= OPENING_TOLERANCE:
            moved[f"{task}/{method}"] = worst
    assert not moved, f"opening losses moved: {moved}"


def test_stored_checks_refuse_bad_inputs(medium):
    from lib.experiments.stored_checks import opening_losses

    with pytest.raises(ValueError, match="task"):
        stored_range(medium["runs"], "chess", "baseline")
    with pytest.raises(ValueError, match="stored seeds"):
        stored_range(medium["runs"], "pointer", "no_such_method")
    with pytest.raises(ValueError, match="task"):
        opening_losses("chess", "baseline", 0, MEDIUM, 1e-3)
    with pytest.raises(ValueError, match="steps"):
        opening_losses("path_star", "baseline", 0, MEDIUM, 1e-3, steps=0)
    with pytest.raises(TypeError, match="stored"):
        opening_mismatch("pointer/dense", MEDIUM)
    low, high = stored_range(medium["runs"], "pointer", "dense")
    assert low == pytest.approx(1.0 - 0.04) and high == pytest.approx(1.04)  # three seeds at 1.0: the margin is 2 x 0.02
