"""Exercise checkers: each ``lib/exercises/<topic>.py`` tests a learner's function against ours.

The convention (see CONTRIBUTING.md): a checker runs hand-picked cases, prints one line when all
pass, and raises :class:`ExerciseFailed` with a pointed hint on the first case that fails.
"""

from __future__ import annotations

from typing import Any, Callable

import torch


class ExerciseFailed(AssertionError):
    """Raised by a checker when the learner's function gives a wrong answer (or none)."""


def call_learner(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function, turning an unfinished exercise into a clear failure."""
    if not callable(fn):
        raise TypeError(f"{name}: expected a function, got {type(fn).__name__}")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise ExerciseFailed(f"{name}: not written yet ({exc or 'NotImplementedError'})") from exc


def expect(condition: bool, name: str, case: str, hint: str) -> None:
    """Fail with a message naming the exercise, the case and a hint, unless ``condition`` holds."""
    if not condition:
        raise ExerciseFailed(f"{name}: wrong on {case}.\nHint: {hint}")


def expect_close(
    actual: Any, expected: torch.Tensor, name: str, case: str, hint: str, atol: float = 1e-5
) -> None:
    """Like :func:`expect` for tensors: checks type, shape and values (within ``atol``)."""
    expect(isinstance(actual, torch.Tensor), name, case, f"return a torch.Tensor, not {type(actual).__name__}")
    expect(
        tuple(actual.shape) == tuple(expected.shape),
        name,
        case,
        f"the shape should be {tuple(expected.shape)}, yours is {tuple(actual.shape)}. {hint}",
    )
    ok = torch.allclose(actual.double(), expected.double(), atol=atol, rtol=0, equal_nan=True)
    expect(ok, name, case, hint)


def report(name: str, n_passed: int) -> None:
    """Print the success line every checker ends with."""
    print(f"{name}: {n_passed}/{n_passed} checks passed")
