"""Dense tokens: the mask, the hook, unrolling (exact at enough depth, gradients through every
pass), sequential generation, and the single-vector experiment."""

import pytest
import torch
from torch.func import functional_call

from lib.methods.dense import (
    add_dense_vectors,
    continuation_loss,
    dense_embed_hook,
    dense_mask,
    dense_vector_norms,
    generate_with_dense,
    hidden_and_logits,
    optimize_dense_vector,
    read_dense_vector,
    remove_positions,
    deletion_scores,
    target_log_likelihood,
    targets_accuracy,
    sequential_forward,
    shift_to_next_position,
    token_sweep_losses,
    unrolled_forward,
    unrolled_loss,
)
from lib.core.model import GPT, GPTConfig

DENSE = 7
CFG = dict(d_vocab=10, n_ctx=12, d_model=16, n_layers=2, n_heads=2, d_head=8, d_mlp=32)


def make_model(dtype=torch.float32, seed=0, scale=0.3, **overrides):
    torch.manual_seed(seed)
    m = GPT(GPTConfig(**{**CFG, **overrides}))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, scale)
    return m.to(dtype).eval()


def tokens_with_dense(batch=3, pos=10, seed=1, dense_at=(3, 4, 7)):
    t = torch.randint(0, DENSE, (batch, pos), generator=torch.Generator().manual_seed(seed))
    t[:, list(dense_at)] = DENSE
    return t


def test_mask_shift_and_add():
    t = tokens_with_dense()
    mask = dense_mask(t, DENSE)
    assert mask.sum() == 9 and mask[:, 3].all()
    h = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    s = shift_to_next_position(h)
    assert (s[:, 0] == 0).all() and torch.equal(s[:, 1:], h[:, :-1])
    emb = torch.zeros(2, 4, 3)
    m = torch.tensor([[False, True, False, False], [False, False, False, True]])
    out = add_dense_vectors(emb, h, m)
    assert torch.equal(out[0, 1], h[0, 1]) and torch.equal(out[1, 3], h[1, 3])
    assert out[~m].abs().sum() == 0
    with pytest.raises(ValueError):
        add_dense_vectors(emb, h[:, :3], m)
    with pytest.raises(ValueError):
        add_dense_vectors(emb, h, m.long())
    with pytest.raises(ValueError):
        dense_mask(t.float(), DENSE)
    with pytest.raises(ValueError):
        shift_to_next_position(h[0])


def test_embed_hook_equals_input_embeds_path():
    model = make_model()
    t = tokens_with_dense()
    vectors = torch.randn(3, 10, 16, generator=torch.Generator().manual_seed(2))
    mask = dense_mask(t, DENSE)
    hooked = model.run_with_hooks(t, fwd_hooks=[("hook_embed", dense_embed_hook(vectors, mask))])
    direct = model(input_embeds=add_dense_vectors(model.embed(t), vectors, mask))
    assert torch.allclose(hooked, direct, atol=1e-6)
    assert not torch.allclose(hooked, model(t), atol=1e-3)


def test_hidden_and_logits_sources():
    model = make_model()
    t = tokens_with_dense()
    emb = model.embed(t)
    normed, logits = hidden_and_logits(model, emb, "normed")
    raw, logits2 = hidden_and_logits(model, emb, "raw")
    assert torch.allclose(logits, model(t), atol=1e-5) and torch.allclose(logits, logits2)
    assert torch.allclose(model.ln_final(raw), normed, atol=1e-5)
    assert torch.allclose(read_dense_vector(model, normed), logits, atol=1e-5)
    assert torch.allclose(read_dense_vector(model, raw, "raw"), logits, atol=1e-5)
    with pytest.raises(ValueError):
        hidden_and_logits(model, emb, "soft")
    with pytest.raises(ValueError):
        read_dense_vector(model, normed[..., :4])


def test_depth_zero_is_a_plain_forward():
    model = make_model()
    t = tokens_with_dense()
    out = unrolled_forward(model, t, DENSE, 0)
    assert torch.allclose(out.logits, model(t), atol=1e-6) and out.vectors == []


@pytest.mark.parametrize("source", ["normed", "raw"])
def test_unrolling_is_exact_once_depth_reaches_the_number_of_dense_tokens(source):
    model = make_model()
    t = tokens_with_dense(dense_at=(3, 4, 7))  # three dense tokens per row
    exact = sequential_forward(model, t, DENSE, source)
    for depth in (1, 2):
        approx = unrolled_forward(model, t, DENSE, depth, source).logits
        assert not torch.allclose(approx, exact, atol=1e-4), f"depth {depth} < 3 dense tokens should differ"
        # ...but positions before the (depth + 1)-th dense token are already exact.
        assert torch.allclose(approx[:, :7], exact[:, :7], atol=1e-5) if depth == 2 else True
    for depth in (3, 5):
        assert torch.allclose(unrolled_forward(model, t, DENSE, depth, source).logits, exact, atol=1e-5)
    # Without dense tokens every depth is a plain forward.
    plain = t.clone()
    plain[plain == DENSE] = 0
    assert torch.allclose(sequential_forward(model, plain, DENSE), model(plain), atol=1e-5)


def test_vectors_are_the_previous_positions_hidden_states():
    model = make_model()
    t = tokens_with_dense(dense_at=(3,))
    out = unrolled_forward(model, t, DENSE, 1)
    hidden, _ = hidden_and_logits(model, model.embed(t))
    assert torch.allclose(out.vectors[0][:, 3], hidden[:, 2], atol=1e-6)
    norms = dense_vector_norms(out.vectors[0], out.mask)
    assert norms.shape == (3,) and torch.allclose(norms, hidden[:, 2].norm(dim=-1), atol=1e-5)
    with pytest.raises(ValueError):
        dense_vector_norms(out.vectors[0], out.mask[:, :4])


class UnrolledLoss(torch.nn.Module):
    """Wraps the unrolled loss in a module, so functional_call can make it a function of one weight."""

    def __init__(self, model, truncate):
        super().__init__()
        self.model, self.truncate = model, truncate

    def forward(self, tokens, targets):
        return unrolled_loss(self.model, tokens, targets, DENSE, depth=1, truncate_backprop=self.truncate)


def test_unrolled_gradient_reaches_parameters_through_pass_one():
    """gradcheck: the analytic gradient of the depth-1 unrolled loss (which flows through pass 1
    into the vector and back into the parameters) matches finite differences, in double precision.
    And it differs from the gradient with pass 1 cut off, so pass 1 really contributes."""
    model = make_model(torch.float64, n_layers=1, d_model=8, d_head=4, d_mlp=16, scale=0.5)
    t = tokens_with_dense(batch=2, pos=6, dense_at=(2, 3))
    targets = torch.roll(t, -1, dims=1)
    targets[:, -1] = -100
    name = "model.blocks.0.mlp.W_in"
    weight = model.blocks[0].mlp.W_in.detach().clone().requires_grad_(True)

    def loss(w, truncate=False):
        return functional_call(UnrolledLoss(model, truncate), {name: w}, (t, targets))

    assert torch.autograd.gradcheck(loss, (weight,), eps=1e-6, atol=1e-5)
    full = torch.autograd.grad(loss(weight), weight)[0]
    cut = torch.autograd.grad(loss(weight, truncate=True), weight)[0]
    assert (full - cut).abs().max() > 1e-4, "the gradient through pass 1 should be non-zero"


def test_generation_passes_vectors_only_at_dense_positions():
    model = make_model()
    prompt = tokens_with_dense(batch=2, pos=5, dense_at=(2,))
    out, entered = generate_with_dense(model, prompt, 4, DENSE)
    assert out.shape == (2, 9) and entered.shape == (2, 9, 16)
    assert torch.equal(out[:, :5], prompt)
    is_dense = out == DENSE
    assert (entered[~is_dense].abs().sum(-1) == 0).all()
    assert (entered[is_dense].norm(dim=-1) > 0).all()
    # Greedy generation agrees with the exact computation over the generated sequence.
    assert torch.equal(sequential_forward(model, out, DENSE)[:, 4:-1].argmax(-1), out[:, 5:])


def test_generation_passes_vectors_when_dense_is_sampled():
    model = make_model()
    with torch.no_grad():
        model.unembed.b_U[DENSE] = 100.0  # the model now always picks <|dense|>
    prompt = torch.tensor([[1, 2, 3]])
    out, entered = generate_with_dense(model, prompt, 3, DENSE, temperature=1.0, seed=0)
    assert out[0, 3:].tolist() == [DENSE] * 3
    hidden, _ = hidden_and_logits(model, model.embed(prompt))
    assert torch.allclose(entered[0, 3], hidden[0, 2], atol=1e-5)  # the vector from the last prompt position
    with pytest.raises(ValueError):
        generate_with_dense(model, prompt, 20, DENSE)  # past n_ctx
    with pytest.raises(ValueError):
        generate_with_dense(model, prompt[:, :0], 1, DENSE)
    with pytest.raises(ValueError):
        generate_with_dense(model, prompt, 1, 99)


def test_bad_inputs():
    model = make_model()
    t = tokens_with_dense()
    with pytest.raises(ValueError):
        unrolled_forward(model, t, DENSE, -1)
    with pytest.raises(ValueError):
        unrolled_forward(model, t, DENSE, 1, source="soft")
    with pytest.raises(ValueError):
        unrolled_forward(model, t.float(), DENSE, 1)
    with pytest.raises(ValueError):
        unrolled_forward(model, t + 20, DENSE, 1)
    with pytest.raises(ValueError):
        unrolled_forward(model, t, -1, 1)


def test_continuation_loss_by_hand():
    logits = torch.zeros(1, 4, 3)
    logits[0, 2, 1] = 2.0
    tokens = torch.tensor([[0, 0, 0, 1]])
    # Position 2 predicts token 3 (= 1): -log softmax([0, 2, 0])[1].
    expected = -torch.log(torch.exp(torch.tensor(2.0)) / (2 + torch.exp(torch.tensor(2.0))))
    assert torch.allclose(continuation_loss(logits, tokens, 2), expected[None])
    both = continuation_loss(logits, tokens, 1)
    assert torch.allclose(both, (expected + torch.log(torch.tensor(3.0))) / 2)
    with pytest.raises(ValueError):
        continuation_loss(logits, tokens, 3)
    with pytest.raises(ValueError):
        continuation_loss(logits[:, :3], tokens, 0)


def test_token_sweep_matches_single_substitutions():
    model = make_model()
    t = tokens_with_dense(batch=1, dense_at=(4,))
    sweep = token_sweep_losses(model, t, 4, chunk=3)
    assert sweep.shape == (10,)
    for token in (0, 5, DENSE):
        u = t.clone()
        u[0, 4] = token
        assert torch.allclose(sweep[token], continuation_loss(model(u), u, 4)[0], atol=1e-5)
    with pytest.raises(ValueError):
        token_sweep_losses(model, t.repeat(2, 1), 4)


def test_optimizing_one_vector_lowers_the_loss_and_freezes_the_model():
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    t = tokens_with_dense(batch=1, dense_at=(4,))
    vector, losses = optimize_dense_vector(model, t, 4, steps=30, lr=0.1)
    assert len(losses) == 31 and losses[-1] < losses[0] - 0.1
    assert vector.shape == (16,) and not vector.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters()) and all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError):
        optimize_dense_vector(model, t, 4, steps=0)
    with pytest.raises(ValueError):
        optimize_dense_vector(model, t.repeat(2, 1), 4)


def test_remove_positions_by_hand():
    tokens = torch.tensor([[10, 11, 12, 13, 14], [20, 21, 22, 23, 24]])
    targets = torch.tensor([[11, 12, 13, 14, -100], [-100, -100, -100, 24, -100]])
    remove = torch.tensor([[False, False, True, False, False], [False, True, True, False, False]])
    t, y = remove_positions(tokens, targets, remove, pad_id=0)
    assert t.tolist() == [[10, 11, 13, 14, 0], [20, 23, 24, 0, 0]]
    # Row 0: position 1 now predicts 13 (the target of the removed position 2); 12 is gone.
    assert y.tolist() == [[11, 13, 14, -100, -100], [-100, 24, -100, -100, -100]]
    # Nothing removed: unchanged.
    t2, y2 = remove_positions(tokens, targets, torch.zeros_like(remove), pad_id=0)
    assert torch.equal(t2, tokens) and torch.equal(y2, targets)
    with pytest.raises(ValueError):
        remove_positions(tokens, targets, remove.long(), 0)
    with pytest.raises(ValueError):
        remove_positions(tokens, targets[:, :4], remove, 0)


def test_target_log_likelihood_by_hand():
    logits = torch.zeros(1, 3, 4)
    targets = torch.tensor([[2, -100, 1]])
    assert torch.allclose(target_log_likelihood(logits, targets), torch.tensor([2 * -torch.log(torch.tensor(4.0))]))
    with pytest.raises(ValueError):
        target_log_likelihood(logits, targets[:, :2])


def test_deletion_scores_match_deleting_by_hand():
    model = make_model()
    t = tokens_with_dense(batch=2, pos=9, dense_at=(3, 6))
    targets = torch.full_like(t, -100)
    targets[:, 7] = t[:, 8]
    scores = deletion_scores(model, t, targets, DENSE, pad_id=0)
    assert torch.isnan(scores[:, [0, 1, 2, 4, 5, 7, 8]]).all() and not torch.isnan(scores[:, [3, 6]]).any()
    base = target_log_likelihood(sequential_forward(model, t, DENSE), targets)
    for col in (3, 6):
        remove = torch.zeros_like(t, dtype=torch.bool)
        remove[:, col] = True
        t2, y2 = remove_positions(t, targets, remove, 0)
        expected = base - target_log_likelihood(sequential_forward(model, t2, DENSE), y2)
        assert torch.allclose(scores[:, col], expected, atol=1e-4)
    plain = t.clone()
    plain[plain == DENSE] = 1
    assert torch.isnan(deletion_scores(model, plain, targets, DENSE, 0)).all()


def test_targets_accuracy_by_hand():
    logits = torch.zeros(2, 3, 4)
    logits[0, 1, 2] = 1.0
    logits[1, 1, 3] = 1.0
    targets = torch.tensor([[-100, 2, -100], [-100, 2, -100]])
    assert targets_accuracy(logits, targets) == 0.5
    with pytest.raises(ValueError):
        targets_accuracy(logits, targets[:, :2])
