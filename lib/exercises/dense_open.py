"""Checkers for notebook 09 (the design notes' open questions about dense tokens)."""

from __future__ import annotations

from typing import Callable

import torch

from lib.methods.dense import add_dense_vectors, hidden_and_logits, shift_to_next_position, target_log_likelihood
from lib.methods.dense_emit import useful_counts as reference_useful_counts  # the solutions, kept in one place
from lib.methods.dense_selection import selection_gains
from lib.methods.dense_thoughts import precompute_vectors, unrolled_from
from lib.exercises import call_learner, checker, expect_close, explain, random_tiny_gpt, report
from lib.core.model import GPT

_DENSE = 5


def reference_selection_gain(model: GPT, tokens: torch.Tensor, targets: torch.Tensor, dense_id: int) -> torch.Tensor:
    """The solution: log-likelihood of the targets with the candidate vectors minus without."""
    return selection_gains(model, tokens, targets, dense_id)


def reference_unrolled_from(model: GPT, tokens: torch.Tensor, dense_id: int, depth: int, init: torch.Tensor) -> torch.Tensor:
    return unrolled_from(model, tokens, dense_id, depth, init)


def _gain_variant(model, tokens, targets, dense_id, shift=True, source="normed", masked=True):
    embeds = model.embed(tokens)
    hidden, without = hidden_and_logits(model, embeds, source=source)
    vectors = shift_to_next_position(hidden) if shift else hidden
    mask = tokens == dense_id if masked else torch.ones_like(tokens, dtype=torch.bool)
    _, with_ = hidden_and_logits(model, add_dense_vectors(embeds, vectors, mask))
    return target_log_likelihood(with_, targets) - target_log_likelihood(without, targets)


def _unshifted_gain(model, tokens, targets, dense_id):
    return _gain_variant(model, tokens, targets, dense_id, shift=False)


def _unshifted_from(model, tokens, dense_id, depth, init):
    embeds, mask, vectors = model.embed(tokens), tokens == dense_id, init
    for _ in range(depth):
        vectors, _ = hidden_and_logits(model, add_dense_vectors(embeds, vectors, mask))
    return hidden_and_logits(model, add_dense_vectors(embeds, vectors, mask))[1]


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
        n_targets = (targets != -100).sum(1).clamp(min=1)
        mistakes = {"you took without minus with (the sign is flipped: a helpful vector must give a positive gain)": -expected,
                    "the vector made AT the dense position was fed there: shift it, the one made at t - 1 enters at t":
                        _unshifted_gain(model, tokens, targets, _DENSE),
                    "you fed the vectors at EVERY position: only the dense positions receive one":
                        _gain_variant(model, tokens, targets, _DENSE, masked=False),
                    "you fed back the un-normalised residual stream: the candidate vectors are the hidden states "
                    "after the final LayerNorm": _gain_variant(model, tokens, targets, _DENSE, source="raw"),
                    "you averaged the log-likelihood over the targets: the gain is the SUMMED log-likelihood":
                        expected / n_targets}
    expect_close(
        got, expected, name, "three rows (one without any dense token: its gain is 0)",
        "Pass 0 (plain dense embeddings) gives the 'without' score and the candidate vectors; pass 1 feeds those "
        "vectors, shifted one position right, at the dense positions only and gives the 'with' score; the gain is "
        "the targets' summed log-likelihood with minus without",
        atol=1e-4, mistakes=mistakes,
    )
    report(name, 1)


@checker("useful_counts")
def check_useful_counts(fn: Callable) -> None:
    """``fn(probs [batch, budgets], threshold) -> [batch]`` the fewest budget reaching ``threshold``."""
    name = "useful_counts"
    # row 2 has a probability exactly at the 0.5 threshold: it counts (>=)
    probs = torch.tensor([[0.9, 0.9, 0.9], [0.1, 0.6, 0.9], [0.1, 0.5, 0.7], [0.1, 0.2, 0.3], [0.6, 0.1, 0.1]])
    cases = [("threshold 0.5", 0.5), ("threshold 0.65", 0.65), ("no row reaches 0.95", 0.95)]
    for case, threshold in cases:
        got = call_learner(name, fn, probs.clone(), threshold)
        expected = reference_useful_counts(probs, threshold)
        ok = probs >= threshold
        mistakes = {"a row where no budget reaches the threshold got 0: it must get the largest budget":
                        ok.float().argmax(dim=1),
                    "you took the budget with the highest probability, not the fewest that suffices": probs.argmax(dim=1),
                    "a probability exactly at the threshold did not count: 'reaches' means >= threshold":
                        reference_useful_counts(probs, float(torch.nextafter(torch.tensor(threshold), torch.tensor(2.0)))),
                    "you counted how many budgets reach the threshold: return the FEWEST dense tokens that do":
                        ok.sum(dim=1),
                    "you took the LAST budget that reaches the threshold: the fewest is the first":
                        torch.where(ok.any(1), probs.shape[1] - 1 - ok.flip(1).float().argmax(1), probs.shape[1] - 1)}
        expect_close(
            got, expected, name, case,
            "for each row, the first column whose probability reaches the threshold (>=); when no column does, the "
            "last column (the largest budget)",
            atol=0, mistakes=mistakes,
        )
    report(name, len(cases))


def _close(a, b) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.detach().double(), b.double(), atol=1e-4)


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
    with torch.no_grad():
        outputs = [call_learner(name, fn, model, tokens, _DENSE, depth, init.clone()) for _, init, depth in cases]
        candidates = {
            "you started from zero vectors instead of init (the warm start is the point)":
                [unrolled_from(model, tokens, _DENSE, depth, torch.zeros_like(init)) for _, init, depth in cases],
            "you ran `depth` passes in all, one too few: pass 0 already feeds init, then `depth` more":
                [unrolled_from(model, tokens, _DENSE, max(depth - 1, 0), init) for _, init, depth in cases],
            "you fed init in every pass: only pass 0 uses init, each later pass feeds the shifted hidden states of "
            "the pass before": [unrolled_from(model, tokens, _DENSE, 0, init) for _, init, depth in cases],
            "you fed each hidden state back at its own position: shift it, the vector made at t - 1 enters at t":
                [_unshifted_from(model, tokens, _DENSE, depth, init) for _, init, depth in cases],
            "you ran one pass too many: depth + 1 passes in all":
                [unrolled_from(model, tokens, _DENSE, depth + 1, init) for _, init, depth in cases],
        }
    for at, ((case, init, depth), got) in enumerate(zip(cases, outputs)):
        with torch.no_grad():
            expected = unrolled_from(model, tokens, _DENSE, depth, init)
        named = explain(outputs, candidates, same=lambda a, b: _close(a, b), at=at)
        expect_close(
            got, expected, name, case,
            "Pass 0 feeds init at the dense positions; each of the `depth` further passes feeds the hidden states "
            "of the pass before, shifted one position right; return the logits of the last pass",
            atol=1e-4, mistakes={named: candidates[named][at]} if named else None,
        )
    report(name, len(cases))
