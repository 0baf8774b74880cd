"""Each notebook-09 checker passes on a correct answer and fails on a stub and on a typical mistake."""

import pytest
import torch

from lib.methods.dense import add_dense_vectors, hidden_and_logits, shift_to_next_position, target_log_likelihood
from lib.methods.dense_emit import useful_counts
from lib.methods.dense_thoughts import unrolled_from
from lib.exercises import ExerciseFailed, unwritten_exercise
from lib.exercises.catalog import EXERCISES
from lib.exercises.dense_open import (
    check_selection_gain, check_unrolled_from, check_useful_counts, reference_selection_gain, reference_unrolled_from,
)


pytestmark = pytest.mark.usefixtures("strict_checkers")


stub = unwritten_exercise


def test_the_exercises_are_in_the_catalog():
    for name in ("selection_gain", "useful_counts", "unrolled_from"):
        assert EXERCISES[name].notebook == "09"


def test_selection_gain_checker():
    check_selection_gain(reference_selection_gain)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_selection_gain(stub)

    def flipped(model, tokens, targets, dense_id):  # the typical mistake: without minus with
        return -reference_selection_gain(model, tokens, targets, dense_id)

    with pytest.raises(ExerciseFailed, match="sign is flipped"):
        check_selection_gain(flipped)

    def unshifted(model, tokens, targets, dense_id):  # the vector made at t fed at t
        embeds = model.embed(tokens)
        hidden, without = hidden_and_logits(model, embeds)
        _, with_ = hidden_and_logits(model, add_dense_vectors(embeds, hidden, tokens == dense_id))
        return target_log_likelihood(with_, targets) - target_log_likelihood(without, targets)

    with pytest.raises(ExerciseFailed, match="shift it"):
        check_selection_gain(unshifted)


def test_useful_counts_checker():
    check_useful_counts(useful_counts)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_useful_counts(stub)
    with pytest.raises(ExerciseFailed, match="largest budget"):
        check_useful_counts(lambda probs, threshold: (probs >= threshold).float().argmax(dim=1))
    with pytest.raises(ExerciseFailed, match="highest probability"):
        check_useful_counts(lambda probs, threshold: probs.argmax(dim=1))


def test_unrolled_from_checker():
    check_unrolled_from(reference_unrolled_from)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_unrolled_from(stub)
    with pytest.raises(ExerciseFailed, match="zero vectors"):
        check_unrolled_from(lambda m, t, d, depth, init: unrolled_from(m, t, d, depth, torch.zeros_like(init)))

    def one_pass_short(model, tokens, dense_id, depth, init):
        return unrolled_from(model, tokens, dense_id, max(depth - 1, 0), init)

    with pytest.raises(ExerciseFailed, match="passes in all"):
        check_unrolled_from(one_pass_short)

    def unshifted(model, tokens, dense_id, depth, init):
        embeds, mask, vectors = model.embed(tokens), tokens == dense_id, init
        for _ in range(depth):
            vectors, _ = hidden_and_logits(model, add_dense_vectors(embeds, vectors, mask))
        return hidden_and_logits(model, add_dense_vectors(embeds, vectors, mask))[1]

    with pytest.raises(ExerciseFailed, match="stale vectors, depth 1"):
        check_unrolled_from(unshifted)
    assert shift_to_next_position is not None  # the helper a learner needs is importable from lib.methods.dense
