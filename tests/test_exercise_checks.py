"""Every exercise checker, run the way a notebook runs it, passes the solution and fails the stub.

For each solved notebook ``notebooks/[0-9]*.ipynb`` and each ``# BEGIN SOLUTION`` block in it, the
notebook's first code cell (imports and set-up) and then the exercise's cell are executed in a
fresh namespace, outside Jupyter (matplotlib's Agg backend, the working directory ``notebooks/`` as
in Jupyter):

- as committed (the solution): no exception, and the checker prints ``... checks passed``;
- with that one block replaced by ``raise NotImplementedError`` exactly as
  ``lib.exercises.learner.strip_solutions`` writes learner copies: in strict mode (CI) the cell must
  raise :class:`lib.exercises.ExerciseFailed`; in a learner's default mode it must NOT raise, must
  print the failure with its hint, and must leave the exercise's name bound to the reference, so
  that the cells below run. A cell holding several exercises (notebook 02's sampling
  filters) is tested once per block, the others keeping their solutions, so every checker is shown
  to discriminate on its own.

This also enforces the course's rule that an exercise cell needs nothing but the first cell: a cell
that uses a name defined in some other cell fails here with a ``NameError``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import nbformat
import pytest
import torch

from lib.core.claims import strict
from lib.exercises import ExerciseFailed
from lib.exercises.catalog import EXERCISES as CATALOG
from lib.exercises.learner import BEGIN, END, NOTEBOOK_DIR, solved_notebooks, strip_solutions

_DEF = re.compile(r"^\s*def\s+(\w+)")


@dataclass(frozen=True)
class Exercise:
    notebook: Path
    cell_index: int  # among code cells
    block: int  # which solution block of that cell (0-based)
    name: str  # the function whose body the block is

    @property
    def id(self) -> str:
        return f"{self.notebook.stem}::{self.name}"


def solution_blocks(source: str) -> list[str]:
    """The enclosing function name of each solution block in a cell (``cell`` if none)."""
    names, current = [], None
    for line in source.splitlines():
        match = _DEF.match(line)
        if match:
            current = match.group(1)
        if line.strip() == BEGIN:
            names.append(current or "cell")
    return names


def strip_one_block(source: str, block: int) -> str:
    """``source`` with only solution block number ``block`` stubbed; the other blocks keep their
    code (their marker lines are dropped, which changes nothing when the cell runs)."""
    out, seen, inside_other = [], -1, False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            seen += 1
            if seen != block:
                inside_other = True
                continue
        elif stripped == END and inside_other:
            inside_other = False
            continue
        out.append(line)
    if seen < block:
        raise ValueError(f"the cell has {seen + 1} solution blocks, no block {block}")
    return strip_solutions("\n".join(out))


def code_cells(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def collect_exercises(directory: Path = NOTEBOOK_DIR) -> list[Exercise]:
    found = []
    for path in solved_notebooks(directory):
        for index, source in enumerate(code_cells(path)):
            for block, name in enumerate(solution_blocks(source)):
                found.append(Exercise(path, index, block, name))
    return found


EXERCISES = collect_exercises()


def run_cells(sources: list[str], label: str) -> dict:
    """Execute cell sources one after the other in one fresh namespace, as a kernel would."""
    from IPython.display import display

    namespace = {"__name__": "__main__", "display": display}
    for i, source in enumerate(sources):
        exec(compile(source, f"<{label}, cell {i}>", "exec"), namespace)
    return namespace


@pytest.fixture
def notebook_like_process(monkeypatch):
    """cwd notebooks/, Agg backend; afterwards restore the global state the first cells change
    (``make_reproducible`` sets seeds, threads and deterministic kernels for the whole process)."""
    monkeypatch.chdir(NOTEBOOK_DIR)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    backend = matplotlib.get_backend()
    plt.switch_backend("Agg")
    saved = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_rng_state(),
        random.getstate(),
    )
    try:
        yield
    finally:
        plt.close("all")
        plt.switch_backend(backend)
        threads, deterministic, warn_only, rng, py_rng = saved
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_rng_state(rng)
        random.setstate(py_rng)


def test_the_course_has_exercises_in_every_notebook():
    notebooks = solved_notebooks()
    assert notebooks, "no solved notebooks found"
    with_exercises = {e.notebook for e in EXERCISES}
    missing = [p.name for p in notebooks if p not in with_exercises]
    assert not missing, f"notebooks without any '# BEGIN SOLUTION' exercise: {missing}"


def test_strip_one_block_stubs_only_that_block():
    source = (
        "def f(x):\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION\n\n\n"
        "def g(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n\n\ncheck(f, g)"
    )
    assert solution_blocks(source) == ["f", "g"]
    first = strip_one_block(source, 0)
    assert 'raise NotImplementedError("Exercise: write f")' in first and "return 2 * x" in first
    assert "return x\n" not in first and "SOLUTION" not in first
    second = strip_one_block(source, 1)
    assert "    return x" in second and "return 2 * x" not in second
    with pytest.raises(ValueError, match="no block 2"):
        strip_one_block(source, 2)


@pytest.mark.parametrize("exercise", EXERCISES, ids=[e.id for e in EXERCISES])
def test_checker_passes_the_solution_and_fails_the_stub(exercise, notebook_like_process, capsys):
    cells = code_cells(exercise.notebook)
    first, cell = cells[0], cells[exercise.cell_index]
    assert exercise.cell_index > 0, "an exercise in the first (imports) cell cannot be run in isolation"
    assert re.search(r"\bcheck_\w+\(", cell), f"{exercise.id}: the exercise cell calls no check_... checker"

    try:
        with strict():  # a solution that fails its own check must fail here, loudly
            run_cells([first, cell], f"{exercise.id} (solution)")
    except NameError as exc:
        pytest.fail(
            f"{exercise.id}: the exercise cell is not self-contained ({exc}); it may use only names "
            "defined in the notebook's first code cell"
        )
    assert "checks passed" in capsys.readouterr().out, f"{exercise.id}: the checker printed no success line"

    stub = strip_one_block(cell, exercise.block)
    assert "NotImplementedError" in stub
    with strict(), pytest.raises(ExerciseFailed):
        run_cells([first, stub], f"{exercise.id} (stub)")
    capsys.readouterr()

    # A learner's default mode: the same stub prints its failure and the notebook runs on.
    with strict(False):
        namespace = run_cells([first, stub], f"{exercise.id} (stub, learner mode)")
    out = capsys.readouterr().out
    assert "✗" in out and "not written yet" in out, out
    assert namespace[exercise.name] is not None and namespace[exercise.name].__module__.startswith("lib."), (
        f"{exercise.id}: after a failed check the name should refer to the reference solution"
    )


def test_every_exercise_is_catalogued_with_a_reference():
    from lib.exercises import resolve_reference

    names = {e.name for e in EXERCISES}
    missing = sorted(names - set(CATALOG))
    assert not missing, f"exercises without an entry in lib/exercises/catalog.py: {missing}"
    unused = sorted(set(CATALOG) - names)
    assert not unused, f"catalog entries that no notebook defines: {unused}"
    for name, info in CATALOG.items():
        assert callable(resolve_reference(info.reference)), name
