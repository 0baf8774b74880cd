"""``python -m lib.experiments.bench --course``: the whole-course time budget.

The real notebooks are not run here (``make bench-course`` does that); a temporary notebook folder
and a fake per-notebook runner check the argument parsing, the JSON shape and the exit code, and
one slow test runs real nbval on two tiny notebooks (one passing, one whose stored output is wrong).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import lib.experiments.bench as bench
from lib.core.paths import REPO_ROOT


def tiny_notebook(path: Path, stored_output: str) -> Path:
    """A one-cell notebook printing 2, whose stored output is ``stored_output``."""
    cell = nbformat.v4.new_code_cell("print(1 + 1)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored_output)]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def course_dir(tmp_path: Path) -> Path:
    tiny_notebook(tmp_path / "01_good.ipynb", "2\n")
    tiny_notebook(tmp_path / "02_bad.ipynb", "3\n")
    tiny_notebook(tmp_path / "scratch.ipynb", "2\n")  # not a course notebook: no leading digit
    (tmp_path / "exercises").mkdir()
    tiny_notebook(tmp_path / "exercises" / "01_good.ipynb", "2\n")  # learner copies are not run
    return tmp_path


def fake_runner(path: Path) -> tuple[bool, float, str]:
    return (path.stem != "02_bad", {"01_good": 1.234, "02_bad": 2.0}[path.stem], f"output of {path.name}")


def test_makefile_runs_notebooks_with_the_same_nbval_flags():
    makefile = (REPO_ROOT / "Makefile").read_text()
    flags = re.search(r"^NBVAL_FLAGS\s*:=\s*(.+)$", makefile, re.M).group(1)
    assert tuple(shlex.split(flags)) == bench.NBVAL_FLAGS
    assert re.search(r"^bench-course:.*\n\t.*-m lib\.experiments\.bench --course", makefile, re.M)
    command = bench.nbval_command("notebooks/01_tokenization.ipynb")
    assert command[:3] == [sys.executable, "-m", "pytest"] and Path(command[3]).is_absolute()
    assert "no:cacheprovider" in command


def test_course_notebooks_are_the_numbered_ones_in_order(course_dir):
    assert [p.name for p in bench.course_notebooks(course_dir)] == ["01_good.ipynb", "02_bad.ipynb"]
    with pytest.raises(ValueError, match="not a directory"):
        bench.course_notebooks(course_dir / "missing")


def test_run_course_times_each_notebook_and_reports_failures(course_dir):
    log = []

    class Log:
        def write(self, text):
            log.append(text)

        def flush(self):
            pass

    result = bench.run_course(course_dir, runner=fake_runner, log=Log())
    assert result == {
        "notebooks": {"01_good": 1.23, "02_bad": 2.0},
        "total_s": 3.23,
        "passed": False,
        "failed": ["02_bad"],
    }
    text = "".join(log)
    assert "01_good: passed in 1.2 s" in text and "02_bad: FAILED" in text and "output of 02_bad" in text
    table = bench.format_course(result)
    assert re.search(r"02_bad\s+2\.0\s+FAILED", table) and re.search(r"total\s+3\.2\s+FAILED", table)
    assert json.loads(json.dumps(result)) == result  # plain JSON types only


def test_run_course_rejects_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="no notebooks"):
        bench.run_course(tmp_path, runner=fake_runner)
    with pytest.raises(TypeError, match="callable"):
        bench.run_course(tmp_path, runner="pytest")
    with pytest.raises(ValueError, match="timeout_s"):
        bench.run_notebook_check(tmp_path / "01_x.ipynb", timeout_s=0)


def test_main_course_json_and_exit_code(course_dir, monkeypatch, capsys):
    monkeypatch.setattr(bench, "run_notebook_check", fake_runner)
    assert bench.main(["--course", "--json", "--notebooks-dir", str(course_dir)]) == 1
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert set(out) == {"notebooks", "total_s", "passed", "failed"}
    assert list(out["notebooks"]) == ["01_good", "02_bad"] and out["passed"] is False
    assert "02_bad: FAILED" in captured.err  # progress goes to stderr, stdout stays pure JSON

    (course_dir / "02_bad.ipynb").unlink()
    assert bench.main(["--course", "--notebooks-dir", str(course_dir)]) == 0
    table = capsys.readouterr().out
    assert "01_good" in table and re.search(r"total\s+1\.2\s+passed", table)


@pytest.mark.parametrize(
    "argv",
    [["--notebooks-dir", "notebooks"], ["--course", "--notebooks-dir", "/nonexistent/dir"], ["--fast"]],
)
def test_main_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2


@pytest.mark.slow
def test_course_command_runs_nbval_for_real(course_dir):
    """Two tiny notebooks through real nbval, one pytest process each (about 10 s here)."""
    proc = subprocess.run(
        [sys.executable, "-m", "lib.experiments.bench", "--course", "--json", "--notebooks-dir", str(course_dir)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["passed"] is False and out["failed"] == ["02_bad"], proc.stderr
    assert all(0 < s < 120 for s in out["notebooks"].values())
    assert out["total_s"] == pytest.approx(sum(out["notebooks"].values()), abs=0.05)


def test_makefile_and_course_bench_pin_the_cpu_code_path():
    """Stored outputs are bitwise reproducible only on one CPU code path: every command that runs
    the notebooks pins it (measured: unpinned, an AVX-512 machine moved notebook 04's losses)."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    for line in ("export ATEN_CPU_CAPABILITY := avx2", "export MKL_CBWR := AVX2", "export ONEDNN_MAX_CPU_ISA := AVX2"):
        assert line in makefile, line
    exported = dict(re.findall(r"^export (\w+) := (\S+)$", makefile, flags=re.M))
    for name in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA"):
        assert name in bench.PINNED_ENV
    assert {k: exported[k] for k in bench.PINNED_ENV} == bench.PINNED_ENV, "lib.experiments.bench pins what the Makefile exports"


def test_run_notebook_check_runs_nbval_with_the_pinned_environment(monkeypatch):
    seen = {}

    class FakeProcess:
        pid, returncode = 12345, 0

        def __init__(self, command, **kwargs):
            seen.update(command=command, env=kwargs["env"], cwd=kwargs["cwd"])

        def communicate(self, timeout=None):
            return "1 passed", None

    for name in bench.PINNED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a caller's own setting is kept
    monkeypatch.setattr(bench.subprocess, "Popen", FakeProcess)
    passed, seconds, output = bench.run_notebook_check("notebooks/01_tokenization.ipynb")
    assert passed and seconds >= 0 and output == "1 passed"
    assert seen["env"]["OMP_NUM_THREADS"] == "1"
    assert all(seen["env"][k] == v for k, v in bench.PINNED_ENV.items() if k != "OMP_NUM_THREADS")
    assert "--nbval" in seen["command"] and seen["cwd"] == REPO_ROOT
