"""After a failed check in a learner's (non-strict) notebook: the learner's function stays reachable
as ``<name>_yours``, the original name runs the reference so the notebook goes on, the message says
which name holds which, a crash shows a short traceback pointing at the learner's line, and checking
a name that now holds the reference says so instead of reporting success."""

from __future__ import annotations

import pytest

from lib.core.claims import strict
from lib.exercises import ExerciseFailed
from lib.exercises.tokenization import check_merge_pair, reference_merge_pair


def merge_pair_overlapping(ids, pair, new_id):  # a wrong answer, no crash
    return [new_id if i + 1 < len(ids) and (x, ids[i + 1]) == pair else x for i, x in enumerate(ids)]


def merge_pair_crashing(ids, pair, new_id):
    out = []
    for i in range(len(ids)):
        out.append(ids[i + 1])  # the learner's bug: reads past the end
    return out


def _notebook(fn) -> dict:
    """A notebook-like namespace where the learner defined ``merge_pair``."""
    return {"__name__": "__main__", "check_merge_pair": check_merge_pair, "merge_pair": fn}


def test_learner_function_stays_callable_as_yours(capsys):
    namespace = _notebook(merge_pair_overlapping)
    with strict(False):
        exec("check_merge_pair(merge_pair)", namespace)
        exec("after = merge_pair([5, 5, 5], (5, 5), 9)", namespace)  # the next cell runs on the reference
    out = capsys.readouterr().out
    assert namespace["merge_pair"] is reference_merge_pair and namespace["after"] == [9, 5]
    assert namespace["merge_pair_yours"] is merge_pair_overlapping
    assert namespace["merge_pair_yours"]([5, 5, 5], (5, 5), 9) == [9, 9, 5]  # still callable, still the learner's
    assert "`merge_pair` now refers to the reference solution" in out
    assert "`merge_pair_yours` is YOUR version" in out


def test_a_crash_prints_a_short_traceback_at_the_learners_line(capsys):
    namespace = _notebook(merge_pair_crashing)
    with strict(False):
        exec("check_merge_pair(merge_pair)", namespace)
    out = capsys.readouterr().out
    assert "✗ merge_pair: your function raised IndexError" in out
    assert "Traceback" in out and "out.append(ids[i + 1])  # the learner's bug" in out
    assert "in merge_pair_crashing   <- your line" in out
    assert "lib/exercises/__init__.py" not in out  # the checker's own frames are left out
    assert namespace["merge_pair_yours"] is merge_pair_crashing
    # In strict mode the same traceback is part of the failure's message.
    with strict(), pytest.raises(ExerciseFailed, match=r"(?s)Traceback.*<- your line"):
        check_merge_pair(merge_pair_crashing)


def test_rechecking_a_name_bound_to_the_reference_does_not_report_success(capsys):
    namespace = _notebook(merge_pair_overlapping)
    with strict(False):
        exec("check_merge_pair(merge_pair)", namespace)
        capsys.readouterr()
        exec("check_merge_pair(merge_pair)", namespace)  # the learner runs the check cell again
    out = capsys.readouterr().out
    assert "checks passed" not in out and "holds the reference solution" in out and "merge_pair_yours" in out
    # Checking their kept version again fails again, and changes no binding.
    with strict(False):
        exec("check_merge_pair(merge_pair_yours)", namespace)
    out = capsys.readouterr().out
    assert "✗ merge_pair" in out and "`merge_pair_yours` is still your version" in out
    assert namespace["merge_pair"] is reference_merge_pair and namespace["merge_pair_yours"] is merge_pair_overlapping
    # Strict mode too: the reference passes silently and the note replaces the success line.
    with strict():
        check_merge_pair(reference_merge_pair)
    out = capsys.readouterr().out
    assert "checks passed" not in out and "holds the reference solution" in out


def test_a_fixed_function_is_checked_again(capsys):
    namespace = _notebook(merge_pair_overlapping)
    with strict(False):
        exec("check_merge_pair(merge_pair)", namespace)
        namespace["merge_pair"] = lambda ids, pair, new_id: reference_merge_pair(list(ids), pair, new_id)
        capsys.readouterr()
        exec("check_merge_pair(merge_pair)", namespace)
    assert "merge_pair: 6/6 checks passed" in capsys.readouterr().out
