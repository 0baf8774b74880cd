"""Learner copies: solutions are stripped exactly, and the checked-in copies are in sync."""

import nbformat
import pytest

from lib.exercises.learner import count_exercises, make_learner_notebook, stale_learner_copies, strip_solutions

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


def test_make_learner_notebook_clears_outputs():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SOLVED), nbformat.v4.new_markdown_cell("# BEGIN SOLUTION")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="softmax: 3/3 checks passed")]
    nb.cells[0].execution_count = 4
    learner = make_learner_notebook(nb)
    assert count_exercises(nb) == 1 and count_exercises(learner) == 0
    code = [c for c in learner.cells if c.cell_type == "code"][0]
    assert code.outputs == [] and code.execution_count is None
    assert learner.cells[-1].source == "# BEGIN SOLUTION"  # markdown untouched
    assert nb.cells[0].outputs  # the original is not modified


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
