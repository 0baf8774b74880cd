"""Train / val / test splits of the synthetic tasks: test questions never occur in training (and
the check would notice if they did), splits are a function of the item, out-of-distribution
questions are well formed and answerable, and the old samplers are untouched."""

import hashlib
import importlib.util
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from lib.tasks import path_star, pointer_task
from lib.tasks.path_star import PathStarSpec, _assemble as assemble_star, sample_path_star
from lib.tasks.path_star_splits import (
    PathStarSplitSpec,
    graph_rows,
    graph_splits,
    path_star_eval_sets,
    sample_path_star_split,
)
from lib.tasks.pointer_splits import (
    PointerSplitSpec,
    pointer_batch_splits,
    pointer_eval_sets,
    sample_pointer_split,
    table_splits,
)
from lib.tasks.pointer_task import PointerSpec, sample_pointer_batch
from lib.tasks.references import path_star_forward_references
from lib.tasks.splits import SPLIT_FRACTIONS, SPLITS, hash_buckets, split_overlap

ROOT = Path(__file__).resolve().parents[1]
TRAIN_DRAWS = 100_000
POINTER = PointerSplitSpec()
STAR = PathStarSplitSpec()


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pointer_train():
    """The training stream of a run: 100,000 questions in batches of 1000 from one generator."""
    g = gen(0)
    return [sample_pointer_split(POINTER, 1000, g, "train") for _ in range(TRAIN_DRAWS // 1000)]


@pytest.fixture(scope="module")
def star_train():
    g = gen(0)
    return [sample_path_star_split(STAR.spec, 1000, g, "train") for _ in range(TRAIN_DRAWS // 1000)]


# --------------------------------------------------------------------------- no overlap
def test_pointer_test_questions_never_occur_in_training(pointer_train):
    sets = pointer_eval_sets(POINTER, 1000, seed=5)
    test_id = list(sets["test"].values())
    test_ood = list(sets["test_ood"].values())
    val = list(sets["val"].values())
    for name, items in (("test", test_id), ("test_ood", test_ood), ("val", val)):
        record = split_overlap(pointer_train, items)
        assert record["train_draws"] == TRAIN_DRAWS and record["test_items"] == 1000 * len(items)
        assert record["overlap"] == 0 and record["overlap_fraction"] == 0.0, name
    # Stronger: no test or val *table* occurs in training, whatever the start node or hop count.
    seen = {tuple(t) for b in pointer_train for t in b.tokens[:, : POINTER.n_nodes].tolist()}
    for b in test_id + test_ood + val:
        assert not any(tuple(t) in seen for t in b.tokens[:, : POINTER.n_nodes].tolist())
    assert {s for b in pointer_train for s in pointer_batch_splits(b)} == {"train"}
    assert {s for b in test_id + test_ood for s in pointer_batch_splits(b)} == {"test"}
    assert {s for b in val for s in pointer_batch_splits(b)} == {"val"}


def test_path_star_test_prompts_never_occur_in_training(star_train):
    sets = path_star_eval_sets(STAR, 2000, seed=5)
    for name, items in sets.items():
        record = split_overlap(star_train, items)
        assert record == {"train_draws": TRAIN_DRAWS, "train_distinct": record["train_distinct"], "test_items": 2000,
                          "overlap": 0, "overlap_fraction": 0.0}, name
    # Stronger: no test graph occurs in training under any edge order or query.
    seen = {tuple(r) for b in star_train for r in graph_rows(b).tolist()}
    assert not any(tuple(r) in seen for r in graph_rows(sets["test"]).tolist())
    assert set(graph_splits(sets["test"])) == set(graph_splits(sets["test_ood"])) == {"test"}
    assert set(graph_splits(sets["val"])) == {"val"}
    assert {s for b in star_train[:5] for s in graph_splits(b)} == {"train"}
    # The graph-level count can fail too: fresh draws from the train split do meet training graphs.
    fresh = graph_rows(sample_path_star_split(STAR.spec, 2000, gen(77), "train")).tolist()
    assert sum(tuple(r) in seen for r in fresh) / 2000 > 0.1


def test_sampling_100k_is_fast():
    import time

    start = time.perf_counter()
    sample_pointer_split(POINTER, TRAIN_DRAWS, gen(1), "train")
    sample_path_star_split(STAR.spec, TRAIN_DRAWS, gen(1), "train")
    assert time.perf_counter() - start < 10


# --------------------------------------------------------------------------- negative controls
def test_overlap_is_found_when_test_items_come_from_training(pointer_train, star_train):
    # Rows taken from the training stream itself: every one is found.
    picked = pointer_train[3].select(list(range(0, 1000, 7)))
    assert split_overlap(pointer_train, picked)["overlap_fraction"] == 1.0
    assert split_overlap(star_train, star_train[-1])["overlap"] == 1000
    # Fresh draws from the *train* split at a size small enough to repeat: found too.
    small = PointerSplitSpec(n_nodes=5)
    g = gen(2)
    train = [sample_pointer_split(small, 1000, g, "train") for _ in range(20)]
    leaked = split_overlap(train, sample_pointer_split(small, 2000, gen(3), "train"))
    assert leaked["overlap_fraction"] > 0.9
    # The same size drawn from the test split: none, so the split (not the size) gives the zero.
    assert split_overlap(train, sample_pointer_split(small, 2000, gen(3), "test"))["overlap"] == 0
    # The old way (one stream, no split) at the notebooks' size: most test questions were seen.
    g = gen(0)
    old = [sample_pointer_batch(PointerSpec(), 64, g, "none") for _ in range(600)]
    record = split_overlap(old, [sample_pointer_batch(PointerSpec(), 600, gen(1234 + h), "none", h) for h in (1, 2, 3)])
    assert record["overlap_fraction"] > 0.9
    star_old = sample_path_star(PathStarSpec(degree=2, path_len=3, n_nodes=5), 300 * 64, gen(1000))
    assert split_overlap(star_old, sample_path_star(PathStarSpec(degree=2, path_len=3, n_nodes=5), 500, gen(99)))[
        "overlap_fraction"] == 1.0


# --------------------------------------------------------------------------- splits are a function of the item
def test_pointer_split_is_a_function_of_the_table():
    spec = PointerSpec(n_nodes=POINTER.n_nodes)
    a = sample_pointer_batch(spec, 3000, gen(11), "none").tokens[:, : spec.n_nodes]
    codes = table_splits(a)
    assert torch.equal(codes, table_splits(a))  # again
    perm = torch.randperm(len(a), generator=gen(4))
    assert torch.equal(table_splits(a[perm]), codes[perm])  # row order and batch mates do not matter
    assert torch.equal(table_splits(a[:10]), codes[:10])
    # The same table met in another question (other start, hops, filler, seed) keeps its split.
    b = sample_pointer_split(POINTER, 500, gen(12), "val", "dense", POINTER.ood_hops, decoys=2)
    c = sample_pointer_split(POINTER, 500, gen(13), "val", "none", 1)
    assert set(pointer_batch_splits(b)) == set(pointer_batch_splits(c)) == {"val"}


def test_path_star_split_is_a_function_of_the_graph():
    spec = STAR.spec
    labels = torch.rand(2000, spec.n_nodes, generator=gen(5)).argsort(dim=1)[:, : spec.n_graph_nodes]
    base = assemble_star(spec, labels, torch.arange(spec.n_edges).repeat(2000, 1), torch.zeros(2000, dtype=torch.long), False)
    # Other edge orders, other queried leaves, reversed answers: the same graphs, the same splits.
    order = torch.rand(2000, spec.n_edges, generator=gen(6)).argsort(dim=1)
    arm = torch.randint(0, spec.degree, (2000,), generator=gen(7))
    other = assemble_star(spec, labels, order, arm, True)
    # The arms listed in another order in the labels: the same star.
    arms = labels[:, 1:].view(2000, spec.degree, -1).flip(1).reshape(2000, -1)
    swapped = assemble_star(spec, torch.cat([labels[:, :1], arms], dim=1), order, arm, False)
    assert torch.equal(graph_rows(base), graph_rows(other)) and torch.equal(graph_rows(base), graph_rows(swapped))
    assert graph_splits(base) == graph_splits(other) == graph_splits(swapped)
    assert not torch.equal(base.tokens, other.tokens)


@pytest.mark.parametrize("n", [20_000])
def test_split_sizes_are_as_designed(n):
    ptr = Counter(pointer_batch_splits(sample_pointer_batch(PointerSpec(n_nodes=POINTER.n_nodes), n, gen(8), "none")))
    star = Counter(graph_splits(sample_path_star(STAR.spec, n, gen(8))))
    assert SPLIT_FRACTIONS == {"train": 0.8, "val": 0.1, "test": 0.1}
    for counts in (ptr, star):
        for split in SPLITS:  # 4 binomial standard deviations at most
            assert abs(counts[split] / n - SPLIT_FRACTIONS[split]) < 4 * (0.16 / n) ** 0.5 + 1e-9, (split, counts)
    # Every table of the default size, enumerated: the split sizes are pinned (results depend on them).
    import itertools

    tables = torch.tensor(list(itertools.permutations(range(POINTER.n_nodes))))
    assert torch.bincount(table_splits(tables), minlength=3).tolist() == [32215, 4169, 3936]
    buckets = hash_buckets(torch.arange(50_000)[:, None], "uniformity")
    assert abs(buckets.float().mean().item() - 49.5) < 0.6


def test_samplers_are_deterministic_per_seed():
    a = sample_pointer_split(POINTER, 300, gen(21), "test", hops=POINTER.ood_hops)
    b = sample_pointer_split(POINTER, 300, gen(21), "test", hops=POINTER.ood_hops)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.targets, b.targets)
    c = sample_path_star_split(STAR.ood_spec, 300, gen(21), "test")
    d = sample_path_star_split(STAR.ood_spec, 300, gen(21), "test")
    assert torch.equal(c.tokens, d.tokens)
    e = sample_pointer_split(POINTER, 300, gen(22), "test", hops=POINTER.ood_hops)
    assert not torch.equal(a.tokens, e.tokens)


# --------------------------------------------------------------------------- OOD questions are well formed
def follow(table, x, h):
    for _ in range(h):
        x = table[x]
    return x


@pytest.mark.parametrize("filler", ["none", "pause", "dense"])
def test_pointer_ood_questions_are_answerable(filler):
    spec = POINTER.spec
    assert POINTER.id_hops == (1, 2, 3) and POINTER.ood_hops == (4, 5, 6) and spec.max_hops == 6
    b = sample_pointer_split(POINTER, 400, gen(31), "test", filler, POINTER.ood_hops)
    assert set(b.hops.tolist()) == set(POINTER.ood_hops)
    # pointer_model_config(spec) sizes the model by these two: the deeper questions fit it.
    assert int(b.tokens.max()) < spec.vocab_size and b.tokens.shape[1] <= spec.seq_len("dense")
    n = spec.n_nodes
    for row in range(len(b.tokens)):
        toks = b.tokens[row].tolist()
        table, h = toks[:n], int(b.hops[row])
        assert sorted(table) == list(range(n))
        assert toks[n] == spec.query_id and toks[n + 1] == spec.hop_id(h)
        x = toks[b.start_pos[row]]
        assert toks[b.answer_pos[row]] == int(b.answers[row]) == follow(table, x, h)
        assert b.targets[row, b.answer_pos[row] - 1] == follow(table, x, h) and (b.targets[row] != -100).sum() == 1
        fill = toks[b.start_pos[row] + 1 : b.answer_pos[row]]
        assert fill == ([] if filler == "none" else [spec.filler_id(filler)] * (h - 1))


def test_pointer_training_stream_asks_only_trained_hops(pointer_train):
    hops = torch.cat([b.hops for b in pointer_train])
    assert set(hops.tolist()) == set(POINTER.id_hops)
    counts = torch.bincount(hops)[1:].float() / len(hops)
    assert (counts - 1 / 3).abs().max() < 0.01


def walk(edges, start, goal):
    """The path from start to goal by following the edge list (independent of the sampler)."""
    nxt = {}
    for u, v in edges:
        nxt.setdefault(u, []).append(v)
    for first in nxt[start]:
        path = [start, first]
        while path[-1] in nxt:
            (step,) = nxt[path[-1]]  # off the centre, one way on
            path.append(step)
        if path[-1] == goal:
            return path
    raise AssertionError("no path")


@pytest.mark.parametrize("reverse", [False, True])
def test_path_star_ood_problems_are_answerable(reverse):
    ood = STAR.ood_spec
    assert ood.degree == STAR.degree and ood.path_len == STAR.path_len + 1
    b = sample_path_star_split(ood, 300, gen(41), "test", reverse=reverse)
    assert b.tokens.shape[1] == STAR.n_ctx and int(b.tokens.max()) < STAR.vocab_size
    for row in range(len(b.tokens)):
        toks = b.tokens[row].tolist()
        edges = [tuple(toks[2 * i : 2 * i + 2]) for i in range(ood.n_edges)]
        q, centre, leaf, a = toks[2 * ood.n_edges : ood.prompt_len]
        assert q == ood.query_id and a == ood.answer_id and len({x for e in edges for x in e}) == ood.n_graph_nodes
        path = walk(edges, centre, leaf)
        assert len(path) == ood.path_len
        expected = path[::-1] if reverse else path
        assert b.answers[row].tolist() == expected == toks[ood.prompt_len :]


def test_path_star_plateau_holds_at_the_new_sizes():
    """A model that does everything but choose the arm: pick a successor of the centre at random,
    then follow the edges. It scores 1/degree, and only the step after the centre is uncertain."""
    rng = random.Random(0)
    for spec in (STAR.spec, STAR.ood_spec):
        ref = path_star_forward_references(spec.degree, spec.path_len)
        b = sample_path_star_split(spec, 3000, gen(51), "test")
        hits = 0
        for row in b.tokens.tolist():
            edges = [tuple(row[2 * i : 2 * i + 2]) for i in range(spec.n_edges)]
            centre, leaf = row[2 * spec.n_edges + 1], row[2 * spec.n_edges + 2]
            nxt: dict = {}
            for u, v in edges:
                nxt.setdefault(u, []).append(v)
            assert len(nxt[centre]) == spec.degree and all(len(vs) == 1 for u, vs in nxt.items() if u != centre)
            guess = [centre, rng.choice(nxt[centre])]
            while guess[-1] in nxt:
                guess.append(nxt[guess[-1]][0])
            hits += guess == row[spec.prompt_len :]
        assert abs(hits / 3000 - ref["forward_plateau"]) < 0.03
        assert ref["forward_plateau_by_position"] == [1.0, 1 / spec.degree] + [1.0] * (spec.path_len - 2)
        assert ref["reversed_ceiling"] == 1.0


# --------------------------------------------------------------------------- arguments
def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="split"):
        sample_pointer_split(POINTER, 4, gen(0), "dev")
    with pytest.raises(TypeError, match="split"):
        sample_path_star_split(STAR.spec, 4, gen(0), 1)
    with pytest.raises(ValueError, match="hops"):
        sample_pointer_split(POINTER, 4, gen(0), "test", hops=7)
    with pytest.raises(ValueError, match="hops"):
        sample_pointer_split(POINTER, 4, gen(0), "test", hops=())
    with pytest.raises(ValueError, match="batch_size"):
        sample_pointer_split(POINTER, 0, gen(0), "train")
    with pytest.raises(ValueError, match="decoys"):
        sample_pointer_split(POINTER, 4, gen(0), "train", "none", decoys=1)
    with pytest.raises(ValueError, match="path_len"):
        PathStarSplitSpec(path_len=2)
    with pytest.raises(ValueError, match="n_nodes"):
        PathStarSplitSpec(degree=3, path_len=4, n_nodes=10)  # the OOD graphs need 13 labels
    with pytest.raises(ValueError, match="train_hops"):
        PointerSplitSpec(train_hops=0)
    with pytest.raises(ValueError, match="path_len"):
        path_star_forward_references(3, 2)
    with pytest.raises(ValueError, match="train"):
        split_overlap([], sample_pointer_split(POINTER, 4, gen(0), "test"))
    with pytest.raises(TypeError, match="train"):
        split_overlap(torch.zeros(3), sample_pointer_split(POINTER, 4, gen(0), "test"))
    with pytest.raises(TypeError, match="test"):
        split_overlap(sample_pointer_split(POINTER, 4, gen(0), "train"), sample_path_star_split(STAR.spec, 4, gen(0), "test"))
    with pytest.raises(ValueError, match="n_per_hop"):
        pointer_eval_sets(POINTER, 0, 1)


# --------------------------------------------------------------------------- the old samplers are untouched
def _digest(*tensors):
    m = hashlib.sha256()
    for t in tensors:
        m.update(t.contiguous().numpy().astype("<i8").tobytes())
    return m.hexdigest()[:16]


def _old_cases():
    for filler in ("none", "pause", "dense"):
        for hops in (None, 2):
            for decoys in ((0, 2) if filler != "none" else (0,)):
                yield ("ptr", filler, hops, decoys)
    for spec in (PathStarSpec(), PathStarSpec(degree=2, path_len=3, n_nodes=5)):
        for rev in (False, True):
            yield ("ps", spec, rev)


def _draw(ptr_module, star_module, case):
    if case[0] == "ptr":
        _, filler, hops, decoys = case
        b = ptr_module.sample_pointer_batch(ptr_module.PointerSpec(), 256, gen(7), filler, hops, decoys)
        return _digest(b.tokens, b.targets, b.answers, b.hops, b.chain, b.start_pos, b.answer_pos, b.useful.long())
    _, spec, rev = case
    spec = star_module.PathStarSpec(spec.degree, spec.path_len, spec.n_nodes)
    b = star_module.sample_path_star(spec, 256, gen(7), reverse=rev)
    return _digest(b.tokens, b.targets, b.answers)


# Digests of the samplers' output before the split modules were added (the same cases as _old_cases).
BEFORE = ["af54f43ebd1126a4", "78a2f2795d2f74f3", "134e9ffd8513146e", "d1a527a5ef0ef550", "a44d12cf9b07d227",
          "da4c44de01c7d896", "78120a6531e6d50a", "5215eecc836dea80", "811c59ae3c488dea", "77fdd2e32718ee24",
          "b923bc340c7241f4", "7a0c121534e86fd5", "e154e8f0c0fc1cb0", "d3fd7b4682377f1b"]


def test_old_samplers_give_the_batches_they_gave_before():
    assert [_draw(pointer_task, path_star, c) for c in _old_cases()] == BEFORE


def _git(*args):
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("no git checkout to compare with")
    return subprocess.run([git, *args], cwd=ROOT, capture_output=True, text=True)


def _module_before_splits(relpath, name, tmp_path):
    """``relpath`` as it was before the split modules came: at the parent of the commit that added
    lib/tasks/splits.py, or at HEAD while that commit does not exist yet."""
    added = _git("log", "--diff-filter=A", "--format=%H", "--", "lib/tasks/splits.py").stdout.split()
    rev = f"{added[-1]}^" if added else "HEAD"
    out = _git("show", f"{rev}:{relpath}")
    if out.returncode:
        pytest.skip(f"{relpath} is not in the history ({out.stderr.strip()})")
    path = tmp_path / f"{name}.py"
    path.write_text(out.stdout)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    assert "_assemble" not in out.stdout, "compared with the refactored code, not the original"
    return module


def test_old_samplers_match_the_code_before_the_splits(tmp_path):
    ptr_old = _module_before_splits("lib/tasks/pointer_task.py", "_pointer_task_before", tmp_path)
    star_old = _module_before_splits("lib/tasks/path_star.py", "_path_star_before", tmp_path)
    for case in _old_cases():
        assert _draw(ptr_old, star_old, case) == _draw(pointer_task, path_star, case), case


def test_the_shortcut_lines_of_pointer_chasing_are_what_no_chasing_scores():
    from lib.tasks.pointer_splits import PointerSplitSpec, pointer_eval_sets
    from lib.tasks.references import pointer_shortcut_lines

    task = PointerSplitSpec()
    sets = pointer_eval_sets(task, 2000, 7, "none")
    lines = pointer_shortcut_lines({**sets["test"], **sets["test_ood"]})
    assert lines[1]["one_lookup"] == 1.0 and abs(lines[1]["start"] - 1 / 8) < 0.03  # a fixed point answers itself
    for h in (2, 3):  # x lies on a cycle whose length divides h: a fixed point or an h-cycle, 2/n in all
        assert abs(lines[h]["start"] - 2 / 8) < 0.04, (h, lines[h])
    assert lines[4]["start"] > lines[3]["start"] + 0.08  # cycles of 1, 2 and 4 divide 4: 3/n
    with pytest.raises(TypeError, match="batches"):
        pointer_shortcut_lines({})
