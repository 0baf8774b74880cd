"""What a continuous thought holds on graph reachability: a score for every node, grouped by where
the node stands in the search from the start node (notebook 10).

After ``k`` steps from the start ``s`` every node is in one of four groups:

- **frontier**: first reached after exactly ``k`` steps (level ``k`` of the start's component);
- **reached earlier**: ``s`` itself and the nodes first reached in fewer steps;
- **reachable later**: reached only after more than ``k`` steps;
- **unreachable**: the other component (labels the graph does not use belong to no group).

The ``k``-th thought is the vector the dense arm feeds into its ``k``-th filler slot: the hidden
state of the position before it, which has had ``k`` passes to search (the first comes from the
position of ``s``). The thought *after* the last slot (the state that predicts the answer) has
had ``d`` passes. Two read-outs score a node ``v`` from a thought ``h``: the **logit lens**
``unembed(h)[v]`` (what the model would say next if it stopped there) and the **embedding
product** ``h . W_E[v]`` (how much of ``v``'s input direction the vector carries). Each row's
scores are standardised over the graph's nodes before they are grouped, so rows and steps compare.

The two candidates belong to no group in :func:`frontier_probe`: a trained model's read-out favours
both at every position (the answer is one of them, so it learns to copy them), which would lift
"reachable later" and "unreachable" at every step for a reason that has nothing to do with search.

If a thought holds the frontier *in superposition* (Zhu et al. 2025), the frontier group scores
above every other group at every ``k``; if it holds one node (a path being followed), the
frontier's mean is diluted by its other member, and "reachable later" holds the rest of the path.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from lib.core import checks
from lib.tasks.graph_reach import GraphBatch

GROUPS: tuple[str, ...] = ("frontier", "reached earlier", "reachable later", "unreachable")
READOUTS: tuple[str, ...] = ("logit_lens", "embedding")


def node_groups(batch: GraphBatch, k: int) -> Int[Tensor, "batch n_labels"]:
    """Each label's group after ``k`` steps from the start, as an index into :data:`GROUPS`
    (-1 for labels the row's graph does not use)."""
    checks.check_type(batch, "batch", GraphBatch)
    spec = batch.spec
    checks.check_int(k, "k", min=0, max=spec.levels)
    B = batch.tokens.shape[0]
    groups = torch.full((B, spec.n_labels), -1, dtype=torch.long)
    levels = batch.levels_start.cpu()  # [B, levels, width]: level j + 1
    rows = torch.arange(B)[:, None]
    groups[rows, levels[:, k:].reshape(B, -1)] = GROUPS.index("reachable later")
    groups[rows, levels[:, : max(k - 1, 0)].reshape(B, -1)] = GROUPS.index("reached earlier")
    groups[torch.arange(B), batch.start.cpu()] = GROUPS.index("reached earlier" if k > 0 else "frontier")
    if k > 0:
        groups[rows, levels[:, k - 1]] = GROUPS.index("frontier")
    groups[rows, torch.cat([batch.other_root.cpu()[:, None], batch.levels_other.cpu().reshape(B, -1)], 1)] = \
        GROUPS.index("unreachable")
    return groups


def probe_groups(batch: GraphBatch, k: int) -> Int[Tensor, "batch n_labels"]:
    """:func:`node_groups` with the two candidates left out (-1): the read-out of a trained model
    favours them at every position, whatever the search has reached."""
    groups = node_groups(batch, k)
    groups[torch.arange(groups.shape[0])[:, None], batch.candidates.cpu()] = -1
    return groups


def group_means(scores: Float[Tensor, "batch n_labels"], groups: Int[Tensor, "batch n_labels"]) -> dict[str, float]:
    """Mean over rows of each group's mean score (rows without a member of a group skip it; a group
    no row has is NaN)."""
    checks.check_tensor(scores, "scores", ndim=2, dtype="float")
    checks.check_tensor(groups, "groups", ndim=2, dtype="int")
    if scores.shape != groups.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and groups {tuple(groups.shape)} must have the same shape")
    out = {}
    for g, name in enumerate(GROUPS):
        member = (groups == g).float()
        count = member.sum(dim=1)
        has = count > 0
        per_row = (scores * member).sum(dim=1)[has] / count[has]
        out[name] = per_row.mean().item() if has.any() else float("nan")
    return out


def standardise(scores: Float[Tensor, "batch n_labels"], used: Tensor) -> Float[Tensor, "batch n_labels"]:
    """Each row's scores minus their mean over the row's used labels, over their standard deviation."""
    checks.check_tensor(scores, "scores", ndim=2, dtype="float")
    checks.check_tensor(used, "used", ndim=2)
    if used.shape != scores.shape:
        raise ValueError(f"used {tuple(used.shape)} must have the shape of scores {tuple(scores.shape)}")
    w = used.float()
    n = w.sum(dim=1, keepdim=True).clamp(min=1)
    mean = (scores * w).sum(dim=1, keepdim=True) / n
    sd = (((scores - mean) ** 2 * w).sum(dim=1, keepdim=True) / n).sqrt().clamp(min=1e-8)
    return (scores - mean) / sd


@torch.no_grad()
def thought_vectors(model, batch: GraphBatch) -> dict[int, Float[Tensor, "rows d_model"]]:
    """``{k: vectors}``: for ``k = 1 .. max depth``, the vector after ``k`` passes of every row
    deep enough to have it (``k <= d``): the thought fed into slot ``k`` for ``k < d``, the state
    that predicts the answer for ``k = d``. Dense rows are unrolled exactly. Rows are in the batch's
    order, restricted to ``batch.depths >= k``."""
    from lib.methods.dense import unrolled_forward

    checks.check_type(batch, "batch", GraphBatch)
    checks.check_module(model)
    if batch.filler != "dense":
        raise ValueError(f"batch must be laid out with dense fillers, got {batch.filler!r}")
    spec = batch.spec
    depth = int((batch.tokens == spec.dense_id).sum(dim=1).max())
    with checks.eval_mode(model):
        out = unrolled_forward(model, batch.tokens, spec.dense_id, depth)
        # the final pass's hidden states: the state at position p has had (p - start) + 1 passes' worth of search
        from lib.methods.dense import add_dense_vectors, hidden_and_logits

        embeds = model.embed(batch.tokens)
        vectors = out.vectors[-1] if out.vectors else torch.zeros_like(embeds)
        hidden, _ = hidden_and_logits(model, add_dense_vectors(embeds, vectors, out.mask))
    start = spec.question_pos + 3
    result = {}
    for k in range(1, int(batch.depths.max()) + 1):
        rows = (batch.depths >= k).nonzero(as_tuple=True)[0]
        result[k] = hidden[rows, start + k - 1]
    return result


@torch.no_grad()
def loop_states(model, batch: GraphBatch) -> dict[int, Float[Tensor, "batch d_model"]]:
    """``{k: vectors}``: for a looped model (``lib.methods.looped``), the residual stream at the
    position of ``s`` after loop ``k`` of its ``n_loops``, passed through the final layer norm as
    the model's own read-out does: a looped model's "thoughts", one per loop, in place of the dense
    arm's positions. After the last loop it is the state that predicts the answer. Read with a
    forward hook on the last block, which runs once per loop (for both looped models)."""
    from lib.methods.looped import LoopedGPT

    checks.check_type(batch, "batch", GraphBatch)
    checks.check_type(model, "model", LoopedGPT)
    if batch.filler != "none":
        raise ValueError(f"a looped model reads questions without slots: batch.filler must be 'none', got {batch.filler!r}")
    after = []
    handle = model.blocks[-1].register_forward_hook(lambda module, args, out: after.append(out))
    try:
        with checks.eval_mode(model):
            model(batch.tokens)
    finally:
        handle.remove()
    s = batch.spec.question_pos + 3  # QUERY c1 c2 s: the answer is predicted here
    return {k + 1: model.ln_final(resid)[:, s] for k, resid in enumerate(after)}


def _thought_scores(model, batch: GraphBatch, readout: str):
    """``(k, standardised scores, probe groups)`` of every thought ``k``, over the rows that have it:
    the dense arm's thoughts (rows deep enough for slot ``k``) or, for a looped model, its loops
    (every row)."""
    from lib.methods.looped import LoopedGPT

    spec = batch.spec
    looped = isinstance(model, LoopedGPT)
    for k, vecs in (loop_states if looped else thought_vectors)(model, batch).items():
        rows = torch.arange(batch.tokens.shape[0]) if looped else (batch.depths >= k).nonzero(as_tuple=True)[0]
        if readout == "logit_lens":
            scores = model.unembed(vecs[:, None])[:, 0, : spec.n_labels]
        else:
            scores = vecs @ model.embed.W_E[: spec.n_labels].T
        groups = probe_groups(_rows(batch, rows), k)
        yield k, standardise(scores.cpu(), groups >= 0), groups


def _check_probe_args(model, batch, readout) -> None:
    from lib.methods.looped import LoopedGPT

    checks.check_type(batch, "batch", GraphBatch)
    checks.check_module(model)
    checks.check_choice(readout, "readout", READOUTS)
    want = "none" if isinstance(model, LoopedGPT) else "dense"
    if batch.filler != want:
        raise ValueError(f"batch must be laid out with filler {want!r} for this model, got {batch.filler!r}")


@torch.no_grad()
def frontier_probe(model, batch: GraphBatch, readout: str = "logit_lens") -> dict[int, dict[str, float]]:
    """``{k: {group: mean standardised score}}`` of the ``k``-th thought, for ``k = 1 .. max depth``
    (a looped model: of the state after loop ``k``, for ``k = 1 .. n_loops``), over every node the
    row's graph uses except its two candidates."""
    _check_probe_args(model, batch, readout)
    return {k: group_means(scores, groups) for k, scores, groups in _thought_scores(model, batch, readout)}


def whole_frontier_rate(scores: Float[Tensor, "batch n_labels"], groups: Int[Tensor, "batch n_labels"]) -> float:
    """The fraction of rows whose *every* frontier node scores above *every* node not reached yet
    ("reachable later" and "unreachable"), over the rows that have both. A group mean can be high
    because one frontier node is; this asks for all of them at once, which is what holding the
    frontier in superposition means (one node per row would fail it whenever a frontier has two).
    NaN when no row has both."""
    checks.check_tensor(scores, "scores", ndim=2, dtype="float")
    checks.check_tensor(groups, "groups", ndim=2, dtype="int")
    if scores.shape != groups.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and groups {tuple(groups.shape)} must have the same shape")
    inf = torch.tensor(float("inf"))
    frontier = groups == GROUPS.index("frontier")
    unreached = (groups == GROUPS.index("reachable later")) | (groups == GROUPS.index("unreachable"))
    lowest = torch.where(frontier, scores, inf).min(dim=1).values
    highest = torch.where(unreached, scores, -inf).max(dim=1).values
    has = frontier.any(dim=1) & unreached.any(dim=1)
    return (lowest[has] > highest[has]).float().mean().item() if has.any() else float("nan")


@torch.no_grad()
def frontier_rates(model, batch: GraphBatch, readout: str = "logit_lens") -> dict[int, float]:
    """``{k: rate}``: :func:`whole_frontier_rate` of the ``k``-th thought, for ``k = 1 .. max depth``."""
    _check_probe_args(model, batch, readout)
    return {k: whole_frontier_rate(scores, groups) for k, scores, groups in _thought_scores(model, batch, readout)}


def path_node_ahead(scores: Float[Tensor, "batch n_labels"], on_path: Int[Tensor, " batch"],
                    frontier: Int[Tensor, "batch 2"]) -> float:
    """The fraction of rows whose read-out scores the frontier node on the answer's path
    (``on_path``, one of the row's two ``frontier`` nodes) above the other one, a tie counting half. About 0.5 when the
    read-out holds both nodes alike (or neither); near 1 when it follows the branch that leads to
    the answer, which a model cannot know at that step without searching backwards from the
    candidates."""
    checks.check_tensor(scores, "scores", ndim=2, dtype="float")
    checks.check_tensor(on_path, "on_path", ndim=1, dtype="int")
    checks.check_tensor(frontier, "frontier", ndim=2, dtype="int")
    if frontier.shape != (scores.shape[0], 2) or on_path.shape[0] != scores.shape[0]:
        raise ValueError(f"frontier must be [batch, 2] and on_path [batch] with batch {scores.shape[0]}, "
                         f"got {tuple(frontier.shape)} and {tuple(on_path.shape)}")
    if frontier.numel() and not bool(((frontier >= 0) & (frontier < scores.shape[1])).all()):
        raise ValueError(f"frontier nodes must be labels 0 .. {scores.shape[1] - 1}")
    if not bool(((frontier == on_path[:, None]).sum(1) == 1).all()):
        raise ValueError("on_path must be exactly one of its row's two frontier nodes")
    other = torch.where(frontier[:, 0] == on_path, frontier[:, 1], frontier[:, 0])
    rows = torch.arange(scores.shape[0])
    mine, theirs = scores[rows, on_path], scores[rows, other]
    return ((mine > theirs).float() + 0.5 * (mine == theirs).float()).mean().item()  # a tie counts half: no preference


@torch.no_grad()
def branch_preference(model, batch: GraphBatch, readout: str = "logit_lens") -> dict[int, float]:
    """``{k: share}``: for every thought ``k`` fed back (``k < d``), :func:`path_node_ahead` of its
    read-out over the rows deep enough to have it. Two nodes per frontier only (``width=2``); the
    dense arm's thoughts only (a looped model's loops are states of every row, not thoughts fed back)."""
    from lib.methods.looped import LoopedGPT

    if isinstance(model, LoopedGPT):
        raise ValueError("branch_preference reads the thoughts a dense model feeds back, not a looped model's loops")
    _check_probe_args(model, batch, readout)
    if batch.spec.width != 2:
        raise ValueError(f"branch_preference compares two frontier nodes: batch.spec.width must be 2, got {batch.spec.width}")
    result = {}
    for k, scores, _ in _thought_scores(model, batch, readout):
        rows = (batch.depths >= k).nonzero(as_tuple=True)[0].cpu()
        fed = (batch.depths.cpu()[rows] > k)  # the state at k = d predicts the answer: not a thought
        if fed.any():
            pick = rows[fed]
            result[k] = path_node_ahead(scores[fed], batch.path.cpu()[pick, k - 1], batch.levels_start.cpu()[pick, k - 1])
    return result


@torch.no_grad()
def frontier_edge_attention(model, batch: GraphBatch, layer: int = 0) -> dict[int, dict[str, float]]:
    """Where the ``k``-th thought's position looks in the child table: ``{k: {"frontier edges":
    ..., "mean head": ..., "uniform": ...}}``. The *frontier edges* of step ``k`` are the table
    slots of the nodes in frontier ``k - 1`` (the start for ``k = 1``): the edges a search follows
    to reach frontier ``k``. ``"frontier edges"`` is the attention mass on them of the head that
    puts the most there (averaged over rows, in the final pass of the exact unroll, read with
    ``run_with_cache``), ``"mean head"`` the same averaged over heads, ``"weaker node"`` that
    head's mass on the slots of the frontier node it attends to less (both nodes read at once keep
    it well above 0; following one node leaves it near 0), ``"path node"`` its mass on the slots of
    the frontier node that leads to the answer (a model that traces back from the candidates, or
    guesses the branch, puts its mass there), and ``"uniform"`` the share of the
    graph's table slots they are: what attention spread evenly over the graph would give."""
    from lib.methods.dense import add_dense_vectors, unrolled_forward

    checks.check_type(batch, "batch", GraphBatch)
    checks.check_module(model)
    checks.check_int(layer, "layer", min=0, max=model.cfg.n_layers - 1)
    if batch.filler != "dense":
        raise ValueError(f"batch must be laid out with dense fillers, got {batch.filler!r}")
    spec = batch.spec
    if spec.layout != "table":
        raise ValueError("frontier_edge_attention reads the child-table layout only")
    depth = int((batch.tokens == spec.dense_id).sum(dim=1).max())
    with checks.eval_mode(model):
        out = unrolled_forward(model, batch.tokens, spec.dense_id, depth)
        embeds = model.embed(batch.tokens)
        vectors = out.vectors[-1] if out.vectors else torch.zeros_like(embeds)
        name = f"blocks.{layer}.attn.hook_pattern"
        _, cache = model.run_with_cache(input_embeds=add_dense_vectors(embeds, vectors, out.mask),
                                        names_filter=lambda n: n == name)
    pattern = cache[name].cpu()  # [batch, head, query, key]
    B, table = batch.tokens.shape[0], spec.question_pos
    owner = torch.arange(table) // spec.width  # the node whose children slot j lists
    used = node_groups(batch, 0) >= 0  # [batch, n_labels]
    used_slots = used[:, owner]
    result = {}
    for k in range(1, int(batch.depths.max()) + 1):
        rows = (batch.depths.cpu() >= k).nonzero(as_tuple=True)[0]
        before = (batch.start.cpu()[:, None] if k == 1 else batch.levels_start.cpu()[:, k - 2])[rows]  # [rows, n]
        looked = pattern[rows, :, spec.question_pos + 3 + k - 1, :table]  # [rows, head, slot]
        per_node = torch.stack([(looked * (owner == before[:, None, i : i + 1])).sum(-1)
                                for i in range(before.shape[1])], dim=-1)  # [rows, head, node]
        mass = per_node.sum(-1)
        best = mass.mean(0).argmax()
        share = before.shape[1] * spec.width / used_slots[rows].sum(1).float()
        on_path = (before == (batch.start.cpu() if k == 1 else batch.path.cpu()[:, k - 2])[rows, None]).float()
        result[k] = {"frontier edges": mass[:, best].mean().item(), "mean head": mass.mean().item(),
                     "weaker node": per_node[:, best].min(-1).values.mean().item(),
                     "path node": (per_node[:, best] * on_path).sum(-1).mean().item(), "uniform": share.mean().item()}
    return result


def _present(v) -> bool:
    return v is not None and v == v  # a group no question has is None (stored) or NaN (computed)


def frontier_margin(means: dict[str, float | None]) -> float:
    """How far the frontier's mean sits above the highest mean of the other groups that have
    members (a group no question has is ``None`` or NaN, as stored probes and :func:`group_means`
    write it); NaN when the frontier or every other group has none: there is nothing to compare."""
    checks.check_type(means, "means", dict)
    if "frontier" not in means:
        raise ValueError(f"means must hold a 'frontier' entry, got {sorted(means)}")
    bad = [g for g, v in means.items() if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))]
    if bad:
        raise ValueError(f"means must be numbers or None, got {[(g, means[g]) for g in bad]}")
    others = [v for g, v in means.items() if g != "frontier" and _present(v)]
    front = means["frontier"]
    return front - max(others) if others and _present(front) else float("nan")


def frontier_leads(means: dict[str, float | None]) -> bool:
    """Whether the frontier's mean is above that of *every* other group that has members
    (:func:`frontier_margin` > 0). False when there is nothing to compare."""
    return bool(frontier_margin(means) > 0)


def seed_agreement(probes: list[dict], untrained: list[dict]) -> dict[tuple[int, int], dict]:
    """How many seeds agree, from the probes a harness run stores (one trained and one untrained
    probe per seed, as ``probe_summary`` writes them): for every depth and every thought carried
    on (every ``k`` but the depth's last, which predicts the answer: ``k < d`` for dense slots,
    ``k < loops`` for a looped model), ``{"logit_lens": seeds on which the frontier leads,
    "embedding": the same with the embedding product, "untrained": the untrained control's count
    (logit lens), "whole": the mean whole-frontier rate over seeds, "whole_spread": its spread,
    "whole_min": its lowest seed, "whole_untrained": the control's mean rate,
    "whole_untrained_max": the control's highest seed, "n": seeds}``. A seed whose rate is missing
    (no question had both groups) is left out of the rates; NaN when every seed's is. One seed's
    lead is an anecdote; this says whether the pattern repeats."""
    from lib.core.stats import mean_and_spread

    checks.check_type(probes, "probes", list)
    checks.check_type(untrained, "untrained", list)
    if not probes or len(probes) != len(untrained):
        raise ValueError(f"probes and untrained must be non-empty and pair up, got {len(probes)} and {len(untrained)}")
    named = [(f"probes[{i}]", p) for i, p in enumerate(probes)] + [(f"untrained[{i}]", p) for i, p in enumerate(untrained)]
    for name, p in named:
        if not (isinstance(p, dict) and isinstance(p.get("whole_frontier"), dict) and isinstance(p.get("group_means"), dict)
                and all(isinstance(p["group_means"].get(r), dict) for r in READOUTS)):
            raise ValueError(f"{name} must be a stored probe with 'group_means' per readout {READOUTS} and 'whole_frontier'")
    # the last state of a depth (k = d for dense slots, the last loop for a looped model) predicts
    # the answer: it is not a thought carried on
    first = probes[0]["whole_frontier"]
    cells = [(d, k) for d in sorted(first, key=int) for k in sorted(first[d], key=int)
             if int(k) < max(int(x) for x in first[d])]
    if not cells:
        raise ValueError("probes[0] holds no thought carried on (every depth has only its last state)")
    for name, p in named:
        for d, k in cells:
            if not all(k in p["group_means"][r].get(d, {}) for r in READOUTS) or k not in p["whole_frontier"].get(d, {}):
                raise ValueError(f"{name} lacks depth {d}, thought {k}: every probe must cover the first one's depths")
    nan = float("nan")

    def rates(of, d, k):
        return [v for p in of if _present(v := p["whole_frontier"][d][k])]

    def count(of, readout, d, k):
        return sum(frontier_leads(p["group_means"][readout][d][k]) for p in of)

    table = {}
    for d, k in cells:
        whole, whole0 = rates(probes, d, k), rates(untrained, d, k)
        mean, spread = mean_and_spread(whole) if whole else (nan, nan)
        table[int(d), int(k)] = {
            "logit_lens": count(probes, "logit_lens", d, k), "embedding": count(probes, "embedding", d, k),
            "untrained": count(untrained, "logit_lens", d, k), "whole": mean, "whole_spread": spread,
            "whole_min": min(whole) if whole else nan, "whole_untrained": mean_and_spread(whole0)[0] if whole0 else nan,
            "whole_untrained_max": max(whole0) if whole0 else nan, "n": len(probes)}
    return table


def format_seed_agreement(table: dict[tuple[int, int], dict], title: str, trained_depth: int = 3) -> str:
    """:func:`seed_agreement`'s table as text: per depth and thought, the seeds on which the frontier
    leads (logit lens | embedding product | untrained), and the whole-frontier rate over seeds
    (mean ± sd, the untrained mean in brackets); depths past ``trained_depth`` marked OOD."""
    checks.check_type(table, "table", dict)
    n = next(iter(table.values()))["n"] if table else 0
    lines = [f"{title}: seeds ({n}) on which the frontier leads every other group: logit lens | embedding product | "
             "untrained (logit lens);", "  whole-frontier rate, mean ± sd over seeds (untrained)"]
    for (d, k), s in table.items():
        where = " (OOD)" if d > trained_depth else "      "
        lines.append(f"  depth {d}{where} thought {k}:  {s['logit_lens']}/{s['n']} | {s['embedding']}/{s['n']} | "
                     f"{s['untrained']}/{s['n']};   whole frontier {s['whole']:.2f} ± {s['whole_spread']:.2f} "
                     f"({s['whole_untrained']:.2f})")
    return "\n".join(lines)


def _rows(batch: GraphBatch, rows: Tensor) -> GraphBatch:
    picked = {name: (v[rows] if isinstance(v, Tensor) else v) for name, v in batch.__dict__.items()}
    return GraphBatch(**picked)


__all__ = ["GROUPS", "READOUTS", "branch_preference", "format_seed_agreement", "frontier_edge_attention", "frontier_leads",
           "frontier_margin", "frontier_probe", "frontier_rates", "group_means", "loop_states", "node_groups", "path_node_ahead", "probe_groups",
           "seed_agreement", "standardise", "thought_vectors", "whole_frontier_rate"]
