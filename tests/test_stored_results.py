"""The stored medium results provably come from this code: one stored run per task is run again
here, under the same thread count and CPU pins, and must give the stored number.

Also checks what the README and notebook 08 read off the file: its schema, its provenance, and
that every task's baseline passed its reference line (otherwise no verdict in it may be quoted).
"""

from __future__ import annotations

import pytest
import torch

from lib.harness import MEDIUM, RUNNERS, final_runs, load_results, summarize
from lib.paths import REPO_ROOT

MEDIUM_PATH = REPO_ROOT / "data" / "results" / "harness_medium.json"
RUN_KEYS = {"task", "method", "seed", "lr", "value", "n_params", "forward_passes_per_step", "seconds"}


@pytest.fixture(scope="module")
def medium():
    return load_results(MEDIUM_PATH)


def test_medium_file_has_provenance_references_and_three_seeds_per_cell(medium):
    prov = medium["provenance"]
    for key in ("commit", "command", "torch", "threads_per_job", "date", "wall_seconds"):
        assert key in prov, f"provenance lacks {key}"
    assert prov["command"].startswith("python -m lib.harness --size medium")
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


def test_medium_baselines_are_past_their_references(medium):
    summary = summarize(medium["runs"], medium["references"])
    for task in ("shakespeare", "pointer", "path_star"):
        assert summary[task]["_reference"]["passed"], summary[task]["_reference"]["why"]
    refs = medium["references"]
    assert summary["shakespeare"]["baseline"]["mean"] < refs["shakespeare"]["bigram"]
    assert summary["path_star"]["baseline"]["mean"] >= 0.9 * refs["path_star"]["one_over_degree"]
    assert summary["path_star"]["reversed"]["mean"] >= 0.9


# The cheapest run that tests each task's code path end to end (pointer: the headline dense arm).
RERUN = [("pointer", "dense", 1), ("path_star", "baseline", 1), ("shakespeare", "baseline", 1)]


@pytest.mark.slow
@pytest.mark.parametrize("task,method,seed", RERUN)
def test_a_stored_run_is_reproduced_by_the_code(medium, task, method, seed):
    (stored,) = [r for r in final_runs(medium["runs"], task, method) if r.seed == seed]
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    from lib.training import make_reproducible

    try:
        # The medium file was made by worker processes of one thread each (provenance: threads_per_job).
        make_reproducible(seed=0, threads=medium["provenance"]["threads_per_job"])
        again = RUNNERS[task](method, seed, MEDIUM, "cpu", lr=stored.lr)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
    assert again.value == pytest.approx(stored.value, abs=1e-3), f"{task}/{method}/seed {seed}"
    assert again.n_params == stored.n_params and again.forward_passes_per_step == stored.forward_passes_per_step
