"""Checkers for notebook 05 (dense tokens)."""

from __future__ import annotations

from typing import Callable

import torch

from lib.methods.dense import add_dense_vectors as reference_add_dense_vectors  # the solution, kept in one place
from lib.methods.dense import continuation_loss, hidden_and_logits, unrolled_forward
from lib.exercises import call_learner, checker, expect, expect_close, expect_unchanged, explain, random_tiny_gpt, report
from lib.core.model import GPT

_DENSE = 5


def reference_unrolled_logits(model: GPT, tokens: torch.Tensor, dense_id: int, depth: int) -> torch.Tensor:
    """The solution: the logits of the last of ``depth + 1`` passes."""
    return unrolled_forward(model, tokens, dense_id, depth).logits


@checker("add_dense_vectors")
def check_add_dense_vectors(fn: Callable) -> None:
    """``fn(token_embeds, vectors, mask) -> embeds``: add ``vectors`` where ``mask`` is True only, in a
    new tensor, with gradients reaching both inputs."""
    name = "add_dense_vectors"
    gen = torch.Generator().manual_seed(0)
    embeds = torch.randn(2, 5, 4, generator=gen)
    vectors = torch.randn(2, 5, 4, generator=gen)
    weights = torch.randn(2, 5, 4, generator=gen)
    cases = {
        "one dense position": torch.tensor([[False, False, True, False, False], [False] * 5]),
        "several dense positions": torch.tensor([[True, False, True, False, False], [False, True, True, True, False]]),
        "no dense position (the embeddings must come back unchanged)": torch.zeros(2, 5, dtype=torch.bool),
    }
    for case, mask in cases.items():
        given_embeds, given_vectors = embeds.clone(), vectors.clone()
        got = call_learner(name, fn, given_embeds, given_vectors, mask.clone())
        expect_unchanged(embeds, given_embeds, name, case, "token_embeds")
        expect_unchanged(vectors, given_vectors, name, case, "vectors")
        m = mask[..., None].float()
        expect_close(
            got, reference_add_dense_vectors(embeds, vectors, mask), name, case,
            "every position keeps its token embedding; the fed-back vector is ADDED to it at the dense positions only "
            "(a bool mask must become a number, and gain a trailing axis, before it can scale a vector)",
            mistakes={
                "you replaced the embedding by the vector where mask is True: ADD it": torch.where(mask[..., None], vectors, embeds),
                "you added the vectors everywhere, ignoring the mask": embeds + vectors,
                "you added the vectors where mask is FALSE": embeds + vectors * (1 - m),
                "you returned only the vectors at the dense positions: the token embeddings are part of the input":
                    vectors * m,
            },
        )
        # Gradients must reach both inputs: the unrolled forward trains through these vectors.
        leaf_embeds, leaf_vectors = embeds.clone().requires_grad_(), vectors.clone().requires_grad_()
        with torch.enable_grad():
            out = call_learner(name, fn, leaf_embeds * 1.0, leaf_vectors * 1.0, mask.clone())
            if out.requires_grad:
                (out * weights).sum().backward()
        got_grad = leaf_vectors.grad if leaf_vectors.grad is not None else torch.zeros_like(vectors)
        expect(
            torch.allclose(got_grad, weights * m) and leaf_embeds.grad is not None and torch.allclose(leaf_embeds.grad, weights),
            name, case + ", gradients",
            "it looks like you detached the vectors (or computed without autograd): no gradient reaches them, so the "
            "passes that made them could never learn. Keep the whole computation differentiable",
        )
    report(name, len(cases))


def _unshifted_logits(model, tokens, dense_id, depth):
    embeds, mask = model.embed(tokens), tokens == dense_id
    vectors = torch.zeros_like(embeds)
    for _ in range(depth):
        vectors, _ = hidden_and_logits(model, reference_add_dense_vectors(embeds, vectors, mask))
    return hidden_and_logits(model, reference_add_dense_vectors(embeds, vectors, mask))[1]


def _parameter_grads(model, logits: torch.Tensor, weights: torch.Tensor) -> list[torch.Tensor]:
    params = [p for p in model.parameters()]
    if not logits.requires_grad:
        return [torch.zeros_like(p) for p in params]
    grads = torch.autograd.grad((logits * weights).sum(), params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


@checker("unrolled_logits")
def check_unrolled_logits(fn: Callable) -> None:
    """``fn(model, tokens, dense_id, depth) -> logits`` of the last of ``depth + 1`` passes, with the
    gradient flowing back through every pass."""
    name = "unrolled_logits"
    model = random_tiny_gpt()
    tokens = torch.tensor([[1, 2, _DENSE, _DENSE, 3, 4, _DENSE, 0], [0, _DENSE, 1, 2, 3, _DENSE, 4, 2]])
    depths = (0, 1, 2, 3)
    with torch.no_grad():
        outputs = [call_learner(name, fn, model, tokens, _DENSE, depth) for depth in depths]
        candidates = {
            "you ran `depth` passes in all: run depth + 1 (pass 0 has no vectors)":
                [unrolled_forward(model, tokens, _DENSE, max(depth - 1, 0)).logits for depth in depths],
            "you ran depth + 2 passes in all: run depth + 1":
                [unrolled_forward(model, tokens, _DENSE, depth + 1).logits for depth in depths],
            "you did not feed any vector back (the logits of an ordinary forward)":
                [unrolled_forward(model, tokens, _DENSE, 0).logits for depth in depths],
            "you fed each vector back at its own position: shift it, the vector made at t - 1 enters at t":
                [_unshifted_logits(model, tokens, _DENSE, depth) for depth in depths],
            "you fed back the un-normalised residual stream: the vectors are the hidden states after the "
            "final LayerNorm (what hidden_and_logits returns)":
                [unrolled_forward(model, tokens, _DENSE, depth, source="raw").logits for depth in depths],
        }
    for at, (depth, got) in enumerate(zip(depths, outputs)):
        with torch.no_grad():
            expected = unrolled_forward(model, tokens, _DENSE, depth).logits
        named = explain(outputs, candidates, same=lambda a, b: isinstance(a, torch.Tensor) and a.shape == b.shape
                        and torch.allclose(a.detach().double(), b.double(), atol=1e-4), at=at)
        expect_close(
            got, expected, name, f"depth={depth}",
            "Pass 0 uses no vectors; each of the `depth` passes produces hidden states, shifted one position to "
            "the right (the vector made at t - 1 enters at t), fed at dense positions into the NEXT pass; return "
            "the logits of the final pass" + (" (depth 0 is an ordinary forward)" if depth == 0 else ""),
            atol=1e-4, mistakes={named: candidates[named][at]} if named else None,
        )
    # The exercise is about the gradient flowing through every pass: compare the parameters' gradients.
    depth = 2
    weights = torch.randn(2, 8, model.cfg.d_vocab, generator=torch.Generator().manual_seed(5))
    with torch.enable_grad():
        got = call_learner(name, fn, model, tokens, _DENSE, depth)
        theirs = _parameter_grads(model, got, weights)
        ours = _parameter_grads(model, unrolled_forward(model, tokens, _DENSE, depth).logits, weights)
        cut = _parameter_grads(model, unrolled_forward(model, tokens, _DENSE, depth, truncate_backprop=True).logits, weights)
    same = all(torch.allclose(a, b, atol=1e-4) for a, b in zip(theirs, ours))
    expect(
        same, name, f"depth={depth}, the gradient of the logits with respect to the parameters",
        ("it looks like you detached the fed-back vectors: the values are right, but no gradient flows back "
         "through the earlier passes, which is what training the dense tokens needs"
         if all(torch.allclose(a, b, atol=1e-4) for a, b in zip(theirs, cut)) else
         "it looks like no gradient reaches the parameters (a torch.no_grad block or a detach)"
         if not got.requires_grad else
         "the values are right but the gradients are not: every pass must stay part of one differentiable "
         "computation"),
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
        scored = lp[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1)  # entry i: log p(token i + 1)
        same_position = -lp[:, position:].gather(-1, tokens[:, position:, None]).squeeze(-1).mean(1)
        expected = continuation_loss(logits, tokens, position)
        if isinstance(got, torch.Tensor) and got.ndim == 0:
            expect(False, name, f"position={position}",
                   "it looks like you averaged over the batch too: return one loss PER ROW, shape [batch]")
        mistakes = {
            "you scored each token with the logits at its OWN position (shift by one)": same_position,
            "you started one token late: the first token scored is the one right AFTER position":
                -scored[:, position + 1:].mean(1) if position + 1 < scored.shape[1] else expected * float("nan"),
            "you started one token early: the token AT position is not part of the continuation":
                -scored[:, max(position - 1, 0):].mean(1),
            "you summed the losses: take their MEAN per row": -scored[:, position:].sum(1),
            "the sign is flipped: the loss is the NEGATIVE log-probability": scored[:, position:].mean(1),
            "you used the raw logits instead of log-probabilities (log_softmax first)":
                -logits[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1)[:, position:].mean(1),
        }
        if position == 0:
            del mistakes["you started one token early: the token AT position is not part of the continuation"]
        expect_close(
            got, expected, name, f"position={position}",
            "score the tokens that come AFTER position, each with the prediction made one step before it, and "
            "average the negative log-probabilities per row",
            mistakes=mistakes,
        )
    report(name, 3)


def reference_continuation_loss(logits: torch.Tensor, tokens: torch.Tensor, position: int) -> torch.Tensor:
    """The solution, as the notebook writes it."""
    log_probs = logits[:, position:-1].log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, position + 1 :, None]).squeeze(-1).mean(dim=1)
