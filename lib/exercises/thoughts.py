"""Checkers for notebook 06 (thought insertion)."""

from __future__ import annotations

from typing import Callable

import torch

from lib.exercises import call_learner, checker, expect, expect_close, report
from lib.methods.thoughts import insert_tokens, insertion_scores, thought_ranks


@checker("thought_ranks")
def check_thought_ranks(fn: Callable) -> None:
    """``fn(logits, thought_id) -> ranks``: the rank of the thought token at every position
    (0 = the top logit; a tie does not count against it)."""
    name = "thought_ranks"
    gen = torch.Generator().manual_seed(0)
    cases = {
        "a hand-made row (ranks 2, 1, 0)": (torch.tensor([[[0.0, 3.0, 1.0, 2.0], [5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 9.0, 0.0]]]), 2),
        "ties with the thought (they do not push it down)": (torch.tensor([[[1.0, 1.0, 1.0, 0.0]]]), 1),
        "a random batch": (torch.randn(3, 5, 11, generator=gen), 7),
        "the thought is the last id": (torch.randn(2, 4, 6, generator=gen), 5),
    }
    for case, (logits, tid) in cases.items():
        got = call_learner(name, fn, logits.clone(), tid)
        expect(isinstance(got, torch.Tensor), name, case, "return a tensor of shape [batch, pos]")
        expect_close(
            got, thought_ranks(logits, tid), name, case,
            "count, at each position, the tokens whose logit is strictly larger than the thought's logit",
            mistakes={"ties counted against the thought: count STRICTLY larger logits (>)":
                      (logits >= logits[..., tid : tid + 1]).sum(-1) - 1},
        )
    report(name, len(cases))


@checker("insert_tokens")
def check_insert_tokens(fn: Callable) -> None:
    """``fn(tokens, lengths, positions, token_id, pad_id) -> (new_tokens, new_lengths, index_map)``."""
    name = "insert_tokens"
    T, PAD = 9, 0
    cases = {
        "one row, thought at index 2": (torch.tensor([[5, 6, 7, 8]]), torch.tensor([4]), torch.tensor([2])),
        "a padded row (the thought goes before the padding)": (torch.tensor([[1, 2, 3, PAD]]), torch.tensor([3]), torch.tensor([3])),
        "a row left unchanged (position -1)": (torch.tensor([[4, 4, PAD, PAD]]), torch.tensor([2]), torch.tensor([-1])),
        "a batch of three": (
            torch.tensor([[5, 6, 7, 8], [1, 2, 3, PAD], [4, 4, PAD, PAD]]),
            torch.tensor([4, 3, 2]),
            torch.tensor([1, 2, -1]),
        ),
    }
    for case, (tokens, lengths, positions) in cases.items():
        got = call_learner(name, fn, tokens.clone(), lengths.clone(), positions.clone(), T, PAD)
        expect(isinstance(got, tuple) and len(got) == 3, name, case, "return (new_tokens, new_lengths, index_map)")
        want = insert_tokens(tokens, lengths, positions, T, PAD)
        expect_close(
            got[0], want[0], name, case,
            "the new row is tokens[:t] + [token_id] + tokens[t:length], then pad_id up to width pos + 1; "
            "position t is the index the new token takes",
        )
        expect_close(got[1], want[1], name, case, "new_lengths = lengths + 1 where a token was inserted")
        expect_close(
            got[2], want[2], name, case,
            "index_map[b, j] is the new index of old token j: j before the insertion, j + 1 from it on, -1 at padding",
        )
    report(name, len(cases))


def _reference_gain(lp_without, lp_with, positions, lengths) -> torch.Tensor:
    tokens = torch.ones(lp_without.shape, dtype=torch.long)
    _, _, index_map = insert_tokens(tokens, lengths, positions, 2, 0)
    return insertion_scores(lp_without, lp_with, tokens, lengths, positions, index_map, thought_id=2)


def reference_insertion_gain(lp_without, lp_with, positions, lengths) -> torch.Tensor:
    """The solution: text log-likelihood with the thought minus without, over the moved tokens."""
    j = torch.arange(lp_without.shape[1], device=lp_without.device)[None]
    t = positions[:, None]
    after = (t >= 0) & (j >= t) & (j < lengths[:, None])
    return torch.where(after, lp_with[:, 1:] - lp_without, torch.zeros_like(lp_without)).sum(1)


@checker("insertion_gain")
def check_insertion_gain(fn: Callable) -> None:
    """``fn(lp_without, lp_with, positions, lengths) -> gain [batch]``: text log-likelihood with
    the thought minus without, over the same text tokens (those at and after the insertion)."""
    name = "insertion_gain"
    gen = torch.Generator().manual_seed(3)
    cases = {
        "the hand-made row of the text": (
            torch.tensor([[0.0, -1, -2, -3, -4]]),
            torch.tensor([[0.0, -50.0, 9.0, -1.5, -3, -4]]),
            torch.tensor([2]),
            torch.tensor([5]),
        ),
        "a padded row and a row without insertion": (
            torch.tensor([[0.0, -1, -2, 0, 0], [0.0, -2, -2, -2, -2]]),
            torch.tensor([[0.0, -1, 3.0, -0.5, 7, 7], [0.0, -1, -1, -1, -1, 0]]),
            torch.tensor([1, -1]),
            torch.tensor([3, 5]),
        ),
        "a random batch": (
            -torch.rand(4, 8, generator=gen) * 5,
            -torch.rand(4, 9, generator=gen) * 5,
            torch.tensor([1, 4, 7, 3]),
            torch.tensor([8, 8, 8, 5]),
        ),
    }
    for case, (lp_without, lp_with, positions, lengths) in cases.items():
        lp_without[:, 0] = 0.0
        lp_with[:, 0] = 0.0
        got = call_learner(name, fn, lp_without.clone(), lp_with.clone(), positions.clone(), lengths.clone())
        expect_close(
            got, _reference_gain(lp_without, lp_with, positions, lengths), name, case,
            "old token j (t <= j < length) sits at index j + 1 once the thought is in: compare lp_with[b, j + 1] "
            "with lp_without[b, j]; the thought's own entry lp_with[b, t] is never a target; rows with t = -1 gain 0",
            atol=1e-4,
        )
    report(name, len(cases))


def reference_thought_ranks(logits: torch.Tensor, thought_id: int) -> torch.Tensor:
    """The solution, as the notebook writes it."""
    return (logits > logits[..., thought_id : thought_id + 1]).sum(-1)


def reference_insert_tokens(tokens, lengths, positions, token_id, pad_id):
    """The solution, as the notebook writes it."""
    batch, pos = tokens.shape
    j = torch.arange(pos, device=tokens.device).expand(batch, pos)
    t = positions[:, None]
    real = j < lengths[:, None]
    shift = ((j >= t) & (t >= 0)).long()
    index_map = torch.where(real, j + shift, torch.full_like(j, -1))
    new = torch.full((batch, pos + 1), pad_id, dtype=tokens.dtype, device=tokens.device)
    rows = torch.arange(batch, device=tokens.device)[:, None].expand(batch, pos)
    new[rows[real], index_map[real]] = tokens[real]
    inserted = positions >= 0
    new[inserted.nonzero().squeeze(1), positions[inserted]] = token_id
    return new, lengths + inserted.long(), index_map
