"""The course's one verdict rule and its statistics: exact rank test, Holm, bad inputs."""

import math

import torch

import pytest

from lib.core.stats import check_values, compare, compare_table, holm, mean_and_spread, rank_test_p, verdict


def test_mean_and_spread():
    assert mean_and_spread([1.0, 3.0]) == pytest.approx((2.0, 2**0.5))
    assert mean_and_spread([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError, match="values needs at least 1"):
        mean_and_spread([])


def test_rank_test_exact_values():
    # Complete separation: 1 of C(6, 3) = 20 splits is as extreme; of C(10, 5) = 252 for 5 vs 5.
    assert rank_test_p([1, 2, 3], [4, 5, 6], True) == pytest.approx(1 / 20)
    assert rank_test_p(list(range(5)), list(range(5, 10)), True) == pytest.approx(1 / 252)
    # The wrong direction is the least extreme split of all.
    assert rank_test_p([1, 2, 3], [4, 5, 6], False) == pytest.approx(1.0)
    # Lower is better flips the direction.
    assert rank_test_p([4, 5, 6], [1, 2, 3], False) == pytest.approx(1 / 20)
    # All tied: every split has the same U, so p = 1.
    assert rank_test_p([1, 1, 1], [1, 1, 1], True) == pytest.approx(1.0)
    # One overlap among 3 vs 3: U = 8 of 9; splits with U >= 8: 2 of 20.
    assert rank_test_p([1, 2, 5], [4, 6, 7], True) == pytest.approx(2 / 20)


def test_verdict_needs_separation_minimum_effect_and_more_than_the_baseline_spread():
    assert verdict([0.1, 0.2, 0.15], [0.8, 0.9, 0.85], True, 0.02) == "better"
    assert verdict([0.1, 0.2, 0.15], [0.8, 0.9, 0.85], False, 0.02) == "worse"
    assert verdict([2.0, 2.1, 2.05], [1.8, 1.85, 1.9], False, 0.01) == "better"
    # Overlapping seeds: no verdict, however large the mean difference.
    assert verdict([0.1, 0.2, 0.9], [0.8, 0.9, 0.85], True, 0.02) == "no measurable effect"
    # Separated but below the minimum effect.
    assert verdict([1.000, 1.001, 1.002], [1.003, 1.004, 1.005], True, 0.01) == "no measurable effect"
    # Separated, above the minimum effect, but within the baseline's own spread (sd 0.21).
    assert verdict([0.2, 0.5, 0.6], [0.61, 0.62, 0.63], True, 0.02) == "no measurable effect"
    assert verdict([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], True, 0.0) == "no measurable effect"


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: verdict([1.0], [2.0, 3.0], True, 0.0), ValueError, "baseline needs at least 2"),
        (lambda: verdict([1.0, 2.0], [2.0], True, 0.0), ValueError, "method needs at least 2"),
        (lambda: verdict([1.0, 2.0], [2.0, 3.0], True, -1.0), ValueError, "min_effect"),
        (lambda: verdict([1.0, 2.0], [2.0, 3.0], True, float("nan")), ValueError, "min_effect"),
        (lambda: verdict([1.0, float("nan")], [2.0, 3.0], True, 0.0), ValueError, "baseline must hold finite"),
        (lambda: verdict([1.0, 2.0], [2.0, float("inf")], True, 0.0), ValueError, "method must hold finite"),
        (lambda: verdict([1.0, 2.0], [2.0, 3.0], "yes", 0.0), TypeError, "higher_is_better"),
        (lambda: verdict("12", [2.0, 3.0], True, 0.0), TypeError, "baseline must be a sequence"),
        (lambda: verdict([1.0, "2"], [2.0, 3.0], True, 0.0), TypeError, "baseline must hold numbers"),
        (lambda: verdict([1.0, True], [2.0, 3.0], True, 0.0), TypeError, "baseline must hold numbers"),
        (lambda: rank_test_p([1.0], [], True), ValueError, "method needs at least 1"),
        (lambda: rank_test_p(list(range(12)), list(range(12)), True), ValueError, "too many"),
        (lambda: holm([0.5, 1.5]), ValueError, "p_values must lie in"),
        (lambda: compare_table({"a": [1, 2]}, "baseline", True, 0.0), ValueError, "baseline 'baseline' is not"),
        (lambda: compare_table([1, 2], "baseline", True, 0.0), TypeError, "cells must map"),
    ],
)
def test_bad_inputs_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_holm():
    assert holm([]) == []
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.05] * 12) == pytest.approx([0.6] * 12)  # 3-seed separations do not survive 12 comparisons
    assert holm([0.9, 0.3]) == pytest.approx([0.9, 0.6])
    assert holm([0.04, 0.03]) == pytest.approx([0.06, 0.06])  # monotone in the sorted order
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_compare_and_table():
    c = compare([0.5, 0.51, 0.52], [0.9, 0.91, 0.92], True, 0.02)
    # two-sided: complete separation of 3 seeds against 3 is 2/20, whichever way it goes
    assert c.verdict == "better" and c.difference == pytest.approx(0.4) and c.p_value == pytest.approx(0.1)
    worse = compare([0.5, 0.51, 0.52], [0.1, 0.11, 0.12], True, 0.02)
    assert worse.verdict == "worse" and worse.p_value == pytest.approx(0.1)
    assert compare(list(range(5)), [x + 10 for x in range(5)], True, 0.0).p_value == pytest.approx(2 / 252)
    assert compare(list(range(7)), [x + 10 for x in range(7)], False, 0.0).p_value == pytest.approx(2 / 3432)
    assert compare([1, 2, 3], [1, 2, 3], True, 0.0).p_value == 1.0  # capped
    table = compare_table({"baseline": [1, 2, 3], "a": [4, 5, 6], "b": [7, 8, 9]}, "baseline", True, 0.0)
    assert set(table) == {"a", "b"} and table["a"]["p_holm"] == pytest.approx(0.2)
    assert check_values((1, 2.5)) == [1.0, 2.5] and not math.isnan(check_values([0])[0])


def test_rank_correlation_reads_orderings_not_values():
    from lib.core.stats import rank_correlation

    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 2, 3, 4], [5, 5, 5, 5]) == 0.0  # a constant predicts no order
    assert rank_correlation([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)  # ties share their mean rank
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(2000, generator=gen).tolist(), torch.rand(2000, generator=gen).tolist()
    assert abs(rank_correlation(a, b)) < 0.06  # independent draws: near 0
    with pytest.raises(ValueError, match="equally long"):
        rank_correlation([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="a needs at least 2"):
        rank_correlation([1], [1])


def test_rank_test_p_equals_counting_wins_over_every_split():
    # The p-value sums ranks per split; the definition counts the pairs each split wins (ties half).
    import random
    from itertools import combinations

    from lib.core.stats import rank_test_p

    def by_definition(baseline, method, higher):
        sign = 1.0 if higher else -1.0
        pooled = [sign * x for x in method + baseline]

        def u(idx):
            rest = [pooled[i] for i in range(len(pooled)) if i not in idx]
            return sum(1.0 if pooled[i] > y else 0.5 if pooled[i] == y else 0.0 for i in idx for y in rest)

        observed = u(tuple(range(len(method))))
        splits = list(combinations(range(len(pooled)), len(method)))
        return sum(u(idx) >= observed - 1e-12 for idx in splits) / len(splits)

    rng = random.Random(3)
    for _ in range(40):
        n_b, n_m = rng.randint(2, 6), rng.randint(2, 6)
        draw = (lambda: rng.choice([0.0, 0.5, 1.0, 1.5])) if rng.random() < 0.5 else rng.random  # with ties, or without
        b, m = [draw() for _ in range(n_b)], [draw() for _ in range(n_m)]
        for higher in (True, False):
            assert rank_test_p(b, m, higher) == by_definition(b, m, higher)
