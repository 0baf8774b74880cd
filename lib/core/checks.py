"""Argument checks with one convention, for every module of the course.

- ``TypeError`` when the *kind* of a value is wrong: a string where a count goes, a float tensor
  where token ids go, a bool where an int goes (``True`` is an ``int`` to Python, never a count here);
- ``ValueError`` when the kind is right but the *value* is not: a shape, a range, a NaN, an
  unknown choice, an empty input.

Every message starts with the argument's name, so a learner knows which argument to fix without
reading a traceback. Each check returns the value it accepted (converted where that is safe:
``check_float`` returns a ``float``), so a caller can write ``lr = check_float(lr, "lr", positive=True)``.

:func:`eval_mode` is the one way the course switches a model to eval mode for a while: it puts the
model back in the mode it found it in when the block ends, also when the block raises.
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch
from torch import Tensor

INT_DTYPES: tuple[torch.dtype, ...] = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _got(value: Any) -> str:
    """A short description of a rejected value for messages."""
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_type(value: Any, name: str, types: type | tuple[type, ...], *, allow_none: bool = False) -> Any:
    """``value`` if it is an instance of ``types`` (or ``None`` when allowed); TypeError otherwise."""
    if value is None and allow_none:
        return value
    if not isinstance(value, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise TypeError(f"{name} must be a {names}{' or None' if allow_none else ''}, got {type(value).__name__} {_got(value)}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a real bool (``0``/``1``/``"yes"`` are refused: they hide typos)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {_got(value)}")
    return value


def check_int(
    value: Any, name: str, *, min: int | None = None, max: int | None = None, allow_none: bool = False
) -> int | None:
    """``value`` as an int in ``[min, max]``. Bools, floats (even ``2.0``) and strings are a TypeError;
    an int outside the range is a ValueError. ``allow_none`` lets ``None`` through (an "off" switch)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int{' or None' if allow_none else ''}, got {type(value).__name__} {_got(value)}")
    value = int(value)
    if min is not None and value < min:
        raise ValueError(f"{name} must be >= {min}, got {value}")
    if max is not None and value > max:
        raise ValueError(f"{name} must be <= {max}, got {value}")
    return value


def check_float(
    value: Any,
    name: str,
    *,
    min: float | None = None,
    max: float | None = None,
    positive: bool = False,
    finite: bool = True,
    allow_none: bool = False,
) -> float | None:
    """``value`` as a float: a real number (bools and strings are a TypeError), finite unless
    ``finite=False``, ``> 0`` if ``positive``, within ``[min, max]``; ValueError otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, Tensor) and value.numel() == 1 and value.is_floating_point():
            value = float(value)
        else:
            raise TypeError(f"{name} must be a number{' or None' if allow_none else ''}, got {type(value).__name__} {_got(value)}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if min is not None and value < min:
        raise ValueError(f"{name} must be >= {min}, got {value}")
    if max is not None and value > max:
        raise ValueError(f"{name} must be <= {max}, got {value}")
    return value


def check_prob(value: Any, name: str, *, allow_zero: bool = True, allow_one: bool = True) -> float:
    """``value`` as a probability in ``[0, 1]`` (either end excluded on request)."""
    p = check_float(value, name, min=0.0, max=1.0)
    if (p == 0.0 and not allow_zero) or (p == 1.0 and not allow_one):
        lo, hi = ("[" if allow_zero else "("), ("]" if allow_one else ")")
        raise ValueError(f"{name} must lie in {lo}0, 1{hi}, got {p}")
    return p


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices`` (compared with ``==``, type included: ``1 != True``)."""
    options = tuple(choices)
    for option in options:
        if type(value) is type(option) and value == option:
            return value
        if value is None and option is None:
            return value
    shown = ", ".join(repr(c) for c in options)
    raise ValueError(f"{name} must be one of {shown}; got {_got(value)}")


def check_str(value: Any, name: str, *, nonempty: bool = True) -> str:
    """``value`` if it is a str (non-empty unless ``nonempty=False``)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__} {_got(value)}")
    if nonempty and not value:
        raise ValueError(f"{name} must not be empty")
    return value


def check_tensor(
    x: Any,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    shape: Sequence[int | None] | None = None,
    dtype: str | torch.dtype | None = None,
    finite: bool = False,
    nonempty: bool = False,
) -> Tensor:
    """``x`` if it is a tensor of the wanted kind.

    ``dtype``: ``"float"`` (any floating dtype), ``"int"`` (any integer dtype, bool excluded),
    ``"bool"``, or an exact ``torch.dtype`` (TypeError otherwise). ``ndim`` or ``shape`` (``None``
    entries match any size), ``nonempty`` and ``finite`` (no NaN or inf) give a ValueError.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__} {_got(x)}")
    if dtype is not None:
        if isinstance(dtype, str):
            kinds = {"float": x.is_floating_point(), "int": x.dtype in INT_DTYPES, "bool": x.dtype == torch.bool}
            if dtype not in kinds:
                raise ValueError(f"dtype must be 'float', 'int', 'bool' or a torch.dtype, got {dtype!r}")
            ok = kinds[dtype]
        else:
            ok = x.dtype == dtype
        if not ok:
            wanted = {"float": "a floating-point", "int": "an integer", "bool": "a bool"}.get(dtype, str(dtype))
            raise TypeError(f"{name} must be {wanted} tensor, got dtype {x.dtype}")
    if shape is not None:
        if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
            want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
            raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    elif ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimension(s), got shape {tuple(x.shape)}")
    if nonempty and x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    if finite and x.is_floating_point() and x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def check_token_ids(
    tokens: Any, name: str = "tokens", vocab: int | None = None, *, ndim: int = 2, ignore_index: int | None = None
) -> Tensor:
    """``tokens`` if it is an integer tensor with ``ndim`` dimensions whose ids lie in
    ``[0, vocab)`` (``vocab=None``: only ``>= 0``). ``ignore_index`` (e.g. ``-100`` for targets)
    is allowed besides the ids. Float or bool tensors are a TypeError, not silently truncated."""
    check_tensor(tokens, name, dtype="int")
    if tokens.ndim != ndim:
        layout = {1: "[n]", 2: "[batch, pos]"}.get(ndim, f"{ndim} dimensions")
        raise ValueError(f"{name} must have shape {layout}, got {tuple(tokens.shape)}")
    if tokens.numel():
        ids = tokens if ignore_index is None else tokens[tokens != ignore_index]
        if ids.numel():
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or (vocab is not None and hi >= vocab):
                extra = f" (or {ignore_index})" if ignore_index is not None else ""
                span = f"in [0, {vocab})" if vocab is not None else ">= 0"
                raise ValueError(f"{name} must hold ids {span}{extra}, got min {lo}, max {hi}")
    return tokens


def check_token_id(value: Any, name: str, d_vocab: int | None = None) -> int:
    """``value`` as one token id: an int in ``[0, d_vocab)`` (``d_vocab=None``: only ``>= 0``)."""
    check_int(value, name)
    if value < 0 or (d_vocab is not None and value >= d_vocab):
        raise ValueError(f"{name} = {value} is outside the vocabulary [0, {'...' if d_vocab is None else d_vocab})")
    return int(value)


def check_padded_rows(tokens: Any, lengths: Any, *, ids: bool = False, d_vocab: int | None = None) -> None:
    """Right-padded rows: ``tokens`` an integer ``[batch, pos]`` tensor, ``lengths`` an integer
    ``[batch]`` tensor on the same device, each length in ``[1, pos]`` (the real tokens of its row).
    ``ids=True`` (or a ``d_vocab``) also checks the values as token ids (:func:`check_token_ids`),
    in the same pass, so a caller needs no second check of ``tokens``."""
    if ids or d_vocab is not None:
        check_token_ids(tokens, "tokens", d_vocab, ndim=2)
    else:
        check_tensor(tokens, "tokens", ndim=2, dtype="int")
    check_tensor(lengths, "lengths", ndim=1, dtype="int")
    if lengths.shape[0] != tokens.shape[0]:
        raise ValueError(f"lengths has {lengths.shape[0]} rows, tokens has {tokens.shape[0]}")
    if lengths.device != tokens.device:
        raise ValueError(f"lengths is on {lengths.device}, tokens on {tokens.device}")
    if lengths.numel() and (lengths.min() < 1 or lengths.max() > tokens.shape[1]):
        raise ValueError(f"every length must lie in [1, {tokens.shape[1]}] (the width of tokens), "
                         f"got min {int(lengths.min())}, max {int(lengths.max())}")


def check_module(model: Any, name: str = "model") -> torch.nn.Module:
    """``model`` if it is a ``torch.nn.Module`` with at least one parameter."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    if next(model.parameters(), None) is None:
        raise ValueError(f"{name} has no parameters")
    return model


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (checking that it is a model with parameters)."""
    return next(check_module(model).parameters()).device


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``with eval_mode(model): ...`` runs the block in eval mode and then restores the mode the
    model (and each of its submodules) had before, even if the block raises."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


def check_path(path: Any, name: str = "path") -> Path:
    """``path`` as a ``pathlib.Path`` (a str or path-like, not empty)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or a pathlib.Path, got {type(path).__name__}")
    if not str(path):
        raise ValueError(f"{name} must not be empty")
    return Path(path)


def check_file_path(path: Any, name: str = "path") -> Path:
    """``path`` as a ``pathlib.Path`` a file can be written to: :func:`check_path`, and not an
    existing folder (refused before anything is written)."""
    path = check_path(path, name)
    if path.is_dir():
        raise ValueError(f"{name} must be the path of a file, got the existing folder {path} (add a file name to it)")
    return path


class atomic_path:
    """``with atomic_path(final) as tmp: write(tmp)``: ``tmp`` is a fresh file in the same folder,
    renamed onto ``final`` when the block succeeds and removed when it fails, so ``final`` is
    either the old file or the complete new one, never half written."""

    def __init__(self, final: str | Path):
        self.final = Path(final)

    def __enter__(self) -> Path:
        if self.final.is_dir():  # os.replace could not put a file there: refuse before writing
            raise IsADirectoryError(f"{self.final} is a folder, not a file path")
        self.final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.final.name}.", suffix=".tmp", dir=self.final.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                os.chmod(self.tmp, 0o644)  # mkstemp's 0600 would make the result private
                os.replace(self.tmp, self.final)  # fails when final is a folder, for one
            except BaseException:
                self.tmp.unlink(missing_ok=True)
                raise
        else:
            self.tmp.unlink(missing_ok=True)
        return False


__all__ = [
    "atomic_path",
    "check_file_path",
    "check_path",
    "INT_DTYPES",
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "check_module",
    "check_prob",
    "check_str",
    "check_tensor",
    "check_token_ids",
    "check_type",
    "eval_mode",
    "model_device",
]
