"""One harness comparing every method of the course on the same tasks and budgets.

    python -m lib.harness                 # the small version (what notebook 08 runs on a CPU)
    python -m lib.harness --full --device cuda --json results.json   # full size, for a GPU

Tasks (each with one number per run):
- ``shakespeare``: validation loss of Tiny Shakespeare, nats per character (lower is better);
- ``pointer``: multi-hop pointer chasing (notebook 05), answer accuracy over 1-3 hops;
- ``path_star``: the path-star graph task (notebook 07), whole-path accuracy, forward order.

Methods: ``baseline``; ``pause`` (fixed filler tokens, no vector); ``dense`` (the same places,
fed the previous hidden state, unrolled); ``thoughts`` (learned thought insertion, notebook 06);
``planning`` (encoder-decoder with the future loss, notebook 07).

Budgets: within a task every method has the same parameter count (exactly, or within a few
percent for the encoder-decoder, whose width is chosen to match), the same optimizer steps and
the same real tokens per step. What differs, and is reported: forward passes per step (dense:
depth + 1) and, for thoughts, the extra forward passes of the insertion episodes.

A verdict is "better" or "worse" only when every seed of one method beats every seed of the other
(for 3 vs 3 seeds an exact one-sided rank test gives p = 1/20) *and* the means differ by more
than the task's smallest effect worth reporting; otherwise "no measurable effect".
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

TASKS: tuple[str, ...] = ("shakespeare", "pointer", "path_star")
METHODS: tuple[str, ...] = ("baseline", "pause", "dense", "thoughts", "planning")


@dataclass(frozen=True)
class TaskInfo:
    metric: str
    higher_is_better: bool
    min_effect: float  # the smallest difference of means worth calling an effect


TASK_INFO: dict[str, TaskInfo] = {
    "shakespeare": TaskInfo("validation nats/char", False, 0.01),
    "pointer": TaskInfo("accuracy, 1-3 hops", True, 0.02),
    "path_star": TaskInfo("path accuracy (forward order)", True, 0.02),
}


@dataclass(frozen=True)
class Size:
    """How big every run is. ``small`` fits the notebook on a 2-core CPU; ``full`` wants a GPU."""

    name: str
    seeds: tuple[int, ...]
    text_steps: int
    text_batch: int
    text_window: int  # real tokens per window
    text_d_model: int
    text_layers: int
    text_every: int  # one filler after this many real tokens
    text_val_windows: int
    pointer_steps: int
    path_steps: int


SMALL = Size("small", (0, 1, 2), text_steps=120, text_batch=16, text_window=48, text_d_model=64, text_layers=2,
             text_every=8, text_val_windows=48, pointer_steps=300, path_steps=400)
FULL = Size("full", (0, 1, 2, 3, 4), text_steps=2000, text_batch=32, text_window=96, text_d_model=128, text_layers=4,
            text_every=8, text_val_windows=400, pointer_steps=1000, path_steps=3000)


@dataclass
class CellResult:
    """One run: the task's number, and what it cost."""

    task: str
    method: str
    seed: int
    value: float
    n_params: int
    forward_passes_per_step: float
    seconds: float
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- Tiny Shakespeare
def _text_model_config(size: Size):
    from lib.model import GPTConfig

    n_ctx = size.text_window + (size.text_window - 1) // size.text_every
    return GPTConfig(d_vocab=2048, n_ctx=n_ctx, d_model=size.text_d_model, n_layers=size.text_layers,
                     n_heads=4, d_head=size.text_d_model // 4, d_mlp=4 * size.text_d_model)


def run_text(method: str, seed: int, size: Size, device: torch.device | str = "cpu") -> CellResult:
    """Train on Tiny Shakespeare with one method and return validation nats/char."""
    from lib.data import load_tokenizer, shakespeare_corpus
    from lib.fillers import evaluate_text_nll, filler_logits, interleave_fillers, masked_lm_loss
    from lib.model import GPT
    from lib.training import TrainConfig, lm_batch_fn, nats_per_char, train

    if method not in ("baseline", "pause", "dense"):
        raise ValueError(f"run_text handles baseline, pause and dense, got {method!r}")
    start = time.perf_counter()
    tokenizer, corpus = load_tokenizer(), shakespeare_corpus()
    specials = [tokenizer.dense_id, tokenizer.thought_id]
    kind = None if method == "baseline" else method
    filler = tokenizer.dense_id if method == "dense" else tokenizer.thought_id
    depth = 2  # dense: two unrolled passes in training (exact for the first two fillers of a window)
    torch.manual_seed(seed)
    model = GPT(_text_model_config(size)).to(device)
    batches = lm_batch_fn(corpus.train, size.text_batch, size.text_window, seed=seed, device=device)

    def loss_fn(m, windows):
        if kind is None:
            return m(windows, return_type="loss")
        tokens, targets = interleave_fillers(windows, size.text_every, filler)
        return masked_lm_loss(filler_logits(m, tokens, kind, filler, depth), targets, specials)

    cfg = TrainConfig(max_steps=size.text_steps, lr=3e-3, warmup_steps=max(1, size.text_steps // 10),
                      eval_interval=size.text_steps, progress=False)
    train(model, batches, cfg, loss_fn=loss_fn)
    nll = evaluate_text_nll(model, corpus.val, size.text_window, kind, size.text_every, filler, specials,
                            max_windows=size.text_val_windows)
    value = nats_per_char(nll, len(corpus.val), corpus.val_chars)
    passes = 1 + (depth if method == "dense" else 0)
    return CellResult("shakespeare", method, seed, value, model.n_params(), passes, time.perf_counter() - start,
                      {"nats_per_token": nll})


# --------------------------------------------------------------------------- pointer chasing
POINTER_METHOD = {"baseline": "none", "pause": "pause", "dense": "dense-2"}


def run_pointer(method: str, seed: int, size: Size, device: torch.device | str = "cpu") -> CellResult:
    """Notebook 05's task and model (one layer): mean answer accuracy over 1-3 hops."""
    from lib.pointer_task import PointerSpec, parse_method, train_pointer_model

    if method not in POINTER_METHOD:
        raise ValueError(f"run_pointer handles {tuple(POINTER_METHOD)}, got {method!r}")
    start = time.perf_counter()
    run = train_pointer_model(POINTER_METHOD[method], seed, PointerSpec(), steps=size.pointer_steps, device=device)
    _, depth = parse_method(POINTER_METHOD[method])
    return CellResult("pointer", method, seed, run.mean_accuracy, run.model.n_params(), 1 + depth,
                      time.perf_counter() - start, {"by_hops": run.accuracy})


# --------------------------------------------------------------------------- the harness
RUNNERS: dict[str, Callable[..., CellResult]] = {"shakespeare": run_text, "pointer": run_pointer}


def supported(task: str, method: str) -> bool:
    """Whether this harness can run ``method`` on ``task``."""
    return task in RUNNERS and method in _methods_of(task)


def _methods_of(task: str) -> tuple[str, ...]:
    return {"shakespeare": ("baseline", "pause", "dense"), "pointer": tuple(POINTER_METHOD)}.get(task, ())


def run_harness(
    size: Size = SMALL,
    tasks: tuple[str, ...] = TASKS,
    methods: tuple[str, ...] = METHODS,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[CellResult]:
    """Every supported (task, method) pair over ``size.seeds``."""
    from tqdm import tqdm

    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {TASKS}")
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    jobs = [(t, m, s) for t in tasks for m in methods if supported(t, m) for s in size.seeds]
    results = []
    for task, method, seed in tqdm(jobs, desc="harness", disable=not progress):
        results.append(RUNNERS[task](method, seed, size, device))
    return results


def values(results: list[CellResult], task: str, method: str) -> list[float]:
    """The per-seed numbers of one (task, method) cell, in seed order."""
    return [r.value for r in sorted(results, key=lambda r: r.seed) if r.task == task and r.method == method]


def verdict(baseline: list[float], method: list[float], higher_is_better: bool, min_effect: float) -> str:
    """``"better"``, ``"worse"`` or ``"no measurable effect"`` for ``method`` against ``baseline``.

    Better means every seed of the method beats every seed of the baseline (complete separation:
    for 3 vs 3 seeds an exact one-sided rank test gives p = 0.05) and the means differ by more than
    ``min_effect``; worse likewise the other way.
    """
    if len(baseline) < 2 or len(method) < 2:
        raise ValueError("a verdict needs at least 2 seeds on each side")
    if min_effect < 0:
        raise ValueError(f"min_effect must be >= 0, got {min_effect}")
    sign = 1.0 if higher_is_better else -1.0
    gain = sign * (sum(method) / len(method) - sum(baseline) / len(baseline))
    if min(sign * m for m in method) > max(sign * b for b in baseline) and gain > min_effect:
        return "better"
    if max(sign * m for m in method) < min(sign * b for b in baseline) and -gain > min_effect:
        return "worse"
    return "no measurable effect"


def summarize(results: list[CellResult]) -> dict[str, dict[str, dict]]:
    """Per task and method: mean, sd, n, per-seed values, parameters, passes per step, and the verdict."""
    from lib.plotting import mean_and_spread

    out: dict[str, dict[str, dict]] = {}
    for task in TASKS:
        base = values(results, task, "baseline")
        for method in METHODS:
            v = values(results, task, method)
            if not v:
                continue
            cell = [r for r in results if r.task == task and r.method == method]
            mean, sd = mean_and_spread(v)
            info = TASK_INFO[task]
            out.setdefault(task, {})[method] = {
                "mean": mean, "sd": sd, "n": len(v), "values": v,
                "n_params": cell[0].n_params, "forward_passes_per_step": cell[0].forward_passes_per_step,
                "verdict": "reference" if method == "baseline" or len(base) < 2 or len(v) < 2
                else verdict(base, v, info.higher_is_better, info.min_effect),
            }
    return out


def format_table(summary: dict[str, dict[str, dict]]) -> str:
    """A plain-text table: one block per task, one row per method."""
    lines = []
    for task, cells in summary.items():
        info = TASK_INFO[task]
        lines.append(f"{task} ({info.metric}, {'higher' if info.higher_is_better else 'lower'} is better)")
        lines.append(f"  {'method':<10}{'mean':>9}{'sd':>9}{'seeds':>7}{'params':>10}{'passes':>8}  verdict vs baseline")
        for method, c in cells.items():
            lines.append(f"  {method:<10}{c['mean']:>9.3f}{c['sd']:>9.3f}{c['n']:>7}{c['n_params']:>10,}"
                         f"{c['forward_passes_per_step']:>8.1f}  {c['verdict']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full size (5 seeds, long runs): use a GPU")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--json", default=None, help="also write every run and the summary to this file")
    args = parser.parse_args(argv)
    from lib.training import make_reproducible, pick_device

    make_reproducible(seed=0, threads=max(1, min(2, torch.get_num_threads())))
    device = pick_device(args.device)
    size = FULL if args.full else SMALL
    results = run_harness(size, tuple(args.tasks), tuple(args.methods), device)
    summary = summarize(results)
    print(format_table(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": asdict(size), "device": str(device), "runs": [asdict(r) for r in results],
                       "summary": summary}, f, indent=2, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
