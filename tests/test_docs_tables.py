"""Every Markdown table the course shows has as many cells in each row as in its header.

GitHub (and JupyterLab) split a table row at every ``|`` that is not escaped as ``\\|``, even one
inside backticks: a row naming `<|dense|>` in a code span grows two cells and loses its last
columns. Inside a table cell the token is written `<\\|dense\\|>`, which renders as <|dense|>.

Scanned: the markdown cells of every notebook (solved and learner copies), README.md,
START_HERE.md (when there is one), CONTRIBUTING.md and every Markdown file under docs/.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

DELIMITER = re.compile(r"^ {0,3}\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")


def split_row(line: str) -> list[str]:
    """The cells of a table row as GitHub splits them: at every unescaped pipe, code spans included."""
    cells, current, escaped = [], [], False
    for char in line.strip():
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == "|":
            cells.append("".join(current))
            current = []
        else:
            current.append(char)
    cells.append("".join(current))
    # A leading and a trailing pipe open and close the row; they do not add cells.
    if cells and not cells[0].strip():
        cells = cells[1:]
    if cells and not cells[-1].strip() and line.rstrip().endswith("|") and not line.rstrip().endswith("\\|"):
        cells = cells[:-1]
    return cells


def table_problems(text: str) -> list[tuple[int, str]]:
    """(1-based line, message) for every table row whose cell count differs from its header's."""
    lines = text.splitlines()
    problems = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if FENCE.match(line):
            in_fence = not in_fence
            i += 1
            continue
        is_header = (
            not in_fence and "|" in line and i + 1 < len(lines) and DELIMITER.match(lines[i + 1])
            and not line.startswith("    ")
        )
        if not is_header:
            i += 1
            continue
        width = len(split_row(line))
        delimiter_width = len(split_row(lines[i + 1]))
        if delimiter_width != width:
            problems.append((i + 2, f"delimiter row has {delimiter_width} cells, header {width}"))
        j = i + 2
        while j < len(lines) and lines[j].strip() and "|" in lines[j]:
            n = len(split_row(lines[j]))
            if n != width:
                problems.append((j + 1, f"{n} cells where the header has {width} (an unescaped | splits a cell?): "
                                        f"{lines[j].strip()[:100]}"))
            j += 1
        i = j
    return problems


@functools.lru_cache(maxsize=1)
def markdown_sources() -> tuple[tuple[str, str], ...]:
    """(label, markdown text) for every place the course writes Markdown."""
    sources = []
    for path in sorted((REPO_ROOT / "notebooks").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        nb = json.loads(path.read_text(encoding="utf-8"))
        for index, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "markdown":
                source = cell["source"]
                text = "".join(source) if isinstance(source, list) else source
                sources.append((f"{path.relative_to(REPO_ROOT)} cell {index}", text))
    files = [REPO_ROOT / name for name in ("README.md", "START_HERE.md", "CONTRIBUTING.md")]
    files += sorted((REPO_ROOT / "docs").rglob("*.md"))
    for path in files:
        if path.is_file():
            sources.append((str(path.relative_to(REPO_ROOT)), path.read_text(encoding="utf-8")))
    return tuple(sources)


def test_split_row_counts_pipes_as_github_does():
    assert split_row("| a | b |") == [" a ", " b "]
    assert split_row("a | b") == ["a ", " b"]
    assert len(split_row("| 06 | inserting `<|thought|>` tokens | x |")) == 5  # the pipes in the code span split
    assert len(split_row(r"| 06 | inserting `<\|thought\|>` tokens | x |")) == 3
    assert len(split_row(r"| a \\| b |")) == 2  # an escaped backslash does not escape the pipe


def test_table_problems_finds_a_broken_row_and_skips_code_blocks():
    good = "| # | name |\n|---|---|\n| 1 | `<\\|dense\\|>` |\n"
    bad = "intro\n\n| # | name |\n|---|---|\n| 1 | `<|dense|>` |\n"
    fenced = "```\n| # | name |\n|---|---|\n| 1 | `<|dense|>` |\n```\n"
    assert table_problems(good) == []
    assert [line for line, _ in table_problems(bad)] == [5]
    assert table_problems(fenced) == []


def test_the_scan_sees_the_course():
    labels = [label for label, _ in markdown_sources()]
    assert "README.md" in labels and "CONTRIBUTING.md" in labels
    assert any(label.startswith("notebooks/08_comparison.ipynb") for label in labels)
    tables = sum(len(re.findall(r"^\|?\s*:?-+:?\s*\|", text, flags=re.M)) for _, text in markdown_sources())
    assert tables >= 5, "the scan found almost no tables: is the parser still looking at the right files?"


def files_with_markdown() -> list[str]:
    return sorted({label.split(" cell ")[0] for label, _ in markdown_sources()})


@pytest.mark.parametrize("name", files_with_markdown())
def test_every_table_row_has_the_header_s_cell_count(name):
    problems = [
        f"{label}, line {line}: {message}"
        for label, text in markdown_sources() if label.split(" cell ")[0] == name
        for line, message in table_problems(text)
    ]
    assert not problems, "\n".join(problems)
