"""The stored until-marked experiment (notebook 09, `data/results/dense_adaptive_until.json`) comes
from the code as it stands: its settings are the module's constants, its reported seeds exclude the
tuning seed, every arm is scored at every lookup count, and the counts the notebook reads are what
:func:`lib.experiments.adaptive_until.count_by_hops` computes from it. No trained digit is compared
with a rerun: a 2,000-step run does not repeat bitwise on another CPU."""

from __future__ import annotations

import json
import subprocess

import pytest

from lib.core.paths import REPO_ROOT
from lib.experiments import adaptive_until as until

UNTIL_PATH = REPO_ROOT / "data" / "results" / "dense_adaptive_until.json"


@pytest.fixture(scope="module")
def stored():
    return json.loads(UNTIL_PATH.read_text())


def test_the_file_is_the_module_s_experiment(stored):
    s = stored["settings"]
    assert s["seeds"] == list(until.SEEDS) and 0 not in s["seeds"]  # seed 0 chose the rate: never reported
    assert (s["steps"], s["lr"], s["max_dense"], s["threshold"]) == (until.STEPS, until.LR, until.MAX_DENSE, until.THRESHOLD)
    assert s["budgets"] == list(until.BUDGETS) and s["teacher_budgets"] == until.TEACHER_BUDGETS
    assert (s["task"], s["n_nodes"], s["n_marked"]) == ("pointer_until", until.TASK.n_nodes, until.TASK.n_marked)
    assert s["trained_hops"] == list(until.TASK.id_hops) and s["ood_hops"] == list(until.TASK.ood_hops)
    prov = stored["provenance"]
    assert prov["command"].startswith("python -m lib.experiments.adaptive_until") and prov["wall_seconds"] > 0
    assert prov["uncommitted_changes"] is False
    known = subprocess.run(["git", "cat-file", "-t", prov["commit"]], cwd=REPO_ROOT, capture_output=True, text=True)
    assert known.stdout.strip() == "commit"


def test_every_arm_is_scored_at_every_lookup_count(stored):
    s = stored["settings"]
    lookups = [str(h) for h in s["trained_hops"] + s["ood_hops"]]
    assert sorted(stored["seeds"]) == sorted(str(x) for x in s["seeds"])
    for seed in stored["seeds"].values():
        for arm in ("adaptive", "shuffled"):
            assert sorted(seed[arm]) == lookups
            for h in lookups:
                r = seed[arm][h]
                assert len(r["dense_hist"]) == s["max_dense"] + 1 and sum(r["dense_hist"]) == pytest.approx(1.0)
                assert r["passes"] == pytest.approx(r["dense"] + 1) and 0.0 <= r["accuracy"] <= 1.0
        assert sorted(seed["fixed"]) == [str(b) for b in s["budgets"]]
        assert all(sorted(seed["fixed"][b]) == lookups for b in seed["fixed"])
        assert sorted(seed["useful"]) == [str(h) for h in s["trained_hops"]]  # the teacher scored training counts only
        assert all(0.0 <= v <= s["max_dense"] for v in seed["useful"].values())


def test_count_by_hops_reads_the_histograms_the_file_stores(stored):
    table = until.count_by_hops(stored)
    for seed, row in table["per_seed"].items():
        for h, w in row["written"].items():
            assert w == pytest.approx(stored["seeds"][str(seed)]["adaptive"][str(h)]["dense"], abs=1e-6)
    assert table["n"] == len(until.SEEDS)
