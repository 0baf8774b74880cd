"""Checkers for notebook 01 (tokenization)."""

from __future__ import annotations

from typing import Callable

from lib.core.bpe import BPETokenizer, get_pair_counts, merge_pair
from lib.exercises import call_learner, checker, expect, expect_unchanged, explain, report


def _pair_count_mistakes(ids: list[int]) -> dict[str, dict]:
    pairs = list(zip(ids, ids[1:]))
    skipping: dict = {}
    i = 0
    while i + 1 < len(ids):  # counts a pair, then jumps past it
        skipping[(ids[i], ids[i + 1])] = skipping.get((ids[i], ids[i + 1]), 0) + 1
        i += 2
    wrapped = get_pair_counts(ids + ids[:1]) if len(ids) > 1 else {}
    reversed_ = {(b, a): c for (a, b), c in get_pair_counts(ids).items()}
    return {
        "you counted each distinct pair once: every occurrence counts, overlapping ones too": {p: 1 for p in pairs},
        "you jumped past a pair after counting it: counting is not merging, every adjacent pair counts, "
        "overlapping ones too": skipping,
        "you missed the last pair: the pairs run up to (ids[-2], ids[-1])": get_pair_counts(ids[:-1]),
        "you counted a pair that wraps around from the last id back to the first": wrapped,
        "your pairs are reversed: the key is (left id, right id)": reversed_,
    }


@checker("get_pair_counts")
def check_get_pair_counts(fn: Callable) -> None:
    """``fn(ids) -> {(a, b): count}`` counts adjacent pairs."""
    name = "get_pair_counts"
    cases = [[1, 2, 3, 1, 2], [5, 5, 5, 5], [7], [], [1, 2, 1, 2, 1]]
    outputs = []
    for ids in cases:
        got = call_learner(name, fn, list(ids))
        expect(isinstance(got, dict), name, f"ids={ids}", f"return a dict, not {type(got).__name__}")
        outputs.append(dict(got))
    for ids, got in zip(cases, outputs):
        expected = get_pair_counts(ids)
        if got == expected:
            continue
        diff = sorted(set(got) ^ set(expected) | {p for p in set(got) & set(expected) if got[p] != expected[p]})
        candidates = {d: [_pair_count_mistakes(c)[d] for c in cases] for d in _pair_count_mistakes(ids)}
        named = explain(outputs, candidates, same=lambda a, b: a == b, at=cases.index(ids))
        expect(
            False, name, f"ids={ids}" + (f" (first mismatch: pair {diff[0]})" if diff else ""),
            f"expected {expected}, got {got}. " + (f"It looks like {named}. " if named else "")
            + "A pair is two neighbouring ids; how many times does each one occur, if a window of two slides one "
            "step at a time?",
        )
    report(name, len(cases))


def _merge_pair_mistakes(ids: list[int], pair: tuple[int, int], new_id: int) -> dict[str, list]:
    overlapping, first_only, dropped = [], list(ids), []
    for i, x in enumerate(ids):  # a loop that steps by 1 after a match too
        overlapping.append(new_id if i + 1 < len(ids) and (x, ids[i + 1]) == pair else x)
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            first_only = ids[:i] + [new_id] + ids[i + 2 :]
            break
    i = 0
    while i + 1 < len(ids):  # a loop that stops before the last id
        if (ids[i], ids[i + 1]) == pair:
            dropped.append(new_id)
            i += 2
        else:
            dropped.append(ids[i])
            i += 1
    return {
        "you replaced only the first occurrence: every non-overlapping occurrence is merged": first_only,
        "the last id is missing: your loop stops before it and never copies it": dropped,
        "you let occurrences overlap: after a match both merged ids are used up, so [5, 5, 5] gives [9, 5], "
        "not [9, 9, 5]": overlapping,
    }


@checker("merge_pair")
def check_merge_pair(fn: Callable) -> None:
    """``fn(ids, pair, new_id) -> list`` replaces non-overlapping occurrences, left to right, and
    leaves ``ids`` as it was."""
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
        given = list(ids)
        got = call_learner(name, fn, given, pair, new_id)
        expected = merge_pair(original, pair, new_id)
        case = f"ids={original}, pair={pair}"
        expect_unchanged(original, given, name, case, "ids")
        expect(isinstance(got, (list, tuple)), name, case, f"return a list of ints, not {type(got).__name__}")
        got = list(got)
        first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        named = next((d for d, out in _merge_pair_mistakes(original, pair, new_id).items() if out == got != expected), None)
        expect(
            got == expected, name, case,
            f"expected {expected}, got {got} (first difference at index {first}). "
            + (f"It looks like {named}. " if named else "")
            + "Walk left to right; a match produces one id and uses up both of its ids, anything else is copied",
        )
    report(name, len(cases))


def reference_apply_merges(ids: list[int], merges: dict[tuple[int, int], int]) -> list[int]:
    """The solution: merge the lowest-rank (earliest learned) pair present, until none is left."""
    rank = {pair: r for r, pair in enumerate(merges)}
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: rank.get(p, float("inf")))
        if pair not in rank:
            break
        ids = merge_pair(ids, pair, merges[pair])
    return ids


def _text_order(ids: list[int], merges: dict) -> list[int]:
    # The typical mistake: merge the first learned pair met scanning the text, not the lowest rank.
    ids = list(ids)
    while True:
        pair = next((p for p in zip(ids, ids[1:]) if p in merges), None)
        if pair is None:
            return ids
        ids = merge_pair(ids, pair, merges[pair])


def _by_key(pick) -> Callable:
    def encode(ids: list[int], merges: dict) -> list[int]:
        rank = {pair: r for r, pair in enumerate(merges)}
        ids = list(ids)
        while True:
            counts = get_pair_counts(ids)
            present = [p for p in counts if p in merges]
            if not present:
                return ids
            pair = pick(present, counts, rank)
            ids = merge_pair(ids, pair, merges[pair])
    return encode


_most_frequent = _by_key(lambda present, counts, rank: max(present, key=lambda p: counts[p]))
_highest_rank = _by_key(lambda present, counts, rank: max(present, key=lambda p: rank[p]))


def _merge_once(ids: list[int], merges: dict) -> list[int]:
    rank = {pair: r for r, pair in enumerate(merges)}
    present = [p for p in zip(ids, ids[1:]) if p in rank]
    return merge_pair(list(ids), min(present, key=rank.get), merges[min(present, key=rank.get)]) if present else list(ids)


_APPLY_MERGES_MISTAKES = {
    "you merged pairs in the order they appear in the text, not by rank": _text_order,
    "you merged the most FREQUENT pair first (that is how merges are learned, not how they are applied)": _most_frequent,
    "you merged the pair learned LATEST first (the highest rank): the earliest learned goes first": _highest_rank,
    "you merged only once: keep merging until no adjacent pair is in merges": _merge_once,
}


def _hand_made_tokenizer() -> BPETokenizer:
    # (b, c) was learned before (a, b): on "abc" rank order gives [a, bc]; text order would give [ab, c].
    b, c, a = ord("b"), ord("c"), ord("a")
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"bc", 257: b"ab"}
    return BPETokenizer(vocab, {(b, c): 256, (a, b): 257}, {})


@checker("apply_merges")
def check_apply_merges(fn: Callable) -> None:
    """``fn(ids, merges) -> list``: encode one pre-token by applying learned merges, the
    earliest-learned (lowest-rank) pair first, until no learned pair is left."""
    name = "apply_merges"
    # Merges learned from a tiny text; order matters: (a, a) first, then (a, b), then (aa, ab).
    tok = BPETokenizer.train("aaabdaaabac", 259, special_tokens=())
    cases = ["aaabdaaabac", "abab", "aaaa", "caabab", "b", ""]  # "caabab": most frequent != earliest learned
    checks = [(tok, text) for text in cases] + [(_hand_made_tokenizer(), "abc"), (_hand_made_tokenizer(), "abcbc")]
    outputs = []
    for tok, text in checks:
        got = call_learner(name, fn, list(text.encode()), dict(tok.merges))
        expect(isinstance(got, (list, tuple)), name, f"text={text!r}", f"return a list of ints, not {type(got).__name__}")
        outputs.append(list(got))
    candidates = {d: [wrong(list(text.encode()), dict(tok.merges)) for tok, text in checks]
                  for d, wrong in _APPLY_MERGES_MISTAKES.items()}
    for at, ((tok, text), got) in enumerate(zip(checks, outputs)):
        expected = tok.encode(text)
        named = None if got == expected else explain(outputs, candidates, same=lambda a, b: a == b, at=at)
        expect(
            got == expected, name, f"text={text!r}",
            f"expected {expected}, got {got}. " + (f"It looks like {named}. " if named else "")
            + "Which pair goes first is decided by when it was learned (its position in merges, the earliest "
            "first), never by where it sits in the text; repeat until no adjacent pair is in merges",
        )
    report(name, len(checks))


# The solutions exactly as the notebook writes them (no input checks beyond the notebook's), so a
# notebook that falls back to them behaves as the solved notebook does.
def reference_get_pair_counts(ids: list[int]) -> dict[tuple[int, int], int]:
    """The solution: every adjacent pair, overlapping ones included."""
    counts: dict[tuple[int, int], int] = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def reference_merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """The solution: non-overlapping occurrences, left to right."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
