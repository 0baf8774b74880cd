"""The stored until-marked experiment (notebook 09, `data/results/dense_adaptive_until.json`) comes
from the code as it stands: its settings are the module's constants, its reported seeds exclude the
tuning seed, every arm is scored at every lookup count, and the counts the notebook reads are what
:func:`lib.experiments.adaptive_until.count_by_hops` computes from it. No trained digit is compared
with a rerun on this machine: a 2,000-step run does not repeat bitwise on another CPU. The one
comparison of trained digits is between two stored files, made on the same kind of machine."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess

import pytest

from lib.core.paths import REPO_ROOT
from lib.experiments import adaptive_until as until

UNTIL_PATH = REPO_ROOT / "data" / "results" / "dense_adaptive_until.json"
# What the stored run executed: the experiment, the method, the task and what they stand on.
RUN_MODULES = ("lib/experiments/adaptive_until.py", "lib/methods/dense_emit.py", "lib/methods/dense.py",
               "lib/tasks/pointer_until.py", "lib/tasks/pointer_task.py", "lib/tasks/pointer_splits.py",
               "lib/tasks/splits.py", "lib/core/model.py", "lib/core/training.py")


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
    assert s.get("teacher_budgets", "question") == until.TEACHER_BUDGETS
    assert s["teacher_start"] == list(until.TEACHER_START)  # the teacher starts at one budget, recorded


# What reads the stored file without making any of it: changing these cannot move a stored number
# (each is tested on its own in tests/test_dense_emit.py). "rises" is rise_by_seed's first name.
READERS = {"lib/experiments/adaptive_until.py": {
    "written_mean_and_error", "count_by_hops", "teacher_outcomes", "control_comparison", "_check_result", "_get",
    "one_lookup_accuracy", "rise_by_seed", "rises", "TAUGHT_WITHIN", "STUCK_WITHIN", "COUNT_MIN_EFFECT", "ACCURACY_MIN_EFFECT", "__all__"}}


def _code_only(source: str, leave_out: frozenset[str] | set[str] = frozenset()) -> str:
    """The module's syntax tree without docstrings (comments never reach it) and without the
    top-level functions and names in ``leave_out``: what runs."""
    tree = ast.parse(source)
    tree.body = [n for n in tree.body if not (
        isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in leave_out
        or isinstance(n, ast.Assign) and all(isinstance(t, ast.Name) and t.id in leave_out for t in n.targets))]
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def test_the_modules_it_ran_are_unchanged_since_it_was_made(stored):
    # A 2,000-step run does not repeat bitwise on another CPU, so instead of a rerun: the code that
    # made the file is the code here, docstrings and comments aside. A change to one of these
    # modules must regenerate the file or show here why it cannot move it.
    git = shutil.which("git")
    if git is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("no git checkout to compare with")
    commit = stored["provenance"]["commit"]
    if subprocess.run([git, "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO_ROOT, capture_output=True).returncode:
        pytest.skip(f"commit {commit[:7]} is not in this clone's history (a shallow clone)")
    changed = []
    for path in RUN_MODULES:
        then = subprocess.run([git, "show", f"{commit}:{path}"], cwd=REPO_ROOT, capture_output=True, text=True)
        assert then.returncode == 0, f"{path} did not exist at {commit[:7]}"
        leave_out = READERS.get(path, set())
        if _code_only(then.stdout, leave_out) != _code_only((REPO_ROOT / path).read_text(), leave_out):
            changed.append(path)
    assert not changed, f"changed since {commit[:7]} made {UNTIL_PATH.name}: {changed}"


def test_the_code_check_sees_a_change_of_code_and_not_of_a_docstring():
    base = 'def f(x):\n    """Twice x."""\n    return 2 * x  # doubled\n'
    assert _code_only(base) == _code_only(base.replace("Twice x.", "Two times x.").replace("# doubled", ""))
    assert _code_only(base) != _code_only(base.replace("2 * x", "3 * x"))
    two = base + "LIMIT = 3\n\ndef g(y):\n    return y\n"
    assert _code_only(two, {"g", "LIMIT"}) == _code_only(base) != _code_only(two, {"g"})  # readers left out, only they


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


PER_BATCH_COMMIT = "d457b52"  # stored the ten-seed file whose teacher drew budgets from its first step (made at 45fef2a)


def test_the_fixed_budgets_repeat_the_file_made_before_the_teacher_started_at_one_budget(stored):
    # The teacher's start changes only the adaptive model and its control; each fixed budget is its
    # own model, seeded alike. Notebook 09 says so; on another CPU a rerun need not repeat it, but
    # these are the stored files, both made on the same kind of machine.
    git = shutil.which("git")
    if git is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("no git checkout to compare with")
    then = subprocess.run([git, "show", f"{PER_BATCH_COMMIT}:data/results/dense_adaptive_until.json"], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    if then.returncode:
        pytest.skip(f"commit {PER_BATCH_COMMIT} is not in this clone's history (a shallow clone)")
    before = json.loads(then.stdout)
    assert before["provenance"]["commit"].startswith("45fef2a") and "teacher_start" not in before["settings"]
    same_machine = ("torch", "platform", "cpu_pins", "threads_per_job", "jobs")
    assert {k: before["provenance"].get(k) for k in same_machine} == {k: stored["provenance"].get(k) for k in same_machine}, \
        "the two files were made on different machines or settings: their fixed budgets need not agree"
    assert {k: v for k, v in before["settings"].items() if k != "teacher_start"} == \
        {k: v for k, v in stored["settings"].items() if k != "teacher_start"}
    for seed in map(str, until.SEEDS):
        assert stored["seeds"][seed]["fixed"] == before["seeds"][seed]["fixed"], f"seed {seed}'s fixed budgets differ"
    changed = [s for s in map(str, until.SEEDS) if stored["seeds"][s]["useful"] != before["seeds"][s]["useful"]]
    assert changed, "the teachers did not change: the comparison could not tell the files apart"
