"""Checkers for notebook 01 (tokenization)."""

from __future__ import annotations

from typing import Callable

from lib.bpe import BPETokenizer, get_pair_counts, merge_pair
from lib.exercises import call_learner, expect, report


def check_get_pair_counts(fn: Callable) -> None:
    """``fn(ids) -> {(a, b): count}`` counts adjacent pairs."""
    name = "get_pair_counts"
    cases = [[1, 2, 3, 1, 2], [5, 5, 5, 5], [7], [], [1, 2, 1, 2, 1]]
    for ids in cases:
        got = call_learner(name, fn, list(ids))
        expected = get_pair_counts(ids)
        expect(isinstance(got, dict), name, f"ids={ids}", f"return a dict, not {type(got).__name__}")
        expect(
            dict(got) == expected, name, f"ids={ids}",
            f"expected {expected}, got {dict(got)}. Every adjacent pair counts, overlapping ones too "
            "([5, 5, 5] has the pair (5, 5) twice)",
        )
    report(name, len(cases))


def check_merge_pair(fn: Callable) -> None:
    """``fn(ids, pair, new_id) -> list`` replaces non-overlapping occurrences, left to right."""
    name = "merge_pair"
    cases = [
        ([1, 2, 3, 1, 2], (1, 2), 9),
        ([5, 5, 5], (5, 5), 9),
        ([5, 5, 5, 5], (5, 5), 9),
        ([1, 2], (2, 1), 9),
        ([], (1, 2), 9),
        ([1, 2, 1, 2, 1], (1, 2), 300),
    ]
    for ids, pair, new_id in cases:
        original = list(ids)
        got = call_learner(name, fn, list(ids), pair, new_id)
        expected = merge_pair(ids, pair, new_id)
        expect(
            list(got) == expected, name, f"ids={original}, pair={pair}",
            f"expected {expected}, got {list(got)}. After a match, skip both merged ids "
            "(so [5, 5, 5] becomes [9, 5], not [9, 9])",
        )
    report(name, len(cases))


def _hand_made_tokenizer() -> BPETokenizer:
    # (b, c) was learned before (a, b): on "abc" rank order gives [a, bc]; text order would give [ab, c].
    b, c, a = ord("b"), ord("c"), ord("a")
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"bc", 257: b"ab"}
    return BPETokenizer(vocab, {(b, c): 256, (a, b): 257}, {})


def check_apply_merges(fn: Callable) -> None:
    """``fn(ids, merges) -> list``: encode one pre-token by applying learned merges, the
    earliest-learned (lowest-rank) pair first, until no learned pair is left."""
    name = "apply_merges"
    # Merges learned from a tiny text; order matters: (a, a) first, then (a, b), then (aa, ab).
    tok = BPETokenizer.train("aaabdaaabac", 259, special_tokens=())
    cases = ["aaabdaaabac", "abab", "aaaa", "cab", "b", ""]
    checks = [(tok, text) for text in cases] + [(_hand_made_tokenizer(), "abc"), (_hand_made_tokenizer(), "abcab")]
    for tok, text in checks:
        ids = list(text.encode())
        got = call_learner(name, fn, ids, dict(tok.merges))
        expected = tok.encode(text)
        expect(
            list(got) == expected, name, f"text={text!r}",
            f"expected {expected}, got {list(got)}. Repeatedly pick, among the adjacent pairs present, the one "
            "learned earliest (smallest position in merges) and merge it everywhere; stop when none is in merges",
        )
    report(name, len(checks))
