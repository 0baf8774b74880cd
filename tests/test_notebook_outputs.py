"""The nbval convention: no compared output holds a digit that a training run produced.

Training runs do not reproduce bitwise across CPUs (CONTRIBUTING.md, "Numbers from training"), so
a stored output that shows such a number can only be compared on the machine that made it. The
convention: a cell that shows numbers from a training run begins with ``# NBVAL_IGNORE_OUTPUT``
(its stored output stays for readers), and what those numbers show is stated with
``lib.core.claims.claim`` in a compared cell, where nbval compares the ✓ and the statement and the
sanitizer masks the numbers.

This test finds the cells whose output can depend on training by reading the code: a cell is
*trained* if it calls a function that trains (:data:`TRAINING_CALLS`) or reads a name that a
trained cell wrote, or the model it handed to a trainer. A trained cell must be marked, or show
nothing but claim lines, figure lines and text without digits. ``make test`` checks the same
convention by running it: nbval runs the notebooks with other training seeds (``COURSE_SEED=10``,
tests/test_other_seeds.py), and every compared output must still match.
"""

from __future__ import annotations

import ast
import configparser
import re

import nbformat
import pytest

from lib.core.paths import REPO_ROOT

IGNORE = "# NBVAL_IGNORE_OUTPUT"
# Functions (or registries of functions) whose call runs optimizer steps. A method call `.train()`
# is left out on purpose: on a module it only switches the mode, on a tokenizer it counts pairs.
TRAINING_CALLS = frozenset({
    "train", "training_step", "train_pointer_model", "train_induction_model", "train_thinker", "train_lm_arm",
    "train_dense_thinker", "run_harness", "tune_and_run", "RUNNERS", "hops_experiment", "train_and_score",
    "train_graph_model", "load_graph_checkpoint",  # a shipped trained model: its read-outs are a training run's digits
})
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9]*.ipynb"))
FIGURE = re.compile(r"^<Figure size \S+ with \d+ Axes>$")  # the sanitizer may have rewritten the size


def _sanitizers() -> list[tuple[re.Pattern, str]]:
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "nbval_sanitize.cfg")
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


SANITIZERS = _sanitizers()


def _code(source: str) -> str:
    # IPython magics and shell escapes are not Python
    return "\n".join("pass" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _call_name(node: ast.Call) -> str | None:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute) and f.attr != "train":
        return f.attr
    if isinstance(f, ast.Subscript) and isinstance(f.value, ast.Name):
        return f.value.id
    return None


def _base_name(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for t in target.elts for n in _base_name(t)]
    if isinstance(target, ast.Starred):
        return _base_name(target.value)
    if isinstance(target, (ast.Subscript, ast.Attribute)):
        return _base_name(target.value)
    return []


def _bound_inside(stmt: ast.AST) -> set[str]:
    """Names a statement binds for its own use: loop targets, function parameters, a function's locals."""
    names: set[str] = set()
    if isinstance(stmt, (ast.For, ast.While, ast.If, ast.With, ast.Try)):
        # a name assigned in a block is the block's own (t, b = cells[...] in a loop body)
        names.update(n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    for n in ast.walk(stmt):
        if isinstance(n, (ast.For, ast.comprehension)):
            names.update(_base_name(n.target))
        elif isinstance(n, (ast.FunctionDef, ast.Lambda)):
            args = n.args
            names.update(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg] if a)
            if isinstance(n, ast.FunctionDef):
                names.update(x.id for x in ast.walk(n) if isinstance(x, ast.Name) and isinstance(x.ctx, ast.Store))
    return names


def _walk_outside_functions(node: ast.AST):
    """ast.walk that does not enter a function's body (its locals are not the notebook's names)."""
    yield node
    if isinstance(node, (ast.FunctionDef, ast.Lambda)) and node is not None:
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk_outside_functions(child)


def _writes(stmt: ast.AST) -> set[str]:
    """Every name a statement may change: assigned, a container it appends to, the model it trains."""
    names: set[str] = set()
    for n in _walk_outside_functions(stmt):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            names.add(n.id)
        elif isinstance(n, (ast.Subscript, ast.Attribute)) and isinstance(n.ctx, ast.Store):
            names.update(_base_name(n))
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            names.add(n.name)
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            names.update(_base_name(n.func.value))  # runs.append(...), history.update(...)
        if isinstance(n, ast.Call) and _call_name(n) in TRAINING_CALLS and n.args:
            names.update(_base_name(n.args[0]))  # the model a trainer changes in place
    return names


def trained_cells(nb) -> dict[int, str]:
    """Index of each code cell whose output can depend on a training run -> why.

    A forward pass over the top-level statements of every cell: a statement is tainted when it
    calls a trainer or reads a tainted name (other than the ones it binds itself); what it writes
    becomes tainted, and a plain name it rebinds from untainted values is clean again."""
    tainted: set[str] = set()
    out: dict[int, str] = {}
    modules: set[str] = set()  # torch.manual_seed(0) or plt.plot(...) do not make torch trained
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for stmt in ast.parse(_code(cell.source)).body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                modules.update((a.asname or a.name).split(".")[0] for a in stmt.names)
                continue
            calls = sorted({_call_name(n) for n in ast.walk(stmt) if isinstance(n, ast.Call)} & TRAINING_CALLS)
            read = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            hit = (read - _bound_inside(stmt)) & tainted
            if calls or hit:
                out.setdefault(i, f"calls {calls[0]}" if calls else f"reads {sorted(hit)[0]}")
                tainted |= _writes(stmt) - modules
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                for t in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                    for n in ast.walk(t):
                        # a plain name, or a name unpacked from a tuple (``fig, (ax, ax2) = ...``)
                        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and (t is n or isinstance(t, ast.Tuple)):
                            tainted.discard(n.id)
    return out


def _allowed(line: str) -> bool:
    return (not re.search(r"\d", line)) or bool(FIGURE.match(line)) or line.startswith(("✓ ", "✗ ")) and line.endswith("(numbers)")


def compared_text(cell) -> str:
    """What nbval compares of a cell's stored outputs (stdout and plain text), sanitized."""
    parts = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream" and o.name == "stdout":
            parts.append(o.text)
        elif o.output_type in ("execute_result", "display_data") and "text/plain" in o.get("data", {}):
            parts.append(o.data["text/plain"] + "\n")
    text = "".join(parts)
    for pattern, replace in SANITIZERS:
        text = pattern.sub(replace, text)
    return text


def violations(nb) -> list[str]:
    bad = []
    for i, why in trained_cells(nb).items():
        cell = nb.cells[i]
        if cell.source.lstrip().startswith(IGNORE):
            continue
        lines = [line for line in compared_text(cell).splitlines() if not _allowed(line.strip())]
        if lines:
            bad.append(f"cell {i} ({why}) shows {lines[0].strip()[:100]!r}")
    return bad


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_compared_output_holds_a_number_from_training(path):
    bad = violations(nbformat.read(path, as_version=4))
    assert not bad, (f"{path.name}: mark these cells {IGNORE} and state their conclusion with claim() "
                     "in a compared cell:\n" + "\n".join(bad))


def _nb(*cells: tuple[str, str]):
    nb = nbformat.v4.new_notebook()
    for source, output in cells:
        c = nbformat.v4.new_code_cell(source)
        c.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)] if output else []
        nb.cells.append(c)
    return nb


def test_the_check_follows_training_through_names_and_models():
    nb = _nb(
        ("model = GPT(cfg)\nprint(model.n_params())", "1234\n"),  # untrained: compared
        ("history = train(model, batches, cfg)", ""),
        ("print(history.train_loss[-1])", "1.234\n"),  # reads what training wrote
        ("print(evaluate(model))", "0.5\n"),  # the model changed in place
        ("claim(history.val_loss[-1] < 2, 'it learned', loss=history.val_loss[-1])", "✓ it learned (loss=1.234)\n"),
        ("# NBVAL_IGNORE_OUTPUT\nprint(history.seconds)", "3.0\n"),
        ("r = RUNNERS['pointer']('dense', 0, SMALL)\nprint('done')", "done\n"),
        ("history = load_results(path)\nfor r in history:\n    print(r)", "0.25\n"),  # rebound from a file: compared
        ("print(evaluate(model))", "0.5\n"),  # the model is still the trained one
    )
    assert set(trained_cells(nb)) == {1, 2, 3, 4, 5, 6, 8}
    bad = violations(nb)
    assert [b.split(" ")[1] for b in bad] == ["2", "3", "8"], bad


def test_sanitizer_masks_the_numbers_of_a_claim_but_not_a_failed_one():
    c = nbformat.v4.new_code_cell("")
    c.outputs = [nbformat.v4.new_output("stream", name="stdout", text=(
        "✓ dense tokens beat pause (3 hops) (dense=0.998, pause=0.351)\n"
        "✗ it learned (loss=1.2)  <- the numbers do not support this claim in this run\n"))]
    assert compared_text(c).splitlines() == [
        "✓ dense tokens beat pause (3 hops) (numbers)",
        "✗ it learned (loss=1.2)  <- the numbers do not support this claim in this run",
    ]
