"""Filler tokens at fixed intervals in text, scored on the real tokens only.

Pause tokens (Goyal et al. 2024, "Think before you speak") and dense tokens both need places in
the text. The simplest policy puts one after every ``every`` real tokens. The filler's place is
fixed, not predicted, so nothing is trained to predict it: the position *before* a filler has no
target, and the filler's own position predicts the next real token. Every real token after the
first is then predicted exactly once, as in plain language modelling, and the losses of all
methods are computed over the same tokens.

Scoring masks the special tokens' logits (fillers, thoughts): no method gets probability mass on
them for free, and none loses mass to them, so nats per real token compare across methods.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Int
from torch import Tensor

from lib.core import checks

FillerKind = Literal["pause", "dense"]


def interleave_fillers(
    windows: Int[Tensor, "batch n_real"], every: int, filler_id: int
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """Insert ``filler_id`` after every ``every`` real tokens (not after the last one).

    Returns ``(tokens, targets)``: ``targets[:, i]`` is the next real token when position i is
    followed by a real token, and -100 when it is followed by a filler or is the last position.
    """
    checks.check_token_ids(windows, "windows")
    checks.check_int(every, "every", min=1)
    checks.check_int(filler_id, "filler_id", min=0)
    B, W = windows.shape
    if W < 2:
        raise ValueError(f"a window needs at least 2 real tokens, got {W}")
    n_fill = (W - 1) // every
    T = W + n_fill
    real_pos = torch.arange(W, device=windows.device) + torch.arange(W, device=windows.device) // every
    tokens = torch.full((B, T), filler_id, dtype=windows.dtype, device=windows.device)
    tokens[:, real_pos] = windows
    is_real = torch.zeros(T, dtype=torch.bool, device=windows.device)
    is_real[real_pos] = True
    targets = torch.full((B, T), -100, dtype=torch.long, device=windows.device)
    followed_by_real = torch.cat([is_real[1:], torch.zeros(1, dtype=torch.bool, device=windows.device)])
    targets[:, :-1] = torch.where(followed_by_real[:-1], tokens[:, 1:].long(), torch.full_like(tokens[:, 1:], -100).long())
    return tokens, targets


def masked_lm_loss(
    logits: Tensor, targets: Int[Tensor, "batch pos"], masked_ids: Sequence[int] = (), reduction: str = "mean"
) -> Tensor:
    """Cross-entropy against ``targets`` (-100 ignored) with the logits of ``masked_ids`` set to
    -inf first (renormalised over the other tokens). With ``reduction="mean"`` at least one
    target must be scored (the mean of nothing would be NaN)."""
    from lib.core.model import check_targets

    checks.check_tensor(logits, "logits", ndim=3, dtype="float")
    checks.check_choice(reduction, "reduction", ("mean", "sum", "none"))
    if isinstance(masked_ids, (str, bytes)) or not isinstance(masked_ids, Sequence):
        raise TypeError(f"masked_ids must be a sequence of token ids, got {type(masked_ids).__name__}")
    for i in masked_ids:
        checks.check_int(i, "masked_ids (each id)", min=0, max=logits.shape[-1] - 1)
    checks.check_tensor(targets, "targets", dtype="int")
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must agree")
    if reduction == "mean":
        check_targets(targets, tuple(targets.shape), logits.shape[-1])
    else:
        checks.check_token_ids(targets, "targets", logits.shape[-1], ndim=2, ignore_index=-100)
    if masked_ids:
        logits = logits.index_fill(-1, torch.tensor(list(masked_ids), device=logits.device), float("-inf"))
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction=reduction)


def validation_windows(data: Int[Tensor, " n_tokens"], n_real: int, max_windows: int) -> Int[Tensor, "n n_real"]:
    """Consecutive windows of ``n_real`` tokens overlapping by one (each window's first token is
    context only), at most ``max_windows``: the held-out rows every text method is scored on."""
    checks.check_token_ids(data, "data", ndim=1)
    checks.check_int(n_real, "n_real", min=2)
    checks.check_int(max_windows, "max_windows", min=1)
    if len(data) < n_real:
        raise ValueError(f"data has {len(data)} tokens, fewer than one window of n_real = {n_real}")
    starts = list(range(0, len(data) - n_real + 1, n_real - 1))[:max_windows]
    return torch.stack([data[s : s + n_real] for s in starts])
