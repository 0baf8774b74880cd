"""Mistake bank, notebooks 03, 04 and 04b: typical mistakes written from each exercise's docstring,
each rejected in strict mode with a message that NAMES the mistake, not the generic recipe alone.
The training-step mistakes (order of zero_grad / backward / clip / step) are named by their real
cause: the parameters are compared before the returned loss."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from fancy_einsum import einsum

from lib.core.claims import strict
from lib.exercises import ExerciseFailed
from mistake_bank_common import assert_enough_mistakes, assert_rejected_and_named, bank_ids
from lib.exercises.circuits import check_attention_at_offset
from lib.exercises.training_hooks import (
    check_logit_lens_readout, check_lr_schedule, check_mean_ablation_hook, check_training_step,
)
from lib.exercises.transformer import (
    check_apply_causal_mask, check_attention_output, check_attention_scores, check_block, check_layer_norm, check_mlp,
)


def _q_k(x, attn, bias=True):
    q = einsum("b p d, h d e -> b p h e", x, attn.W_Q) + (attn.b_Q if bias else 0)
    k = einsum("b p d, h d e -> b p h e", x, attn.W_K) + (attn.b_K if bias else 0)
    return q, k


def scores_unscaled(x, attn):
    q, k = _q_k(x, attn)
    return einsum("b q h e, b k h e -> b h q k", q, k)


def scores_by_d_head(x, attn):
    return scores_unscaled(x, attn) / attn.cfg.d_head


def scores_transposed(x, attn):
    return (scores_unscaled(x, attn) / attn.cfg.d_head**0.5).transpose(-1, -2)


def scores_no_bias(x, attn):
    q, k = _q_k(x, attn, bias=False)
    return einsum("b q h e, b k h e -> b h q k", q, k) / attn.cfg.d_head**0.5


def scores_masked(x, attn):
    s = scores_unscaled(x, attn) / attn.cfg.d_head**0.5
    n = s.shape[-1]
    return s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))


def _future(s, diagonal=1):
    n = s.shape[-1]
    return torch.ones(n, n, dtype=torch.bool).triu(diagonal)


def mask_in_place(s):
    return s.masked_fill_(_future(s), float("-inf"))


def mask_diagonal(s):
    return s.masked_fill(_future(s, 0), float("-inf"))


def mask_past(s):
    n = s.shape[-1]
    return s.masked_fill(torch.ones(n, n, dtype=torch.bool).tril(-1), float("-inf"))


def mask_zero(s):
    return s.masked_fill(_future(s), 0.0)


def mask_big_negative(s):
    return s.masked_fill(_future(s), -1e4)


def _z(pattern, x, attn, b_v=True):
    v = einsum("b p d, h d e -> b p h e", x, attn.W_V) + (attn.b_V if b_v else 0)
    return einsum("b h q k, b k h e -> b q h e", pattern, v)


def out_no_b_o(pattern, x, attn):
    return einsum("b p h e, h e d -> b p d", _z(pattern, x, attn), attn.W_O)


def out_b_o_per_head(pattern, x, attn):
    return (einsum("b p h e, h e d -> b p h d", _z(pattern, x, attn), attn.W_O) + attn.b_O).sum(2)


def out_no_b_v(pattern, x, attn):
    return einsum("b p h e, h e d -> b p d", _z(pattern, x, attn, b_v=False), attn.W_O) + attn.b_O


def out_heads_kept(pattern, x, attn):
    return einsum("b p h e, h e d -> b p h d", _z(pattern, x, attn), attn.W_O) + attn.b_O


def out_heads_averaged(pattern, x, attn):
    return einsum("b p h e, h e d -> b p h d", _z(pattern, x, attn), attn.W_O).mean(2) + attn.b_O


def ln_unbiased(x, w, b, eps):
    c = x - x.mean(-1, keepdim=True)
    return c / (x.var(-1, keepdim=True) + eps).sqrt() * w + b


def ln_no_affine(x, w, b, eps):
    c = x - x.mean(-1, keepdim=True)
    return c / (c.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def ln_eps_outside(x, w, b, eps):
    c = x - x.mean(-1, keepdim=True)
    return c / (c.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w + b


def ln_rms(x, w, b, eps):
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt() * w + b


def mlp_relu(x, mlp):
    return F.relu(x @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out


def mlp_tanh(x, mlp):
    return F.gelu(x @ mlp.W_in + mlp.b_in, approximate="tanh") @ mlp.W_out + mlp.b_out


def mlp_no_b_in(x, mlp):
    return F.gelu(x @ mlp.W_in) @ mlp.W_out + mlp.b_out


def mlp_gelu_last(x, mlp):
    return F.gelu((x @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out)


def block_post_ln(r, blk):
    mid = blk.ln1(r + blk.attn(r))
    return blk.ln2(mid + blk.mlp(mid))


def block_parallel(r, blk):
    return r + blk.attn(blk.ln1(r)) + blk.mlp(blk.ln2(r))


def block_no_residual(r, blk):
    return blk.mlp(blk.ln2(r + blk.attn(blk.ln1(r))))


def block_ln1_twice(r, blk):
    mid = r + blk.attn(blk.ln1(r))
    return mid + blk.mlp(blk.ln1(mid))


# ----------------------------------------------------------------------------- 04 training_step
def step_no_zero_grad(model, opt, batch, clip):
    loss = model(batch, return_type="loss")
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss.item()


def step_zero_grad_after_backward(model, opt, batch, clip):
    loss = model(batch, return_type="loss")
    loss.backward()
    opt.zero_grad()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss.item()


def step_clip_before_backward(model, opt, batch, clip):
    loss = model(batch, return_type="loss")
    opt.zero_grad()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    loss.backward()
    opt.step()
    return loss.item()


def step_never_clips(model, opt, batch, clip):
    loss = model(batch, return_type="loss")
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def step_clip_value(model, opt, batch, clip):
    loss = model(batch, return_type="loss")
    opt.zero_grad()
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_value_(model.parameters(), clip)
    opt.step()
    return loss.item()


def step_loss_after(model, opt, batch, clip):
    loss = model(batch, return_type="loss")
    opt.zero_grad()
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    with torch.no_grad():
        return model(batch, return_type="loss").item()


def step_no_step(model, opt, batch, clip):
    loss = model(batch, return_type="loss")
    opt.zero_grad()
    loss.backward()
    return loss.item()


# ----------------------------------------------------------------------------- 04 lr_schedule
def _cosine(step, max_lr, warmup, total, ratio, plus_one=True, cap=True, floor_ratio=None, from_zero=False):
    if step < warmup:
        return max_lr * (step + (1 if plus_one else 0)) / warmup
    progress = (step if from_zero else step - warmup) / max(1, total if from_zero else total - warmup)
    progress = min(1.0, progress) if cap else progress
    floor = max_lr * (ratio if floor_ratio is None else floor_ratio)
    return floor + (max_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def lr_divides_by_zero(step, max_lr, warmup, total, ratio):
    if step < warmup or step / warmup < 1:
        return max_lr * (step + 1) / warmup
    return _cosine(step, max_lr, warmup, total, ratio)


# ----------------------------------------------------------------------------- 04 mean_ablation_hook
def hook_zero(z, hook, head, mean_z):
    z[:, :, head] = 0.0
    return z


def hook_wrong_axis(z, hook, head, mean_z):
    z[:, head] = mean_z[head]
    return z


def hook_mean_of_heads(z, hook, head, mean_z):
    z[:, :, head] = mean_z.mean(0)
    return z


def hook_every_head(z, hook, head, mean_z):
    z[:] = mean_z
    return z


def hook_batch_mean(z, hook, head, mean_z):
    z[:, :, head] = z[:, :, head].mean((0, 1))
    return z


# ----------------------------------------------------------------------------- 04b attention_at_offset
def offset_all_queries(pattern, offset):
    q = torch.arange(offset, pattern.shape[-1])
    return pattern[:, :, q, q - offset].sum(2).mean(0) / pattern.shape[-1]


def offset_future(pattern, offset):
    q = torch.arange(offset, pattern.shape[-1])
    return pattern[:, :, q - offset, q].mean(dim=(0, 2))


def offset_summed(pattern, offset):
    q = torch.arange(offset, pattern.shape[-1])
    return pattern[:, :, q, q - offset].sum(dim=(0, 2))


def offset_scalar(pattern, offset):
    q = torch.arange(offset, pattern.shape[-1])
    return pattern[:, :, q, q - offset].mean()


def offset_keeps_batch(pattern, offset):
    q = torch.arange(offset, pattern.shape[-1])
    return pattern[:, :, q, q - offset].mean(dim=2)


BANK = [
    ("layer_norm", check_layer_norm, ln_unbiased, "unbiased"),
    ("layer_norm", check_layer_norm, ln_no_affine, "forgot to scale by w"),
    ("layer_norm", check_layer_norm, ln_eps_outside, "eps is outside"),
    ("layer_norm", check_layer_norm, ln_rms, "did not subtract the mean"),
    ("attention_scores", check_attention_scores, scores_unscaled, "forgot to divide by sqrt(d_head)"),
    ("attention_scores", check_attention_scores, scores_by_d_head, "divided by d_head instead"),
    ("attention_scores", check_attention_scores, scores_transposed, "transpose"),
    ("attention_scores", check_attention_scores, scores_no_bias, "forgot the biases"),
    ("attention_scores", check_attention_scores, scores_masked, "masked already"),
    ("apply_causal_mask", check_apply_causal_mask, mask_in_place, "in place"),
    ("apply_causal_mask", check_apply_causal_mask, mask_diagonal, "masked the diagonal"),
    ("apply_causal_mask", check_apply_causal_mask, mask_past, "masked the past"),
    ("apply_causal_mask", check_apply_causal_mask, mask_zero, "filled with 0"),
    ("apply_causal_mask", check_apply_causal_mask, mask_big_negative, "large negative"),
    ("attention_output", check_attention_output, out_no_b_o, "forgot b_O"),
    ("attention_output", check_attention_output, out_b_o_per_head, "once per head"),
    ("attention_output", check_attention_output, out_no_b_v, "forgot b_V"),
    ("attention_output", check_attention_output, out_heads_kept, "did not sum over the head axis"),
    ("attention_output", check_attention_output, out_heads_averaged, "averaged over heads"),
    ("mlp_forward", check_mlp, mlp_relu, "ReLU"),
    ("mlp_forward", check_mlp, mlp_tanh, "tanh approximation"),
    ("mlp_forward", check_mlp, mlp_no_b_in, "forgot b_in"),
    ("mlp_forward", check_mlp, mlp_gelu_last, "after the second projection"),
    ("transformer_block", check_block, block_post_ln, "post-LN"),
    ("transformer_block", check_block, block_parallel, "resid_mid"),
    ("transformer_block", check_block, block_no_residual, "residual connection is missing"),
    ("transformer_block", check_block, block_ln1_twice, "with ln1"),
    ("training_step", check_training_step, step_no_zero_grad, "piled up"),
    ("training_step", check_training_step, step_zero_grad_after_backward, "AFTER backward"),
    ("training_step", check_training_step, step_clip_before_backward, "not clipped"),
    ("training_step", check_training_step, step_never_clips, "not clipped"),
    ("training_step", check_training_step, step_clip_value, "VALUE"),
    ("training_step", check_training_step, step_loss_after, "AFTER the update"),
    ("training_step", check_training_step, step_no_step, "optimizer.step"),
    ("lr_schedule", check_lr_schedule, lambda *a: _cosine(*a, plus_one=False), "(step + 1)"),
    ("lr_schedule", check_lr_schedule, lambda *a: _cosine(*a, cap=False), "cap the progress"),
    ("lr_schedule", check_lr_schedule, lambda *a: _cosine(*a, floor_ratio=0.0), "decays to 0"),
    ("lr_schedule", check_lr_schedule, lambda *a: _cosine(*a, from_zero=True), "from step 0"),
    ("lr_schedule", check_lr_schedule, lr_divides_by_zero, "divided by zero"),
    ("logit_lens_readout", check_logit_lens_readout, lambda m, r: m.unembed(r), "skipped the final LayerNorm"),
    ("logit_lens_readout", check_logit_lens_readout, lambda m, r: m.unembed(m.ln_final(r)).softmax(-1), "probabilities"),
    ("logit_lens_readout", check_logit_lens_readout, lambda m, r: m.ln_final(r) @ m.unembed.W_U, "b_U"),
    ("logit_lens_readout", check_logit_lens_readout, lambda m, r: m.ln_final(r) @ m.embed.W_E.T, "EMBEDDING"),
    ("mean_ablation_hook", check_mean_ablation_hook, hook_zero, "zero-ablated"),
    ("mean_ablation_hook", check_mean_ablation_hook, hook_wrong_axis, "THIRD"),
    ("mean_ablation_hook", check_mean_ablation_hook, hook_mean_of_heads, "mean over all heads"),
    ("mean_ablation_hook", check_mean_ablation_hook, hook_every_head, "EVERY head"),
    ("mean_ablation_hook", check_mean_ablation_hook, hook_batch_mean, "this batch's mean"),
    ("attention_at_offset", check_attention_at_offset, offset_all_queries, "ALL queries"),
    ("attention_at_offset", check_attention_at_offset, offset_future, "future"),
    ("attention_at_offset", check_attention_at_offset, offset_summed, "summed"),
    ("attention_at_offset", check_attention_at_offset, offset_scalar, "averaged over the heads too"),
    ("attention_at_offset", check_attention_at_offset, offset_keeps_batch, "kept the batch axis"),
]

NOTEBOOK_EXERCISES = ["layer_norm", "attention_scores", "apply_causal_mask", "attention_output", "mlp_forward",
                      "transformer_block", "training_step", "lr_schedule", "logit_lens_readout",
                      "mean_ablation_hook", "attention_at_offset"]


def test_every_exercise_has_at_least_three_named_mistakes():
    assert_enough_mistakes(BANK, NOTEBOOK_EXERCISES)


@pytest.mark.parametrize("exercise, check, wrong, named", BANK, ids=bank_ids(BANK))
def test_mistake_is_rejected_and_named(exercise, check, wrong, named):
    assert_rejected_and_named(exercise, check, wrong, named)
def test_training_step_names_the_update_before_the_loss():
    """Clipping before backward and zero_grad after it change the UPDATE: the message must say so
    rather than blame the returned loss."""
    for wrong in (step_clip_before_backward, step_zero_grad_after_backward):
        with strict(), pytest.raises(ExerciseFailed) as failure:
            check_training_step(wrong)
        assert "differs after step" in str(failure.value) and "BEFORE the update" not in str(failure.value)
