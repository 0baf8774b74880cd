"""The protocol every arm goes through: a learning-rate sweep on one seed, chosen on the validation
split, then every seed at the chosen rate; the pairs to run, and running them in worker processes."""

from __future__ import annotations

import torch

from . import registry
from .spec import OPENING_STEPS, SMALL, CellResult, Size


def _traced_run(task: str, method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    # Every run keeps its opening losses: the check that a stored file comes from this code on a
    # CPU that cannot reproduce its last digits (lib.experiments.stored_checks).
    from lib.core.training import trace_losses

    with trace_losses(OPENING_STEPS) as trace:
        result = registry.RUNNERS[task](method, seed, size, device, lr=lr)
    result.extra["opening_losses"] = trace.losses
    return result


def tune_and_run(task: str, method: str, size: Size, device: torch.device | str = "cpu") -> list[CellResult]:
    """The learning-rate sweep on ``size.sweep_seed`` (chosen on the validation split), then every
    seed at the chosen rate. Every run comes back, ``extra["role"]`` saying which is which:
    ``"final"`` (a seed at the chosen rate: what is reported) or ``"sweep"`` (a rate not chosen)."""
    info = registry.TASK_INFO[task]
    sweep = [_traced_run(task, method, size.sweep_seed, size, device, lr) for lr in size.lrs] if len(size.lrs) > 1 else []
    if sweep:
        key = (lambda r: r.val_value) if info.higher_is_better else (lambda r: -r.val_value)
        best = max(sweep, key=key)  # ties: the first (smallest) rate
        chosen = best.lr
    else:
        chosen, best = size.lrs[0], None
    out = []
    for r in sweep:
        r.extra["role"] = "final" if r is best else "sweep"
        out.append(r)
    for seed in size.seeds:
        if best is not None and seed == size.sweep_seed:
            continue
        r = _traced_run(task, method, seed, size, device, chosen)
        r.extra["role"] = "final"
        out.append(r)
    return out


def _job(args) -> list[CellResult]:
    task, method, size, device, threads = args
    from lib.core.training import make_reproducible

    make_reproducible(seed=0, threads=threads)
    return tune_and_run(task, method, size, device)


def harness_jobs(tasks: tuple[str, ...], methods: tuple[str, ...] | None, references: bool = True) -> list[tuple[str, str]]:
    """The (task, method) pairs to run: the methods that apply to each task (all when ``methods``
    is None), plus the trained references when asked."""
    for task in tasks:
        if task not in registry.TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {registry.TASKS}")
    for method in methods or ():
        if method not in registry.ALL_METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {registry.ALL_METHODS}")
    jobs = []
    for task in tasks:
        jobs += [(task, m) for m in registry.TASK_METHODS[task] if methods is None or m in methods]
        if references:
            jobs += [(task, m) for m in registry.REFERENCE_RUNS.get(task, ())]
    return jobs


def run_harness(
    size: Size = SMALL,
    tasks: tuple[str, ...] = registry.TASKS,
    methods: tuple[str, ...] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    references: bool = True,
    jobs: int = 1,
) -> list[CellResult]:
    """Every applicable (task, method) pair, tuned and run over ``size.seeds``. ``jobs > 1`` runs
    pairs in that many worker processes of one thread each (each run seeds itself, so the numbers
    do not depend on the order or the worker)."""
    from tqdm import tqdm

    if not isinstance(size, Size):
        raise TypeError(f"size must be a Size, got {type(size).__name__}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    pairs = harness_jobs(tuple(tasks), None if methods is None else tuple(methods), references)
    results: list[CellResult] = []
    if jobs == 1:
        for task, method in tqdm(pairs, desc="harness", disable=not progress):
            results += tune_and_run(task, method, size, device)
        return results
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(jobs) as pool:
        work = [(t, m, size, str(device), 1) for t, m in pairs]
        for part in tqdm(pool.imap(_job, work), total=len(work), desc="harness", disable=not progress):
            results += part
    return results
