"""Mistake bank, notebooks 01-02: typical mistakes written from each exercise's docstring, each
rejected in strict mode with a message that NAMES the mistake ("it looks like ..."), not the
generic recipe alone. In-place, tie, boundary and train/eval-mode mistakes are among them."""

from __future__ import annotations

import re

import pytest
import torch

from lib.core.bpe import get_pair_counts, merge_pair
from lib.core.claims import strict
from lib.core.model import GPT, GPTConfig
from mistake_bank_common import assert_enough_mistakes, assert_rejected_and_named, bank_ids
from lib.exercises.logits import (
    check_greedy_generate, check_softmax, check_temperature, check_top_k, check_top_p,
)
from lib.exercises.tokenization import check_apply_merges, check_get_pair_counts, check_merge_pair

INF = float("-inf")


# ----------------------------------------------------------------------------- 01 get_pair_counts
def pairs_once(ids):
    return {p: 1 for p in zip(ids, ids[1:])}


def pairs_skip_ahead(ids):
    counts, i = {}, 0
    while i + 1 < len(ids):
        counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
        i += 2
    return counts


def pairs_range_off_by_one(ids):
    counts = {}
    for i in range(len(ids) - 2):
        counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
    return counts


def pairs_wrap_around(ids):
    counts = {}
    for i in range(len(ids)):
        if len(ids) > 1:
            pair = (ids[i], ids[(i + 1) % len(ids)])
            counts[pair] = counts.get(pair, 0) + 1
    return counts


# ----------------------------------------------------------------------------- 01 merge_pair
def merge_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i : i + 2] = [new_id]
        i += 1
    return ids


def merge_overlapping(ids, pair, new_id):
    out = []
    for i, x in enumerate(ids):
        out.append(new_id if i + 1 < len(ids) and (x, ids[i + 1]) == pair else x)
    return out


def merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return list(ids)


def merge_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# ----------------------------------------------------------------------------- 01 apply_merges
def merges_text_order(ids, merges):
    ids = list(ids)
    while True:
        pair = next((p for p in zip(ids, ids[1:]) if p in merges), None)
        if pair is None:
            return ids
        ids = merge_pair(ids, pair, merges[pair])


def merges_most_frequent(ids, merges):
    ids = list(ids)
    while True:
        counts = {p: c for p, c in get_pair_counts(ids).items() if p in merges}
        if not counts:
            return ids
        pair = max(counts, key=counts.get)
        ids = merge_pair(ids, pair, merges[pair])


def merges_highest_rank(ids, merges):
    rank = {p: r for r, p in enumerate(merges)}
    ids = list(ids)
    while True:
        present = [p for p in zip(ids, ids[1:]) if p in rank]
        if not present:
            return ids
        pair = max(present, key=rank.get)
        ids = merge_pair(ids, pair, merges[pair])


def merges_once(ids, merges):
    rank = {p: r for r, p in enumerate(merges)}
    present = [p for p in zip(ids, ids[1:]) if p in rank]
    if not present:
        return list(ids)
    pair = min(present, key=rank.get)
    return merge_pair(list(ids), pair, merges[pair])


# ----------------------------------------------------------------------------- 02 softmax
def softmax_naive(x):
    return x.exp() / x.exp().sum(-1, keepdim=True)


def softmax_global_max(x):
    e = (x - x.max()).exp()
    return e / e.sum(-1, keepdim=True)


def softmax_whole_tensor(x):
    e = (x - x.max()).exp()
    return e / e.sum()


def softmax_unnormalised(x):
    return (x - x.max(-1, keepdim=True).values).exp()


def softmax_first_dim(x):
    e = (x - x.max(0, keepdim=True).values).exp()
    return e / e.sum(0, keepdim=True)


# ----------------------------------------------------------------------------- 02 top_k_filter
def top_k_scatter(logits, k):  # torch.topk + scatter: exactly k tokens, a tie at the cut is dropped
    values, index = logits.topk(k, dim=-1)
    return torch.full_like(logits, INF).scatter(-1, index, values)


def top_k_strict(logits, k):
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits <= kth, INF)


def top_k_zero_fill(logits, k):
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, 0.0)


def top_k_smallest(logits, k):
    kth = logits.topk(k, dim=-1, largest=False).values[..., -1:]
    return logits.masked_fill(logits > kth, INF)


def top_k_whole_batch(logits, k):
    kth = logits.flatten().topk(k).values[-1]
    return logits.masked_fill(logits < kth, INF)


# ----------------------------------------------------------------------------- 02 top_p_filter
def top_p_drops_crossing(logits, p):
    s, order = logits.sort(-1, descending=True)
    drop = s.softmax(-1).cumsum(-1) > p
    return logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), INF)


def top_p_sorted_result(logits, p):
    s, _ = logits.sort(-1, descending=True)
    probs = s.softmax(-1)
    return s.masked_fill(probs.cumsum(-1) - probs >= p, INF)


def top_p_unsorted(logits, p):
    probs = logits.softmax(-1)
    return logits.masked_fill(probs.cumsum(-1) - probs >= p, INF)


def top_p_ascending(logits, p):
    s, order = logits.sort(-1)
    probs = s.softmax(-1)
    drop = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), INF)


# ----------------------------------------------------------------------------- 02 greedy_generate
def greedy_reference_body(model, tokens, n_new):
    for _ in range(n_new):
        tokens = torch.cat([tokens, model(tokens)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return tokens


def greedy_leaves_eval(model, tokens, n_new):
    model.eval()  # never switched back
    with torch.no_grad():
        return greedy_reference_body(model, tokens, n_new)


def greedy_first_position(model, tokens, n_new):
    for _ in range(n_new):
        tokens = torch.cat([tokens, model(tokens)[:, 0].argmax(-1, keepdim=True)], dim=1)
    return tokens


def greedy_only_new(model, tokens, n_new):
    return greedy_reference_body(model, tokens, n_new)[:, tokens.shape[1]:]


def greedy_once(model, tokens, n_new):
    nxt = model(tokens)[:, -1].argmax(-1, keepdim=True)
    return torch.cat([tokens] + [nxt] * n_new, dim=1)


def greedy_one_short(model, tokens, n_new):
    return greedy_reference_body(model, tokens, n_new - 1)


_MODEL = None


def _greedy(fn):
    global _MODEL
    if _MODEL is None:
        torch.manual_seed(0)
        _MODEL = GPT(GPTConfig(d_vocab=20, n_ctx=32, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32)).eval()
    return check_greedy_generate(fn, _MODEL, torch.tensor([[1, 2, 3], [4, 5, 6]]))


BANK = [
    ("get_pair_counts", check_get_pair_counts, pairs_once, "each distinct pair once"),
    ("get_pair_counts", check_get_pair_counts, pairs_skip_ahead, "jumped past a pair"),
    ("get_pair_counts", check_get_pair_counts, pairs_range_off_by_one, "missed the last pair"),
    ("get_pair_counts", check_get_pair_counts, pairs_wrap_around, "wraps around"),
    ("get_pair_counts", check_get_pair_counts, lambda ids: {(b, a): c for (a, b), c in get_pair_counts(ids).items()}, "reversed"),
    ("merge_pair", check_merge_pair, merge_in_place, "in place"),
    ("merge_pair", check_merge_pair, merge_overlapping, "overlap"),
    ("merge_pair", check_merge_pair, merge_first_only, "only the first occurrence"),
    ("merge_pair", check_merge_pair, merge_drops_last, "last id is missing"),
    ("apply_merges", check_apply_merges, merges_text_order, "order they appear in the text"),
    ("apply_merges", check_apply_merges, merges_most_frequent, "most FREQUENT"),
    ("apply_merges", check_apply_merges, merges_highest_rank, "LATEST"),
    ("apply_merges", check_apply_merges, merges_once, "only once"),
    ("softmax", check_softmax, softmax_naive, "did not subtract the maximum"),
    ("softmax", check_softmax, softmax_global_max, "whole tensor, not of each row"),
    ("softmax", check_softmax, softmax_whole_tensor, "normalised over the whole tensor"),
    ("softmax", check_softmax, softmax_unnormalised, "did not divide by the sum"),
    ("softmax", check_softmax, softmax_first_dim, "first dimension"),
    ("apply_temperature", check_temperature, lambda x, t: x * t, "multiplied"),
    ("apply_temperature", check_temperature, lambda x, t: (x / t).softmax(-1), "probabilities"),
    ("apply_temperature", check_temperature, lambda x, t: (x / t).log_softmax(-1), "log-probabilities"),
    ("apply_temperature", check_temperature, lambda x, t: x - t, "subtracted the temperature"),
    ("top_k_filter", check_top_k, top_k_scatter, "tied"),
    ("top_k_filter", check_top_k, top_k_strict, "k-th largest logit itself"),
    ("top_k_filter", check_top_k, top_k_zero_fill, "to 0, not -inf"),
    ("top_k_filter", check_top_k, top_k_smallest, "SMALLEST"),
    ("top_k_filter", check_top_k, top_k_whole_batch, "whole batch"),
    ("top_p_filter", check_top_p, top_p_drops_crossing, "crosses p"),
    ("top_p_filter", check_top_p, top_p_sorted_result, "SORTED order"),
    ("top_p_filter", check_top_p, top_p_unsorted, "original token order"),
    ("top_p_filter", check_top_p, top_p_ascending, "ascending"),
    ("greedy_generate", _greedy, greedy_leaves_eval, "eval mode"),
    ("greedy_generate", _greedy, greedy_first_position, "FIRST position"),
    ("greedy_generate", _greedy, greedy_only_new, "only the 12 new tokens"),
    ("greedy_generate", _greedy, greedy_once, "once on the prompt"),
    ("greedy_generate", _greedy, greedy_one_short, "11 tokens instead of 12"),
]

NOTEBOOK_EXERCISES = ["get_pair_counts", "merge_pair", "apply_merges", "softmax", "apply_temperature",
                      "top_k_filter", "top_p_filter", "greedy_generate"]


def test_every_exercise_has_at_least_three_named_mistakes():
    assert_enough_mistakes(BANK, NOTEBOOK_EXERCISES)


@pytest.mark.parametrize("exercise, check, wrong, named", BANK, ids=bank_ids(BANK))
def test_mistake_is_rejected_and_named(exercise, check, wrong, named):
    assert_rejected_and_named(exercise, check, wrong, named)
