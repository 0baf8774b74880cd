"""What every mistake bank (tests/test_mistake_bank_*.py) asserts of its entries: each typical
mistake is rejected in strict mode, by a message that starts with the function's name and names
the mistake (an "it looks like ..." line), not only the exercise's generic recipe."""

from __future__ import annotations

import re

import pytest

from lib.core.claims import strict
from lib.exercises import ExerciseFailed


def bank_ids(bank: list[tuple]) -> list[str]:
    return [f"{e[0]}-{getattr(e[2], '__name__', 'lambda')}-{i}" for i, e in enumerate(bank)]


def assert_enough_mistakes(bank: list[tuple], exercises: list[str], at_least: int = 3) -> None:
    counts = {name: sum(1 for e in bank if e[0] == name) for name in exercises}
    assert all(n >= at_least for n in counts.values()), counts


def assert_rejected_and_named(exercise: str, check, wrong, named: str) -> None:
    with strict(), pytest.raises(ExerciseFailed) as failure:
        check(wrong)
    message = str(failure.value)
    assert message.startswith(exercise + ":"), message  # the function's name, not a short label
    assert re.search("it looks like", message, re.IGNORECASE), f"generic feedback only:\n{message}"
    assert named in message, message
