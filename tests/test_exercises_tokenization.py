"""Each notebook-01 checker passes on the reference and fails on a stub and on a typical mistake."""

import pytest

from lib.core.bpe import get_pair_counts, merge_pair
from lib.exercises import ExerciseFailed
from lib.exercises.tokenization import check_apply_merges, check_get_pair_counts, check_merge_pair


pytestmark = pytest.mark.usefixtures("strict_checkers")


def stub(*args):
    raise NotImplementedError


def reference_apply_merges(ids, merges):
    ranks = {p: r for r, p in enumerate(merges)}
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, float("inf")))
        if pair not in ranks:
            break
        ids = merge_pair(ids, pair, merges[pair])
    return ids


def test_pass_on_reference():
    check_get_pair_counts(get_pair_counts)
    check_merge_pair(merge_pair)
    check_apply_merges(reference_apply_merges)


@pytest.mark.parametrize("checker", [check_get_pair_counts, check_merge_pair, check_apply_merges])
def test_fail_on_stub(checker):
    with pytest.raises(ExerciseFailed, match="not written yet"):
        checker(stub)


def test_fail_on_typical_mistakes():
    # Counting each distinct pair once.
    with pytest.raises(ExerciseFailed, match="overlapping"):
        check_get_pair_counts(lambda ids: {p: 1 for p in zip(ids, ids[1:])})

    # Overlapping merges: [5, 5, 5] -> [9, 9].
    def overlapping(ids, pair, new_id):
        out = list(ids)
        for i in range(len(ids) - 1):
            if (ids[i], ids[i + 1]) == pair:
                out[i] = new_id
        return [x for i, x in enumerate(out) if not (i > 0 and (ids[i - 1], ids[i]) == pair)]

    with pytest.raises(ExerciseFailed):
        check_merge_pair(overlapping)

    # Applying merges in the order the pairs appear, ignoring their rank.
    def in_text_order(ids, merges):
        changed = True
        while changed:
            changed = False
            for pair in zip(ids, ids[1:]):
                if pair in merges:
                    ids = merge_pair(ids, pair, merges[pair])
                    changed = True
                    break
        return ids

    with pytest.raises(ExerciseFailed, match="earliest"):
        check_apply_merges(in_text_order)
