"""Checkers for notebook 02 (logits and generation)."""

from __future__ import annotations

from typing import Callable

import torch

from lib.exercises import call_learner, checker, describe_mismatch, diagnose, expect, expect_close, explain, report
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
        # row 0 overflows without the max; row 1 underflows to 0 / 0 if the max is the whole tensor's
        "large logits in a batch (exp overflows unless you subtract each row's max)":
            torch.tensor([[1000.0, 999.0, 1002.0], [0.0, 1.0, 2.0]]),
        "a -inf entry (a masked token gets probability 0)": torch.tensor([[0.0, float("-inf"), 1.0]]),
    }
    for case, logits in cases.items():
        got = call_learner(name, fn, logits.clone())
        shifted = logits - logits.max(dim=-1, keepdim=True).values
        whole = logits - logits.max()
        mistakes = {
            "you did not subtract the maximum before exp: exp(1000) overflows to inf, and inf / inf is NaN":
                logits.exp() / logits.exp().sum(dim=-1, keepdim=True),
            "you subtracted the maximum of the whole tensor, not of each row: a row far below that maximum "
            "underflows to 0 / 0": whole.exp() / whole.exp().sum(dim=-1, keepdim=True),
            "you normalised over the whole tensor instead of each row": logits.exp() / logits.exp().sum(),
            "you did not divide by the sum: the rows must add up to 1": shifted.exp(),
        }
        mistakes["you took the softmax over the first dimension, not the last"] = logits.softmax(0)
        if isinstance(got, torch.Tensor) and got.shape == logits.shape and torch.isnan(got).any():
            found = diagnose(got, mistakes)
            expect(False, name, case,
                   f"your output has NaN. It looks like {found or 'exp overflowed (or underflowed to 0 / 0)'}. "
                   "Shifting a row by a constant does not change its softmax: which constant keeps every exp "
                   "between 0 and 1?")
        expect_close(got, logits.softmax(-1), name, case,
                     "exponentiate, then divide by the row's total, along the last dimension; shift each row first "
                     "so that no exp can overflow", mistakes=mistakes)
    report(name, len(cases))


def _with_ties_at_the_cut(rows: torch.Tensor) -> torch.Tensor:
    """Rows where the k-th and (k+1)-th largest logits are equal, for k = 1, 3 and 6 (one row each)."""
    rows = rows.clone()
    for row, k in zip(range(rows.shape[0]), (1, 3, 6)):
        values, order = rows[row].sort(descending=True)
        rows[row, order[k]] = values[k - 1]
    return rows


def _same_filtered(a, b) -> bool:
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape):
        return False
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    inf_a, inf_b = torch.isinf(a) & (a < 0), torch.isinf(b) & (b < 0)
    return torch.equal(inf_a, inf_b) and torch.allclose(a[~inf_a], b[~inf_b], atol=1e-5, rtol=0)


def _check_filter(name: str, label: str, fn: Callable, reference: Callable, params: list, hint: str,
                  mistakes: dict[str, Callable] | None = None, ties: bool = False) -> None:
    """Run ``fn(logits, p)`` on every case, then compare with ``reference``; a failure names the typical
    mistake (``mistakes``: description -> a function making it) that reproduces ALL the learner's
    outputs, or else says what differs (which tokens were kept, which values changed)."""
    gen = torch.Generator().manual_seed(1)
    rows = torch.randn(3, 10, generator=gen) * 2
    if ties:  # top-k only: where the other filters break ties depends on the sort, not on the exercise
        rows = _with_ties_at_the_cut(rows)
    skewed = torch.tensor([[4.0, 3.0, 1.0, 0.5, 0.0, -1.0]]).log_softmax(-1)
    cases = [(logits, p) for logits in (rows, skewed) for p in params]
    outputs = []
    for logits, p in cases:
        got = call_learner(name, fn, logits.clone(), p)
        expected = reference(logits, p)
        expect(
            isinstance(got, torch.Tensor) and got.shape == expected.shape, name, f"parameter {p}",
            f"return logits of the same shape {tuple(expected.shape)}, not "
            f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}",
        )
        outputs.append(got)
    candidates = {d: [wrong(logits.clone(), p) for logits, p in cases] for d, wrong in (mistakes or {}).items()}
    for at, ((logits, p), got) in enumerate(zip(cases, outputs)):
        expected = reference(logits, p)
        if _same_filtered(got, expected):
            continue
        named = explain(outputs, candidates, same=_same_filtered, at=at)
        dropped_got, dropped_want = torch.isinf(got) & (got < 0), torch.isinf(expected) & (expected < 0)
        kept, want = (~dropped_got).sum(-1).tolist(), (~dropped_want).sum(-1).tolist()
        if not torch.equal(dropped_got, dropped_want) and kept != want:
            detail = f"tokens kept per row: yours {kept}, expected {want}"
        elif not torch.equal(dropped_got, dropped_want):
            row = int((dropped_got != dropped_want).any(-1).nonzero()[0])
            detail = (f"you keep the right NUMBER of tokens but not the right ones: row {row} keeps token ids "
                      f"{(~dropped_got[row]).nonzero().flatten().tolist()}, expected "
                      f"{(~dropped_want[row]).nonzero().flatten().tolist()}")
        else:
            finite = ~dropped_want
            detail = ("the right tokens are kept but their values differ: "
                      + describe_mismatch(torch.where(finite, got, 0.0), torch.where(finite, expected, 0.0), 1e-5))
        expect(False, name, f"parameter {p} on a {tuple(logits.shape)} batch ({detail})",
               (f"It looks like {named}. " if named else "") + hint[:1].upper() + hint[1:])
    report(label, len(cases))


def _multiplied(logits, t):
    return logits * t


@checker("apply_temperature")
def check_temperature(fn: Callable) -> None:
    """``fn(logits, temperature) -> logits / temperature``."""
    _check_filter(
        "apply_temperature", "apply_temperature", fn, apply_temperature, [0.5, 1.0, 2.0],
        "a temperature below 1 must make the logits further apart (sharper), above 1 closer together (flatter), "
        "and the result stays a tensor of logits",
        mistakes={
            "you multiplied by the temperature: a temperature of 0.5 must sharpen, so the logits grow": _multiplied,
            "you returned probabilities (a softmax): the function returns scaled LOGITS":
                lambda logits, t: (logits / t).softmax(-1),
            "you returned log-probabilities (a log_softmax): the function returns the scaled logits, unnormalised":
                lambda logits, t: (logits / t).log_softmax(-1),
            "you subtracted the temperature: it scales the logits": lambda logits, t: logits - t,
        },
    )


def _top_k_exactly_k(logits, k):
    values, index = logits.topk(k, dim=-1)
    return torch.full_like(logits, float("-inf")).scatter(-1, index, values)


def _top_k_threshold(logits, k, kept=lambda logits, kth: logits >= kth, fill=float("-inf"), kth=None):
    kth = logits.topk(k, dim=-1).values[..., -1:] if kth is None else kth
    return logits.masked_fill(~kept(logits, kth), fill)


@checker("top_k_filter")
def check_top_k(fn: Callable) -> None:
    """``fn(logits, k)`` keeps the k largest logits per row (ties at the cut kept), the rest become -inf."""
    _check_filter(
        "top_k_filter", "top_k_filter", fn, top_k_filter, [1, 3, 6],
        "a logit survives when it is at least as large as the k-th largest of ITS row, so a row with a tie at "
        "the cut keeps more than k tokens; every other logit becomes -inf",
        mistakes={
            "you kept exactly k tokens where the k-th largest logit is tied with the next one: ties at the cut are "
            "kept (topk picks one of the tied tokens arbitrarily)": _top_k_exactly_k,
            "you dropped the k-th largest logit itself (a strict comparison): it is kept, only logits BELOW it go":
                lambda logits, k: _top_k_threshold(logits, k, kept=lambda x, kth: x > kth),
            "you kept the k SMALLEST logits": lambda logits, k: _top_k_threshold(
                logits, k, kept=lambda x, kth: x <= kth, kth=(-logits).topk(k, dim=-1).values[..., -1:].neg()),
            "you set the dropped logits to 0, not -inf: a logit of 0 still gets probability":
                lambda logits, k: _top_k_threshold(logits, k, fill=0.0),
            "you set the dropped logits to a large negative number, not -inf": lambda logits, k: _top_k_threshold(
                logits, k, fill=-1e9),
            "you took the k-th largest of the whole batch, not of each row": lambda logits, k: _top_k_threshold(
                logits, k, kth=logits.flatten().topk(k).values[-1]),
        },
        ties=True,
    )


def _top_p_exclusive(logits: torch.Tensor, p: float) -> torch.Tensor:
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    drop_sorted = sorted_logits.softmax(-1).cumsum(-1) > p
    return logits.masked_fill(torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted), float("-inf"))


def _top_p_sorted_order(logits, p):
    sorted_logits, _ = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    return sorted_logits.masked_fill(probs.cumsum(-1) - probs >= p, float("-inf"))


def _top_p_unsorted(logits, p):
    probs = logits.softmax(-1)
    return logits.masked_fill(probs.cumsum(-1) - probs >= p, float("-inf"))


def _top_p_ascending(logits, p):
    sorted_logits, order = logits.sort(dim=-1)
    probs = sorted_logits.softmax(-1)
    drop = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))


@checker("top_p_filter")
def check_top_p(fn: Callable) -> None:
    """``fn(logits, p)`` keeps the smallest set of most likely tokens whose probability reaches p."""
    _check_filter(
        "top_p_filter", "top_p_filter", fn, top_p_filter, [0.3, 0.5, 0.9, 1.0],
        "go from the most likely token down, adding probabilities; a token is kept when the probability of the "
        "tokens ranked ABOVE it is still below p (so the token that crosses p is kept, and the most likely token "
        "always is); the answer is in the original token order",
        mistakes={
            "you dropped the token that crosses p (keep a token while the mass BEFORE it is < p)": _top_p_exclusive,
            "you returned the logits in SORTED order: the filtered logits must come back in the original token "
            "order": _top_p_sorted_order,
            "you accumulated the probabilities in the original token order: accumulate from the most likely "
            "token down": _top_p_unsorted,
            "you sorted in ascending order: accumulate from the MOST likely token down": _top_p_ascending,
        },
    )


def _greedy_mistakes(model, prompt: torch.Tensor, n_new: int) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        first, once = prompt, prompt
        for _ in range(n_new):
            first = torch.cat([first, model(first)[:, 0].argmax(-1, keepdim=True)], dim=1)
        step = model(prompt)[:, -1].argmax(-1, keepdim=True)
        once = torch.cat([prompt] + [step] * n_new, dim=1)
    return {
        "you took the argmax at the FIRST position: only the LAST position's logits predict the next token": first,
        "you ran the model once on the prompt and repeated its prediction: run it on the growing sequence at "
        "every step": once,
    }


@checker("greedy_generate")
def check_greedy_generate(fn: Callable, model, prompt: torch.Tensor, n_new: int = 12) -> None:
    """``fn(model, tokens, n_new) -> tokens``: greedy decoding must match ``lib.core.sampling.generate``,
    and leave the model in the train/eval mode it came in."""
    name = "greedy_generate"
    expected = generate(model, prompt, n_new, temperature=0)
    came_in = model.training
    try:
        model.train()  # a function that switches to eval for generating must switch back
        got = call_learner(name, fn, model, prompt.clone(), n_new)
        expect(model.training, name, "a model that came in training mode",
               "it looks like your function left the model in eval mode: a caller that was training must get its "
               "model back in the mode it came in (remember it, and restore it at the end)")
    finally:
        model.train(came_in)
    if isinstance(got, torch.Tensor) and got.ndim == 2 and got.shape[0] == prompt.shape[0] and got.shape[1] == n_new:
        expect(False, name, "the shape of the result",
               f"it looks like you returned only the {n_new} new tokens: the result starts with the prompt")
    if isinstance(got, torch.Tensor) and got.ndim == 2 and got.shape[1] != expected.shape[1] \
            and abs(got.shape[1] - expected.shape[1]) <= 1:
        expect(False, name, "the shape of the result",
               f"it looks like you generated {got.shape[1] - prompt.shape[1]} tokens instead of {n_new}: count the loop")
    expect(
        isinstance(got, torch.Tensor) and got.shape == expected.shape, name, "the shape of the result",
        f"return the prompt followed by {n_new} new tokens, shape {tuple(expected.shape)}",
    )
    named = diagnose(got, _greedy_mistakes(model, prompt, n_new), atol=0)
    expect(
        torch.equal(got, expected), name, "the generated tokens",
        (f"it looks like {named}. " if named else "")
        + "each new token is the most likely next token after everything so far, and it is part of the input "
        "of the following step",
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
