"""lib.methods.dense_selection: random dense places, the windows where they helped, the dense-token loss."""

import pytest
import torch

from lib.methods.dense import unrolled_forward
from lib.methods.dense_selection import (
    after_dense_mask, dense_targets, dense_token_loss, insert_random_dense, select_rows, selected_dense_loss,
    selection_gains,
)
from lib.core.model import GPT, GPTConfig

D = 9  # the dense id of the toy vocabulary
PAD = 10


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(d_vocab=11, n_ctx=24, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))


def rows(n=4, width=8):
    tokens = torch.arange(n * width).reshape(n, width) % 8
    return tokens, torch.full((n,), width)


def test_insert_random_dense_keeps_the_text_and_the_first_gap():
    tokens, lengths = rows()
    new, new_lengths = insert_random_dense(tokens, lengths, 3, D, PAD, torch.Generator().manual_seed(0), first_gap=2)
    assert new.shape == (4, 11) and new_lengths.tolist() == [11] * 4
    assert ((new == D).sum(1) == 3).all()
    assert (new[:, :2] == tokens[:, :2]).all()  # nothing before original token 2
    for b in range(4):
        assert new[b][new[b] != D].tolist() == tokens[b].tolist()  # the text, in order
        assert new[b, -1] != D  # a text token follows every dense token
    again, _ = insert_random_dense(tokens, lengths, 3, D, PAD, torch.Generator().manual_seed(0), first_gap=2)
    assert torch.equal(new, again)


def test_insert_random_dense_places_vary_and_cover_every_gap():
    tokens, lengths = rows(n=400)
    new, _ = insert_random_dense(tokens, lengths, 1, D, PAD, torch.Generator().manual_seed(1), first_gap=1)
    places = (new == D).float().argmax(1)
    assert set(places.tolist()) == set(range(1, 8))  # every gap before tokens 1..7


def test_insert_random_dense_bad_inputs():
    tokens, lengths = rows()
    gen = torch.Generator()
    with pytest.raises(TypeError):
        insert_random_dense(tokens.float(), lengths, 1, D, PAD, gen)
    with pytest.raises(ValueError):
        insert_random_dense(tokens, lengths[:2], 1, D, PAD, gen)
    with pytest.raises(ValueError, match="length"):  # a length past the row's width
        insert_random_dense(tokens, lengths + tokens.shape[1], 0, D, PAD, gen)  # n_dense 0: checked up front
    with pytest.raises(ValueError):
        insert_random_dense(tokens, lengths, -1, D, PAD, gen)
    with pytest.raises(TypeError):
        insert_random_dense(tokens, lengths, 1.5, D, PAD, gen)
    with pytest.raises(TypeError):
        insert_random_dense(tokens, lengths, 1, D, PAD, None)
    with pytest.raises(ValueError):
        insert_random_dense(tokens, lengths, 1, D, PAD, gen, first_gap=8)  # no gap left


def test_dense_targets_skip_dense_tokens_and_follow_the_text():
    tokens = torch.tensor([[1, 2, D, 3, D, D, 4]])
    targets = dense_targets(tokens, torch.tensor([7]), D)
    assert targets.tolist() == [[2, -100, 3, -100, -100, 4, -100]]
    only_last = torch.zeros(1, 7, dtype=torch.bool)
    only_last[0, 3] = True  # original index 3: the token 4 (the row without dense tokens is 1 2 3 4)
    assert dense_targets(tokens, torch.tensor([7]), D, only_last).tolist() == [[-100] * 5 + [4, -100]]


def test_selection_gains_is_the_with_minus_without_difference(model):
    tokens = torch.tensor([[1, 2, D, 3, 4, 5], [1, 2, 3, 4, 5, 6]])
    targets = dense_targets(tokens, torch.tensor([6, 6]), D)
    gains = selection_gains(model, tokens, targets, D)

    def ll(depth):
        logits = unrolled_forward(model, tokens, D, depth).logits.log_softmax(-1)
        scored = targets != -100
        return (logits.gather(-1, targets.clamp(min=0)[..., None])[..., 0] * scored).sum(1)

    assert torch.allclose(gains, ll(1) - ll(0), atol=1e-5)
    assert gains[1] == 0  # no dense token: nothing can change
    assert gains[0] != 0
    assert model.training  # the mode is restored


def test_selection_gains_bad_inputs(model):
    tokens = torch.tensor([[1, 2, D, 3]])
    with pytest.raises(ValueError):
        selection_gains(model, tokens, tokens[:, :3], D)
    with pytest.raises(TypeError):
        selection_gains(model, tokens.float(), tokens, D)
    with pytest.raises(ValueError):
        selection_gains(model, tokens, tokens, 99)


def test_select_rows_top_and_random():
    gains = torch.tensor([0.1, 3.0, -1.0, 3.0, 0.5])
    assert select_rows(gains, 3).tolist() == [1, 3, 4]
    picked = select_rows(gains, 3, "random", torch.Generator().manual_seed(0))
    assert len(set(picked.tolist())) == 3 and all(0 <= i < 5 for i in picked.tolist())
    with pytest.raises(ValueError):
        select_rows(gains, 6)
    with pytest.raises(ValueError):
        select_rows(gains, 0)
    with pytest.raises(ValueError):
        select_rows(gains, 2, "best")
    with pytest.raises(TypeError):
        select_rows(torch.tensor([1, 2]), 1)
    with pytest.raises(TypeError):
        select_rows(gains, 2, "random", None)
    with pytest.raises(ValueError):
        select_rows(torch.tensor([1.0, float("nan")]), 1)


def test_after_dense_mask_marks_the_span_after_each_dense_token():
    tokens = torch.tensor([[1, D, 2, 3, 4, 5, D, 6]])
    assert after_dense_mask(tokens, D, 2).int().tolist() == [[0, 1, 1, 0, 0, 0, 1, 1]]
    assert after_dense_mask(tokens, D, 1).int().tolist() == [[0, 1, 0, 0, 0, 0, 1, 0]]
    with pytest.raises(ValueError):
        after_dense_mask(tokens, D, 0)


def test_dense_token_loss_scores_only_the_tokens_after_dense_tokens(model):
    tokens = torch.tensor([[1, 2, D, 3, 4, 5, 6, 7]])
    targets = dense_targets(tokens, torch.tensor([8]), D)
    logits = model(tokens)
    full = torch.nn.functional.cross_entropy(logits[0], targets[0], ignore_index=-100, reduction="none")
    assert torch.allclose(dense_token_loss(logits, tokens, targets, D, span=2), full[2:4].mean())
    no_dense = torch.tensor([[1, 2, 3]])
    zero = dense_token_loss(model(no_dense), no_dense, torch.tensor([[2, 3, -100]]), D)
    assert zero.item() == 0 and zero.requires_grad
    with pytest.raises(TypeError):
        dense_token_loss(tokens, tokens, targets, D)
    with pytest.raises(ValueError):
        dense_token_loss(logits, tokens, targets[:, :4], D)


def test_selected_dense_loss_adds_lam_times_the_dense_loss_and_reaches_the_vector_pass(model):
    tokens = torch.tensor([[1, 2, D, 3, 4, 5, 6, 7]])
    targets = dense_targets(tokens, torch.tensor([8]), D)
    loss0, ce, dl = selected_dense_loss(model, tokens, targets, D, 1, 0.0)
    loss2, _, _ = selected_dense_loss(model, tokens, targets, D, 1, 2.0)
    assert torch.allclose(loss0, ce) and torch.allclose(loss2, ce + 2 * dl)
    # the gradient of the dense-token loss reaches the first pass, through the vector it made
    model.zero_grad()
    dl.backward()
    assert model.blocks[0].attn.W_Q.grad.abs().sum() > 0
    model.zero_grad()
    for bad in (-1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError):
            selected_dense_loss(model, tokens, targets, D, 1, bad)
