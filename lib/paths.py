"""Where the course keeps its files, wherever the code runs from (a notebook's cwd is notebooks/)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parent.parent
DATA_DIR: Path = REPO_ROOT / "data"
SHAKESPEARE_PATH: Path = DATA_DIR / "tinyshakespeare.txt"
TOKENIZER_PATH: Path = DATA_DIR / "tokenizer.json"
CHECKPOINT_PATH: Path = DATA_DIR / "tiny_shakespeare_gpt.safetensors"


def shakespeare_text(path: Path | str = SHAKESPEARE_PATH) -> str:
    """Return Tiny Shakespeare as one string (1,115,394 characters)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus not found at {path}: it ships in data/ with the repository")
    text = path.read_text(encoding="utf-8")
    if not text:
        raise ValueError(f"corpus at {path} is empty")
    return text
