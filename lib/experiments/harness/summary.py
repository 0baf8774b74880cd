"""From runs to findings: per cell the mean, spread and comparison with the baseline, the gates that
decide whether a verdict may be given (the task's reference check, and every seed of both arms past
its line), Holm over every comparison of the summary, and the table and sentences that report them."""

from __future__ import annotations

from lib.core.stats import compare_table, holm, mean_and_spread

from . import registry
from .spec import ALPHA, NOT_SIGNIFICANT, UNDERTRAINED, CellResult


def final_runs(results: list[CellResult], task: str, method: str) -> list[CellResult]:
    """The reported runs of one cell (the chosen rate, every seed), in seed order."""
    cell = [r for r in results if r.task == task and r.method == method and r.role == "final"]
    return sorted(cell, key=lambda r: r.seed)


def values(results: list[CellResult], task: str, method: str) -> list[float]:
    """The per-seed test numbers of one (task, method) cell, in seed order."""
    return [r.value for r in final_runs(results, task, method)]


def by_depth(run: CellResult) -> dict[int, float]:
    """A run's accuracy per depth (hops), the trained depths then the never-trained ones
    (``extra["by_hops"]`` and ``extra["ood_by_hops"]``)."""
    if not isinstance(run, CellResult) or "by_hops" not in run.extra:
        raise ValueError("run must be a CellResult with extra['by_hops'] (a task scored per depth)")
    return {**run.extra["by_hops"], **run.extra.get("ood_by_hops", {})}


def mean_by_depth(runs: list[CellResult]) -> dict[int, float]:
    """The mean over ``runs`` (e.g. a cell's reported seeds) of :func:`by_depth`, at the depths the
    first run has; every run must have them."""
    if not isinstance(runs, list) or not runs:
        raise ValueError("runs must be a non-empty list of CellResult")
    per_run = [by_depth(r) for r in runs]
    depths = list(per_run[0])
    if any(set(depths) - set(p) for p in per_run):
        raise ValueError(f"every run must have the depths {depths}")
    return {d: sum(p[d] for p in per_run) / len(per_run) for d in depths}


def pick_cells(summary: dict[str, dict[str, dict]], task: str, methods: tuple[str, ...]) -> dict[str, dict]:
    """The cells of ``summary`` (from :func:`summarize`) for ``task``, for those of ``methods`` it
    holds, in that order (a method not stored yet is left out)."""
    if task not in summary:
        raise ValueError(f"task {task!r} is not in the summary, which has {sorted(summary)}")
    return {m: summary[task][m] for m in methods if m in summary[task]}


def format_cells(cells: dict[str, dict], title: str) -> str:
    """A short table of picked cells (:func:`pick_cells`): the mean over reported seeds, the
    out-of-distribution mean where there is one, and how many seeds passed their gate."""
    lines = [title]
    for m, c in cells.items():
        ood = f"{c['ood_mean']:>9.3f}" if "ood_mean" in c else f"{'':>9}"
        gate = f"{c['gate']['passed']}/{c['gate']['of']}" if "gate" in c else "-"
        lines.append(f"  {m:<17}{c['mean']:>7.3f}{ood}   gate {gate}")
    return "\n".join(lines)


def _gated(cell: dict) -> bool:
    return "gate" not in cell or cell["gate"]["passed"] == cell["gate"]["of"]


def summarize(results: list[CellResult], references: dict | None = None) -> dict[str, dict[str, dict]]:
    """Per task and method: mean, sd, n, per-seed values, the chosen rate, parameters, passes per
    step, the out-of-distribution mean where runs have one, how many seeds passed their gate, and
    the comparison with the baseline (:func:`lib.core.stats.compare`) with its verdict.

    A verdict stands only when (1) ``references`` are given and the task's baseline passes its
    reference check, (2) every reported seed of the arm and of the baseline passes its own gate
    (:func:`registry.run_gate`), else "undertrained: no verdict"; and (3) for "better" or "worse",
    its p-value survives Holm at ``ALPHA`` over **every** comparison in the summary, else
    "separated, not significant after Holm". Each task gets ``"_reference"`` (the check and why) and
    ``"_holm"`` (the family's size and alpha)."""
    out: dict[str, dict[str, dict]] = {}
    family: list[tuple[str, str]] = []
    for task in registry.TASKS:
        names = [m for m in registry.TASK_METHODS[task] + registry.REFERENCE_RUNS.get(task, ()) if values(results, task, m)]
        if not names:
            continue
        if references is not None and task not in references:
            raise ValueError(f"references has no lines for {task!r} (it has {sorted(references)}): pass them, or None for none")
        refs = None if references is None else references[task]
        cells: dict[str, dict] = {}
        for method in names:
            runs = final_runs(results, task, method)
            v = [r.value for r in runs]
            mean, sd = mean_and_spread(v)
            cells[method] = {"mean": mean, "sd": sd, "n": len(v), "values": v, "lr": runs[0].lr,
                             "n_params": runs[0].n_params, "forward_passes_per_step": runs[0].forward_passes_per_step,
                             "verdict": "reference", "lr_at_edge": bool(runs[0].extra.get("lr_at_edge", False))}
            if all("by_hops" in r.extra for r in runs):  # pointer tasks: the 1-hop line every arm must pass
                cells[method]["one_hop"] = sum(r.extra["by_hops"][1] for r in runs) / len(runs)
            if refs is not None:
                gates = [registry.run_gate(r, refs) for r in runs]
                cells[method]["gate"] = {"passed": sum(gates), "of": len(gates)}
            ood = [r.ood_value for r in runs if r.ood_value is not None]
            if ood:
                cells[method]["ood_values"] = ood
                cells[method]["ood_mean"], cells[method]["ood_sd"] = mean_and_spread(ood)
        info = registry.TASK_INFO[task]
        compared = {m: cells[m]["values"] for m in names if m in registry.ALL_METHODS}
        passed, why = (True, "no references given") if refs is None else registry.reference_check(task, cells, refs)
        if "baseline" in compared and len(compared["baseline"]) >= 2:
            usable = {m: v for m, v in compared.items() if len(v) >= 2}
            for m, row in compare_table(usable, "baseline", info.higher_is_better, info.min_effect).items():
                # "unadjusted": the verdict rule on this pair alone, before the gates and Holm have their say
                cells[m].update(p_value=row["p_value"], difference=row["difference"], verdict=row["verdict"],
                                unadjusted=row["verdict"])
                family.append((task, m))
        cells["_reference"] = {"passed": passed, "why": why}
        out[task] = cells
    for (task, m), adjusted in zip(family, holm([out[t][m]["p_value"] for t, m in family])):
        cell, base = out[task][m], out[task]["baseline"]
        cell["p_holm"] = adjusted
        if not out[task]["_reference"]["passed"] or not _gated(cell) or not _gated(base):
            cell["verdict"] = UNDERTRAINED
        elif cell["verdict"] in ("better", "worse") and adjusted > ALPHA:
            cell["verdict"] = NOT_SIGNIFICANT
    for cells in out.values():
        cells["_holm"] = {"family": len(family), "alpha": ALPHA}
    return out


def _method_cells(cells: dict) -> dict:
    return {k: v for k, v in cells.items() if not k.startswith("_")}


def verdict_sentences(summary: dict[str, dict[str, dict]]) -> list[str]:
    """One plain sentence per (task, method) compared with the baseline, with its numbers."""
    lines = []
    for task, cells in summary.items():
        base = cells.get("baseline")
        if base is None:
            continue
        for method, c in _method_cells(cells).items():
            if method == "baseline" or c["verdict"] == "reference":
                continue
            numbers = (f"{c['mean']:.3f} ± {c['sd']:.3f} vs {base['mean']:.3f} ± {base['sd']:.3f} "
                       f"({registry.TASK_INFO[task].metric}; p = {c['p_value']:.3f}, Holm {c['p_holm']:.3f})")
            what = {"better": "better than the baseline", "worse": "worse than the baseline",
                    "no measurable effect": "no measurable effect", UNDERTRAINED: UNDERTRAINED,
                    NOT_SIGNIFICANT: NOT_SIGNIFICANT}[c["verdict"]]
            if "gate" in c:
                what += f" ({c['gate']['passed']} of {c['gate']['of']} seeds past the line)"
            lines.append(f"{task}: {registry.METHOD_NAMES[method]}: {what}, {numbers}")
    return lines


def format_table(summary: dict[str, dict[str, dict]]) -> str:
    """A plain-text table: one block per task, one row per method, the reference check under it."""
    lines = []
    for task, cells in summary.items():
        info = registry.TASK_INFO[task]
        lines.append(f"{task} ({info.metric}, {'higher' if info.higher_is_better else 'lower'} is better)")
        rows = _method_cells(cells)
        w = max([16] + [len(m) + 2 for m in rows])  # 16 fits the original methods; longer names widen it
        ood = any("ood_mean" in c for c in rows.values())
        lines.append(f"  {'method':<{w}}{'mean':>8}{'sd':>8}" + (f"{'OOD':>8}" if ood else "")
                     + f"{'seeds':>6}{'gate':>6}{'lr':>8}{'params':>9}{'passes':>7}{'p':>7}{'Holm':>7}  verdict vs baseline")
        for method, c in rows.items():
            p = f"{c['p_value']:>7.3f}{c['p_holm']:>7.3f}" if "p_value" in c else f"{'':>14}"
            gate = f"{c['gate']['passed']}/{c['gate']['of']}" if "gate" in c else "-"
            ood_col = (f"{c['ood_mean']:>8.3f}" if "ood_mean" in c else f"{'-':>8}") if ood else ""
            lr = f"{c['lr']:.0e}" + ("*" if c.get("lr_at_edge") else "")
            lines.append(f"  {method:<{w}}{c['mean']:>8.3f}{c['sd']:>8.3f}{ood_col}{c['n']:>6}{gate:>6}{lr:>8}"
                         f"{c['n_params']:>9,}{c['forward_passes_per_step']:>7.1f}{p}  {c['verdict']}")
        if any(c.get("lr_at_edge") for c in rows.values()):
            lines.append("  *: the chosen rate is still at the edge of the extended grid (the best rate tried, maybe not the best rate)")
        if "_reference" in cells:
            lines.append(f"  reference: {cells['_reference']['why']}")
        if "_holm" in cells:
            lines.append(f"  Holm over all {cells['_holm']['family']} comparisons of the summary, alpha {cells['_holm']['alpha']}")
    return "\n".join(lines)
