"""Reference lines (n-gram models, plateaus, chance) and the looped control model."""

import math

import pytest
import torch

from lib.methods.looped import LoopedGPT
from lib.core.model import GPT, GPTConfig
from lib.tasks.references import ngram_nats_per_token, path_star_plateau, pointer_chance, text_references


def test_ngram_models_by_hand():
    train = torch.tensor([0, 1, 0, 1, 0, 1])
    windows = torch.tensor([[0, 1, 0]])
    # Unigram, add-1 over 3 ids: counts 3+1, 3+1, 0+1 of 9 -> p = 4/9 for each scored token.
    assert ngram_nats_per_token(train, windows, 3, 1, 1.0) == pytest.approx(-math.log(4 / 9))
    # Bigram: after 0 always 1 (3 times), after 1 always 0 (twice); add-1 over 3 ids.
    expected = -(math.log(4 / 6) + math.log(3 / 5)) / 2
    assert ngram_nats_per_token(train, windows, 3, 2, 1.0) == pytest.approx(expected)
    # Less smoothing, closer to the (perfect) counts.
    assert ngram_nats_per_token(train, windows, 3, 2, 1e-3) < 0.01


def test_text_references_choose_k_on_validation():
    train = torch.tensor([0, 1, 2] * 50)
    val = torch.tensor([[0, 1, 2, 0]])
    refs = text_references(train, val, val, 4, ks=(1.0, 0.001))
    assert refs["bigram_k"] == 0.001 and refs["bigram_nats_per_token"] < refs["unigram_nats_per_token"]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(train=torch.tensor([0.5, 1.0])), TypeError, "train must be an integer tensor"),
        (dict(windows=torch.tensor([0, 1])), ValueError, r"windows must have shape \[batch, pos\]"),
        (dict(d_vocab=1), ValueError, "d_vocab"),
        (dict(d_vocab=True), TypeError, "d_vocab"),
        (dict(order=3), ValueError, "order"),
        (dict(k=0.0), ValueError, "k must"),
        (dict(k=float("nan")), ValueError, "k must"),
        (dict(windows=torch.tensor([[0, 7]])), ValueError, r"windows must hold ids in \[0, 3\)"),
        (dict(windows=torch.tensor([[0, -1]])), ValueError, r"windows must hold ids"),
        (dict(windows=torch.tensor([[0]])), ValueError, "at least 2 positions"),
    ],
)
def test_ngram_bad_inputs(kwargs, error, match):
    args = dict(train=torch.tensor([0, 1, 2]), windows=torch.tensor([[0, 1]]), d_vocab=3, order=2, k=1.0)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ngram_nats_per_token(**args)
    with pytest.raises(ValueError, match="ks"):
        text_references(torch.tensor([0, 1]), torch.tensor([[0, 1]]), torch.tensor([[0, 1]]), 3, ks=())


def test_plateau_and_chance():
    assert path_star_plateau(2) == 0.5 and pointer_chance(6) == pytest.approx(1 / 6)
    for bad in (1, 2.0, True):
        error = ValueError if bad == 1 and not isinstance(bad, bool) else TypeError
        with pytest.raises(error, match="degree"):
            path_star_plateau(bad)
        with pytest.raises(error, match="n_nodes"):
            pointer_chance(bad)


def test_looped_model_repeats_its_blocks_with_tied_weights():
    cfg = GPTConfig(d_vocab=11, n_ctx=8, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32)
    torch.manual_seed(0)
    looped = LoopedGPT(cfg, 3)
    torch.manual_seed(0)
    plain = GPT(cfg)
    assert looped.n_params() == plain.n_params()
    tokens = torch.randint(0, 11, (2, 8))
    # Three loops of one block = the same block applied three times by hand.
    resid = looped.embed(tokens) + looped.pos_embed(2, 8)
    for _ in range(3):
        resid = looped.blocks[0](resid)
    assert torch.allclose(looped(tokens, return_type="resid"), resid, atol=1e-6)
    one = LoopedGPT(cfg, 1)
    one.load_state_dict(plain.state_dict())
    assert torch.allclose(one(tokens), plain(tokens), atol=1e-6)
    assert looped(tokens, return_type="loss").requires_grad


def test_looped_bad_inputs():
    cfg = GPTConfig(d_vocab=11, n_ctx=8, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32)
    with pytest.raises(ValueError, match="n_loops"):
        LoopedGPT(cfg, 0)
    with pytest.raises(TypeError, match="n_loops"):
        LoopedGPT(cfg, 2.0)
    with pytest.raises(TypeError, match="n_loops"):
        LoopedGPT(cfg, True)
    model = LoopedGPT(cfg, 2)
    with pytest.raises(ValueError, match="KV cache"):
        model.new_kv_cache()
    with pytest.raises(ValueError, match="kv_cache"):
        model(torch.zeros(1, 2, dtype=torch.long), kv_cache=GPT(cfg).new_kv_cache())
