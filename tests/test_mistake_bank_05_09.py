"""Mistake bank, notebooks 05-09: typical mistakes written from each exercise's docstring, each
rejected in strict mode with a message that NAMES the mistake, not the generic recipe alone. The
in-place and gradient (detach) mistakes of notebook 05, the tie and boundary mistakes of 08 and 09
are among them."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from lib.core.claims import strict
from mistake_bank_common import assert_enough_mistakes, assert_rejected_and_named, bank_ids
from lib.exercises.dense import check_add_dense_vectors, check_continuation_loss, check_unrolled_logits
from lib.exercises.dense_open import check_selection_gain, check_unrolled_from, check_useful_counts
from lib.exercises.harness import check_verdict, check_widest_within
from lib.exercises.planning import check_cosine_disaffinity, check_cross_attention_mask, check_future_aggregate
from lib.exercises.thoughts import check_insert_tokens, check_insertion_gain, check_thought_ranks
from lib.methods.dense import hidden_and_logits, shift_to_next_position, target_log_likelihood
from lib.methods.thoughts import insert_tokens


# ----------------------------------------------------------------------------- 05 add_dense_vectors
def add_in_place(e, v, m):
    e[m] += v[m]
    return e


def add_detached(e, v, m):
    return e + v.detach() * m[..., None].float()


def add_replaces(e, v, m):
    return torch.where(m[..., None], v, e)


def add_everywhere(e, v, m):
    return e + v


def add_inverted(e, v, m):
    return e + v * (~m)[..., None].float()


# ----------------------------------------------------------------------------- 05 unrolled_logits
def _unrolled(model, tokens, dense_id, depth, passes=None, shift=True, detach=False, raw=False):
    mask = tokens == dense_id
    embeds = model.embed(tokens)
    vectors = torch.zeros_like(embeds)
    for _ in range(depth if passes is None else passes):
        hidden, _ = hidden_and_logits(model, embeds + vectors * mask[..., None], source="raw" if raw else "normed")
        vectors = shift_to_next_position(hidden) if shift else hidden
        if detach:
            vectors = vectors.detach()
    return hidden_and_logits(model, embeds + vectors * mask[..., None])[1]


def unrolled_detached(model, tokens, dense_id, depth):
    return _unrolled(model, tokens, dense_id, depth, detach=True)


def unrolled_one_pass_short(model, tokens, dense_id, depth):
    return _unrolled(model, tokens, dense_id, depth, passes=max(depth - 1, 0))


def unrolled_no_shift(model, tokens, dense_id, depth):
    return _unrolled(model, tokens, dense_id, depth, shift=False)


def unrolled_raw(model, tokens, dense_id, depth):
    return _unrolled(model, tokens, dense_id, depth, raw=True)


def unrolled_no_feedback(model, tokens, dense_id, depth):
    return _unrolled(model, tokens, dense_id, depth, passes=0)


# ----------------------------------------------------------------------------- 05 continuation_loss
def _per_token(logits, tokens):
    return logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


def cont_own_position(logits, tokens, position):
    lp = logits.log_softmax(-1)
    return -lp[:, position:].gather(-1, tokens[:, position:, None]).squeeze(-1).mean(1)


def cont_one_late(logits, tokens, position):
    return -_per_token(logits, tokens)[:, position + 1:].mean(1)


def cont_summed(logits, tokens, position):
    return -_per_token(logits, tokens)[:, position:].sum(1)


def cont_batch_mean(logits, tokens, position):
    return -_per_token(logits, tokens)[:, position:].mean()


def cont_sign(logits, tokens, position):
    return _per_token(logits, tokens)[:, position:].mean(1)


# ----------------------------------------------------------------------------- 06 thought_ranks
def ranks_ge(logits, t):
    return (logits >= logits[..., t : t + 1]).sum(-1)


def ranks_smaller(logits, t):
    return (logits < logits[..., t : t + 1]).sum(-1)


def ranks_one_based(logits, t):
    return (logits > logits[..., t : t + 1]).sum(-1) + 1


def ranks_by_sort(logits, t):
    return logits.argsort(-1, descending=True).argsort(-1)[..., t]


# ----------------------------------------------------------------------------- 06 insert_tokens
def insert_unshifted_map(tokens, lengths, positions, token_id, pad_id):
    new, new_lengths, _ = insert_tokens(tokens, lengths, positions, token_id, pad_id)
    j = torch.arange(tokens.shape[1]).expand_as(tokens)
    return new, new_lengths, torch.where(j < lengths[:, None], j, -1)


def insert_lengths_unchanged(tokens, lengths, positions, token_id, pad_id):
    new, _, index_map = insert_tokens(tokens, lengths, positions, token_id, pad_id)
    return new, lengths.clone(), index_map


def insert_all_lengths(tokens, lengths, positions, token_id, pad_id):
    new, _, index_map = insert_tokens(tokens, lengths, positions, token_id, pad_id)
    return new, lengths + 1, index_map


def insert_minus_one_wraps(tokens, lengths, positions, token_id, pad_id):
    new, new_lengths, index_map = insert_tokens(tokens, lengths, positions, token_id, pad_id)
    rows = torch.arange(tokens.shape[0])
    new[rows, positions] = token_id  # positions -1 writes into the last column
    return new, new_lengths, index_map


def insert_too_late(tokens, lengths, positions, token_id, pad_id):
    later = torch.where(positions >= 0, (positions + 1).clamp(max=lengths), positions)
    return insert_tokens(tokens, lengths, later, token_id, pad_id)


def insert_map_pads(tokens, lengths, positions, token_id, pad_id):
    new, new_lengths, _ = insert_tokens(tokens, lengths, positions, token_id, pad_id)
    j = torch.arange(tokens.shape[1]).expand_as(tokens)
    return new, new_lengths, j + ((j >= positions[:, None]) & (positions[:, None] >= 0)).long()


# ----------------------------------------------------------------------------- 06 insertion_gain
def _gain(lp_without, lp_with, positions, lengths, shift=1, sign=1, pad=False, minus_one=False, before=False):
    j = torch.arange(lp_without.shape[1])[None]
    t = positions[:, None]
    use = (j < lengths[:, None]) if not pad else torch.ones_like(j, dtype=torch.bool)
    use = use & ((j >= t) if not before else True) & ((t >= 0) if not minus_one else True)
    w = lp_with[:, shift:] if shift else lp_with[:, :-1]
    return sign * torch.where(use, w - lp_without, torch.zeros_like(lp_without)).sum(1)


# ----------------------------------------------------------------------------- 07
def mask_first_positions(q, k):
    return torch.ones(q, k, dtype=torch.bool).tril()


def mask_strict(q, k):
    return torch.ones(q, k, dtype=torch.bool).tril(diagonal=k - q - 1)


def mask_inverted(q, k):
    return ~torch.ones(q, k, dtype=torch.bool).tril(diagonal=k - q)


def mask_float(q, k):
    return torch.ones(q, k).tril(diagonal=k - q)


def future_with_present(E, n):
    return sum(E[:, z - 1 : z - 1 + E.shape[1] - n] / z for z in range(1, n + 1))


def future_times_z(E, n):
    return sum(E[:, z : z + E.shape[1] - n] * z for z in range(1, n + 1))


def future_unweighted(E, n):
    return sum(E[:, z : z + E.shape[1] - n] for z in range(1, n + 1))


def future_padded(E, n):
    return F.pad(sum(E[:, z : z + E.shape[1] - n] / z for z in range(1, n + 1)), (0, 0, 0, n))


# ----------------------------------------------------------------------------- 08 verdict
def _verdict(separated, big, use_sign=True):
    def verdict(base, method, higher, min_effect):
        s = 1 if (higher or not use_sign) else -1
        m, b = [s * x for x in method], [s * x for x in base]
        gain = sum(m) / len(m) - sum(b) / len(b)
        if separated(m, b) and big(gain, min_effect):
            return "better"
        if separated(b, m) and big(-gain, min_effect):
            return "worse"
        return "no measurable effect"
    return verdict


verdict_means_only = _verdict(lambda m, b: True, lambda g, e: g > e)
verdict_tie_beats = _verdict(lambda m, b: min(m) >= max(b), lambda g, e: g > e)
verdict_effect_ge = _verdict(lambda m, b: min(m) > max(b), lambda g, e: g >= e)
verdict_no_min_effect = _verdict(lambda m, b: min(m) > max(b), lambda g, e: g > 0)
verdict_no_direction = _verdict(lambda m, b: min(m) > max(b), lambda g, e: g > e, use_sign=False)


# ----------------------------------------------------------------------------- 09
def _selection(model, tokens, targets, dense_id, shift=True, masked=True, sign=1, raw=False, mean=False):
    embeds = model.embed(tokens)
    hidden, without = hidden_and_logits(model, embeds, source="raw" if raw else "normed")
    vectors = shift_to_next_position(hidden) if shift else hidden
    mask = (tokens == dense_id) if masked else torch.ones_like(tokens, dtype=torch.bool)
    _, with_ = hidden_and_logits(model, embeds + vectors * mask[..., None])
    gain = sign * (target_log_likelihood(with_, targets) - target_log_likelihood(without, targets))
    return gain / (targets != -100).sum(1).clamp(min=1) if mean else gain


def counts_strict(probs, threshold):
    ok = probs > threshold
    return torch.where(ok.any(1), ok.float().argmax(1), probs.shape[1] - 1)


def counts_no_fallback(probs, threshold):
    return (probs >= threshold).float().argmax(1)


def counts_highest(probs, threshold):
    return probs.argmax(1)


def counts_how_many(probs, threshold):
    return (probs >= threshold).sum(1)


def _from(model, tokens, dense_id, depth, init, passes=None, zero=False, shift=True, refeed_init=False):
    embeds, mask = model.embed(tokens), tokens == dense_id
    vectors = torch.zeros_like(init) if zero else init
    for _ in range(depth if passes is None else passes):
        hidden, _ = hidden_and_logits(model, embeds + vectors * mask[..., None])
        vectors = init if refeed_init else (shift_to_next_position(hidden) if shift else hidden)
    return hidden_and_logits(model, embeds + vectors * mask[..., None])[1]


BANK = [
    ("add_dense_vectors", check_add_dense_vectors, add_in_place, "in place"),
    ("add_dense_vectors", check_add_dense_vectors, add_detached, "detached"),
    ("add_dense_vectors", check_add_dense_vectors, add_replaces, "replaced the embedding"),
    ("add_dense_vectors", check_add_dense_vectors, add_everywhere, "ignoring the mask"),
    ("add_dense_vectors", check_add_dense_vectors, add_inverted, "mask is FALSE"),
    ("unrolled_logits", check_unrolled_logits, unrolled_detached, "detached the fed-back vectors"),
    ("unrolled_logits", check_unrolled_logits, unrolled_one_pass_short, "passes in all: run depth + 1"),
    ("unrolled_logits", check_unrolled_logits, unrolled_no_shift, "its own position"),
    ("unrolled_logits", check_unrolled_logits, unrolled_raw, "un-normalised residual"),
    ("unrolled_logits", check_unrolled_logits, unrolled_no_feedback, "did not feed any vector back"),
    ("continuation_loss", check_continuation_loss, cont_own_position, "OWN position"),
    ("continuation_loss", check_continuation_loss, cont_one_late, "one token late"),
    ("continuation_loss", check_continuation_loss, cont_summed, "summed"),
    ("continuation_loss", check_continuation_loss, cont_batch_mean, "averaged over the batch"),
    ("continuation_loss", check_continuation_loss, cont_sign, "sign is flipped"),
    ("thought_ranks", check_thought_ranks, ranks_ge, "counted the thought itself"),
    ("thought_ranks", check_thought_ranks, lambda l, t: ranks_ge(l, t) - 1, "ties counted against"),
    ("thought_ranks", check_thought_ranks, ranks_smaller, "SMALLER"),
    ("thought_ranks", check_thought_ranks, ranks_one_based, "start at 1"),
    ("thought_ranks", check_thought_ranks, ranks_by_sort, "sorted order"),
    ("insert_tokens", check_insert_tokens, insert_unshifted_map, "index_map does not move"),
    ("insert_tokens", check_insert_tokens, insert_lengths_unchanged, "lengths did not grow"),
    ("insert_tokens", check_insert_tokens, insert_all_lengths, "every length grew"),
    ("insert_tokens", check_insert_tokens, insert_minus_one_wraps, "position -1 got a token"),
    ("insert_tokens", check_insert_tokens, insert_too_late, "one position too late"),
    ("insert_tokens", check_insert_tokens, insert_map_pads, "not -1 at the padding"),
    ("insertion_gain", check_insertion_gain, lambda *a: _gain(*a, shift=0), "OLD index"),
    ("insertion_gain", check_insertion_gain, lambda *a: _gain(*a, sign=-1), "sign is flipped"),
    ("insertion_gain", check_insertion_gain, lambda *a: _gain(*a, pad=True), "padding"),
    ("insertion_gain", check_insertion_gain, lambda *a: _gain(*a, minus_one=True), "must gain 0"),
    ("insertion_gain", check_insertion_gain, lambda *a: _gain(*a, before=True), "BEFORE the insertion"),
    ("cross_attention_mask", check_cross_attention_mask, mask_first_positions, "FIRST positions"),
    ("cross_attention_mask", check_cross_attention_mask, mask_strict, "AND including"),
    ("cross_attention_mask", check_cross_attention_mask, mask_inverted, "FORBIDDEN"),
    ("cross_attention_mask", check_cross_attention_mask, mask_float, "float32 mask"),
    ("future_aggregate", check_future_aggregate, future_with_present, "included the current embedding"),
    ("future_aggregate", check_future_aggregate, future_times_z, "weighted the z-th embedding by z"),
    ("future_aggregate", check_future_aggregate, future_unweighted, "did not weight"),
    ("future_aggregate", check_future_aggregate, future_padded, "kept every position"),
    ("cosine_disaffinity", check_cosine_disaffinity, lambda a, b: (1 - F.cosine_similarity(a, b, dim=-1)).mean(), "1 - cos"),
    ("cosine_disaffinity", check_cosine_disaffinity, lambda a, b: F.cosine_similarity(a, b, dim=-1).mean(), "similarity itself"),
    ("cosine_disaffinity", check_cosine_disaffinity, lambda a, b: (1 - (F.cosine_similarity(a, b, dim=0) + 1) / 2).mean(), "wrong dimension"),
    ("cosine_disaffinity", check_cosine_disaffinity, lambda a, b: 1 - (F.cosine_similarity(a, b, dim=-1) + 1) / 2, "one value per position"),
    ("widest_within", check_widest_within, lambda b, c, w: [x for x in w if c(x) <= b][-1], "last fitting width"),
    ("widest_within", check_widest_within, lambda b, c, w: max(x for x in w if c(x) < b), "exactly at the budget"),
    ("widest_within", check_widest_within, lambda b, c, w: min(x for x in w if c(x) <= b), "smallest"),
    ("widest_within", check_widest_within, lambda b, c, w: max(c(x) for x in w if c(x) <= b), "parameter count"),
    ("verdict", check_verdict, verdict_means_only, "means only"),
    ("verdict", check_verdict, verdict_tie_beats, "tied seed"),
    ("verdict", check_verdict, verdict_effect_ge, "EQUAL to min_effect"),
    ("verdict", check_verdict, verdict_no_min_effect, "ignored min_effect"),
    ("verdict", check_verdict, verdict_no_direction, "higher_is_better"),
    ("selection_gain", check_selection_gain, lambda *a: _selection(*a, sign=-1), "sign is flipped"),
    ("selection_gain", check_selection_gain, lambda *a: _selection(*a, shift=False), "shift it"),
    ("selection_gain", check_selection_gain, lambda *a: _selection(*a, masked=False), "EVERY position"),
    ("selection_gain", check_selection_gain, lambda *a: _selection(*a, raw=True), "un-normalised residual"),
    ("selection_gain", check_selection_gain, lambda *a: _selection(*a, mean=True), "averaged the log-likelihood"),
    ("useful_counts", check_useful_counts, counts_strict, "exactly at the threshold"),
    ("useful_counts", check_useful_counts, counts_no_fallback, "largest budget"),
    ("useful_counts", check_useful_counts, counts_highest, "highest probability"),
    ("useful_counts", check_useful_counts, counts_how_many, "how many budgets"),
    ("unrolled_from", check_unrolled_from, lambda *a: _from(*a, zero=True), "zero vectors"),
    ("unrolled_from", check_unrolled_from, lambda m, t, d, depth, i: _from(m, t, d, depth, i, passes=max(depth - 1, 0)), "passes in all"),
    ("unrolled_from", check_unrolled_from, lambda *a: _from(*a, shift=False), "own position"),
    ("unrolled_from", check_unrolled_from, lambda *a: _from(*a, refeed_init=True), "init in every pass"),
]

NOTEBOOK_EXERCISES = ["add_dense_vectors", "unrolled_logits", "continuation_loss", "thought_ranks", "insert_tokens",
                      "insertion_gain", "cross_attention_mask", "future_aggregate", "cosine_disaffinity",
                      "widest_within", "verdict", "selection_gain", "useful_counts", "unrolled_from"]


def test_every_exercise_has_at_least_three_named_mistakes():
    assert_enough_mistakes(BANK, NOTEBOOK_EXERCISES)


@pytest.mark.parametrize("exercise, check, wrong, named", BANK, ids=bank_ids(BANK))
def test_mistake_is_rejected_and_named(exercise, check, wrong, named):
    assert_rejected_and_named(exercise, check, wrong, named)
