"""The notebooks are tested with other training seeds than their stored outputs: the proxy for another CPU.

A training run on another CPU is a training run with other rounding: its last digits differ, and a
claim that held only by the luck of one run may not hold there. One machine cannot borrow another
CPU, but it can change the seeds: ``COURSE_SEED=10`` moves every training run of a notebook to seeds
10, 11, 12 (:func:`lib.core.training.course_seeds`) and leaves data, untrained models and evaluation
sets as they were. ``make test`` runs every notebook under nbval that way, in strict mode, so two
things are checked on every run:

- every claim holds on seeds other than the ones it was written on (a false one raises), and
- every output nbval compares is the same as the stored one made with seeds 0, 1, 2, which proves
  by running what tests/test_notebook_outputs.py checks by reading: no compared output holds a
  number from training.

The second set of other seeds (``COURSE_SEED=20``) runs in tests/test_learner_copies.py, where the
learner copies run to the end anyway: there every claim must print ✓.

This file checks that the wiring is what the docstring says.
"""

from __future__ import annotations

import re
import subprocess

import nbformat

from lib.core.paths import REPO_ROOT
from lib.core.training import course_seeds
from test_learner_copies import LEARNER_COPY_SEED  # tests/ is on the path (no package)
from test_notebook_outputs import NOTEBOOKS, trained_cells

NBVAL_SEED = "10"


def notebooks_that_train() -> list[str]:
    out = []
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        if any(why.startswith("calls ") for why in trained_cells(nb).values()):
            out.append(path.name)
    return out


def test_the_notebooks_that_train_are_the_research_half():
    assert [n[:3] for n in notebooks_that_train()] == ["04_", "04b", "05_", "06_", "07_", "08_", "09_", "10_"]


def test_make_test_runs_the_notebooks_with_other_seeds_and_make_execute_does_not():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(rf"^test test-notebooks: export COURSE_SEED := {NBVAL_SEED}$", makefile, re.M)
    env = subprocess.run(["make", "-n", "-p", "test"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    assert re.search(rf"^test: COURSE_SEED := {NBVAL_SEED}$", env, re.M), "make test must export COURSE_SEED"
    assert re.search(r"^execute: COURSE_SEED :=\s*$", env, re.M), "stored outputs are seed 0's, whatever the shell says"
    assert not re.search(r"^lab: COURSE_SEED", env, re.M), "a learner's lab runs the notebooks as stored"


def test_the_three_sets_of_training_seeds_do_not_overlap(monkeypatch):
    sets = []
    for value in (None, NBVAL_SEED, LEARNER_COPY_SEED):
        if value is None:
            monkeypatch.delenv("COURSE_SEED", raising=False)
        else:
            monkeypatch.setenv("COURSE_SEED", value)
        sets.append(set(course_seeds(5)))  # FULL_RUN's largest: 5 seeds
    assert sets[0] == {0, 1, 2, 3, 4}
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
