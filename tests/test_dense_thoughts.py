"""lib.methods.dense_thoughts: notebook 06's episodes with thoughts that carry vectors."""

import pytest
import torch

from lib.methods.dense import sequential_forward
from lib.methods.dense_thoughts import DenseView, precompute_vectors, round_table, train_dense_thinker, unrolled_from
from lib.core.model import GPT, GPTConfig
from lib.methods.thoughts import fast_forward, plain_batch, run_episode

D, PAD = 9, 10


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(d_vocab=11, n_ctx=16, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))


TOKENS = torch.tensor([[1, 2, D, 3, D, 4, 5], [1, D, D, 2, 3, 4, 5]])


def test_dense_view_is_exact_whole_and_step_by_step(model):
    view = DenseView(model, D, 2)
    exact = sequential_forward(model, TOKENS, D)
    assert torch.allclose(view(TOKENS), exact, atol=1e-5)
    assert torch.allclose(view(TOKENS, kv_cache=view.new_kv_cache()), exact, atol=1e-5)
    cache = view.new_kv_cache()  # one position at a time, as fast_forward calls it
    steps = torch.cat([view(TOKENS[:, t : t + 1], kv_cache=cache) for t in range(TOKENS.shape[1])], dim=1)
    assert torch.allclose(steps, exact, atol=1e-5)
    assert view.cfg is model.cfg and view.n_params() == model.n_params()
    assert list(view.parameters())[0] is list(model.parameters())[0]


def test_dense_view_refuses_an_inexact_depth_and_bad_arguments(model):
    with pytest.raises(ValueError):
        DenseView(model, D, 1)(TOKENS)  # a row holds 2 dense tokens
    with pytest.raises(TypeError):
        DenseView("model", D, 1)
    with pytest.raises(ValueError):
        DenseView(model, 99, 1)
    with pytest.raises(ValueError):
        DenseView(model, D, -1)


def test_episodes_and_fast_forward_run_through_the_view(model):
    tokens, lengths = plain_batch(torch.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]]))
    view = DenseView(model, D, 2)
    ep = run_episode(view, tokens, lengths, D, PAD, n_rounds=2, keep_fraction=0.5, min_score=None)
    assert len(ep.history) == 2 and all(h["n_kept"] == 1 for h in ep.history)
    ff = fast_forward(view, tokens, lengths, D, PAD, max_rank=model.cfg.d_vocab, budget=2)
    assert (ff.n_thoughts == 2).all()  # every position ranks <|dense|> within d_vocab: the budget binds


def test_precompute_vectors_and_unrolled_from_reproduce_the_exact_forward(model):
    init = precompute_vectors(model, TOKENS, D)
    assert init.shape == (2, 7, 16)
    assert (init[TOKENS != D] == 0).all() and (init[TOKENS == D].norm(dim=-1) > 0).all()
    exact = sequential_forward(model, TOKENS, D)
    # the exact vectors are a fixed point: zero or more refreshing passes give the exact logits
    for depth in (0, 1, 2):
        assert torch.allclose(unrolled_from(model, TOKENS, D, depth, init), exact, atol=1e-5)
    # from a zero start one refresh is not enough for a chain of two dense tokens
    assert not torch.allclose(unrolled_from(model, TOKENS, D, 1, torch.zeros_like(init)), exact, atol=1e-4)
    with pytest.raises(ValueError):
        unrolled_from(model, TOKENS, D, 1, init[:, :3])
    with pytest.raises(ValueError):
        unrolled_from(model, TOKENS, D, -1, init)
    with pytest.raises(TypeError):
        precompute_vectors(model, TOKENS.float(), D)


def test_round_table_sums_the_chunks():
    h = [[{"round": 1, "n_inserted": 4, "n_kept": 2, "mean_score": 1.0}],
         [{"round": 1, "n_inserted": 2, "n_kept": 1, "mean_score": -2.0}]]
    assert round_table(h) == [{"round": 1, "inserted": 6, "kept": 3, "dropped": 3, "mean_gain": 0.0}]
    with pytest.raises(TypeError):
        round_table({"round": 1})


def test_train_dense_thinker_runs_and_reports_rounds():
    torch.manual_seed(0)
    m = GPT(GPTConfig(d_vocab=11, n_ctx=12, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))
    tokens, lengths = plain_batch(torch.randint(0, 8, (16, 8), generator=torch.Generator().manual_seed(0)))
    out = train_dense_thinker(m, tokens, lengths, torch.ones_like(tokens, dtype=torch.bool), 4, 4, D, PAD, n_rounds=2)
    assert [r["round"] for r in out["rounds"]] == [1, 2]
    assert all(r["inserted"] == r["kept"] + r["dropped"] for r in out["rounds"])
    assert out["thoughts_per_row"] >= 0
    with pytest.raises(ValueError):
        train_dense_thinker(m, tokens, lengths, torch.ones_like(tokens, dtype=torch.bool), 8, 4, D, PAD)  # too few rows
    with pytest.raises(ValueError):
        train_dense_thinker(m, tokens, lengths, torch.ones(3, 3, dtype=torch.bool), 4, 4, D, PAD)
    with pytest.raises(TypeError):
        train_dense_thinker(m, tokens, lengths, torch.ones_like(tokens, dtype=torch.bool), 4, 4, D, PAD, depth=1.0)
