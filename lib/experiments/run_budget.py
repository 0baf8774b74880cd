"""What regenerating the stored medium results costs on this CPU, read from the files themselves:
every harness run stores the seconds it took (one thread, beside the other jobs of its batch), and
every batch its wall time. No training happens here.

    python -m lib.experiments.run_budget            # the stored runs on the new tasks, 2 jobs, 90 minutes
    python -m lib.experiments.run_budget --json     # the same as one JSON object

The budget asks whether one command could regenerate the files in ``budget_minutes`` with ``jobs``
one-thread workers. The runs' own seconds give a lower bound on any schedule's wall time: their sum
over ``jobs``, as if the workers never waited. If even the reported seeds alone (no sweep) exceed
the budget, no scheduling fits it: the runs themselves must get cheaper or fewer. Whether they could
be shorter, the stored loss curves say (:func:`late_drop`): an arm whose loss still falls over the
last fifth of its steps would be stopped before it settled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from lib.core import checks
from lib.core.paths import REPO_ROOT

RESULTS = REPO_ROOT / "data" / "results"
# The stored files on the new tasks that notebooks 08 and 09 read (the older medium files are an
# earlier protocol): the comparison on unseen items (08), the text arms (09) and the until-marked count (09).
WHOLE_RUN = ("harness_unseen.json", "harness_text.json", "dense_adaptive_until.json")


def batch_wall_seconds(result: dict) -> float:
    """The wall time of every batch that made the file: the first and each ``--add`` after it."""
    prov = result.get("provenance") if isinstance(result, dict) else None
    batches = [prov, *prov.get("added", [])] if isinstance(prov, dict) else []
    if not batches or not all(isinstance(b, dict) and isinstance(b.get("wall_seconds"), (int, float)) for b in batches):
        raise ValueError("result must carry provenance with wall_seconds for its first batch and each added one")
    return sum(float(b["wall_seconds"]) for b in batches)


def run_seconds(result: dict) -> dict[str, float]:
    """CPU seconds of the file's runs, split into ``"sweep"`` (the tuning seed) and ``"final"`` (the
    reported seeds). A file without per-run seconds (the until-marked experiment stores one result
    per seed, not runs) counts its batches' wall time times their jobs, all as ``"final"``."""
    batch_wall_seconds(result)  # checks the provenance
    runs = result.get("runs")
    if runs:
        out = {"sweep": 0.0, "final": 0.0}
        for r in runs:
            sec = r.get("seconds") if isinstance(r, dict) else None
            if r.get("role") not in out or isinstance(sec, bool) or not isinstance(sec, (int, float)) \
                    or not math.isfinite(sec) or sec < 0:
                raise ValueError(f"result: every run must have a role (sweep or final) and its seconds (finite, >= 0), "
                                 f"got role {r.get('role')!r}, seconds {sec!r}")
            out[r["role"]] += float(sec)
        return out
    prov = result["provenance"]
    batches = [prov, *prov.get("added", [])]
    return {"sweep": 0.0, "final": sum(float(b["wall_seconds"]) * int(b.get("jobs", 1)) for b in batches)}


def late_drop(curve: list[float], fifth: float = 0.2) -> tuple[float, float]:
    """How much the loss fell over the last ``fifth`` of training (``curve``: evenly spaced training
    losses, each a mean over its stretch of steps): the mean of the stretch before the last fifth
    less the mean of the last fifth, and the standard error of that difference from the points'
    spread within each stretch (which a falling loss also widens, so the error errs large). A drop
    of more than twice its error says the run was still learning when it stopped. Under a decaying
    learning rate the loss also falls as the rate does, and a shorter run would decay sooner, so
    there this says less; the path-star runs keep a constant rate."""
    values = [float(x) for x in curve] if isinstance(curve, (list, tuple)) else None
    if isinstance(fifth, bool) or not isinstance(fifth, (int, float)) or not 0 < fifth <= 0.5:
        raise ValueError(f"fifth must be a number in (0, 0.5], got {fifth!r}")
    if not values or not all(math.isfinite(x) for x in values):
        raise ValueError(f"curve must be a list of finite losses, got {curve!r}")
    k = int(round(len(values) * fifth))
    if k < 2:
        raise ValueError(f"curve must hold at least 2 points in each of its last two stretches of {fifth}, "
                         f"got {len(values)} points")
    before, last = values[-2 * k: -k], values[-k:]

    def mean_var(v):
        mu = sum(v) / len(v)
        return mu, sum((x - mu) ** 2 for x in v) / (len(v) - 1)

    (mb, vb), (ml, vl) = mean_var(before), mean_var(last)
    return mb - ml, math.sqrt(vb / k + vl / k)


def late_drops_by_arm(result: dict, fifth: float = 0.2) -> dict[str, list[tuple[float, float]]]:
    """Per ``task/method``, :func:`late_drop` of each reported seed's stored ``loss_curve``; the runs
    as the file holds them (dicts) or as :func:`lib.experiments.harness.load_results` gives them."""
    if not isinstance(result, dict) or not isinstance(result.get("runs"), list):
        raise ValueError("result must be a stored harness file (a dict with its runs)")
    out: dict[str, list[tuple[float, float]]] = {}
    for r in result["runs"]:
        field = r.get if isinstance(r, dict) else lambda name, default=None, run=r: getattr(run, name, default)
        curve = (field("extra") or {}).get("loss_curve")
        curve = json.loads(curve) if isinstance(curve, str) else curve
        if field("role") != "final" or not curve:  # a diverged run stores none
            continue
        out.setdefault(f"{field('task')}/{field('method')}", []).append(late_drop(curve, fifth))
    return out


def whole_run_cost(files: tuple[str, ...] = WHOLE_RUN, jobs: int = 2, budget_minutes: float = 90.0,
                   results_dir: Path | str = RESULTS) -> dict:
    """Per file and in all: CPU minutes of the sweeps and of the reported seeds, the wall minutes its
    batches took, and a lower bound on one command's wall time with ``jobs`` workers (the CPU
    minutes over ``jobs``, or the longest run if longer), with and without the sweeps; ``fits`` and
    ``finals_fit`` say whether each is within ``budget_minutes``. The runs' seconds were measured
    beside the other jobs of their batch, so the bound holds, within the timing noise of a run, for
    as many workers as those batches ran; more would assume cores the machine did not give them
    (refused), and for fewer it is an estimate, since a run alone may go faster than beside another."""
    if not isinstance(files, tuple) or not files or not all(isinstance(f, str) for f in files):
        raise ValueError(f"files must be a non-empty tuple of file names, got {files!r}")
    checks.check_int(jobs, "jobs", min=1)
    if isinstance(budget_minutes, bool) or not isinstance(budget_minutes, (int, float)) or not budget_minutes > 0:
        raise ValueError(f"budget_minutes must be a number > 0, got {budget_minutes!r}")
    if not isinstance(results_dir, (str, Path)) or not Path(results_dir).is_dir():
        raise ValueError(f"results_dir must be a folder, got {results_dir!r}")
    per_file, measured_jobs, longest = {}, [], 0.0
    for name in files:
        path = Path(results_dir) / name
        if not path.is_file():
            raise ValueError(f"files: {name} is not in {results_dir}")
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"files: {name} is not JSON ({exc})") from None
        cpu = run_seconds(result)
        prov = result["provenance"]
        measured_jobs += [int(b.get("jobs", 1)) for b in [prov, *prov.get("added", [])]]
        runs = result.get("runs") or []
        longest = max([longest, *(float(r["seconds"]) / 60 for r in runs)])
        per_file[name] = {"sweep_cpu_min": cpu["sweep"] / 60, "final_cpu_min": cpu["final"] / 60,
                          "batch_wall_min": batch_wall_seconds(result) / 60, "from_runs": bool(runs)}
    if jobs > max(measured_jobs):
        raise ValueError(f"jobs must be at most {max(measured_jobs)}, the most the files' runs were measured beside, "
                         f"got {jobs}")
    sweep = sum(f["sweep_cpu_min"] for f in per_file.values())
    final = sum(f["final_cpu_min"] for f in per_file.values())
    bound, finals_bound = max((sweep + final) / jobs, longest), max(final / jobs, longest)
    return {"files": per_file, "jobs": jobs, "budget_min": float(budget_minutes), "sweep_cpu_min": sweep,
            "final_cpu_min": final, "batch_wall_min": sum(f["batch_wall_min"] for f in per_file.values()),
            "wall_lower_bound_min": bound, "finals_wall_lower_bound_min": finals_bound,
            "fits": bound <= budget_minutes, "finals_fit": finals_bound <= budget_minutes,
            "speedup_needed": bound / budget_minutes}


def format_cost(cost: dict) -> str:
    """:func:`whole_run_cost`'s result as a table and one sentence."""
    if not isinstance(cost, dict) or "files" not in cost or "wall_lower_bound_min" not in cost:
        raise ValueError("cost must come from whole_run_cost")
    lines = [f"{'file':<30}{'sweep CPU min':>15}{'seeds CPU min':>15}{'batches took (wall min)':>25}"]
    for name, f in cost["files"].items():
        mark = "" if f["from_runs"] else " *"
        lines.append(f"{name + mark:<30}{f['sweep_cpu_min']:>15.1f}{f['final_cpu_min']:>15.1f}{f['batch_wall_min']:>25.1f}")
    lines.append(f"{'all':<30}{cost['sweep_cpu_min']:>15.1f}{cost['final_cpu_min']:>15.1f}{cost['batch_wall_min']:>25.1f}")
    if not all(f["from_runs"] for f in cost["files"].values()):
        lines.append("* no per-run seconds stored: its batches' wall time times their jobs")
    verdict = (f"fits" if cost["fits"] else
               f"does not fit; the runs would have to be at least {cost['speedup_needed']:.1f}x cheaper")
    lines.append(f"with {cost['jobs']} jobs one command needs at least {cost['wall_lower_bound_min']:.0f} min "
                 f"({cost['finals_wall_lower_bound_min']:.0f} min for the reported seeds alone) against a budget of "
                 f"{cost['budget_min']:.0f}: {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lib.experiments.run_budget", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", nargs="+", default=list(WHOLE_RUN))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--budget-minutes", type=float, default=90.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        cost = whole_run_cost(tuple(args.files), args.jobs, args.budget_minutes)
    except ValueError as exc:
        parser.error(str(exc))
    drops = {}
    for name in args.files:
        result = json.loads((RESULTS / name).read_text())
        if result.get("runs"):
            drops |= late_drops_by_arm(result)
    if args.json:
        print(json.dumps({**cost, "late_drop": drops}, indent=1))
        return 0
    print(format_cost(cost))
    print("\nhow much each arm's training loss fell over its last fifth of steps, per reported seed "
          "(nats; * more than twice its error):")
    for arm, per_seed in drops.items():
        print(f"  {arm:<36}" + " ".join(f"{d:+.3f}{'*' if d > 2 * e else ' '}" for d, e in per_seed))
    return 0


__all__ = ["WHOLE_RUN", "batch_wall_seconds", "format_cost", "late_drop", "late_drops_by_arm", "run_seconds",
           "whole_run_cost"]


if __name__ == "__main__":
    raise SystemExit(main())
