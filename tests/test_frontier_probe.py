"""The frontier probe's bookkeeping (lib.experiments.frontier_probe): every used node lands in the
right group at every step, group means are means, and the thought vectors are the ones the dense
arm feeds into its slots."""

from __future__ import annotations

import math

import pytest
import torch

from lib.core.model import GPT
from lib.experiments.frontier_probe import (
    GROUPS, branch_preference, format_seed_agreement, frontier_leads, frontier_margin, frontier_probe, frontier_rates, group_means, node_groups, path_node_ahead, probe_groups,
    loop_states, seed_agreement, thought_vectors, whole_frontier_rate,
)
from lib.methods.dense import unrolled_forward
from lib.tasks.graph_reach import GraphSpec, graph_model_config, sample_graph_batch

SPEC = GraphSpec()


@pytest.fixture
def batch():
    return sample_graph_batch(SPEC, 40, torch.Generator().manual_seed(0), "test", "dense", (1, 2, 3, 4, 5))


def _bfs_levels(edges, start):
    levels, seen, frontier = [], {start}, {start}
    while frontier:
        frontier = {v for u, v in edges if u in frontier} - seen
        seen |= frontier
        if frontier:
            levels.append(frontier)
    return levels


def test_every_used_node_is_in_the_group_a_search_from_the_start_puts_it_in(batch):
    for k in range(0, SPEC.levels + 1):
        groups = node_groups(batch, k)
        for i in range(len(batch.tokens)):
            edges = [tuple(e) for e in batch.edges[i].tolist()]
            s = int(batch.start[i])
            levels = _bfs_levels(edges, s)
            used = {s, int(batch.other_root[i])} | {v for _, v in edges}
            for node in range(SPEC.n_labels):
                g = int(groups[i, node])
                if node not in used:
                    assert g == -1
                    continue
                reach = [j + 1 for j, lv in enumerate(levels) if node in lv]
                depth = 0 if node == s else (reach[0] if reach else None)
                want = ("unreachable" if depth is None else "frontier" if depth == k
                        else "reached earlier" if depth < k else "reachable later")
                assert GROUPS[g] == want, (k, node, depth)


def test_group_means_average_rows_then_groups():
    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])
    groups = torch.tensor([[0, 0, 3, -1], [0, 3, 3, 1]])
    out = group_means(scores, groups)
    assert out["frontier"] == pytest.approx((1.5 + 10.0) / 2)
    assert out["unreachable"] == pytest.approx((3.0 + 25.0) / 2)
    assert out["reached earlier"] == pytest.approx(40.0)  # only the row that has one
    assert math.isnan(out["reachable later"])
    with pytest.raises(ValueError, match="same shape"):
        group_means(scores, groups[:, :3])


def test_the_thought_vectors_are_the_vectors_the_dense_arm_feeds_its_slots(batch):
    torch.manual_seed(0)
    model = GPT(graph_model_config(SPEC))
    thoughts = thought_vectors(model, batch)
    assert sorted(thoughts) == [1, 2, 3, 4, 5]
    depth = int((batch.tokens == SPEC.dense_id).sum(dim=1).max())
    fed = unrolled_forward(model, batch.tokens, SPEC.dense_id, depth).vectors[-1]
    start = SPEC.question_pos + 3
    for k in range(1, 5):  # thought k < d is what slot k receives
        rows = (batch.depths > k).nonzero(as_tuple=True)[0]
        deep_enough = (batch.depths[batch.depths >= k] > k).nonzero(as_tuple=True)[0]
        assert torch.allclose(thoughts[k][deep_enough], fed[rows, start + k], atol=1e-5)
    final = unrolled_forward(model, batch.tokens, SPEC.dense_id, depth).logits
    for k in range(1, 6):  # thought d is the state that predicts the answer: its logits are the answer's
        rows = (batch.depths == k).nonzero(as_tuple=True)[0]
        mine = (batch.depths[batch.depths >= k] == k).nonzero(as_tuple=True)[0]
        assert torch.allclose(model.unembed(thoughts[k][mine][:, None])[:, 0], final[rows, batch.answer_pos[rows] - 1], atol=1e-4)
    probe = frontier_probe(model, batch, "embedding")
    assert set(probe) == {1, 2, 3, 4, 5} and set(probe[1]) == set(GROUPS)
    with pytest.raises(ValueError, match="readout"):
        frontier_probe(model, batch, "attention")
    with pytest.raises(ValueError, match="dense"):
        thought_vectors(model, sample_graph_batch(SPEC, 4, torch.Generator().manual_seed(1), "test", "none"))


def test_the_candidates_are_left_out_of_every_group(batch):
    for k in (1, 2, 4):
        plain, probed = node_groups(batch, k), probe_groups(batch, k)
        rows = torch.arange(len(batch.tokens))[:, None]
        assert (probed[rows, batch.candidates] == -1).all()
        assert (plain[rows, batch.candidates] >= 0).all()  # they are used nodes: only the probe leaves them out
        keep = torch.ones_like(plain, dtype=torch.bool)
        keep[rows, batch.candidates] = False
        assert torch.equal(probed[keep], plain[keep])


def test_the_whole_frontier_rate_needs_every_frontier_node_above_every_unreached_one():
    f, e, l, u, skip = 0, 1, 2, 3, -1
    groups = torch.tensor([[f, f, l, u, e], [f, f, l, u, e], [f, f, l, u, skip], [e, e, l, u, skip]])
    scores = torch.tensor([[5.0, 4.0, 3.0, 1.0, 9.0],  # both frontier nodes above both unreached: yes
                           [5.0, 2.0, 3.0, 1.0, 9.0],  # one frontier node under a later node: no
                           [5.0, 4.0, 1.0, 4.5, 0.0],  # ... under an unreachable one: no
                           [5.0, 4.0, 3.0, 1.0, 0.0]])  # no frontier node: left out
    assert whole_frontier_rate(scores, groups) == pytest.approx(1 / 3)
    assert math.isnan(whole_frontier_rate(scores[3:], groups[3:]))
    with pytest.raises(ValueError, match="same shape"):
        whole_frontier_rate(scores, groups[:, :3])


def test_an_untrained_model_holds_no_frontier(batch):
    torch.manual_seed(0)
    model = GPT(graph_model_config(SPEC))
    rates = frontier_rates(model, batch, "logit_lens")
    assert set(rates) == {1, 2, 3, 4, 5}
    assert all(r < 0.5 for r in rates.values() if not math.isnan(r))  # chance for two nodes above the rest is small


def test_path_node_ahead_compares_the_two_frontier_nodes_of_each_row():
    scores = torch.tensor([[0.0, 2.0, 1.0, 9.0], [0.0, 1.0, 2.0, 9.0], [3.0, 1.0, 2.0, 9.0]])
    frontier = torch.tensor([[1, 2], [2, 1], [1, 0]])
    on_path = torch.tensor([1, 1, 0])  # ahead, behind, ahead; node 3 (highest) is in no frontier and does not count
    assert path_node_ahead(scores, on_path, frontier) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="exactly one"):
        path_node_ahead(scores, torch.tensor([3, 1, 0]), frontier)
    with pytest.raises(ValueError, match="frontier must be"):
        path_node_ahead(scores, on_path, frontier[:2])
    with pytest.raises(ValueError, match="labels 0 .. 3"):
        path_node_ahead(scores, torch.tensor([-1, 1, 0]), torch.tensor([[-1, 2], [2, 1], [1, 0]]))
    assert path_node_ahead(torch.zeros(3, 4), on_path, frontier) == 0.5  # both alike: no preference


def test_branch_preference_is_the_read_out_of_each_fed_back_thought(batch):
    torch.manual_seed(0)
    model = GPT(graph_model_config(SPEC))
    shares = branch_preference(model, batch)
    assert set(shares) == {1, 2, 3, 4}  # thought 5 of a depth-5 question predicts the answer
    vectors = thought_vectors(model, batch)
    for k, share in shares.items():
        rows = (batch.depths >= k).nonzero(as_tuple=True)[0]
        fed = batch.depths[rows] > k
        scores = model.unembed(vectors[k][:, None])[:, 0, : SPEC.n_labels][fed]
        pick = rows[fed]
        assert share == pytest.approx(path_node_ahead(scores, batch.path[pick, k - 1], batch.levels_start[pick, k - 1]))
    with pytest.raises(ValueError, match="width must be 2"):
        chain = GraphSpec(width=1)
        branch_preference(GPT(graph_model_config(chain)),
                          sample_graph_batch(chain, 8, torch.Generator().manual_seed(0), "test", "dense", (2, 3)))


def test_branch_preference_reads_the_path_node_of_level_k(batch, monkeypatch):
    # a read-out that lights exactly the node on the answer's path at each thought gives 1, one
    # that lights the other frontier node gives 0: a wrong level or row would land between
    import lib.experiments.frontier_probe as probe

    def lit(on_path: bool):
        def scores(model, b, readout):
            for k in range(1, int(b.depths.max()) + 1):
                rows = (b.depths >= k).nonzero(as_tuple=True)[0]
                node = b.path[rows, k - 1]
                if not on_path:
                    pair = b.levels_start[rows, k - 1]
                    node = torch.where(pair[:, 0] == node, pair[:, 1], pair[:, 0])
                out = torch.zeros(len(rows), SPEC.n_labels)
                out[torch.arange(len(rows)), node] = 1.0
                yield k, out, None
        return scores

    model = GPT(graph_model_config(SPEC))
    monkeypatch.setattr(probe, "_thought_scores", lit(True))
    assert set(branch_preference(model, batch).values()) == {1.0}
    monkeypatch.setattr(probe, "_thought_scores", lit(False))
    assert set(branch_preference(model, batch).values()) == {0.0}


def test_the_frontier_leads_only_above_every_group_that_has_members():
    assert frontier_leads({"frontier": 1.0, "reached earlier": 0.5, "reachable later": None, "unreachable": float("nan")})
    assert not frontier_leads({"frontier": 1.0, "reached earlier": 1.2, "reachable later": 0.0, "unreachable": 0.0})
    assert not frontier_leads({"frontier": 1.0, "reached earlier": 1.0, "reachable later": 0.0, "unreachable": 0.0})  # a tie is no lead
    assert not frontier_leads({"frontier": None, "reached earlier": 0.0, "reachable later": 0.0, "unreachable": 0.0})
    assert not frontier_leads({"frontier": 1.0, "reached earlier": None, "reachable later": None, "unreachable": None})
    with pytest.raises(ValueError, match="frontier"):
        frontier_leads({"reached earlier": 0.0})
    with pytest.raises(ValueError, match="numbers or None"):
        frontier_leads({"frontier": "1.0", "reached earlier": 0.0})


def test_the_frontier_margin_is_the_distance_to_the_best_other_group():
    assert frontier_margin({"frontier": 1.0, "reached earlier": 0.25, "reachable later": None,
                            "unreachable": -1.0}) == pytest.approx(0.75)
    assert frontier_margin({"frontier": 0.0, "reached earlier": 0.5, "reachable later": 0.1}) == pytest.approx(-0.5)
    assert math.isnan(frontier_margin({"frontier": 1.0, "reached earlier": float("nan")}))  # nothing to lead
    assert math.isnan(frontier_margin({"frontier": None, "reached earlier": 0.0}))


def _stored_probe(front_by_k: dict[int, float], whole: float, embedding_front: float = 0.0) -> dict:
    # a probe as probe_summary stores it, depth 3 only: thoughts 1-3, string keys
    def means(front):
        return {"frontier": front, "reached earlier": 0.5, "reachable later": 0.0, "unreachable": None}
    return {"group_means": {"logit_lens": {"3": {str(k): means(f) for k, f in front_by_k.items()}},
                            "embedding": {"3": {str(k): means(embedding_front) for k in front_by_k}}},
            "whole_frontier": {"3": {str(k): whole for k in front_by_k}}}


def test_seed_agreement_counts_the_seeds_that_lead_and_leaves_out_the_answer_state():
    trained = [_stored_probe({1: 1.0, 2: 1.0, 3: 9.0}, 0.8), _stored_probe({1: 1.0, 2: 0.2, 3: 9.0}, 0.6, embedding_front=1.0),
               _stored_probe({1: 0.1, 2: 0.2, 3: 9.0}, 0.4)]
    control = [_stored_probe({1: 0.0, 2: 0.0, 3: 0.0}, 0.0)] * 2 + [_stored_probe({1: 0.9, 2: 0.0, 3: 0.0}, 0.3)]
    table = seed_agreement(trained, control)
    assert sorted(table) == [(3, 1), (3, 2)]  # k = d predicts the answer: not a thought fed back
    assert table[3, 1]["logit_lens"] == 2 and table[3, 2]["logit_lens"] == 1
    assert table[3, 1]["embedding"] == 1 and table[3, 1]["untrained"] == 1 and table[3, 2]["untrained"] == 0
    assert table[3, 1]["whole"] == pytest.approx(0.6) and table[3, 1]["whole_spread"] == pytest.approx(0.2)
    assert table[3, 1]["whole_untrained"] == pytest.approx(0.1) and table[3, 1]["n"] == 3
    assert table[3, 1]["whole_min"] == pytest.approx(0.4) and table[3, 1]["whole_untrained_max"] == pytest.approx(0.3)


def test_seed_agreement_needs_a_control_for_every_seed_and_every_depth():
    probe = _stored_probe({1: 1.0, 2: 1.0, 3: 1.0}, 0.5)
    with pytest.raises(ValueError, match="pair up"):
        seed_agreement([probe, probe], [probe])
    with pytest.raises(ValueError, match="pair up"):
        seed_agreement([], [])
    short = _stored_probe({1: 1.0, 3: 1.0}, 0.5)  # thought 2 missing
    with pytest.raises(ValueError, match=r"probes\[1\] lacks depth 3, thought 2"):
        seed_agreement([probe, short], [probe, probe])
    with pytest.raises(ValueError, match=r"untrained\[0\] lacks depth 3, thought 2"):  # the control named as such
        seed_agreement([probe, probe], [short, probe])
    with pytest.raises(ValueError, match=r"untrained\[1\] must be a stored probe"):
        seed_agreement([probe, probe], [probe, {"whole_frontier": {}}])
    with pytest.raises(ValueError, match="no thought carried on"):
        seed_agreement([_stored_probe({1: 1.0}, 0.5)], [_stored_probe({1: 1.0}, 0.5)])


def test_the_agreement_table_reads_as_text():
    table = seed_agreement([_stored_probe({1: 1.0, 2: 1.0, 3: 9.0}, 0.8)] * 2, [_stored_probe({1: 0.0, 2: 0.0, 3: 0.0}, 0.0)] * 2)
    text = format_seed_agreement(table, "toy", trained_depth=2)
    assert text.splitlines()[0].startswith("toy: seeds (2)")
    assert "depth 3 (OOD) thought 1:  2/2 | 0/2 | 0/2;   whole frontier 0.80 ± 0.00 (0.00)" in text
    assert len(text.splitlines()) == 2 + len(table)


def test_seed_agreement_leaves_out_a_seed_without_a_rate():
    # a rate is None when no question had both groups (as probe_summary stores a NaN)
    probes = [_stored_probe({1: 1.0, 2: 1.0, 3: 1.0}, 0.5), _stored_probe({1: 1.0, 2: 1.0, 3: 1.0}, None)]
    table = seed_agreement(probes, [_stored_probe({1: 0.0, 2: 0.0, 3: 0.0}, None)] * 2)
    assert table[3, 1]["whole"] == pytest.approx(0.5) and table[3, 1]["whole_min"] == pytest.approx(0.5)
    assert math.isnan(table[3, 1]["whole_untrained"]) and math.isnan(table[3, 1]["whole_untrained_max"])


def test_a_looped_models_loop_states_are_what_it_reads_its_answer_from():
    from lib.methods.looped import InjectedLoopedGPT, LoopedGPT, with_loops

    questions = sample_graph_batch(SPEC, 12, torch.Generator().manual_seed(3), "test", "none", (1, 2, 3, 4, 5))
    s = SPEC.question_pos + 3
    for cls in (LoopedGPT, InjectedLoopedGPT):
        torch.manual_seed(0)
        model = cls(graph_model_config(SPEC), 3).eval()
        states = loop_states(model, questions)
        assert sorted(states) == [1, 2, 3] and states[1].shape == (12, model.cfg.d_model)
        # the last loop's state, read out, is the model's own prediction at s; earlier loops differ
        assert torch.allclose(model.unembed(states[3][:, None])[:, 0], model(questions.tokens)[:, s], atol=1e-5)
        assert not torch.allclose(states[1], states[3])
        if cls is InjectedLoopedGPT:
            with with_loops(model, 5):
                assert sorted(loop_states(model, questions)) == [1, 2, 3, 4, 5]
        probe = frontier_probe(model, questions)
        assert sorted(probe) == [1, 2, 3] and all(set(m) == set(GROUPS) for m in probe.values())
        assert sorted(frontier_rates(model, questions)) == [1, 2, 3]
        with pytest.raises(ValueError, match="filler 'none'"):
            frontier_probe(model, sample_graph_batch(SPEC, 4, torch.Generator().manual_seed(3), "test", "dense", 2))
        with pytest.raises(ValueError, match="not a looped model"):
            branch_preference(model, questions)
    with pytest.raises(ValueError, match="filler 'dense'"):
        frontier_probe(GPT(graph_model_config(SPEC)), questions)
    with pytest.raises(TypeError, match="model"):
        loop_states(GPT(graph_model_config(SPEC)), questions)


def test_seed_agreement_leaves_out_a_looped_models_last_loop():
    # a looped model's probe has one state per loop at every depth; the last loop predicts the answer
    def loops(n):
        means = {"frontier": 1.0, "reached earlier": 0.0, "reachable later": 0.0, "unreachable": 0.0}
        by_k = {str(k): means for k in range(1, n + 1)}
        return {"group_means": {r: {"4": by_k} for r in ("logit_lens", "embedding")}, "whole_frontier": {"4": {k: 0.5 for k in by_k}}}
    assert sorted(seed_agreement([loops(3)], [loops(3)])) == [(4, 1), (4, 2)]
