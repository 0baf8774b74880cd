"""Checkers for notebook 05 (dense tokens)."""

from __future__ import annotations

from typing import Callable

import torch

from lib.methods.dense import add_dense_vectors as reference_add_dense_vectors  # the solution, kept in one place
from lib.methods.dense import continuation_loss, unrolled_forward
from lib.exercises import call_learner, checker, expect_close, random_tiny_gpt, report
from lib.core.model import GPT

_DENSE = 5


def reference_unrolled_logits(model: GPT, tokens: torch.Tensor, dense_id: int, depth: int) -> torch.Tensor:
    """The solution: the logits of the last of ``depth + 1`` passes."""
    return unrolled_forward(model, tokens, dense_id, depth).logits


@checker("add_dense_vectors")
def check_add_dense_vectors(fn: Callable) -> None:
    """``fn(token_embeds, vectors, mask) -> embeds``: add ``vectors`` where ``mask`` is True only."""
    name = "add_dense_vectors"
    gen = torch.Generator().manual_seed(0)
    embeds = torch.randn(2, 5, 4, generator=gen)
    vectors = torch.randn(2, 5, 4, generator=gen)
    cases = {
        "one dense position": torch.tensor([[False, False, True, False, False], [False] * 5]),
        "several dense positions": torch.tensor([[True, False, True, False, False], [False, True, True, True, False]]),
        "no dense position (the embeddings must come back unchanged)": torch.zeros(2, 5, dtype=torch.bool),
    }
    for case, mask in cases.items():
        got = call_learner(name, fn, embeds.clone(), vectors.clone(), mask.clone())
        expect_close(
            got, reference_add_dense_vectors(embeds, vectors, mask), name, case,
            "keep the token embedding everywhere and ADD the vector only where mask is True "
            "(mask[..., None] broadcasts over d_model; a bool mask needs .to(vectors.dtype) to multiply)",
        )
    report(name, len(cases))


@checker("unrolled_logits")
def check_unrolled_logits(fn: Callable) -> None:
    """``fn(model, tokens, dense_id, depth) -> logits`` of the last of ``depth + 1`` passes."""
    name = "unrolled_logits"
    model = random_tiny_gpt()
    tokens = torch.tensor([[1, 2, _DENSE, _DENSE, 3, 4, _DENSE, 0], [0, _DENSE, 1, 2, 3, _DENSE, 4, 2]])
    for depth in (0, 1, 2, 3):
        with torch.no_grad():
            got = call_learner(name, fn, model, tokens, _DENSE, depth)
            expected = unrolled_forward(model, tokens, _DENSE, depth).logits
            mistakes = {} if depth == 0 else {
                f"you ran {depth} passes in all: run depth + 1 = {depth + 1} (pass 0 has no vectors)":
                    unrolled_forward(model, tokens, _DENSE, depth - 1).logits,
                "you did not feed any vector back (the logits of an ordinary forward)":
                    unrolled_forward(model, tokens, _DENSE, 0).logits,
            }
        expect_close(
            got, expected, name, f"depth={depth}",
            "pass 0 uses no vectors; each of the `depth` passes produces hidden states, shifted one position to "
            "the right (the vector made at t - 1 enters at t), fed at dense positions into the NEXT pass; return "
            "the logits of the final pass" + (" (depth 0 is an ordinary forward)" if depth == 0 else ""),
            atol=1e-4, mistakes=mistakes,
        )
    report(name, 4)


@checker("continuation_loss")
def check_continuation_loss(fn: Callable) -> None:
    """``fn(logits, tokens, position) -> [batch]``: mean loss of the tokens after ``position``."""
    name = "continuation_loss"
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 7, 9, generator=gen) * 2
    tokens = torch.randint(0, 9, (3, 7), generator=gen)
    for position in (0, 2, 5):
        got = call_learner(name, fn, logits.clone(), tokens.clone(), position)
        lp = logits.log_softmax(-1)
        same_position = -lp[:, position:].gather(-1, tokens[:, position:, None]).squeeze(-1).mean(1)
        expect_close(
            got, continuation_loss(logits, tokens, position), name, f"position={position}",
            "score the tokens AFTER position: token i + 1 is predicted by the logits at i, so use logits "
            "[:, position:-1] against tokens [:, position + 1:], and average -log p over them per row",
            mistakes={"you scored each token with the logits at its OWN position (shift by one)": same_position},
        )
    report(name, 3)


def reference_continuation_loss(logits: torch.Tensor, tokens: torch.Tensor, position: int) -> torch.Tensor:
    """The solution, as the notebook writes it."""
    log_probs = logits[:, position:-1].log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, position + 1 :, None]).squeeze(-1).mean(dim=1)
