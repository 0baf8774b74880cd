"""Generate learner copies of the solved notebooks.

    python -m lib.exercises.learner            # writes notebooks/exercises/*.ipynb
    python -m lib.exercises.learner --check    # exit 1 if a learner copy is out of date

In a learner copy every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block becomes
``raise NotImplementedError("Exercise: ...")`` at the block's indentation, and all outputs are
cleared, so the learner writes the body and runs the check cell that follows.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from lib.paths import REPO_ROOT

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
LEARNER_DIR = NOTEBOOK_DIR / "exercises"
_DEF = re.compile(r"^\s*def\s+(\w+)")


def strip_solutions(source: str) -> str:
    """Replace each solution block of a code cell's source by a ``NotImplementedError``.

    The message names the enclosing function when there is one. Raises ``ValueError`` on an
    unbalanced or nested pair of markers, so a typo cannot leak a solution into a learner copy.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    out: list[str] = []
    inside = False
    current_def = None
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        match = _DEF.match(line)
        if match and not inside:
            current_def = match.group(1)
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"line {number}: '{BEGIN}' inside another solution block")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            what = f"write {current_def}" if current_def else "fill in this block"
            out.append(f'{indent}raise NotImplementedError("Exercise: {what}")')
            continue
        if stripped == END:
            if not inside:
                raise ValueError(f"line {number}: '{END}' without a matching '{BEGIN}'")
            inside = False
            continue
        if not inside:
            out.append(line)
    if inside:
        raise ValueError(f"'{BEGIN}' without a matching '{END}'")
    return "\n".join(out)


def count_exercises(nb: nbformat.NotebookNode) -> int:
    """Number of solution blocks in a notebook."""
    return sum(c.source.count(BEGIN) for c in nb.cells if c.cell_type == "code")


def make_learner_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with solutions stripped and every output cleared."""
    copy = nbformat.from_dict(nb)
    for cell in copy.cells:
        if cell.cell_type != "code":
            continue
        cell.source = strip_solutions(cell.source)
        cell.outputs = []
        cell.execution_count = None
    note = nbformat.v4.new_markdown_cell(
        "> **Learner copy.** Each exercise body raises `NotImplementedError`: write it, then run the "
        "check cell below it. The solved notebook is one folder up."
    )
    note.id = "learner-copy-note"  # fixed, so regenerating gives byte-identical files
    copy.cells.insert(0, note)
    return copy


def solved_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    return sorted(p for p in Path(directory).glob("[0-9]*.ipynb"))


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def write_learner_copies(src: Path = NOTEBOOK_DIR, dst: Path = LEARNER_DIR) -> list[Path]:
    """Write a learner copy of every solved notebook in ``src`` into ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for path in solved_notebooks(src):
        target = dst / path.name
        target.write_text(render(make_learner_notebook(nbformat.read(path, as_version=4))), encoding="utf-8")
        written.append(target)
    return written


def stale_learner_copies(src: Path = NOTEBOOK_DIR, dst: Path = LEARNER_DIR) -> list[str]:
    """Names of learner copies that are missing or differ from what the generator would write."""
    stale = []
    for path in solved_notebooks(src):
        target = dst / path.name
        expected = render(make_learner_notebook(nbformat.read(path, as_version=4)))
        if not target.is_file() or target.read_text(encoding="utf-8") != expected:
            stale.append(path.name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report copies that are out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_learner_copies()
        for name in stale:
            print(f"out of date: notebooks/exercises/{name} (run python -m lib.exercises.learner)")
        return 1 if stale else 0
    for path in write_learner_copies():
        print("wrote", path.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
