"""``python -m lib.experiments.harness``: run the comparison and print (and optionally store) its table."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import torch

from lib.core.provenance import provenance

from . import registry
from .protocol import run_harness
from .results import load_results_summary, merge_results, write_results
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
    parser.add_argument("--no-references", action="store_true", help="skip the trained reference runs (path-star reversed)")
    args = parser.parse_args(argv)
    if args.add and not args.json:
        parser.error("--add needs --json FILE (the results to merge into)")
    if args.add and not Path(args.json).is_file():
        parser.error(f"--add: {args.json} does not exist")
    from lib.core.training import make_reproducible, pick_device

    threads = 1 if args.jobs > 1 else max(1, min(2, torch.get_num_threads()))
    make_reproducible(seed=0, threads=threads)
    device = pick_device(args.device)
    size = FULL if args.full else SIZES[args.size]
    start = time.perf_counter()
    results = run_harness(size, tuple(args.tasks), None if args.methods is None else tuple(args.methods), device,
                          jobs=args.jobs, references=not args.no_references)
    refs = {t: registry.task_references(t, size) for t in args.tasks}
    splits = {t: registry.TASK_REGISTRY[t].splits(size, size.seeds) for t in args.tasks if registry.TASK_REGISTRY[t].splits}
    if args.json:
        command = "python -m lib.experiments.harness " + " ".join(sys.argv[1:] if argv is None else argv)
        prov = provenance(command, threads, args.jobs, time.perf_counter() - start, str(device))
        if args.add:
            merge_results(args.json, size, results, refs, prov, splits)
            print(format_table(load_results_summary(args.json)))
            return 0
        write_results(args.json, size, results, refs, prov, splits)
    print(format_table(summarize(results, refs)))
    return 0
