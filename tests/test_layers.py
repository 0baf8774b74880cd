"""The layers of lib/ hold: every import goes to the same layer or one before it, and no modules
import each other in a circle. Read from the code (ast), so lazy imports inside functions count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
ORDER = ("core", "tasks", "methods", "experiments", "exercises")  # each may import the ones before it


def module_name(path: Path, lib: Path = LIB) -> str:
    parts = path.relative_to(lib.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ORDER else None


def imports_of(path: Path, lib: Path = LIB) -> list[tuple[int, str]]:
    """(line, imported lib module) for every import in ``path``, relative ones resolved."""
    here = module_name(path, lib)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "lib"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "lib":
                continue
            # ``from lib.core import model`` imports the module lib.core.model
            for a in node.names:
                sub = f"{target}.{a.name}"
                where = lib.parent / Path(*sub.split("."))
                found.append((node.lineno, sub if where.with_suffix(".py").exists() or where.is_dir() else target))
    return found


def layer_violations(lib: Path = LIB) -> list[str]:
    bad = []
    for path in sorted(lib.rglob("*.py")):
        mine = layer_of(module_name(path, lib))
        for line, target in imports_of(path, lib):
            theirs = layer_of(target)
            if mine is None or theirs is None:
                if target not in ("lib",) and mine is not None and theirs is None:
                    bad.append(f"{path.relative_to(lib.parent)}:{line} imports {target}, which is in no layer")
                continue
            if ORDER.index(theirs) > ORDER.index(mine):
                bad.append(f"{path.relative_to(lib.parent)}:{line} imports {target}: {mine} may not import {theirs}")
    return bad


def import_cycles(lib: Path = LIB) -> list[list[str]]:
    """Circles among lib's modules (a package's __init__ re-exporting its own modules is not one)."""
    graph: dict[str, set[str]] = {}
    for path in lib.rglob("*.py"):
        here = module_name(path, lib)
        edges = {t for _, t in imports_of(path, lib) if t != here}
        if path.name == "__init__.py":
            edges = {t for t in edges if not t.startswith(here + ".")}
        graph[here] = {t for t in edges if t.startswith("lib.")}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_every_module_sits_in_a_layer_folder():
    loose = [p.name for p in LIB.glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules outside a layer folder: {loose}; put each in one of {ORDER}"
    assert sorted(p.name for p in LIB.iterdir() if p.is_dir() and (p / "__init__.py").exists()) == sorted(ORDER)


def test_imports_run_one_way():
    assert layer_violations() == []


def test_no_import_circles():
    assert import_cycles() == []


def _write(root: Path, rel: str, text: str) -> None:
    path = root / "lib" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def toy_lib(tmp_path):
    for layer in ORDER:
        _write(tmp_path, f"{layer}/__init__.py", "")
    _write(tmp_path, "__init__.py", "")
    return tmp_path / "lib"


def test_the_old_circle_is_caught(toy_lib):
    # a method importing provenance from the harness, which imports the method: both failures show
    _write(toy_lib.parent, "methods/dense_emit.py", "def f():\n    from lib.experiments.harness import provenance\n")
    _write(toy_lib.parent, "experiments/harness.py", "from lib.methods.dense_emit import f\nprovenance = 1\n")
    bad = layer_violations(toy_lib)
    assert len(bad) == 1 and "lib/methods/dense_emit.py:2 imports lib.experiments.harness" in bad[0]
    assert "methods may not import experiments" in bad[0]
    assert import_cycles(toy_lib) == [["lib.experiments.harness", "lib.methods.dense_emit", "lib.experiments.harness"]]


def test_relative_and_module_imports_resolve(toy_lib):
    _write(toy_lib.parent, "tasks/pointer.py", "from ..experiments import bench\n")
    _write(toy_lib.parent, "experiments/bench.py", "")
    _write(toy_lib.parent, "core/model.py", "from lib.tasks import pointer\n")
    bad = layer_violations(toy_lib)
    assert any("lib/tasks/pointer.py:1 imports lib.experiments.bench" in b for b in bad)
    assert any("lib/core/model.py:1 imports lib.tasks.pointer: core may not import tasks" in b for b in bad)
