"""Checkers for notebook 08 (the comparison harness)."""

from __future__ import annotations

from typing import Callable

from lib.exercises import call_learner, checker, expect, explain, report
from lib.core.stats import verdict as reference_verdict


def reference_widest_within(budget: int, n_params_of: Callable[[int], int], widths) -> int:
    fitting = [w for w in widths if n_params_of(w) <= budget]
    if not fitting:
        raise ValueError("no width fits the budget")
    return max(fitting)


def _verdict_variant(separated=lambda m, b: min(m) > max(b), big=lambda gain, e: gain > e, use_sign=True,
                     worse=True) -> Callable:
    def verdict(baseline, method, higher_is_better, min_effect):
        sign = 1.0 if (higher_is_better or not use_sign) else -1.0
        m, b = [sign * x for x in method], [sign * x for x in baseline]
        gain = sum(m) / len(m) - sum(b) / len(b)
        if separated(m, b) and big(gain, min_effect):
            return "better"
        if worse and separated(b, m) and big(-gain, min_effect):
            return "worse"
        return "no measurable effect"
    return verdict


_VERDICT_MISTAKES = {
    "you compared the means only: one lucky seed can move a mean, so EVERY method seed must beat EVERY baseline "
    "seed": _verdict_variant(separated=lambda m, b: True),
    "you counted a tied seed as beating: a seed equal to the best of the other side does not beat it (strictly "
    "greater)": _verdict_variant(separated=lambda m, b: min(m) >= max(b)),
    "you accepted a difference of means EQUAL to min_effect: it must be MORE than min_effect":
        _verdict_variant(big=lambda gain, e: gain >= e),
    "you ignored min_effect: a separated but tiny difference is no measurable effect":
        _verdict_variant(big=lambda gain, e: gain > 0),
    "you ignored higher_is_better: for a loss, lower is better": _verdict_variant(use_sign=False),
    "you never answer 'worse': the rule is symmetric": _verdict_variant(worse=False),
    "you compared the best seeds only: every seed of the method must beat every seed of the baseline":
        _verdict_variant(separated=lambda m, b: max(m) > max(b)),
}


@checker("verdict")
def check_verdict(fn: Callable) -> None:
    """``fn(baseline, method, higher_is_better, min_effect) -> "better" | "worse" | "no measurable effect"``."""
    name = "verdict"
    cases = [
        ("clearly better", [0.50, 0.52, 0.51], [0.90, 0.95, 0.93], True, 0.02),
        ("a loss (lower is better) that went up: worse", [2.00, 2.01, 2.02], [2.10, 2.12, 2.11], False, 0.01),
        ("a loss that went down, but by less than min_effect", [2.10, 2.12, 2.11], [2.00, 2.01, 2.02], False, 0.2),
        ("overlapping seeds: one lucky seed is not an effect", [0.50, 0.52, 0.90], [0.85, 0.88, 0.86], True, 0.02),
        # exact in binary: the means differ by exactly 1.0, which is not MORE than min_effect
        ("separated, but the means differ by exactly min_effect (not more)", [1.0, 1.25, 1.5], [2.0, 2.25, 2.5], True, 1.0),
        ("a tie at the boundary: the best baseline seed equals the worst method seed", [0.5, 0.6, 0.7], [0.7, 0.8, 0.9], True, 0.0),
    ]
    outputs = [call_learner(name, fn, list(base), list(method), higher, min_effect)
               for _, base, method, higher, min_effect in cases]
    candidates = {d: [wrong(list(base), list(method), higher, e) for _, base, method, higher, e in cases]
                  for d, wrong in _VERDICT_MISTAKES.items()}
    for at, ((case, base, method, higher, min_effect), got) in enumerate(zip(cases, outputs)):
        expected = reference_verdict(base, method, higher, min_effect)
        named = None if got == expected else explain(outputs, candidates, same=lambda a, b: a == b, at=at)
        expect(
            got == expected, name, f"{case} (baseline {base}, method {method})",
            (f"It looks like {named}. " if named else "")
            + f"Expected {expected!r}, got {got!r}. 'better' needs every seed of the method to beat every seed of "
            "the baseline (in the task's direction) AND the means to differ by more than min_effect; 'worse' the "
            "same the other way; anything else is 'no measurable effect'",
        )
    report(name, len(cases))


_WIDEST_MISTAKES = {
    "you took the last fitting width in the order given: the widths come in any order, take the LARGEST":
        lambda budget, count, widths: [w for w in widths if count(w) <= budget][-1],
    "you took the first fitting width in the order given: take the LARGEST that fits":
        lambda budget, count, widths: [w for w in widths if count(w) <= budget][0],
    "a model exactly at the budget was left out: it fits (<=, not <)":
        lambda budget, count, widths: max([w for w in widths if count(w) < budget], default=None),
    "you returned the smallest fitting width: the question is the WIDEST":
        lambda budget, count, widths: min(w for w in widths if count(w) <= budget),
    "you returned a parameter count: return the width":
        lambda budget, count, widths: max(count(w) for w in widths if count(w) <= budget),
    "you took the widest of all, ignoring the budget": lambda budget, count, widths: max(widths),
}


@checker("widest_within")
def check_widest_within(fn: Callable) -> None:
    """``fn(budget, n_params_of, widths) -> width``: the widest width whose model fits the budget."""
    name = "widest_within"
    quadratic = lambda w: 29 * w * w + 100 * w  # about how an encoder-decoder grows with its width
    cases = [
        ("the budget of the pointer task's GPT", 52_557, quadratic, [8, 16, 24, 32, 40, 44, 48]),
        ("widths given out of order", 52_557, quadratic, [48, 16, 40, 8, 24]),
        ("a budget exactly met", quadratic(32), quadratic, [16, 32, 48]),
    ]
    outputs = [call_learner(name, fn, budget, count, list(widths)) for _, budget, count, widths in cases]
    candidates = {d: [wrong(budget, count, list(widths)) for _, budget, count, widths in cases]
                  for d, wrong in _WIDEST_MISTAKES.items()}
    for at, ((case, budget, count, widths), got) in enumerate(zip(cases, outputs)):
        expected = reference_widest_within(budget, count, widths)
        named = None if got == expected else explain(outputs, candidates, same=lambda a, b: a == b, at=at)
        expect(
            got == expected, name, case,
            (f"It looks like {named}. " if named else "")
            + f"Expected {expected}, got {got}: among the widths whose parameter count is within the budget (a "
            "model at exactly the budget fits), the largest, whatever the order they come in",
        )
    report(name, len(cases))


def reference_verdict_as_written(baseline, method, higher_is_better: bool, min_effect: float) -> str:
    """The solution, as the notebook writes it."""
    sign = 1.0 if higher_is_better else -1.0
    gain = sign * (sum(method) / len(method) - sum(baseline) / len(baseline))
    if min(sign * m for m in method) > max(sign * b for b in baseline) and gain > min_effect:
        return "better"
    if max(sign * m for m in method) < min(sign * b for b in baseline) and -gain > min_effect:
        return "worse"
    return "no measurable effect"
