"""What a results file records about the code that made it: a batch's own kept runs are its output,
so changing them does not mark the code as changed, while any other tracked change does."""

from __future__ import annotations

import subprocess

from lib.core.provenance import uncommitted_changes


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_a_changed_kept_runs_file_is_not_a_change_of_the_code(tmp_path):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@t")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.py").write_text("x = 1\n")
    runs = tmp_path / "data" / "results" / "f.json.runs.jsonl"
    runs.parent.mkdir(parents=True)
    runs.write_text("{}\n")
    (tmp_path / "data" / "results" / "f.json").write_text("{}\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "start")
    assert not uncommitted_changes(tmp_path)
    runs.write_text("{}\n{}\n")  # a batch kept one more run
    (tmp_path / "new.txt").write_text("untracked\n")  # untracked files never counted
    assert not uncommitted_changes(tmp_path)
    (tmp_path / "data" / "results" / "f.json").write_text("{\"x\": 1}\n")  # any other tracked change does count
    assert uncommitted_changes(tmp_path)
    _git(tmp_path, "checkout", "--", "data/results/f.json")
    (tmp_path / "lib" / "a.py").write_text("x = 2\n")
    assert uncommitted_changes(tmp_path)


def test_where_git_cannot_say_the_code_is_not_called_clean(tmp_path):
    assert uncommitted_changes(tmp_path / "no-repository-here")
