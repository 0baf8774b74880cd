"""Graph reachability on graphs no training question used (:mod:`lib.tasks.graph_reach`): of two
candidates, which one can be reached from the start node. ``value`` is the answer accuracy on unseen
test graphs over the trained depths 1-3, ``ood_value`` over the deeper 4-5 on the same unseen graphs.

Two tasks share this module, alike but for one number, the width of a search frontier:

- ``graph_chain_unseen`` (``width=1``): every node has one child, so the nodes ``k`` steps from the
  start are one node and a thought that carries one node suffices (pointer chasing in disguise);
- ``graph_reach_unseen`` (``width=2``): ``k`` steps from the start are two nodes; a thought that
  follows the search forward must carry both at once.

Every arm trains on the same stream: per step ``BATCH`` reach questions and ``FRONTIER_BATCH``
depth-1 frontier questions ("name a child of the start",
:func:`lib.tasks.graph_reach.frontier_questions`), which teach the edge lookup the reach question
alone leaves at chance for thousands of steps. The reach questions follow a *depth curriculum*
(:func:`curriculum_depths`): depth 1 for the first third of the steps, 1-2 for the second, 1-3
for the last. Without it the 1-layer dense arm learned every depth when a frontier is one node and
only depth 1 when it is two (3,000 steps); with it, at two nodes, depth 2 reached 0.93 and depth
3 0.77 after 4,500 steps (one seed each, not stored; :mod:`lib.tasks.graph_reach` has the
measurements). It is not Coconut's curriculum (written steps replaced by thoughts): every arm
gets it, as it gets the frontier questions. Dense tokens get ``d - 1`` slots for depth ``d``
and are unrolled exactly (as deep as the question needs, out of distribution too); pause tokens
get ``d - 1`` pauses. Accuracy per depth is stored under ``by_hops`` / ``ood_by_hops`` (depth plays
the part of the hop count; the harness's 1-step gate reads depth 1)."""

from __future__ import annotations

import copy
import time

import torch

from .spec import LOOPS, CellResult, Size

TASKS: dict[str, int] = {"graph_chain_unseen": 1, "graph_reach_unseen": 2}  # task -> frontier width
# The layout each arm's questions are drawn in (the draws do not depend on it): cot writes into the
# dense slots, and the curriculum arms write or hide them stage by stage; the looped blocks get no slots.
FILLER = {"baseline": "none", "pause": "pause", "dense": "dense", "cot": "dense", "coconut": "dense",
          "pause_curriculum": "dense", "looped": "none", "looped_injected": "none"}
TEST_FILLER = FILLER | {"pause_curriculum": "pause"}  # at test every slot is latent
CURRICULUM_LATENT = {"coconut": "dense", "pause_curriculum": "pause"}
BATCH = 64
FRONTIER_BATCH = 32
QUESTION_SEED = 4321  # the fixed evaluation questions (lib.tasks.graph_reach.graph_eval_sets)


def graph_task(task: str):
    """The :class:`~lib.tasks.graph_reach.GraphSpec` of ``task``: 24 labels, 5 levels, depths 1-3 trained."""
    from lib.tasks.graph_reach import GraphSpec

    if task not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {task!r}")
    return GraphSpec(n_labels=24, levels=5, width=TASKS[task], train_depth=3)


def curriculum_depths(step: int, steps: int, train_depth: int) -> tuple[int, ...]:
    """The depths the reach questions of ``step`` are drawn from: the run's ``steps`` in
    ``train_depth`` equal stages, stage ``k`` asking depths 1..``k`` (the last stage every trained depth)."""
    stage = max(1, steps // train_depth)
    return tuple(range(1, min(train_depth, 1 + step // stage) + 1))


def curriculum_latent_slots(step: int, steps: int, train_depth: int) -> int:
    """How many slots are latent at ``step`` in the curriculum arms (``coconut``, ``pause_curriculum``).
    It rides on the depth curriculum every arm gets (:func:`curriculum_depths`): in the stage that
    adds depth ``j + 1`` (``j`` slots at most), the first half keeps the newest slot written and
    supervised (``j - 1`` latent), the second half hides it too (``j`` latent). So each step a
    question needs is first written, then replaced by a thought, as in Coconut, and by the end every
    slot is latent, the layout the dense arm trains on throughout."""
    from lib.core import checks

    checks.check_int(steps, "steps", min=1)
    checks.check_int(step, "step", min=0, max=steps - 1)
    checks.check_int(train_depth, "train_depth", min=1)
    stage = max(1, steps // train_depth)
    j = min(train_depth - 1, step // stage)
    length = stage if j < train_depth - 1 else steps - j * stage  # the last stage takes the leftover steps
    second_half = step - j * stage >= length // 2  # a stage of one step has no first half: its slot is hidden at once
    return j if second_half else max(0, j - 1)


def _draw_step(spec, filler: str, generator: torch.Generator, step: int, steps: int):
    """One step's questions, drawn in a fixed order from ``generator``: ``(reach batch, frontier
    batch, frontier tokens, frontier targets)`` (the layout does not change what is drawn)."""
    from lib.tasks.graph_reach import frontier_questions, sample_graph_batch

    reach = sample_graph_batch(spec, BATCH, generator, "train", filler, curriculum_depths(step, steps, spec.train_depth))
    frontier = sample_graph_batch(spec, FRONTIER_BATCH, generator, "train", filler, 1)
    return (reach, frontier, *frontier_questions(frontier, generator))


def training_stream(spec, filler: str, generator: torch.Generator, steps: int, device="cpu", written: bool = False,
                    curriculum: str | None = None):
    """``step -> (tokens, targets)`` for a run of ``steps``: ``BATCH`` reach questions, their depths
    under :func:`curriculum_depths`, then ``FRONTIER_BATCH`` depth-1 frontier questions, all on
    training graphs, laid out with ``filler``. ``written``: the reach questions' slots hold the
    path to the answer, supervised (chain of thought, :func:`lib.tasks.graph_reach.written_path`;
    ``filler`` must be "dense"); ``curriculum`` ("dense" or "pause"): the slots are written or latent
    by :func:`curriculum_latent_slots` (:func:`lib.methods.curriculum.staged_path`; ``filler`` must
    be "dense"). The questions drawn are the same whatever the layout."""
    from lib.core import checks
    from lib.tasks.graph_reach import FILLERS, GraphSpec, written_path

    checks.check_type(spec, "spec", GraphSpec)
    checks.check_choice(filler, "filler", FILLERS)
    checks.check_type(generator, "generator", torch.Generator)
    checks.check_int(steps, "steps", min=1)
    checks.check_bool(written, "written")
    if curriculum is not None:
        from lib.methods.curriculum import LATENTS, staged_path

        checks.check_choice(curriculum, "curriculum", LATENTS)
    if (written or curriculum is not None) and filler != "dense":
        raise ValueError(f"written and curriculum fill the dense slots: filler must be 'dense', got {filler!r}")
    if written and curriculum is not None:
        raise ValueError("written=True and a curriculum fill the same slots: pass one")

    def batch_fn(step: int):
        reach, _, tokens, targets = _draw_step(spec, filler, generator, step, steps)
        if curriculum is not None:
            reach_tokens, reach_targets = staged_path(reach, curriculum_latent_slots(step, steps, spec.train_depth), curriculum)
        else:
            reach_tokens, reach_targets = written_path(reach) if written else (reach.tokens, reach.targets)
        return torch.cat([reach_tokens, tokens]).to(device), torch.cat([reach_targets, targets]).to(device)

    return batch_fn


def graph_logits(model, tokens, dense_id: int):
    """The plain forward, or the exact dense forward (one pass per dense token of the longest row)."""
    from lib.methods.dense import unrolled_forward

    depth = int((tokens == dense_id).sum(dim=1).max())
    return unrolled_forward(model, tokens, dense_id, depth).logits if depth else model(tokens)


@torch.no_grad()
def graph_accuracy(model, spec, filler: str, n_per_depth: int, device="cpu", written: bool = False) -> dict[str, dict[int, float]]:
    """Per split ("val", "test", "test_ood") and depth: answer accuracy on the fixed questions.
    ``written``: the model writes its own path into the dense slots first (greedy, one pass a slot).
    A looped block with input injection runs ``max(LOOPS, d)`` loops on questions of depth ``d``
    (as deep as the question needs, as dense tokens unroll)."""
    from lib.core import checks
    from lib.methods.chain_of_thought import greedy_chain_logits
    from lib.tasks.graph_reach import answer_accuracy, graph_eval_sets

    checks.check_module(model)
    checks.check_bool(written, "written")
    sets = graph_eval_sets(spec, n_per_depth, QUESTION_SEED, filler)  # checks spec, n_per_depth and filler

    from lib.methods.looped import InjectedLoopedGPT, with_loops

    if isinstance(model, InjectedLoopedGPT) and (written or filler != "none"):
        raise ValueError(f"a looped model reads questions without slots: pass filler='none' and written=False, "
                         f"got filler={filler!r}, written={written}")

    def logits(b):
        if isinstance(model, InjectedLoopedGPT):
            with with_loops(model, max(LOOPS, int(b.depths.max()))):
                return model(b.tokens)
        return greedy_chain_logits(model, b) if written else graph_logits(model, b.tokens, spec.dense_id)

    with checks.eval_mode(model):
        return {split: {d: answer_accuracy(logits(b), b) for d, b in ((d, b.to(device)) for d, b in by_depth.items())}
                for split, by_depth in sets.items()}


def train_graph_model(task: str, method: str, seed: int, steps: int, lr: float, device="cpu"):
    """The 1-layer GPT of ``method`` (a key of :data:`FILLER`) trained on ``task``'s
    stream for ``steps`` at rate ``lr``, as every harness run of the task trains it: ``(model,
    its untrained weights)``. The same arguments give the same weights on the same machine."""
    from lib.core import checks
    from lib.core.model import GPT
    from lib.core.training import TrainConfig, train
    from lib.tasks.graph_reach import graph_model_config

    spec = graph_task(task)  # checks the name
    checks.check_choice(method, "method", tuple(FILLER))
    checks.check_int(seed, "seed", min=0)
    checks.check_int(steps, "steps", min=1)
    checks.check_float(lr, "lr", positive=True)
    filler = FILLER[method]
    torch.manual_seed(seed)
    cfg = graph_model_config(spec)
    if method in ("looped", "looped_injected"):  # the same block, run LOOPS times, weights tied
        from lib.methods.looped import InjectedLoopedGPT, LoopedGPT

        model = (LoopedGPT if method == "looped" else InjectedLoopedGPT)(cfg, LOOPS).to(device)
    else:
        model = GPT(cfg).to(device)
    untrained = copy.deepcopy(model.state_dict())
    gen = torch.Generator().manual_seed(seed)
    stream = training_stream(spec, filler, gen, steps, device, written=method == "cot", curriculum=CURRICULUM_LATENT.get(method))
    train(model, stream,
          TrainConfig(max_steps=steps, lr=lr, warmup_steps=min(20, steps // 10), eval_interval=steps, progress=False),
          loss_fn=lambda m, b: GPT.loss(graph_logits(m, b[0], spec.dense_id), targets=b[1]))
    return model, untrained


def filler_runner(task: str):
    """The run function of ``task`` for every arm of :data:`FILLER`: the 1-layer GPT with no filler,
    pause or dense tokens, the path written out (``cot``), the curriculum from written steps to
    continuous thoughts or pauses (``coconut``, ``pause_curriculum``), or its block looped."""
    graph_task(task)  # checks the name

    def run(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
        start = time.perf_counter()
        spec, filler, steps = graph_task(task), TEST_FILLER[method], size.graph_unseen_steps
        model, untrained = train_graph_model(task, method, seed, steps, lr, device)
        accuracy = graph_accuracy(model, spec, filler, size.eval_questions, device, written=method == "cot")
        mean = {s: sum(a.values()) / len(a) for s, a in accuracy.items()}
        extra = {"by_hops": accuracy["test"], "ood_by_hops": accuracy["test_ood"], "width": spec.width,
                 "frontier_questions_per_step": FRONTIER_BATCH}
        if method in PROBED:  # what the thoughts (or loops) hold, and the same seed's untrained model as the control
            extra["probe"] = probe_summary(model, spec, size.eval_questions, device)
            model.load_state_dict(untrained)
            extra["probe_untrained"] = probe_summary(model, spec, size.eval_questions, device)
        passes = 1.0 + (spec.train_depth - 1 if method == "dense" else 0)  # cot trains teacher-forced: one pass
        if method == "coconut":  # unrolls only its latent slots: the mean over the schedule
            passes = 1.0 + sum(curriculum_latent_slots(t, steps, spec.train_depth) for t in range(steps)) / steps
        if method in ("looped", "looped_injected"):
            passes = float(LOOPS)
        if method in CURRICULUM_LATENT:
            extra["curriculum"] = "each new slot written for half a depth stage, then latent"
        if method == "looped_injected":
            extra["test_loops"] = {"in_distribution": LOOPS, "ood": [max(LOOPS, d) for d in spec.ood_depths]}
        if method == "cot":  # at test it writes d - 1 slots, one pass each: d passes, as dense tokens unrolled
            extra["passes_per_question"] = {"in_distribution": sum(spec.id_depths) / len(spec.id_depths),
                                            "ood": sum(spec.ood_depths) / len(spec.ood_depths)}
        return CellResult(task, method, seed, float(lr), mean["test"], mean["val"], model.n_params(), passes,
                          time.perf_counter() - start, extra, ood_value=mean["test_ood"])

    run.__name__ = f"run_{task}"
    return run


PROBE_DEPTHS = (3, 4, 5)  # the deepest trained depth and both depths no training question has
PROBED = ("dense", "coconut", "looped", "looped_injected")  # the arms that carry a state from step to step


LEARNED_ABOVE = 0.6  # depth-2 accuracy past which a run searched: chance is 0.5, and 600 questions put chance's spread near 0.02


def learned_search(run) -> bool:
    """Whether a graph run learned beyond the one edge lookup that depth 1 needs: its depth-2
    accuracy is above :data:`LEARNED_ABOVE` (a run that did not learn sits at chance there)."""
    from .spec import CellResult

    if not isinstance(run, CellResult) or 2 not in run.extra.get("by_hops", {}):
        raise ValueError("run must be a graph CellResult with extra['by_hops'][2]")
    return run.extra["by_hops"][2] > LEARNED_ABOVE


def _finite(x: float) -> float | None:
    return round(x, 4) if x == x else None  # a group no row has is NaN, which JSON cannot hold


@torch.no_grad()
def probe_summary(model, spec, n_per_depth: int, device="cpu") -> dict:
    """The frontier probe (:mod:`lib.experiments.frontier_probe`) of a model with continuous
    thoughts (dense slots) or loops on the fixed test questions of each depth in
    :data:`PROBE_DEPTHS`: ``{"group_means": {readout: {depth: {k: {group: mean}}}},
    "whole_frontier": {depth: {k: rate}}}`` (logit lens for the rates; keys are strings, as JSON
    stores them). ``k`` counts thoughts, or loops; an injected looped model runs as many loops as
    :func:`graph_accuracy` gives it, ``max(LOOPS, d)``."""
    from contextlib import nullcontext

    from lib.core import checks
    from lib.experiments.frontier_probe import READOUTS, frontier_probe, frontier_rates
    from lib.methods.looped import InjectedLoopedGPT, LoopedGPT, with_loops
    from lib.tasks.graph_reach import graph_eval_sets

    checks.check_module(model)
    sets = graph_eval_sets(spec, n_per_depth, QUESTION_SEED, "none" if isinstance(model, LoopedGPT) else "dense")
    batches = {d: (sets["test"] if d in sets["test"] else sets["test_ood"])[d] for d in PROBE_DEPTHS}
    batches = {d: b.to(device) for d, b in batches.items()}

    def loops(d):  # the loops graph_accuracy runs on depth-d questions
        return with_loops(model, max(LOOPS, d)) if isinstance(model, InjectedLoopedGPT) else nullcontext()

    means, rates = {r: {} for r in READOUTS}, {}
    for d, b in batches.items():
        with loops(d):
            for r in READOUTS:
                means[r][str(d)] = {str(k): {g: _finite(v) for g, v in groups.items()}
                                    for k, groups in frontier_probe(model, b, r).items()}
            rates[str(d)] = {str(k): _finite(v) for k, v in frontier_rates(model, b).items()}
    return {"group_means": means, "whole_frontier": rates}


def shortcut_choices(batch) -> dict[str, torch.Tensor]:
    """The candidate each rule that does not search picks, per row: the one with more incoming
    edges, the one with more outgoing edges (ties: the first listed), and the first listed."""
    from lib.core import checks
    from lib.tasks.graph_reach import GraphBatch

    checks.check_type(batch, "batch", GraphBatch)
    c, picks = batch.candidates, {}
    for name, column in (("more incoming edges", 1), ("more outgoing edges", 0)):
        ends = batch.edges[..., column]
        degree = torch.stack([(ends == c[:, i : i + 1]).sum(1) for i in (0, 1)], dim=1)
        picks[name] = torch.where(degree[:, 1] > degree[:, 0], c[:, 1], c[:, 0])
    picks["first listed"] = c[:, 0]
    return picks


def shortcut_accuracy(spec, n_per_depth: int) -> dict[str, float]:
    """Accuracy of :func:`shortcut_choices`'s rules on the test questions, every depth."""
    from lib.tasks.graph_reach import graph_eval_sets

    sets = graph_eval_sets(spec, n_per_depth, QUESTION_SEED, "none")
    batches = list(sets["test"].values()) + list(sets["test_ood"].values())
    total = sum(len(b.answers) for b in batches)
    hits: dict[str, int] = {}
    for b in batches:
        for name, pick in shortcut_choices(b).items():
            hits[name] = hits.get(name, 0) + int((pick == b.answers).sum())
    return {name: h / total for name, h in hits.items()}


def graph_references(task: str):
    def references(size: Size) -> dict:
        spec = graph_task(task)
        shortcuts = shortcut_accuracy(spec, size.eval_questions)
        return {"chance": 0.5, "one_hop_needed": 0.9, "shortcuts": shortcuts, "best_shortcut": max(shortcuts.values()),
                "train_depths": list(spec.id_depths), "ood_depths": list(spec.ood_depths), "width": spec.width}

    return references


def graph_splits(task: str):
    def splits(size: Size, seeds: tuple[int, ...]) -> dict:
        """The measured overlap between every reported seed's training graphs (reach and frontier
        questions) and the evaluation graphs: 0 by construction, counted anyway."""
        from lib.tasks.graph_reach import graph_eval_sets
        from lib.tasks.splits import split_overlap

        spec = graph_task(task)

        def streams():  # each seed's training graphs, drawn exactly as its runs draw them
            for s in seeds:
                gen = torch.Generator().manual_seed(s)
                for step in range(size.graph_unseen_steps):
                    yield from _draw_step(spec, "none", gen, step, size.graph_unseen_steps)[:2]

        sets = graph_eval_sets(spec, size.eval_questions, QUESTION_SEED, "none")
        return {split: split_overlap(streams(), list(by_depth.values())) for split, by_depth in sets.items()}

    return splits
