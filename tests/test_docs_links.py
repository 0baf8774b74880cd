"""What the course shows learners points only at what learners have.

- The design notes behind notebooks 05-09 are restated in docs/ideas.md; the original notes are not
  part of the course, so no notebook (learner copies included), README, START_HERE or doc may name
  them by their working names ("seed 000" ... "seed 004", "design note 00x") or point at the folder
  they were kept in (`shared/`). Random seeds ("seed 0", "seed 100") are fine.
- Every notebook of 05-09 links to ../docs/ideas.md, and docs/ideas.md exists.
- Every relative Markdown link in those places resolves to a file of the repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
IDEAS = REPO_ROOT / "docs" / "ideas.md"

# What `grep -rn "shared/\|seed 00[0-4]\|design note 00" notebooks README.md docs START_HERE.md` looks
# for, plus the capitalised forms a sentence can start with ("Seed 000's ...", "Design note 004's").
FORBIDDEN = re.compile(r"shared/|[Ss]eed 00[0-4]|[Dd]esign notes? 00")
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def notebook_cells(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for index, cell in enumerate(nb["cells"]):
        source = cell["source"]
        yield index, cell, "".join(source) if isinstance(source, list) else source


def text_files() -> list[Path]:
    files = [REPO_ROOT / name for name in ("README.md", "START_HERE.md")]
    files += sorted((REPO_ROOT / "docs").rglob("*.md"))
    return [path for path in files if path.is_file()]


def all_notebooks() -> list[Path]:
    return sorted(path for path in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in path.parts)


def forbidden_hits(kinds: tuple[str, ...]) -> list[str]:
    hits = []
    for path in all_notebooks():
        for index, cell, source in notebook_cells(path):
            texts = []
            if cell["cell_type"] in kinds:
                texts.append(source)
            if "outputs" in kinds:
                for output in cell.get("outputs", []):
                    text = output.get("text", "")
                    texts.append("".join(text) if isinstance(text, list) else text)
                    for value in output.get("data", {}).values():
                        if isinstance(value, (str, list)):
                            texts.append("".join(value) if isinstance(value, list) else value)
            for text in texts:
                for match in FORBIDDEN.finditer(text):
                    line = text[: match.start()].count("\n") + 1
                    hits.append(f"{path.relative_to(REPO_ROOT)} cell {index} ({cell['cell_type']}), line {line}: "
                                f"{match.group(0)!r}")
    return hits


def test_docs_ideas_exists_and_covers_the_three_proposals():
    assert IDEAS.is_file(), "docs/ideas.md restates the design notes for learners"
    text = IDEAS.read_text(encoding="utf-8")
    for heading in ("## 1. Dense tokens", "## 2. Episodic thought insertion", "## 3. The planning loss"):
        assert heading in text, heading
    for notebook in ("05", "06", "07", "08", "09"):
        assert f"Notebook {notebook}" in text or f"notebook {notebook}" in text, f"docs/ideas.md never points at {notebook}"


@pytest.mark.parametrize("prefix", ["05", "06", "07", "08", "09"])
def test_notebooks_05_to_09_link_to_the_ideas_page(prefix):
    (path,) = sorted(NOTEBOOKS.glob(f"{prefix}_*.ipynb"))
    linked = any(
        "](../docs/ideas.md" in source
        for _, cell, source in notebook_cells(path) if cell["cell_type"] == "markdown"
    )
    assert linked, f"{path.name}: no markdown cell links to ../docs/ideas.md"


def test_no_design_note_names_in_markdown_or_docs():
    hits = forbidden_hits(("markdown",))
    for path in text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in FORBIDDEN.finditer(line):
                hits.append(f"{path.relative_to(REPO_ROOT)}, line {number}: {match.group(0)!r}")
    assert not hits, "name docs/ideas.md instead:\n" + "\n".join(hits)


def test_no_design_note_names_in_code_or_outputs():
    hits = forbidden_hits(("code", "outputs"))
    assert not hits, "\n".join(hits)


def relative_links(text: str) -> list[str]:
    links = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor on the same page
        links.append(target.split("#")[0])
    return links


def broken_links(paths_and_texts) -> list[str]:
    broken = []
    for label, base, text in paths_and_texts:
        for target in relative_links(text):
            if not (base / target).exists():
                broken.append(f"{label}: {target}")
    return broken


def test_relative_links_resolve_in_solved_notebooks_readme_and_docs():
    sources = [
        (f"{path.relative_to(REPO_ROOT)} cell {index}", path.parent, source)
        for path in sorted(NOTEBOOKS.glob("*.ipynb"))
        for index, cell, source in notebook_cells(path) if cell["cell_type"] == "markdown"
    ]
    sources += [(str(path.relative_to(REPO_ROOT)), path.parent, path.read_text(encoding="utf-8"))
                for path in text_files()]
    assert not (broken := broken_links(sources)), "\n".join(broken)


def test_relative_links_resolve_in_learner_copies():
    sources = [
        (f"{path.relative_to(REPO_ROOT)} cell {index}", path.parent, source)
        for path in sorted((NOTEBOOKS / "exercises").glob("*.ipynb"))
        for index, cell, source in notebook_cells(path) if cell["cell_type"] == "markdown"
    ]
    assert not (broken := broken_links(sources)), "\n".join(broken)


def test_relative_links_helper():
    assert relative_links("[a](../docs/ideas.md) [b](https://x.org/y) [c](#top) [d](exercises/)") == [
        "../docs/ideas.md", "exercises/"]
    assert FORBIDDEN.search("The recipe of seed 000") and FORBIDDEN.search("Design note 004's table")
    assert not FORBIDDEN.search("seed 0, the tuning seed; seeds 10, 11, 12; seed 100")
