"""The asset-regeneration command (a short version) and the benchmark's figures."""

import json
import math
import subprocess
import sys

import pytest

from lib.experiments.bench import training_throughput
from lib.core.machine import training_flops
from lib.core.model import GPT, GPTConfig
from lib.core.paths import CHECKPOINT_PATH, TOKENIZER_PATH
from lib.experiments.prepare import TINY_MODEL, prepare
from lib.core.training import load_gpt, read_checkpoint


def test_quick_prepare_command_trains_and_loss_falls(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lib.experiments.prepare", "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, check=True, timeout=300,
    )
    summary = json.loads(result.stdout)
    assert summary["final_val_loss_per_token"] < summary["first_val_loss"] - 0.3
    model, meta = load_gpt(tmp_path / CHECKPOINT_PATH.name)
    assert meta["val_loss_per_token"] == pytest.approx(summary["final_val_loss_per_token"])
    assert (tmp_path / TOKENIZER_PATH.name).is_file()


def test_prepare_rejects_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        prepare(tmp_path, text="")
    with pytest.raises(ValueError, match="d_vocab"):
        prepare(tmp_path, text="abc" * 100, vocab_size=300, model_cfg=GPTConfig(d_vocab=400))


def test_shipped_assets_match_the_course_config():
    state, config, meta = read_checkpoint(CHECKPOINT_PATH)
    assert GPTConfig(**config) == TINY_MODEL
    assert CHECKPOINT_PATH.stat().st_size < 20 * 2**20
    assert meta["val_loss_per_char"] < 1.88
    from lib.core.data import load_tokenizer

    tok = load_tokenizer()
    assert tok.vocab_size == TINY_MODEL.d_vocab


def test_training_throughput_reports_every_figure():
    cfg = GPTConfig(d_vocab=64, n_ctx=16, d_model=32, n_layers=1, n_heads=2, d_head=16, d_mlp=64)
    out = training_throughput(cfg, batch_size=2, steps=1, rounds=1)
    for key in ("train_tokens_per_s_ours", "train_tokens_per_s_tl", "train_speed_ratio_vs_tl", "hooked_pattern_slowdown",
                "train_flops_per_s_ours", "matmul_peak_flops_per_s", "train_fraction_of_peak"):
        assert out[key] > 0, key
    # the fraction is the two rates divided, and a training loop cannot beat the matmul peak by much
    assert out["train_fraction_of_peak"] == pytest.approx(out["train_flops_per_s_ours"] / out["matmul_peak_flops_per_s"])
    assert out["train_fraction_of_peak"] < 2.0
    # 6N counts every parameter but the two looked-up tables (token and position), plus attention
    model = GPT(cfg)
    multiplied = sum(p.numel() for n, p in model.named_parameters() if n not in ("embed.W_E", "pos_embed.W_pos"))
    per_token = out["train_flops_per_s_ours"] / out["train_tokens_per_s_ours"]
    assert per_token == pytest.approx(training_flops(multiplied, 1, cfg.n_layers, cfg.n_ctx, cfg.d_model))
    with pytest.raises(ValueError):
        training_throughput(cfg, steps=0)


@pytest.mark.slow
def test_bench_json_command_prints_the_required_keys():
    # A smoke test: tiny sizes, no limit a loaded machine could miss (the timeout only catches a hang).
    # The figures themselves come from `python -m lib.experiments.bench`, never from a test.
    result = subprocess.run([sys.executable, "-m", "lib.experiments.bench", "--json", "--smoke"], capture_output=True, text=True,
                            check=True, timeout=900)
    figures = json.loads(result.stdout[result.stdout.index("{"):])
    assert figures["smoke"] is True
    for key in ("train_speed_ratio_vs_tl", "train_fraction_of_peak", "bpe_train_seconds", "hooked_pattern_slowdown",
                "insertion_round_vs_forward"):
        assert math.isfinite(figures[key]) and figures[key] > 0, key
