"""Checker for notebook 04b (induction heads): scoring a head by its attention at an offset."""

from __future__ import annotations

from typing import Callable

import torch

from lib.exercises import call_learner, checker, expect, expect_close, report


def reference_attention_at_offset(pattern: torch.Tensor, offset: int) -> torch.Tensor:
    """The solution: mean attention from query i to key i - offset, over the queries that have one."""
    q = torch.arange(offset, pattern.shape[-1])
    return pattern[:, :, q, q - offset].mean(dim=(0, 2))


@checker("attention_at_offset")
def check_attention_at_offset(fn: Callable) -> None:
    """``fn(pattern [batch, head, q, k], offset) -> [head]``."""
    name = "attention_at_offset"
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 2, 6, 6, generator=gen)
    future = torch.ones(6, 6, dtype=torch.bool).triu(1)
    pattern = scores.masked_fill(future, float("-inf")).softmax(-1)
    previous = torch.zeros(1, 2, 5, 5)
    previous[0, 0, 0, 0] = 1.0
    previous[0, 0, torch.arange(1, 5), torch.arange(0, 4)] = 1.0  # head 0: a perfect previous-token head
    previous[0, 1] = torch.eye(5)  # head 1: attends to itself
    cases = [("a perfect previous-token head and a self-attending head, offset 1", previous, 1),
             ("random causal patterns, offset 1", pattern, 1),
             ("random causal patterns, offset 3", pattern, 3),
             ("offset 0 (the diagonal)", pattern, 0)]
    for case, p, offset in cases:
        got = call_learner(name, fn, p.clone(), offset)
        n_heads = p.shape[1]
        if isinstance(got, torch.Tensor) and tuple(got.shape) != (n_heads,):
            shapes = {
                (): "you averaged over the heads too: return one score PER HEAD, shape [head]",
                (1,): "you averaged over the heads too: return one score PER HEAD, shape [head]",
                (p.shape[0], n_heads): "you kept the batch axis: average over the batch too, shape [head]",
                (n_heads, p.shape[-1] - offset): "you kept the query axis: average over the queries too, shape [head]",
                (p.shape[0], n_heads, p.shape[-1] - offset): "you averaged nothing: the mean runs over the batch and "
                                                              "the queries, leaving shape [head]",
            }
            if tuple(got.shape) in shapes and tuple(got.shape) != (n_heads,):
                expect(False, name, case, f"it looks like {shapes[tuple(got.shape)]} (yours is {tuple(got.shape)})")
        q_all = torch.arange(offset, p.shape[-1])
        over_all_queries = p[:, :, q_all, q_all - offset].sum(dim=2).mean(0) / p.shape[-1]
        expect_close(
            got, reference_attention_at_offset(p, offset), name, case,
            "for every query i that has a key `offset` positions back, read the attention from i to that key; "
            "average those entries over the batch and over those queries: one number per head",
            mistakes={"you averaged over ALL queries, counting the first `offset` ones (which have no such key) as 0":
                      over_all_queries,
                      "you used key i + offset (the future): the key is i - offset":
                      p.transpose(-1, -2)[:, :, q_all, q_all - offset].mean(dim=(0, 2)),
                      "you summed over the queries (and the batch): take the MEAN, so a perfect head scores 1.0":
                      p[:, :, q_all, q_all - offset].sum(dim=(0, 2)),
                      "you averaged the whole row of each query (every key), not the one entry `offset` back":
                      p[:, :, q_all].mean(dim=(0, 2, 3))},
        )
    report(name, len(cases))
