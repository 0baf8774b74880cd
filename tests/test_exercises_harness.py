"""Each notebook-08 checker passes on a correct answer and fails on a stub and on a typical mistake."""

import pytest

from lib.exercises import ExerciseFailed, unwritten_exercise
from lib.exercises.harness import check_verdict, check_widest_within, reference_widest_within
from lib.core.stats import verdict


pytestmark = pytest.mark.usefixtures("strict_checkers")


stub = unwritten_exercise


def test_verdict_checker():
    check_verdict(verdict)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_verdict(stub)

    def by_means_only(base, method, higher, min_effect):  # the typical mistake: ignore the spread
        gain = (sum(method) / len(method) - sum(base) / len(base)) * (1 if higher else -1)
        return "better" if gain > min_effect else "worse" if -gain > min_effect else "no measurable effect"

    with pytest.raises(ExerciseFailed, match="overlapping"):
        check_verdict(by_means_only)


def test_widest_within_checker():
    check_widest_within(reference_widest_within)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_widest_within(stub)
    with pytest.raises(ExerciseFailed, match="out of order"):
        check_widest_within(lambda budget, count, widths: [w for w in widths if count(w) <= budget][-1])
    with pytest.raises(ExerciseFailed, match="exactly met"):
        check_widest_within(lambda budget, count, widths: max(w for w in widths if count(w) < budget))
    with pytest.raises(ValueError):
        reference_widest_within(10, lambda w: 100, [1, 2])
