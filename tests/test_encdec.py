"""The autoregressive encoder-decoder: shapes, hooks, causality (encoder, cross-attention and
decoder), the enc->dec linear map, the KV cache, gradients of the future loss, the loss_fn and
the parameter-matched baselines."""

import pytest
import torch

from lib.methods.encdec import (
    EncDecConfig,
    EncDecOutput,
    EncoderDecoderGPT,
    PlanningLossLog,
    gpt_matched_params,
    gpt_same_layers,
    planning_loss_fn,
)
from lib.methods.future_loss import LearnableNormFutureLoss, future_loss
from lib.core.model import GPT, GPTConfig
from lib.tasks.path_star import PathStarSpec, greedy_answers, path_accuracy, sample_path_star
from lib.core.sampling import generate

CFG = EncDecConfig(d_vocab=23, n_ctx=12, d_model=16, n_enc_layers=2, n_dec_layers=2, n_heads=2, d_head=8, d_mlp=32)


def model(seed=0, **overrides):
    torch.manual_seed(seed)
    m = EncoderDecoderGPT(EncDecConfig(**{**CFG.to_dict(), **overrides}))
    with torch.no_grad():  # larger weights than the init, so every path visibly matters
        for name, p in m.named_parameters():
            if p.ndim >= 2:
                p.normal_(0, 0.3)
    return m.eval()


def tokens(batch=3, pos=10, seed=1):
    return torch.randint(0, CFG.d_vocab, (batch, pos), generator=torch.Generator().manual_seed(seed))


def test_config_validation():
    assert CFG.n_layers == 4 and CFG.block_config().n_layers == 4
    for bad in (dict(n_enc_layers=0), dict(n_dec_layers=-1), dict(act_fn="tanh"), dict(ln_eps=0.0),
                dict(init_std=-1.0), dict(ln_eps=float("nan"))):
        with pytest.raises(ValueError, match=f"EncDecConfig.{next(iter(bad))}"):
            EncDecConfig(**{**CFG.to_dict(), **bad})
    for bad in (dict(d_model=2.0), dict(n_heads=True), dict(use_sdpa=1)):  # wrong kind: TypeError
        with pytest.raises(TypeError, match=f"EncDecConfig.{next(iter(bad))}"):
            EncDecConfig(**{**CFG.to_dict(), **bad})
    # Built from GPTConfig: the same fields and checks, n_layers derived (never set by hand).
    assert isinstance(CFG, GPTConfig) and CFG.block_config() == GPTConfig(**{**CFG.block_config().to_dict()})
    assert list(CFG.to_dict())[:5] == ["d_vocab", "n_ctx", "d_model", "n_enc_layers", "n_dec_layers"]
    assert EncDecConfig(**CFG.to_dict()) == CFG
    with pytest.raises(TypeError, match="EncoderDecoderGPT"):
        GPT(CFG)  # a GPT built from an encoder-decoder's config would silently be a different model
    with pytest.raises(TypeError, match="EncDecConfig"):
        EncoderDecoderGPT(GPTConfig())


def test_shapes_and_return_types():
    m, t = model(), tokens()
    logits = m(t)
    assert logits.shape == (3, 10, CFG.d_vocab)
    out = m(t, return_type="planning")
    assert isinstance(out, EncDecOutput)
    assert out.encoder_out.shape == out.embeds.shape == (3, 10, CFG.d_model)
    assert torch.allclose(out.logits, logits)
    both_logits, loss = m(t, return_type="both")
    assert torch.allclose(both_logits, logits) and loss.ndim == 0
    assert torch.allclose(loss, m(t, return_type="loss"))
    assert m(t, return_type="final_resid").shape == (3, 10, CFG.d_model)
    assert m(t, return_type=None) is None
    # E = token + position embeddings
    assert torch.allclose(out.embeds, m.embed.W_E[t] + m.pos_embed.W_pos[:10])
    # targets with -100 ignored, as GPT's loss
    targets = torch.full_like(t, -100)
    targets[:, -3:] = t[:, -3:]
    expected = torch.nn.functional.cross_entropy(logits[:, -3:].flatten(0, 1), t[:, -3:].flatten())
    assert torch.allclose(m(t, return_type="loss", targets=targets), expected)


def test_hooks_present_and_patterns_causal():
    m, t = model(), tokens()
    _, cache = m.run_with_cache(t)
    for name in ("hook_embed", "hook_pos_embed", "hook_encoder_out", "hook_decoder_in",
                 "encoder.0.attn.hook_pattern", "encoder.1.hook_resid_post", "decoder.0.attn.hook_pattern",
                 "decoder.1.cross_attn.hook_pattern", "decoder.1.hook_resid_post", "decoder.0.hook_cross_attn_out",
                 "decoder.0.hook_resid_mid_cross", "ln_final.hook_normalized"):
        assert name in cache, name
    for name in ("encoder.0.attn.hook_pattern", "decoder.1.attn.hook_pattern", "decoder.0.cross_attn.hook_pattern"):
        p = cache[name]
        assert p.shape == (3, CFG.n_heads, 10, 10)
        assert torch.allclose(p.sum(-1), torch.ones(3, CFG.n_heads, 10))
        # query t sees keys <= t only: exactly zero above the diagonal
        assert (p.triu(diagonal=1) == 0).all()
        assert (p[..., torch.ones(10, 10, dtype=torch.bool).tril()] > 0).all()
    # Hooked (explicit pattern) and unhooked (fused attention) paths agree.
    assert torch.allclose(cache["ln_final.hook_normalized"], m(t, return_type="final_resid"), atol=1e-5)


def test_linear_map_from_encoder_to_decoder():
    m, t = model(), tokens()
    _, cache = m.run_with_cache(t, names_filter=lambda n: n in ("hook_encoder_out", "hook_decoder_in"))
    expected = cache["hook_encoder_out"] @ m.enc_to_dec.W + m.enc_to_dec.b
    assert torch.allclose(cache["hook_decoder_in"], expected, atol=1e-6)
    assert torch.allclose(cache["hook_encoder_out"], m(t, return_type="planning").encoder_out)


@pytest.mark.parametrize("t_change", [0, 4, 9])
def test_future_tokens_never_change_the_past(t_change):
    m, t = model(), tokens()
    t2 = t.clone()
    t2[:, t_change] = (t2[:, t_change] + 1) % CFG.d_vocab
    a, b = m(t, return_type="planning"), m(t2, return_type="planning")
    assert torch.allclose(a.encoder_out[:, :t_change], b.encoder_out[:, :t_change], atol=1e-6)
    assert torch.allclose(a.logits[:, :t_change], b.logits[:, :t_change], atol=1e-5)
    assert not torch.allclose(a.logits[:, t_change:], b.logits[:, t_change:], atol=1e-4)


@pytest.mark.parametrize("hooked", [False, True])
def test_cross_attention_reads_no_future_encoder_output(hooked):
    # Perturb the encoder output only where the decoder reads it through cross-attention (the
    # decoder input stays the clean one), at positions >= 5: logits before 5 must not move.
    m, t = model(), tokens()
    _, cache = m.run_with_cache(t, names_filter="hook_decoder_in")
    clean_in = cache["hook_decoder_in"]

    def perturb_enc(x, hook):
        x = x.clone()
        x[:, 5:] += 3.0 * torch.randn_like(x[:, 5:])
        return x

    hooks = [("hook_encoder_out", perturb_enc), ("hook_decoder_in", lambda x, hook: clean_in)]
    if hooked:  # force the explicit (non-fused) attention path too
        hooks.append(("decoder.0.cross_attn.hook_pattern", lambda p, hook: p))
    clean = m(t)
    perturbed = m.run_with_hooks(t, fwd_hooks=hooks)
    assert torch.allclose(clean[:, :5], perturbed[:, :5], atol=1e-5)
    assert not torch.allclose(clean[:, 5:], perturbed[:, 5:], atol=1e-3)  # cross-attention is used


@pytest.mark.parametrize("use_sdpa", [True, False])  # the fused and the explicit attention path
def test_kv_cache_matches_full_forward_and_generate(use_sdpa):
    m, t = model(use_sdpa=use_sdpa), tokens(batch=2, pos=9)
    full = m(t)
    cache = m.new_kv_cache()
    assert len(cache.layers) == CFG.n_enc_layers + 2 * CFG.n_dec_layers
    steps = [m(t[:, :4], kv_cache=cache)] + [m(t[:, i : i + 1], kv_cache=cache) for i in range(4, 9)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    prompt = t[:, :3]
    with_cache = generate(m, prompt, 6, temperature=0, seed=None)
    without = generate(m, prompt, 6, temperature=0, seed=None, use_kv_cache=False)
    assert torch.equal(with_cache, without) and with_cache.shape == (2, 9)


def test_path_star_decoding_works_with_and_without_cache():
    spec = PathStarSpec(degree=2, path_len=3, n_nodes=8)
    m = model(d_vocab=spec.vocab_size, n_ctx=spec.seq_len)
    b = sample_path_star(spec, 5, torch.Generator().manual_seed(0))
    a1, a2 = greedy_answers(m, b), greedy_answers(m, b, use_kv_cache=False)
    assert a1.shape == (5, spec.path_len) and torch.equal(a1, a2)
    assert 0.0 <= path_accuracy(a1, b) <= 1.0
    with pytest.raises(TypeError, match="PathStarBatch"):
        greedy_answers(m, b.tokens)


def test_future_loss_gradient_reaches_the_encoder_not_the_decoder_nor_the_target():
    m, t = model().train(), tokens()
    out = m(t, return_type="planning")
    future_loss(out.encoder_out, out.embeds, 2).backward()
    for name, p in m.named_parameters():
        if name.startswith(("decoder.", "enc_to_dec.", "ln_final.", "unembed.")):
            assert p.grad is None or p.grad.abs().sum() == 0, name
    assert m.encoder[0].attn.W_Q.grad.abs().sum() > 0
    assert m.ln_enc.w.grad.abs().sum() > 0
    # The target side is detached: with the encoder side frozen, nothing reaches the embeddings.
    m.zero_grad(set_to_none=True)
    out = m(t, return_type="planning")
    loss = future_loss(out.encoder_out.detach() + torch.zeros(1, requires_grad=True), out.embeds, 2)
    loss.backward()
    assert m.embed.W_E.grad is None and m.pos_embed.W_pos.grad is None


def test_planning_loss_fn_combines_and_logs():
    m, t = model(), tokens()
    log = PlanningLossLog()
    ce = m(t, return_type="loss")
    out = m(t, return_type="planning")
    fut = future_loss(out.encoder_out, out.embeds, 3, "cosine")
    total = planning_loss_fn(0.5, 3, "cosine", log=log)(m, t)
    assert torch.allclose(total, ce + 0.5 * fut)
    assert log.ce == pytest.approx([ce.item()]) and log.future == pytest.approx([fut.item()])
    # lam = 0: pure cross-entropy, but the future loss is still logged (without a graph)
    zero = planning_loss_fn(0, 3, "cosine", log=log)(m, t)
    assert torch.allclose(zero, ce) and len(log.future) == 2 and log.future[1] == pytest.approx(fut.item())
    # a batch with .tokens / .targets (path-star)
    spec = PathStarSpec(degree=2, path_len=3, n_nodes=8)
    b = sample_path_star(spec, 4, torch.Generator().manual_seed(0))
    mp = model(d_vocab=spec.vocab_size, n_ctx=spec.seq_len)
    expected = mp(b.tokens, return_type="loss", targets=b.targets)
    assert torch.allclose(planning_loss_fn(0, 2)(mp, b), expected)


def test_planning_loss_fn_trains_the_future_loss_down():
    torch.manual_seed(0)
    m = EncoderDecoderGPT(CFG).train()
    t = tokens(batch=4, pos=12)
    log = PlanningLossLog()
    loss_fn = planning_loss_fn(1.0, 2, "mse", log=log)
    opt = torch.optim.Adam(m.parameters(), lr=3e-2)
    for _ in range(10):
        opt.zero_grad()
        loss_fn(m, t).backward()
        opt.step()
    assert log.future[-1] < 0.5 * log.future[0]


def test_learnable_norms_collapse_and_fixed_norms_do_not():
    # Only the two learnable LayerNorms train; the inputs are fixed random tensors with nothing
    # to learn. The learnable version still drives its loss toward 0 by shrinking both gains.
    torch.manual_seed(0)
    enc, E = torch.randn(4, 10, 16), torch.randn(4, 10, 16)
    norms = LearnableNormFutureLoss(16)
    start = norms(enc, E, 2).item()
    opt = torch.optim.Adam(norms.parameters(), lr=3e-2)
    for _ in range(150):
        opt.zero_grad()
        norms(enc, E, 2).backward()
        opt.step()
    gain_enc, gain_target = norms.gains()
    assert norms(enc, E, 2).item() < 0.05 * start
    assert gain_enc < 0.3 and gain_target < 0.3
    assert future_loss(enc, E, 2).item() == pytest.approx(start, rel=1e-4)  # fixed norms: no way down
    with pytest.raises(ValueError, match="d_model"):
        norms(torch.randn(1, 5, 8), torch.randn(1, 5, 8), 2)
    with pytest.raises(ValueError, match="same shape"):
        norms(torch.randn(1, 5, 16), torch.randn(1, 6, 16), 2)
    with pytest.raises(ValueError):
        LearnableNormFutureLoss(0)


def test_matched_baselines():
    enc_dec = EncoderDecoderGPT(CFG).n_params()
    same = gpt_same_layers(CFG)
    assert same.n_layers == 4 and same.d_model == CFG.d_model and same.d_mlp == CFG.d_mlp
    assert GPT(same).n_params() < enc_dec
    matched = gpt_matched_params(CFG)
    assert GPT(matched).n_params() >= enc_dec
    smaller = GPTConfig(**{**matched.to_dict(), "d_mlp": matched.d_mlp - 1})
    assert GPT(smaller).n_params() < enc_dec  # the smallest MLP that reaches the count
    with pytest.raises(TypeError):
        gpt_matched_params(GPTConfig())


def test_bad_inputs():
    m = model()
    with pytest.raises(TypeError, match="integer"):
        m(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\[batch, pos\]"):
        m(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="n_ctx"):
        m(torch.zeros(1, CFG.n_ctx + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="must hold ids in"):
        m(torch.full((1, 3), CFG.d_vocab))
    with pytest.raises(ValueError, match="empty"):
        m(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="return_type"):
        m(tokens(), return_type="probs")
    with pytest.raises(ValueError, match="targets"):
        m(tokens(), return_type="loss", targets=torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="align"):
        m.decoder[0].cross_attn(torch.zeros(1, 3, 16), torch.zeros(1, 4, 16))
    for bad in (dict(lam=-1.0), dict(lam=float("nan")), dict(n=0), dict(kind="l2")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            planning_loss_fn(**{"lam": 1.0, "n": 2, "kind": "mse", **bad})
    for bad in (dict(lam=True), dict(n=1.5), dict(scored_only=1)):  # the wrong kind of value
        with pytest.raises(TypeError, match=next(iter(bad))):
            planning_loss_fn(**{"lam": 1.0, "n": 2, "kind": "mse", **bad})
    with pytest.raises(TypeError):
        planning_loss_fn(1.0, 2, log=[])
    loss_fn = planning_loss_fn(1.0, 10)
    with pytest.raises(ValueError, match="horizon"):  # n larger than the sequence
        loss_fn(m, tokens(pos=8))
    with pytest.raises(TypeError, match="batch"):
        loss_fn(m, [1, 2, 3])
    gpt = GPT(GPTConfig(d_vocab=23, n_ctx=12, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))
    with pytest.raises(TypeError, match="EncoderDecoderGPT"):
        planning_loss_fn(1.0, 2)(gpt, tokens())


def test_build_variant_and_ce_loss_fn():
    from lib.methods.encdec import VARIANTS, build_variant, ce_loss_fn

    t = tokens()
    counts = {}
    for name in VARIANTS:
        v = build_variant(name, CFG, lam=0.5, n=2, seed=3)
        counts[name] = v.model.n_params()
        loss = v.loss_fn(v.model, t)
        assert loss.ndim == 0 and torch.isfinite(loss)
        assert (v.log is None) == name.startswith("gpt")
        if v.log is not None:
            assert len(v.log.ce) == 1
            expected = ce_loss_fn(v.model, t)
            assert torch.allclose(torch.tensor(v.log.ce[0]), expected.detach())
            if name == "encdec":
                assert torch.allclose(loss, expected)
            else:
                assert loss.item() > expected.item()
    assert counts["gpt"] < counts["encdec"] <= counts["gpt_matched"]
    assert counts["encdec"] == counts["encdec+mse"] == counts["encdec+cosine"]
    # same seed, same weights
    a, b = build_variant("encdec", CFG, seed=3).model, build_variant("encdec+mse", CFG, seed=3).model
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="name must be one of"):
        build_variant("transformer", CFG)
    with pytest.raises(TypeError):
        build_variant("gpt", GPTConfig())
    with pytest.raises(TypeError, match="batch"):
        ce_loss_fn(a, "text")
