"""Checkers for notebook 07 (the planning loss): the cross-attention mask, the future aggregate
and the cosine disaffinity."""

from __future__ import annotations

from typing import Callable

import torch

from lib.exercises import call_learner, checker, expect, expect_close, report
from lib.methods.future_loss import disaffinity, future_aggregate


def reference_cross_attention_mask(n_query: int, n_key: int) -> torch.Tensor:
    """``[n_query, n_key]`` bool, True where attention is allowed. The queries are the LAST
    ``n_query`` of ``n_key`` positions (with a KV cache, earlier keys are already stored), so query
    i sits at absolute position ``n_key - n_query + i`` and may see keys 0 .. that position."""
    offset = n_key - n_query
    return torch.ones(n_query, n_key, dtype=torch.bool).tril(diagonal=offset)


@checker("cross_attention_mask")
def check_cross_attention_mask(fn: Callable) -> None:
    name = "cross_attention_mask"
    cases = [(4, 4), (1, 5), (2, 6), (1, 1), (3, 3)]
    for n_q, n_k in cases:
        got = call_learner(name, fn, n_q, n_k)
        expected = reference_cross_attention_mask(n_q, n_k)
        expect(isinstance(got, torch.Tensor), name, f"n_query={n_q}, n_key={n_k}", "return a torch.Tensor")
        expect(
            tuple(got.shape) == (n_q, n_k), name, f"n_query={n_q}, n_key={n_k}",
            f"the mask has one row per query and one column per key: shape ({n_q}, {n_k})",
        )
        expect(
            got.dtype == torch.bool, name, f"n_query={n_q}, n_key={n_k}",
            "return a bool tensor (True = may attend)",
        )
        expect(
            torch.equal(got, expected), name, f"n_query={n_q}, n_key={n_k}",
            "query i is at absolute position n_key - n_query + i and sees every key up to AND including that "
            "position (its own encoder output included); with fewer queries than keys the queries are the last ones",
        )
    report(name, len(cases))


@checker("future_aggregate")
def check_future_aggregate(fn: Callable) -> None:
    name = "future_aggregate"
    hand = torch.tensor([[[1.0], [2.0], [3.0], [4.0], [5.0]]])  # one sequence, d = 1
    gen = torch.Generator().manual_seed(0)
    cases = [
        ("E = 1, 2, 3, 4, 5 with n = 2", hand, 2),
        ("E = 1, 2, 3, 4, 5 with n = 1", hand, 1),
        ("a random [2, 7, 3] tensor with n = 3", torch.randn(2, 7, 3, generator=gen), 3),
    ]
    for case, E, n in cases:
        got = call_learner(name, fn, E.clone(), n)
        expect_close(
            got, future_aggregate(E, n), name, case,
            "entry i is E[i+1]/1 + E[i+2]/2 + ... + E[i+n]/n: the NEXT n embeddings (not the current one), "
            "nearer ones weighted more, and only the first pos - n positions (the others have no full future)",
        )
    report(name, len(cases))


@checker("cosine_disaffinity")
def check_cosine_disaffinity(fn: Callable) -> None:
    name = "cosine_disaffinity"
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(2, 5, 8, generator=gen)
    cases = [
        ("identical vectors", a, a.clone(), 0.0),
        ("opposite vectors", a, -a, 1.0),
        ("orthogonal vectors", torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]]), 0.5),
        ("random [2, 5, 8] tensors", a, torch.randn(2, 5, 8, generator=gen), None),
    ]
    for case, x, y, value in cases:
        got = call_learner(name, fn, x, y)
        if isinstance(got, float) or (isinstance(got, torch.Tensor) and got.numel() == 1):
            got = torch.as_tensor(got).reshape(())  # a 0-d tensor, a [1] tensor or a float are all fine
        expected = disaffinity(x, y, "cosine") if value is None else torch.tensor(value)
        expect_close(
            got, expected, name, case,
            "return one number: the mean over positions of 1 - (cos + 1) / 2, with the cosine taken along the last "
            "(feature) dimension; same direction -> 0, orthogonal -> 0.5, opposite -> 1",
        )
    report(name, len(cases))


def reference_cosine_disaffinity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return disaffinity(a, b, "cosine")


__all__ = [
    "check_cross_attention_mask",
    "check_future_aggregate",
    "check_cosine_disaffinity",
    "reference_cross_attention_mask",
    "reference_cosine_disaffinity",
]


def reference_future_aggregate(E: torch.Tensor, n: int) -> torch.Tensor:
    """The solution, as the notebook writes it."""
    keep = E.shape[1] - n
    return sum(E[:, z : z + keep] / z for z in range(1, n + 1))
