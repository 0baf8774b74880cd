"""Plot helpers draw what they are given and refuse mismatched inputs."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lib.core.plotting import (  # noqa: E402
    mean_and_spread,
    plot_attention_pattern,
    plot_bars_with_spread,
    plot_heatmap,
    plot_loss_curves,
)
from lib.core.training import History  # noqa: E402


def test_loss_curves():
    h = History(steps=[0, 10], train_loss=[3.0, 2.0], val_steps=[10], val_loss=[2.5])
    ax = plot_loss_curves({"a": h, "b": h})
    assert len(ax.lines) == 4
    with pytest.raises(ValueError):
        plot_loss_curves({})
    with pytest.raises(TypeError, match="steps"):
        plot_loss_curves({"x": object()})
    plt.close("all")


def test_attention_pattern():
    p = torch.tril(torch.ones(3, 3)) / torch.arange(1, 4)[:, None]
    ax = plot_attention_pattern(p, ["a", " b", "\n"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", " b", "\\n"]
    with pytest.raises(ValueError, match="square"):
        plot_attention_pattern(torch.zeros(2, 3), ["a", "b"])
    with pytest.raises(ValueError, match="token labels"):
        plot_attention_pattern(p, ["a"])
    plt.close("all")


def test_heatmap():
    ax = plot_heatmap(torch.rand(2, 3), ["r1", "r2"], ["a", "b", "c"], annotate=True)
    assert len(ax.texts) == 6
    with pytest.raises(ValueError, match="2-D"):
        plot_heatmap(torch.rand(3), ["a"], ["b"])
    with pytest.raises(ValueError, match="labels"):
        plot_heatmap(torch.rand(2, 3), ["r1"], ["a", "b", "c"])
    plt.close("all")


def test_bars_with_spread():
    ax = plot_bars_with_spread({"a": [1.0, 2.0, 3.0], "b": [2.0]})
    assert len(ax.patches) == 2
    assert ax.patches[0].get_height() == pytest.approx(2.0)
    with pytest.raises(ValueError):
        plot_bars_with_spread({})
    with pytest.raises(ValueError, match="no values"):
        plot_bars_with_spread({"a": []})
    plt.close("all")


def test_mean_and_spread():
    assert mean_and_spread([1.0, 3.0]) == pytest.approx((2.0, 2**0.5))
    assert mean_and_spread([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError):
        mean_and_spread([])


def test_curves_with_spread():
    from lib.core.plotting import plot_curves_with_spread

    ax = plot_curves_with_spread([1, 2, 3], {"a": [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], "b": [[0.5, 0.5, 0.5]]})
    lines = ax.get_lines()
    assert len(lines) == 2
    assert lines[0].get_ydata().tolist() == [2.0, 2.0, 2.0]  # mean over the two seeds
    assert len(ax.collections) == 2  # one band per method
    assert "n=2" in ax.get_legend().get_texts()[0].get_text()
    plt.close("all")
    with pytest.raises(ValueError, match="empty"):
        plot_curves_with_spread([1], {})
    with pytest.raises(ValueError, match="n_seeds"):
        plot_curves_with_spread([1, 2], {"a": [[1.0, 2.0, 3.0]]})
    with pytest.raises(ValueError, match="n_seeds"):
        plot_curves_with_spread([1, 2], {"a": [1.0, 2.0]})
    plt.close("all")


def test_bars_never_claim_values_outside_the_metric_range():
    import matplotlib.pyplot as plt

    from lib.core.plotting import plot_bars_with_spread

    ax = plot_bars_with_spread({"a": [1.0, 1.0, 0.4], "b": [0.2, 0.3, 0.25]})
    tops = [seg[1][1] for coll in ax.collections if hasattr(coll, "get_segments") for seg in coll.get_segments()]
    assert tops and max(tops) <= 1.0 + 1e-9  # an accuracy's sd bar stops at 1
    plt.close("all")
    with pytest.raises(ValueError, match="bounds"):
        plot_bars_with_spread({"a": [1.0, 2.0]}, bounds=(1.0, 0.0))
    ax = plot_bars_with_spread({"loss": [4.0, 4.5]})  # outside [0, 1]: not clipped
    plt.close("all")
