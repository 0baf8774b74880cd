"""``python -m lib.experiments.harness``: run the comparison and print (and optionally store) its table."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from lib.core.provenance import provenance

from . import registry
from .protocol import run_harness
from .results import (
    check_mergeable, load_results, load_results_summary, merge_results, runs_path, stored_cells, write_results,
)
from .spec import FULL, SIZES
from .summary import format_table, summarize


def main(argv: list[str] | None = None) -> int:
    doc = importlib.import_module(__package__).__doc__
    parser = argparse.ArgumentParser(prog="python -m lib.experiments.harness", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--full", action="store_true", help="the same as --size full")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--tasks", nargs="+", default=list(registry.TASKS), choices=registry.TASKS)
    parser.add_argument("--methods", nargs="+", default=None, choices=registry.ALL_METHODS)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes, one thread each (default 1: this process)")
    parser.add_argument("--json", default=None, help="also write every run, the references and the summary to this file")
    parser.add_argument("--add", action="store_true",
                        help="merge the runs into the existing --json file (same size) instead of overwriting it: "
                             "cells run now replace the same cells there, the rest is kept, provenance records the batch")
    parser.add_argument("--more-seeds", action="store_true",
                        help="with --add: cells already in the file keep their sweep and chosen rate and run only the "
                             "reported seeds they lack; cells not in the file are tuned and run in full")
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="the reported seeds (default: the size's own); with --add --more-seeds, e.g. "
                             "--seeds 0 1 2 3 4 5 6 gives a 5-seed file's cells seeds 5 and 6")
    parser.add_argument("--lrs", nargs="+", type=float, default=None,
                        help="the rates of the sweep (default: the size's own); one rate runs every seed at it with no "
                             "sweep, e.g. to ask whether another rate learns more often: such a file has a size of its "
                             "own, and --add refuses to merge it into a file swept over other rates")
    parser.add_argument("--resume", action="store_true",
                        help="with --json: pick up every run an interrupted batch finished (FILE.runs.jsonl) on this "
                             "device with these threads per run; they are not made again. Without --resume a batch "
                             "writing FILE deletes that file first")
    parser.add_argument("--no-references", action="store_true", help="skip the trained reference runs (path-star reversed)")
    args = parser.parse_args(argv)
    if args.add and not args.json:
        parser.error("--add needs --json FILE (the results to merge into)")
    if args.add and not Path(args.json).is_file():
        parser.error(f"--add: {args.json} does not exist")
    if args.more_seeds and not args.add:
        parser.error("--more-seeds needs --add (the file whose cells get more seeds)")
    from lib.core.training import make_reproducible, pick_device

    size = FULL if args.full else SIZES[args.size]
    if args.seeds is not None:
        try:
            size = replace(size, seeds=tuple(args.seeds))
        except ValueError as exc:
            parser.error(f"--seeds: {exc}")
    if args.lrs is not None:
        try:
            size = replace(size, lrs=tuple(args.lrs))
        except ValueError as exc:
            parser.error(f"--lrs: {exc}")
    known = None
    if args.add:  # refuse an incompatible file before an hour of runs, not after
        stored = load_results(args.json)
        try:
            check_mergeable(stored, size, args.more_seeds)
        except ValueError as exc:
            parser.error(f"--add {args.json}: {exc}")
        if args.more_seeds:
            known = {k: v for k, v in stored_cells(stored).items() if k[0] in args.tasks}
    threads = 1 if args.jobs > 1 else max(1, min(2, torch.get_num_threads()))
    make_reproducible(seed=0, threads=threads)
    device = pick_device(args.device)
    command = "python -m lib.experiments.harness " + " ".join(sys.argv[1:] if argv is None else argv)
    prov = provenance(command, threads, args.jobs, 0.0, str(device))  # the code as it was when the runs started
    if args.resume and not args.json:
        parser.error("--resume needs --json FILE (whose kept runs to pick up)")
    if args.json and not args.resume:
        runs_path(args.json).unlink(missing_ok=True)  # a new batch: nothing of an older one is picked up
    start = time.perf_counter()
    results = run_harness(size, tuple(args.tasks), None if args.methods is None else tuple(args.methods), device,
                          jobs=args.jobs, references=not args.no_references, known=known, keep=args.json)
    refs = {t: registry.task_references(t, size) for t in args.tasks}
    splits = {t: registry.TASK_REGISTRY[t].splits(size, size.seeds) for t in args.tasks if registry.TASK_REGISTRY[t].splits}
    if args.json:
        prov["wall_seconds"] = round(time.perf_counter() - start, 1)
        resumed = [r.extra["kept_from"] for r in results if "kept_from" in r.extra]
        if resumed:  # made by an earlier sitting of this batch: not in its wall time, maybe at another commit
            prov["resumed_runs"] = len(resumed)
            prov["resumed_run_commits"] = sorted(set(resumed))
        if args.add:
            merge_results(args.json, size, results, refs, prov, splits, more_seeds=args.more_seeds)
            runs_path(args.json).unlink(missing_ok=True)
            print(format_table(load_results_summary(args.json)))
            return 0
        write_results(args.json, size, results, refs, prov, splits)
        runs_path(args.json).unlink(missing_ok=True)
    print(format_table(summarize(results, refs)))
    return 0
