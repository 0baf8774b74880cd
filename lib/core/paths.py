"""Where the course keeps its files, wherever the code runs from (a notebook's cwd is notebooks/).

The data folder is found in this order:
1. ``$COURSE_DATA_DIR``, when set (a copy of ``data/`` anywhere);
2. ``data/`` of the clone this code lives in (``make install`` / ``pip install -e .``);
3. ``lib/course_data/`` inside an installed wheel (``pip install .`` copies the corpus, the
   tokenizer and the checkpoint there: see ``[tool.setuptools]`` in pyproject.toml).
If none holds the corpus, ``DATA_DIR`` still names the clone's ``data/``, and the functions that
read it raise ``FileNotFoundError`` saying how to get the files.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR: Path = Path(__file__).resolve().parents[1]  # lib/, this file being lib/core/paths.py
REPO_ROOT: Path = PACKAGE_DIR.parent
CORPUS_NAME = "tinyshakespeare.txt"
DATA_HINT = (
    "the course's data ships with the repository (git clone it and run `make install`), or in the "
    "wheel built by `pip install .` from a clone; or point COURSE_DATA_DIR at a copy of its data/ folder"
)


def data_dir_candidates(env: dict[str, str] | None = None) -> list[Path]:
    """The folders searched for the course's data, in order (``env`` defaults to ``os.environ``)."""
    if env is not None and not isinstance(env, dict):
        raise TypeError(f"env must be a dict of environment variables or None, got {type(env).__name__}")
    env = os.environ if env is None else env
    found = [Path(env["COURSE_DATA_DIR"]).expanduser()] if env.get("COURSE_DATA_DIR", "").strip() else []
    return found + [REPO_ROOT / "data", PACKAGE_DIR / "course_data"]


def find_data_dir(env: dict[str, str] | None = None) -> Path:
    """The first candidate folder that holds the corpus; when none does, the first candidate
    (``$COURSE_DATA_DIR`` if set, else the clone's ``data/``), so the readers' error names it."""
    candidates = data_dir_candidates(env)
    for folder in candidates:
        if (folder / CORPUS_NAME).is_file():
            return folder
    return candidates[0]


DATA_DIR: Path = find_data_dir()
SHAKESPEARE_PATH: Path = DATA_DIR / CORPUS_NAME
TOKENIZER_PATH: Path = DATA_DIR / "tokenizer.json"
CHECKPOINT_PATH: Path = DATA_DIR / "tiny_shakespeare_gpt.safetensors"


def require_file(path: Path | str, what: str) -> Path:
    """``path`` as a Path if it is a file; otherwise ``FileNotFoundError`` naming it, ``what`` it
    is, and how to get the course's data."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"path must be a non-empty str or Path, got {path!r}")
    if not isinstance(what, str) or not what:
        raise TypeError(f"what must be a non-empty str, got {what!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at {path}: {DATA_HINT}")
    return path


def shakespeare_text(path: Path | str = SHAKESPEARE_PATH) -> str:
    """Return Tiny Shakespeare as one string (1,115,394 characters)."""
    path = require_file(path, "corpus")
    text = path.read_text(encoding="utf-8")
    if not text:
        raise ValueError(f"corpus at {path} is empty")
    return text


NOTEBOOK_DIR: Path = REPO_ROOT / "notebooks"


def solved_notebooks(directory: Path | str = NOTEBOOK_DIR) -> list[Path]:
    """The course's solved notebooks ``[0-9]*.ipynb`` in ``directory``, in course order."""
    return sorted(p for p in Path(directory).glob("[0-9]*.ipynb"))
