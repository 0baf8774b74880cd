"""Text drawn token by token with coloured backgrounds, as a static matplotlib figure.

Used to show where thought tokens landed in a passage (and what happened around them). Static on
purpose: it renders offline and on GitHub, unlike HTML widgets that load JavaScript.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt

from lib.core import checks


def _visible(piece: str) -> str:
    return piece.replace("\n", "\u21b5").replace("\t", "\u21e5")


def plot_highlighted_tokens(
    pieces: Sequence[str],
    colors: Sequence[str | None] | None = None,
    ax: plt.Axes | None = None,
    title: str = "",
    max_chars: int = 72,
    fontsize: int = 9,
) -> plt.Axes:
    """Draw ``pieces`` (one string per token) left to right in a monospace font, wrapping at
    ``max_chars`` characters and after newlines (shown as ``↵``); ``colors[i]`` is the background
    of piece ``i`` (``None``: no background)."""
    if isinstance(pieces, str) or not all(isinstance(p, str) for p in pieces):
        raise TypeError("pieces must be a sequence of strings (one per token)")
    if not pieces:
        raise ValueError("pieces is empty: nothing to draw")
    if colors is not None and len(colors) != len(pieces):
        raise ValueError(f"{len(colors)} colours for {len(pieces)} pieces")
    checks.check_int(max_chars, "max_chars", min=8)
    checks.check_int(fontsize, "fontsize", min=1)
    checks.check_type(ax, "ax", plt.Axes, allow_none=True)
    checks.check_str(title, "title", nonempty=False)
    if colors is not None:
        if isinstance(colors, str):
            raise TypeError("colors must be a sequence of colours (one per piece), got a str")
        for c in colors:
            if c is not None and not isinstance(c, str):
                raise TypeError(f"colors must hold colour names or None, got {c!r}")
    ax = ax or plt.subplots(figsize=(0.0085 * fontsize * max_chars + 0.4, 1.0))[1]
    # Monospace glyphs advance by ~0.6 em: measure how many characters fit across the axes, so
    # that one character is one unit along x and the pieces sit edge to edge.
    fig = ax.figure
    width_pt = ax.get_position().width * fig.get_figwidth() * 72
    fit = max(8, int(width_pt / (0.6 * fontsize)))
    limit = min(max_chars, fit)
    layout, line, col = [], 0, 0
    for piece in pieces:
        text = _visible(piece)
        if col > 0 and col + len(text) > limit:
            line, col = line + 1, 0
        layout.append((line, col, text))
        col += len(text)
        if "\n" in piece:
            line, col = line + 1, 0
    n_lines = layout[-1][0] + 1
    if ax.figure.get_figheight() < 0.28 * n_lines + 0.4:  # grow a figure we made to fit the lines
        fig.set_figheight(0.28 * n_lines + 0.4)
    for i, (ln, c, text) in enumerate(layout):
        color = None if colors is None else colors[i]
        box = None if color is None else dict(boxstyle="square,pad=0.05", facecolor=color, edgecolor="none")
        ax.text(c, -ln, text, family="monospace", fontsize=fontsize, va="center", ha="left", bbox=box)
    ax.set_xlim(0, fit)
    ax.set_ylim(-n_lines + 0.4, 0.6)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=fontsize + 1, loc="left")
    return ax
