"""How fast this machine multiplies matrices: the ceiling a training run can be compared with.

A transformer's training step is mostly matrix products, so the fp32 matmul rate of the CPU (at
the thread count training uses) is the natural "100 %": a run's FLOP/s divided by it says how much
of the machine the training loop actually uses. :func:`matmul_peak_flops` measures that rate on
square fp32 products (the best of a few timed repeats, after a warm-up), and
:func:`training_flops` counts the usual ``6 * parameters * tokens`` of one training step
(forward 2, backward 4 FLOPs per parameter and token; Kaplan et al. 2020), plus the attention
scores, which no parameter count sees.
"""

from __future__ import annotations

import time

import torch

from lib.core import checks


def matmul_peak_flops(threads: int, size: int = 1024, repeats: int = 5) -> float:
    """fp32 matrix-multiply FLOP/s at ``threads`` threads: ``2 * size**3`` FLOPs per product,
    divided by the fastest of ``repeats`` timed products. Restores torch's thread count."""
    checks.check_int(threads, "threads", min=1)
    checks.check_int(size, "size", min=16)
    checks.check_int(repeats, "repeats", min=1)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=gen)
        b = torch.randn(size, size, generator=gen)
        out = torch.empty(size, size)
        torch.mm(a, b, out=out)  # warm-up: first-call allocations and kernel selection
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return 2.0 * size**3 / max(best, 1e-9)


def training_flops(n_params: int, tokens: int, n_layers: int = 0, n_ctx: int = 0, d_model: int = 0) -> float:
    """FLOPs of one training step (forward + backward) on ``tokens`` tokens: ``6 * n_params *
    tokens``, plus ``6 * 2 * n_layers * n_ctx * d_model`` per token for the attention scores and
    their weighted sum when the shape is given (causal masking halves nothing here: the fused
    kernels compute the full square)."""
    checks.check_int(n_params, "n_params", min=1)
    checks.check_int(tokens, "tokens", min=1)
    for value, name in ((n_layers, "n_layers"), (n_ctx, "n_ctx"), (d_model, "d_model")):
        checks.check_int(value, name, min=0)
    return 6.0 * n_params * tokens + 6.0 * 2 * n_layers * n_ctx * d_model * tokens


def fraction_of_peak(achieved_flops: float, peak_flops: float) -> float:
    """``achieved / peak``: the share of the machine's matmul rate a run used."""
    achieved = checks.check_float(achieved_flops, "achieved_flops", min=0.0)
    peak = checks.check_float(peak_flops, "peak_flops", positive=True)
    return achieved / peak


__all__ = ["fraction_of_peak", "matmul_peak_flops", "training_flops"]
