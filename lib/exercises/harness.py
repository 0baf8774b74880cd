"""Checkers for notebook 08 (the comparison harness)."""

from __future__ import annotations

from typing import Callable

from lib.exercises import call_learner, checker, expect, report
from lib.core.stats import verdict as reference_verdict


def reference_widest_within(budget: int, n_params_of: Callable[[int], int], widths) -> int:
    fitting = [w for w in widths if n_params_of(w) <= budget]
    if not fitting:
        raise ValueError("no width fits the budget")
    return max(fitting)


@checker("verdict")
def check_verdict(fn: Callable) -> None:
    """``fn(baseline, method, higher_is_better, min_effect) -> "better" | "worse" | "no measurable effect"``."""
    name = "verdict"
    cases = [
        ("clearly better", [0.50, 0.52, 0.51], [0.90, 0.95, 0.93], True, 0.02),
        ("clearly worse", [0.50, 0.52, 0.51], [0.30, 0.31, 0.29], True, 0.02),
        ("a loss (lower is better) that went down", [2.10, 2.12, 2.11], [2.00, 2.01, 2.02], False, 0.01),
        ("overlapping seeds: one lucky seed is not an effect", [0.50, 0.52, 0.90], [0.85, 0.88, 0.86], True, 0.02),
        ("separated but tiny: below the smallest effect worth reporting", [1.000, 1.001, 1.002], [1.004, 1.005, 1.006], True, 0.01),
        ("equal", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], True, 0.0),
    ]
    for case, base, method, higher, min_effect in cases:
        expected = reference_verdict(base, method, higher, min_effect)
        got = call_learner(name, fn, list(base), list(method), higher, min_effect)
        expect(
            got == expected, name, f"{case} (baseline {base}, method {method})",
            f"expected {expected!r}, got {got!r}. 'better' needs EVERY seed of the method to beat EVERY seed of the "
            "baseline (in the task's direction) AND the means to differ by more than min_effect; 'worse' the same "
            "the other way; anything else is 'no measurable effect'",
        )
    report(name, len(cases))


@checker("widest_within")
def check_widest_within(fn: Callable) -> None:
    """``fn(budget, n_params_of, widths) -> width``: the widest width whose model fits the budget."""
    name = "widest_within"
    quadratic = lambda w: 29 * w * w + 100 * w  # about how an encoder-decoder grows with its width
    cases = [
        ("the budget of the pointer task's GPT", 52_557, quadratic, [8, 16, 24, 32, 40, 44, 48]),
        ("widths given out of order", 52_557, quadratic, [48, 8, 44, 40, 16]),
        ("a budget exactly met", quadratic(32), quadratic, [16, 32, 48]),
    ]
    for case, budget, count, widths in cases:
        got = call_learner(name, fn, budget, count, list(widths))
        expected = reference_widest_within(budget, count, widths)
        expect(
            got == expected, name, case,
            f"expected {expected}, got {got}: keep the widths whose parameter count is <= the budget (a model at "
            "exactly the budget fits) and return the largest of them, whatever the order they come in",
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
