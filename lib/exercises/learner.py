"""Generate learner copies of the solved notebooks.

    python -m lib.exercises.learner            # writes notebooks/exercises/*.ipynb
    python -m lib.exercises.learner --check    # exit 1 if a learner copy is out of date

In a learner copy every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block becomes
``raise NotImplementedError("Exercise: ...")`` at the block's indentation, and each exercise gets,
from :mod:`lib.exercises.catalog`:

- a header above it (difficulty, importance, minutes), 1-3 hints in collapsible ``<details>``;
- a docstring in the stub giving shapes and conventions (when the solved cell has none);
- a commented one-line import of the reference, to uncomment for a learner who wants to move on.

Exercise cells lose their outputs (the learner produces them); every other cell keeps the solved
notebook's outputs, figures included, so the learner sees what each cell should show. Run unsolved,
a copy still runs top to bottom: a failing check prints its hint and the notebook carries on with
the reference (see :func:`lib.exercises.checker`).
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path

import nbformat

from lib.core.paths import NOTEBOOK_DIR, REPO_ROOT, solved_notebooks

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
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


def exercise_names(source: str) -> list[str]:
    """The function whose body each solution block of a cell is, in order (``ValueError`` for a
    block outside any ``def``)."""
    names, current = [], None
    for number, line in enumerate(source.splitlines(), start=1):
        match = _DEF.match(line)
        if match:
            current = match.group(1)
        if line.strip() == BEGIN:
            if current is None:
                raise ValueError(f"line {number}: a solution block outside any function")
            names.append(current)
    return names


def add_docstrings(source: str, docstrings: dict[str, str]) -> str:
    """Give each named function of a (stripped) cell its docstring, unless it already has one."""
    lines = source.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        match = _DEF.match(line)
        if match and match.group(1) in docstrings:
            # the signature may span lines: copy up to the line that ends it
            while not lines[i].split("#")[0].rstrip().endswith(":") and i + 1 < len(lines):
                i += 1
                out.append(lines[i])
            following = next((l.strip() for l in lines[i + 1 :] if l.strip()), "")
            if not following.startswith(('"""', "'''", 'r"""')):
                indent = line[: len(line) - len(line.lstrip())] + "    "
                width = max(40, 100 - len(indent))
                paragraphs = docstrings[match.group(1)].strip().split("\n\n")
                body = []
                for k, paragraph in enumerate(paragraphs):
                    body += textwrap.wrap(paragraph, width - (3 if k == 0 else 0), break_on_hyphens=False) + [""]
                body = body[:-1]
                doc = [f'{indent}"""{body[0]}'] + [f"{indent}{b}" if b.strip() else "" for b in body[1:]]
                doc[-1] += '"""' if len(body) == 1 else f'\n{indent}"""'
                out.extend("\n".join(doc).split("\n"))
        i += 1
    return "\n".join(out)


def add_reference_imports(source: str, import_lines: list[str]) -> str:
    """Put commented reference imports just before the cell's first top-level ``check_...(`` call."""
    if not import_lines:
        return source
    lines = source.splitlines()
    at = next((i for i, l in enumerate(lines) if re.match(r"check_\w+\(", l)), len(lines))
    block = ["# Stuck? Uncomment to move on with the reference solution:"] + [f"# {line}" for line in import_lines]
    return "\n".join(lines[:at] + block + lines[at:])


def count_exercises(nb: nbformat.NotebookNode) -> int:
    """Number of solution blocks in a notebook."""
    return sum(c.source.count(BEGIN) for c in nb.cells if c.cell_type == "code")


LEARNER_NOTE = (
    "> **Learner copy.** Each ✏️ exercise below has a header (difficulty, importance, minutes), hints you "
    "can unfold, and a stub whose docstring gives the shapes: write the body, then run the cell. Its check "
    "prints `checks passed`, or what is wrong with a hint; an unsolved or wrong exercise does not stop the "
    "notebook: the check says so and the cells below run on the reference solution, so **Run All** always "
    "reaches the end. The outputs you see under the other cells are those of the solved notebook (one folder "
    "up, `../`): what each cell should show when you run it."
)


UP_ONE_LINK = re.compile(r"\]\(\.\./")  # a Markdown link to the folder above the notebooks


def make_learner_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` for learners: solutions stripped, exercises introduced (header, hints,
    docstring, reference import), exercise outputs cleared, every other output kept."""
    from lib.exercises.catalog import exercise_info

    copy = nbformat.from_dict(nb)
    cells = []
    for index, cell in enumerate(copy.cells):
        if cell.cell_type != "code":
            if cell.cell_type == "markdown":  # the copy sits one folder deeper: keep its relative links working
                cell.source = UP_ONE_LINK.sub(r"](../../", cell.source)
            cells.append(cell)
            continue
        names = exercise_names(cell.source)
        cell.execution_count = None
        if names:
            infos = [exercise_info(name) for name in names]  # KeyError: every exercise must be catalogued
            for info in infos:
                header = nbformat.v4.new_markdown_cell(info.header())
                header.id = f"exercise-{info.function}"[:64]
                cells.append(header)
            source = strip_solutions(cell.source)
            source = add_docstrings(source, {i.function: i.docstring for i in infos})
            cell.source = add_reference_imports(source, [i.import_line for i in infos])
            cell.outputs = []
        else:
            cell.source = strip_solutions(cell.source)
            for output in cell.outputs:
                if "execution_count" in output:
                    output.execution_count = None
        cells.append(cell)
    copy.cells = cells
    note = nbformat.v4.new_markdown_cell(LEARNER_NOTE)
    note.id = "learner-copy-note"  # fixed, so regenerating gives byte-identical files
    copy.cells.insert(0, note)
    return copy


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
