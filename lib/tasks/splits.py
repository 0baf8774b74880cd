"""Train / validation / test splits that are a function of the item, and a count of test items seen in training.

Why: a test set drawn from the same random stream as the training set repeats training items
whenever the task is small (pointer chasing on 6 nodes has 12,960 questions, and a 600-step run
of 64 questions draws most of them), so its score partly measures memory. Here every item is
sent to a split by a hash of its own content: the same table or graph lands in the same split in
every call, under every generator seed, in every process. Samplers then draw from one split by
rejection (:mod:`lib.tasks.pointer_splits`, :mod:`lib.tasks.path_star_splits`), so test items
never occur in training, by construction, at any size.

The hash is BLAKE2b (8-byte digest, keyed by a domain string per task, so the two tasks' splits
are independent) of the item's canonical form written as little-endian int64s. ``digest mod 100``
picks the bucket: ``[0, 10)`` test, ``[10, 20)`` val, ``[20, 100)`` train (:data:`SPLIT_BUCKETS`).

:func:`split_overlap` is the check: the fraction of test questions that occur verbatim among the
training questions. Its result is small enough to store next to a run's scores.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from lib.core import checks
from lib.tasks.path_star import PathStarBatch
from lib.tasks.pointer_task import PointerBatch

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_BUCKETS: dict[str, tuple[int, int]] = {"test": (0, 10), "val": (10, 20), "train": (20, 100)}  # [lo, hi) of digest mod 100
SPLIT_FRACTIONS: dict[str, float] = {s: (hi - lo) / 100 for s, (lo, hi) in SPLIT_BUCKETS.items()}


def check_split(split: str) -> str:
    """``split`` if it names a split ("train", "val" or "test"); ValueError otherwise."""
    checks.check_str(split, "split")
    return checks.check_choice(split, "split", SPLITS)


def hash_buckets(rows: Int[Tensor, "batch width"], domain: str) -> Int[Tensor, " batch"]:
    """``digest mod 100`` of each row: BLAKE2b keyed by ``domain`` over the row as little-endian int64s."""
    checks.check_tensor(rows, "rows", ndim=2, dtype="int")
    checks.check_str(domain, "domain")
    key = domain.encode()
    if len(key) > 64:
        raise ValueError(f"domain must encode to at most 64 bytes (BLAKE2b's key size), got {len(key)}")
    data = np.ascontiguousarray(rows.detach().cpu().numpy().astype("<i8"))
    width = data.shape[1] * 8
    buf = memoryview(data.tobytes())
    out = np.empty(data.shape[0], dtype=np.int64)
    blake = hashlib.blake2b
    for i in range(data.shape[0]):
        digest = blake(buf[i * width : (i + 1) * width], digest_size=8, key=key).digest()
        out[i] = int.from_bytes(digest, "little") % 100
    return torch.from_numpy(out)


def split_codes(rows: Int[Tensor, "batch width"], domain: str) -> Int[Tensor, " batch"]:
    """The split of each row as an index into :data:`SPLITS` (0 train, 1 val, 2 test)."""
    buckets = hash_buckets(rows, domain)
    codes = torch.zeros_like(buckets)
    for index, name in enumerate(SPLITS):
        lo, hi = SPLIT_BUCKETS[name]
        codes[(buckets >= lo) & (buckets < hi)] = index
    return codes


MAX_EMPTY_DRAWS = 100_000  # draws after which a split that has yielded nothing is taken to be empty


def draw_in_split(
    draw: Callable[[int], Tensor],
    canonical: Callable[[Tensor], Tensor],
    domain: str,
    split: str,
    count: int,
) -> Tensor:
    """``count`` items of ``split``, drawn by rejection: ``draw(k)`` returns ``k`` candidate items
    (a tensor, one item per row of its first dimension), ``canonical(items)`` their canonical rows
    ``[k, width]`` to hash. Candidates are drawn in chunks sized for the split's fraction, kept in
    the order drawn, so the result is a function of the generator ``draw`` uses."""
    for fn, name in ((draw, "draw"), (canonical, "canonical")):
        if not callable(fn):
            raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    check_split(split)
    checks.check_int(count, "count", min=1)
    fraction = SPLIT_FRACTIONS[split]
    index = SPLITS.index(split)
    kept: list[Tensor] = []
    have, drawn = 0, 0
    while have < count:
        need = count - have
        candidates = draw(int(need / fraction * 1.1) + 16)
        chosen = candidates[split_codes(canonical(candidates), domain) == index]
        kept.append(chosen)
        have += chosen.shape[0]
        drawn += candidates.shape[0]
        if have == 0 and drawn >= MAX_EMPTY_DRAWS:  # a space so small that this split may hold no item at all
            raise ValueError(f"no item of the {split!r} split among {drawn} draws: the task is too small to split "
                             "(make it larger)")
    return torch.cat(kept)[:count]


# --------------------------------------------------------------------------- overlap
def question_keys(batch: PointerBatch | PathStarBatch) -> list[bytes]:
    """One key per row naming the question exactly. Pointer chasing: the table, the start node
    and the hop count (filler and decoys are layout, not question). Path-star: the whole prompt
    (edge list in its order, QUERY, centre, leaf, ANSWER). Any other batch with a
    ``canonical_rows()`` method: those rows (graph reachability: the graph itself, so a test graph
    counts as seen if any training question used it, whatever was asked)."""
    if isinstance(batch, PointerBatch):
        n = batch.spec.n_nodes
        rows = torch.arange(batch.tokens.shape[0], device=batch.tokens.device)
        start = batch.start_pos.to(batch.tokens.device)
        x = batch.tokens[rows, start]
        item = torch.cat([batch.tokens[:, :n], x[:, None], batch.hops.to(x.device)[:, None]], dim=1)
        tag = b"pointer"
    elif isinstance(batch, PathStarBatch):
        item = batch.tokens[:, : batch.spec.prompt_len]
        tag = b"path_star"
    elif callable(getattr(batch, "canonical_rows", None)):  # a task that names its own items (graph reachability: the graph)
        item = batch.canonical_rows()
        tag = type(batch).__name__.encode()
    else:
        raise TypeError(f"batch must be a PointerBatch, a PathStarBatch or have canonical_rows(), got {type(batch).__name__}")
    data = np.ascontiguousarray(item.detach().cpu().numpy().astype("<i8"))
    width = data.shape[1] * 8
    buf = data.tobytes()
    prefix = tag + width.to_bytes(2, "little")
    return [prefix + buf[i * width : (i + 1) * width] for i in range(data.shape[0])]


def _batches(items, name: str) -> Iterable:
    if isinstance(items, (PointerBatch, PathStarBatch)) or callable(getattr(items, "canonical_rows", None)):
        return [items]
    if isinstance(items, (str, bytes, Tensor)) or not isinstance(items, Iterable):
        raise TypeError(f"{name} must be a batch (PointerBatch, PathStarBatch or one with canonical_rows()) or an "
                        f"iterable of them, got {type(items).__name__}")
    return items


def split_overlap(train, test) -> dict:
    """How many test questions occur verbatim among the training questions.

    ``train`` and ``test`` are each a batch (:class:`PointerBatch` or :class:`PathStarBatch`) or an
    iterable of batches, e.g. the training stream replayed with a fresh generator of the run's seed:
    ``(sample(spec, 64, gen, "train") for _ in range(steps))``; batches are read once, one at a
    time. Returns ``{"train_draws", "train_distinct", "test_items", "overlap", "overlap_fraction"}``
    (test items counted with repeats), the ``splits`` record of a results file."""
    seen: set[bytes] = set()
    draws = 0
    kind = None
    for b in _batches(train, "train"):
        if kind is None:
            kind = type(b)
        elif not isinstance(b, kind):
            raise TypeError(f"train mixes {kind.__name__} and {type(b).__name__}")
        keys = question_keys(b)
        draws += len(keys)
        seen.update(keys)
    items = overlap = 0
    for b in _batches(test, "test"):
        if kind is not None and not isinstance(b, kind):
            raise TypeError(f"test holds a {type(b).__name__}, train {kind.__name__}s")
        keys = question_keys(b)
        items += len(keys)
        overlap += sum(k in seen for k in keys)
    if draws == 0:
        raise ValueError("train must hold at least one question")
    if items == 0:
        raise ValueError("test must hold at least one question")
    return {"train_draws": draws, "train_distinct": len(seen), "test_items": items, "overlap": overlap,
            "overlap_fraction": overlap / items}


__all__ = ["SPLITS", "SPLIT_BUCKETS", "SPLIT_FRACTIONS", "check_split", "draw_in_split", "hash_buckets",
           "question_keys", "split_codes", "split_overlap"]
