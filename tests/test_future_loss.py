"""The planning-loss pieces on tensors small enough to check by hand."""

import math

import pytest
import torch
import torch.nn.functional as F

from lib.methods.future_loss import disaffinity, future_aggregate, future_loss, planning_target, present_aggregate

# One sequence of 4 positions, 1-dimensional embeddings 1, 2, 3, 4 (and a second channel x10).
E = torch.tensor([[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]]])


def test_present_is_the_cumulative_mean():
    # means of [1], [1, 2], [1, 2, 3], [1, 2, 3, 4]
    assert present_aggregate(E)[0, :, 0].tolist() == [1.0, 1.5, 2.0, 2.5]
    assert present_aggregate(E)[0, :, 1].tolist() == [10.0, 15.0, 20.0, 25.0]


def test_future_weights_nearer_tokens_more():
    # n = 2: position 0 -> 2/1 + 3/2 = 3.5; position 1 -> 3/1 + 4/2 = 5.0 (positions 2, 3 dropped)
    assert future_aggregate(E, 2)[0, :, 0].tolist() == [3.5, 5.0]
    # n = 1: simply the next embedding
    assert future_aggregate(E, 1)[0, :, 0].tolist() == [2.0, 3.0, 4.0]


def test_planning_target_averages_present_and_future():
    # (1 + 3.5) / 2 = 2.25; (1.5 + 5) / 2 = 3.25
    assert planning_target(E, 2)[0, :, 0].tolist() == [2.25, 3.25]


def test_disaffinity_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    assert disaffinity(a, b, "mse").item() == pytest.approx(1.0)  # (0 + 0 + 0 + 4) / 4
    # cos = 1 -> 0; cos = -1 -> 1; mean 0.5
    assert disaffinity(a, b, "cosine").item() == pytest.approx(0.5)
    assert disaffinity(a, a, "cosine").item() == pytest.approx(0.0, abs=1e-7)


def test_future_loss_by_hand_and_gradients():
    torch.manual_seed(0)
    enc = torch.randn(1, 4, 2, requires_grad=True)
    Ein = E.clone().requires_grad_(True)
    loss = future_loss(enc, Ein, 2, "mse")
    target = planning_target(E, 2)
    expected = F.mse_loss(F.layer_norm(enc[:, :2], (2,)), F.layer_norm(target, (2,)))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert Ein.grad is None  # the embeddings are a target: detached
    assert enc.grad[:, 2:].abs().sum() == 0  # the last n positions are ignored
    assert enc.grad[:, :2].abs().sum() > 0


def test_layer_norms_have_no_gain_so_no_collapse_by_shrinking():
    # Scaling the encoder output down does not lower the loss: the LayerNorm undoes the scale
    # (as long as the variance stays well above eps).
    torch.manual_seed(1)
    enc = torch.randn(2, 6, 8)
    emb = torch.randn(2, 6, 8)
    full = future_loss(enc, emb, 2)
    assert future_loss(enc * 0.1, emb, 2).item() == pytest.approx(full.item(), rel=5e-3)
    assert math.isfinite(full.item()) and full.item() > 0.1


@pytest.mark.parametrize("n", [0, -1, 4, 10, 2.0, True])
def test_bad_horizon(n):
    # A float or a bool is the wrong kind of value (TypeError); a bad int a wrong value.
    with pytest.raises(TypeError if isinstance(n, (bool, float)) else ValueError, match="horizon"):
        future_aggregate(E, n)


def test_bad_shapes_and_kinds():
    with pytest.raises(ValueError, match="same shape"):
        future_loss(torch.zeros(1, 4, 3), E, 1)
    with pytest.raises(ValueError, match=r"\[batch, pos, d_model\]"):
        present_aggregate(E[0])
    with pytest.raises(TypeError, match="floating-point"):
        present_aggregate(E.long())
    with pytest.raises(ValueError, match="same shape"):
        disaffinity(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="kind"):
        disaffinity(torch.zeros(2, 3), torch.zeros(2, 3), "l1")
