"""Results files: every run, the references, the summary and where it came from (provenance);
written atomically, read back with their types, and merged cell by cell."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
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
        r = dict(r)
        extra = dict(r.get("extra", {}))
        if "role" not in r and "role" in extra:  # files written before the role was a field of its own
            r["role"] = extra.pop("role")
        runs.append(CellResult(**{**r, "extra": extra}))
    data["runs"] = runs
    for r in data["runs"]:
        for key in ("by_hops", "ood_by_hops"):  # JSON keys are strings; hop counts are ints
            if key in r.extra:
                r.extra[key] = {int(k): v for k, v in r.extra[key].items()}
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


def partial_path(path: str | Path) -> Path:
    """Where a batch writing ``path`` keeps the runs of each pair as it finishes (JSON lines)."""
    path = Path(path)
    return path.with_name(path.name + ".partial.jsonl")


def append_partial(path: str | Path, runs: list[CellResult]) -> None:
    """Add the runs of one finished pair to the partial file of ``path``: one line, flushed."""
    with open(partial_path(path), "a") as f:
        f.write(json.dumps([asdict(r) for r in runs], default=float) + "\n")
        f.flush()


def _json_lines(file: Path) -> list:
    # every line of a JSON-lines file that parses: a line cut short by a crash is skipped
    out = []
    for line in file.read_text().splitlines() if file.is_file() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _run_from_json(r: dict) -> CellResult:
    for key in ("by_hops", "ood_by_hops"):  # JSON keys are strings; hop counts are ints
        if key in r.get("extra", {}):
            r["extra"][key] = {int(k): v for k, v in r["extra"][key].items()}
    return CellResult(**r)


def read_partial(path: str | Path) -> list[CellResult]:
    """The runs kept in the partial file of ``path`` (none when there is no such file); a last line
    cut short by a crash is skipped."""
    return [_run_from_json(r) for rows in _json_lines(partial_path(path)) for r in rows]


def runs_path(path: str | Path) -> Path:
    """Where a batch writing ``path`` keeps every run as it finishes (JSON lines): a batch longer
    than one sitting resumes run by run (``--resume``), not only pair by pair."""
    path = Path(path)
    return path.with_name(path.name + ".runs.jsonl")


def _size_key(size: Size) -> dict:
    # what a run's numbers depend on: every field of its size but the list of reported seeds
    return {k: v for k, v in asdict(size).items() if k != "seeds"}


def code_stamp() -> dict:
    """Which code makes a run: the commit, whether the tree had changes, and which change of
    ``lib/`` (its hash), taken once when a batch starts (the modules it runs are loaded then)."""
    from lib.core.provenance import provenance

    made = provenance("code stamp", 1, 1, 0.0, "cpu")
    return {k: made[k] for k in ("commit", "uncommitted_changes", "lib_diff_sha256")}


def append_run(path: str | Path, run: CellResult, size: Size, stamp: dict | None = None) -> None:
    """Add one finished run to the runs file of ``path``, with the size it was made at and the code
    that made it (``stamp``, from :func:`code_stamp`; taken now when None). The run's ``role`` is
    left empty: the protocol gives it when the run joins a batch. One write to an ``O_APPEND`` file
    per line (repeated only if the system writes part of it), so worker processes do not interleave."""
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


def read_runs(path: str | Path, size: Size) -> list[CellResult]:
    """The runs kept in the runs file of ``path`` that were made at ``size`` (any list of reported
    seeds); none when there is no such file. A line cut short by a crash is skipped."""
    return [run for run, _ in read_kept(path, size)]


def read_kept(path: str | Path, size: Size) -> list[tuple[CellResult, str]]:
    """:func:`read_runs` with the code that made each run: its commit, with ``+lib:<hash>`` when
    ``lib/`` had uncommitted changes (``+uncommitted`` when only other files had)."""
    if not isinstance(size, Size):
        raise TypeError(f"size must be a Size, got {type(size).__name__}")
    want = json.loads(json.dumps(_size_key(size), default=float))  # as JSON gives it back (tuples as lists)
    out = []
    for row in _json_lines(runs_path(path)):
        if row.get("size") != want:
            continue
        commit = str(row.get("commit", "unknown"))
        if row.get("lib_diff_sha256"):
            commit += f"+lib:{row['lib_diff_sha256'][:12]}"
        elif row.get("uncommitted_changes"):
            commit += "+uncommitted"
        out.append((_run_from_json(row["run"]), commit))
    return out


def load_results_summary(path: str | Path) -> dict:
    """The summary of a results file, recomputed from its runs and references."""
    data = load_results(path)
    return summarize(data["runs"], data["references"])
