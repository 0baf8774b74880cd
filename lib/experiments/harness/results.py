"""Results files: every run, the references, the summary and where it came from (provenance);
written atomically, read back with their types, and merged cell by cell."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .registry import run_gate
from .spec import CellResult, Size
from .summary import summarize


def load_results(path: str | Path) -> dict:
    """A results file written by ``python -m lib.experiments.harness --json``: provenance, size,
    references, runs (as :class:`CellResult`) and summary. Raises naming the file when it is missing or not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results at {path}: generate them with `python -m lib.experiments.harness --size medium --json FILE` (lib/experiments/harness/__init__.py)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    missing = [k for k in ("provenance", "size", "references", "runs") if not isinstance(data, dict) or k not in data]
    if missing:
        raise ValueError(f"{path} lacks {missing}: not a harness results file")
    data["size"] = Size(**{**data["size"], "seeds": tuple(data["size"]["seeds"]), "lrs": tuple(data["size"]["lrs"])})
    data.setdefault("splits", {})  # files written before splits were measured have none
    runs = []
    for r in data["runs"]:
        r = {**r, "extra": dict(r.get("extra", {}))}
        if "role" not in r and "role" in r["extra"]:  # files written before the role was a field of its own
            r["role"] = r["extra"].pop("role")
        runs.append(_run_from_json(r))
    data["runs"] = runs
    return data


def write_results(path: str | Path, size: Size, results: list[CellResult], refs: dict, prov: dict,
                  splits: dict | None = None) -> Path:
    """Write every run, the references, the summary and, per task whose test items are unseen by
    construction, ``splits``: the measured overlap of its training and test items. Via a temporary
    file, so a failure leaves any earlier file untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    for r in results:  # every run says whether it passed its gate, where its task's references are known
        row = asdict(r)
        if r.task in refs:
            row["gate_passed"] = run_gate(r, refs[r.task])
        runs.append(row)
    data = {"provenance": prov, "size": asdict(size), "references": refs, "splits": splits or {}, "runs": runs,
            "summary": summarize(results, refs)}
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, default=float))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_mergeable(data: dict, size: Size, more_seeds: bool = False) -> None:
    """Raise unless runs at ``size`` may be merged into the loaded results ``data``: the same size,
    or with ``more_seeds`` the same size but for reported seeds that include the file's."""
    stored = data["size"]
    if not more_seeds:
        if stored != size:
            raise ValueError(f"the file was written at size {stored.name!r} with other settings; cannot merge {size.name!r} runs")
        return
    if replace(stored, seeds=size.seeds) != size or not set(stored.seeds) <= set(size.seeds):
        raise ValueError(f"more seeds need the file's size with more reported seeds: the file has {stored}, the run {size}")


def stored_cells(data: dict) -> dict[tuple[str, str], tuple[float, list[float], set[int]]]:
    """Per (task, method) of loaded results: the chosen rate, the rates its sweep tried and the
    reported seeds it has (what :func:`lib.experiments.harness.protocol.extend_seeds` needs)."""
    out: dict = {}
    for r in data["runs"]:
        if r.role != "final":
            continue
        lr, grid, seeds = out.get((r.task, r.method), (r.lr, r.extra.get("lr_grid", [r.lr]), set()))
        out[r.task, r.method] = (lr, grid, seeds | {r.seed})
    return out


def merge_results(path: str | Path, size: Size, new: list[CellResult], refs: dict, prov: dict,
                  splits: dict | None = None, more_seeds: bool = False) -> Path:
    """Add ``new`` runs to the results file at ``path`` (written at the same ``size``): runs of the
    same (task, method) already there are replaced, every other run is kept as it was; the file's
    provenance stays and gains an entry under ``"added"`` (``prov``: this batch's commit, command,
    date, wall time); references of tasks the file lacks are added; the summary is recomputed.
    With ``more_seeds`` the new runs are added seeds of stored cells (or new cells): nothing is
    replaced, and the file's size takes the larger seed list."""
    path = Path(path)
    data = load_results(path)
    try:
        check_mergeable(data, size, more_seeds)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not isinstance(new, list) or not all(isinstance(r, CellResult) for r in new):
        raise TypeError("new must be a list of CellResult")
    touched = {(r.task, r.method) for r in new}
    if more_seeds:
        have = {(r.task, r.method, r.seed, r.role) for r in data["runs"]}
        clash = [(r.task, r.method, r.seed) for r in new if (r.task, r.method, r.seed, r.role) in have]
        if clash:
            raise ValueError(f"{path} already has the runs {clash[:3]}: more seeds must be new seeds")
        runs = data["runs"] + new
    else:
        runs = [r for r in data["runs"] if (r.task, r.method) not in touched] + new
    provenance_ = dict(data["provenance"])
    provenance_["added"] = list(provenance_.get("added", [])) + [{**prov, "cells": sorted(f"{t}/{m}" for t, m in touched)}]
    references = {**refs, **data["references"]}
    return write_results(path, size, runs, references, provenance_, {**data["splits"], **(splits or {})})


def _json_lines(file: Path) -> list[dict]:
    # every line of a JSON-lines file that parses to an object: a line cut short by a crash is skipped
    out = []
    for line in file.read_text().splitlines() if file.is_file() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            out.append(row)
    return out


def _run_from_json(r: dict) -> CellResult:
    for key in ("by_hops", "ood_by_hops"):  # JSON keys are strings; hop counts are ints
        if key in r.get("extra", {}):
            r["extra"][key] = {int(k): v for k, v in r["extra"][key].items()}
    return CellResult(**r)


def runs_path(path: str | Path) -> Path:
    """Where a batch writing ``path`` keeps every run as it finishes (JSON lines): a batch longer
    than one sitting resumes run by run (``--resume``)."""
    path = Path(path)
    return path.with_name(path.name + ".runs.jsonl")


def _size_key(size: Size) -> dict:
    # what a run's numbers depend on: every field of its size but the list of reported seeds
    return {k: v for k, v in asdict(size).items() if k != "seeds"}


def code_stamp(device: str = "cpu", threads: int = 1) -> dict:
    """What makes a run: the commit, whether the tree had changes, which change of ``lib/`` (its
    hash), taken once when a batch starts (the modules it runs are loaded then), and the device and
    threads per run (the last digits of a trained number depend on both)."""
    from lib.core.provenance import provenance

    if not isinstance(device, str) or isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"device must be a str and threads an int >= 1, got {device!r} and {threads!r}")
    made = provenance("code stamp", 1, 1, 0.0, device)
    return {**{k: made[k] for k in ("commit", "uncommitted_changes", "lib_diff_sha256")}, "device": device,
            "threads": threads}


def _made_by(row: dict) -> str:
    # the commit, with +lib:<hash> when lib/ had uncommitted changes (+uncommitted when only other files had)
    commit = str(row.get("commit", "unknown"))
    if row.get("lib_diff_sha256"):
        return commit + f"+lib:{row['lib_diff_sha256'][:12]}"
    return commit + ("+uncommitted" if row.get("uncommitted_changes") else "")


def append_run(path: str | Path, run: CellResult, size: Size, stamp: dict | None = None) -> None:
    """Add one finished run to the runs file of ``path``, with the size it was made at and what made
    it (``stamp``, from :func:`code_stamp`; taken now when None). The run's ``role`` is left empty:
    the protocol gives it when the run joins a batch. One write to an ``O_APPEND`` file per line
    (repeated only if the system writes part of it), so worker processes do not interleave."""
    import os

    if not isinstance(run, CellResult) or not isinstance(size, Size):
        raise TypeError("run must be a CellResult and size a Size")
    if stamp is not None and not isinstance(stamp, dict):
        raise TypeError(f"stamp must be a dict from code_stamp() or None, got {type(stamp).__name__}")
    row = {"size": _size_key(size), **(stamp or code_stamp()), "run": {**asdict(run), "role": None}}
    line = (json.dumps(row, default=float) + "\n").encode()
    file = runs_path(path)
    if file.is_file() and file.stat().st_size:
        with open(file, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a line cut short by a crash: end it, so this run is not lost with it
                line = b"\n" + line
    fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def read_kept(path: str | Path, size: Size, like: dict | None = None) -> list[tuple[CellResult, str]]:
    """The runs kept in the runs file of ``path`` that were made at ``size`` (any list of reported
    seeds), each with the code that made it (its commit, ``+lib:<hash>`` when ``lib/`` had
    uncommitted changes); none when there is no such file, and a line cut short by a crash is
    skipped. With ``like`` (a batch's :func:`code_stamp`) only the runs that batch may reuse: made
    on its device with its threads per run, and with no change of ``lib/`` but the one it runs. A
    run from an earlier commit is reused (a batch may span sittings while ``lib/`` moves on): the
    results file lists those commits, and the notebooks name every change to ``lib/`` after them."""
    if not isinstance(size, Size):
        raise TypeError(f"size must be a Size, got {type(size).__name__}")
    if like is not None and not (isinstance(like, dict) and {"device", "threads", "lib_diff_sha256"} <= set(like)):
        raise ValueError("like must be a code_stamp() (with device, threads and lib_diff_sha256) or None")
    want = json.loads(json.dumps(_size_key(size), default=float))  # as JSON gives it back (tuples as lists)
    out = []
    for row in _json_lines(runs_path(path)):
        if row.get("size") != want or not isinstance(row.get("run"), dict):
            continue
        if like is not None and ((row.get("device"), row.get("threads")) != (like["device"], like["threads"])
                                 or row.get("lib_diff_sha256") not in (None, like["lib_diff_sha256"])):
            continue
        out.append((_run_from_json(row["run"]), _made_by(row)))
    return out


@dataclass(frozen=True)
class RunStore:
    """Where a batch keeps each run as it finishes (the runs file of the results path ``path``),
    what makes its runs (``stamp``, from :func:`code_stamp`), and the runs an earlier sitting kept
    that it reuses instead of making again (``kept``: ``(task, method, seed, rate) -> (run, commit)``).
    Built once per batch by :func:`open_run_store`; worker processes get a copy."""

    path: Path
    size: Size
    stamp: dict
    kept: dict

    def find(self, task: str, method: str, seed: int, lr: float) -> CellResult | None:
        """The kept run of ``(task, method, seed, lr)``, marked ``extra["kept_from"]`` with the code
        that made it; None when there is none. Every run seeds itself, so it is the run the batch
        would make."""
        hit = self.kept.get(_run_key(task, method, seed, lr))
        if hit is None:
            return None
        run, commit = copy.deepcopy(hit)
        run.extra["kept_from"] = commit
        return run

    def add(self, run: CellResult) -> None:
        """Keep a run just made."""
        append_run(self.path, run, self.size, self.stamp)


def _run_key(task: str, method: str, seed: int, lr: float) -> tuple:
    return task, method, seed, float(lr)  # JSON gives a float back exactly, and the protocol computes each rate one way


def open_run_store(path: str | Path, size: Size, device: str = "cpu", threads: int = 1, reuse: bool = True) -> RunStore:
    """The :class:`RunStore` of a batch writing ``path`` at ``size`` on ``device`` with ``threads``
    per run: with ``reuse`` the runs an earlier sitting kept that this batch may reuse
    (:func:`read_kept` with this batch's stamp), else none."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a results path, got {type(path).__name__}")
    if not isinstance(size, Size):
        raise TypeError(f"size must be a Size, got {type(size).__name__}")
    stamp = code_stamp(str(device), threads)
    kept = {_run_key(r.task, r.method, r.seed, r.lr): (r, commit) for r, commit in read_kept(path, size, stamp)} if reuse else {}
    return RunStore(Path(path), size, stamp, kept)


def load_results_summary(path: str | Path) -> dict:
    """The summary of a results file, recomputed from its runs and references."""
    data = load_results(path)
    return summarize(data["runs"], data["references"])
