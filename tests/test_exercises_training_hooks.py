"""Each notebook-04 checker passes on a correct answer and fails on a stub and on a typical mistake."""

import math

import pytest

from lib.exercises import ExerciseFailed, unwritten_exercise
from lib.exercises.training_hooks import (
    check_logit_lens_readout,
    check_lr_schedule,
    check_mean_ablation_hook,
    check_training_step,
    reference_training_step,
)


pytestmark = pytest.mark.usefixtures("strict_checkers")


stub = unwritten_exercise


def test_training_step():
    check_training_step(reference_training_step)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_training_step(stub)

    def no_zero_grad(model, opt, batch, clip):
        loss = model(batch, return_type="loss")
        loss.backward()
        opt.step()
        return loss.item()

    with pytest.raises(ExerciseFailed, match="differs"):
        check_training_step(no_zero_grad)


def good_lr(step, max_lr, warmup, max_steps, ratio):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    floor = max_lr * ratio
    return floor + (max_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def test_lr_schedule():
    check_lr_schedule(good_lr)
    with pytest.raises(ExerciseFailed):
        check_lr_schedule(stub)
    with pytest.raises(ExerciseFailed, match="step="):
        check_lr_schedule(lambda s, lr, w, t, r: lr)  # no schedule at all


def test_logit_lens_readout():
    check_logit_lens_readout(lambda model, resid: model.unembed(model.ln_final(resid)))
    with pytest.raises(ExerciseFailed):
        check_logit_lens_readout(stub)
    with pytest.raises(ExerciseFailed, match="LayerNorm"):
        check_logit_lens_readout(lambda model, resid: model.unembed(resid))


def test_mean_ablation_hook():
    def good(z, hook, head, mean_z):
        z[:, :, head] = mean_z[head]
        return z

    check_mean_ablation_hook(good)
    with pytest.raises(ExerciseFailed):
        check_mean_ablation_hook(stub)

    def wrong_axis(z, hook, head, mean_z):
        z[:, head] = mean_z[head]
        return z

    with pytest.raises(ExerciseFailed):
        check_mean_ablation_hook(wrong_axis)
    with pytest.raises(TypeError):
        check_mean_ablation_hook("not a function")
