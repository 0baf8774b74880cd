"""Runs on the text task: the logits of a batch with fillers, and the held-out score of a model.

Experiments layer (as ``lib.experiments.pointer_runs`` is for pointer chasing): choosing between a plain
forward and the dense unrolling is running a method, so it lives here and ``lib.methods.fillers`` (where
fillers go and how text is scored) imports no method.
"""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from lib.core import checks
from lib.methods.dense import unrolled_forward
from lib.methods.fillers import FillerKind, interleave_fillers, masked_lm_loss, validation_windows
from lib.core.model import GPT


def filler_logits(model: GPT, tokens: Tensor, kind: FillerKind | None, filler_id: int, depth: int | None = None) -> Tensor:
    """Logits of a batch with fillers: a plain forward for pause tokens (or no fillers), an
    unrolled forward for dense tokens (``depth=None``: exact, as many passes as fillers)."""
    checks.check_choice(kind, "kind", (None, "pause", "dense"))
    checks.check_int(filler_id, "filler_id", min=0)
    checks.check_int(depth, "depth", min=0, allow_none=True)
    if kind != "dense":
        return model(tokens)
    exact = int((tokens == filler_id).sum(dim=1).max())
    return unrolled_forward(model, tokens, filler_id, exact if depth is None else depth).logits


@torch.no_grad()
def evaluate_text_nll(
    model: GPT,
    data: Int[Tensor, " n_tokens"],
    n_real: int,
    kind: FillerKind | None,
    every: int,
    filler_id: int,
    masked_ids: Sequence[int] = (),
    max_windows: int = 64,
    batch_size: int = 32,
) -> float:
    """Mean nats per real token over consecutive windows of ``data`` (each window's first token is
    context only), fillers inserted as in training, special logits masked. Dense models run exactly."""
    device = checks.model_device(model)
    all_windows = validation_windows(data, n_real, max_windows)
    checks.check_choice(kind, "kind", (None, "pause", "dense"))
    checks.check_int(every, "every", min=1)
    checks.check_int(filler_id, "filler_id", min=0)
    checks.check_int(batch_size, "batch_size", min=1)
    total, count = 0.0, 0
    with checks.eval_mode(model):
        for i in range(0, len(all_windows), batch_size):
            windows = all_windows[i : i + batch_size].to(device)
            if kind is None:
                tokens, targets = windows, torch.cat([windows[:, 1:], torch.full_like(windows[:, :1], -100)], dim=1)
            else:
                tokens, targets = interleave_fillers(windows, every, filler_id)
            logits = filler_logits(model, tokens, kind, filler_id)
            total += masked_lm_loss(logits, targets, masked_ids, reduction="sum").item()
            count += int((targets != -100).sum())
    return total / count
