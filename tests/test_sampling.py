"""Temperature, top-k, top-p and generation (with and without the KV cache)."""


import pytest
import torch

from lib.core.model import GPT, GPTConfig
from lib.core.sampling import apply_temperature, generate, sample_next_token, top_k_filter, top_p_filter


def test_temperature():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.allclose(apply_temperature(logits, 0.5), logits * 2)
    for bad in (0, -1):
        with pytest.raises(ValueError):
            apply_temperature(logits, bad)


def test_top_k_keeps_k_largest():
    logits = torch.tensor([[0.1, 3.0, 2.0, -1.0], [5.0, 4.0, 3.0, 2.0]])
    out = top_k_filter(logits, 2)
    assert torch.isinf(out).tolist() == [[True, False, False, True], [False, False, True, True]]
    assert torch.equal(top_k_filter(logits, 10), logits)
    with pytest.raises(ValueError):
        top_k_filter(logits, 0)


def test_top_p_keeps_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    kept = ~torch.isinf(top_p_filter(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7 <= 0.8
    assert (~torch.isinf(top_p_filter(logits, 0.5))).tolist() == [[True, False, False, False]]
    assert (~torch.isinf(top_p_filter(logits, 1.0))).all()
    # The order of the vocabulary does not matter.
    perm = torch.tensor([2, 0, 3, 1])
    assert (~torch.isinf(top_p_filter(logits[:, perm], 0.7))).tolist() == [[False, True, False, True]]
    with pytest.raises(ValueError):
        top_p_filter(logits, 0.0)


def test_sample_next_token_greedy_and_statistics():
    logits = torch.tensor([[0.0, 1.0, 0.5]])
    assert sample_next_token(logits, temperature=0).item() == 1
    gen = torch.Generator().manual_seed(0)
    draws = sample_next_token(logits.expand(20000, 3), temperature=1.0, generator=gen)
    freq = torch.bincount(draws, minlength=3).float() / 20000
    assert torch.allclose(freq, logits.softmax(-1)[0], atol=0.02)
    top1 = sample_next_token(logits.expand(100, 3), top_k=1, generator=gen)
    assert (top1 == 1).all()
    with pytest.raises(ValueError, match=r"\[batch, d_vocab\]"):
        sample_next_token(torch.zeros(3))
    with pytest.raises(TypeError):
        sample_next_token(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError):
        sample_next_token(logits, temperature=-1)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(d_vocab=20, n_ctx=12, d_model=16, n_layers=2, n_heads=2, d_head=8, d_mlp=32)).eval()


def test_generate_cache_equals_no_cache(model):
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    a = generate(model, prompt, 15, temperature=1.0, seed=0, use_kv_cache=True)
    b = generate(model, prompt, 15, temperature=1.0, seed=0, use_kv_cache=False)
    assert a.shape == (2, 18)  # longer than n_ctx: the window slides
    assert torch.equal(a, b)
    assert torch.equal(a[:, :3], prompt)


def test_generate_greedy_is_argmax(model):
    prompt = torch.tensor([[1, 2, 3]])
    out = generate(model, prompt, 1, temperature=0)
    assert out[0, -1] == model(prompt)[0, -1].argmax()


def test_generate_stop_token(model):
    prompt = torch.tensor([[1, 2, 3]])
    greedy_next = int(model(prompt)[0, -1].argmax())
    out = generate(model, prompt, 10, temperature=0, stop_token=greedy_next)
    assert out.shape == (1, 4)


def test_generate_bad_inputs(model):
    with pytest.raises(ValueError):
        generate(model, torch.tensor([1, 2]), 3)
    with pytest.raises(ValueError):
        generate(model, torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError):
        generate(model, torch.tensor([[1]]), -1)
