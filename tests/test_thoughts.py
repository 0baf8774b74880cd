"""Thought insertion: placement, insertion (indices shift, padding), scoring, episodes and the
fast-forward walk, on cases small enough to check by hand or against a slow per-row reference."""

import math

import pytest
import torch

from lib.core.model import GPT, GPTConfig, per_token_log_probs
from lib.methods.thoughts import (
    PositionStats,
    candidate_mask,
    choose_positions,
    fast_forward,
    insert_before_mask,
    insert_random_thoughts,
    insert_tokens,
    insertion_round,
    insertion_scores,
    keep_best,
    original_index,
    placement_scores,
    plain_batch,
    position_stats,
    run_episode,
    stack_rows,
    start_batch,
    text_log_likelihood,
    text_log_probs,
    thought_lm_targets,
    thought_ranks,
)

T = 11  # the thought id of the tiny vocabulary
PAD = 0
TINY = GPTConfig(d_vocab=12, n_ctx=16, d_model=16, n_layers=2, n_heads=2, d_head=8, d_mlp=32)


def tiny_model(seed: int = 0, thought_bias: float = 0.0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(TINY).eval()
    with torch.no_grad():
        model.unembed.W_U.mul_(50.0)  # sharper predictions, so ranks and scores vary
        model.unembed.b_U[T] = thought_bias
    return model


def random_rows(batch: int, pos: int, seed: int = 0, lengths: list[int] | None = None):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, T, (batch, pos), generator=g)  # text ids 1..10, never the thought
    lengths = torch.tensor(lengths if lengths is not None else [pos] * batch)
    ar = torch.arange(pos)[None]
    return tokens.masked_fill(ar >= lengths[:, None], PAD), lengths


# --------------------------------------------------------------------------- ranks and log-probs
def test_thought_ranks_by_hand():
    logits = torch.tensor([[[0.0, 3.0, 1.0, 2.0], [5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 9.0, 0.0]]])
    assert thought_ranks(logits, 2).tolist() == [[2, 1, 0]]  # ties do not count against it


def test_thought_ranks_rejects_bad_inputs():
    with pytest.raises(TypeError):
        thought_ranks(torch.zeros(1, 2, 3, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="batch, pos, d_vocab"):
        thought_ranks(torch.zeros(2, 3), 0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        thought_ranks(torch.zeros(1, 2, 3), 3)
    with pytest.raises(TypeError):
        thought_ranks(torch.zeros(1, 2, 3), 1.0)


def test_text_log_probs_masks_the_thought_and_aligns_with_targets():
    # Position 0 puts almost all mass on the thought (id 2); tokens 0 and 1 share the rest equally.
    logits = torch.tensor([[[0.0, 0.0, 100.0], [0.0, math.log(3.0), 0.0], [1.0, 2.0, 3.0]]])
    tokens = torch.tensor([[1, 0, 2]])
    lp = text_log_probs(logits, tokens, thought_id=2)
    assert lp.shape == (1, 3)
    assert lp[0, 0] == 0.0  # nothing predicts the first token
    assert lp[0, 1].item() == pytest.approx(math.log(0.5))  # the thought's 100 nats are excluded
    assert lp[0, 2] == 0.0  # a thought is never a target
    # Without any thought in the picture (its logit -inf) it is the ordinary log-probability.
    plain = logits.clone()
    plain[..., 2] = float("-inf")
    tokens2 = torch.tensor([[1, 0, 1]])
    assert torch.allclose(text_log_probs(logits, tokens2, 2)[:, 1:], per_token_log_probs(plain, tokens2))


def test_text_log_probs_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="disagree"):
        text_log_probs(torch.zeros(1, 3, 4), torch.zeros(1, 2, dtype=torch.long), 1)
    with pytest.raises(TypeError):
        text_log_probs(torch.zeros(1, 3, 4), torch.zeros(1, 3), 1)


def test_position_stats_agree_with_the_single_functions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g) * 3
    tokens = torch.randint(0, 7, (3, 5), generator=g)
    stats = position_stats(logits, tokens, 4)
    assert torch.equal(stats.thought_rank, thought_ranks(logits, 4))
    assert torch.allclose(stats.text_lp, text_log_probs(logits, tokens, 4), atol=1e-6)
    assert torch.allclose(stats.thought_lp, logits.log_softmax(-1)[..., 4], atol=1e-6)


def test_masked_log_probs_stay_exact_when_the_thought_has_almost_all_the_mass():
    logits = torch.tensor([[[0.0, 1.0, 60.0], [0.0, 0.0, 0.0]]])
    lp = text_log_probs(logits, torch.tensor([[0, 1]]), 2)
    assert lp[0, 1].item() == pytest.approx(1.0 - math.log(1 + math.e), abs=1e-6)
    assert torch.isfinite(lp).all()


# --------------------------------------------------------------------------- where thoughts may go
def test_candidate_mask_by_hand():
    tokens = torch.tensor([[1, 2, T, 3, 4, PAD]])
    lengths = torch.tensor([5])
    # t=0 never; t=2 is a thought; t=3 follows one; t=5 is past the end.
    assert candidate_mask(tokens, lengths, T).tolist() == [[False, True, False, False, True, False]]
    # Position 4 holds original token 3 (one thought before it): marking gap 3 as tried removes it.
    assert original_index(tokens, T)[0, 4] == 3
    tried = torch.zeros(1, 5, dtype=torch.bool)
    tried[0, 3] = True
    assert candidate_mask(tokens, lengths, T, tried).tolist() == [[False, True, False, False, False, False]]


def test_candidate_mask_rejects_bad_inputs():
    tokens, lengths = torch.tensor([[1, 2, 3]]), torch.tensor([3])
    with pytest.raises(ValueError, match="every length"):
        candidate_mask(tokens, torch.tensor([4]), T)
    with pytest.raises(ValueError, match="every length"):
        candidate_mask(tokens, torch.tensor([0]), T)
    with pytest.raises(ValueError, match="rows"):
        candidate_mask(tokens, torch.tensor([3, 3]), T)
    with pytest.raises(ValueError, match="tried"):
        candidate_mask(tokens, lengths, T, torch.zeros(1, 3))
    with pytest.raises(TypeError):
        candidate_mask(tokens.float(), lengths, T)


def _stats(text_lp, rank, thought_lp=None):
    text_lp = torch.tensor(text_lp, dtype=torch.float)
    rank = torch.tensor(rank)
    thought_lp = torch.full(text_lp.shape, -5.0) if thought_lp is None else torch.tensor(thought_lp)
    return PositionStats(text_lp, rank, thought_lp)


def test_rank_rule_inserts_after_the_position_where_the_thought_ranks_best():
    # The logits at position 2 rank the thought first, so the thought becomes index 3.
    stats = _stats([[0.0, -1.0, -2.0, -3.0, -1.0]], [[9, 7, 0, 5, 3]])
    allowed = torch.ones(1, 5, dtype=torch.bool)
    assert choose_positions(placement_scores("rank", stats), allowed).tolist() == [3]
    # Ties in rank go to the higher thought probability.
    stats = _stats([[0.0, -1.0, -2.0, -3.0, -1.0]], [[1, 1, 4, 4, 4]], [[-3.0, -1.0, -2.0, -2.0, -2.0]])
    assert choose_positions(placement_scores("rank", stats), allowed).tolist() == [2]


def test_lowest_ll_rule_inserts_before_the_hardest_token():
    stats = _stats([[0.0, -1.0, -2.0, -7.0, -1.0], [0.0, -9.0, -2.0, -3.0, -1.0]], [[5] * 5, [5] * 5])
    allowed = torch.ones(2, 5, dtype=torch.bool)
    allowed[1, 1] = False  # its hardest token is not allowed: the next hardest (index 3) wins
    assert choose_positions(placement_scores("lowest_ll", stats), allowed).tolist() == [3, 3]


def test_random_rule_is_reproducible_and_respects_the_mask():
    stats = _stats([[0.0] * 6] * 4, [[3] * 6] * 4)
    allowed = torch.zeros(4, 6, dtype=torch.bool)
    allowed[:, 2] = allowed[:, 4] = True
    allowed[3] = False
    a = choose_positions(placement_scores("random", stats, torch.Generator().manual_seed(0)), allowed)
    b = choose_positions(placement_scores("random", stats, torch.Generator().manual_seed(0)), allowed)
    assert torch.equal(a, b)
    assert set(a[:3].tolist()) <= {2, 4} and a[3] == -1  # a row with no allowed index gets -1


def test_placement_rejects_bad_inputs():
    stats = _stats([[0.0, -1.0]], [[1, 1]])
    with pytest.raises(ValueError, match="rule"):
        placement_scores("best", stats)
    with pytest.raises(TypeError):
        placement_scores("rank", {"text_lp": 1})
    with pytest.raises(ValueError, match="allowed"):
        choose_positions(torch.zeros(1, 2), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(TypeError):
        choose_positions(torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2, dtype=torch.bool))


# --------------------------------------------------------------------------- insertion
def test_insert_tokens_shifts_indices_and_handles_padding():
    tokens = torch.tensor([[5, 6, 7, 8], [1, 2, 3, PAD], [4, 4, PAD, PAD]])
    lengths = torch.tensor([4, 3, 2])
    new, new_lengths, index_map = insert_tokens(tokens, lengths, torch.tensor([2, 3, -1]), T, PAD)
    assert new.tolist() == [[5, 6, T, 7, 8], [1, 2, 3, T, PAD], [4, 4, PAD, PAD, PAD]]
    assert new_lengths.tolist() == [5, 4, 2]
    assert index_map.tolist() == [[0, 1, 3, 4], [0, 1, 2, -1], [0, 1, -1, -1]]
    # Every old token sits at its mapped index.
    for b in range(3):
        for j in range(int(lengths[b])):
            assert new[b, index_map[b, j]] == tokens[b, j]


def test_insert_tokens_keeps_the_width_promise_when_nothing_is_inserted():
    tokens, lengths = torch.tensor([[1, 2]]), torch.tensor([2])
    new, new_lengths, index_map = insert_tokens(tokens, lengths, torch.tensor([-1]), T, PAD)
    assert new.tolist() == [[1, 2, PAD]] and new_lengths.tolist() == [2] and index_map.tolist() == [[0, 1]]


def test_insert_tokens_rejects_bad_inputs():
    tokens, lengths = torch.tensor([[1, 2, 3]]), torch.tensor([2])
    with pytest.raises(ValueError, match="position"):
        insert_tokens(tokens, lengths, torch.tensor([3]), T, PAD)  # past the row's end (length 2)
    with pytest.raises(ValueError, match="position"):
        insert_tokens(tokens, lengths, torch.tensor([-2]), T, PAD)
    with pytest.raises(ValueError, match="rows"):
        insert_tokens(tokens, lengths, torch.tensor([1, 1]), T, PAD)
    with pytest.raises(TypeError):
        insert_tokens(tokens, lengths, torch.tensor([1.0]), T, PAD)
    with pytest.raises(ValueError, match="dimension"):
        insert_tokens(tokens[0], lengths, torch.tensor([1]), T, PAD)
    with pytest.raises(ValueError):
        insert_tokens(tokens, lengths, torch.tensor([1]), -1, PAD)


def test_insert_before_mask_many_at_once():
    tokens = torch.tensor([[5, 6, 7, 8], [1, 2, 3, PAD]])
    lengths = torch.tensor([4, 3])
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 1] = mask[0, 3] = mask[1, 3] = True  # row 1 appends at its end
    new, new_lengths, index_map = insert_before_mask(tokens, lengths, mask, T, PAD)
    assert new.tolist() == [[5, T, 6, 7, T, 8], [1, 2, 3, T, PAD, PAD]]
    assert new_lengths.tolist() == [6, 4] and index_map.tolist() == [[0, 2, 3, 5], [0, 1, 2, -1]]
    bad = torch.zeros(2, 5, dtype=torch.bool)
    bad[1, 4] = True
    with pytest.raises(ValueError, match="past the end"):
        insert_before_mask(tokens, lengths, bad, T, PAD)
    with pytest.raises(ValueError, match="mask"):
        insert_before_mask(tokens, lengths, torch.zeros(2, 4, dtype=torch.bool), T, PAD)


# --------------------------------------------------------------------------- scoring
def test_insertion_scores_compare_the_same_tokens_by_hand():
    tokens = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, PAD, PAD]])
    lengths = torch.tensor([5, 3])
    lp_without = torch.tensor([[0.0, -1, -2, -3, -4], [0.0, -1, -2, 0, 0]])
    positions = torch.tensor([2, -1])
    _, _, index_map = insert_tokens(tokens, lengths, positions, T, PAD)
    # With the thought at index 2: token 2 (old) improves by 0.5, tokens 3, 4 are unchanged; the
    # thought's own entry (9.0) must never count, nor tokens before it (-50 would show).
    lp_with = torch.tensor([[0.0, -50.0, 9.0, -1.5, -3, -4], [0.0, -1, -2, 0, 0, 0]])
    scores = insertion_scores(lp_without, lp_with, tokens, lengths, positions, index_map, T)
    assert scores.tolist() == [pytest.approx(0.5), 0.0]
    lp_with[0, 4] = -1.0  # old token 3 improves by 2 more, outside a window of 1
    assert insertion_scores(lp_without, lp_with, tokens, lengths, positions, index_map, T)[0].item() == pytest.approx(2.5)
    assert insertion_scores(lp_without, lp_with, tokens, lengths, positions, index_map, T, window=1)[0].item() == pytest.approx(0.5)


def test_insertion_scores_skip_earlier_thoughts():
    tokens = torch.tensor([[1, 2, T, 3, 4]])
    lengths = torch.tensor([5])
    positions = torch.tensor([1])
    _, _, index_map = insert_tokens(tokens, lengths, positions, T, PAD)
    lp_without = torch.tensor([[0.0, -1, 0, -3, -4]])
    lp_with = torch.tensor([[0.0, 0.0, -0.5, 7.0, -3, -4]])  # 7.0 sits at the old thought: ignored
    assert insertion_scores(lp_without, lp_with, tokens, lengths, positions, index_map, T).item() == pytest.approx(0.5)


def test_insertion_scores_reject_bad_inputs():
    tokens, lengths = torch.tensor([[1, 2, 3]]), torch.tensor([3])
    pos = torch.tensor([1])
    _, _, index_map = insert_tokens(tokens, lengths, pos, T, PAD)
    lp = torch.zeros(1, 3)
    with pytest.raises(ValueError, match="lp_without"):
        insertion_scores(torch.zeros(1, 2), torch.zeros(1, 4), tokens, lengths, pos, index_map, T)
    with pytest.raises(ValueError, match="past the end"):
        insertion_scores(lp, torch.zeros(1, 3), tokens, lengths, pos, index_map, T)
    with pytest.raises(ValueError, match="window"):
        insertion_scores(lp, torch.zeros(1, 4), tokens, lengths, pos, index_map, T, window=0)
    with pytest.raises(ValueError, match="index_map"):
        insertion_scores(lp, torch.zeros(1, 4), tokens, lengths, pos, index_map[:, :2], T)


def _row_text_ll(model, row: list[int]) -> float:
    """Thought-masked text log-likelihood of one row, the slow way."""
    tokens = torch.tensor([row])
    with torch.no_grad():
        return text_log_probs(model(tokens), tokens, T).sum().item()


def test_insertion_round_scores_match_a_per_row_recomputation():
    model = tiny_model(0)
    tokens, lengths = random_rows(4, 10, seed=1, lengths=[10, 7, 10, 3])
    batch = start_batch(model, tokens, lengths, T, PAD)
    result = insertion_round(model, batch, "lowest_ll")
    for b in range(4):
        t = int(result.positions[b])
        row = tokens[b, : lengths[b]].tolist()
        assert 1 <= t < len(row)
        expected = _row_text_ll(model, row[:t] + [T] + row[t:]) - _row_text_ll(model, row)
        assert result.scores[b].item() == pytest.approx(expected, abs=1e-4)
        assert result.candidate.tokens[b, t] == T
    # Gap 0 starts out tried (nothing goes before the first token); each row then tried one more.
    assert result.candidate.tried[:, 1:].sum().item() == 4 and result.candidate.tried[:, 0].all()


def test_keep_best_reverts_the_worst_half_exactly():
    model = tiny_model(0)
    tokens, lengths = random_rows(6, 8, seed=2, lengths=[8, 8, 5, 8, 6, 8])
    before = start_batch(model, tokens, lengths, T, PAD)
    result = insertion_round(model, before, "random", torch.Generator().manual_seed(0))
    merged, keep = keep_best(before, result, keep_fraction=0.5)
    assert keep.sum().item() == 3
    assert result.scores[keep].min() >= result.scores[~keep].max()
    for b in range(6):
        n = int(merged.lengths[b])
        if keep[b]:
            assert torch.equal(merged.tokens[b, :n], result.candidate.tokens[b, :n])
        else:
            assert torch.equal(merged.tokens[b, :n], tokens[b, : lengths[b]])
            assert torch.equal(merged.stats.text_lp[b, :n], before.stats.text_lp[b, :n])
    assert merged.tried[:, 1:].sum().item() == 6  # a reverted gap is still marked as tried (gap 0 always is)
    # The merged statistics are exactly those of a fresh forward on the merged rows.
    fresh = start_batch(model, merged.tokens, merged.lengths, T, PAD)
    assert torch.allclose(text_log_likelihood(fresh.stats.text_lp, merged.lengths), merged.text_ll(), atol=1e-4)
    with pytest.raises(ValueError, match="keep_fraction"):
        keep_best(before, result, keep_fraction=1.5)
    with pytest.raises(TypeError):
        keep_best(before, "result")


def test_episode_accumulates_thoughts_and_never_retries_a_gap():
    model = tiny_model(1)
    tokens, lengths = random_rows(8, 9, seed=3)
    episode = run_episode(model, tokens, lengths, T, PAD, n_rounds=4, rule="rank")
    assert [h["round"] for h in episode.history] == [1, 2, 3, 4]
    assert [h["n_kept"] for h in episode.history] == [4, 4, 4, 4]
    final = episode.batch
    assert final.n_thoughts.sum().item() == 16
    assert final.tried[:, 1:].sum().item() == 32  # 8 rows x 4 rounds, all distinct gaps (gap 0 starts tried)
    # Removing the thoughts gives back the text.
    for b in range(8):
        row = final.tokens[b, : final.lengths[b]]
        assert row[row != T].tolist() == tokens[b].tolist()
    # The reported gain is the real one, recomputed from scratch.
    fresh = start_batch(model, final.tokens, final.lengths, T, PAD).text_ll()
    gain = (fresh - episode.baseline_text_ll).mean().item()
    assert episode.history[-1]["text_ll_gain"] == pytest.approx(gain, abs=1e-3)
    with pytest.raises(ValueError, match="n_rounds"):
        run_episode(model, tokens, lengths, T, PAD, n_rounds=-1)


def test_episode_refuses_rows_longer_than_the_context():
    model = tiny_model(0)
    tokens, lengths = random_rows(2, 16, seed=0)
    with pytest.raises(ValueError, match="n_ctx"):
        run_episode(model, tokens, lengths, T, PAD, n_rounds=1)


# --------------------------------------------------------------------------- fast-forward
def slow_fast_forward(model, tokens, lengths, max_rank, budget):
    """One row at a time, recomputing the whole prefix at every step: the reference."""
    width = min(model.cfg.n_ctx, tokens.shape[1] + budget)
    rows, lps = [], []
    for b in range(tokens.shape[0]):
        text = tokens[b, : lengths[b]].tolist()
        seq, lp, ptr, used, prev = [text[0]], [0.0], 1, 0, False
        while ptr < len(text):
            with torch.no_grad():
                logits = model(torch.tensor([seq]))[0, -1]
            rank = int((logits > logits[T]).sum())
            if rank <= max_rank and used < budget and not prev and len(seq) + len(text) - ptr < width:
                seq.append(T)
                lp.append(0.0)
                used, prev = used + 1, True
            else:
                masked = logits.clone()
                masked[T] = float("-inf")
                lp.append(masked.log_softmax(-1)[text[ptr]].item())
                seq.append(text[ptr])
                ptr, prev = ptr + 1, False
        rows.append(seq)
        lps.append(lp)
    return rows, lps


@pytest.mark.parametrize("max_rank, budget", [(3, 3), (11, 20), (0, 2)])
def test_fast_forward_matches_the_slow_reference(max_rank, budget):
    model = tiny_model(2, thought_bias=4.0)
    tokens, lengths = random_rows(5, 9, seed=4, lengths=[9, 4, 9, 2, 7])
    out = fast_forward(model, tokens, lengths, T, PAD, max_rank=max_rank, budget=budget)
    rows, lps = slow_fast_forward(model, tokens, lengths, max_rank, budget)
    assert out.lengths.tolist() == [len(r) for r in rows]
    for b, (row, lp) in enumerate(zip(rows, lps)):
        assert out.tokens[b, : len(row)].tolist() == row
        assert (out.tokens[b, len(row) :] == PAD).all()
        assert torch.allclose(out.text_lp[b, : len(row)], torch.tensor(lp), atol=1e-4)
    assert out.n_thoughts.tolist() == [sum(t == T for t in r) for r in rows]
    assert out.tokens.shape[1] <= TINY.n_ctx


def test_fast_forward_inserts_something_and_stays_inside_the_context():
    model = tiny_model(2, thought_bias=30.0)  # the thought is always the top choice
    tokens, lengths = random_rows(3, 12, seed=5)
    out = fast_forward(model, tokens, lengths, T, PAD, max_rank=0, budget=10)
    assert out.tokens.shape[1] == TINY.n_ctx and (out.lengths <= TINY.n_ctx).all()
    assert (out.n_thoughts == 4).all()  # 12 text tokens + 4 thoughts fill the 16 positions
    for b in range(3):
        row = out.tokens[b, : out.lengths[b]]
        assert row[row != T].tolist() == tokens[b].tolist()
        assert not ((row[1:] == T) & (row[:-1] == T)).any()  # never two in a row


def test_fast_forward_without_budget_is_the_plain_forward():
    model = tiny_model(3)
    tokens, lengths = random_rows(3, 10, seed=6, lengths=[10, 6, 8])
    out = fast_forward(model, tokens, lengths, T, PAD, max_rank=20, budget=0)
    with torch.no_grad():
        plain = text_log_probs(model(tokens), tokens, T)
    assert torch.equal(out.tokens, tokens) and out.n_thoughts.sum() == 0
    assert torch.allclose(text_log_likelihood(out.text_lp, lengths), text_log_likelihood(plain, lengths), atol=1e-4)


def test_fast_forward_rejects_bad_inputs():
    model = tiny_model(0)
    tokens, lengths = random_rows(2, 5)
    with pytest.raises(ValueError, match="max_rank"):
        fast_forward(model, tokens, lengths, T, PAD, max_rank=-1)
    with pytest.raises(ValueError, match="budget"):
        fast_forward(model, tokens, lengths, T, PAD, budget=-2)
    with pytest.raises(ValueError, match="outside"):
        fast_forward(model, tokens, lengths, 12, PAD)
    long_tokens, long_lengths = random_rows(1, 17)
    with pytest.raises(ValueError, match="n_ctx"):
        fast_forward(model, long_tokens, long_lengths, T, PAD)


# --------------------------------------------------------------------------- training data
def test_thought_lm_targets_by_hand():
    tokens = torch.tensor([[1, T, 2, 3], [4, 5, PAD, PAD]])
    lengths = torch.tensor([4, 2])
    assert thought_lm_targets(tokens, lengths, T).tolist() == [[T, 2, 3, -100], [5, -100, -100, -100]]
    assert thought_lm_targets(tokens, lengths, T, thought_targets=False).tolist() == [
        [-100, 2, 3, -100],
        [5, -100, -100, -100],
    ]


def test_insert_random_thoughts_places_distinct_gaps():
    tokens, lengths = random_rows(20, 8, seed=7, lengths=[8] * 10 + [3] * 10)
    new, new_lengths = insert_random_thoughts(tokens, lengths, 3, T, PAD, torch.Generator().manual_seed(0))
    n = (new == T).sum(1)
    assert n[:10].tolist() == [3] * 10 and n[10:].tolist() == [2] * 10  # a 3-token row has 2 gaps
    assert (new[:, 0] != T).all()
    assert not ((new[:, 1:] == T) & (new[:, :-1] == T)).any()
    for b in range(20):
        row = new[b, : new_lengths[b]]
        assert row[row != T].tolist() == tokens[b, : lengths[b]].tolist()
        assert row[-1] != T  # a text token always follows a thought
    with pytest.raises(ValueError, match="n must"):
        insert_random_thoughts(tokens, lengths, -1, T, PAD)


def test_stack_rows_and_plain_batch():
    a = (torch.tensor([[1, 2]]), torch.tensor([2]))
    b = (torch.tensor([[3, 4, 5]]), torch.tensor([3]))
    tokens, lengths = stack_rows([a, b], PAD)
    assert tokens.tolist() == [[1, 2, PAD], [3, 4, 5]] and lengths.tolist() == [2, 3]
    tokens, lengths = plain_batch(torch.ones(2, 4, dtype=torch.long))
    assert lengths.tolist() == [4, 4]
    with pytest.raises(ValueError):
        stack_rows([], PAD)
    with pytest.raises(TypeError):
        plain_batch(torch.ones(2, 4))


def test_masked_log_probs_leave_the_logits_untouched_and_support_autograd_and_bf16():
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(2, 4, 6, generator=g)
    tokens = torch.randint(0, 6, (2, 4), generator=g)
    before = logits.clone()
    stats = position_stats(logits, tokens, 5)  # the fast path masks the column in place, then restores it
    assert torch.equal(logits, before)
    leaf = logits.clone().requires_grad_(True)
    text_log_probs(leaf, tokens, 5).sum().backward()
    assert leaf.grad is not None and torch.equal(leaf.detach(), before)
    assert leaf.grad[..., 5].abs().sum() == 0  # the masked thought logit gets no gradient from text scores
    half = position_stats(logits.bfloat16(), tokens, 5)
    assert half.text_lp.dtype == torch.float32
    assert torch.allclose(half.text_lp, stats.text_lp, atol=0.05)


def test_insertion_round_trims_the_padding_tail_to_fit_the_context():
    # Row 0 fills n_ctx and has every gap tried (no insertion possible); row 1 is shorter. The
    # inserted batch is one column wider than n_ctx, but that column is padding in every row.
    model = tiny_model(0)
    tokens, lengths = random_rows(2, TINY.n_ctx, seed=3, lengths=[TINY.n_ctx, 9])
    batch = start_batch(model, tokens, lengths, T, PAD)
    batch.tried[0] = True
    result = insertion_round(model, batch, "rank")
    assert result.positions[0] == -1 and result.positions[1] >= 1
    assert result.candidate.tokens.shape == (2, TINY.n_ctx)
    assert torch.equal(result.candidate.tokens[0], tokens[0])
    assert result.candidate.lengths.tolist() == [TINY.n_ctx, 10]
    # The index map says where each previous token went: the same map insert_tokens returns.
    _, _, index_map = insert_tokens(tokens, lengths, result.positions, T, PAD)
    assert torch.equal(result.index_map, index_map)
    moved = result.candidate.tokens[1].gather(0, result.index_map[1, :9])
    assert torch.equal(moved, tokens[1, :9])


# --------------------------------------------------------------------------- the decoders' one rule
def test_thought_gate_by_hand():
    from lib.methods.thoughts import thought_gate

    rank = torch.tensor([0, 3, 0, 0, 0, 0])
    used = torch.tensor([0, 0, 2, 0, 0, 0])
    after = torch.tensor([False, False, False, True, False, False])
    follows = torch.tensor([True, True, True, True, False, True])
    open_ = torch.tensor([True, True, True, True, True, False])
    got = thought_gate(rank, 2, used, 2, after, follows, open_)
    # row 0 may think; 1: ranked too low; 2: no budget left; 3: just thought; 4: nothing follows; 5: gap closed
    assert got.tolist() == [True, False, False, False, False, False]


def test_fast_forward_keeps_thoughts_out_of_closed_gaps():
    model = tiny_model(2, thought_bias=30.0)  # the thought is always the top choice
    tokens, lengths = random_rows(3, 8, seed=5)
    out = fast_forward(model, tokens, lengths, T, PAD, max_rank=0, budget=2, first_gap=5)
    for b in range(3):
        row = out.tokens[b, : out.lengths[b]]
        assert row[:5].tolist() == tokens[b, :5].tolist()  # the first 5 text tokens, no thought among them
        assert row[5] == T and (row != T).sum() == lengths[b]
    with pytest.raises(ValueError, match="first_gap"):
        fast_forward(model, tokens, lengths, T, PAD, first_gap=0)
    with pytest.raises(TypeError, match="first_gap"):
        fast_forward(model, tokens, lengths, T, PAD, first_gap=1.0)
