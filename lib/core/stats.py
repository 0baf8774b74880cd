"""Comparing two methods over a handful of seeds: the course's one verdict rule.

Every comparison in notebooks 05-08 and in :mod:`lib.experiments.harness` goes through this module, so a
"better" means the same thing everywhere:

- :func:`mean_and_spread`: the mean and the sample standard deviation of the per-seed numbers;
- :func:`rank_test_p`: the exact one-sided rank test (Mann-Whitney U, every relabelling of the
  seeds enumerated, no normal approximation). With 3 seeds a side its smallest possible p-value is
  1/20 = 0.05, with 5 seeds 1/252 ~ 0.004: that is what a handful of seeds can say;
- :func:`verdict`: ``"better"`` or ``"worse"`` only when **every** seed of one side beats **every**
  seed of the other (complete separation) **and** the means differ by more than both the stated
  minimum effect and the baseline's own spread (its sd over seeds); otherwise
  ``"no measurable effect"``. The second condition keeps a tiny but lucky separation, smaller than
  the noise between two seeds of the same method, from being called an effect;
- :func:`holm`: the Holm-Bonferroni adjustment of a table's p-values, reported beside the verdicts
  so that a reader sees how many comparisons were made (Holm 1979: step-down, controls the
  family-wise error, never less powerful than Bonferroni);
- :func:`compare` and :func:`compare_table`: all of the above for one pair, or for a whole table.

Inputs are checked: a NaN or an infinity would make every comparison silently false, so it is
refused with a message naming the argument.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Mapping, Sequence

VERDICTS: tuple[str, ...] = ("better", "worse", "no measurable effect")


def check_values(values: Sequence[float], name: str = "values", min_len: int = 1) -> list[float]:
    """``values`` as a list of finite floats, at least ``min_len`` of them; raises naming ``name``."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__float__"):
            raise TypeError(f"{name} must hold numbers, got {v!r}")
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"{name} must hold finite numbers, got {f}")
        out.append(f)
    if len(out) < min_len:
        raise ValueError(f"{name} needs at least {min_len} value(s), got {len(out)}")
    return out


def _check_flag(higher_is_better) -> None:
    if not isinstance(higher_is_better, bool):
        raise TypeError(f"higher_is_better must be a bool, got {higher_is_better!r}")


def _check_min_effect(min_effect) -> float:
    if isinstance(min_effect, bool) or not isinstance(min_effect, (int, float)):
        raise TypeError(f"min_effect must be a number, got {min_effect!r}")
    if not math.isfinite(min_effect) or min_effect < 0:
        raise ValueError(f"min_effect must be a finite number >= 0, got {min_effect}")
    return float(min_effect)


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof = 1``; 0 for a single value)."""
    v = check_values(values, "values")
    mean = sum(v) / len(v)
    if len(v) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1))


def rank_test_p(baseline: Sequence[float], method: Sequence[float], higher_is_better: bool) -> float:
    """Exact one-sided p-value that ``method`` beats ``baseline`` (Mann-Whitney U).

    U counts the (method seed, baseline seed) pairs the method wins, a tie counting one half. The
    p-value is the fraction of all ways to split the pooled numbers into groups of these sizes
    whose U is at least the observed one: under "no difference" every split is equally likely.
    Complete separation of 3 vs 3 seeds gives 1/20; of 5 vs 5, 1/252.
    """
    b = check_values(baseline, "baseline")
    m = check_values(method, "method")
    _check_flag(higher_is_better)
    sign = 1.0 if higher_is_better else -1.0
    # U of a split is the sum of its members' ranks in the pooled values (ties sharing their mean
    # rank) less m(m+1)/2: the same count of wins and half-ties, in one sum per split. Ranks are
    # whole or half numbers, so the sums are exact.
    ranks = _ranks([sign * x for x in m + b])
    splits = combinations(ranks, len(m))
    n_splits = math.comb(len(ranks), len(m))
    if n_splits > 200_000:
        raise ValueError(f"{len(m)} + {len(b)} seeds give {n_splits} splits: too many to enumerate exactly")
    observed = sum(ranks[: len(m)])
    at_least = sum(1 for idx in splits if sum(idx) >= observed)
    return at_least / n_splits


def verdict(baseline: Sequence[float], method: Sequence[float], higher_is_better: bool, min_effect: float) -> str:
    """``"better"``, ``"worse"`` or ``"no measurable effect"`` for ``method`` against ``baseline``.

    Better: every seed of the method beats every seed of the baseline, and the difference of means
    exceeds both ``min_effect`` and the baseline's sd. Worse: the same the other way round.
    """
    b = check_values(baseline, "baseline", min_len=2)
    m = check_values(method, "method", min_len=2)
    _check_flag(higher_is_better)
    threshold = max(_check_min_effect(min_effect), mean_and_spread(b)[1])
    sign = 1.0 if higher_is_better else -1.0
    gain = sign * (mean_and_spread(m)[0] - mean_and_spread(b)[0])
    if min(sign * x for x in m) > max(sign * x for x in b) and gain > threshold:
        return "better"
    if max(sign * x for x in m) < min(sign * x for x in b) and -gain > threshold:
        return "worse"
    return "no measurable effect"


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given: the k-th smallest is multiplied by (n - k + 1),
    made non-decreasing along the sorted order, and capped at 1."""
    p = check_values(p_values, "p_values", min_len=0)
    if any(not 0.0 <= x <= 1.0 for x in p):
        raise ValueError(f"p_values must lie in [0, 1], got {p}")
    order = sorted(range(len(p)), key=lambda i: p[i])
    adjusted = [0.0] * len(p)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - k) * p[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Comparison:
    """One method against its baseline on one task."""

    baseline_mean: float
    baseline_sd: float
    method_mean: float
    method_sd: float
    difference: float  # method mean - baseline mean, in the task's own units
    p_value: float  # two-sided: the direction is not chosen after seeing which way the method moved
    verdict: str
    n_baseline: int
    n_method: int

    def to_dict(self) -> dict:
        return asdict(self)


def compare(baseline: Sequence[float], method: Sequence[float], higher_is_better: bool, min_effect: float) -> Comparison:
    """Means, spreads, the difference, the two-sided rank test, and the verdict.

    Two-sided: testing in whichever direction the means happened to move would double the error
    rate the p-value claims. Complete separation of 5 seeds against 5 gives 2/252 = 0.008 (so at
    most 6 such comparisons survive Holm at 0.05); of 7 against 7, 2/3432 = 0.0006."""
    b = check_values(baseline, "baseline", min_len=2)
    m = check_values(method, "method", min_len=2)
    v = verdict(b, m, higher_is_better, min_effect)
    (bm, bs), (mm, ms) = mean_and_spread(b), mean_and_spread(m)
    p = min(1.0, 2.0 * min(rank_test_p(b, m, higher_is_better), rank_test_p(b, m, not higher_is_better)))
    return Comparison(bm, bs, mm, ms, mm - bm, p, v, len(b), len(m))


def compare_table(
    cells: Mapping[str, Sequence[float]], baseline: str, higher_is_better: bool, min_effect: float
) -> dict[str, dict]:
    """Every cell of ``cells`` (name -> per-seed values) against ``cells[baseline]``; each entry is a
    :class:`Comparison` as a dict plus ``p_holm``, the p-value adjusted over the table's comparisons."""
    if not isinstance(cells, Mapping):
        raise TypeError(f"cells must map names to per-seed values, got {type(cells).__name__}")
    if baseline not in cells:
        raise ValueError(f"baseline {baseline!r} is not among the cells {sorted(cells)}")
    names = [k for k in cells if k != baseline]
    rows = {k: compare(cells[baseline], cells[k], higher_is_better, min_effect).to_dict() for k in names}
    for k, adj in zip(names, holm([rows[k]["p_value"] for k in names])):
        rows[k]["p_holm"] = adj
    return rows


def _ranks(v: list[float]) -> list[float]:
    """Ranks 1..n, tied values sharing their mean rank."""
    order = sorted(range(len(v)), key=lambda i: v[i])
    ranks = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def rank_correlation(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long sequences (ties share their mean rank); 0
    when either is constant, since then no ordering is predicted."""
    x, y = check_values(a, "a", min_len=2), check_values(b, "b", min_len=2)
    if len(x) != len(y):
        raise ValueError(f"a and b must be equally long, got {len(x)} and {len(y)}")
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((p - mx) * (q - my) for p, q in zip(rx, ry))
    sxx, syy = sum((p - mx) ** 2 for p in rx), sum((q - my) ** 2 for q in ry)
    return 0.0 if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


__all__ = ["VERDICTS", "Comparison", "check_values", "compare", "compare_table", "holm", "mean_and_spread",
           "rank_correlation", "rank_test_p", "verdict"]
