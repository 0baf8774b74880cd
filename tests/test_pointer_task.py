"""The pointer-chasing task: layout, answers checked by hand, accuracy helpers, and the runner."""

import pytest
import torch

from lib.experiments.pointer_runs import evaluate_pointer, pointer_logits, train_pointer_model
from lib.tasks.pointer_task import (
    PointerSpec,
    accuracy_by_hops,
    answer_accuracy,
    answer_logits,
    parse_method,
    pointer_model_config,
    sample_pointer_batch,
)

SPEC = PointerSpec(n_nodes=5, max_hops=3)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_token_ids_are_distinct_and_named():
    ids = [SPEC.query_id, SPEC.dense_id, SPEC.pause_id, SPEC.pad_id] + [SPEC.hop_id(h) for h in (1, 2, 3)]
    assert len(set(ids)) == len(ids) and min(ids) == SPEC.n_nodes and max(ids) == SPEC.vocab_size - 1
    assert len(SPEC.token_names()) == SPEC.vocab_size
    assert SPEC.seq_len("none") == 5 + 4 and SPEC.seq_len("dense") == 5 + 4 + 2 and SPEC.seq_len("pause", 2) == 13


@pytest.mark.parametrize("filler", ["none", "pause", "dense"])
def test_layout_and_answers_by_hand(filler):
    b = sample_pointer_batch(SPEC, 64, gen(), filler)
    n = SPEC.n_nodes
    for row in range(64):
        toks = b.tokens[row].tolist()
        table = toks[:n]
        assert sorted(table) == list(range(n)), "the table is a permutation"
        h = int(b.hops[row])
        assert toks[n] == SPEC.query_id and toks[n + 1] == SPEC.hop_id(h)
        x = toks[b.start_pos[row]]
        expected = x
        for _ in range(h):
            expected = table[expected]
        assert int(b.answers[row]) == expected == toks[b.answer_pos[row]]
        assert b.chain[row, h - 1] == expected
        fill = toks[b.start_pos[row] + 1 : b.answer_pos[row]]
        assert len(fill) == (0 if filler == "none" else h - 1)
        assert all(t == SPEC.filler_id(filler) for t in fill)
        assert all(t == SPEC.pad_id for t in toks[b.answer_pos[row] + 1 :])
        # Exactly one target, the answer, predicted from the position before it.
        assert (b.targets[row] != -100).sum() == 1 and b.targets[row, b.answer_pos[row] - 1] == expected
        assert b.useful[row].sum() == len(fill)


def test_fixed_hops_and_decoys():
    b = sample_pointer_batch(SPEC, 200, gen(1), "dense", hops=2, decoys=2)
    assert (b.hops == 2).all()
    n = SPEC.n_nodes
    n_decoys = b.start_pos - (n + 2)
    assert set(n_decoys.tolist()) == {0, 1, 2}
    dense = b.tokens == SPEC.dense_id
    assert (dense.sum(1) == n_decoys + 1).all()
    assert (b.useful <= dense).all() and (b.useful.sum(1) == 1).all()
    # Decoys sit between the hop token and x.
    for row in range(20):
        positions = dense[row].nonzero().flatten().tolist()
        assert all(p < b.start_pos[row] for p in positions[: int(n_decoys[row])])


def test_same_seed_same_questions_across_fillers():
    a = sample_pointer_batch(SPEC, 8, gen(3), "none")
    d = sample_pointer_batch(SPEC, 8, gen(3), "dense")
    assert torch.equal(a.answers, d.answers) and torch.equal(a.tokens[:, : SPEC.n_nodes], d.tokens[:, : SPEC.n_nodes])


def test_bad_inputs():
    with pytest.raises(ValueError):
        PointerSpec(n_nodes=1)
    with pytest.raises(ValueError):
        PointerSpec(max_hops=0)
    with pytest.raises(ValueError):
        SPEC.hop_id(4)
    with pytest.raises(TypeError):
        sample_pointer_batch("spec", 4, gen())
    with pytest.raises(ValueError):
        sample_pointer_batch(SPEC, 0, gen())
    with pytest.raises(ValueError, match="filler"):
        sample_pointer_batch(SPEC, 4, gen(), "dots")
    with pytest.raises(ValueError, match="hops"):
        sample_pointer_batch(SPEC, 4, gen(), "dense", hops=5)
    with pytest.raises(ValueError, match="decoys"):
        sample_pointer_batch(SPEC, 4, gen(), "none", decoys=1)
    with pytest.raises(ValueError):
        sample_pointer_batch(SPEC, 4, gen(), "dense", decoys=-1)


def test_accuracy_helpers_on_hand_made_logits():
    b = sample_pointer_batch(SPEC, 6, gen(4), "pause")
    logits = torch.zeros(6, b.tokens.shape[1], SPEC.vocab_size)
    rows = torch.arange(6)
    logits[rows, b.answer_pos - 1, b.answers] = 5.0  # right everywhere...
    logits[0, b.answer_pos[0] - 1, (b.answers[0] + 1) % SPEC.n_nodes] = 9.0  # ...except row 0
    assert torch.equal(answer_logits(logits, b).argmax(-1)[1:], b.answers[1:])
    assert answer_accuracy(logits, b) == pytest.approx(5 / 6)
    by_hops = accuracy_by_hops(logits, b)
    assert set(by_hops) == set(b.hops.tolist())
    assert by_hops[int(b.hops[0])] < 1.0
    with pytest.raises(ValueError):
        answer_logits(logits[:, :-1], b)


def test_parse_method_and_config():
    assert parse_method("none") == ("none", 0) and parse_method("dense-2") == ("dense", 2)
    for bad in ("dense", "dense-0", "dense-x", "think"):
        with pytest.raises(ValueError):
            parse_method(bad)
    cfg = pointer_model_config(SPEC, d_model=32, n_heads=4, decoys=1)
    assert cfg.d_vocab == SPEC.vocab_size and cfg.n_ctx == SPEC.seq_len("dense", 1) and cfg.d_head == 8
    with pytest.raises(ValueError):
        pointer_model_config(SPEC, d_model=30, n_heads=4)


def test_runner_trains_every_method_on_the_same_architecture():
    runs = {m: train_pointer_model(m, seed=0, spec=SPEC, steps=4, batch_size=8, d_model=16) for m in ("none", "pause", "dense-2")}
    sizes = {m: r.model.n_params() for m, r in runs.items()}
    assert len(set(sizes.values())) == 1, sizes
    for r in runs.values():
        assert set(r.accuracy) == {1, 2, 3} and all(0 <= a <= 1 for a in r.accuracy.values())
        assert 0 <= r.mean_accuracy <= 1 and len(r.history.train_loss) > 0
    dense = runs["dense-2"]
    assert dense.norm_steps and all(len(n) == 2 for n in dense.norms)
    assert not runs["none"].norms
    # Default evaluation of a dense model is exact: as many passes as dense tokens.
    b = sample_pointer_batch(SPEC, 4, gen(5), "dense", hops=3)
    assert torch.allclose(pointer_logits(dense.model, b), pointer_logits(dense.model, b, depth=2))
    acc = evaluate_pointer(dense.model, SPEC, "dense", n_questions=10)
    assert set(acc) == {1, 2, 3}


def test_carried_pointers_and_lens_agreement():
    from lib.experiments.pointer_runs import lens_agreement
    from lib.tasks.pointer_task import carried_pointers
    from lib.core.model import GPT

    b = sample_pointer_batch(SPEC, 30, gen(6), "dense", decoys=1)
    rows, cols, expected = carried_pointers(b)
    assert len(rows) == int((b.hops - 1).sum())  # one per useful dense token, decoys excluded
    for r, c, e in zip(rows.tolist(), cols.tolist(), expected.tolist()):
        assert b.tokens[r, c] == SPEC.dense_id and e == b.chain[r, c - b.start_pos[r] - 1]
    # A fake "model" whose lens reads the vector directly: vectors = one-hot of the right pointer.
    torch.manual_seed(0)
    model = GPT(pointer_model_config(SPEC, d_model=SPEC.vocab_size + 3, n_heads=1))
    with torch.no_grad():
        model.unembed.W_U.zero_()
        model.unembed.W_U[: SPEC.vocab_size, :].copy_(torch.eye(SPEC.vocab_size))
    vectors = torch.zeros(*b.tokens.shape, model.cfg.d_model)
    vectors[rows, cols, expected] = 1.0
    assert lens_agreement(model, vectors, b) == 1.0
    vectors[rows, cols, expected] = 0.0
    vectors[rows, cols, (expected + 1) % SPEC.n_nodes] = 1.0
    assert lens_agreement(model, vectors, b) == 0.0
    one_hop = sample_pointer_batch(SPEC, 4, gen(7), "dense", hops=1)
    assert lens_agreement(model, torch.zeros(*one_hop.tokens.shape, model.cfg.d_model), one_hop) != lens_agreement(model, torch.zeros(*one_hop.tokens.shape, model.cfg.d_model), one_hop)  # NaN


def test_lookup_attention_matches_the_cached_pattern():
    from lib.methods.dense import add_dense_vectors, unrolled_forward
    from lib.core.model import GPT
    from lib.experiments.pointer_runs import lookup_attention
    from lib.tasks.pointer_task import exact_depth

    torch.manual_seed(0)
    model = GPT(pointer_model_config(SPEC, d_model=16))
    b = sample_pointer_batch(SPEC, 5, gen(9), "dense", hops=3)
    got = lookup_attention(model, b)
    assert got.shape == (3, 4) and (got >= 0).all() and (got <= 1).all()
    assert exact_depth(b) == 2
    out = unrolled_forward(model, b.tokens, SPEC.dense_id, 2)
    _, cache = model.run_with_cache(input_embeds=add_dense_vectors(model.embed(b.tokens), out.vectors[-1], out.mask))
    pattern = cache["blocks.0.attn.hook_pattern"]
    for k in range(3):
        manual = torch.stack([
            pattern[r, :, b.start_pos[r] + k, int(b.tokens[r, b.start_pos[r]]) if k == 0 else int(b.chain[r, k - 1])]
            for r in range(5)
        ]).mean(dim=0)
        assert torch.allclose(got[k], manual, atol=1e-6)
    pause = sample_pointer_batch(SPEC, 5, gen(9), "pause", hops=2)
    assert lookup_attention(model, pause).shape == (2, 4)
    with pytest.raises(ValueError, match="one hop count"):
        lookup_attention(model, sample_pointer_batch(SPEC, 20, gen(), "dense"))
    with pytest.raises(ValueError, match="filler"):
        lookup_attention(model, sample_pointer_batch(SPEC, 4, gen(), "none", hops=2))
    with pytest.raises(ValueError, match="layer"):
        lookup_attention(model, b, layer=3)


def test_needed_dense_tokens_by_hand():
    from lib.tasks.pointer_task import needed_dense_tokens

    b = sample_pointer_batch(SPEC, 400, gen(11), "dense", decoys=1)
    needed = needed_dense_tokens(b)
    assert (needed <= b.useful).all()
    for row in range(400):
        h = int(b.hops[row])
        table = b.tokens[row, : SPEC.n_nodes].tolist()
        y = int(b.tokens[row, b.start_pos[row]])
        for _ in range(h - 1):
            y = table[y]
        fixed = table[y] == y  # one lookup fewer gives the same answer
        assert bool(needed[row].any()) == (h > 1 and not fixed)
    assert 0 < (b.useful & ~needed).sum() < b.useful.sum()  # fixed points happen, but rarely


def test_select_rows():
    b = sample_pointer_batch(SPEC, 10, gen(12), "dense")
    sub = b.select([7, 2])
    assert sub.tokens.shape[0] == 2 and torch.equal(sub.tokens[0], b.tokens[7]) and torch.equal(sub.chain[1], b.chain[2])
    assert sub.spec == b.spec and sub.filler == "dense"
    with pytest.raises(ValueError):
        b.select([])


def test_the_task_module_imports_no_method():
    """Layers read in one direction: the task knows nothing of dense tokens' machinery; training and
    evaluating models on it lives in lib.experiments.pointer_runs, and only there."""
    import subprocess
    import sys

    code = ("import sys, lib.tasks.pointer_task as t; assert 'lib.methods.dense' not in sys.modules, 'lib.methods.dense imported'; "
            "assert not hasattr(t, 'train_pointer_model'), 'runner names still reachable from the task'")
    subprocess.run([sys.executable, "-c", code], check=True)
