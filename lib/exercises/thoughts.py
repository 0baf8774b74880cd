"""Checkers for notebook 06 (thought insertion)."""

from __future__ import annotations

from typing import Callable

import torch

from lib.exercises import call_learner, checker, expect, expect_close, explain, report
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
    outputs = []
    for case, (logits, tid) in cases.items():
        got = call_learner(name, fn, logits.clone(), tid)
        expect(isinstance(got, torch.Tensor), name, case, "return a tensor of shape [batch, pos]")
        outputs.append(got)

    def wrong(logits, tid):
        thought = logits[..., tid : tid + 1]
        by_sort = logits.argsort(dim=-1, descending=True).argsort(dim=-1)[..., tid]
        return {
            "you counted the thought itself (>= includes its own logit): count the OTHER tokens, those with a strictly larger logit":
                (logits >= thought).sum(-1),
            "ties counted against the thought: count STRICTLY larger logits (>)": (logits >= thought).sum(-1) - 1,
            "you counted the tokens with a SMALLER logit: the rank counts those above the thought":
                (logits < thought).sum(-1),
            "your ranks start at 1: the top choice has rank 0": (logits > thought).sum(-1) + 1,
            "you took the thought's place in a sorted order: a sort breaks ties arbitrarily, and ties must not "
            "count against the thought": by_sort,
        }

    candidates: dict[str, list] = {}
    for logits, tid in cases.values():
        for description, out in wrong(logits, tid).items():
            candidates.setdefault(description, []).append(out)
    for at, ((case, (logits, tid)), got) in enumerate(zip(cases.items(), outputs)):
        expected = thought_ranks(logits, tid)
        named = explain(outputs, candidates, at=at)
        expect_close(
            got, expected, name, case,
            "The rank is how many tokens the model prefers to the thought at that position; a token merely as "
            "likely as the thought is not preferred to it",
            mistakes={named: candidates[named][at]} if named else None,
        )
    report(name, len(cases))


def _insert_mistakes(tokens, lengths, positions, token_id, pad_id) -> dict[int, dict[str, torch.Tensor]]:
    """Typical wrong values of each output (0: new_tokens, 1: new_lengths, 2: index_map)."""
    new, new_lengths, index_map = insert_tokens(tokens, lengths, positions, token_id, pad_id)
    later = torch.where(positions >= 0, (positions + 1).clamp(max=lengths), positions)
    wrapped = new.clone()
    wrapped[positions < 0, -1] = token_id
    overwrite = torch.cat([tokens, torch.full_like(tokens[:, :1], pad_id)], dim=1)
    rows = (positions >= 0).nonzero().flatten()
    overwrite[rows, positions[rows]] = token_id
    j = torch.arange(tokens.shape[1]).expand_as(tokens)
    real = j < lengths[:, None]
    shift = (j >= positions[:, None]).long()
    return {
        0: {"you inserted one position too late: position t is the index the new token TAKES":
                insert_tokens(tokens, lengths, later, token_id, pad_id)[0],
            "a row with position -1 got a token (at the end: -1 indexes the last column): -1 means no insertion":
                wrapped,
            "you overwrote the token at position t instead of inserting: the tokens from t on move one place right":
                overwrite},
        1: {"the lengths did not grow: a row that got a token is one longer": lengths,
            "every length grew by 1, also in rows with position -1 (no insertion there)": lengths + 1},
        2: {"index_map does not move the tokens at and after the insertion: they sit one place later now":
                torch.where(real, j, torch.full_like(j, -1)),
            "index_map is not -1 at the padding": j + ((j >= positions[:, None]) & (positions[:, None] >= 0)).long(),
            "index_map moves the tokens of rows with position -1 too (no insertion there)":
                torch.where(real, j + shift, torch.full_like(j, -1))},
    }


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
        wrong = _insert_mistakes(tokens, lengths, positions, T, PAD)
        expect_close(
            got[0], want[0], name, case + ", new_tokens",
            "each row is its tokens before t, then the new token, then the rest of its real tokens, padded to "
            "width pos + 1; position t is the index the new token takes; a row with t = -1 is only padded",
            mistakes=wrong[0],
        )
        expect_close(got[1], want[1], name, case + ", new_lengths",
                     "a row is one token longer exactly when something was inserted into it", mistakes=wrong[1])
        expect_close(
            got[2], want[2], name, case + ", index_map",
            "index_map[b, j] is where old token j now sits: unchanged before the insertion, one later from it on, "
            "-1 at padding",
            mistakes=wrong[2],
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
        expected = _reference_gain(lp_without, lp_with, positions, lengths)
        j = torch.arange(lp_without.shape[1])[None]
        t = positions[:, None]
        after = (t >= 0) & (j >= t) & (j < lengths[:, None])
        own = torch.where(positions >= 0, lp_with.gather(1, positions.clamp(min=0)[:, None]).squeeze(1), 0.0)
        mistakes = {
            "you compared each old token with the entry at its OLD index in lp_with: once the thought is in, old "
            "token j sits at j + 1 (and the thought's own entry is never a target)":
                torch.where(after, lp_with[:, :-1] - lp_without, 0.0).sum(1),
            "the sign is flipped: the gain is WITH the thought minus without": -expected,
            "you counted the padding too: only old tokens j < length are text": torch.where(
                (t >= 0) & (j >= t), lp_with[:, 1:] - lp_without, 0.0).sum(1),
            "a row without insertion (t = -1) must gain 0": torch.where(
                (j >= t) & (j < lengths[:, None]), lp_with[:, 1:] - lp_without, 0.0).sum(1),
            "you counted the thought's own log-probability: it is never a target": expected + own,
            "you counted the tokens BEFORE the insertion too: they are not affected by it": torch.where(
                (t >= 0) & (j < lengths[:, None]), lp_with[:, 1:] - lp_without, 0.0).sum(1),
        }
        expect_close(
            got, expected, name, case,
            "compare each old text token's log-probability with and without the thought, for the tokens at and "
            "after the insertion (they moved one place in lp_with); the thought's own entry is never a target; rows "
            "with t = -1 gain 0",
            atol=1e-4, mistakes=mistakes,
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
