"""Checkers for notebook 07 (the planning loss): the cross-attention mask, the future aggregate
and the cosine disaffinity."""

from __future__ import annotations

from typing import Callable

import torch

import torch.nn.functional as F

from lib.exercises import call_learner, checker, diagnose, expect, expect_close, report
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
        case = f"n_query={n_q}, n_key={n_k}"
        expect(isinstance(got, torch.Tensor), name, case, "return a torch.Tensor")
        expect(
            tuple(got.shape) == (n_q, n_k), name, case,
            f"the mask has one row per query and one column per key: shape ({n_q}, {n_k})",
        )
        expect(
            got.dtype == torch.bool, name, case,
            f"it looks like you returned a {got.dtype} mask: return a bool tensor (True = may attend)",
        )
        ones = torch.ones(n_q, n_k, dtype=torch.bool)
        named = diagnose(got, {
            "you placed the queries at the FIRST positions: with a cache they are the LAST n_query of the n_key "
            "positions": ones.tril(),
            "a query cannot see its own position in your mask: it sees every key up to AND including it":
                ones.tril(diagonal=n_k - n_q - 1),
            "you returned the mask of FORBIDDEN keys: True must mean 'may attend'": ~expected,
            "your mask lets queries see the FUTURE keys (triu instead of tril)": ones.triu(diagonal=n_k - n_q),
        })
        expect(
            torch.equal(got, expected), name, case,
            (f"it looks like {named}. " if named else "")
            + "query i is at absolute position n_key - n_query + i and sees every key up to AND including that "
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
        keep = E.shape[1] - n
        if isinstance(got, torch.Tensor) and got.ndim == 3 and got.shape[1] == E.shape[1] and n > 0:
            expect(False, name, case,
                   f"it looks like you kept every position: the shape must be {tuple(E.shape[:1]) + (keep,) + tuple(E.shape[2:])}, "
                   "only the first pos - n positions have a full future")
        terms = [E[:, z : z + keep] for z in range(1, n + 1)]
        expect_close(
            got, future_aggregate(E, n), name, case,
            "entry i sums the NEXT n embeddings (not the current one), the z-th one ahead weighted by 1/z, so nearer "
            "ones count more; only the first pos - n positions have a full future",
            mistakes={
                "you included the current embedding: the sum starts at the NEXT one (i + 1)":
                    sum(E[:, z - 1 : z - 1 + keep] / z for z in range(1, n + 1)),
                "you weighted the z-th embedding by z: the weight is 1/z, nearer ones count more":
                    sum(t * z for z, t in enumerate(terms, 1)),
                "you did not weight the embeddings: the z-th one ahead counts 1/z": sum(terms),
                "you averaged the next n embeddings: the z-th one ahead is weighted by 1/z instead":
                    sum(terms) / n,
            },
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
        if isinstance(got, torch.Tensor) and got.ndim >= 1 and tuple(got.shape) == tuple(x.shape[:-1]):
            expect(False, name, case, f"it looks like you returned one value per position (shape {tuple(got.shape)}): "
                   "average them into one number, a 0-d tensor")
        cos = F.cosine_similarity(x, y, dim=-1)
        mistakes = {
            "you returned 1 - cos, which runs from 0 to 2: rescale so that opposite vectors give 1": (1 - cos).mean(),
            "you returned the cosine similarity itself (1 for the same direction): the loss is 0 there":
                cos.mean(),
            "you returned the affinity (cos + 1) / 2: the loss is one minus it": ((cos + 1) / 2).mean(),
        }
        if x.ndim > 2:
            mistakes["you took the cosine along the wrong dimension: it is along the last (feature) one"] = \
                (1 - (F.cosine_similarity(x, y, dim=0) + 1) / 2).mean()
        expect_close(
            got, expected, name, case,
            "one number: the mean over positions of a rescaled cosine along the last (feature) dimension, so that "
            "the same direction gives 0, orthogonal 0.5 and opposite 1",
            mistakes=mistakes,
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
