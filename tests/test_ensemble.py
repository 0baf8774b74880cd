"""lib.core.ensemble: K seeds trained as one vmapped ensemble are the K models sequential training gives.

Tolerance: 1e-4 relative, elementwise for the losses, per weight tensor (||a - b|| / ||b||) for the
weights. The two runs do the same arithmetic in a different order (batched matmuls, the explicit instead
of the fused attention kernel, per-member gradient norms), so they agree to float32 rounding, not bitwise:
measured here, losses within 5e-7 and weight tensors within 2e-5 relative after 8 steps. Per tensor,
because Adam's normalised step turns a rounding-sized gradient difference into an lr-sized weight
difference for entries whose gradient is near 0, so single entries near 0 differ more. 1e-4 leaves room for
other CPUs and stays far below what a real difference gives: another seed's weights differ by O(1), and
feeding a member another member's batches or clipping without per-member norms moves the losses far
beyond it (the tests check the tolerance catches these).

The key biases ``b_K`` are left out of the weight comparison: softmax ignores a shift shared by every key,
and q . b_K is such a shift, so their gradient is 0 in exact arithmetic and their values (~1e-5 here) are
rounding noise Adam amplifies, in any two implementations alike; the test checks they stay that small.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn as nn

from lib.core.ensemble import train_ensemble, train_sequential
from lib.core.model import GPT, GPTConfig
from lib.core.training import TrainConfig

CFG = GPTConfig(d_vocab=16, n_ctx=8, d_model=16, n_layers=2, n_heads=2, d_head=8, d_mlp=32)
# grad_clip 0.05 is below every member's gradient norm at these steps (checked below): clipping is active,
# so a clip over the joint norm of all members instead of each member's own would show.
TRAIN = TrainConfig(max_steps=8, lr=3e-2, warmup_steps=2, grad_clip=0.05, progress=False)
SEEDS = [3, 7, 11]
RTOL = 1e-4
NOISE = ("attn.b_K",)  # zero gradient in exact arithmetic: rounding noise (see above)


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||: the relative distance of one weight tensor (or loss curve) from another."""
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm())


def make_batch_fn(batch: int = 4, pos: int = 8):
    """(seed, step) -> (inputs, targets) from one generator per seed: each member its own stream.
    The target is a fixed function of the input (learnable), the first two positions are not scored."""
    gens: dict[int, torch.Generator] = {}

    def batch_fn(seed: int, step: int):
        gen = gens.setdefault(seed, torch.Generator().manual_seed(1000 + seed))
        x = torch.randint(0, CFG.d_vocab, (batch, pos), generator=gen)
        y = (3 * x + 1) % CFG.d_vocab
        y[:, :2] = -100
        return x, y

    return batch_fn


def build() -> GPT:
    return GPT(CFG)


@pytest.fixture(scope="module")
def both_runs():
    ens = train_ensemble(build, SEEDS, make_batch_fn(), TRAIN)
    seq = train_sequential(build, SEEDS, make_batch_fn(), TRAIN)
    return ens, seq


def test_the_model_has_no_dropout_so_runs_are_deterministic():
    assert not any(isinstance(m, nn.Dropout) for m in build().modules())


def test_ensemble_matches_sequential_training(both_runs):
    (ens_models, ens_losses), (seq_models, seq_losses) = both_runs
    assert ens_losses.shape == seq_losses.shape == (len(SEEDS), TRAIN.max_steps)
    torch.testing.assert_close(ens_losses, seq_losses, rtol=RTOL, atol=0.0)
    # training did something: every member's loss fell, so agreeing is not agreeing on a no-op
    assert bool((seq_losses[:, -1] < seq_losses[:, 0] - 0.1).all()), seq_losses
    for seed, e, s in zip(SEEDS, ens_models, seq_models):
        assert type(e) is GPT and not e.training and e.cfg == CFG
        es, ss = e.state_dict(), s.state_dict()
        assert es.keys() == ss.keys()
        for name in ss:
            if name.endswith(NOISE):
                assert es[name].abs().max() < 1e-4 and ss[name].abs().max() < 1e-4, (seed, name)
            else:
                assert rel_diff(es[name], ss[name]) < RTOL, (seed, name, rel_diff(es[name], ss[name]))


def test_tolerance_separates_members(both_runs):
    """The tolerance is not loose: members differ from each other by far more than it."""
    (ens_models, ens_losses), _ = both_runs
    a, b = ens_models[0].state_dict()["blocks.0.attn.W_Q"], ens_models[1].state_dict()["blocks.0.attn.W_Q"]
    assert rel_diff(a, b) > 100 * RTOL
    assert rel_diff(ens_losses[0], ens_losses[1]) > 100 * RTOL


def test_each_member_is_its_seeds_model_and_stream(both_runs):
    """Member k starts from GPT(CFG) after manual_seed(seeds[k]) and sees seeds[k]'s batches: one member
    trained alone equals the same member inside the ensemble."""
    (ens_models, ens_losses), _ = both_runs
    alone_models, alone_losses = train_ensemble(build, [SEEDS[1]], make_batch_fn(), TRAIN)
    torch.testing.assert_close(alone_losses[0], ens_losses[1], rtol=RTOL, atol=0.0)
    assert rel_diff(alone_models[0].embed.W_E, ens_models[1].embed.W_E) < RTOL
    # feeding member 1 member 0's stream would change its losses beyond the tolerance
    swapped = make_batch_fn()
    _, wrong = train_ensemble(build, [SEEDS[1]], lambda seed, step: swapped(SEEDS[0], step), TRAIN)
    assert rel_diff(wrong[0], ens_losses[1]) > 10 * RTOL


def test_clipping_is_active_and_per_member(both_runs):
    torch.manual_seed(SEEDS[0])
    model = build()
    x, y = make_batch_fn()(SEEDS[0], 0)
    model(x, return_type="loss", targets=y).backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm > TRAIN.grad_clip * 2, "clipping must be active for the comparison to test it"
    # Without clipping the runs differ from the clipped ones beyond the tolerance (so clipping matters here).
    _, unclipped = train_ensemble(build, SEEDS, make_batch_fn(), dataclasses.replace(TRAIN, grad_clip=None))
    (_, ens_losses), _ = both_runs
    assert rel_diff(unclipped, ens_losses) > 10 * RTOL


def test_stacked_adamw_equals_separate_adamws():
    """AdamW is elementwise: one AdamW over [K, ...] tensors is K AdamWs over their slices."""
    K, gen = 3, torch.Generator().manual_seed(0)
    init = torch.randn(K, 5, 4, generator=gen)
    grads = torch.randn(6, K, 5, 4, generator=gen)
    stacked = init.clone().requires_grad_()
    separate = [init[k].clone().requires_grad_() for k in range(K)]
    opt_s = torch.optim.AdamW([stacked], lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95))
    opts = [torch.optim.AdamW([p], lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95)) for p in separate]
    for g in grads:
        stacked.grad = g.clone()
        opt_s.step()
        for k, (p, o) in enumerate(zip(separate, opts)):
            p.grad = g[k].clone()
            o.step()
    assert not torch.allclose(stacked.detach(), init)  # the steps moved the weights
    for k in range(K):
        torch.testing.assert_close(stacked.detach()[k], separate[k].detach(), rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- bad inputs
def test_bad_arguments_raise_naming_the_argument():
    fn = make_batch_fn()
    with pytest.raises(TypeError, match="build_model"):
        train_ensemble("GPT", SEEDS, fn, TRAIN)
    with pytest.raises(TypeError, match="batch_fn"):
        train_ensemble(build, SEEDS, None, TRAIN)
    with pytest.raises(TypeError, match="seeds"):
        train_ensemble(build, "012", fn, TRAIN)
    with pytest.raises(TypeError, match=r"seeds\[1\]"):
        train_ensemble(build, [0, 1.0], fn, TRAIN)
    with pytest.raises(ValueError, match=r"seeds\[0\]"):
        train_ensemble(build, [-1], fn, TRAIN)
    with pytest.raises(ValueError, match="seeds"):
        train_ensemble(build, [], fn, TRAIN)
    with pytest.raises(ValueError, match="distinct"):
        train_sequential(build, [2, 2], fn, TRAIN)
    with pytest.raises(TypeError, match="cfg"):
        train_ensemble(build, SEEDS, fn, {"max_steps": 3})
    with pytest.raises(TypeError, match="build_model must return a lib.core.model.GPT"):
        train_ensemble(lambda: nn.Linear(2, 2), SEEDS, fn, TRAIN)


def test_bad_batches_raise_naming_the_seed():
    good = make_batch_fn()

    def float_inputs(seed, step):
        x, y = good(seed, step)
        return x.float(), y

    def out_of_vocab(seed, step):
        x, y = good(seed, step)
        return x + CFG.d_vocab, y

    def nothing_scored(seed, step):
        x, y = good(seed, step)
        return x, torch.full_like(y, -100) if seed == SEEDS[1] else y

    def ragged(seed, step):
        x, y = good(seed, step)
        return (x[:, :5], y[:, :5]) if seed == SEEDS[2] else (x, y)

    def too_long(seed, step):
        x = torch.zeros(2, CFG.n_ctx + 1, dtype=torch.long)
        return x, x

    with pytest.raises(TypeError, match=r"batch_fn\(seed=3, step=0\) inputs"):
        train_ensemble(build, SEEDS, float_inputs, TRAIN)
    with pytest.raises(ValueError, match="batch_fn inputs must hold ids"):
        train_ensemble(build, SEEDS, out_of_vocab, TRAIN)
    with pytest.raises(ValueError, match=r"seed=7.*no scored position"):
        train_ensemble(build, SEEDS, nothing_scored, TRAIN)
    with pytest.raises(ValueError, match=r"seed=11.*one shape"):
        train_ensemble(build, SEEDS, ragged, TRAIN)
    with pytest.raises(ValueError, match="pos <= 8"):
        train_ensemble(build, SEEDS, too_long, TRAIN)
    with pytest.raises(TypeError, match="pair"):
        train_ensemble(build, SEEDS, lambda seed, step: good(seed, step)[0], TRAIN)


def test_no_global_state_changes_on_failure_or_success():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    with pytest.raises(ValueError):
        train_ensemble(build, SEEDS, lambda seed, step: (torch.zeros(2, 4, dtype=torch.long), torch.full((2, 4), -100)), TRAIN)
    assert torch.equal(torch.get_rng_state(), before), "a failed call must not move the global generator"
    with pytest.raises(TypeError):
        train_ensemble(lambda: nn.Linear(2, 2), SEEDS, make_batch_fn(), TRAIN)
    assert torch.equal(torch.get_rng_state(), before)
    train_ensemble(build, SEEDS[:1], make_batch_fn(), dataclasses.replace(TRAIN, max_steps=1, warmup_steps=0))
    assert torch.equal(torch.get_rng_state(), before), "the global generator is left as it was"


# ----------------------------------------------------------------------------- the benchmark's figure
def test_bench_ensemble_speedup_reports_every_figure():
    """Tiny sizes: checks the measurement runs and is consistent; the speed-up itself comes from
    `python -m lib.experiments.bench`, never from a test."""
    from lib.experiments.bench import ensemble_speedup

    threads = torch.get_num_threads()
    out = ensemble_speedup(k=2, batch_size=4, steps=2)
    assert torch.get_num_threads() == threads, "the thread count is restored"
    for label in ("1_thread", "default_threads"):
        seq, ens = out[f"ensemble_seq_seconds_{label}"], out[f"ensemble_seconds_{label}"]
        assert seq > 0 and ens > 0
        assert out[f"ensemble_speedup_{label}"] == pytest.approx(seq / ens)
    assert out["ensemble_k"] == 2 and out["ensemble_steps"] == 2 and out["ensemble_default_threads"] == threads
    assert out["ensemble_max_loss_rel_diff"] < RTOL, "both ways trained the same models"
    with pytest.raises(ValueError, match="steps"):
        ensemble_speedup(steps=0)
