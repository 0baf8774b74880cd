"""The training loop, schedule, batching, evaluation and checkpoints."""

import math

import pytest
import torch

from lib.core.model import GPT, GPTConfig
from lib.core.training import (
    History,
    TrainConfig,
    evaluate_lm_loss,
    lm_batch_fn,
    lm_loss,
    load_gpt,
    lr_at,
    make_optimizer,
    make_reproducible,
    nats_per_char,
    pick_device,
    random_windows,
    read_checkpoint,
    save_checkpoint,
    train,
)

CFG = GPTConfig(d_vocab=16, n_ctx=16, d_model=32, n_layers=1, n_heads=2, d_head=16, d_mlp=64)


def repeating_data(n=2000):
    # A sequence with a learnable rule: each token is the previous one plus 1 (mod 16).
    start = torch.randint(0, 16, (n // 8,), generator=torch.Generator().manual_seed(0))
    return ((start[:, None] + torch.arange(8)) % 16).flatten()


def test_lr_schedule_shape():
    cfg = TrainConfig(max_steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) == pytest.approx(0.55)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(500, cfg) == pytest.approx(0.1)
    lrs = [lr_at(s, cfg) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    with pytest.raises(ValueError):
        lr_at(-1, cfg)


def test_train_config_checks():
    # Each of these trained silently before: grad_clip < 0 climbed the loss, grad_clip = 0 froze
    # the weights, lr = nan learned nothing, a warm-up longer than the run never reached lr.
    for bad in (dict(max_steps=0), dict(lr=0), dict(lr=float("nan")), dict(lr=float("inf")), dict(min_lr_ratio=2),
                dict(eval_interval=0), dict(grad_clip=-1.0), dict(grad_clip=0.0), dict(weight_decay=-1.0),
                dict(warmup_steps=2000), dict(betas=(0.9, 1.0)), dict(log_interval=0)):
        field = next(iter(bad))
        with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
            TrainConfig(**bad)
    for bad in (dict(max_steps=True), dict(max_steps=10.0), dict(lr="3e-3"), dict(progress=1), dict(betas=0.9),
                dict(warmup_steps=None), dict(grad_clip="1")):
        with pytest.raises(TypeError, match=f"TrainConfig.{next(iter(bad))}"):
            TrainConfig(**bad)
    assert TrainConfig(grad_clip=None).grad_clip is None  # None is the documented "no clipping"
    assert TrainConfig(max_steps=10, warmup_steps=10).warmup_steps == 10


def test_training_lowers_loss_and_records_history():
    torch.manual_seed(0)
    data = repeating_data()
    model = GPT(CFG)
    before = evaluate_lm_loss(model, data, 16)
    cfg = TrainConfig(max_steps=60, lr=1e-2, warmup_steps=5, eval_interval=20, log_interval=10, progress=False)
    hist = train(model, lm_batch_fn(data, 16, 16, seed=0), cfg, val_fn=lambda m: evaluate_lm_loss(m, data, 16))
    assert isinstance(hist, History)
    assert hist.val_steps == [19, 39, 59]
    assert hist.steps[0] == 0 and hist.steps[-1] == 59
    assert hist.val_loss[-1] < before - 0.5
    assert not model.training


def test_training_is_deterministic():
    def run():
        make_reproducible(0, threads=2)
        m = GPT(CFG)
        cfg = TrainConfig(max_steps=10, warmup_steps=2, progress=False)
        return train(m, lm_batch_fn(repeating_data(), 8, 16, seed=3), cfg).train_loss

    assert run() == run()


def test_custom_loss_fn_and_nan_guard():
    model = GPT(CFG)
    cfg = TrainConfig(max_steps=3, warmup_steps=1, progress=False)
    calls = []

    def loss_fn(m, batch):
        calls.append(batch)
        return lm_loss(m, batch)

    train(model, lambda step: torch.zeros(2, 4, dtype=torch.long) + step, cfg, loss_fn=loss_fn)
    assert [int(b[0, 0]) for b in calls] == [0, 1, 2]
    with pytest.raises(FloatingPointError, match="loss became"):
        train(model, lambda s: None, cfg, loss_fn=lambda m, b: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(TypeError):
        train(model, lambda s: None, {"max_steps": 3})


def test_optimizer_decays_only_matrices():
    opt = make_optimizer(GPT(CFG), TrainConfig())
    decay, no_decay = opt.param_groups
    assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] > 0
    assert all(p.ndim < 2 for p in no_decay["params"]) and no_decay["weight_decay"] == 0
    with pytest.raises(ValueError, match="no trainable"):
        make_optimizer(torch.nn.Module(), TrainConfig())


def test_random_windows():
    data = torch.arange(100)
    w = random_windows(data, 4, 10, torch.Generator().manual_seed(0))
    assert w.shape == (4, 10)
    assert torch.all(w[:, 1:] - w[:, :-1] == 1)
    with pytest.raises(ValueError, match=r"data must have shape \[n\]"):
        random_windows(data[None], 4, 10, torch.Generator())
    with pytest.raises(ValueError, match="fewer than one window"):
        random_windows(data[:5], 4, 10, torch.Generator())
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        random_windows(data, 0, 10, torch.Generator())


def test_evaluate_predicts_every_token_once():
    model = GPT(CFG)
    data = repeating_data(300)
    loss = evaluate_lm_loss(model, data, 16, batch_size=4)
    # An untrained model is close to uniform over 16 tokens.
    assert abs(loss - math.log(16)) < 0.2
    with pytest.raises(ValueError):
        evaluate_lm_loss(model, data, 1)
    with pytest.raises(ValueError):
        evaluate_lm_loss(model, data[None], 16)


def test_nats_per_char():
    assert nats_per_char(4.0, 100, 250) == pytest.approx(1.6)
    with pytest.raises(ValueError):
        nats_per_char(1.0, 0, 10)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = GPT(CFG)
    path = save_checkpoint(model, tmp_path / "m.safetensors", metadata={"val_loss": 1.5})
    loaded, meta = load_gpt(path)
    assert meta == {"val_loss": 1.5}
    assert loaded.cfg == model.cfg
    t = torch.randint(0, 16, (2, 8))
    assert torch.equal(loaded(t), model(t))
    state, config, _ = read_checkpoint(path)
    assert config["d_model"] == 32 and "embed.W_E" in state


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_gpt(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        load_gpt(bad)


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device().type in ("cpu", "cuda", "mps")


def test_make_reproducible_checks_threads():
    with pytest.raises(ValueError):
        make_reproducible(0, threads=0)
    make_reproducible(3, threads=1)
    a = torch.rand(3)
    make_reproducible(3, threads=1)
    assert torch.equal(a, torch.rand(3))
    assert torch.are_deterministic_algorithms_enabled()


# --------------------------------------------------------------------------- seeds and opening losses
def test_course_seeds_follow_course_seed(monkeypatch):
    from lib.core.training import course_seed, course_seeds

    monkeypatch.delenv("COURSE_SEED", raising=False)
    assert course_seeds(3) == [0, 1, 2] and course_seed() == 0
    monkeypatch.setenv("COURSE_SEED", "10")
    assert course_seeds(3) == [10, 11, 12] and course_seed() == 10
    monkeypatch.setenv("COURSE_SEED", " ")
    assert course_seeds(2) == [0, 1]
    for bad in ("ten", "-1", "1.5", "10000000"):
        monkeypatch.setenv("COURSE_SEED", bad)
        with pytest.raises(ValueError, match="COURSE_SEED"):
            course_seeds(3)
    with pytest.raises(ValueError, match="n"):
        course_seeds(0)


def _tiny_run(steps=12, lr=3e-3, seed=0):
    torch.manual_seed(seed)
    cfg = GPTConfig(d_vocab=16, n_ctx=8, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32)
    model = GPT(cfg)
    data = torch.randint(0, 16, (400,), generator=torch.Generator().manual_seed(1))
    batches = lm_batch_fn(data, 4, 8, seed=seed)
    return train(model, batches, TrainConfig(max_steps=steps, lr=lr, warmup_steps=2, progress=False, log_interval=1))


def test_trace_losses_records_the_opening_steps_and_can_stop_the_run():
    from lib.core.training import trace_losses

    full = _tiny_run()
    with trace_losses(5) as trace:
        again = _tiny_run()
    assert trace.losses == full.train_loss[:5] and again.train_loss == full.train_loss  # recording changes nothing
    with trace_losses(5, stop=True) as stopped:
        _tiny_run()  # ends after 5 steps, quietly
    assert stopped.losses == full.train_loss[:5]
    with trace_losses(5) as other:
        _tiny_run(lr=1e-3)
    assert max(abs(a - b) for a, b in zip(other.losses, trace.losses)) > 1e-4  # another rate opens differently
    with trace_losses(50, stop=True) as short:  # a run shorter than the trace: it ends normally
        _tiny_run()
    assert len(short.losses) == 12 and not short.full
    with pytest.raises(ValueError, match="steps"):
        with trace_losses(0):
            pass
    with pytest.raises(RuntimeError, match="inside"):  # other errors pass through the block
        with trace_losses(3, stop=True):
            raise RuntimeError("inside")
