"""Checkers for notebook 02 (logits and generation)."""

from __future__ import annotations

from typing import Callable

import torch

from lib.exercises import call_learner, checker, expect, expect_close, report
from lib.core.sampling import apply_temperature, generate, top_k_filter, top_p_filter


def reference_softmax(logits: torch.Tensor) -> torch.Tensor:
    """The solution: a stable softmax over the last dimension."""
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    e = shifted.exp()
    return e / e.sum(dim=-1, keepdim=True)


@torch.no_grad()
def reference_greedy_generate(model, tokens: torch.Tensor, n_new: int) -> torch.Tensor:
    """The solution: append the argmax of the last position's logits, n_new times."""
    for _ in range(n_new):
        next_token = model(tokens)[:, -1].argmax(dim=-1, keepdim=True)
        tokens = torch.cat([tokens, next_token], dim=1)
    return tokens


@checker("softmax")
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
        mistakes = {"you normalised over the whole tensor instead of each row": logits.exp() / logits.exp().sum()}
        if logits.shape[0] > 1:
            mistakes["you took the softmax over the first dimension, not the last"] = logits.softmax(0)
        if isinstance(got, torch.Tensor) and got.shape == logits.shape and torch.isnan(got).any() and not torch.isnan(logits.softmax(-1)).any():
            expect(False, name, case, "your output has NaN: exp(1000) overflows to inf and inf / inf is NaN; "
                   "subtract each row's maximum before exp")
        expect_close(got, logits.softmax(-1), name, case, "exp(x - max) / sum(exp(x - max)) along the last dimension",
                     mistakes=mistakes)
    report(name, len(cases))


def _check_filter(name: str, fn: Callable, reference: Callable, params: list, hint: str, mistake=None) -> None:
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
            detail = ""
            if not same:
                kept, want = (~torch.isinf(got)).sum(-1).tolist(), (~torch.isinf(expected)).sum(-1).tolist()
                detail = f" (tokens kept per row: yours {kept}, expected {want})"
                if mistake is not None and torch.equal(torch.isinf(got), torch.isinf(mistake(logits, p))):
                    detail += f". It looks like {mistake.__doc__}"
            expect(same, name, f"parameter {p}{detail}", hint)
            n += 1
    report(name, n)


@checker("apply_temperature")
def check_temperature(fn: Callable) -> None:
    """``fn(logits, temperature) -> logits / temperature``."""
    _check_filter("temperature", fn, apply_temperature, [0.5, 1.0, 2.0], "divide the logits by the temperature")


@checker("top_k_filter")
def check_top_k(fn: Callable) -> None:
    """``fn(logits, k)`` keeps the k largest logits per row, the rest become -inf."""
    _check_filter("top_k", fn, top_k_filter, [1, 3, 6], "keep the k largest logits of each row; set the others to -inf")


def _top_p_exclusive(logits: torch.Tensor, p: float) -> torch.Tensor:
    """you dropped the token that crosses p (keep tokens while the mass BEFORE them is < p)"""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    drop_sorted = sorted_logits.softmax(-1).cumsum(-1) > p
    return logits.masked_fill(torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted), float("-inf"))


@checker("top_p_filter")
def check_top_p(fn: Callable) -> None:
    """``fn(logits, p)`` keeps the smallest set of most likely tokens whose probability reaches p."""
    _check_filter(
        "top_p", fn, top_p_filter, [0.3, 0.5, 0.9, 1.0],
        "sort by probability, keep tokens while the probability accumulated BEFORE each one is < p "
        "(so the token that crosses p is kept, and the most likely token always is)",
        mistake=_top_p_exclusive,
    )


@checker("greedy_generate")
def check_greedy_generate(fn: Callable, model, prompt: torch.Tensor, n_new: int = 12) -> None:
    """``fn(model, tokens, n_new) -> tokens``: greedy decoding must match ``lib.core.sampling.generate``."""
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


# The solutions exactly as the notebook writes them: they accept logits of any shape (the notebook
# also filters a single row), where lib.core.sampling's versions insist on [batch, d_vocab].
def reference_apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The solution: logits / temperature."""
    return logits / temperature


def reference_top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The solution: -inf below the k-th largest logit of each row."""
    kth_largest = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def reference_top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """The solution: keep tokens while the probability ranked above them is < p."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    sorted_probs = sorted_logits.softmax(dim=-1)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    drop = torch.zeros_like(mass_before >= p).scatter(-1, order, mass_before >= p)
    return logits.masked_fill(drop, float("-inf"))
