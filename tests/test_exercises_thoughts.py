"""Each notebook-06 checker passes on a correct answer and fails on a stub and on a typical mistake."""

import pytest
import torch

from lib.exercises import ExerciseFailed, unwritten_exercise
from lib.exercises.thoughts import check_insert_tokens, check_insertion_gain, check_thought_ranks
from lib.methods.thoughts import insert_tokens, thought_ranks


pytestmark = pytest.mark.usefixtures("strict_checkers")


stub = unwritten_exercise


def test_thought_ranks_checker():
    check_thought_ranks(thought_ranks)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_thought_ranks(stub)
    with pytest.raises(ExerciseFailed, match="strictly larger"):
        check_thought_ranks(lambda logits, t: (logits >= logits[..., t : t + 1]).sum(-1))  # counts itself


def test_insert_tokens_checker():
    check_insert_tokens(insert_tokens)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_insert_tokens(stub)

    def unshifted_map(tokens, lengths, positions, token_id, pad_id):
        new, new_lengths, _ = insert_tokens(tokens, lengths, positions, token_id, pad_id)
        ar = torch.arange(tokens.shape[1]).expand_as(tokens)
        return new, new_lengths, torch.where(ar < lengths[:, None], ar, -1)

    with pytest.raises(ExerciseFailed, match="index_map"):
        check_insert_tokens(unshifted_map)

    def inserts_one_too_late(tokens, lengths, positions, token_id, pad_id):
        later = torch.where(positions >= 0, (positions + 1).clamp(max=lengths), positions)
        return insert_tokens(tokens, lengths, later, token_id, pad_id)

    with pytest.raises(ExerciseFailed, match="index the new token takes"):
        check_insert_tokens(inserts_one_too_late)


def good_gain(lp_without, lp_with, positions, lengths):
    ar = torch.arange(lp_without.shape[1])[None]
    use = (positions[:, None] >= 0) & (ar >= positions[:, None]) & (ar < lengths[:, None])
    shifted = lp_with[:, 1:]  # old token j sits at j + 1
    return torch.where(use, shifted - lp_without, torch.zeros_like(lp_without)).sum(1)


def test_insertion_gain_checker():
    check_insertion_gain(good_gain)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_insertion_gain(stub)

    def no_shift(lp_without, lp_with, positions, lengths):  # compares different tokens
        ar = torch.arange(lp_without.shape[1])[None]
        use = (positions[:, None] >= 0) & (ar >= positions[:, None]) & (ar < lengths[:, None])
        return torch.where(use, lp_with[:, :-1] - lp_without, torch.zeros_like(lp_without)).sum(1)

    with pytest.raises(ExerciseFailed, match="never a target"):
        check_insertion_gain(no_shift)
    with pytest.raises(TypeError):
        check_insertion_gain("gain")
