"""Dense tokens at random places, kept only where they helped: the design notes' unsupervised recipe.

Seed 000 ("Phase 1 / Phase 2") asks for dense tokens that nobody places by hand:

1. sample ``N`` windows and insert ``X`` ``<|dense|>`` tokens at random gaps of each
   (:func:`insert_random_dense`);
2. one forward pass makes every candidate vector (the hidden state before each dense token); a
   second pass, with the vectors fed in, says how much they lowered the loss of what follows
   (:func:`selection_gains`: the same two passes give "without" and "with");
3. keep the ``N'`` windows where the vectors helped most (:func:`select_rows`, ``mode="top"``),
   or, as the control that separates the selection from the loss, ``N'`` windows at random
   (``mode="random"``);
4. train on the kept windows with ``cross_entropy + lam * dense_token_loss``
   (:func:`selected_dense_loss`). The dense-token loss is the negative log-likelihood of the
   ``span`` tokens after each dense position, given its vector (the notes' "max P(sequence | X)"),
   on the unrolled forward, so its gradient runs back through the pass that made the vector.

With ``lam = 0`` only the selection acts; with random windows only the loss acts.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from lib.core.checks import check_int, check_padded_rows, check_token_id, check_token_ids, eval_mode
from lib.methods.dense import (
    _target_log_likelihood,
    add_dense_vectors,
    hidden_and_logits,
    shift_to_next_position,
    unrolled_forward,
)
from lib.methods.fillers import masked_lm_loss
from lib.methods.thought_training import _check_text_targets, _masked_thought_targets
from lib.methods.thoughts import _check_thought_and_pad, _insert_tokens

MODES: tuple[str, ...] = ("top", "random")


def _check_generator(generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")


# --------------------------------------------------------------------------- 1. random places
def insert_random_dense(
    tokens: Int[Tensor, "batch pos"],
    lengths: Int[Tensor, " batch"],
    n_dense: int,
    dense_id: int,
    pad_id: int,
    generator: torch.Generator,
    first_gap: int = 1,
) -> tuple[Int[Tensor, "batch new_pos"], Int[Tensor, " batch"]]:
    """Insert ``n_dense`` dense tokens into every row, each at a uniformly random gap before one
    of the original tokens ``first_gap .. length - 1`` (several may share a gap: a run of dense
    tokens is a longer chain of vectors). Returns ``(tokens, lengths)``, right-padded with
    ``pad_id``. Drawn on the CPU from ``generator``, so every device gets the same places."""
    check_padded_rows(tokens, lengths, ids=True)
    check_int(n_dense, "n_dense", min=0)
    _check_thought_and_pad(dense_id, pad_id, thought_name="dense_id")
    check_int(first_gap, "first_gap", min=1)
    _check_generator(generator)
    if tokens.numel() and int(lengths.min()) <= first_gap:
        raise ValueError(f"every row needs more than first_gap = {first_gap} tokens, got lengths down to {int(lengths.min())}")
    rows, lens = tokens, lengths
    for _ in range(n_dense):
        # A gap before current index t in [first_gap + inserted-before-it, length - 1]: drawing t
        # uniformly in [first_gap, length - 1] of the current row keeps every dense token after
        # original token first_gap - 1 (nothing is ever inserted before first_gap).
        span = (lens - first_gap).cpu()
        t = first_gap + (torch.rand(rows.shape[0], generator=generator) * span).long().clamp(max=span - 1)
        rows, lens, _ = _insert_tokens(rows, lens, t.to(rows.device), dense_id, pad_id)
    return rows, lens


def dense_targets(
    tokens: Int[Tensor, "batch pos"],
    lengths: Int[Tensor, " batch"],
    dense_id: int,
    text_targets: Bool[Tensor, "batch orig_pos"] | None = None,
) -> Int[Tensor, "batch pos"]:
    """Next-token targets of rows with dense tokens: a position predicts the next *original*
    token (-100 where a dense token comes next: its place was drawn, not predicted, as with
    :func:`lib.methods.fillers.interleave_fillers`). ``text_targets`` (by original index) limits which
    original tokens are trained (a task's answer); default: all of them."""
    check_padded_rows(tokens, lengths, ids=True)
    check_token_id(dense_id, "dense_id")
    if text_targets is None:
        text_targets = torch.ones(tokens.shape, dtype=torch.bool, device=tokens.device)
    _check_text_targets(text_targets, tokens)
    return _masked_thought_targets(tokens, lengths, dense_id, text_targets, thought_targets=False)


# --------------------------------------------------------------------------- 2. one pass makes the vectors
@torch.no_grad()
def selection_gains(
    model, tokens: Int[Tensor, "batch pos"], targets: Int[Tensor, "batch pos"], dense_id: int
) -> Float[Tensor, " batch"]:
    """For every row: the targets' log-likelihood (nats, summed) with the candidate vectors fed in
    minus without them. Pass 0 runs the row with plain dense embeddings (the "without" score) and
    makes each dense position's candidate vector, the hidden state just before it; pass 1 feeds
    those vectors (the "with" score). Positions before the first dense token cannot change
    (causal attention), so this is the change on what follows the dense tokens."""
    check_token_ids(tokens, "tokens", model.cfg.d_vocab, ndim=2)
    check_token_ids(targets, "targets", model.cfg.d_vocab, ndim=2, ignore_index=-100)
    if targets.shape != tokens.shape:
        raise ValueError(f"targets {tuple(targets.shape)} must match tokens {tuple(tokens.shape)}")
    if isinstance(dense_id, bool) or not isinstance(dense_id, int) or not 0 <= dense_id < model.cfg.d_vocab:
        raise ValueError(f"dense_id must be a token id in [0, {model.cfg.d_vocab}), got {dense_id!r}")
    with eval_mode(model):
        embeds = model.embed(tokens)
        hidden, logits_without = hidden_and_logits(model, embeds)
        mask = tokens == dense_id
        _, logits_with = hidden_and_logits(model, add_dense_vectors(embeds, shift_to_next_position(hidden), mask))
    return _target_log_likelihood(logits_with, targets) - _target_log_likelihood(logits_without, targets)


def select_rows(
    gains: Float[Tensor, " batch"], n_keep: int, mode: str = "top", generator: torch.Generator | None = None
) -> Int[Tensor, " n_keep"]:
    """Indices of the ``n_keep`` rows to train on: the largest gains (``"top"``; ties: the earlier
    row), or ``n_keep`` distinct rows at random (``"random"``, from ``generator``: the control)."""
    if not isinstance(gains, Tensor) or not gains.is_floating_point() or gains.ndim != 1:
        raise TypeError("gains must be a 1-D floating-point tensor [batch]")
    check_int(n_keep, "n_keep", min=1)
    if n_keep > gains.shape[0]:
        raise ValueError(f"n_keep = {n_keep} exceeds the {gains.shape[0]} rows")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "top":
        if not bool(torch.isfinite(gains).all()):
            raise ValueError("gains must be finite to rank them")
        return torch.sort(gains, descending=True, stable=True).indices[:n_keep]
    _check_generator(generator)
    return torch.randperm(gains.shape[0], generator=generator)[:n_keep].to(gains.device)


# --------------------------------------------------------------------------- 3. the loss
def after_dense_mask(tokens: Int[Tensor, "batch pos"], dense_id: int, span: int) -> Bool[Tensor, "batch pos"]:
    """True at the positions whose prediction follows a dense token closely: a dense token at
    ``d`` marks ``d, d + 1, ..., d + span - 1`` (they predict the ``span`` tokens after it)."""
    check_token_ids(tokens, "tokens", ndim=2)
    check_int(span, "span", min=1)
    return _after_dense_mask(tokens, dense_id, span)


def _after_dense_mask(tokens: Tensor, dense_id: int, span: int) -> Tensor:
    is_dense = (tokens == dense_id).long()
    # count of dense tokens in (p - span, p]: a running sum minus the same sum span places back
    run = is_dense.cumsum(1)
    back = torch.nn.functional.pad(run, (span, 0))[:, : tokens.shape[1]]
    return (run - back) > 0


def dense_token_loss(
    logits: Float[Tensor, "batch pos d_vocab"],
    tokens: Int[Tensor, "batch pos"],
    targets: Int[Tensor, "batch pos"],
    dense_id: int,
    span: int = 4,
    masked_ids: tuple[int, ...] = (),
) -> Tensor:
    """Mean negative log-likelihood of the scored tokens in the ``span`` after each dense token
    (:func:`after_dense_mask`). A batch without any such token gives a zero that still belongs
    to the graph, so ``loss.backward()`` works on every batch."""
    if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.ndim != 3:
        raise TypeError("logits must be a floating-point tensor [batch, pos, d_vocab]")
    check_token_ids(targets, "targets", ndim=2, ignore_index=-100)
    check_token_ids(tokens, "tokens", ndim=2)
    if logits.shape[:2] != targets.shape or tokens.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)}, tokens {tuple(tokens.shape)} and targets {tuple(targets.shape)} must agree")
    check_int(span, "span", min=1)
    return _dense_token_loss(logits, tokens, targets, dense_id, span, masked_ids)


def _dense_token_loss(logits: Tensor, tokens: Tensor, targets: Tensor, dense_id: int, span: int, masked_ids) -> Tensor:
    near = _after_dense_mask(tokens, dense_id, span) & (targets != -100)
    if not bool(near.any()):
        return logits.sum() * 0.0
    return masked_lm_loss(logits, targets.masked_fill(~near, -100), masked_ids)


def selected_dense_loss(
    model,
    tokens: Int[Tensor, "batch pos"],
    targets: Int[Tensor, "batch pos"],
    dense_id: int,
    depth: int,
    lam: float,
    span: int = 4,
    masked_ids: tuple[int, ...] = (),
) -> tuple[Tensor, Tensor, Tensor]:
    """``(loss, cross_entropy, dense_token_loss)`` of one batch on the unrolled forward
    (:func:`lib.methods.dense.unrolled_forward`, ``depth`` passes that make vectors):
    ``loss = cross_entropy + lam * dense_token_loss``."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam >= 0 or lam == float("inf"):
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    check_int(span, "span", min=1)
    logits = unrolled_forward(model, tokens, dense_id, depth).logits  # checks tokens, dense_id and depth
    ce = masked_lm_loss(logits, targets, masked_ids)  # checks targets and masked_ids
    dl = _dense_token_loss(logits, tokens, targets, dense_id, span, masked_ids)
    return ce + lam * dl, ce, dl


__all__ = ["MODES", "after_dense_mask", "dense_targets", "dense_token_loss", "insert_random_dense", "select_rows",
           "selected_dense_loss", "selection_gains"]
