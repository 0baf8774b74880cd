"""Graph reachability: of two candidate nodes, which one can be reached from the start node?

A question writes a directed graph down, then names a start node ``s`` and two candidates,
exactly one of which is reachable from ``s``; the answer is that one:

    [children of node 0] [children of node 1] ... [children of node n-1]  QUERY  c1  c2  s
    [filler x (d - 1)]  answer

The graph is written as its *child table*: node ``i`` owns ``width`` slots in a row, holding the
nodes its edges point to (in a random order, ``NONE`` in the slots it does not use). The table is
the whole edge list, in a fixed place per source. Why a table and not a list of pairs: one
attention layer can then follow every edge out of a node (the query is the node, the keys are the
slots' positions, the values the children written there), as in pointer chasing, so one pass of
the 1-layer models buys one step of search. The start node comes last, so the position that
predicts the answer (or the first filler) holds it.

What was measured while choosing the layout (answer accuracy on unseen graphs, depth 1, chance
0.5; batch 64, notebook 05's model sizes, this CPU; none of it stored): edges as ``u v`` pairs with a
2-layer GPT stayed at chance for 2,000 steps (start node before the candidates) and 3,000 steps
(start node last); a parent table (position ``i`` holds the parent of ``i``) stayed at the
two-candidate plateau (loss ln 2) for 3,000 steps with 1 or 2 layers; this child table with 1
layer stayed at chance for 2,000 steps at 24 labels and reached 0.61 after 4,800 steps at 14
labels (lr 1e-3). One answer token per question is little signal for learning a lookup over this
many labels; pointer chasing at 8 nodes needs 600 steps, at 10 about 2,000.

Frontier questions (:func:`frontier_questions`: "name a node ``d`` steps from ``s``") break that
plateau at depth 1 (same model, lr 3e-3, seed 0, not stored): trained on depth-1 questions only,
half of them frontier questions, it answers the two-candidate question at 1.000 after 600 steps
with 14 labels and 0.994 after 1,200 with 24 (chance up to step 800). Deeper questions are where
the width matters. Trained on depths 1-3 with one depth-1 frontier question per two reach
questions for 3,000 steps, the 1-layer dense arm:

- at ``width=1`` (each frontier one node: two chains, pointer chasing in disguise) answers every
  trained depth at 1.000 and the deeper, never trained depths 4 and 5 at 1.000 as well;
- at ``width=2`` (each frontier two nodes) answers depth 1 at 1.000 but depths 2 and 3 at chance.

So learning stalls where a thought must carry two nodes at once (the two runs differ in width,
and so also in how many of the 24 labels a graph uses, 12 or 22; one seed each). Frontier
questions at every trained depth, instead of depth 1 only, learned nothing in 3,000 steps; two
layers instead of one reached only 0.68 at depth 1 in 3,000 steps. What did work at width 2 is a
*depth curriculum*, which the harness's graph tasks therefore train with: depth 1 for the first
third of the steps, depths 1-2 for the second, 1-3 for the last. After 4,500 steps the dense arm
answered depth 1 at 1.000, depth 2 at 0.93 and depth 3 at 0.77, and the never-trained depths 4
and 5 at 0.67 and 0.62; in a run of 7,500 steps, 1.000, 0.92 and 0.85, and 0.70 and 0.56 (one seed
each, not stored).

How a graph is built, and why this way: the graph has two components of the same shape. Each
has a root and ``levels`` levels of ``width`` nodes; every node of level k + 1 has one parent,
drawn at random among the ``width`` nodes of level k (level 1 hangs off the root). The start
node is one root; the reachable candidate sits at level ``d`` of its component, the other
candidate at level ``d`` of the other component. The two candidates therefore look alike in
every way that does not need the path: both have exactly one incoming edge, both sit ``d``
steps below *a* root, both have children or not at random, and children are written in a random
order. The only way to the answer is to follow edges from ``s`` for ``d`` steps (or back from a
candidate to its root and compare it with ``s``). ``d`` is the question's *depth*.

The set of nodes first reached after k steps from ``s`` (the *frontier* at depth k) is exactly
level k of the start's component: ``width`` nodes at once. That is what makes the task the place
to ask whether a fed-back vector holds one node or several (notebook 10).

Splits: a graph belongs to train, val or test by a hash of its parent table
(:mod:`lib.tasks.splits`), so no test graph is ever asked about in training, with any start or
candidates. Training asks depths 1..``train_depth``; the test
split also asks the deeper ones, ``train_depth + 1 .. levels`` (out of distribution).

Fillers: as in pointer chasing, ``d - 1`` pause or dense tokens sit between the question and
the answer (slot i is where the i-th step's frontier can be carried); chain of thought writes
the path's nodes there instead (:func:`written_path`).

Related: ProsQA (Hao et al. 2024) asks the same kind of question about random concept graphs;
Zhu et al. (2025) show a 2-layer transformer with D continuous thoughts can decide reachability
by holding each frontier in superposition.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from lib.core import checks
from lib.tasks.pointer_task import FILLERS  # the same three filler layouts as pointer chasing
from lib.tasks.splits import check_split, draw_in_split

GRAPH_DOMAIN = "graph-reach"  # the hash key of graphs (independent of the other tasks' splits)


@dataclass(frozen=True)
class GraphSpec:
    """Sizes of the task and its token ids (node labels first, then the special tokens).

    ``n_labels`` node labels, two components of ``1 + levels * width`` nodes each; training asks
    depths 1..``train_depth``, the test split also ``train_depth + 1 .. levels``."""

    n_labels: int = 24
    levels: int = 5
    width: int = 2
    train_depth: int = 3
    layout: str = "table"  # "table": the child table; "pairs": the edges as "u v" pairs in a random order

    def __post_init__(self) -> None:
        checks.check_choice(self.layout, "GraphSpec.layout", ("table", "pairs"))
        checks.check_int(self.levels, "GraphSpec.levels", min=1)
        checks.check_int(self.width, "GraphSpec.width", min=1)
        checks.check_int(self.train_depth, "GraphSpec.train_depth", min=1, max=self.levels)
        checks.check_int(self.n_labels, "GraphSpec.n_labels", min=2 * self.component_size)

    @property
    def component_size(self) -> int:
        return 1 + self.levels * self.width

    @property
    def n_edges(self) -> int:
        return 2 * self.levels * self.width

    @property
    def none_id(self) -> int:
        """The table entry of a node with no parent (a root, or a label the graph does not use)."""
        return self.n_labels + 4

    @property
    def query_id(self) -> int:
        return self.n_labels

    @property
    def dense_id(self) -> int:
        return self.n_labels + 1

    @property
    def pause_id(self) -> int:
        return self.n_labels + 2

    @property
    def pad_id(self) -> int:
        return self.n_labels + 3

    @property
    def vocab_size(self) -> int:
        return self.n_labels + 5

    @property
    def id_depths(self) -> tuple[int, ...]:
        """The depths training asks (in distribution)."""
        return tuple(range(1, self.train_depth + 1))

    @property
    def ood_depths(self) -> tuple[int, ...]:
        """The depths only evaluation asks (deeper than any training question)."""
        return tuple(range(self.train_depth + 1, self.levels + 1))

    @property
    def question_pos(self) -> int:
        """Where ``QUERY`` sits, after the child table; ``c1``, ``c2``, ``s`` follow it."""
        return self.n_labels * self.width if self.layout == "table" else 2 * self.n_edges

    def seq_len(self, filler: str = "dense") -> int:
        """Length of a batch's rows: the child table, QUERY c1 c2 s, up to ``levels - 1`` fillers, answer."""
        checks.check_choice(filler, "filler", FILLERS)
        return self.question_pos + 4 + (0 if filler == "none" else self.levels - 1) + 1

    def filler_id(self, filler: str) -> int | None:
        checks.check_choice(filler, "filler", FILLERS)
        return {"none": None, "pause": self.pause_id, "dense": self.dense_id}[filler]

    def token_names(self) -> list[str]:
        """Readable names for every id, for plots."""
        return [f"n{i}" for i in range(self.n_labels)] + ["Q", "<|dense|>", "<|pause|>", "·", "-"]


@dataclass
class GraphBatch:
    """A batch of questions. Rows are right-padded with ``pad_id`` (targets -100 there).

    ``levels_start[b, k]`` holds the ``width`` labels of level k + 1 of the start's component
    (the frontier after k + 1 steps), ``levels_other`` those of the other component;
    ``path[b, k]`` is the ancestor of the answer at level k + 1 (``path[b, d - 1]`` is the answer;
    entries past ``d`` repeat it)."""

    tokens: Int[Tensor, "batch pos"]
    targets: Int[Tensor, "batch pos"]  # the answer at answer_pos - 1, -100 elsewhere
    answers: Int[Tensor, " batch"]
    candidates: Int[Tensor, "batch 2"]  # c1, c2 as listed
    depths: Int[Tensor, " batch"]
    start: Int[Tensor, " batch"]  # s
    other_root: Int[Tensor, " batch"]
    levels_start: Int[Tensor, "batch levels width"]
    levels_other: Int[Tensor, "batch levels width"]
    path: Int[Tensor, "batch levels"]
    edges: Int[Tensor, "batch n_edges 2"]  # (source, target), both components, level by level
    answer_pos: Int[Tensor, " batch"]
    useful: Tensor  # [batch, pos] bool: the d - 1 filler slots after s
    spec: GraphSpec
    filler: str

    def to(self, device: torch.device | str) -> "GraphBatch":
        moved = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        return GraphBatch(**moved)

    def canonical_rows(self) -> Int[Tensor, "batch n_labels"]:
        """The graph of each row as its parent table, which does not depend on the order children
        are written in (the split's hash key, and the key of the leakage check)."""
        return parent_table(self.edges, self.spec.n_labels, self.spec.none_id)


def parent_table(edges: Int[Tensor, "batch n_edges 2"], n_labels: int, none_id: int) -> Int[Tensor, "batch n_labels"]:
    """Entry ``i`` of each row: the source of the edge into node ``i``, ``none_id`` where there is none."""
    checks.check_tensor(edges, "edges", ndim=3, dtype="int")
    checks.check_int(n_labels, "n_labels", min=1)
    checks.check_int(none_id, "none_id", min=0)
    if edges.numel() and int(edges.max()) >= n_labels:
        raise ValueError(f"edges must name nodes below n_labels = {n_labels}, got {int(edges.max())}")
    table = torch.full((edges.shape[0], n_labels), none_id, dtype=torch.long, device=edges.device)
    return table.scatter(1, edges[..., 1], edges[..., 0])


def _draw_raw(spec: GraphSpec, count: int, generator: torch.Generator) -> Tensor:
    """``count`` graphs as raw rows: a permutation of the labels, then each component's parent choices."""
    labels = torch.rand(count, spec.n_labels, generator=generator).argsort(dim=1)
    parents = torch.randint(0, spec.width, (count, 2 * spec.levels * spec.width), generator=generator)
    return torch.cat([labels, parents], dim=1)


def child_table(edges: Int[Tensor, "batch n_edges 2"], n_labels: int, width: int, none_id: int,
                generator: torch.Generator | None = None) -> Int[Tensor, "batch table"]:
    """Slots ``i * width .. i * width + width - 1`` of each row: the targets of node ``i``'s edges,
    in a random order when ``generator`` is given (else in the order listed), ``none_id`` after them."""
    checks.check_tensor(edges, "edges", ndim=3, dtype="int")
    checks.check_int(n_labels, "n_labels", min=1)
    checks.check_int(width, "width", min=1)
    checks.check_int(none_id, "none_id", min=0)
    checks.check_type(generator, "generator", torch.Generator, allow_none=True)
    if edges.numel() and int(edges.max()) >= n_labels:
        raise ValueError(f"edges must name nodes below n_labels = {n_labels}, got {int(edges.max())}")
    B, E = edges.shape[:2]
    source = edges[..., 0]
    if generator is not None:
        tie = torch.rand(B, E, generator=generator).to(edges.device)
    else:
        tie = torch.arange(E, device=edges.device, dtype=torch.float)[None].expand(B, E) / E
    order = (source.float() + tie * 0.5).argsort(dim=1)  # by source, children in a random order
    src, dst = source.gather(1, order), edges[..., 1].gather(1, order)
    index = torch.arange(E, device=edges.device)[None].expand(B, E)
    first = torch.where(torch.cat([torch.ones_like(src[:, :1], dtype=torch.bool), src[:, 1:] != src[:, :-1]], dim=1),
                        index, torch.zeros_like(index)).cummax(dim=1).values
    rank = index - first
    if int(rank.max()) >= width:
        raise ValueError(f"a node has more than width = {width} children")
    table = torch.full((B, n_labels * width), none_id, dtype=torch.long, device=edges.device)
    return table.scatter(1, src * width + rank, dst)


def _components(spec: GraphSpec, raw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """From raw rows: each component's labels ``[B, 2, 1 + levels * width]`` (root first, then level
    by level), its parent index within the component for every non-root node ``[B, 2, levels * width]``,
    and the edges ``[B, n_edges, 2]`` in canonical (construction) order."""
    B, n, W, L = raw.shape[0], spec.n_labels, spec.width, spec.levels
    size = spec.component_size
    labels = raw[:, :n][:, : 2 * size].reshape(B, 2, size)
    choice = raw[:, n:].reshape(B, 2, L * W)
    node = torch.arange(L * W)
    level = node // W  # 0-based level of each non-root node minus one
    # a level-1 node's parent is the root (index 0); a level-(k+1) node's is one of level k's
    parent = torch.where(level == 0, torch.zeros_like(node), 1 + (level - 1) * W)[None, None, :] + choice * (level > 0)
    parent_labels = labels.gather(2, parent)
    child_labels = labels[:, :, 1:]
    edges = torch.stack([parent_labels, child_labels], dim=-1).reshape(B, 2 * L * W, 2)
    return labels, parent, edges


def _canonical_raw(spec: GraphSpec):
    def canonical(raw: Tensor) -> Tensor:
        return parent_table(_components(spec, raw)[2], spec.n_labels, spec.none_id)

    return canonical


def _depth_choices(spec: GraphSpec, depths) -> tuple[int, ...]:
    if depths is None:
        return spec.id_depths
    if isinstance(depths, (tuple, list)):
        if not depths:
            raise ValueError("depths must name at least one depth")
        return tuple(checks.check_int(d, "depths (each depth)", min=1, max=spec.levels) for d in depths)
    return (checks.check_int(depths, "depths", min=1, max=spec.levels),)


def sample_graph_batch(
    spec: GraphSpec,
    batch_size: int,
    generator: torch.Generator,
    split: str = "train",
    filler: str = "dense",
    depths: int | tuple[int, ...] | None = None,
) -> GraphBatch:
    """``batch_size`` questions on graphs of ``split`` ("train", "val" or "test").

    ``depths``: ``None`` draws the depth uniformly from ``spec.id_depths`` (the training
    distribution), an int asks that depth, a tuple draws uniformly from it (``spec.ood_depths``
    for the out-of-distribution questions). A training stream should leave ``depths=None``."""
    checks.check_type(spec, "spec", GraphSpec)
    checks.check_int(batch_size, "batch_size", min=1)
    checks.check_type(generator, "generator", torch.Generator)
    check_split(split)
    checks.check_choice(filler, "filler", FILLERS)
    choices = _depth_choices(spec, depths)
    B, W, L = batch_size, spec.width, spec.levels
    raw = draw_in_split(lambda k: _draw_raw(spec, k, generator), _canonical_raw(spec), GRAPH_DOMAIN, split, B)
    labels, parent, edges = _components(spec, raw)
    d = torch.tensor(choices, dtype=torch.long)[torch.randint(0, len(choices), (B,), generator=generator)]
    pick = torch.randint(0, W, (B, 2), generator=generator)  # which node of level d in each component
    swap = torch.randint(0, 2, (B,), generator=generator).bool()  # is the reachable candidate listed second?
    if spec.layout == "table":
        table = child_table(edges, spec.n_labels, W, spec.none_id, generator)
    else:
        order = torch.rand(B, edges.shape[1], generator=generator).argsort(dim=1)
        table = edges.gather(1, order[:, :, None].expand(-1, -1, 2)).reshape(B, -1)
    return _assemble(spec, labels, parent, edges, table, d, pick, swap, filler)


def _assemble(spec: GraphSpec, labels: Tensor, parent: Tensor, edges: Tensor, table: Tensor, d: Tensor, pick: Tensor,
              swap: Tensor, filler: str) -> GraphBatch:
    B, W, L = labels.shape[0], spec.width, spec.levels
    rows = torch.arange(B)
    target_index = 1 + (d - 1)[:, None] * W + pick  # [B, 2]: index within each component
    reach, other = labels[rows, 0, target_index[:, 0]], labels[rows, 1, target_index[:, 1]]
    path_index = torch.empty(B, L, dtype=torch.long)  # ancestors of the reachable target, level 1..d
    for k in range(L - 1, -1, -1):  # from the deepest level up: at and past d the answer, above it the parent
        below = path_index[:, k + 1] if k + 1 < L else target_index[:, 0]
        path_index[:, k] = torch.where(k >= d - 1, target_index[:, 0], parent[rows, 0, (below - 1).clamp(min=0)])
    path = labels[rows, 0].gather(1, path_index)
    candidates = torch.stack([torch.where(swap, other, reach), torch.where(swap, reach, other)], dim=1)

    T, q = spec.seq_len(filler), spec.question_pos
    n_fill = torch.zeros_like(d) if filler == "none" else d - 1
    answer_pos = q + 4 + n_fill
    pos = torch.arange(T)[None, :]
    tokens = torch.full((B, T), spec.pad_id, dtype=torch.long)
    tokens[:, :q] = table
    tokens[:, q] = spec.query_id
    tokens[:, q + 1 : q + 3] = candidates
    tokens[:, q + 3] = labels[:, 0, 0]
    useful = (pos > q + 3) & (pos < answer_pos[:, None])
    fill_id = spec.filler_id(filler)
    if fill_id is not None:
        tokens[useful] = fill_id
    tokens[rows, answer_pos] = reach
    targets = torch.full_like(tokens, -100)
    targets[rows, answer_pos - 1] = reach
    levels = labels[:, :, 1:].reshape(B, 2, L, W)
    return GraphBatch(tokens, targets, reach, candidates, d, labels[:, 0, 0], labels[:, 1, 0], levels[:, 0], levels[:, 1],
                      path, edges, answer_pos, useful, spec, filler)


def graph_eval_sets(spec: GraphSpec, n_per_depth: int, seed: int, filler: str = "dense") -> dict[str, dict[int, GraphBatch]]:
    """Fixed evaluation questions, ``n_per_depth`` per depth: ``"val"`` (val graphs, trained
    depths), ``"test"`` (test graphs, trained depths), ``"test_ood"`` (test graphs, deeper). Each
    (split, depth) has its own generator seeded from ``seed``."""
    checks.check_type(spec, "spec", GraphSpec)
    checks.check_int(n_per_depth, "n_per_depth", min=1)
    checks.check_int(seed, "seed", min=0)
    plan = {"val": ("val", spec.id_depths), "test": ("test", spec.id_depths), "test_ood": ("test", spec.ood_depths)}
    return {name: {d: sample_graph_batch(spec, n_per_depth, torch.Generator().manual_seed(seed + 1000 * i + d), split,
                                         filler, d) for d in depths}
            for i, (name, (split, depths)) in enumerate(plan.items())}


def written_path(batch: GraphBatch) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """Chain of thought on a graph question: ``(tokens, targets)`` with filler slot ``i`` (of the
    ``d - 1``) holding the answer's ancestor at level ``i`` (the path from ``s`` to the answer,
    written out), every slot and the answer a target. ``batch`` is a dense-layout batch: its slots
    are where the dense tokens sit. One path, not the frontier: to write it the model must know
    which branch leads to a candidate."""
    checks.check_type(batch, "batch", GraphBatch)
    if batch.filler != "dense":
        raise ValueError(f"batch must be laid out with filler 'dense' (one slot per step), got {batch.filler!r}")
    rows, cols = batch.useful.nonzero(as_tuple=True)
    nodes = batch.path[rows, cols - (batch.spec.question_pos + 4)]
    tokens, targets = batch.tokens.clone(), batch.targets.clone()
    tokens[rows, cols] = nodes
    targets[rows, cols - 1] = nodes  # position i predicts token i + 1
    return tokens, targets


# --------------------------------------------------------------------------- frontier questions
def frontier_questions(batch: GraphBatch, generator: torch.Generator) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """The same rows asking "name a node ``d`` steps from ``s``": both candidates blanked to
    ``NONE``, and as the target (at the answer's place) one node of the row's frontier at its
    depth, drawn at random. Returns ``(tokens, targets)``; the batch is not changed.

    Why training may need them: with only the two-candidate question a 1-layer model sat at chance
    (loss ln 2) for thousands of steps, since following an edge out of ``s`` pays off only once it
    is combined with the candidates. Asked to name a child of ``s``, a model learns the lookup from
    the answer itself. A target drawn from the frontier's ``width`` nodes is best met by spreading
    the answer over all of them, so these rows *ask* for the frontier in the output; a probe must
    look where they give no target (the thoughts before the last).
    """
    checks.check_type(batch, "batch", GraphBatch)
    checks.check_type(generator, "generator", torch.Generator)
    spec, B = batch.spec, batch.tokens.shape[0]
    q = spec.question_pos
    tokens = batch.tokens.clone()
    tokens[:, q + 1 : q + 3] = spec.none_id
    pick = torch.randint(0, spec.width, (B, 1), generator=generator).to(batch.tokens.device)
    rows = torch.arange(B, device=batch.tokens.device)
    node = batch.levels_start[rows, batch.depths - 1].gather(1, pick)[:, 0]
    tokens[rows, batch.answer_pos] = node  # the answer's own slot, as a question's answer sits there
    targets = torch.full_like(batch.targets, -100)
    targets[rows, batch.answer_pos - 1] = node
    return tokens, targets


# --------------------------------------------------------------------------- reading answers
def answer_logits(logits: Float[Tensor, "batch pos d_vocab"], batch: GraphBatch) -> Float[Tensor, "batch d_vocab"]:
    """The logits that predict each row's answer (at ``answer_pos - 1``)."""
    checks.check_type(batch, "batch", GraphBatch)
    checks.check_tensor(logits, "logits", dtype="float")
    if logits.ndim != 3 or logits.shape[:2] != batch.tokens.shape:
        raise ValueError(f"logits must have shape {tuple(batch.tokens.shape)} + (d_vocab,), got {tuple(logits.shape)}")
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, batch.answer_pos.to(logits.device) - 1]


def chosen_candidates(logits: Float[Tensor, "batch pos d_vocab"], batch: GraphBatch) -> Int[Tensor, " batch"]:
    """Each row's answer: the candidate whose logit is larger (ties go to the first listed)."""
    at = answer_logits(logits, batch)
    checks.check_tensor(at, "logits (at the answer positions)", finite=True)
    cand = batch.candidates.to(at.device)
    pair = at.gather(1, cand)
    return cand[torch.arange(len(cand), device=at.device), (pair[:, 1] > pair[:, 0]).long()]


def answer_accuracy(logits: Float[Tensor, "batch pos d_vocab"], batch: GraphBatch) -> float:
    """Fraction of rows whose chosen candidate is the reachable one (chance: 0.5)."""
    return (chosen_candidates(logits, batch).cpu() == batch.answers.cpu()).float().mean().item()


def graph_model_config(spec: GraphSpec, d_model: int = 64, n_layers: int = 1, n_heads: int = 4):
    """The small GPT the notebook trains: one layer by default, so one pass follows one edge."""
    from lib.core.model import GPTConfig

    checks.check_type(spec, "spec", GraphSpec)
    checks.check_int(d_model, "d_model", min=1)
    checks.check_int(n_layers, "n_layers", min=1)
    checks.check_int(n_heads, "n_heads", min=1)
    if d_model % n_heads:
        raise ValueError(f"d_model = {d_model} must be divisible by n_heads = {n_heads}")
    return GPTConfig(d_vocab=spec.vocab_size, n_ctx=spec.seq_len("dense"), d_model=d_model, n_layers=n_layers,
                     n_heads=n_heads, d_head=d_model // n_heads, d_mlp=4 * d_model)


__all__ = ["FILLERS", "GRAPH_DOMAIN", "GraphBatch", "GraphSpec", "answer_accuracy", "answer_logits",
           "chosen_candidates", "frontier_questions", "graph_eval_sets", "child_table", "graph_model_config", "parent_table", "sample_graph_batch",
           "written_path"]
