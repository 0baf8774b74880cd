"""Checkers for notebook 02 (logits and generation)."""

from __future__ import annotations

from typing import Callable

import torch

from lib.exercises import call_learner, expect, expect_close, report
from lib.sampling import apply_temperature, generate, top_k_filter, top_p_filter


def check_softmax(fn: Callable) -> None:
    """``fn(logits) -> probabilities`` over the last dimension, stable for large logits."""
    name = "softmax"
    cases = {
        "small logits": torch.tensor([[1.0, 2.0, 3.0]]),
        "a batch of rows": torch.randn(4, 7, generator=torch.Generator().manual_seed(0)),
        "large logits (exp overflows unless you subtract the max)": torch.tensor([[1000.0, 1001.0, 1002.0]]),
        "a -inf entry (a masked token gets probability 0)": torch.tensor([[0.0, float("-inf"), 1.0]]),
    }
    for case, logits in cases.items():
        got = call_learner(name, fn, logits.clone())
        expect_close(got, logits.softmax(-1), name, case, "exp(x - max) / sum(exp(x - max)) along the last dimension")
    report(name, len(cases))


def _check_filter(name: str, fn: Callable, reference: Callable, params: list, hint: str) -> None:
    gen = torch.Generator().manual_seed(1)
    rows = torch.randn(3, 10, generator=gen) * 2
    skewed = torch.tensor([[4.0, 3.0, 1.0, 0.5, 0.0, -1.0]]).log_softmax(-1)
    n = 0
    for logits in (rows, skewed):
        for p in params:
            got = call_learner(name, fn, logits.clone(), p)
            expected = reference(logits, p)
            expect(
                isinstance(got, torch.Tensor) and got.shape == expected.shape, name, f"parameter {p}",
                f"return logits of the same shape {tuple(expected.shape)}",
            )
            same = torch.equal(torch.isinf(got), torch.isinf(expected)) and torch.allclose(
                got[~torch.isinf(got)], expected[~torch.isinf(expected)], atol=1e-5
            )
            expect(same, name, f"parameter {p}", hint)
            n += 1
    report(name, n)


def check_temperature(fn: Callable) -> None:
    """``fn(logits, temperature) -> logits / temperature``."""
    _check_filter("temperature", fn, apply_temperature, [0.5, 1.0, 2.0], "divide the logits by the temperature")


def check_top_k(fn: Callable) -> None:
    """``fn(logits, k)`` keeps the k largest logits per row, the rest become -inf."""
    _check_filter("top_k", fn, top_k_filter, [1, 3, 6], "keep the k largest logits of each row; set the others to -inf")


def check_top_p(fn: Callable) -> None:
    """``fn(logits, p)`` keeps the smallest set of most likely tokens whose probability reaches p."""
    _check_filter(
        "top_p", fn, top_p_filter, [0.3, 0.5, 0.9, 1.0],
        "sort by probability, keep tokens while the probability accumulated BEFORE each one is < p "
        "(so the token that crosses p is kept, and the most likely token always is)",
    )


def check_greedy_generate(fn: Callable, model, prompt: torch.Tensor, n_new: int = 12) -> None:
    """``fn(model, tokens, n_new) -> tokens``: greedy decoding must match ``lib.sampling.generate``."""
    name = "greedy_generate"
    expected = generate(model, prompt, n_new, temperature=0)
    got = call_learner(name, fn, model, prompt.clone(), n_new)
    expect(
        isinstance(got, torch.Tensor) and got.shape == expected.shape, name, "the shape of the result",
        f"return the prompt followed by {n_new} new tokens, shape {tuple(expected.shape)}",
    )
    expect(
        torch.equal(got, expected), name, "the generated tokens",
        "at each step take the argmax of the LAST position's logits and append it to the sequence",
    )
    report(name, 2)
