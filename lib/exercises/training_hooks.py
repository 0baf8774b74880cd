"""Checkers for notebook 04 (training and hooks)."""

from __future__ import annotations

import math
from typing import Callable

import torch

from lib.exercises import ExerciseFailed, call_learner, checker, expect, expect_close, explain, report
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


def _step_no_zero_grad(model, optimizer, batch, grad_clip):
    loss = model(batch, return_type="loss")
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def _step_zero_after_backward(model, optimizer, batch, grad_clip):
    loss = model(batch, return_type="loss")
    loss.backward()
    optimizer.zero_grad()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def _step_no_step(model, optimizer, batch, grad_clip):
    loss = model(batch, return_type="loss")
    optimizer.zero_grad()
    loss.backward()
    return loss.item()


def _step_unclipped(model, optimizer, batch, grad_clip):
    return reference_training_step(model, optimizer, batch, None)


def _step_clip_value(model, optimizer, batch, grad_clip):
    loss = model(batch, return_type="loss")
    optimizer.zero_grad()
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def _step_loss_after(model, optimizer, batch, grad_clip):
    reference_training_step(model, optimizer, batch, grad_clip)
    with torch.no_grad():
        return model(batch, return_type="loss").item()


_TRAINING_STEP_MISTAKES = {
    "the gradients piled up from one step to the next: they must be zeroed before each backward":
        _step_no_zero_grad,
    "you zeroed the gradients AFTER backward, so the update had nothing to apply: zeroing clears the old "
    "gradients, before the new ones are computed": _step_zero_after_backward,
    "the parameters never moved: the update itself (optimizer.step) is missing": _step_no_step,
    "the gradients were not clipped: clipping acts on the gradients, so it must come after backward (before it "
    "there is nothing to clip) and before the update, whenever grad_clip is set": _step_unclipped,
    "you clipped each gradient VALUE: grad_clip bounds the global NORM of all the gradients together":
        _step_clip_value,
    "you returned the loss measured AFTER the update: return the one the gradients were computed from":
        _step_loss_after,
}


def _steps(step, clip, batch, learner: bool = False) -> list[tuple]:
    """Two steps of ``step`` on a fresh tiny model: after each, (loss, parameters, gradients all zero)."""
    model = _tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    record = []
    for _ in range(2):
        loss = call_learner("training_step", step, model, optimizer, batch, clip) if learner else step(model, optimizer, batch, clip)
        if learner:
            expect(isinstance(loss, float), "training_step", f"grad_clip={clip}",
                   f"return the loss as a Python float (loss.item()), not {type(loss).__name__}")
        cleared = all(p.grad is None or not p.grad.any() for p in model.parameters())
        record.append((loss, {n: p.detach().clone() for n, p in model.named_parameters()}, cleared))
    return record


def _same_steps(a: list[tuple], b: list[tuple]) -> bool:
    return all(abs(x[0] - y[0]) < 1e-5 and x[2] == y[2] and all(torch.allclose(x[1][n], y[1][n], atol=1e-6) for n in x[1])
               for x, y in zip(a, b))


@checker("training_step")
def check_training_step(fn: Callable) -> None:
    """``fn(model, optimizer, batch, grad_clip) -> float`` must do one full update. The parameters are
    compared after each step BEFORE the returned loss, so a wrong update is named as such."""
    name = "training_step"
    batch = torch.randint(0, 20, (4, 8), generator=torch.Generator().manual_seed(1))
    n = 0
    for clip in (None, 0.01):
        expected = _steps(reference_training_step, clip, batch)
        # Two steps, so a missing zero_grad (gradients piling up) shows in the second one.
        got = _steps(fn, clip, batch, learner=True)
        named = None
        if not all(abs(g[0] - e[0]) < 1e-5 and all(torch.allclose(g[1][k], e[1][k], atol=1e-6) for k in e[1])
                   for g, e in zip(got, expected)):
            named = next((d for d, wrong in _TRAINING_STEP_MISTAKES.items()
                          if _same_steps(got, _steps(wrong, clip, batch))), None)
        lead = f"It looks like {named}. " if named else ""
        for i, (g, e) in enumerate(zip(got, expected)):
            bad = next((k for k in e[1] if not torch.allclose(g[1][k], e[1][k], atol=1e-6)), None)
            expect(
                bad is None, name, f"grad_clip={clip}",
                f"parameter {bad} differs after step {i + 1}. {lead}One update: the loss, fresh gradients (the "
                "old ones cleared first), clipping of their global norm when grad_clip is set, then the optimizer's "
                "step",
            )
            expect(
                abs(g[0] - e[0]) < 1e-5, name, f"grad_clip={clip}",
                f"the parameters are right but the loss returned at step {i + 1} is {g[0]:.5f}, expected {e[0]:.5f}. "
                f"{lead}Return the loss the gradients were computed from, as a Python float",
            )
        n += 1
    report(name, n)


def _lr_no_plus_one(step, max_lr, warmup, total, ratio):
    if step < warmup:
        return max_lr * step / warmup
    return reference_lr_schedule(step, max_lr, warmup, total, ratio)


def _lr_uncapped(step, max_lr, warmup, total, ratio):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    floor = max_lr * ratio
    return floor + (max_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _lr_to_zero(step, max_lr, warmup, total, ratio):
    return reference_lr_schedule(step, max_lr, warmup, total, 0.0)


def _lr_progress_from_zero(step, max_lr, warmup, total, ratio):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    progress = min(1.0, step / max(1, total))
    floor = max_lr * ratio
    return floor + (max_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


_LR_MISTAKES = {
    "you used step / warmup_steps: the convention is (step + 1) / warmup_steps, so step 0 already trains":
        _lr_no_plus_one,
    "you did not cap the progress at 1: past max_steps the cosine climbs back up instead of staying at the floor":
        _lr_uncapped,
    "your cosine decays to 0: it ends at the floor max_lr * min_lr_ratio": _lr_to_zero,
    "you measured the decay's progress from step 0: it starts when the warm-up ends": _lr_progress_from_zero,
}


@checker("lr_schedule")
def check_lr_schedule(fn: Callable) -> None:
    """``fn(step, max_lr, warmup_steps, max_steps, min_lr_ratio) -> float`` (warm-up + cosine)."""
    name = "lr_schedule"
    cases = [(0, 10, 100), (5, 10, 100), (9, 10, 100), (10, 10, 100), (55, 10, 100), (100, 10, 100), (150, 10, 100), (3, 0, 50)]
    outputs = []
    for step, warmup, total in cases:
        case = f"step={step}, warmup={warmup}, max_steps={total}"
        try:
            got = call_learner(name, fn, step, 1.0, warmup, total, 0.1)
        except ExerciseFailed as failure:
            if isinstance(failure.__cause__, ZeroDivisionError) and warmup == 0:
                raise ExerciseFailed(
                    f"{name}: wrong on {case}.\nHint: it looks like you divided by zero when warmup_steps = 0: "
                    "with no warm-up, no step is in the warm-up and the decay's length must not be 0 either"
                ) from failure
            raise
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        expect(isinstance(got, (int, float)) and not isinstance(got, bool), name, case,
               f"return the learning rate as a Python float, not {type(got).__name__}")
        outputs.append(float(got))
    candidates = {d: [wrong(step, 1.0, warmup, total, 0.1) for step, warmup, total in cases] for d, wrong in _LR_MISTAKES.items()}
    for at, ((step, warmup, total), got) in enumerate(zip(cases, outputs)):
        cfg = TrainConfig(max_steps=total, lr=1.0, warmup_steps=warmup, min_lr_ratio=0.1)
        ok = abs(got - lr_at(step, cfg)) < 1e-6
        named = None if ok else explain(outputs, candidates, same=lambda a, b: abs(a - b) < 1e-6, at=at)
        expect(
            ok, name, f"step={step}, warmup={warmup}, max_steps={total}",
            (f"It looks like {named}. " if named else "")
            + f"Expected {lr_at(step, cfg):.4f}, got {got:.4f}. Warm-up climbs linearly so that its first step already "
            "has a learning rate and its last reaches max_lr; then half a cosine wave takes max_lr down to the floor "
            "at max_steps, and it stays there",
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
    with torch.no_grad():
        expected = model.unembed(model.ln_final(resid))
        normed = model.ln_final(resid)
        mistakes = {
            "you skipped the final LayerNorm": model.unembed(resid),
            "you returned probabilities (a softmax): the readout is the logits": expected.softmax(-1),
            "you returned log-probabilities: the readout is the raw logits": expected.log_softmax(-1),
            "you forgot the unembedding's bias b_U (call model.unembed rather than multiplying by W_U)":
                normed @ model.unembed.W_U,
            "you decoded with the transposed EMBEDDING: the unembedding is a separate matrix in this model":
                normed @ model.embed.W_E.T,
            "you normalised with a block's LayerNorm: the unembedding was trained on the output of ln_final":
                model.unembed(model.blocks[-1].ln1(resid)),
        }
    got = call_learner(name, fn, model, resid)
    expect_close(
        got, expected, name, "a random residual",
        "decode the vector the way the model decodes its last layer: the same normalisation first, then the "
        "unembedding (the final LayerNorm matters: the unembedding was trained on normalised vectors)",
        mistakes=mistakes,
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
        mistakes = {}
        for description, index, value in (
            ("you zero-ablated the head: replace it by its MEAN, mean_z[head]", (slice(None), slice(None), head), 0.0),
            ("you indexed the position axis (the second): the head axis is the THIRD of [batch, pos, head, d_head]",
             (slice(None), head), mean_z[head]),
            ("you replaced the head by the mean over all heads: use that head's own mean, mean_z[head]",
             (slice(None), slice(None), head), mean_z.mean(0)),
            ("you replaced EVERY head by its mean: only head `head` is ablated", (slice(None),), mean_z),
            ("you used this batch's mean of the head: mean_z is the mean over a reference dataset",
             (slice(None), slice(None), head), original[:, :, head].mean((0, 1))),
        ):
            wrong = original.clone()
            if index[-1] is head and len(index) == 2 and head >= wrong.shape[1]:
                continue
            wrong[index] = value
            mistakes[description] = wrong
        expect_close(
            got, expected, name, f"head={head}",
            "z has shape [batch, pos, head, d_head]: replace that one head, at every batch entry and position, by "
            "its mean over the reference data, and leave the other heads alone",
            mistakes=mistakes,
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
