"""lib.experiments.thought_explorer: the scores and layout it draws, the static figure, and the redraw."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

pytest.importorskip("ipywidgets")

from lib.core.model import GPT  # noqa: E402
from lib.experiments.frontier_probe import frontier_edge_attention  # noqa: E402
from lib.experiments.thought_explorer import draw_thoughts, graph_layout, thought_explorer, thought_node_scores  # noqa: E402
from lib.tasks.graph_reach import GraphSpec, graph_model_config, sample_graph_batch  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    spec = GraphSpec()
    torch.manual_seed(0)
    model = GPT(graph_model_config(spec)).eval()
    batch = sample_graph_batch(spec, 6, torch.Generator().manual_seed(1), "test", "dense", (2, 4))
    return model, batch


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_scores_one_row_per_thought_standardised_over_the_used_labels(setup):
    model, batch = setup
    for row in range(6):
        s = thought_node_scores(model, batch, row)
        d = int(batch.depths[row])
        assert s.shape == (d, batch.spec.n_labels)
        used = ~s[0].isnan()
        assert used.sum() == 2 * batch.spec.component_size  # both components, every node once
        assert torch.allclose(s[:, used].mean(1), torch.zeros(d), atol=1e-5)
        assert torch.allclose(s[:, used].std(1, unbiased=False), torch.ones(d), atol=1e-4)
    assert not torch.equal(thought_node_scores(model, batch, 0, "embedding").nan_to_num(),
                           thought_node_scores(model, batch, 0).nan_to_num())
    with pytest.raises(ValueError, match="row"):
        thought_node_scores(model, batch, 6)
    with pytest.raises(ValueError, match="readout"):
        thought_node_scores(model, batch, 0, "lens")


def test_layout_places_each_level_below_the_last(setup):
    _, batch = setup
    pos = graph_layout(batch, 0)
    assert len(pos) == 2 * batch.spec.component_size
    assert pos[int(batch.start[0])] == (0.0, 0.0)
    for k in range(batch.spec.levels):
        for node in batch.levels_start[0, k].tolist():
            assert pos[node][1] == -(k + 1) and pos[node][0] < batch.spec.width + 1
        for node in batch.levels_other[0, k].tolist():
            assert pos[node][0] > batch.spec.width


def test_static_figure_and_redraw(setup, monkeypatch):
    import lib.experiments.thought_explorer as te

    model, batch = setup
    fig = draw_thoughts(batch, 1, thought_node_scores(model, batch, 1))
    assert [ax.get_title() for ax in fig.axes][-1].startswith(f"thought {int(batch.depths[1])}")
    seen = []
    monkeypatch.setattr(te, "_figure_in", lambda output, draw: seen.append(draw().axes[0].figure._suptitle.get_text()))
    box = thought_explorer(model, batch, row=0)
    (slider, toggle), _ = box.children[0].children, box.children[1]
    slider.value = 3
    assert seen and seen[-1].startswith("question 3")
    toggle.value = "embedding"
    assert len(seen) == 2


def test_frontier_edge_attention_shares_and_untrained_spread(setup):
    model, batch = setup
    out = frontier_edge_attention(model, batch)
    assert sorted(out) == [1, 2, 3, 4]
    spec = batch.spec
    # step 1 follows the start's edges: its width slots of the 2 * component_size nodes' slots
    assert out[1]["uniform"] == pytest.approx(1 / (2 * spec.component_size))
    assert out[2]["uniform"] == pytest.approx(spec.width / (2 * spec.component_size))
    for k, v in out.items():  # an untrained model spreads its attention: no head far above the even share
        assert 0 <= v["mean head"] <= v["frontier edges"] <= 1
        assert v["frontier edges"] < 3 * v["uniform"], (k, v)
    with pytest.raises(ValueError, match="dense"):
        frontier_edge_attention(model, sample_graph_batch(spec, 2, torch.Generator().manual_seed(1), "test", "none", 2))
    with pytest.raises(ValueError, match="layer"):
        frontier_edge_attention(model, batch, layer=1)


def _forced_attention(model, batch, nodes_at):
    """frontier_edge_attention with head 0 of thought k's position made to read only the table
    slots of ``nodes_at(k)`` ([batch, n] labels), evenly."""
    spec = batch.spec

    def force(pattern, hook):
        out = pattern.clone()
        owner = torch.arange(spec.question_pos) // spec.width
        for k in range(1, int(batch.depths.max()) + 1):
            q = spec.question_pos + 3 + k - 1
            keep = (owner[None, :, None] == nodes_at(k)[:, None, :]).any(-1).float()  # [batch, table]
            out[:, 0, q] = 0
            out[:, 0, q, : spec.question_pos] = keep / keep.sum(1, keepdim=True)
        return out

    model.add_hook("blocks.0.attn.hook_pattern", force)
    try:
        return frontier_edge_attention(model, batch)
    finally:
        model.reset_hooks()


def test_frontier_edge_attention_finds_a_head_that_reads_the_frontier_edges(setup):
    """A head forced to look only at the frontier edges' slots puts all its mass there."""
    model, batch = setup
    out = _forced_attention(model, batch, lambda k: batch.start[:, None] if k == 1 else batch.levels_start[:, k - 2])
    assert all(v["frontier edges"] == pytest.approx(1.0, abs=1e-5) for v in out.values())


def test_frontier_edge_attention_tells_one_branch_from_both(setup):
    """A head that reads only the slots of the frontier node on the answer's path: all of its mass
    is on the path node and none on the weaker node, from the second step on."""
    model, batch = setup
    out = _forced_attention(model, batch, lambda k: (batch.start if k == 1 else batch.path[:, k - 2])[:, None])
    for k, v in out.items():
        assert v["path node"] == pytest.approx(1.0, abs=1e-5) and v["frontier edges"] == pytest.approx(1.0, abs=1e-5)
        assert v["weaker node"] == pytest.approx(1.0 if k == 1 else 0.0, abs=1e-5), k
