"""The course's corpus as token ids: Tiny Shakespeare, encoded once and split train/validation.

The split is by position (the last 10% of the text is validation), as in char-rnn and nanoGPT, so
validation text is never seen in training, not even inside a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from lib.core.paths import SHAKESPEARE_PATH, TOKENIZER_PATH, require_file, shakespeare_text


@dataclass
class TokenizedCorpus:
    train: Tensor  # [n_train_tokens] int64
    val: Tensor  # [n_val_tokens] int64
    train_chars: int
    val_chars: int

    @property
    def val_tokens_per_char(self) -> float:
        return len(self.val) / self.val_chars


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Split at a character position: the first ``1 - val_fraction`` trains, the rest validates."""
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


def tokenize_corpus(tokenizer, text: str, val_fraction: float = 0.1) -> TokenizedCorpus:
    """Encode the two halves of ``text`` separately (so no token straddles the cut)."""
    train_text, val_text = split_text(text, val_fraction)
    train = torch.tensor(tokenizer.encode(train_text), dtype=torch.long)
    val = torch.tensor(tokenizer.encode(val_text), dtype=torch.long)
    return TokenizedCorpus(train, val, len(train_text), len(val_text))


def load_tokenizer(path=TOKENIZER_PATH):
    """The course's trained byte-level BPE tokenizer (2048 tokens, specials included); a missing
    file raises ``FileNotFoundError`` that says where the course's data comes from."""
    from lib.core.bpe import BPETokenizer

    return BPETokenizer.load(require_file(path, "the course tokenizer"))


@lru_cache(maxsize=2)
def shakespeare_corpus(tokenizer_path: str = str(TOKENIZER_PATH), val_fraction: float = 0.1) -> TokenizedCorpus:
    """Tiny Shakespeare encoded with the course tokenizer (cached per process)."""
    return tokenize_corpus(load_tokenizer(tokenizer_path), shakespeare_text(SHAKESPEARE_PATH), val_fraction)
