"""The selection of dense windows after a warm-up (lib.experiments.harness.parts): rows are kept at
random until the warm-up ends and by their gains after it, nothing changes without a warm-up, and
the probe says whether a model's scores predict the trained model's."""

from __future__ import annotations

import pytest
import torch

from lib.core.model import GPT, GPTConfig
from lib.experiments.harness.parts import probe_information, selection_batches
from lib.methods.dense_selection import select_rows, selection_gains

CFG = GPTConfig(d_vocab=12, n_ctx=16, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32)
DENSE = 11


def _draw(step):
    gen = torch.Generator().manual_seed(step)
    tokens = torch.randint(0, 10, (8, 12), generator=gen)
    tokens[:, 4] = DENSE
    targets = torch.roll(tokens, -1, dims=1)
    targets[:, -1] = -100
    targets[tokens.roll(-1, dims=1) == DENSE] = -100
    return tokens, targets


def _model():
    torch.manual_seed(0)
    return GPT(CFG)


def test_without_a_warm_up_every_step_keeps_its_top_rows():
    model, log = _model(), {"gain_all": [], "gain_kept": []}
    fn = selection_batches(_draw, 4, "top", model, DENSE, log)
    for step in range(3):
        tokens, _ = fn(step)
        all_tokens, all_targets = _draw(step)
        keep = select_rows(selection_gains(model, all_tokens, all_targets, DENSE), 4, "top")
        assert torch.equal(tokens, all_tokens[keep])
    assert len(log["gain_all"]) == 3 and "probe_gains" not in log


def test_during_the_warm_up_rows_are_kept_as_the_random_control_keeps_them():
    model = _model()
    warm_log, control_log = {"gain_all": [], "gain_kept": []}, {"gain_all": [], "gain_kept": []}
    warm = selection_batches(_draw, 4, "top", model, DENSE, warm_log, warmup=3, probe=_draw(99))
    control = selection_batches(_draw, 4, "random", model, DENSE, control_log)
    for step in range(3):
        assert torch.equal(warm(step)[0], control(step)[0])
    assert warm_log["gain_all"] == []  # no scoring before the warm-up ends
    tokens, _ = warm(3)
    all_tokens, all_targets = _draw(3)
    keep = select_rows(selection_gains(model, all_tokens, all_targets, DENSE), 4, "top")
    assert torch.equal(tokens, all_tokens[keep]) and len(warm_log["gain_all"]) == 1
    assert set(warm_log["probe_gains"]) == {0, 3} and len(warm_log["probe_gains"][0]) == 8


def test_the_probe_tells_informative_scores_from_noise():
    gen = torch.Generator().manual_seed(1)
    final = torch.randn(300, generator=gen)
    log = {"probe_gains": {0: torch.randn(300, generator=gen).tolist(),  # noise: unrelated to the end
                           5: (final + 0.3 * torch.randn(300, generator=gen)).tolist()}}  # a noisy view of the end
    info = probe_information(log, final.tolist(), warmup=5)
    assert abs(info["probe_rank_corr_with_end"]["start"]) < 0.15
    assert info["probe_rank_corr_with_end"]["warmup"] > 0.8
    assert info["probe_windows"] == 300 and info["warmup_steps"] == 5
    assert info["probe_mean_gain"]["end"] == pytest.approx(float(final.mean()))
