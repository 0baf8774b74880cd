"""The planning ("future") loss of an autoregressive encoder-decoder, piece by piece.

The idea (DeepSight; see the course's seed notes): besides predicting the next token, train the
encoder's output at position i to match an aggregate of the input embeddings of the present
(positions 1..i) and of the near future (i+1..i+n):

    present_i = mean(E_1 .. E_i)                       cumulative mean
    future_i  = sum_{z=1..n} E_{i+z} / z               nearer tokens weigh more
    target_i  = (present_i + future_i) / 2
    loss      = disaffinity(LN(encoder_out_i), LN(target_i)),   over i = 1 .. T - n

``E`` is detached (token + position embeddings): it is a target, not something to move. The last
``n`` positions have no complete future and are left out.

Both sides go through a LayerNorm WITHOUT learnable gains: with learnable gains the loss can be
driven to ~0 by shrinking both sides, which says nothing about planning (the public version of the
idea reports a planning loss near 5e-9, consistent with that collapse).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from lib.core import checks

Disaffinity = Literal["mse", "cosine"]


def _check_embeddings(E: Tensor, name: str = "E") -> None:
    if not isinstance(E, Tensor) or not E.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {checks._got(E)}")
    if E.ndim != 3:
        raise ValueError(f"{name} must have shape [batch, pos, d_model], got {tuple(E.shape)}")


def _check_horizon(n: int, pos: int) -> None:
    checks.check_int(n, "the horizon n", min=1)
    if n >= pos:
        raise ValueError(f"the horizon n = {n} must be smaller than the sequence length {pos}")


def present_aggregate(E: Float[Tensor, "batch pos d"]) -> Float[Tensor, "batch pos d"]:
    """Cumulative mean over positions: entry i is the mean of E[:, :i + 1]."""
    _check_embeddings(E)
    counts = torch.arange(1, E.shape[1] + 1, device=E.device, dtype=E.dtype)
    return E.cumsum(dim=1) / counts[None, :, None]


def future_aggregate(E: Float[Tensor, "batch pos d"], n: int) -> Float[Tensor, "batch pos_minus_n d"]:
    """Entry i is sum_{z=1..n} E[:, i + z] / z, for the positions i that have n future tokens."""
    _check_embeddings(E)
    _check_horizon(n, E.shape[1])
    keep = E.shape[1] - n
    return sum(E[:, z : z + keep] / z for z in range(1, n + 1))


def planning_target(E: Float[Tensor, "batch pos d"], n: int) -> Float[Tensor, "batch pos_minus_n d"]:
    """(present + future) / 2 on the first pos - n positions."""
    future = future_aggregate(E, n)  # validates E and n
    return (present_aggregate(E)[:, : future.shape[1]] + future) / 2


def disaffinity(
    a: Float[Tensor, "... d"], b: Float[Tensor, "... d"], kind: Disaffinity = "mse"
) -> Tensor:
    """Mean squared error, or cosine dissimilarity 1 - (cos + 1) / 2 (0 = same direction,
    1 = opposite), averaged over every position."""
    checks.check_tensor(a, "a", dtype="float")
    checks.check_tensor(b, "b", dtype="float")
    checks.check_choice(kind, "kind", ("mse", "cosine"))
    if a.shape != b.shape:
        raise ValueError(f"the two sides must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if kind == "mse":
        return F.mse_loss(a, b)
    return (1 - (F.cosine_similarity(a, b, dim=-1) + 1) / 2).mean()


def future_loss(
    encoder_out: Float[Tensor, "batch pos d"],
    E: Float[Tensor, "batch pos d"],
    n: int,
    kind: Disaffinity = "mse",
    eps: float = 1e-5,
    positions: Bool[Tensor, "batch pos"] | None = None,
) -> Tensor:
    """The planning loss: non-affine LayerNorm on both sides, the last n positions left out,
    and the embeddings detached so only the encoder is pulled toward the target.

    ``positions`` (optional) keeps only the marked positions (among the first ``pos - n``): e.g.
    the positions whose next token is scored, so that the loss plans only where a decision is
    made. Marked positions without a complete future are ignored; none left gives a zero loss."""
    _check_embeddings(encoder_out, "encoder_out")
    _check_embeddings(E)
    if encoder_out.shape != E.shape:
        raise ValueError(f"encoder_out {tuple(encoder_out.shape)} and E {tuple(E.shape)} must have the same shape")
    checks.check_choice(kind, "kind", ("mse", "cosine"))
    checks.check_float(eps, "eps", positive=True)
    if positions is not None:
        checks.check_tensor(positions, "positions", dtype="bool")
        if positions.shape != E.shape[:2]:
            raise ValueError(f"positions must have shape {tuple(E.shape[:2])}, got {tuple(positions.shape)}")
    target = planning_target(E.detach(), n)
    keep = E.shape[1] - n
    d = E.shape[-1]
    a, b = F.layer_norm(encoder_out[:, :keep], (d,), eps=eps), F.layer_norm(target, (d,), eps=eps)
    if positions is None:
        return disaffinity(a, b, kind)
    chosen = positions[:, :keep]
    if not bool(chosen.any()):
        return encoder_out.sum() * 0.0  # keeps the graph (and the device) without moving anything
    return disaffinity(a[chosen], b[chosen], kind)


class LearnableNormFutureLoss(torch.nn.Module):
    """The future loss with LEARNABLE LayerNorms (gain and bias) on both sides: the version that
    collapses. Shrinking both gains toward 0 and matching the biases drives the loss toward 0
    without the encoder learning anything; it exists to demonstrate that, not to train with.

    Call it like :func:`future_loss`: ``module(encoder_out, E, n, kind)``. Its parameters must be
    given to the optimizer alongside the model's.
    """

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        checks.check_int(d_model, "d_model", min=1)
        checks.check_float(eps, "eps", positive=True)
        self.ln_encoder = torch.nn.LayerNorm(d_model, eps=eps)
        self.ln_target = torch.nn.LayerNorm(d_model, eps=eps)

    def forward(self, encoder_out: Tensor, E: Tensor, n: int, kind: Disaffinity = "mse") -> Tensor:
        _check_embeddings(encoder_out, "encoder_out")
        _check_embeddings(E)
        if encoder_out.shape != E.shape:
            raise ValueError(f"encoder_out {tuple(encoder_out.shape)} and E {tuple(E.shape)} must have the same shape")
        if E.shape[-1] != self.ln_encoder.normalized_shape[0]:
            raise ValueError(f"E must have d_model = {self.ln_encoder.normalized_shape[0]}, got {E.shape[-1]}")
        checks.check_choice(kind, "kind", ("mse", "cosine"))
        target = planning_target(E.detach(), n)
        keep = E.shape[1] - n
        return disaffinity(self.ln_encoder(encoder_out[:, :keep]), self.ln_target(target), kind)

    def gains(self) -> tuple[float, float]:
        """Mean absolute LayerNorm gain of (encoder side, target side): 1 at init."""
        return self.ln_encoder.weight.abs().mean().item(), self.ln_target.weight.abs().mean().item()
