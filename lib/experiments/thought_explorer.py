"""The explorer of notebook 10: pick a graph question, see which nodes each continuous thought lights up.

The figure draws the question's graph level by level (the start's component on the left, the other
on the right), once per thought: each node is coloured by the thought's standardised read-out score
(:mod:`lib.experiments.frontier_probe`), the frontier of that step is ringed in black, the start is
marked ``s`` and the two candidates ``?``. A thought that holds the frontier in superposition
lights up every ringed node at once; a thought that follows one path lights one of them.

As with every explorer (:mod:`lib.experiments.explorers`), the figure for the default question is
drawn with matplotlib first, and the controls redraw it in JupyterLab; :func:`thought_node_scores`
and :func:`graph_layout` compute what it shows and are tested without any widget.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from lib.core import checks
from lib.experiments.explorers import _figure_in, _widgets
from lib.experiments.frontier_probe import READOUTS, node_groups, standardise, thought_vectors
from lib.tasks.graph_reach import GraphBatch


def _one_row(batch: GraphBatch, row: int) -> GraphBatch:
    picked = {k: (v[row : row + 1] if isinstance(v, Tensor) else v) for k, v in batch.__dict__.items()}
    return GraphBatch(**picked)


def _check_row(batch, row) -> None:
    checks.check_type(batch, "batch", GraphBatch)
    checks.check_int(row, "row", min=0, max=batch.tokens.shape[0] - 1)


@torch.no_grad()
def thought_node_scores(model, batch: GraphBatch, row: int, readout: str = "logit_lens") -> Tensor:
    """``[d, n_labels]``: for the question in ``row`` (depth ``d``), each thought's score of every
    node label, standardised over the labels its graph uses (NaN for the others)."""
    _check_row(batch, row)
    checks.check_module(model)
    checks.check_choice(readout, "readout", READOUTS)
    one = _one_row(batch, row)
    spec = one.spec
    used = node_groups(one, 0) >= 0
    rows = []
    for _, vec in sorted(thought_vectors(model, one).items()):
        if readout == "logit_lens":
            scores = model.unembed(vec[:, None])[:, 0, : spec.n_labels]
        else:
            scores = vec @ model.embed.W_E[: spec.n_labels].T
        rows.append(standardise(scores.cpu(), used)[0].masked_fill(~used[0], float("nan")))
    return torch.stack(rows)


def graph_layout(batch: GraphBatch, row: int) -> dict[int, tuple[float, float]]:
    """``{label: (x, y)}``: each component's root on top, level ``k`` at ``y = -k``, its nodes spread
    across; the start's component centred at ``x = 0``, the other at ``x = width + 2``."""
    _check_row(batch, row)
    width = batch.spec.width
    pos = {}
    for centre, root, levels in ((0.0, batch.start[row], batch.levels_start[row]),
                                 (width + 2.0, batch.other_root[row], batch.levels_other[row])):
        pos[int(root)] = (centre, 0.0)
        for k, level in enumerate(levels.tolist(), start=1):
            for i, node in enumerate(level):
                pos[int(node)] = (centre + i - (width - 1) / 2, -float(k))
    return pos


def draw_thoughts(batch: GraphBatch, row: int, scores: Tensor, title: str = "") -> plt.Figure:
    """One panel per thought: the graph, nodes coloured by ``scores[k - 1]``, frontier ``k`` ringed."""
    _check_row(batch, row)
    checks.check_tensor(scores, "scores", ndim=2, dtype="float")
    pos = graph_layout(batch, row)
    d = scores.shape[0]
    fig, axes = plt.subplots(1, d, figsize=(2.6 * d, 3.6), squeeze=False)
    edges = [(int(u), int(v)) for u, v in batch.edges[row].tolist()]
    start, cands = int(batch.start[row]), [int(c) for c in batch.candidates[row]]
    for k, ax in enumerate(axes[0], start=1):
        frontier = set(int(n) for n in batch.levels_start[row, k - 1].tolist())
        for u, v in edges:
            (x0, y0), (x1, y1) = pos[u], pos[v]
            ax.annotate("", (x1, y1 + 0.18), (x0, y0 - 0.18), arrowprops=dict(arrowstyle="->", color="#999", lw=0.8))
        nodes = sorted(pos)
        values = [float(scores[k - 1, n]) for n in nodes]
        ax.scatter([pos[n][0] for n in nodes], [pos[n][1] for n in nodes], c=values, cmap="coolwarm", vmin=-2.5,
                   vmax=2.5, s=420, edgecolors=["black" if n in frontier else "none" for n in nodes], linewidths=2.5,
                   zorder=3)
        for n in nodes:
            mark = "s" if n == start else "?" if n in cands else ""
            ax.text(pos[n][0], pos[n][1], f"{n}{mark}", ha="center", va="center", fontsize=7, zorder=4)
        ax.set_title(f"thought {k}" + (" (predicts the answer)" if k == d else ""), fontsize=9)
        ax.set_axis_off()
        half = (batch.spec.width - 1) / 2 + 0.7
        ax.set_xlim(-half, batch.spec.width + 2 + half)
        ax.set_ylim(-batch.spec.levels - 0.6, 0.6)
    fig.suptitle(title or f"question {row}: depth {int(batch.depths[row])}, answer {int(batch.answers[row])} "
                 "(ringed: the frontier of that step; red: high score)", fontsize=10)
    fig.tight_layout()
    return fig


def thought_explorer(model, batch: GraphBatch, row: int = 0, readout: str = "logit_lens"):
    """A question slider and a read-out toggle: redraw :func:`draw_thoughts` for the chosen question."""
    w = _widgets()
    _check_row(batch, row)
    draw_thoughts(batch, row, thought_node_scores(model, batch, row, readout))
    plt.show()
    slider = w.IntSlider(value=row, min=0, max=batch.tokens.shape[0] - 1, description="question", continuous_update=False)
    toggle = w.ToggleButtons(options=list(READOUTS), value=readout, description="read-out")
    plot = w.Output()

    def update(*_):
        scores = thought_node_scores(model, batch, slider.value, toggle.value)
        _figure_in(plot, lambda: draw_thoughts(batch, slider.value, scores))

    slider.observe(update, names="value")
    toggle.observe(update, names="value")
    return w.VBox([w.HBox([slider, toggle]), plot])


__all__ = ["draw_thoughts", "graph_layout", "thought_explorer", "thought_node_scores"]
