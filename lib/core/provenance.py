"""Where a stored result came from: the commit, the command, the software and the machine.

Any layer that writes a results file stamps it with :func:`provenance`, so it lives here, below
the methods and experiments that call it."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch

from lib.core.paths import REPO_ROOT


def _git(*args: str, root: Path = REPO_ROOT) -> str:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


KEPT_RUNS = "*.runs.jsonl"  # a batch's own kept runs (lib.experiments.harness.results.runs_path): its output, not its code


def uncommitted_changes(root: Path = REPO_ROOT) -> bool:
    """Whether a tracked file differs from the commit, leaving out the kept-runs files a resumable
    batch writes as it goes (they would otherwise mark every resumed batch as made by changed code).
    True when git cannot say (no repository, no git): a file must not claim clean code it cannot show."""
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){KEPT_RUNS}", root=Path(root))
    return status != ""


def provenance(command: str, threads: int, jobs: int, wall_seconds: float, device: str) -> dict:
    """Where a results file came from: enough to rerun it and to know when it could differ."""
    if not isinstance(command, str) or not command:
        raise ValueError(f"command must be a non-empty str, got {command!r}")
    diff = _git("diff", "HEAD", "--", "lib")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted_changes": uncommitted_changes(),
        # which uncommitted change of lib/ made the file, if any: compare with `git diff HEAD -- lib | sha256sum`
        "lib_diff_sha256": hashlib.sha256((diff + "\n").encode()).hexdigest() if diff not in ("", "unknown") else None,
        "command": command, "torch": torch.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "device": device, "threads_per_job": threads, "jobs": jobs,
        "cpu_pins": {k: os.environ.get(k) for k in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "wall_seconds": round(wall_seconds, 1),
    }
