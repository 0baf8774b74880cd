"""Checkers for notebook 09 (the design notes' open questions about dense tokens)."""

from __future__ import annotations

from typing import Callable

import torch

from lib.methods.dense import add_dense_vectors, hidden_and_logits, target_log_likelihood
from lib.methods.dense_emit import useful_counts as reference_useful_counts  # the solutions, kept in one place
from lib.methods.dense_selection import selection_gains
from lib.methods.dense_thoughts import precompute_vectors, unrolled_from
from lib.exercises import call_learner, checker, expect_close, random_tiny_gpt, report
from lib.core.model import GPT

_DENSE = 5


def reference_selection_gain(model: GPT, tokens: torch.Tensor, targets: torch.Tensor, dense_id: int) -> torch.Tensor:
    """The solution: log-likelihood of the targets with the candidate vectors minus without."""
    return selection_gains(model, tokens, targets, dense_id)


def reference_unrolled_from(model: GPT, tokens: torch.Tensor, dense_id: int, depth: int, init: torch.Tensor) -> torch.Tensor:
    return unrolled_from(model, tokens, dense_id, depth, init)


def _unshifted_gain(model, tokens, targets, dense_id):
    embeds = model.embed(tokens)
    hidden, without = hidden_and_logits(model, embeds)
    _, with_ = hidden_and_logits(model, add_dense_vectors(embeds, hidden, tokens == dense_id))
    return target_log_likelihood(with_, targets) - target_log_likelihood(without, targets)


@checker("selection_gain")
def check_selection_gain(fn: Callable) -> None:
    """``fn(model, tokens, targets, dense_id) -> [batch]`` gains in nats (with minus without)."""
    name = "selection_gain"
    model = random_tiny_gpt()
    tokens = torch.tensor([[1, 2, _DENSE, 3, 4, 0, 1, 2], [0, 1, 2, 3, _DENSE, 4, _DENSE, 1], [1, 2, 3, 4, 0, 1, 2, 3]])
    targets = torch.cat([tokens[:, 1:], torch.full((3, 1), -100)], dim=1).masked_fill(
        torch.cat([tokens[:, 1:], torch.zeros(3, 1, dtype=torch.long)], dim=1) == _DENSE, -100)
    with torch.no_grad():
        got = call_learner(name, fn, model, tokens.clone(), targets.clone(), _DENSE)
        expected = selection_gains(model, tokens, targets, _DENSE)
        mistakes = {"you took without minus with (the sign is flipped: a helpful vector must give a positive gain)": -expected,
                    "the vector made AT the dense position was fed there: shift it, the one made at t - 1 enters at t":
                        _unshifted_gain(model, tokens, targets, _DENSE)}
    expect_close(
        got, expected, name, "three rows (one without any dense token: its gain is 0)",
        "pass 0: hidden states and logits with plain dense embeddings (the 'without' score); shift the hidden "
        "states one position right and add them at the dense positions for pass 1 (the 'with' score); return "
        "target_log_likelihood(with) - target_log_likelihood(without)",
        atol=1e-4, mistakes=mistakes,
    )
    report(name, 1)


@checker("useful_counts")
def check_useful_counts(fn: Callable) -> None:
    """``fn(probs [batch, budgets], threshold) -> [batch]`` the fewest budget reaching ``threshold``."""
    name = "useful_counts"
    probs = torch.tensor([[0.9, 0.9, 0.9], [0.1, 0.6, 0.9], [0.1, 0.2, 0.7], [0.1, 0.2, 0.3], [0.6, 0.1, 0.1]])
    cases = [("threshold 0.5", 0.5), ("threshold 0.65", 0.65), ("no row reaches 0.95", 0.95)]
    for case, threshold in cases:
        got = call_learner(name, fn, probs.clone(), threshold)
        expected = reference_useful_counts(probs, threshold)
        ok = probs >= threshold
        mistakes = {"a row where no budget reaches the threshold got 0: it must get the largest budget":
                        ok.float().argmax(dim=1),
                    "you took the budget with the highest probability, not the fewest that suffices": probs.argmax(dim=1)}
        expect_close(
            got, expected, name, case,
            "for each row, the first column whose probability is >= threshold; when no column is, the last column "
            "(the largest budget): `ok.float().argmax(1)` finds the first True, and `ok.any(1)` tells the rows with none",
            atol=0, mistakes=mistakes,
        )
    report(name, len(cases))


@checker("unrolled_from")
def check_unrolled_from(fn: Callable) -> None:
    """``fn(model, tokens, dense_id, depth, init) -> logits`` of ``depth + 1`` passes started from ``init``."""
    name = "unrolled_from"
    model = random_tiny_gpt()
    tokens = torch.tensor([[1, 2, _DENSE, _DENSE, 3, 4, _DENSE, 0], [0, _DENSE, 1, 2, 3, _DENSE, 4, 2]])
    gen = torch.Generator().manual_seed(1)
    stale = torch.randn(2, 8, model.cfg.d_model, generator=gen) * (tokens == _DENSE)[..., None]
    exact = precompute_vectors(model, tokens, _DENSE)
    cases = [("the exact vectors, depth 0", exact, 0), ("stale vectors, depth 0", stale, 0),
             ("stale vectors, depth 1", stale, 1), ("stale vectors, depth 2", stale, 2)]
    for case, init, depth in cases:
        with torch.no_grad():
            got = call_learner(name, fn, model, tokens, _DENSE, depth, init.clone())
            expected = unrolled_from(model, tokens, _DENSE, depth, init)
            zero_start = unrolled_from(model, tokens, _DENSE, depth, torch.zeros_like(init))
            mistakes = {"you started from zero vectors instead of init (the warm start is the point)": zero_start}
            if depth:
                mistakes[f"you ran {depth} passes in all: pass 0 already feeds init, then {depth} more"] = \
                    unrolled_from(model, tokens, _DENSE, depth - 1, init)
        expect_close(
            got, expected, name, case,
            "pass 0 feeds init at the dense positions; each of the `depth` further passes feeds the hidden states "
            "of the pass before, shifted one position right; return the logits of the last pass",
            atol=1e-4, mistakes=mistakes,
        )
    report(name, len(cases))
