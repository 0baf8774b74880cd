"""The decoder: shapes, hooks, the causal mask, KV cache, input embeddings, and agreement with
TransformerLens' own native model carrying the same weights."""

import pytest
import torch

from lib.core.model import GPT, GPTConfig, KVCache, bridge_config, per_token_log_probs, reference_bridge, to_bridge_state_dict

CFG = dict(d_vocab=50, n_ctx=16, d_model=32, n_layers=2, n_heads=4, d_head=8, d_mlp=64)


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = GPT(GPTConfig(**CFG))
    with torch.no_grad():  # larger weights than the init, so disagreements are visible
        for p in m.parameters():
            p.normal_(0, 0.3)
    return m.eval()


def tokens(batch=3, pos=12, seed=1):
    return torch.randint(0, CFG["d_vocab"], (batch, pos), generator=torch.Generator().manual_seed(seed))


def test_logits_shape_and_loss(model):
    t = tokens()
    logits, loss = model(t, return_type="both")
    assert logits.shape == (3, 12, 50)
    manual = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 50), t[:, 1:].reshape(-1))
    assert torch.allclose(loss, manual)
    assert model(t, return_type="final_resid").shape == (3, 12, 32)
    resid = model(t, return_type="resid")
    assert torch.allclose(model.unembed(model.ln_final(resid)), logits, atol=1e-5)
    assert model(t, return_type=None) is None


@pytest.mark.parametrize("act_fn", ["gelu", "gelu_new"])
def test_agrees_with_transformer_lens_native(act_fn):
    torch.manual_seed(0)
    m = GPT(GPTConfig(**CFG, act_fn=act_fn))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    bridge = reference_bridge(m)
    t = tokens()
    assert (m(t) - bridge(t)).abs().max().item() <= 1e-4
    _, ours = m.run_with_cache(t)
    _, theirs = bridge.run_with_cache(t)
    for name in ("blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post", "blocks.1.mlp.hook_post"):
        assert torch.allclose(ours[name], theirs[name], atol=1e-4), name


def test_bridge_state_dict_covers_every_weight(model):
    import transformer_lens.model_bridge.sources.native  # noqa: F401
    from transformer_lens import TransformerBridge

    bridge = TransformerBridge.boot_native(bridge_config(model.cfg))
    assert set(to_bridge_state_dict(model)) == set(bridge.state_dict())
    with pytest.raises(TypeError):
        to_bridge_state_dict(torch.nn.Linear(2, 2))


def test_run_with_cache_has_transformer_lens_names(model):
    _, cache = model.run_with_cache(tokens())
    for name in [
        "hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.ln1.hook_scale",
        "blocks.0.ln1.hook_normalized", "blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v",
        "blocks.0.attn.hook_attn_scores", "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z",
        "blocks.0.hook_attn_out", "blocks.0.hook_resid_mid", "blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post",
        "blocks.0.hook_mlp_out", "blocks.1.hook_resid_post", "ln_final.hook_normalized",
    ]:
        assert name in cache, name
    assert cache["blocks.0.attn.hook_q"].shape == (3, 12, 4, 8)
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert pattern.shape == (3, 4, 12, 12)
    assert torch.allclose(pattern.sum(-1), torch.ones(3, 4, 12))
    # Causal: nothing attends to the future, exactly.
    assert (pattern.triu(diagonal=1) == 0).all()


def test_sdpa_and_explicit_attention_agree(model):
    t = tokens()
    fast = model(t)
    model.cfg.use_sdpa = False
    try:
        slow = model(t)
    finally:
        model.cfg.use_sdpa = True
    assert torch.allclose(fast, slow, atol=1e-5)


def test_run_with_hooks_ablation_changes_output(model):
    t = tokens()
    clean = model(t)

    def zero_head(z, hook):
        z[:, :, 0] = 0.0
        return z

    ablated = model.run_with_hooks(t, fwd_hooks=[("blocks.0.attn.hook_z", zero_head)])
    assert not torch.allclose(clean, ablated)
    assert torch.allclose(model(t), clean)  # hooks are removed afterwards


def test_future_tokens_do_not_change_past_logits(model):
    t = tokens()
    t2 = t.clone()
    t2[:, 8:] = (t2[:, 8:] + 1) % 50
    assert torch.allclose(model(t)[:, :8], model(t2)[:, :8], atol=1e-6)
    assert not torch.allclose(model(t)[:, 8:], model(t2)[:, 8:])


def test_input_embeds_equal_token_path(model):
    t = tokens()
    emb = model.embed_tokens(t)
    assert torch.allclose(model(input_embeds=emb), model(t), atol=1e-6)
    emb2 = emb.clone()
    emb2[:, 5] += 1.0
    out = model(input_embeds=emb2)
    assert torch.allclose(out[:, :5], model(t)[:, :5], atol=1e-6)
    assert not torch.allclose(out[:, 5:], model(t)[:, 5:])


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_kv_cache_matches_full_forward(model, use_sdpa):
    model.cfg.use_sdpa = use_sdpa
    try:
        t = tokens()
        full = model(t)
        cache = model.new_kv_cache()
        pieces = [model(t[:, :5], kv_cache=cache), model(t[:, 5:6], kv_cache=cache), model(t[:, 6:], kv_cache=cache)]
        assert cache.length == 12
        assert torch.allclose(torch.cat(pieces, 1), full, atol=1e-5)
    finally:
        model.cfg.use_sdpa = True


def test_kv_cache_select_rows(model):
    t = tokens()
    cache = model.new_kv_cache()
    model(t[:, :6], kv_cache=cache)
    sub = cache.select(torch.tensor([2, 0]))
    out = model(t[[2, 0], 6:], kv_cache=sub)
    assert torch.allclose(out, model(t)[[2, 0], 6:], atol=1e-5)
    with pytest.raises(ValueError):
        KVCache(0)


def test_per_token_log_probs(model):
    t = tokens()
    logits = model(t)
    lp = per_token_log_probs(logits, t)
    assert lp.shape == (3, 11)
    assert torch.allclose(-lp.mean(), model(t, return_type="loss"), atol=1e-6)
    with pytest.raises(ValueError, match="must agree"):
        per_token_log_probs(logits, t[:, :5])


def test_targets_with_ignore_index(model):
    t = tokens()
    targets = torch.full_like(t, -100)
    targets[:, :-1] = t[:, 1:]
    assert torch.allclose(model(t, targets=targets, return_type="loss"), model(t, return_type="loss"))
    with pytest.raises(ValueError, match="targets must have shape"):
        model(t, targets=targets[:, :3], return_type="loss")


def test_gradients_reach_every_parameter(model):
    model(tokens(), return_type="loss").backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_init_statistics():
    m = GPT(GPTConfig(**CFG))
    assert torch.all(m.blocks[0].ln1.w == 1) and torch.all(m.blocks[0].attn.b_Q == 0)
    assert abs(m.embed.W_E.std().item() - 0.02) < 0.005
    assert m.blocks[0].attn.W_O.std().item() < 0.02  # residual projections are scaled down
    assert m.n_params() > m.n_params(include_embeddings=False)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(tokens=torch.zeros(2, 3)), TypeError, "integer"),
        (dict(tokens=torch.zeros(3, dtype=torch.long)), ValueError, r"\[batch, pos\]"),
        (dict(tokens=torch.full((1, 3), 50)), ValueError, "tokens must hold ids in"),
        (dict(tokens=torch.full((1, 3), -1)), ValueError, "tokens must hold ids in"),
        (dict(tokens=torch.zeros(1, 17, dtype=torch.long)), ValueError, "exceeds n_ctx"),
        (dict(tokens=torch.zeros(1, 0, dtype=torch.long)), ValueError, "empty"),
        (dict(), ValueError, "exactly one"),
        (dict(input_embeds=torch.zeros(1, 3, 7)), ValueError, "input_embeds must have shape"),
        (dict(input_embeds=torch.zeros(1, 3, 32, dtype=torch.long)), TypeError, "floating-point"),
        (dict(tokens=[[1, 2]]), TypeError, "torch.Tensor"),
    ],
)
def test_bad_inputs(model, kwargs, error, match):
    with pytest.raises(error, match=match):
        model(**kwargs)


def test_bad_config_and_return_type(model):
    with pytest.raises(ValueError, match="n_layers"):
        GPTConfig(n_layers=0)
    with pytest.raises(ValueError, match="act_fn"):
        GPTConfig(act_fn="swish")
    with pytest.raises(TypeError):
        GPT({"d_model": 3})
    with pytest.raises(ValueError, match="return_type"):
        model(tokens(), return_type="probs")
    with pytest.raises(ValueError, match="at least 2"):
        model(tokens(pos=1), return_type="loss")


def test_double_precision_works(model):
    m = model.double()
    assert m(tokens()).dtype == torch.float64


def test_shared_helpers_init_check_and_count():
    from lib.core.model import check_token_ids, count_params, init_gpt2_weights

    torch.manual_seed(0)
    m = GPT(GPTConfig(**CFG))
    torch.manual_seed(0)
    again = GPT(GPTConfig(**CFG))
    torch.manual_seed(0)
    init_gpt2_weights(again, 0.02, CFG["n_layers"])  # same draws, same order as the constructor's
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), again.parameters()))
    assert (m.blocks[0].ln1.w == 1).all() and (m.blocks[0].attn.b_Q == 0).all()
    assert m.blocks[0].attn.W_O.std() < m.blocks[0].attn.W_Q.std()  # residual writers are scaled down
    with pytest.raises(ValueError):
        init_gpt2_weights(m, 0.0, 2)
    assert check_token_ids(tokens(2, 5), 50) == (2, 5)
    for bad, err in [(tokens().float(), TypeError), (tokens()[0], ValueError), (tokens() + 50, ValueError), ([1, 2], TypeError)]:
        with pytest.raises(err):
            check_token_ids(bad, 50)
    assert count_params(m) == m.n_params() and count_params(m, False) == m.n_params(include_embeddings=False)


def test_check_config_fields_names_the_config_and_field():
    from dataclasses import dataclass

    from lib.methods.encdec import EncDecConfig
    from lib.core.model import check_config_fields

    @dataclass
    class Shape:
        width: int = 4
        act_fn: str = "relu"

    check_config_fields(Shape(), ("width",))  # a valid config passes silently
    for bad in (0, -1):
        with pytest.raises(ValueError, match=r"Shape\.width must be a positive int"):
            check_config_fields(Shape(width=bad), ("width",))
    for bad in (2.0, True, None, "4"):  # the wrong kind of value: a TypeError, as everywhere in lib/
        with pytest.raises(TypeError, match=r"Shape\.width must be a positive int"):
            check_config_fields(Shape(width=bad), ("width",))
    with pytest.raises(ValueError, match=r"Shape\.act_fn"):
        check_config_fields(Shape(act_fn="tanh"), ("width",))
    # Both model configs use it, and say which one is wrong.
    with pytest.raises(ValueError, match=r"GPTConfig\.n_heads"):
        GPTConfig(n_heads=0)
    with pytest.raises(ValueError, match=r"EncDecConfig\.n_dec_layers"):
        EncDecConfig(n_dec_layers=0)
