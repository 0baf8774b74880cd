"""From runs to findings: per cell the mean, spread and comparison with the baseline (Holm over the
task's arms), the reference check that decides whether a verdict may be given, and the table and
sentences that report them."""

from __future__ import annotations

from lib.core.stats import compare_table, mean_and_spread

from . import registry
from .spec import UNDERTRAINED, CellResult


def final_runs(results: list[CellResult], task: str, method: str) -> list[CellResult]:
    """The reported runs of one cell (the chosen rate, every seed), in seed order."""
    cell = [r for r in results if r.task == task and r.method == method and r.extra.get("role", "final") == "final"]
    return sorted(cell, key=lambda r: r.seed)


def values(results: list[CellResult], task: str, method: str) -> list[float]:
    """The per-seed test numbers of one (task, method) cell, in seed order."""
    return [r.value for r in final_runs(results, task, method)]


def summarize(results: list[CellResult], references: dict | None = None) -> dict[str, dict[str, dict]]:
    """Per task and method: mean, sd, n, per-seed values, the chosen rate, parameters, passes per
    step, the comparison with the baseline (:func:`lib.core.stats.compare_table`, Holm over the task's
    methods) and the verdict, or "undertrained: no verdict" when ``references`` are given and the
    baseline has not passed them. Each task also gets ``"_reference"``: the check and its reason."""
    out: dict[str, dict[str, dict]] = {}
    for task in registry.TASKS:
        names = [m for m in registry.TASK_METHODS[task] + registry.REFERENCE_RUNS.get(task, ()) if values(results, task, m)]
        if not names:
            continue
        cells: dict[str, dict] = {}
        for method in names:
            runs = final_runs(results, task, method)
            v = [r.value for r in runs]
            mean, sd = mean_and_spread(v)
            cells[method] = {"mean": mean, "sd": sd, "n": len(v), "values": v, "lr": runs[0].lr,
                             "n_params": runs[0].n_params, "forward_passes_per_step": runs[0].forward_passes_per_step,
                             "verdict": "reference"}
            if task == "pointer":
                cells[method]["one_hop"] = sum(r.extra["by_hops"][1] for r in runs) / len(runs)
        info = registry.TASK_INFO[task]
        compared = {m: cells[m]["values"] for m in names if m in registry.ALL_METHODS}
        passed, why = ((True, "no references given") if references is None
                       else registry.reference_check(task, cells, references[task]))
        if "baseline" in compared and len(compared["baseline"]) >= 2:
            usable = {m: v for m, v in compared.items() if len(v) >= 2}
            table = compare_table(usable, "baseline", info.higher_is_better, info.min_effect)
            for m, row in table.items():
                cells[m].update(p_value=row["p_value"], p_holm=row["p_holm"], difference=row["difference"],
                                verdict=row["verdict"] if passed else UNDERTRAINED)
        cells["_reference"] = {"passed": passed, "why": why}
        out[task] = cells
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
                    "no measurable effect": "no measurable effect", UNDERTRAINED: UNDERTRAINED}[c["verdict"]]
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
        lines.append(f"  {'method':<{w}}{'mean':>8}{'sd':>8}{'seeds':>6}{'lr':>8}{'params':>9}{'passes':>7}"
                     f"{'p':>7}{'Holm':>7}  verdict vs baseline")
        for method, c in rows.items():
            p = f"{c['p_value']:>7.3f}{c['p_holm']:>7.3f}" if "p_value" in c else f"{'':>14}"
            lines.append(f"  {method:<{w}}{c['mean']:>8.3f}{c['sd']:>8.3f}{c['n']:>6}{c['lr']:>8.0e}{c['n_params']:>9,}"
                         f"{c['forward_passes_per_step']:>7.1f}{p}  {c['verdict']}")
        if "_reference" in cells:
            lines.append(f"  reference: {cells['_reference']['why']}")
    return "\n".join(lines)
