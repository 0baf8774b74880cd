"""Exercise checkers: each ``lib/exercises/<topic>.py`` tests a learner's function against ours.

The convention (see CONTRIBUTING.md): a checker runs hand-picked cases and prints one line when all
pass. When a case fails it names the case, the first mismatch, the largest difference and a pointed
hint (naming the typical mistake when the answer matches one), and then:

- in *strict* mode (``COURSE_STRICT=1``: ``make test``, ``make execute``, the tests) it raises
  :class:`ExerciseFailed`, so a broken solution cannot pass CI;
- otherwise (a learner in JupyterLab) it prints ``✗ ...`` with the hint (a crash with a short
  traceback pointing at the learner's line), keeps the learner's function as ``<name>_yours`` and
  rebinds ``<name>``, in the notebook, to the reference solution, so that Run All reaches the end and
  the cells below show what they would show with a correct answer. Fix the function and run the cell
  again: the ``def`` rebinds the name to your version and the check runs on it. A check run on a
  name that holds the reference says so (it never reports the reference's success as yours).

Every checker is wrapped by :func:`checker`, which knows each exercise's reference through
:mod:`lib.exercises.catalog`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import os
import sys
import traceback
from typing import Any, Callable

import torch

from lib.core.claims import is_strict


class ExerciseFailed(AssertionError):
    """Raised by a checker when the learner's function gives a wrong answer (or none)."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_LIB_DIR = os.path.dirname(_PACKAGE_DIR)


def _is_library_frame(filename: str) -> bool:
    path = os.path.abspath(filename) if not filename.startswith("<") else filename
    return "site-packages" in path or "dist-packages" in path or path.startswith(_LIB_DIR + os.sep) or path.startswith("<frozen")


def short_traceback(exc: BaseException, limit: int = 3) -> str:
    """The traceback of ``exc`` cut down to the learner's own frames (the last ``limit`` of them),
    plus the library frame that raised, if the error came from inside a library call: a learner
    sees their line, not twenty frames of torch."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR + os.sep)]
    if not frames:
        return f"{type(exc).__name__}: {exc}"
    yours = [i for i, f in enumerate(frames) if not _is_library_frame(f.filename)]
    keep = [frames[i] for i in yours[-limit:]]
    if not keep or frames[-1] is not keep[-1]:
        keep.append(frames[-1])
    lines = ["Traceback (most recent call last; your code only, plus the call that raised):"]
    for f in keep:
        mark = "   <- your line" if yours and f is frames[yours[-1]] else ""
        lines.append(f'  File "{f.filename}", line {f.lineno}, in {f.name}{mark}')
        if f.line:
            lines.append(f"    {f.line.strip()}")
    lines.append(f"{type(exc).__name__}: {exc}")
    return "\n".join(lines)


def call_learner(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function, turning an unfinished or crashing exercise into a clear failure.

    A crash becomes an :class:`ExerciseFailed` whose message holds a short traceback pointing at the
    learner's line (the full one stays chained). ``TypeError`` when ``fn`` is not callable (a misuse
    of the checker, not a wrong answer).
    """
    if not callable(fn):
        raise TypeError(f"{name}: expected a function, got {type(fn).__name__}")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise ExerciseFailed(f"{name}: not written yet ({exc or 'NotImplementedError'})") from exc
    except ExerciseFailed:
        raise
    except Exception as exc:  # the learner's code crashed: say where, keep the traceback chained
        raise ExerciseFailed(
            f"{name}: your function raised {type(exc).__name__}: {exc}\n{short_traceback(exc)}\n"
            "Hint: run it by hand on a small input (the docstring gives the shapes) and read the line marked above."
        ) from exc


def expect_unchanged(before: Any, after: Any, name: str, case: str, what: str) -> None:
    """Fail, naming the mistake, when an input the docstring promises not to modify was changed in place."""
    if isinstance(before, torch.Tensor):
        same = isinstance(after, torch.Tensor) and before.shape == after.shape and torch.equal(before, after.detach())
    else:
        same = before == after
    expect(same, name, case,
           f"it looks like your function changed `{what}` in place: the docstring says the input is not modified. "
           "Build and return a new object instead of writing into the one you were given")


def explain(outputs: list, candidates: dict[str, list], same: Callable[[Any, Any], bool] | None = None,
            at: int | None = None) -> str | None:
    """The first typical mistake (description -> its outputs on every case) that reproduces the
    learner's ``outputs`` on EVERY case; failing that, the only one that reproduces case ``at`` (the
    failing case). A mistake that merely coincides with another on one case is not named."""
    same = same or (lambda a, b: _matches(a, b, 1e-5))
    for description, theirs in candidates.items():
        if len(theirs) == len(outputs) and all(same(a, b) for a, b in zip(outputs, theirs)):
            return description
    if at is not None:
        hits = [d for d, theirs in candidates.items() if at < len(theirs) and same(outputs[at], theirs[at])]
        if len(hits) == 1:
            return hits[0]
    return None


def expect(condition: bool, name: str, case: str, hint: str) -> None:
    """Fail with a message naming the exercise, the case and a hint, unless ``condition`` holds."""
    if not condition:
        raise ExerciseFailed(f"{name}: wrong on {case}.\nHint: {hint}")


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def describe_mismatch(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> str:
    """'first mismatch at index (..): yours .., expected ..; largest difference .. at (..)'."""
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    both_inf = torch.isinf(a) & torch.isinf(e) & (torch.sign(a) == torch.sign(e))
    both_nan = torch.isnan(a) & torch.isnan(e)
    diff = torch.where(both_inf | both_nan, torch.zeros_like(a), (a - e).abs())
    diff = torch.nan_to_num(diff, nan=float("inf"))
    bad = diff > atol
    if not bad.any():
        return "no mismatch"
    first = tuple(int(i) for i in bad.nonzero()[0].tolist())
    worst = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape)) if diff.ndim else ()
    largest = diff[worst].item() if diff.ndim else diff.item()
    n_bad, n = int(bad.sum()), bad.numel()
    return (
        f"first mismatch at index {first}: yours {_fmt(a[first].item())}, expected {_fmt(e[first].item())}; "
        f"largest difference {_fmt(largest)} at {worst}; {n_bad} of {n} entries differ"
    )


def _matches(actual: Any, candidate: Any, atol: float) -> bool:
    if isinstance(candidate, torch.Tensor):
        return (
            isinstance(actual, torch.Tensor)
            and tuple(actual.shape) == tuple(candidate.shape)
            and torch.allclose(actual.detach().double().cpu(), candidate.detach().double().cpu(), atol=atol, rtol=0, equal_nan=True)
        )
    try:
        return bool(actual == candidate)
    except Exception:
        return False


def diagnose(actual: Any, mistakes: dict[str, Any] | None, atol: float = 1e-5) -> str | None:
    """The description of the first typical mistake whose output ``actual`` reproduces, if any."""
    for description, wrong_output in (mistakes or {}).items():
        if _matches(actual, wrong_output, atol):
            return description
    return None


def expect_close(
    actual: Any,
    expected: torch.Tensor,
    name: str,
    case: str,
    hint: str,
    atol: float = 1e-5,
    mistakes: dict[str, Any] | None = None,
) -> None:
    """Like :func:`expect` for tensors: checks type, shape and values (within ``atol``).

    On a value mismatch the message gives the first mismatching index and the largest difference;
    ``mistakes`` maps a description ("you forgot the 1/sqrt(d_head) scale") to the output that
    mistake produces: if the learner's output matches one, the hint names it.
    """
    expect(isinstance(actual, torch.Tensor), name, case, f"return a torch.Tensor, not {type(actual).__name__}")
    expect(
        tuple(actual.shape) == tuple(expected.shape),
        name,
        case,
        f"the shape should be {tuple(expected.shape)}, yours is {tuple(actual.shape)}. {hint}",
    )
    if actual.is_floating_point() != expected.is_floating_point() and not expected.is_floating_point():
        expect(False, name, case, f"return integers (dtype {expected.dtype}), not {actual.dtype}. {hint}")
    ok = torch.allclose(actual.detach().double().cpu(), expected.detach().double().cpu(), atol=atol, rtol=0, equal_nan=True)
    if not ok:
        found = diagnose(actual, mistakes, atol)
        where = describe_mismatch(actual, expected, atol)
        lead = f"it looks like {found}. " if found else ""
        if lead:
            hint = hint[:1].upper() + hint[1:]
        raise ExerciseFailed(f"{name}: wrong on {case}: {where}.\nHint: {lead}{hint}")


def report(name: str, n_passed: int) -> None:
    """Print the success line every checker ends with."""
    print(f"{name}: {n_passed}/{n_passed} checks passed")


# ----------------------------------------------------------------------------- strict / learner mode
def resolve_reference(spec: str) -> Callable:
    """``"lib.core.bpe:merge_pair"`` -> the function ``merge_pair`` of module ``lib.core.bpe``."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"a reference must read 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module), attr)


def _notebook_globals() -> dict | None:
    """The globals of the innermost frame outside this package: the notebook cell's namespace."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("lib."):
        frame = frame.f_back
    return None if frame is None else frame.f_globals


def _reference_of(function: str) -> Callable | None:
    from lib.exercises.catalog import EXERCISES

    info = EXERCISES.get(function)
    return None if info is None else resolve_reference(info.reference)


def fall_back_to_reference(fn: Any, function: str, failure: ExerciseFailed) -> bool:
    """Print the failure as a learner sees it; if the caller's name ``function`` holds ``fn``, keep
    ``fn`` reachable as ``<function>_yours`` and rebind ``function`` to the reference, so the cells
    below run (nothing but these two names is ever written). Returns whether the name was rebound."""
    from lib.exercises.catalog import EXERCISES

    info = EXERCISES.get(function)
    print(f"✗ {failure}")
    if info is None:
        return False
    namespace = _notebook_globals()
    yours = f"{function}_yours"
    if namespace is not None and namespace.get(function) is fn:
        namespace[yours] = fn
        namespace[function] = resolve_reference(info.reference)
        print(
            f"→ `{function}` now refers to the reference solution, so the cells below run as intended.\n"
            f"→ `{yours}` is YOUR version, kept as you wrote it: call it by hand to see what it does.\n"
            f"→ To check your code again, fix the function and run this cell again (its `def` binds `{function}` "
            f"to your code once more). To move on for good: `{info.import_line}`."
        )
        return True
    if namespace is not None and namespace.get(yours) is fn:
        print(f"→ `{yours}` is still your version and `{function}` still the reference solution; fix your code, "
              f"define `{function}` again and rerun its check.")
    else:
        print(f"→ nothing was rebound; to move on with the reference solution: `{info.import_line}`")
    return False


def _say_it_is_the_reference(function: str) -> None:
    namespace = _notebook_globals()
    yours = f"{function}_yours"
    kept = namespace is not None and callable(namespace.get(yours))
    print(
        f"↺ {function}: this name holds the reference solution, not your code, so this check says nothing about "
        "your version (no checks were counted). "
        + (f"Your version is `{yours}`: fix it, run its `def` again (which binds `{function}` to your code) "
           "and rerun this check." if kept else
           f"Define `{function}` yourself (run its cell) to check your own code.")
    )


def checker(function: str) -> Callable[[Callable], Callable]:
    """Wrap a ``check_...(fn, ...)`` function: strict mode raises, learner mode falls back.

    ``function`` is the exercise's name in :data:`lib.exercises.catalog.EXERCISES` (the name the
    notebook defines). Errors the checker itself hits while comparing an unexpected return value
    (a ``TypeError`` from ``list(None)``...) are reported as a failure of the exercise too. Called on
    the reference solution itself (a name the fall-back rebound, or the "move on" import), the
    checker runs its cases silently and says that the name holds the reference, not "checks passed".
    """

    def wrap(check: Callable) -> Callable:
        @functools.wraps(check)
        def run(fn: Any, *args: Any, **kwargs: Any) -> None:
            if not callable(fn):
                raise TypeError(f"{check.__name__}: expected the function to check, got {type(fn).__name__}")
            is_reference = fn is _reference_of(function)
            try:
                try:
                    if is_reference:
                        with contextlib.redirect_stdout(io.StringIO()):
                            check(fn, *args, **kwargs)
                    else:
                        check(fn, *args, **kwargs)
                except ExerciseFailed:
                    raise
                except (TypeError, ValueError, IndexError, RuntimeError, AttributeError, KeyError) as exc:
                    raise ExerciseFailed(
                        f"{function}: the result could not be compared with the expected one "
                        f"({type(exc).__name__}: {exc}).\nHint: check the type and shape your function returns "
                        "against its docstring."
                    ) from exc
            except ExerciseFailed as failure:
                if is_strict():
                    raise
                fall_back_to_reference(fn, function, failure)
                return
            if is_reference:
                _say_it_is_the_reference(function)

        run.exercise = function
        return run

    return wrap


def unwritten_exercise(*args: Any, **kwargs: Any) -> Any:
    """What an exercise cell holds before the learner writes it (the learner copies' stubs): raise."""
    raise NotImplementedError("Exercise")


def random_tiny_gpt(d_vocab: int = 8, n_ctx: int = 10, scale: float = 0.4):
    """A 1-layer GPT (d_model 12) with large random weights (normal, sd ``scale``) and seed 0, in eval
    mode: checkers run a learner's function and ours on it, and large weights make a wrong pass
    give visibly wrong numbers."""
    from lib.core.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(d_vocab=d_vocab, n_ctx=n_ctx, d_model=12, n_layers=1, n_heads=2, d_head=6, d_mlp=24))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, scale)
    return model.eval()
