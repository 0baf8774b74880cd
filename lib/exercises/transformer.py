"""Checkers for notebook 03 (the transformer from its parts). Each compares the learner's function
with the corresponding module of ``lib.core.model`` carrying the same (random, non-trivial) weights."""

from __future__ import annotations

from typing import Callable

import einops
import torch
import torch.nn.functional as F
from fancy_einsum import einsum

from lib.exercises import call_learner, checker, expect, expect_close, report
from lib.core.model import MLP, Attention, GPTConfig, LayerNorm, TransformerBlock

CFG = GPTConfig(d_vocab=20, n_ctx=12, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32)


def _randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return module.eval()


def _x(seed: int, shape=(2, 6, 16), scale: float = 3.0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale + 1.0


def _compare(
    name: str, fn: Callable, reference: Callable, inputs: list[torch.Tensor], extra_args: tuple, hint: str,
    mistakes: Callable | None = None, label: str | None = None,
) -> None:
    """Run the learner's ``fn(x, *extra_args)`` and our ``reference(x)`` on each input; compare.
    ``mistakes(x)`` gives {description: output of that typical mistake} for the diagnosis."""
    for i, x in enumerate(inputs):
        got = call_learner(name, fn, x.clone(), *extra_args)
        with torch.no_grad():
            expected = reference(x)
            wrong = mistakes(x) if mistakes is not None else None
        expect_close(got, expected, name, f"input {i + 1} of shape {tuple(x.shape)}", hint, atol=1e-4, mistakes=wrong)
    report(label or name, len(inputs))  # label: the success line the notebooks' outputs show


# ------------------------------------------------------------------------------ reference solutions
def reference_layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    """The solution: (x - mean) / sqrt(biased variance + eps) * w + b over the last dimension."""
    x = x - x.mean(dim=-1, keepdim=True)
    return x / (x.pow(2).mean(dim=-1, keepdim=True) + eps).sqrt() * w + b


def reference_attention_scores(x: torch.Tensor, attn: Attention) -> torch.Tensor:
    """The solution: [batch, head, query_pos, key_pos] = q . k / sqrt(d_head), no mask."""
    q = einsum("batch pos d_model, head d_model d_head -> batch pos head d_head", x, attn.W_Q) + attn.b_Q
    k = einsum("batch pos d_model, head d_model d_head -> batch pos head d_head", x, attn.W_K) + attn.b_K
    scores = einsum("batch q_pos head d_head, batch k_pos head d_head -> batch head q_pos k_pos", q, k)
    return scores / attn.cfg.d_head**0.5


def reference_apply_causal_mask(scores: torch.Tensor) -> torch.Tensor:
    """The solution: -inf wherever the key comes after the query."""
    n_q, n_k = scores.shape[-2:]
    future = torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device).triu(diagonal=1)
    return scores.masked_fill(future, float("-inf"))


def reference_attention_output(pattern: torch.Tensor, x: torch.Tensor, attn: Attention) -> torch.Tensor:
    """The solution: values weighted by the pattern, projected by W_O and summed over heads, plus b_O."""
    v = einsum("batch pos d_model, head d_model d_head -> batch pos head d_head", x, attn.W_V) + attn.b_V
    z = einsum("batch head q_pos k_pos, batch k_pos head d_head -> batch q_pos head d_head", pattern, v)
    return einsum("batch pos head d_head, head d_head d_model -> batch pos d_model", z, attn.W_O) + attn.b_O


def reference_causal_attention(x: torch.Tensor, attn: Attention) -> torch.Tensor:
    """The solution: the three steps in a row, with the softmax between mask and output."""
    pattern = reference_apply_causal_mask(reference_attention_scores(x, attn)).softmax(dim=-1)
    return reference_attention_output(pattern, x, attn)


def reference_mlp_forward(x: torch.Tensor, mlp: MLP) -> torch.Tensor:
    """The solution: gelu(x W_in + b_in) W_out + b_out."""
    return F.gelu(x @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out


def reference_transformer_block(resid: torch.Tensor, block: TransformerBlock) -> torch.Tensor:
    """The solution: a pre-LayerNorm block."""
    resid = resid + block.attn(block.ln1(resid))
    return resid + block.mlp(block.ln2(resid))


def split_heads(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``[batch, pos, (head d_head)] -> [batch, head, pos, d_head]``: the head split, with einops."""
    return einops.rearrange(t, "batch pos (head d_head) -> batch head pos d_head", head=n_heads)


# ------------------------------------------------------------------------------ checkers
@checker("layer_norm")
def check_layer_norm(fn: Callable) -> None:
    """``fn(x, w, b, eps) -> y``: normalise each vector to mean 0 and variance 1, then scale and shift."""
    ln = _randomised(LayerNorm(CFG), 0)
    w, b, eps = ln.w.detach(), ln.b.detach(), ln.eps

    def mistakes(x):
        centred = x - x.mean(-1, keepdim=True)
        return {
            "you used the unbiased variance (x.var() divides by n - 1): use the mean of squares":
                centred / (x.var(-1, keepdim=True) + eps).sqrt() * w + b,
            "you forgot to scale by w and shift by b": centred / (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt(),
            "eps is outside the square root": centred / (centred.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w + b,
            "you did not subtract the mean (that is RMSNorm): centre x first":
                x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt() * w + b,
            "you normalised over the position axis: LayerNorm normalises each vector over d_model (the last axis)":
                (x - x.mean(1, keepdim=True)) / ((x - x.mean(1, keepdim=True)).pow(2).mean(1, keepdim=True) + eps).sqrt()
                * w + b,
        }

    _compare("layer_norm", fn, ln, [_x(1), _x(2, scale=100.0), _x(10, shape=(2, 6, 16), scale=1e-3)], (w, b, eps),
             "subtract the mean over d_model, divide by sqrt(mean of squares + eps) (biased variance), "
             "then multiply by w and add b", mistakes)


@checker("attention_scores")
def check_attention_scores(fn: Callable) -> None:
    """``fn(x, attn) -> scores [batch, head, query_pos, key_pos]``, scaled, not masked."""
    attn = _randomised(Attention(CFG), 3)
    ref = lambda x: reference_attention_scores(x, attn)

    def mistakes(x):
        s = reference_attention_scores(x, attn) * attn.cfg.d_head**0.5
        return {
            "you forgot to divide by sqrt(d_head)": s,
            "you divided by d_head instead of sqrt(d_head)": s / attn.cfg.d_head,
            "you divided by sqrt(d_model), not sqrt(d_head)": s / attn.cfg.d_model**0.5,
            "you masked already: this step returns the raw scaled scores (the mask is the next step)":
                reference_apply_causal_mask(s / attn.cfg.d_head**0.5),
            "your scores are [batch, head, key, query]: transpose (the query index comes first)":
                (s / attn.cfg.d_head**0.5).transpose(-1, -2),
            "you forgot the biases b_Q and b_K": einsum(
                "batch q_pos head d_head, batch k_pos head d_head -> batch head q_pos k_pos",
                einsum("batch pos d_model, head d_model d_head -> batch pos head d_head", x, attn.W_Q),
                einsum("batch pos d_model, head d_model d_head -> batch pos head d_head", x, attn.W_K),
            ) / attn.cfg.d_head**0.5,
        }

    _compare("attention_scores", fn, ref, [_x(4, scale=1.0), _x(5, shape=(1, 9, 16), scale=1.0)], (attn,),
             "q = x W_Q + b_Q and k = x W_K + b_K per head ([batch, pos, head, d_head]); contract d_head to get "
             "[batch, head, q_pos, k_pos]; divide by sqrt(d_head)", mistakes)


@checker("apply_causal_mask")
def check_apply_causal_mask(fn: Callable) -> None:
    """``fn(scores) -> scores`` with -inf above the diagonal (key after query), a new tensor."""
    name = "apply_causal_mask"
    gen = torch.Generator().manual_seed(11)
    cases = [torch.randn(2, 3, 5, 5, generator=gen), torch.randn(1, 2, 1, 1, generator=gen), torch.randn(1, 1, 7, 7, generator=gen)]
    for scores in cases:
        original = scores.clone()
        n = scores.shape[-1]
        got = call_learner(name, fn, scores)
        case = f"scores of shape {tuple(scores.shape)}"
        expect(torch.equal(scores, original), name, case,
               "it looks like you changed the input scores in place: the docstring asks for a NEW tensor (an in-place "
               "operation, the ones ending in an underscore, writes into the caller's tensor)")
        upper = torch.ones(n, n, dtype=torch.bool)
        mistakes = {
            "you masked the diagonal too: a position may attend to itself (triu(diagonal=1))":
                original.masked_fill(upper.triu(0), float("-inf")),
            "you masked the past instead of the future (use triu, not tril)":
                original.masked_fill(upper.tril(-1), float("-inf")),
            "you filled with 0 instead of -inf (a score of 0 still gets probability after the softmax)":
                original.masked_fill(upper.triu(1), 0.0),
            "you filled with a large negative number: use float('-inf'), exact in every precision":
                original.masked_fill(upper.triu(1), -1e4),
        }
        if n == 1:
            mistakes = {}
        expect_close(got, reference_apply_causal_mask(original), name, case,
                     "set scores[..., i, j] to -inf wherever j > i (a key after its query), keep everything else",
                     mistakes=mistakes)
    report(name, len(cases))


@checker("attention_output")
def check_attention_output(fn: Callable) -> None:
    """``fn(pattern, x, attn) -> out [batch, pos, d_model]``."""
    name = "attention_output"
    attn = _randomised(Attention(CFG), 3)
    n = 0
    for seed, shape in ((4, (2, 6, 16)), (5, (1, 9, 16))):
        x = _x(seed, shape=shape, scale=1.0)
        with torch.no_grad():
            pattern = reference_apply_causal_mask(reference_attention_scores(x, attn)).softmax(-1)
            expected = reference_attention_output(pattern, x, attn)
            v = einsum("batch pos d_model, head d_model d_head -> batch pos head d_head", x, attn.W_V) + attn.b_V
            z = einsum("batch head q_pos k_pos, batch k_pos head d_head -> batch q_pos head d_head", pattern, v)
            mistakes = {
                "you forgot b_O": expected - attn.b_O,
                "you added b_O once per head (add it once, after the sum over heads)":
                    expected + (attn.cfg.n_heads - 1) * attn.b_O,
                "you forgot b_V": expected - einsum(
                    "batch head q_pos k_pos, head d_head, head d_head d_model -> batch q_pos d_model",
                    pattern, attn.b_V, attn.W_O),
                "the pattern's query and key axes are swapped (z = pattern @ v sums over the KEY axis)":
                    einsum("batch pos head d_head, head d_head d_model -> batch pos d_model",
                           einsum("batch head k_pos q_pos, batch k_pos head d_head -> batch q_pos head d_head", pattern, v),
                           attn.W_O) + attn.b_O,
            }
            mean_heads = einsum("batch pos head d_head, head d_head d_model -> batch pos d_model", z, attn.W_O)
            mistakes["you averaged over heads: the heads' outputs are SUMMED"] = mean_heads / attn.cfg.n_heads + attn.b_O
        got = call_learner(name, fn, pattern.clone(), x.clone(), attn)
        if isinstance(got, torch.Tensor) and got.ndim == 4:
            expect(False, name, f"input of shape {shape}",
                   f"it looks like you did not sum over the head axis: your output has 4 dimensions {tuple(got.shape)} "
                   "(W_O maps each head to d_model; the heads' contributions add up)")
        expect_close(got, expected, name, f"input of shape {shape}",
                     "v = x W_V + b_V per head; z = pattern-weighted sum of v over keys; out = sum over heads of "
                     "z W_O, plus b_O", atol=1e-4, mistakes=mistakes)
        n += 1
    report(name, n)


@checker("causal_attention")
def check_causal_attention(fn: Callable) -> None:
    """``fn(x, attn) -> out``: causal multi-head attention using ``attn``'s weights."""
    attn = _randomised(Attention(CFG), 3)

    def mistakes(x):
        scores = reference_attention_scores(x, attn)
        return {
            "the causal mask is missing": reference_attention_output(scores.softmax(-1), x, attn),
            "the 1/sqrt(d_head) scale is missing": reference_attention_output(
                reference_apply_causal_mask(scores * attn.cfg.d_head**0.5).softmax(-1), x, attn),
            "the softmax is over the query axis, not the key axis": reference_attention_output(
                reference_apply_causal_mask(scores).softmax(-2).nan_to_num(0.0), x, attn),
        }

    _compare("causal_attention", fn, attn, [_x(4, scale=1.0), _x(5, shape=(1, 9, 16), scale=1.0)], (attn,),
             "the three steps in a row: scaled scores per head, future keys hidden (-inf) BEFORE the softmax over the "
             "keys, then the pattern-weighted values projected back and summed over heads", mistakes)


@checker("mlp_forward")
def check_mlp(fn: Callable) -> None:
    """``fn(x, mlp) -> out``: ``W_out(gelu(x W_in + b_in)) + b_out``."""
    mlp = _randomised(MLP(CFG), 6)
    _compare("mlp_forward", fn, mlp, [_x(7, scale=1.0)], (mlp,),
             "project up with W_in and b_in, apply the exact GELU, project down with W_out and b_out",
             lambda x: {"you used ReLU instead of GELU": F.relu(x @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out,
                        "you used the tanh approximation of GELU (this model uses the exact one)":
                            F.gelu(x @ mlp.W_in + mlp.b_in, approximate="tanh") @ mlp.W_out + mlp.b_out,
                        "you forgot b_in": F.gelu(x @ mlp.W_in) @ mlp.W_out + mlp.b_out,
                        "you forgot b_out": F.gelu(x @ mlp.W_in + mlp.b_in) @ mlp.W_out,
                        "you applied the GELU after the second projection: the non-linearity sits between the two":
                            F.gelu((x @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out),
                        "you left out the GELU: without a non-linearity the MLP is one linear map":
                            (x @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out},
             label="mlp_forward")


@checker("transformer_block")
def check_block(fn: Callable) -> None:
    """``fn(resid, block) -> resid``: a pre-LayerNorm transformer block built from its parts."""
    block = _randomised(TransformerBlock(CFG, 0), 8)
    with torch.no_grad():  # LayerNorm gains near 1 keep the check well conditioned
        for ln in (block.ln1, block.ln2):
            ln.w.add_(1.0)
    def mistakes(x):
        post_ln = block.ln1(x + block.attn(x))
        return {
            "you normalised the stream itself (post-LN): normalise only the input of each sub-layer":
                block.ln2(post_ln + block.mlp(post_ln)),
            "the MLP reads ln2 of the block's INPUT: it must read resid_mid, after the attention was added":
                x + block.attn(block.ln1(x)) + block.mlp(block.ln2(x)),
            "a residual connection is missing": block.mlp(block.ln2(x + block.attn(block.ln1(x)))),
            "you normalised both sub-layers' inputs with ln1: the MLP has its own LayerNorm, ln2":
                (x + block.attn(block.ln1(x))) + block.mlp(block.ln1(x + block.attn(block.ln1(x)))),
        }

    _compare("transformer_block", fn, block, [_x(9, scale=1.0)], (block,),
             "each sub-layer should normalise the INPUT it reads (each with its own LayerNorm) and add its output to the "
             "un-normalised stream, attention first, then the MLP reading the stream after attention", mistakes)
