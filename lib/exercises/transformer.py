"""Checkers for notebook 03 (the transformer from its parts). Each compares the learner's function
with the corresponding module of ``lib.model`` carrying the same (random, non-trivial) weights."""

from __future__ import annotations

from typing import Callable

import torch

from lib.exercises import call_learner, expect_close, report
from lib.model import MLP, Attention, GPTConfig, LayerNorm, TransformerBlock

CFG = GPTConfig(d_vocab=20, n_ctx=12, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32)


def _randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return module.eval()


def _x(seed: int, shape=(2, 6, 16), scale: float = 3.0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale + 1.0


def check_layer_norm(fn: Callable) -> None:
    """``fn(x, w, b, eps) -> y``: normalise each vector to mean 0 and variance 1, then scale and shift."""
    name = "layer_norm"
    ln = _randomised(LayerNorm(CFG), 0)
    for i, x in enumerate([_x(1), _x(2, scale=100.0)]):
        got = call_learner(name, fn, x.clone(), ln.w.detach(), ln.b.detach(), ln.eps)
        expect_close(got, ln(x).detach(), name, f"input {i + 1}",
                     "subtract the mean over d_model, divide by sqrt(mean of squares + eps) (biased variance), "
                     "then multiply by w and add b", atol=1e-4)
    report(name, 2)


def check_causal_attention(fn: Callable) -> None:
    """``fn(x, attn) -> out``: causal multi-head attention using ``attn``'s weights."""
    name = "causal_attention"
    attn = _randomised(Attention(CFG), 3)
    for i, x in enumerate([_x(4, scale=1.0), _x(5, shape=(1, 9, 16), scale=1.0)]):
        got = call_learner(name, fn, x.clone(), attn)
        expect_close(got, attn(x).detach(), name, f"input {i + 1}",
                     "q, k, v = x @ W + b per head; scores = q k^T / sqrt(d_head); set scores above the diagonal to "
                     "-inf BEFORE the softmax; z = pattern @ v; out = sum over heads of z @ W_O, plus b_O", atol=1e-4)
    report(name, 2)


def check_mlp(fn: Callable) -> None:
    """``fn(x, mlp) -> out``: ``W_out(gelu(x W_in + b_in)) + b_out``."""
    name = "mlp"
    mlp = _randomised(MLP(CFG), 6)
    x = _x(7, scale=1.0)
    got = call_learner(name, fn, x.clone(), mlp)
    expect_close(got, mlp(x).detach(), name, "a random input",
                 "x @ W_in + b_in, then GELU (torch.nn.functional.gelu), then @ W_out + b_out", atol=1e-4)
    report(name, 1)


def check_block(fn: Callable) -> None:
    """``fn(resid, block) -> resid``: a pre-LayerNorm transformer block built from its parts."""
    name = "transformer_block"
    block = _randomised(TransformerBlock(CFG, 0), 8)
    with torch.no_grad():  # LayerNorm gains near 1 keep the check well conditioned
        for ln in (block.ln1, block.ln2):
            ln.w.add_(1.0)
    x = _x(9, scale=1.0)
    got = call_learner(name, fn, x.clone(), block)
    expect_close(got, block(x).detach(), name, "a random residual stream",
                 "resid_mid = resid + attn(ln1(resid)); resid_post = resid_mid + mlp(ln2(resid_mid)): "
                 "normalise the INPUT of each sub-layer, add its output back to the un-normalised stream", atol=1e-4)
    report(name, 1)
