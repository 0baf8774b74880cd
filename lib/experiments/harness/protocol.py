"""The protocol every arm goes through: a learning-rate sweep on one seed, chosen on the validation
split, then every seed at the chosen rate; the pairs to run, and running them in worker processes."""

from __future__ import annotations

import torch

from . import registry
from .results import RunStore
from .spec import OPENING_STEPS, SMALL, CellResult, Size

CURVE_POINTS = 20  # window means of the training loss kept per run


def _traced_run(task: str, method: str, seed: int, size: Size, device, lr: float, store: RunStore | None = None) -> CellResult:
    # Every run keeps its opening losses: the check that a stored file comes from this code on a
    # CPU that cannot reproduce its last digits (lib.experiments.stored_checks).
    from lib.core.training import trace_losses

    if store is not None and (kept := store.find(task, method, seed, lr)) is not None:
        return kept
    try:
        with trace_losses(OPENING_STEPS) as trace, trace_losses(10**9) as curve:
            result = registry.RUNNERS[task](method, seed, size, device, lr=lr)
    except FloatingPointError as exc:  # a rate too high for this arm: its worst score, not a lost batch of runs
        result = diverged_run(task, method, seed, lr, str(exc))
    else:
        result.extra["opening_losses"] = trace.losses
        result.extra["loss_curve"] = loss_curve(curve.losses)
    if store is not None:
        store.add(result)
    return result


DIVERGED_LOSS = 1e9  # a diverged run's score on a lower-is-better task: finite, so summaries can hold it, and unmissable


def diverged_run(task: str, method: str, seed: int, lr: float, why: str) -> CellResult:
    """The record of a run whose loss stopped being finite: the task's worst score in and out of
    distribution (so a sweep never chooses its rate, and a reported seed fails its gate),
    ``extra["diverged"]`` saying why."""
    worst = 0.0 if registry.TASK_INFO[task].higher_is_better else DIVERGED_LOSS
    ood = worst if registry.TASK_REGISTRY[task].splits is not None else None  # the tasks with unseen splits score OOD too
    return CellResult(task, method, seed, float(lr), worst, worst, 0, 0.0, 0.0,
                      {"diverged": why, "opening_losses": [], "loss_curve": []}, ood_value=ood)


def loss_curve(losses: list[float], points: int = CURVE_POINTS) -> list[float]:
    """The training losses of a run as ``points`` window means (fewer for shorter runs): enough to
    see whether the run had stopped improving when it ended."""
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(f"points must be an int >= 1, got {points!r}")
    if not losses:
        return []
    width = max(1, len(losses) // points)
    return [sum(w) / len(w) for i in range(0, len(losses) - width + 1, width) if (w := losses[i : i + width])]


def next_rate(lrs: list[float], chosen: float) -> float | None:
    """The rate one grid step beyond ``chosen`` when it sits at an edge of the sorted grid ``lrs``
    (the step is the grid's ratio at that edge), else None: a rate picked at the edge may only be
    the best of the rates tried, not the best rate."""
    grid = sorted(lrs)
    if chosen not in grid:
        raise ValueError(f"chosen rate {chosen} is not one of the rates tried {grid}")
    if len(grid) < 2 or grid[0] < chosen < grid[-1]:
        return None
    if chosen == grid[-1]:
        return chosen * grid[-1] / grid[-2]
    return chosen * grid[0] / grid[1]


def _runner(task: str, method: str, size: Size, device, run_many, store: RunStore | None):
    # how a pair's runs are made: one after the other here (kept in ``store``), or by ``run_many``
    if store is not None and not isinstance(store, RunStore):
        raise TypeError(f"store must be a RunStore (open_run_store) or None, got {type(store).__name__}")
    if run_many is None:
        return lambda todo: [_traced_run(task, method, seed, size, device, lr, store) for seed, lr in todo]
    if store is not None:
        raise ValueError("give store or run_many, not both: run_many keeps the runs it makes itself")
    return run_many


def tune_and_run(task: str, method: str, size: Size, device: torch.device | str = "cpu",
                 run_many=None, store: RunStore | None = None) -> list[CellResult]:
    """The learning-rate sweep on the tuning seed ``size.sweep_seed`` (chosen on the validation
    split; a rate chosen at the grid's edge extends the grid that way, up to ``size.lr_extensions``
    times), then every reported seed ``size.seeds`` at the chosen rate. The tuning seed is never a
    reported seed. Every run comes back, ``role`` saying which is which: ``"sweep"`` (a tuning run)
    or ``"final"`` (a reported seed at the chosen rate); each final run's ``extra["lr_grid"]`` lists
    the rates the sweep tried. ``run_many(todo)`` runs a list of ``(seed, lr)`` and returns their
    results in order (default: one after the other here; :func:`run_harness` passes worker
    processes when a batch has fewer pairs than workers). ``store`` (:func:`~.results.open_run_store`,
    with the default ``run_many``): where every run is kept as it finishes, and the runs it already
    holds come back instead of being made again."""
    registry.check_run_args(task, method, size.seeds[0], size.lrs[0])
    run_many = _runner(task, method, size, device, run_many, store)
    info = registry.TASK_INFO[task]
    sweeping = len(size.lrs) > 1
    if sweeping and size.sweep_seed in size.seeds:
        raise ValueError(f"size.sweep_seed {size.sweep_seed} is one of the reported seeds {size.seeds}: "
                         "tune on a seed that is never reported")
    out: list[CellResult] = []
    chosen = size.lrs[0]
    if sweeping:
        key = (lambda r: r.val_value) if info.higher_is_better else (lambda r: -r.val_value)
        tried: list[float] = []
        todo = list(size.lrs)
        for _ in range(size.lr_extensions + 1):
            for run in run_many([(size.sweep_seed, lr) for lr in todo]):
                run.role = "sweep"
                out.append(run)
                tried.append(run.lr)
            chosen = max(out, key=key).lr  # ties: the first rate tried
            nxt = next_rate(tried, chosen)
            if nxt is None:
                break
            todo = [nxt]
    grid = sorted({run.lr for run in out}) or [chosen]
    for r in run_many([(seed, chosen) for seed in size.seeds]):
        r.role = "final"
        r.extra["lr_grid"] = list(grid)
        r.extra["lr_at_edge"] = sweeping and next_rate(r.extra["lr_grid"], chosen) is not None  # still, after extending
        out.append(r)
    return out


def extend_seeds(task: str, method: str, size: Size, device, lr: float, lr_grid: list[float],
                 have: set[int], run_many=None, store: RunStore | None = None) -> list[CellResult]:
    """The reported seeds of ``size`` a stored cell lacks (``have``), run at the rate its sweep
    already chose (``lr``, from the rates ``lr_grid``): more seeds for a cell without tuning it
    again, so the new seeds are exactly what a full run with more seeds would have given them.
    ``run_many`` and ``store`` as in :func:`tune_and_run`."""
    run_many = _runner(task, method, size, device, run_many, store)
    out = []
    for r in run_many([(seed, lr) for seed in size.seeds if seed not in have]):
        r.role = "final"
        r.extra["lr_grid"] = sorted(lr_grid)
        r.extra["lr_at_edge"] = len(lr_grid) > 1 and next_rate(lr_grid, lr) is not None
        out.append(r)
    return out


def _job(args) -> list[CellResult]:
    task, method, size, device, threads, known, store = args
    from lib.core.training import make_reproducible

    make_reproducible(seed=0, threads=threads)
    if known is not None:
        return extend_seeds(task, method, size, device, *known, store=store)
    return tune_and_run(task, method, size, device, store=store)


def _one_run(args) -> CellResult:
    task, method, seed, size, device, lr, threads, store = args
    from lib.core.training import make_reproducible

    make_reproducible(seed=0, threads=threads)
    return _traced_run(task, method, seed, size, device, lr, store)


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
    known: dict | None = None,
    keep=None,
) -> list[CellResult]:
    """Every applicable (task, method) pair, tuned and run over ``size.seeds``. ``jobs > 1`` runs
    pairs in that many worker processes of one thread each, or, when there are fewer pairs than
    workers, the runs of each pair (each run seeds itself, so the numbers do not depend on the
    order or the worker). ``known`` maps a pair to ``(lr, lr_grid, seeds it has)`` from a stored
    file: those pairs only run the missing seeds (:func:`extend_seeds`). ``keep``: a results path
    whose runs file keeps every run as it finishes; the runs it already holds that this batch may
    reuse (same size, device, threads per run and ``lib/``; :func:`~.results.read_kept`) are not
    made again, so a batch resumes run by run in a later sitting."""
    from pathlib import Path

    from tqdm import tqdm

    from .results import open_run_store

    if not isinstance(size, Size):
        raise TypeError(f"size must be a Size, got {type(size).__name__}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    pairs = harness_jobs(tuple(tasks), None if methods is None else tuple(methods), references)
    if not pairs:
        raise ValueError(f"no method of {methods} applies to the tasks {tuple(tasks)}: nothing to run")
    if keep is not None and not isinstance(keep, (str, Path)):
        raise TypeError(f"keep must be a results path or None, got {type(keep).__name__}")
    threads = 1 if jobs > 1 else torch.get_num_threads()
    store = None if keep is None else open_run_store(keep, size, str(device), threads)
    known = known or {}
    results: list[CellResult] = []
    if jobs == 1:
        for task, method in tqdm(pairs, desc="harness", disable=not progress):
            if (task, method) in known:
                results += extend_seeds(task, method, size, device, *known[task, method], store=store)
            else:
                results += tune_and_run(task, method, size, device, store=store)
        return results
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(jobs) as pool:
        if len(pairs) < jobs:
            # Fewer pairs than workers (one arm added to a stored file): the runs of each pair
            # share the workers instead, the sweep's rates together, then the reported seeds.
            for task, method in tqdm(pairs, desc="harness", disable=not progress):
                def run_many(todo, task=task, method=method):
                    return pool.map(_one_run, [(task, method, s, size, str(device), lr, 1, store) for s, lr in todo])
                if (task, method) in known:
                    results += extend_seeds(task, method, size, device, *known[task, method], run_many=run_many)
                else:
                    results += tune_and_run(task, method, size, device, run_many=run_many)
            return results
        work = [(t, m, size, str(device), 1, known.get((t, m)), store) for t, m in pairs]
        for part in tqdm(pool.imap_unordered(_job, work), total=len(work), desc="harness", disable=not progress):
            results += part
    return results
