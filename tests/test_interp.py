"""Logit lens, head ablation and attention-offset scores on a small model."""

import pytest
import torch

from lib.core.interp import attention_to_offset, head_ablation_losses, logit_lens, logit_lens_losses, mean_ablate_head_hook
from lib.core.model import GPT, GPTConfig


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = GPT(GPTConfig(d_vocab=30, n_ctx=16, d_model=32, n_layers=2, n_heads=2, d_head=16, d_mlp=64)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.2)
    return m


TOKENS = torch.randint(0, 30, (4, 10), generator=torch.Generator().manual_seed(0))


def test_logit_lens_last_stage_is_the_model(model):
    names, logits = logit_lens(model, TOKENS)
    assert names == ["embed", "block 0", "block 1"]
    assert logits.shape == (3, 4, 10, 30)
    assert torch.allclose(logits[-1], model(TOKENS), atol=1e-5)
    names, losses = logit_lens_losses(model, TOKENS)
    assert losses[-1] == pytest.approx(model(TOKENS, return_type="loss").item(), abs=1e-5)


def test_head_ablation(model):
    effects = head_ablation_losses(model, TOKENS)
    assert effects.shape == (2, 2)
    assert effects.abs().sum() > 0
    # Ablating by hand gives the same number.
    _, cache = model.run_with_cache(TOKENS)
    mean_z = cache["blocks.1.attn.hook_z"].mean(dim=(0, 1))
    loss = model.run_with_hooks(TOKENS, return_type="loss", fwd_hooks=[("blocks.1.attn.hook_z", mean_ablate_head_hook(mean_z, 0))])
    assert effects[1, 0].item() == pytest.approx((loss - model(TOKENS, return_type="loss")).item(), abs=1e-5)


def test_mean_ablate_hook_checks():
    with pytest.raises(ValueError, match="head must be <= 1, got 3"):
        mean_ablate_head_hook(torch.zeros(2, 4), 3)
    with pytest.raises(ValueError, match="shape"):
        mean_ablate_head_hook(torch.zeros(2), 0)


def test_attention_to_offset():
    n = 5
    prev = torch.zeros(n, n)
    prev[0, 0] = 1
    prev[torch.arange(1, n), torch.arange(n - 1)] = 1  # every query looks one back
    pattern = torch.stack([prev, torch.eye(n)])[None]  # [1, 2 heads, n, n]
    assert attention_to_offset(pattern, 1).tolist() == [1.0, 0.0]
    assert attention_to_offset(pattern, 0).tolist() == [pytest.approx(0.2), 1.0]
    with pytest.raises(ValueError):
        attention_to_offset(pattern[0], 1)
    with pytest.raises(ValueError):
        attention_to_offset(pattern, 5)


def test_bad_tokens(model):
    with pytest.raises(ValueError):
        logit_lens(model, TOKENS[:, :1])
    with pytest.raises(TypeError, match="tokens must be an integer tensor"):
        head_ablation_losses(model, TOKENS.float())
