"""Claims a learner can explore: a notebook states what its numbers show, and this module checks it.

A notebook's prose says "dense tokens solve 3 hops" and a cell proves it. With a bare ``assert``,
a learner who changes a seed or a step count to explore gets a traceback and a dead notebook. With
:func:`claim`, the same check prints one line, ✓ or ✗, with the numbers behind it, and the notebook
goes on; only in *strict* mode (CI, nbval, the tests) does a false claim raise, so that a stored
notebook whose claims stopped holding still fails loudly.

Strict mode is on when the environment variable ``COURSE_STRICT`` is ``"1"`` (``make test`` and
``make execute`` set it), or inside a :func:`strict` block.

    claim(acc_dense > acc_pause + 0.3, "dense tokens beat pause tokens on 3 hops",
          dense=acc_dense, pause=acc_pause)
    ✓ dense tokens beat pause tokens on 3 hops (dense=0.998, pause=0.351)
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Iterator

STRICT_ENV = "COURSE_STRICT"
_forced: list[bool] = []  # a stack, so that strict() blocks nest and always restore


class ClaimFailed(AssertionError):
    """A notebook claim that the numbers did not support (raised in strict mode only)."""


def is_strict() -> bool:
    """True when a false claim should raise: inside :func:`strict`, or with ``COURSE_STRICT=1``."""
    if _forced:
        return _forced[-1]
    return os.environ.get(STRICT_ENV, "").strip() == "1"


@contextlib.contextmanager
def strict(on: bool = True) -> Iterator[None]:
    """Force strict mode on (or off) inside the block, whatever the environment says."""
    if not isinstance(on, bool):
        raise TypeError(f"on must be a bool, got {on!r}")
    _forced.append(on)
    try:
        yield
    finally:
        _forced.pop()


def _format_number(value: object) -> str:
    # Plain Python and numpy scalars, tensors of one element: three decimals, so stored outputs
    # read the same on every machine that computes the same numbers to that precision.
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            return repr(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}" if math.isfinite(value) else str(value)
    return str(value)


def claim(holds: object, statement: str, **numbers: object) -> bool:
    """Print ``✓ statement (numbers)`` when ``holds`` is true, ``✗ ...`` when it is not; return it.

    In strict mode a false claim raises :class:`ClaimFailed` with the same line. ``holds`` must be
    a bool (numpy and one-element torch booleans are accepted); anything else is refused, because
    ``claim(tensor_of_many, ...)`` or ``claim("yes", ...)`` would read as true by accident.
    """
    if hasattr(holds, "item") and callable(holds.item) and getattr(holds, "ndim", 0) == 0:
        holds = holds.item()
    if not isinstance(holds, bool):
        raise TypeError(f"holds must be a bool (the claim's condition), got {type(holds).__name__}")
    if not isinstance(statement, str) or not statement.strip():
        raise ValueError(f"statement must be a non-empty str, got {statement!r}")
    details = ", ".join(f"{name}={_format_number(value)}" for name, value in numbers.items())
    line = f"{'✓' if holds else '✗'} {statement}" + (f" ({details})" if details else "")
    if not holds and is_strict():
        raise ClaimFailed(line)
    print(line if holds else line + "  <- the numbers do not support this claim in this run")
    return holds
