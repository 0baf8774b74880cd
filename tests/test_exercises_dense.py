"""Each notebook-05 checker passes on a correct answer and fails on a stub and on a typical mistake."""

import pytest
import torch

from lib.methods.dense import continuation_loss, hidden_and_logits, shift_to_next_position, unrolled_forward
from lib.exercises import ExerciseFailed, unwritten_exercise
from lib.exercises.dense import (
    check_add_dense_vectors,
    check_continuation_loss,
    check_unrolled_logits,
    reference_add_dense_vectors,
)


pytestmark = pytest.mark.usefixtures("strict_checkers")


stub = unwritten_exercise


def test_add_dense_vectors():
    check_add_dense_vectors(reference_add_dense_vectors)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_add_dense_vectors(stub)
    with pytest.raises(ExerciseFailed, match="ADD"):  # replaces the embedding instead of adding
        check_add_dense_vectors(lambda e, v, m: torch.where(m[..., None], v, e))
    with pytest.raises(ExerciseFailed):  # ignores the mask
        check_add_dense_vectors(lambda e, v, m: e + v)


def test_unrolled_logits():
    check_unrolled_logits(lambda model, t, d, depth: unrolled_forward(model, t, d, depth).logits)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_unrolled_logits(stub)

    def no_shift(model, tokens, dense_id, depth):
        mask = tokens == dense_id
        embeds = model.embed(tokens)
        vectors = torch.zeros_like(embeds)
        for _ in range(depth):
            hidden, _ = hidden_and_logits(model, embeds + vectors * mask[..., None])
            vectors = hidden  # forgot to shift: the position's own vector comes back
        return hidden_and_logits(model, embeds + vectors * mask[..., None])[1]

    with pytest.raises(ExerciseFailed, match="depth=1"):
        check_unrolled_logits(no_shift)

    def one_pass_only(model, tokens, dense_id, depth):
        mask = tokens == dense_id
        embeds = model.embed(tokens)
        hidden, logits = hidden_and_logits(model, embeds)
        if depth == 0:
            return logits
        return hidden_and_logits(model, embeds + shift_to_next_position(hidden) * mask[..., None])[1]

    with pytest.raises(ExerciseFailed, match="depth=2"):
        check_unrolled_logits(one_pass_only)


def test_continuation_loss():
    check_continuation_loss(continuation_loss)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_continuation_loss(stub)

    def off_by_one(logits, tokens, position):
        lp = logits[:, position + 1 : -1].log_softmax(-1)
        return -lp.gather(-1, tokens[:, position + 2 :, None]).squeeze(-1).mean(1)

    with pytest.raises(ExerciseFailed, match="AFTER"):
        check_continuation_loss(off_by_one)
