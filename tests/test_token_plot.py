"""The highlighted-token rendering lays pieces out and checks its inputs."""

import matplotlib.pyplot as plt
import pytest

from lib.core.token_plot import plot_highlighted_tokens


def test_draws_one_text_per_piece_and_wraps_lines():
    pieces = ["To", " be", "\n", "or", " not"] * 6
    colors = [None, "orange", None, "#cce", None] * 6
    ax = plot_highlighted_tokens(pieces, colors, max_chars=10, title="t")
    assert len(ax.texts) == len(pieces)
    assert ax.texts[2].get_text() == "\u21b5"  # a newline is shown
    assert ax.texts[1].get_bbox_patch() is not None and ax.texts[0].get_bbox_patch() is None
    ys = {t.get_position()[1] for t in ax.texts}
    assert len(ys) > 1  # wrapped onto several lines
    plt.close("all")


@pytest.mark.parametrize(
    "pieces, colors, err",
    [("abc", None, TypeError), ([], None, ValueError), (["a", "b"], ["red"], ValueError), (["a", 1], None, TypeError)],
)
def test_rejects_bad_inputs(pieces, colors, err):
    with pytest.raises(err):
        plot_highlighted_tokens(pieces, colors)
    plt.close("all")
