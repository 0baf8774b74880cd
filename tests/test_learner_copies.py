"""Learner copies: solutions are stripped exactly, each exercise is introduced (header, hints,
docstring, reference import), the solved outputs are kept elsewhere, the checked-in copies are in
sync, and (slow) every copy runs top to bottom with nothing solved."""

import os

import nbformat
import pytest

from lib.exercises.catalog import EXERCISES, ExerciseInfo, total_minutes
from lib.exercises.learner import (
    LEARNER_DIR,
    NOTEBOOK_DIR,
    add_docstrings,
    add_reference_imports,
    count_exercises,
    exercise_names,
    make_learner_notebook,
    solved_notebooks,
    stale_learner_copies,
    strip_solutions,
)

SOLVED = '''import torch


def softmax(x):
    """doc"""
    # BEGIN SOLUTION
    e = (x - x.max()).exp()
    return e / e.sum()
    # END SOLUTION


check_softmax(softmax)'''


def test_strip_solutions_keeps_everything_but_the_block():
    out = strip_solutions(SOLVED)
    assert 'raise NotImplementedError("Exercise: write softmax")' in out
    assert "    raise" in out  # same indentation as the block
    assert "exp()" not in out and "BEGIN" not in out and "END SOLUTION" not in out
    assert out.startswith("import torch") and out.endswith("check_softmax(softmax)")
    assert '"""doc"""' in out


def test_strip_solutions_without_markers_is_identity():
    assert strip_solutions("x = 1\nprint(x)") == "x = 1\nprint(x)"


@pytest.mark.parametrize(
    "source, match",
    [
        ("# BEGIN SOLUTION\nx = 1", "without a matching"),
        ("x = 1\n# END SOLUTION", "without a matching"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", "inside another"),
    ],
)
def test_unbalanced_markers_are_errors(source, match):
    with pytest.raises(ValueError, match=match):
        strip_solutions(source)
    with pytest.raises(TypeError):
        strip_solutions(None)


def test_make_learner_notebook_introduces_exercises_and_keeps_other_outputs():
    plot = nbformat.v4.new_code_cell("plt.plot([1, 2])\nplt.show()")
    plot.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]
    plot.execution_count = 5
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(SOLVED), plot, nbformat.v4.new_markdown_cell("# BEGIN SOLUTION")]
    )
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="softmax: 3/3 checks passed")]
    nb.cells[0].execution_count = 4
    learner = make_learner_notebook(nb)
    assert count_exercises(nb) == 1 and count_exercises(learner) == 0
    header = learner.cells[1]
    assert header.cell_type == "markdown" and "Exercise `softmax`" in header.source
    assert "easy" in header.source and "min" in header.source and header.source.count("<details>") >= 2
    assert EXERCISES["softmax"].import_line in header.source
    code = [c for c in learner.cells if c.cell_type == "code"]
    assert code[0].outputs == [] and code[0].execution_count is None  # the learner produces these
    assert '"""doc"""' in code[0].source  # an existing docstring is kept, not doubled
    assert f"# {EXERCISES['softmax'].import_line}" in code[0].source
    assert code[0].source.index("# from lib") < code[0].source.index("check_softmax(")
    assert code[1].outputs and code[1].outputs[0].data["image/png"]  # the expected figure is kept
    assert code[1].execution_count is None
    assert learner.cells[-1].source == "# BEGIN SOLUTION"  # markdown untouched
    assert nb.cells[0].outputs and nb.cells[1].execution_count == 5  # the original is not modified


def test_docstrings_are_added_only_where_missing():
    source = "@torch.no_grad()\ndef f(x,\n      y):\n    raise NotImplementedError\n\n\ndef g(x):\n    \"\"\"mine\"\"\"\n    return x"
    out = add_docstrings(source, {"f": "Short.\n\nx: [batch, pos]. " + "word " * 40, "g": "ignored"})
    lines = out.splitlines()
    assert lines[3] == '    """Short.' and "ignored" not in out and 'raise NotImplementedError' in out
    assert all(len(line) <= 100 for line in lines)
    compile(out, "<doc>", "exec")
    assert add_reference_imports("def f():\n    pass\ncheck_f(f)", ["from m import f"]).splitlines()[3:5] == [
        "# from m import f", "check_f(f)"]


def test_exercise_names_and_catalog_entries():
    assert exercise_names(SOLVED) == ["softmax"]
    with pytest.raises(ValueError, match="outside any function"):
        exercise_names("# BEGIN SOLUTION\nx = 1\n# END SOLUTION")
    with pytest.raises(ValueError, match="difficulty"):
        ExerciseInfo("f", "01", "trivial", 3, 5, "doc", ("hint",), "m:f")
    with pytest.raises(ValueError, match="hints"):
        ExerciseInfo("f", "01", "easy", 3, 5, "doc", (), "m:f")
    with pytest.raises(ValueError, match="importance"):
        ExerciseInfo("f", "01", "easy", 4, 5, "doc", ("hint",), "m:f")
    unknown = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SOLVED.replace("softmax", "no_such_exercise"))])
    with pytest.raises(KeyError, match="no_such_exercise"):
        make_learner_notebook(unknown)
    for info in EXERCISES.values():
        assert info.docstring.strip() and info.reference.count(":") == 1
    assert total_minutes("03") == sum(e.minutes for e in EXERCISES.values() if e.notebook == "03")


def test_checked_in_learner_copies_are_in_sync():
    assert stale_learner_copies() == [], "run: python -m lib.exercises.learner"


def test_write_and_check_learner_copies(tmp_path):
    from lib.exercises.learner import NOTEBOOK_DIR, main, write_learner_copies

    written = write_learner_copies(NOTEBOOK_DIR, tmp_path)
    assert [p.name for p in written] == sorted(p.name for p in NOTEBOOK_DIR.glob("[0-9]*.ipynb"))
    assert stale_learner_copies(NOTEBOOK_DIR, tmp_path) == []
    first = written[0]
    first.write_text(first.read_text() + " ")
    assert stale_learner_copies(NOTEBOOK_DIR, tmp_path) == [first.name]
    assert main(["--check"]) == 0  # the checked-in copies
    nb = nbformat.read(written[0], as_version=4)
    assert "BEGIN SOLUTION" not in "".join(c.source for c in nb.cells if c.cell_type == "code")


def test_checked_in_copies_show_the_solved_figures():
    """A learner sees every figure of the solved notebook (the outputs of non-exercise cells are kept)."""
    for solved in solved_notebooks():
        copy = nbformat.read(LEARNER_DIR / solved.name, as_version=4)
        count = lambda nb: sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        n_solved = count(nbformat.read(solved, as_version=4))
        exercise_figures = sum(
            "image/png" in o.get("data", {})
            for c in nbformat.read(solved, as_version=4).cells
            if c.cell_type == "code" and "# BEGIN SOLUTION" in c.source for o in c.outputs
        )
        assert count(copy) == n_solved - exercise_figures, solved.name


# Every copy, 01 to 09: each run costs about as long as its notebook (measured here: 72-138 s for 04-09).
LEARNER_COPY_SEED = "20"


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.name for p in solved_notebooks()])
def test_unsolved_learner_copy_runs_to_the_end(name, tmp_path):
    """Run All on a learner copy with nothing solved, in a learner's default (non-strict) mode: no
    cell raises; every check cell reports its exercise as not written and carries on.

    The copies train with a second set of other seeds (``COURSE_SEED=20``: 20, 21, 22; the first,
    10, runs in tests/test_other_seeds.py), and every claim must still print ✓: with the
    references standing in for the learner's functions, a notebook's conclusions do not hang on
    the seeds they were written on."""
    from nbclient import NotebookClient

    nb = nbformat.read(LEARNER_DIR / name, as_version=4)
    env = dict(os.environ, COURSE_STRICT="0", COURSE_SEED=LEARNER_COPY_SEED, MPLBACKEND="module://matplotlib_inline.backend_inline")
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(LEARNER_DIR)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    n_checks = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not [o for o in cell.outputs if o.output_type == "error"], (name, cell.source[:200])
        if "NotImplementedError(\"Exercise" in cell.source:
            text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            assert "✗" in text and "not written yet" in text, (name, text)
            n_checks += 1
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert "the numbers do not support this claim" not in text, (name, f"COURSE_SEED={LEARNER_COPY_SEED}", text[-2000:])
    assert n_checks == count_exercises(nbformat.read(NOTEBOOK_DIR / name, as_version=4)) or n_checks > 0
