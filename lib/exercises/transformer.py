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


def _compare(name: str, fn: Callable, reference: Callable, inputs: list[torch.Tensor], extra_args: tuple, hint: str) -> None:
    """Run the learner's ``fn(x, *extra_args)`` and our ``reference(x)`` on each input; compare."""
    for i, x in enumerate(inputs):
        got = call_learner(name, fn, x.clone(), *extra_args)
        with torch.no_grad():
            expected = reference(x)
        expect_close(got, expected, name, f"input {i + 1} of shape {tuple(x.shape)}", hint, atol=1e-4)
    report(name, len(inputs))


def check_layer_norm(fn: Callable) -> None:
    """``fn(x, w, b, eps) -> y``: normalise each vector to mean 0 and variance 1, then scale and shift."""
    ln = _randomised(LayerNorm(CFG), 0)
    _compare("layer_norm", fn, ln, [_x(1), _x(2, scale=100.0)], (ln.w.detach(), ln.b.detach(), ln.eps),
             "subtract the mean over d_model, divide by sqrt(mean of squares + eps) (biased variance), "
             "then multiply by w and add b")


def check_causal_attention(fn: Callable) -> None:
    """``fn(x, attn) -> out``: causal multi-head attention using ``attn``'s weights."""
    attn = _randomised(Attention(CFG), 3)
    _compare("causal_attention", fn, attn, [_x(4, scale=1.0), _x(5, shape=(1, 9, 16), scale=1.0)], (attn,),
             "q, k, v = x @ W + b per head; scores = q k^T / sqrt(d_head); set scores above the diagonal to "
             "-inf BEFORE the softmax; z = pattern @ v; out = sum over heads of z @ W_O, plus b_O")


def check_mlp(fn: Callable) -> None:
    """``fn(x, mlp) -> out``: ``W_out(gelu(x W_in + b_in)) + b_out``."""
    mlp = _randomised(MLP(CFG), 6)
    _compare("mlp", fn, mlp, [_x(7, scale=1.0)], (mlp,),
             "x @ W_in + b_in, then GELU (torch.nn.functional.gelu), then @ W_out + b_out")


def check_block(fn: Callable) -> None:
    """``fn(resid, block) -> resid``: a pre-LayerNorm transformer block built from its parts."""
    block = _randomised(TransformerBlock(CFG, 0), 8)
    with torch.no_grad():  # LayerNorm gains near 1 keep the check well conditioned
        for ln in (block.ln1, block.ln2):
            ln.w.add_(1.0)
    _compare("transformer_block", fn, block, [_x(9, scale=1.0)], (block,),
             "resid_mid = resid + attn(ln1(resid)); resid_post = resid_mid + mlp(ln2(resid_mid)): "
             "normalise the INPUT of each sub-layer, add its output back to the un-normalised stream")
