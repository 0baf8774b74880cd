"""lib.experiments.circuits: the repeated-token task, the attention-only model, the head scores and ablations,
and (slow) that training forms a previous-token head and an induction head whose ablation hurts."""

import math

import pytest
import torch

from lib.experiments.circuits import (
    BOS,
    AttnOnlyTransformer,
    InductionConfig,
    ablation_half_losses,
    chance_loss,
    half_losses,
    induction_scores,
    per_token_loss,
    previous_token_scores,
    repeated_random_tokens,
    stripe_score,
    train_induction_model,
    varied_repeat_tokens,
    zero_ablate_head_hook,
)

SMALL = InductionConfig(d_vocab=16, half_len=6, d_model=16, n_heads=2, d_head=8)


def test_repeated_random_tokens_layout():
    t = repeated_random_tokens(5, 7, 30, torch.Generator().manual_seed(0))
    assert t.shape == (5, 15) and t.dtype == torch.long
    assert (t[:, 0] == BOS).all() and (t[:, 1:] >= 1).all() and (t[:, 1:] < 30).all()
    assert torch.equal(t[:, 1:8], t[:, 8:])
    again = repeated_random_tokens(5, 7, 30, torch.Generator().manual_seed(0))
    assert torch.equal(t, again)


@pytest.mark.parametrize("kwargs, error", [
    (dict(batch=0, half_len=4, d_vocab=10), ValueError),
    (dict(batch=2, half_len=4.0, d_vocab=10), ValueError),
    (dict(batch=2, half_len=4, d_vocab=2), ValueError),
    (dict(batch=2, half_len=4, d_vocab=10, generator=0), TypeError),
])
def test_repeated_random_tokens_bad_inputs(kwargs, error):
    with pytest.raises(error):
        repeated_random_tokens(**kwargs)


def test_varied_repeat_tokens_repeat_with_a_varying_period():
    t = varied_repeat_tokens(64, 8, 50, torch.Generator().manual_seed(1))
    assert t.shape == (64, 17) and (t[:, 0] == BOS).all() and (t[:, 1:] >= 1).all()
    periods = set()
    for row in t.tolist():
        m = next(m for m in range(8, 3, -1) if row[1 : m + 1] == row[m + 1 : 2 * m + 1])
        periods.add(m)
    assert len(periods) >= 3  # the period varies from row to row
    with pytest.raises(ValueError):
        varied_repeat_tokens(2, 8, 50, min_period=9)


def test_config_and_model_checks():
    with pytest.raises(ValueError):
        InductionConfig(half_len=1)
    with pytest.raises(ValueError):
        InductionConfig(d_model=0)
    with pytest.raises(TypeError):
        AttnOnlyTransformer(SMALL.gpt_config())
    model = AttnOnlyTransformer(SMALL)
    tokens = repeated_random_tokens(2, SMALL.half_len, SMALL.d_vocab)
    assert model(tokens).shape == (2, 13, 16)
    assert model(tokens, return_type="loss").ndim == 0
    with pytest.raises(ValueError):
        model(tokens, return_type="both")
    with pytest.raises(ValueError):
        model(torch.zeros(1, 14, dtype=torch.long))  # longer than n_ctx
    assert not any("mlp" in name or "ln" in name for name, _ in model.named_parameters())
    _, cache = model.run_with_cache(tokens)
    assert cache["blocks.1.attn.hook_pattern"].shape == (2, 2, 13, 13)


def test_per_token_and_half_losses():
    tokens = repeated_random_tokens(3, 4, 10)
    perfect = torch.full((3, 9, 10), -1e4)
    perfect.scatter_(-1, torch.cat([tokens[:, 1:], tokens[:, :1]], 1)[..., None], 0.0)
    assert per_token_loss(perfect, tokens).abs().max() < 1e-4
    uniform = torch.zeros(3, 9, 10)
    first, second = half_losses(uniform, tokens, 4)
    assert first == pytest.approx(math.log(10)) and second == pytest.approx(math.log(10))
    with pytest.raises(ValueError):
        half_losses(uniform, tokens, 5)
    with pytest.raises(ValueError):
        per_token_loss(uniform[0], tokens)
    assert chance_loss(65) == pytest.approx(math.log(64))


def test_stripe_score_on_hand_made_patterns():
    pos = 7
    prev = torch.zeros(1, 2, pos, pos)
    prev[0, 0, 0, 0] = 1.0
    prev[0, 0, torch.arange(1, pos), torch.arange(0, pos - 1)] = 1.0  # head 0: previous token
    prev[0, 1] = torch.eye(pos)  # head 1: itself
    assert stripe_score(prev, 1).tolist() == [1.0, 0.0]
    assert stripe_score(prev, 0).tolist() == [pytest.approx(1 / 7), 1.0]
    assert stripe_score(prev, 1, slice(3, 7)).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError):
        stripe_score(prev, 7)
    with pytest.raises(ValueError):
        stripe_score(prev[0], 1)
    with pytest.raises(TypeError):
        stripe_score(prev.long(), 1)
    cache = {"blocks.0.attn.hook_pattern": prev, "blocks.1.attn.hook_pattern": prev}
    assert previous_token_scores(cache, 2).shape == (2, 2)
    assert induction_scores(cache, 2, 3).shape == (2, 2)


def test_zero_ablation_hook_and_ablation_losses():
    z = torch.ones(2, 3, 4, 5)
    out = zero_ablate_head_hook(2)(z)
    assert out[:, :, 2].abs().sum() == 0 and out[:, :, [0, 1, 3]].eq(1).all() and z.eq(1).all()
    with pytest.raises(ValueError):
        zero_ablate_head_hook(-1)
    with pytest.raises(ValueError):
        zero_ablate_head_hook(4)(z)
    model = AttnOnlyTransformer(SMALL)
    tokens = repeated_random_tokens(4, SMALL.half_len, SMALL.d_vocab)
    base = ablation_half_losses(model, tokens, [])
    assert base == pytest.approx(half_losses(model(tokens), tokens, SMALL.half_len))
    with pytest.raises(ValueError):
        ablation_half_losses(model, tokens, [(2, 0)])
    with pytest.raises(TypeError):
        ablation_half_losses("model", tokens, [])


def test_train_checks_its_arguments():
    for kwargs in (dict(steps=0), dict(batch_size=-1), dict(lr=0.0)):
        with pytest.raises(ValueError):
            train_induction_model(SMALL, **kwargs)


@pytest.mark.slow
def test_training_forms_a_previous_token_head_and_an_induction_head():
    """The notebook's claims, at the notebook's settings: both heads form, and removing the
    previous-token head, or the induction heads, raises the loss on the repeated half by over a nat
    while the first half stays near chance."""
    from lib.experiments.circuits import NOTEBOOK_CONFIG, NOTEBOOK_LR, NOTEBOOK_STEPS

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, history = train_induction_model(NOTEBOOK_CONFIG, steps=NOTEBOOK_STEPS, lr=NOTEBOOK_LR, seed=0)
    finally:
        torch.set_num_threads(threads)
    cfg = model.cfg
    assert len(history["step"]) == NOTEBOOK_STEPS // 10 + 1
    tokens = repeated_random_tokens(64, cfg.half_len, cfg.d_vocab, torch.Generator().manual_seed(123))
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    first, second = half_losses(logits, tokens, cfg.half_len)
    assert first > 0.9 * chance_loss(cfg.d_vocab) and second < 1.0
    prev, ind = previous_token_scores(cache, 2), induction_scores(cache, 2, cfg.half_len)
    prev_head = int(prev[0].argmax())
    ind_heads = [h for h in range(cfg.n_heads) if ind[1, h] > 0.3]
    assert prev[0, prev_head] > 0.3 and ind[1].max() > 0.5 and ind_heads
    assert ablation_half_losses(model, tokens, [(0, prev_head)])[1] > second + 1.0
    assert ablation_half_losses(model, tokens, [(1, h) for h in ind_heads])[1] > second + 1.0
