"""Training with thoughts: batches, the loss, survivors of episodes, the measurement and the task."""

import pytest
import torch

from lib.core.model import GPT, GPTConfig
from lib.methods.thought_training import (
    calibrate_max_rank,
    collect_survivors,
    digit_sum_task,
    evaluate_nll,
    rows_batch_fn,
    thought_loss,
    warmup_batch_fn,
)
from lib.methods.thoughts import insert_before_mask, insert_random_thoughts, start_batch, text_log_probs, thought_ranks

T, PAD = 11, 0
TINY = GPTConfig(d_vocab=12, n_ctx=16, d_model=16, n_layers=2, n_heads=2, d_head=8, d_mlp=32)


def tiny_model(seed=0, thought_bias=0.0):
    torch.manual_seed(seed)
    model = GPT(TINY).eval()
    with torch.no_grad():
        model.unembed.W_U.mul_(30.0)
        model.unembed.b_U[T] = thought_bias
    return model


def rows(n=12, pos=8, seed=0):
    tokens = torch.randint(1, T, (n, pos), generator=torch.Generator().manual_seed(seed))
    lengths = torch.full((n,), pos)
    lengths[::3] = pos - 3
    ar = torch.arange(pos)[None]
    return tokens.masked_fill(ar >= lengths[:, None], PAD), lengths


def test_thought_loss_ignores_padding_and_optionally_thought_targets():
    model = tiny_model()
    tokens = torch.tensor([[1, T, 2, 3], [4, 5, PAD, PAD]])
    lengths = torch.tensor([4, 2])
    logits = model(tokens)
    lp = logits.log_softmax(-1)
    want_all = -(lp[0, 0, T] + lp[0, 1, 2] + lp[0, 2, 3] + lp[1, 0, 5]) / 4
    want_text = -(lp[0, 1, 2] + lp[0, 2, 3] + lp[1, 0, 5]) / 3
    assert thought_loss(model, (tokens, lengths), T).item() == pytest.approx(want_all.item(), abs=1e-5)
    assert thought_loss(model, (tokens, lengths), T, thought_targets=False).item() == pytest.approx(want_text.item(), abs=1e-5)


def test_rows_batch_fn_is_reproducible_and_cuts_padding():
    tokens, lengths = rows()
    a, b = rows_batch_fn(tokens, lengths, 5, seed=3), rows_batch_fn(tokens, lengths, 5, seed=3)
    for step in range(3):
        (ta, la), (tb, lb) = a(step), b(step)
        assert torch.equal(ta, tb) and torch.equal(la, lb)
        assert ta.shape == (5, int(la.max()))
    with pytest.raises(ValueError, match="batch_size"):
        rows_batch_fn(tokens, lengths, 0)


def test_warmup_batches_keep_the_text_and_vary_the_count():
    tokens, lengths = rows(40, 8)
    fn = warmup_batch_fn(tokens, lengths, 40, 3, T, PAD, seed=0)
    new, new_lengths = fn(0)
    counts = (new == T).sum(1)
    assert counts.min() == 0 and counts.max() == 3  # some rows stay plain
    for r in range(40):
        row = new[r, : new_lengths[r]]
        assert row[row != T].numel() == int(new_lengths[r] - counts[r])
    with pytest.raises(ValueError, match="n_thoughts"):
        warmup_batch_fn(tokens, lengths, 4, -1, T, PAD)


def test_insert_random_thoughts_accepts_one_count_per_row():
    tokens, lengths = rows(3, 8)
    new, _ = insert_random_thoughts(tokens, lengths, torch.tensor([0, 2, 1]), T, PAD, torch.Generator().manual_seed(0))
    assert (new == T).sum(1).tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match="counts"):
        insert_random_thoughts(tokens, lengths, torch.tensor([0, 2]), T, PAD)


def test_survivors_only_keep_thoughts_that_helped():
    model = tiny_model(1)
    tokens, lengths = rows(12, 9, seed=2)
    new, new_lengths, histories = collect_survivors(model, tokens, lengths, T, PAD, n_rounds=3, chunk=5)
    assert new.shape[0] == 12 and len(histories) == 3 and len(histories[0]) == 3
    base = start_batch(model, tokens, lengths, T, PAD).text_ll()
    after = start_batch(model, new, new_lengths, T, PAD).text_ll()
    assert (after >= base - 1e-4).all()  # min_score=0: every kept thought raised the likelihood
    assert (new == T).sum() > 0
    for r in range(12):
        row = new[r, : new_lengths[r]]
        assert row[row != T].tolist() == tokens[r, : lengths[r]].tolist()
    with pytest.raises(ValueError, match="chunk"):
        collect_survivors(model, tokens, lengths, T, PAD, 1, chunk=0)


def test_evaluate_nll_scores_the_same_tokens_with_and_without_thoughts():
    model = tiny_model(2, thought_bias=5.0)
    tokens, lengths = rows(6, 8, seed=4)
    plain = evaluate_nll(model, tokens, lengths, T, PAD, batch_size=4)
    with torch.no_grad():
        lp = text_log_probs(model(tokens), tokens, T)
    mask = (torch.arange(8)[None] >= 1) & (torch.arange(8)[None] < lengths[:, None])
    assert plain["nll"] == pytest.approx(-(lp * mask).sum().item() / mask.sum().item(), abs=1e-5)
    assert plain["thoughts_per_row"] == 0 and plain["n_scored"] == mask.sum().item()
    shy = tiny_model(2, thought_bias=-100.0)  # never ranks the thought first: the walk inserts nothing
    walked = evaluate_nll(shy, tokens, lengths, T, PAD, budget=3, max_rank=0, batch_size=4)
    assert walked["thoughts_per_row"] == 0  # ... and agrees with the one-forward shortcut used for budget 0
    assert walked["nll"] == pytest.approx(evaluate_nll(shy, tokens, lengths, T, PAD)["nll"], abs=1e-4)
    thinking = evaluate_nll(model, tokens, lengths, T, PAD, budget=3, max_rank=3, batch_size=4)
    assert thinking["n_scored"] == plain["n_scored"] and thinking["thoughts_per_row"] > 0
    assert thinking["nll"] != pytest.approx(plain["nll"])
    last = torch.zeros_like(mask)
    last[torch.arange(6), lengths - 1] = True  # score only each row's last token
    one = evaluate_nll(model, tokens, lengths, T, PAD, score_mask=last)
    assert one["n_scored"] == 6
    with pytest.raises(ValueError, match="first token"):
        evaluate_nll(model, tokens, lengths, T, PAD, score_mask=torch.ones_like(mask))
    with pytest.raises(ValueError, match="score_mask"):
        evaluate_nll(model, tokens, lengths, T, PAD, score_mask=mask[:, :3])


def test_digit_sum_task():
    tokens, lengths, mask = digit_sum_task(50, n_digits=3, seed=1)
    assert tokens.shape == (50, 5) and (lengths == 5).all()
    assert (tokens[:, 3] == 10).all()
    assert torch.equal(tokens[:, 4], tokens[:, :3].sum(1) % 10)
    assert mask[:, 4].all() and mask.sum() == 50
    assert torch.equal(digit_sum_task(5, seed=2)[0], digit_sum_task(5, seed=2)[0])
    with pytest.raises(ValueError):
        digit_sum_task(0)
    with pytest.raises(ValueError, match="equals_id"):
        digit_sum_task(3, equals_id=4)
    with pytest.raises(ValueError, match="modulus"):
        digit_sum_task(3, modulus=11)
    small, _, _ = digit_sum_task(200, n_digits=3, n_values=4, modulus=4)
    assert small[:, :3].max() == 3 and torch.equal(small[:, 4], small[:, :3].sum(1) % 4)
    with pytest.raises(ValueError, match="n_values"):
        digit_sum_task(3, n_values=11)


def test_calibrate_max_rank_hits_the_rate():
    model = tiny_model(3)
    tokens, lengths = rows(20, 8, seed=5)
    with torch.no_grad():
        ranks = thought_ranks(model(tokens), T)
    valid = torch.arange(8)[None] < lengths[:, None] - 1
    for rate in (0.05, 0.3, 1.0):
        r = calibrate_max_rank(model, tokens, lengths, T, rate, batch_size=7)
        frac = (ranks[valid] <= r).float().mean().item()
        assert frac >= rate - 1e-6
        if r > 0:
            assert (ranks[valid] <= r - 1).float().mean().item() < rate  # the smallest such rank
    with pytest.raises(ValueError, match="rate"):
        calibrate_max_rank(model, tokens, lengths, T, 0.0)


# --------------------------------------------------------------------------- the task-agnostic recipe
def test_masked_thought_targets_by_hand():
    from lib.methods.thought_training import masked_thought_targets

    T, P = 9, 8
    tokens = torch.tensor([[1, 2, T, 3, 4, P]])  # original row [1, 2, 3, 4], a thought before 3
    lengths = torch.tensor([5])
    only_last = torch.tensor([[False, False, False, True]])  # train the 4th original token only
    got = masked_thought_targets(tokens, lengths, T, only_last, thought_targets=True)
    assert got.tolist() == [[-100, T, -100, 4, -100, -100]]
    got = masked_thought_targets(tokens, lengths, T, only_last, thought_targets=False)
    assert got.tolist() == [[-100, -100, -100, 4, -100, -100]]
    everything = torch.ones(1, 4, dtype=torch.bool)
    got = masked_thought_targets(tokens, lengths, T, everything, thought_targets=True)
    assert got.tolist() == [[2, T, 3, 4, -100, -100]]
    with pytest.raises(ValueError):
        masked_thought_targets(tokens, lengths, T, only_last.long())
    with pytest.raises(ValueError):
        masked_thought_targets(tokens, lengths, T, torch.ones(2, 4, dtype=torch.bool))


def test_train_thinker_runs_one_budget_and_reports_survivors():
    from lib.methods.thought_training import train_thinker

    torch.manual_seed(0)
    model = GPT(GPTConfig(d_vocab=12, n_ctx=12, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))
    rows = torch.randint(0, 10, (48, 6), generator=torch.Generator().manual_seed(0))
    lengths = torch.full((48,), 6)
    targets = torch.zeros(48, 6, dtype=torch.bool)
    targets[:, -1] = True
    out = train_thinker(model, rows, lengths, targets, steps=6, batch_size=8, thought_id=10, pad_id=11, seed=0)
    assert len(out["history"].steps) > 0 and out["thoughts_per_row"] >= 0
    sv_tokens, sv_lengths = out["survivors"]
    assert out["thoughts_per_row"] == pytest.approx(float((sv_tokens == 10).sum()) / 24)
    with pytest.raises(TypeError):  # everything after the data and its ids is keyword-only
        train_thinker(model, rows, lengths, targets, 6, 8, 10, 11, 0)
    with pytest.raises(ValueError):
        train_thinker(model, rows, lengths, targets[:, :5], steps=6, batch_size=8, thought_id=10, pad_id=11)
    with pytest.raises(ValueError):
        train_thinker(model, rows, lengths, targets, steps=1, batch_size=8, thought_id=10, pad_id=11)
    with pytest.raises(ValueError, match="rows"):
        train_thinker(model, rows, lengths, targets, steps=8, batch_size=8, thought_id=10, pad_id=11)


def test_generate_with_thoughts_thinks_then_answers():
    from lib.methods.thought_training import generate_with_thoughts

    torch.manual_seed(0)
    model = GPT(GPTConfig(d_vocab=12, n_ctx=12, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32)).eval()
    prompt = torch.randint(0, 10, (4, 5), generator=torch.Generator().manual_seed(1))
    plain, used = generate_with_thoughts(model, prompt, 2, thought_id=10, max_rank=-1, budget=2)
    assert (used == 0).all()
    from lib.core.sampling import generate

    greedy = generate(model, prompt, 2, temperature=0)[:, 5:]
    # Without thoughts (and with the thought logit masked) the answers are greedy decoding's,
    # except where greedy would have picked the thought itself.
    assert ((plain == greedy) | (greedy == 10)).all()
    with torch.no_grad():
        model.unembed.b_U[10] = 50.0  # the model now always ranks the thought first
    answers, used = generate_with_thoughts(model, prompt, 2, thought_id=10, max_rank=0, budget=3)
    assert (used == 3).all() and (answers != 10).all() and (answers >= 0).all()
    # The thoughts went in while reading the prompt (the first chance), and the answers are what
    # the model writes after the prompt with those thoughts in place.
    with_thoughts = torch.cat([prompt[:, :1], torch.full((4, 3), 10), prompt[:, 1:]], dim=1)
    with torch.no_grad():
        model.unembed.b_U[10] = 0.0
    expected, none_used = generate_with_thoughts(model, with_thoughts, 2, thought_id=10, max_rank=-1, budget=0)
    with torch.no_grad():
        model.unembed.b_U[10] = 50.0
    assert torch.equal(answers, expected) and (none_used == 0).all()
    with pytest.raises(ValueError):
        generate_with_thoughts(model, prompt, 0, 10)
    with pytest.raises(ValueError):
        generate_with_thoughts(model, prompt, 5, 10, budget=5)  # past n_ctx


# --------------------------------------------------------------------------- the recipe's schedule and its switch
def schedule_setup(steps=6, batch=4, first_gap=2):
    from lib.methods.thought_training import ThinkerSchedule

    torch.manual_seed(0)
    model = GPT(GPTConfig(d_vocab=12, n_ctx=12, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))
    n = steps * batch
    tokens = torch.randint(0, 10, (n, 5), generator=torch.Generator().manual_seed(3))
    lengths = torch.full((n,), 5)
    targets = torch.zeros(n, 5, dtype=torch.bool)
    targets[:, -1] = True
    make = lambda **kw: ThinkerSchedule(model, tokens, lengths, targets, steps, batch, 10, 11, seed=1,
                                        warmup_thoughts=2, n_rounds=2, first_gap=first_gap, **kw)
    return model, tokens, targets, make


def strip(rows, lens, thought_id=10):
    return [[t for t in r[:l].tolist() if t != thought_id] for r, l in zip(rows, lens)]


def test_schedule_switches_to_survivors_once_at_half_way(monkeypatch):
    import lib.methods.thought_training as tt

    model, tokens, targets, make = schedule_setup()
    calls = []
    real = tt._collect_survivors  # what the schedule calls: collect_survivors without its argument checks

    def spy(m, rows, lens, *args, **kwargs):
        calls.append((m, rows.clone()))
        out_tokens, out_lengths, hist = real(m, rows, lens, *args, **kwargs)
        # Force a thought into every survivor, before the last token, so the test can see them.
        forced = torch.zeros(rows.shape[0], out_tokens.shape[1] + 1, dtype=torch.bool)
        forced[torch.arange(rows.shape[0]), out_lengths - 1] = True
        calls.append(insert_before_mask(out_tokens, out_lengths, forced, 10, 11)[:2])
        return (*calls[-1], hist)

    monkeypatch.setattr(tt, "_collect_survivors", spy)
    schedule = make()
    for step in range(3):  # the warm-up: the first half's rows in order, thoughts read, not predicted
        rows, lens, wanted, thought_targets = schedule(step)
        assert strip(rows, lens) == tokens[4 * step : 4 * (step + 1)].tolist()
        assert not thought_targets and torch.equal(wanted, targets[4 * step : 4 * (step + 1)])
        assert not (rows[:, :2] == 10).any()  # never before original token first_gap = 2
        assert ((rows == 10).sum(1) <= 2).all()
        assert not calls and schedule.survivors is None
    rows, lens, wanted, thought_targets = schedule(3)  # the switch
    assert len(calls) == 2 and calls[0][0] is model and torch.equal(calls[0][1], tokens[12:])
    sv_tokens, sv_lengths = calls[1]
    assert thought_targets and torch.equal(rows, sv_tokens[:4, : int(sv_lengths[:4].max())])  # survivors, thoughts as targets
    for step in range(3, 6):  # the second half's rows, in order, with their survivors' thoughts
        rows, lens, wanted, thought_targets = schedule(step)
        assert strip(rows, lens) == tokens[4 * step : 4 * (step + 1)].tolist()
        assert thought_targets and (rows == 10).any()
    assert len(calls) == 2  # the episodes ran once
    assert schedule.thoughts_per_row == pytest.approx(float((sv_tokens == 10).sum()) / 12)


def test_twin_schedule_is_the_thinkers_without_thoughts(monkeypatch):
    import lib.methods.thought_training as tt

    model, tokens, targets, make = schedule_setup()
    thinker, twin = make(), make(with_thoughts=False)
    monkeypatch.setattr(tt, "_collect_survivors", lambda *a, **k: pytest.fail("the twin runs no episodes"))
    for step in range(6):
        rows, lens, wanted, _ = twin(step)
        assert torch.equal(rows, tokens[4 * step : 4 * (step + 1)]) and (lens == 5).all()
        assert torch.equal(wanted, targets[4 * step : 4 * (step + 1)])
    monkeypatch.undo()
    for step in range(6):  # the same text, the same targets, step by step
        rows, lens, wanted, _ = thinker(step)
        assert strip(rows, lens) == twin(step)[0].tolist() and torch.equal(wanted, twin(step)[2])
    assert twin.thoughts_per_row == 0.0


def test_schedule_rejects_bad_inputs():
    from lib.methods.thought_training import ThinkerSchedule

    model, tokens, targets, make = schedule_setup()
    lengths = torch.full((24,), 5)
    with pytest.raises(ValueError, match="text_targets"):
        ThinkerSchedule(model, tokens, lengths, targets.long(), 6, 4, 10, 11)
    with pytest.raises(ValueError, match="batch_size"):
        ThinkerSchedule(model, tokens, lengths, targets, 6, 0, 10, 11)
    with pytest.raises(ValueError, match="rule"):
        ThinkerSchedule(model, tokens, lengths, targets, 6, 4, 10, 11, rule="best")
    with pytest.raises(ValueError, match="warmup_thoughts"):
        ThinkerSchedule(model, tokens, lengths, targets, 6, 4, 10, 11, warmup_thoughts=-1)
    with pytest.raises(TypeError, match="with_thoughts"):
        ThinkerSchedule(model, tokens, lengths, targets, 6, 4, 10, 11, with_thoughts=1)
    with pytest.raises(ValueError, match="thought_id"):
        ThinkerSchedule(model, tokens, lengths, targets, 6, 4, 12, 11)


def test_train_twin_trains_the_same_text_without_thoughts():
    from lib.methods.thought_training import train_thinker

    model, tokens, targets, _ = schedule_setup()
    lengths = torch.full((24,), 5)
    twin = train_thinker(model, tokens, lengths, targets, 6, 4, 10, 11, seed=1, with_thoughts=False)
    assert twin["thoughts_per_row"] == 0.0 and torch.equal(twin["survivors"][0], tokens[12:])


def test_thinker_max_rank_matches_the_survivors_rate():
    from lib.methods.thought_training import thinker_max_rank

    model = tiny_model(1)
    tokens, lengths = rows(30, 8, seed=2)
    got = thinker_max_rank(model, tokens, lengths, T, 1.5, first_gap=2)
    gaps = float((lengths - 2).float().mean())
    assert got == calibrate_max_rank(model, tokens, lengths, T, 1.5 / gaps, first_gap=2)
    with pytest.raises(ValueError, match="thoughts_per_row"):
        thinker_max_rank(model, tokens, lengths, T, -1.0)


def test_evaluate_nll_places_thoughts_only_in_open_gaps():
    model = tiny_model(0, thought_bias=50.0)  # always wants a thought
    tokens, lengths = rows(6, 8, seed=1)
    lengths[:] = 8
    tokens = torch.randint(1, T, (6, 8), generator=torch.Generator().manual_seed(1))
    open_all = evaluate_nll(model, tokens, lengths, T, PAD, budget=2, max_rank=0)
    last_only = evaluate_nll(model, tokens, lengths, T, PAD, budget=2, max_rank=0, first_gap=7)
    assert open_all["thoughts_per_row"] == 2.0 and last_only["thoughts_per_row"] == 1.0  # one gap, one thought
    with pytest.raises(ValueError, match="first_gap"):
        evaluate_nll(model, tokens, lengths, T, PAD, first_gap=0)


def test_generate_with_thoughts_shares_the_one_per_gap_rule():
    from lib.methods.thought_training import generate_with_thoughts

    torch.manual_seed(0)
    model = GPT(GPTConfig(d_vocab=12, n_ctx=12, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32)).eval()
    with torch.no_grad():
        model.unembed.b_U[10] = 50.0  # always wants a thought
    prompt = torch.randint(0, 10, (3, 4), generator=torch.Generator().manual_seed(1))
    _, used = generate_with_thoughts(model, prompt, 2, thought_id=10, max_rank=0, budget=3, first_gap=4, one_per_gap=True)
    assert (used == 2).all()  # one before each answer token: two gaps, never two thoughts in one
    _, used = generate_with_thoughts(model, prompt, 2, thought_id=10, max_rank=0, budget=3, first_gap=4, one_per_gap=False)
    assert (used == 3).all()  # the budget allows a third in the same gap
