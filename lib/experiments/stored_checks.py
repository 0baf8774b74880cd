"""Checking that stored results come from this code, without asking a CPU for bitwise equality.

A 2,000-step training run is chaotic: the same code, seed and data on two CPUs agree in their first
steps and drift apart in the last digits later (measured: path-star's forward baseline, seed 1,
gives 0.505 on the machine that stored it and 0.475 on an AVX-512 Xeon, under the same kernel
pins). So a stored number is tied to the code by two checks that hold on any CPU:

1. **The opening losses.** The first :data:`OPENING_STEPS` training losses of a stored run depend on
   the code, the seed, the data order and the learning rate, and on a CPU's rounding only in digits
   far below :data:`OPENING_TOLERANCE`. They are stored beside the run (``extra["opening_losses"]``);
   rerunning just those steps must give them back. A changed initialisation, batch, loss or rate
   moves them by far more than the tolerance (tests/test_stored_results.py shows one that does).
2. **The whole run, within the stored seeds' range.** Rerun to the end, a run must land inside the
   range of its cell's stored seeds, widened by :func:`rerun_margin`: the larger of twice the
   task's minimum effect and the seeds' own standard deviation.

    python -m lib.experiments.stored_checks --fingerprint data/results/harness_medium.json   # record (1) for every reported run
"""

from __future__ import annotations

import argparse
import math
from datetime import datetime, timezone
from pathlib import Path

from lib.core import checks
from lib.experiments.harness import (
    OPENING_STEPS,
    RUNNERS,
    TASK_INFO,
    CellResult,
    Size,
    final_runs,
    load_results,
    write_results,
)
from lib.core.provenance import provenance
from lib.core.training import trace_losses

# Measured on four stored runs: AVX2, AVX-512 and unvectorised kernels give opening losses at most
# 1e-6 apart after 30 steps. A code change moves them by 1e-2 or more.
OPENING_TOLERANCE = 1e-3
WHAT_IS_COMPARED = (
    "extra['opening_losses'] holds the first {steps} training losses of each reported run, recorded by "
    "`python -m lib.experiments.stored_checks --fingerprint`; a rerun of those steps must match each within {tol} "
    "(kernels of other CPUs differ there by about 1e-6). A whole rerun must land within the range of its cell's stored seeds "
    "widened by max(2 x the task's minimum effect, the seeds' standard deviation): long runs are chaotic "
    "in their last digits across CPUs, so no check asks for bitwise equality."
)


def opening_losses(task: str, method: str, seed: int, size: Size, lr: float, steps: int = OPENING_STEPS,
                   device: str = "cpu") -> list[float]:
    """The first ``steps`` training losses of one harness run; the run stops right after them."""
    if task not in RUNNERS:
        raise ValueError(f"task must be one of {sorted(RUNNERS)}, got {task!r}")
    checks.check_int(steps, "steps", min=1)
    with trace_losses(steps, stop=True) as trace:
        RUNNERS[task](method, seed, size, device, lr=lr)
    if not trace.full:
        raise RuntimeError(f"{task}/{method} trained for fewer than {steps} steps ({len(trace.losses)})")
    return trace.losses


def opening_mismatch(stored: CellResult, size: Size, tolerance: float = OPENING_TOLERANCE) -> tuple[float, list[float]]:
    """Rerun the opening steps of ``stored`` and return (the largest difference, the new losses).

    Raises ``ValueError`` when the run has no stored opening losses."""
    checks.check_type(stored, "stored", CellResult)
    checks.check_float(tolerance, "tolerance", positive=True)
    want = stored.extra.get("opening_losses")
    if not want:
        raise ValueError(f"{stored.task}/{stored.method}/seed {stored.seed} has no opening_losses: "
                         "record them with python -m lib.experiments.stored_checks --fingerprint FILE")
    got = opening_losses(stored.task, stored.method, stored.seed, size, stored.lr, steps=len(want))
    return max(abs(a - b) for a, b in zip(got, want)), got


def rerun_margin(values: list[float], min_effect: float) -> float:
    """How far outside its stored seeds' range a whole rerun may land: max(2 x min_effect, sd)."""
    if not isinstance(values, (list, tuple)) or len(values) < 2:
        raise ValueError(f"values must hold at least two stored seeds, got {values!r}")
    checks.check_float(min_effect, "min_effect", min=0.0)
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return max(2 * min_effect, sd)


def stored_range(results: list[CellResult], task: str, method: str) -> tuple[float, float]:
    """The range a whole rerun of one stored cell must land in: its seeds' range, widened by the margin."""
    if task not in TASK_INFO:
        raise ValueError(f"task must be one of {sorted(TASK_INFO)}, got {task!r}")
    values = [r.value for r in final_runs(results, task, method)]
    if len(values) < 2:
        raise ValueError(f"{task}/{method} has {len(values)} stored seeds; the range needs at least two")
    margin = rerun_margin(values, TASK_INFO[task].min_effect)
    return min(values) - margin, max(values) + margin


def fingerprint_file(path: str | Path, steps: int = OPENING_STEPS, progress: bool = True) -> dict:
    """Record the opening losses of every reported run of a results file that lacks them, and say in
    its provenance what they are and how they are compared. Returns the ``fingerprints`` record."""
    from tqdm import tqdm

    path = Path(path)
    data = load_results(path)
    todo = [r for r in data["runs"] if r.role == "final" and not r.extra.get("opening_losses")]
    for r in tqdm(todo, desc="opening losses", disable=not progress):
        r.extra["opening_losses"] = opening_losses(r.task, r.method, r.seed, data["size"], r.lr, steps)
    prov = dict(data["provenance"])
    stamp = provenance(f"python -m lib.experiments.stored_checks --fingerprint {path.as_posix()}", 1, 1, 0.0, "cpu")
    prov["fingerprints"] = {
        "steps": steps,
        "tolerance": OPENING_TOLERANCE,
        "compares": WHAT_IS_COMPARED.format(steps=steps, tol=OPENING_TOLERANCE),
        "recorded": {k: stamp[k] for k in ("commit", "uncommitted_changes", "command", "torch", "platform", "cpu_pins")}
        | {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "runs": len(todo)},
    }
    write_results(path, data["size"], data["runs"], data["references"], prov, data["splits"])
    return prov["fingerprints"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fingerprint", required=True, metavar="FILE", help="a results file of lib.experiments.harness")
    parser.add_argument("--steps", type=int, default=OPENING_STEPS)
    args = parser.parse_args(argv)
    from lib.core.training import make_reproducible

    make_reproducible(seed=0, threads=1)  # the medium file was made by one-thread workers
    record = fingerprint_file(args.fingerprint, args.steps)
    print(f"recorded the opening {record['steps']} losses of {record['recorded']['runs']} runs in {args.fingerprint}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
