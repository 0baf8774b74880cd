"""Checkers for notebook 04 (training and hooks)."""

from __future__ import annotations

import math
from typing import Callable

import torch

from lib.exercises import ExerciseFailed, call_learner, checker, expect, expect_close, report
from lib.core.model import GPT, GPTConfig
from lib.core.training import TrainConfig, lr_at

_TINY = GPTConfig(d_vocab=20, n_ctx=8, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32)


def _tiny_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(_TINY)


def reference_training_step(model, optimizer, batch, grad_clip: float | None) -> float:
    loss = model(batch, return_type="loss")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def reference_lr_schedule(step: int, max_lr: float, warmup_steps: int, max_steps: int, min_lr_ratio: float) -> float:
    """The solution: linear warm-up over (step + 1) / warmup_steps, then a half cosine to the floor."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    floor = max_lr * min_lr_ratio
    return floor + (max_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def reference_logit_lens_readout(model: GPT, resid: torch.Tensor) -> torch.Tensor:
    """The solution: the final LayerNorm, then the unembedding."""
    return model.unembed(model.ln_final(resid))


def reference_mean_ablation_hook(z: torch.Tensor, hook, head: int, mean_z: torch.Tensor) -> torch.Tensor:
    """The solution: head ``head`` of z replaced by its mean."""
    z[:, :, head] = mean_z[head]
    return z


@checker("training_step")
def check_training_step(fn: Callable) -> None:
    """``fn(model, optimizer, batch, grad_clip) -> float`` must do one full update."""
    name = "training_step"
    batch = torch.randint(0, 20, (4, 8), generator=torch.Generator().manual_seed(1))
    n = 0
    for clip in (None, 0.01):
        ours, theirs = _tiny_model(), _tiny_model()
        opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-2)
        opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-2)
        # Two steps, so a missing zero_grad (gradients piling up) shows in the second one.
        for _ in range(2):
            expected = reference_training_step(ours, opt_ours, batch, clip)
            got = call_learner(name, fn, theirs, opt_theirs, batch, clip)
            expect(isinstance(got, float), name, f"grad_clip={clip}",
                   f"return the loss as a Python float (loss.item()), not {type(got).__name__}")
            expect(
                abs(got - expected) < 1e-5,
                name, f"grad_clip={clip}", f"the loss returned is {got:.5f}, expected {expected:.5f}: return the loss "
                "computed BEFORE the update (after a missing zero_grad the second step's loss differs too)",
            )
        for (pname, a), b in zip(ours.named_parameters(), theirs.parameters()):
            expect(
                torch.allclose(a, b, atol=1e-6),
                name, f"grad_clip={clip}",
                f"parameter {pname} differs after two steps: zero the gradients each step, call backward, "
                "clip the global gradient norm when grad_clip is set, then optimizer.step()",
            )
        n += 1
    report(name, n)


@checker("lr_schedule")
def check_lr_schedule(fn: Callable) -> None:
    """``fn(step, max_lr, warmup_steps, max_steps, min_lr_ratio) -> float`` (warm-up + cosine)."""
    name = "lr_schedule"
    cases = [(0, 10, 100), (5, 10, 100), (9, 10, 100), (10, 10, 100), (55, 10, 100), (100, 10, 100), (150, 10, 100), (3, 0, 50)]
    for step, warmup, total in cases:
        cfg = TrainConfig(max_steps=total, lr=1.0, warmup_steps=warmup, min_lr_ratio=0.1)
        got = call_learner(name, fn, step, 1.0, warmup, total, 0.1)
        case = f"step={step}, warmup={warmup}, max_steps={total}"
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        expect(isinstance(got, (int, float)) and not isinstance(got, bool), name, case,
               f"return the learning rate as a Python float, not {type(got).__name__}")
        got = float(got)
        no_plus_one = step < warmup and abs(got - step / warmup) < 1e-6
        expect(
            abs(got - lr_at(step, cfg)) < 1e-6,
            name, case,
            ("It looks like you used step / warmup_steps: the convention is (step + 1) / warmup_steps, so step 0 "
             "already trains. " if no_plus_one else "")
            + f"Expected {lr_at(step, cfg):.4f}, got {got:.4f}. Warm-up is linear from max_lr/warmup at step 0 to "
            "max_lr at step warmup-1; then a half cosine from max_lr to max_lr*min_lr_ratio at max_steps, flat after",
        )
    report(name, len(cases))


@checker("logit_lens_readout")
def check_logit_lens_readout(fn: Callable) -> None:
    """``fn(model, resid) -> logits``: decode a residual vector as if it were the last layer's."""
    name = "logit_lens_readout"
    model = _tiny_model(2)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    resid = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(3)) * 4
    expected = model.unembed(model.ln_final(resid))
    got = call_learner(name, fn, model, resid)
    expect_close(
        got, expected, name, "a random residual",
        "apply the final LayerNorm (model.ln_final) before the unembedding (model.unembed): the unembedding was "
        "trained on normalised vectors",
        mistakes={"you skipped the final LayerNorm": model.unembed(resid)},
    )
    report(name, 1)


@checker("mean_ablation_hook")
def check_mean_ablation_hook(fn: Callable) -> None:
    """``fn(z, hook, head, mean_z) -> z`` replaces head ``head`` of ``z`` by ``mean_z[head]``."""
    name = "mean_ablation_hook"
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(2, 3, 4, 5, generator=gen)  # [batch, pos, head, d_head]
    mean_z = torch.randn(4, 5, generator=gen)
    for head in (0, 3):
        original = z.clone()
        got = call_learner(name, fn, z.clone(), None, head, mean_z)
        expected = original.clone()
        expected[:, :, head] = mean_z[head]
        zeroed = original.clone()
        zeroed[:, :, head] = 0.0
        expect_close(
            got, expected, name, f"head={head}",
            "z has shape [batch, pos, head, d_head]: set z[:, :, head] to mean_z[head] and leave the other heads alone",
            mistakes={"you zero-ablated the head: replace it by its MEAN, mean_z[head]": zeroed},
        )
    report(name, 2)


__all__ = [
    "ExerciseFailed",
    "check_training_step",
    "check_lr_schedule",
    "check_logit_lens_readout",
    "check_mean_ablation_hook",
    "reference_training_step",
    "reference_lr_schedule",
    "reference_logit_lens_readout",
    "reference_mean_ablation_hook",
]
