"""The harness's two registries: :data:`TASK_REGISTRY` (what a task measures, its reference lines and
how they are checked) and :data:`ARMS` (each arm's name in sentences, and the function that runs it
on each task it applies to). Adding an arm is one :class:`Arm` entry here plus its test; every list
the rest of the harness uses (:data:`TASK_METHODS`, :data:`RUNNERS`, :data:`METHOD_NAMES`) is read
off these two."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from . import graph_reach, path_star, path_star_unseen, pointer, pointer_unseen, text
from .parts import SELECTED, WARM_SELECTED
from .spec import CellResult, Size, TaskInfo

RunFn = Callable[[str, int, Size, object, float], CellResult]  # (method, seed, size, device, lr)


@dataclass(frozen=True)
class Arm:
    """One arm of the comparison: what it is called in sentences, which question it answers
    (``"comparison"``: notebook 08's table; ``"open question"``: notebook 09's; ``"control"``: a
    published alternative the course's methods must beat to claim their mechanism, run on the unseen
    tasks; ``"reference"``: a trained line, not a method), and how it runs on each task it applies to."""

    name: str
    label: str
    runs: dict[str, RunFn] = field(default_factory=dict)
    group: str = "comparison"


@dataclass(frozen=True)
class Task:
    """One task: its metric, its reference lines (computed per size) and the check that a run is
    past them (``reference_check(cells, refs) -> (passed, why)``)."""

    name: str
    info: TaskInfo
    references: Callable[[Size], dict]
    reference_check: Callable[[dict, dict], tuple[bool, str]]
    run_gate: Callable[[CellResult, dict], bool]  # (one run, the task's references): past the line a trained model must pass
    splits: Callable[[Size, tuple[int, ...]], dict] | None = None  # (size, seeds) -> measured train/test overlap


def _text_check(cells: dict, refs: dict) -> tuple[bool, str]:
    base = cells["baseline"]
    ok = base["mean"] < refs["bigram"]
    return ok, f"baseline {base['mean']:.3f} vs bigram {refs['bigram']:.3f} nats/char: {'below' if ok else 'NOT below'}"


def _pointer_check(cells: dict, refs: dict) -> tuple[bool, str]:
    one_hop = cells["baseline"].get("one_hop")
    ok = one_hop is not None and one_hop >= refs["one_hop_needed"]
    shown = "not measured" if one_hop is None else f"{one_hop:.3f}"
    return ok, f"baseline 1-hop accuracy {shown} (needs >= {refs['one_hop_needed']}; chance {refs['chance']:.3f})"


def _path_star_check(cells: dict, refs: dict) -> tuple[bool, str]:
    base = cells["baseline"]
    need = refs["plateau_fraction_needed"] * refs["one_over_degree"]
    rev = cells.get("reversed", {}).get("mean")
    ok = base["mean"] >= need and rev is not None and rev >= refs["reversed_needed"]
    rev_text = "not run" if rev is None else f"{rev:.3f}"
    return ok, (f"forward baseline {base['mean']:.3f} (needs >= {need:.3f}, 0.9 x 1/degree); "
                f"reversed {rev_text} (needs >= {refs['reversed_needed']})")


def _graph_check(cells: dict, refs: dict) -> tuple[bool, str]:
    base = cells["baseline"]
    one = base.get("one_hop")
    ok = one is not None and one >= refs["one_hop_needed"] and base["mean"] > refs["best_shortcut"]
    shown = "not measured" if one is None else f"{one:.3f}"
    return ok, (f"baseline depth-1 accuracy {shown} (needs >= {refs['one_hop_needed']}), mean {base['mean']:.3f} "
                f"(needs > {refs['best_shortcut']:.3f}, the best rule that does not search; chance 0.5)")


def _text_gate(run: CellResult, refs: dict) -> bool:
    return run.value < refs["bigram"]  # a model that has not beaten counting pairs of tokens has not learned text


def _pointer_gate(run: CellResult, refs: dict) -> bool:
    return run.extra["by_hops"][1] >= refs["one_hop_needed"]  # one hop is a lookup: an arm that misses it is undertrained


def _graph_gate(run: CellResult, refs: dict) -> bool:
    # one step is a lookup the frontier questions teach; a search must also beat every rule that does not search
    return run.extra["by_hops"][1] >= refs["one_hop_needed"] and run.value > refs["best_shortcut"]


def _path_star_gate(run: CellResult, refs: dict) -> bool:
    if run.method == "reversed":
        return run.value >= refs["reversed_needed"]
    return run.value >= refs["plateau_fraction_needed"] * refs["one_over_degree"]


TASK_REGISTRY: dict[str, Task] = {t.name: t for t in (
    Task("shakespeare", TaskInfo("test nats/char", False, 0.01), text.text_references, _text_check, _text_gate),
    Task("pointer", TaskInfo("accuracy, 1-3 hops", True, 0.02), pointer.pointer_references, _pointer_check, _pointer_gate),
    Task("path_star", TaskInfo("path accuracy (forward order)", True, 0.02), path_star.path_star_references,
         _path_star_check, _path_star_gate),
    Task("pointer_unseen", TaskInfo("accuracy on unseen tables, trained hop counts", True, 0.02),
         pointer_unseen.unseen_references, _pointer_check, _pointer_gate, pointer_unseen.unseen_splits),
    Task("path_star_unseen", TaskInfo("path accuracy on unseen graphs (forward order)", True, 0.02),
         path_star_unseen.unseen_references, _path_star_check, _path_star_gate, path_star_unseen.unseen_splits),
    Task("graph_chain_unseen", TaskInfo("accuracy on unseen graphs (one node per frontier), depths 1-3", True, 0.02),
         graph_reach.graph_references("graph_chain_unseen"), _graph_check, _graph_gate,
         graph_reach.graph_splits("graph_chain_unseen")),
    Task("graph_reach_unseen", TaskInfo("accuracy on unseen graphs (two nodes per frontier), depths 1-3", True, 0.02),
         graph_reach.graph_references("graph_reach_unseen"), _graph_check, _graph_gate,
         graph_reach.graph_splits("graph_reach_unseen")),
)}

# The tasks whose test items no training item equals, by construction (lib.tasks.pointer_splits,
# lib.tasks.path_star_splits): the same arms, run by each task's own module.
_UNSEEN_FILLER = {"pointer_unseen": pointer_unseen.run_filler}
_UNSEEN_ENCDEC = {"pointer_unseen": pointer_unseen.run_encdec}
_UNSEEN_SEQUENCE = {"path_star_unseen": path_star_unseen.run_sequence_model}
_GRAPH_FILLER = {t: graph_reach.filler_runner(t) for t in graph_reach.TASKS}

_SELECTED_LABEL = {"dense_selected": "windows selected (lam 1)", "dense_selected_l0": "windows selected (lam 0)",
                   "dense_selected_l3": "windows selected (lam 3)", "dense_selected_random": "windows at random (lam 1)",
                   "selected_warm": "windows selected (lam 1)", "selected_warm_l0": "windows selected (lam 0)",
                   "selected_warm_l3": "windows selected (lam 3)", "selected_warm_random": "windows at random (lam 1)"}

ARMS: dict[str, Arm] = {a.name: a for a in (
    Arm("baseline", "the baseline", {"shakespeare": text.run_language_model, "pointer": pointer.run_filler,
                                     "path_star": path_star.run_sequence_model, **_UNSEEN_FILLER, **_UNSEEN_SEQUENCE,
                                    **_GRAPH_FILLER}),
    Arm("pause", "pause tokens", {"shakespeare": text.run_language_model, "pointer": pointer.run_filler,
                                  "path_star": path_star.run_sequence_model, **_UNSEEN_FILLER, **_UNSEEN_SEQUENCE,
                                    **_GRAPH_FILLER}),
    Arm("dense", "dense tokens", {"shakespeare": text.run_language_model, "pointer": pointer.run_filler,
                                  "path_star": path_star.run_sequence_model, **_UNSEEN_FILLER, **_UNSEEN_SEQUENCE,
                                    **_GRAPH_FILLER}),
    Arm("looped", "a looped block (3 passes, tied)", {"pointer": pointer.run_filler, **_UNSEEN_FILLER, **_GRAPH_FILLER}),
    Arm("deeper", "a deeper GPT (3 layers)", {"pointer": pointer.run_filler, **_UNSEEN_FILLER}),
    Arm("pause_deeper", "pause tokens in the deeper GPT", {"pointer": pointer.run_filler, **_UNSEEN_FILLER}),
    Arm("encdec", "the encoder-decoder alone", {"shakespeare": text.run_language_model, "pointer": pointer.run_encdec,
                                                 "path_star": path_star.run_sequence_model, **_UNSEEN_ENCDEC,
                                                 **_UNSEEN_SEQUENCE}),
    Arm("planning", "the planning loss", {"shakespeare": text.run_language_model, "pointer": pointer.run_encdec,
                                          "path_star": path_star.run_sequence_model, **_UNSEEN_ENCDEC, **_UNSEEN_SEQUENCE}),
    Arm("planning_scored", "the planning loss at scored positions", {"pointer": pointer.run_encdec,
                                                                     "path_star": path_star.run_sequence_model,
                                                                     **_UNSEEN_ENCDEC, **_UNSEEN_SEQUENCE}),
    Arm("cot", "chain of thought (the intermediate nodes written, supervised)",
        {"pointer_unseen": pointer_unseen.run_written, **_GRAPH_FILLER}, "control"),
    Arm("token_feedback", "dense slots fed the predicted token, not the vector",
        {"pointer_unseen": pointer_unseen.run_written}, "control"),
    Arm("coconut", "continuous thoughts after a CoT curriculum (Coconut)",
        {"pointer_unseen": pointer_unseen.run_curriculum, **_GRAPH_FILLER}, "control"),
    Arm("pause_curriculum", "pause tokens after the same curriculum",
        {"pointer_unseen": pointer_unseen.run_curriculum, **_GRAPH_FILLER}, "control"),
    Arm("looped_injected", "a looped block re-reading its input (3 loops; h at test)",
        {"pointer_unseen": pointer_unseen.run_looped_injected, **_GRAPH_FILLER}, "control"),
    Arm("mtp", "multi-token prediction (a head per answer token)", {"path_star_unseen": path_star_unseen.run_parallel_targets},
        "control"),
    Arm("teacherless", "teacherless training (answers from dummy inputs)",
        {"path_star_unseen": path_star_unseen.run_parallel_targets}, "control"),
    Arm("thoughts", "learned thought insertion", {"shakespeare": text.run_thoughts, "pointer": pointer.run_thoughts,
                                                  "path_star": path_star.run_thoughts}),
    *(Arm(name, f"dense tokens at random places, {_SELECTED_LABEL[name]}",
          {"shakespeare": text.run_selected, "pointer": pointer.run_selected}, "open question") for name in SELECTED),
    *(Arm(name, f"dense tokens at random places, {_SELECTED_LABEL[name]}, selected after a warm-up",
          {"shakespeare": text.run_selected}, "open question") for name in WARM_SELECTED),
    Arm("dense_adaptive", "dense tokens the model emits itself", {"pointer": pointer.run_adaptive}, "open question"),
    Arm("dense_thoughts", "dense thoughts placed by episodes", {"shakespeare": text.run_thoughts,
                                                                 "pointer": pointer.run_thoughts}, "open question"),
    Arm("reversed", "the baseline on reversed answers", {"path_star": path_star.run_sequence_model, **_UNSEEN_SEQUENCE},
        "reference"),
)}

def arm_tables(arms: dict[str, Arm]) -> dict:
    """Every list the harness reads, derived from ``arms`` (in its order): ``METHODS`` (notebook
    08's comparison), ``NEW_METHODS`` (09's open questions), ``CONTROLS`` (the literature's
    controls), ``ALL_METHODS``, ``TASK_METHODS``
    (the methods each task runs), ``REFERENCE_RUNS`` and ``METHOD_NAMES``."""
    methods = tuple(a.name for a in arms.values() if a.group == "comparison")
    new = tuple(a.name for a in arms.values() if a.group == "open question")
    controls = tuple(a.name for a in arms.values() if a.group == "control")
    unknown = {a.name: a.group for a in arms.values() if a.group not in ("comparison", "open question", "control", "reference")}
    if unknown:
        raise ValueError(f"arm group must be 'comparison', 'open question', 'control' or 'reference', got {unknown}")
    every = methods + new + controls
    return {
        "METHODS": methods, "NEW_METHODS": new, "CONTROLS": controls, "ALL_METHODS": every,
        "TASK_METHODS": {t: tuple(m for m in every if t in arms[m].runs) for t in TASK_REGISTRY},
        "REFERENCE_RUNS": {t: refs for t in TASK_REGISTRY
                           if (refs := tuple(a.name for a in arms.values() if a.group == "reference" and t in a.runs))},
        "METHOD_NAMES": {name: a.label for name, a in arms.items()},
    }


TASKS: tuple[str, ...] = tuple(TASK_REGISTRY)
TASK_INFO: dict[str, TaskInfo] = {name: t.info for name, t in TASK_REGISTRY.items()}
_tables = arm_tables(ARMS)
METHODS: tuple[str, ...] = _tables["METHODS"]  # notebook 08's table
NEW_METHODS: tuple[str, ...] = _tables["NEW_METHODS"]  # notebook 09's open questions
CONTROLS: tuple[str, ...] = _tables["CONTROLS"]  # the literature's controls, on the unseen tasks
ALL_METHODS: tuple[str, ...] = _tables["ALL_METHODS"]
TASK_METHODS: dict[str, tuple[str, ...]] = _tables["TASK_METHODS"]
REFERENCE_RUNS: dict[str, tuple[str, ...]] = _tables["REFERENCE_RUNS"]
METHOD_NAMES: dict[str, str] = _tables["METHOD_NAMES"]


def check_run_args(task: str, method: str, seed, lr) -> None:
    if task not in TASK_REGISTRY:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    allowed = TASK_METHODS[task] + REFERENCE_RUNS.get(task, ())
    if method not in allowed:
        raise ValueError(f"method {method!r} does not apply to {task}; choose from {allowed}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")


def _task_runner(task: str) -> Callable[..., CellResult]:
    def run(method: str, seed: int, size: Size, device="cpu", lr: float = 3e-3) -> CellResult:
        check_run_args(task, method, seed, lr)
        return ARMS[method].runs[task](method, seed, size, device, lr)

    run.__name__ = f"run_{task}"
    run.__doc__ = f"Train ``method`` from scratch on {task} with ``seed`` and ``lr``; its test and validation numbers."
    return run


RUNNERS: dict[str, Callable[..., CellResult]] = {t: _task_runner(t) for t in TASKS}


def task_references(task: str, size: Size) -> dict:
    """The reference lines of one task, on the splits its runs are scored on (:mod:`lib.tasks.references`)."""
    if task not in TASK_REGISTRY:
        raise ValueError(f"unknown task {task!r}; choose from {TASKS}")
    return TASK_REGISTRY[task].references(size)


def run_gate(run: CellResult, refs: dict) -> bool:
    """Is this run past its task's line for a trained model (:attr:`Task.run_gate`)?"""
    if run.task not in TASK_REGISTRY:
        raise ValueError(f"unknown task {run.task!r}")
    if run.extra.get("diverged"):
        return False  # a run whose loss stopped being finite has learned nothing to judge
    return bool(TASK_REGISTRY[run.task].run_gate(run, refs))


def reference_check(task: str, cells: dict[str, dict], refs: dict) -> tuple[bool, str]:
    """Is the task's baseline past its reference line? ``(passed, one line saying why)``."""
    if task not in TASK_REGISTRY:
        raise ValueError(f"unknown task {task!r}")
    if cells.get("baseline") is None:
        return False, "no baseline run"
    return TASK_REGISTRY[task].reference_check(cells, refs)
