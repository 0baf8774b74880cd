"""Static matplotlib plots the notebooks share: loss curves, attention patterns, heatmaps of
token probabilities, and bars with error bars for comparisons over seeds.

(circuitsvis draws nicer interactive views but loads its JavaScript from a CDN, so it renders
nothing offline; static images also survive on GitHub.)
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from torch import Tensor

from lib.core import checks


def _to_numpy(x, name: str = "values") -> np.ndarray:
    """``x`` (a tensor, an array or nested lists of numbers) as a float array; TypeError naming
    ``name`` for anything else (strings, None, objects)."""
    if isinstance(x, Tensor):
        return x.detach().float().cpu().numpy()
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must hold numbers, got {type(x).__name__}")
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must hold numbers (a tensor, an array or lists of numbers): {exc}") from exc


def _check_common(ax, title: str, name_title: str = "title") -> None:
    checks.check_type(ax, "ax", plt.Axes, allow_none=True)
    checks.check_str(title, name_title, nonempty=False)


def _check_labels(labels, name: str) -> None:
    if isinstance(labels, (str, bytes)) or not (hasattr(labels, "__len__") and hasattr(labels, "__iter__")):
        raise TypeError(f"{name} must be a sequence of labels, got {type(labels).__name__}")


def plot_loss_curves(
    histories: Mapping[str, object],
    ax: plt.Axes | None = None,
    title: str = "loss",
    ylabel: str = "cross-entropy (nats/token)",
    show_train: bool = True,
    show_val: bool = True,
) -> plt.Axes:
    """One line per run: training loss (thin) and validation loss (markers).

    ``histories`` maps a label to a :class:`lib.core.training.History` (or anything with ``steps``,
    ``train_loss``, ``val_steps`` and ``val_loss``).
    """
    checks.check_type(histories, "histories", Mapping)
    if not histories:
        raise ValueError("histories is empty: nothing to plot")
    _check_common(ax, title)
    checks.check_str(ylabel, "ylabel", nonempty=False)
    checks.check_bool(show_train, "show_train")
    checks.check_bool(show_val, "show_val")
    for label, h in histories.items():
        for attr in ("steps", "train_loss", "val_steps", "val_loss"):
            if not hasattr(h, attr):
                raise TypeError(f"histories[{label!r}] has no attribute {attr!r} (pass lib.core.training.History objects)")
        if len(h.steps) != len(h.train_loss) or len(h.val_steps) != len(h.val_loss):
            raise ValueError(f"histories[{label!r}]: steps and losses differ in length")
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for i, (label, h) in enumerate(histories.items()):
        color = f"C{i % 10}"
        if show_train and h.train_loss:
            ax.plot(h.steps, h.train_loss, color=color, alpha=0.5, lw=1, label=f"{label} (train)")
        if show_val and h.val_loss:
            ax.plot(h.val_steps, h.val_loss, "o-", color=color, lw=2, ms=4, label=f"{label} (val)")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_attention_pattern(
    pattern: Tensor,
    tokens: Sequence[str],
    ax: plt.Axes | None = None,
    title: str = "attention pattern",
) -> plt.Axes:
    """A ``[query_pos, key_pos]`` pattern as a heatmap, rows = queries (who looks), columns = keys."""
    p = _to_numpy(pattern, "pattern")
    _check_labels(tokens, "tokens")
    _check_common(ax, title)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"pattern must be a square [query_pos, key_pos] matrix, got shape {p.shape}")
    if len(tokens) != p.shape[0]:
        raise ValueError(f"{len(tokens)} token labels for a pattern over {p.shape[0]} positions")
    n = len(tokens)
    ax = ax or plt.subplots(figsize=(0.35 * n + 2, 0.35 * n + 1.5))[1]
    im = ax.imshow(p, cmap="Blues", vmin=0, vmax=1)
    labels = [repr(t)[1:-1] for t in tokens]
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
    plt.colorbar(im, ax=ax, fraction=0.046)
    return ax


def plot_heatmap(
    values: Tensor | np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    ax: plt.Axes | None = None,
    title: str = "",
    cmap: str = "viridis",
    annotate: bool = False,
    fmt: str = "{:.2f}",
    vmin: float | None = None,
    vmax: float | None = None,
) -> plt.Axes:
    """A labelled ``[rows, cols]`` heatmap, e.g. the probability of candidate tokens (columns)
    after each prefix (rows), or a logit-lens table of layers x positions."""
    v = _to_numpy(values, "values")
    if v.ndim != 2:
        raise ValueError(f"values must be 2-D, got shape {v.shape}")
    _check_labels(row_labels, "row_labels")
    _check_labels(col_labels, "col_labels")
    _check_common(ax, title)
    checks.check_str(cmap, "cmap")
    checks.check_bool(annotate, "annotate")
    checks.check_str(fmt, "fmt")
    checks.check_float(vmin, "vmin", allow_none=True)
    checks.check_float(vmax, "vmax", allow_none=True)
    if len(row_labels) != v.shape[0] or len(col_labels) != v.shape[1]:
        raise ValueError(
            f"labels ({len(row_labels)} rows, {len(col_labels)} cols) do not match values of shape {v.shape}"
        )
    ax = ax or plt.subplots(figsize=(0.5 * v.shape[1] + 2.5, 0.35 * v.shape[0] + 1.5))[1]
    im = ax.imshow(v, cmap=cmap, aspect="auto", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(v.shape[1]), [repr(str(c))[1:-1] for c in col_labels], rotation=90, fontsize=7)
    ax.set_yticks(range(v.shape[0]), [repr(str(r))[1:-1] for r in row_labels], fontsize=7)
    if annotate:
        for i in range(v.shape[0]):
            for j in range(v.shape[1]):
                # Dark text on light cells, light text on dark ones (a fixed white was unreadable
                # on most of a viridis map): perceived luminance of the cell's own colour.
                r, g, b, _ = im.get_cmap()(im.norm(v[i, j]))
                ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                ax.text(j, i, fmt.format(v[i, j]), ha="center", va="center", fontsize=6, color=ink)
    ax.set_title(title)
    plt.colorbar(im, ax=ax, fraction=0.046)
    return ax


def plot_bars_with_spread(
    results: Mapping[str, Sequence[float]],
    ax: plt.Axes | None = None,
    title: str = "",
    ylabel: str = "",
    show_points: bool = True,
    bounds: tuple[float, float] | None = None,
) -> plt.Axes:
    """Mean of each method's per-seed values as a bar, one standard deviation as an error bar,
    and every seed as a dot, so the reader sees the spread and not just the mean. ``bounds``
    (e.g. ``(0, 1)`` for an accuracy) clips the error bar to the metric's range, so a bar never
    claims values the metric cannot take; by default it is ``(0, 1)`` when every value lies there."""
    checks.check_type(results, "results", Mapping)
    if not results:
        raise ValueError("results is empty: nothing to plot")
    _check_common(ax, title)
    checks.check_str(ylabel, "ylabel", nonempty=False)
    checks.check_bool(show_points, "show_points")
    for name in results:
        vals = _to_numpy(results[name], f"results[{name!r}]").ravel()
        if vals.size == 0:
            raise ValueError(f"results[{name!r}] has no values")
        if not np.isfinite(vals).all():
            raise ValueError(f"results[{name!r}] holds NaN or infinite values")
    if bounds is not None:
        checks.check_type(bounds, "bounds", tuple)
        if len(bounds) != 2 or not all(isinstance(b, (int, float)) and np.isfinite(b) for b in bounds) or bounds[0] >= bounds[1]:
            raise ValueError(f"bounds must be (low, high) with finite low < high, got {bounds!r}")
    names = list(results)
    if bounds is None and all(((v := _to_numpy(results[n]).ravel()) >= 0).all() and (v <= 1).all() for n in names):
        bounds = (0.0, 1.0)
    ax = ax or plt.subplots(figsize=(1.4 * len(names) + 2, 4))[1]
    for i, name in enumerate(names):
        vals = _to_numpy(results[name]).ravel()
        if vals.size == 0:
            raise ValueError(f"method {name!r} has no values")
        std = vals.std(ddof=1) if vals.size > 1 else 0.0
        mean = vals.mean()
        low, high = (std, std) if bounds is None else (min(std, mean - bounds[0]), min(std, bounds[1] - mean))
        ax.bar(i, mean, yerr=[[max(low, 0.0)], [max(high, 0.0)]], color=f"C{i % 10}", alpha=0.7, capsize=6)
        if show_points:
            jitter = np.linspace(-0.15, 0.15, vals.size) if vals.size > 1 else np.zeros(1)
            ax.scatter(i + jitter, vals, color="k", s=12, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return ax


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value). (:func:`lib.core.stats.mean_and_spread`
    computes the same in plain Python; this one stays on numpy so stored outputs do not move.)"""
    from lib.core.stats import check_values

    v = np.asarray(check_values(values, "values"), dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def plot_curves_with_spread(
    x: Sequence[float],
    curves: Mapping[str, Sequence[Sequence[float]]],
    ax: plt.Axes | None = None,
    title: str = "",
    ylabel: str = "",
    xlabel: str = "step",
) -> plt.Axes:
    """Mean over seeds as a line and one standard deviation as a shaded band, per method.

    ``curves`` maps a method to a ``[n_seeds, len(x)]`` table (one row per seed), e.g. the
    validation losses of several training runs evaluated at the same steps ``x``."""
    checks.check_type(curves, "curves", Mapping)
    if not curves:
        raise ValueError("curves is empty: nothing to plot")
    xs = _to_numpy(x, "x").ravel()
    _check_common(ax, title)
    checks.check_str(ylabel, "ylabel", nonempty=False)
    checks.check_str(xlabel, "xlabel", nonempty=False)
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for i, (name, table) in enumerate(curves.items()):
        v = _to_numpy(table, f"curves[{name!r}]")
        if v.ndim != 2 or v.shape[1] != xs.size or v.shape[0] == 0:
            raise ValueError(f"{name!r}: expected a [n_seeds, {xs.size}] table, got shape {v.shape}")
        mean = v.mean(axis=0)
        std = v.std(axis=0, ddof=1) if v.shape[0] > 1 else np.zeros_like(mean)
        ax.plot(xs, mean, "o-", color=f"C{i % 10}", lw=2, ms=3, label=f"{name} (n={v.shape[0]})")
        ax.fill_between(xs, mean - std, mean + std, color=f"C{i % 10}", alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
