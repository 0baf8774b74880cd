"""lib.methods.dense_emit: budgets of dense tokens, the counts scoring finds useful, free generation."""

import pytest
import torch

from lib.methods.dense import sequential_forward
from lib.methods.dense_emit import (
    AdaptiveAnswers, adaptive_accuracy, answer_probs_by_budget, budget_rows, fixed_budget_accuracy, generate_adaptive,
    train_adaptive, train_fixed_budget, useful_counts,
)
from lib.core.model import GPT, GPTConfig
from lib.tasks.pointer_task import PointerSpec, pointer_model_config

D, PAD = 9, 10


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(d_vocab=11, n_ctx=12, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))


def test_budget_rows_layout_and_targets():
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    answers = torch.tensor([7, 8])
    tokens, targets = budget_rows(prompt, answers, torch.tensor([2, 0]), D, PAD)
    assert tokens.tolist() == [[1, 2, 3, D, D, 7], [4, 5, 6, 8, PAD, PAD]]
    assert targets.tolist() == [[-100, -100, -100, -100, 7, -100], [-100, -100, 8, -100, -100, -100]]
    _, emit = budget_rows(prompt, answers, torch.tensor([2, 0]), D, PAD, emit=True)
    assert emit.tolist() == [[-100, -100, D, D, 7, -100], [-100, -100, 8, -100, -100, -100]]


def test_budget_rows_bad_inputs():
    prompt, answers = torch.tensor([[1, 2]]), torch.tensor([3])
    with pytest.raises(ValueError):
        budget_rows(prompt, answers, torch.tensor([-1]), D, PAD)
    with pytest.raises(ValueError):
        budget_rows(prompt, torch.tensor([3, 4]), torch.tensor([1]), D, PAD)
    with pytest.raises(TypeError):
        budget_rows(prompt.float(), answers, torch.tensor([1]), D, PAD)
    with pytest.raises(TypeError):
        budget_rows(prompt, answers, torch.tensor([1]), D, PAD, emit=1)
    with pytest.raises(ValueError):
        budget_rows(torch.zeros(1, 0, dtype=torch.long), answers, torch.tensor([1]), D, PAD)
    with pytest.raises(TypeError, match="counts"):
        budget_rows(prompt, answers, torch.tensor([1.0]), D, PAD)


def test_answer_probs_by_budget_matches_an_exact_sequential_forward(model):
    prompt, answers = torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.tensor([7, 8])
    probs = answer_probs_by_budget(model, prompt, answers, D, PAD, 2)
    assert probs.shape == (2, 3) and ((probs > 0) & (probs < 1)).all()
    for k in range(3):
        tokens, _ = budget_rows(prompt, answers, torch.full((2,), k), D, PAD)
        logits = sequential_forward(model, tokens, D)[:, 2 + k]
        logits[:, D] = float("-inf")
        expected = logits.softmax(-1)[torch.arange(2), answers]
        assert torch.allclose(probs[:, k], expected, atol=1e-5)
    assert model.training
    with pytest.raises(ValueError):
        answer_probs_by_budget(model, prompt, answers, D, PAD, -1)


def test_useful_counts_is_the_first_budget_that_suffices():
    probs = torch.tensor([[0.9, 0.9, 0.9], [0.1, 0.6, 0.9], [0.1, 0.2, 0.7], [0.1, 0.2, 0.3], [0.6, 0.1, 0.1]])
    assert useful_counts(probs, 0.5).tolist() == [0, 1, 2, 2, 0]
    assert useful_counts(probs, 0.65).tolist() == [0, 2, 2, 2, 2]
    with pytest.raises(ValueError):
        useful_counts(probs, 0.0)
    with pytest.raises(TypeError):
        useful_counts(probs.long(), 0.5)
    with pytest.raises(TypeError):
        useful_counts(torch.zeros(3, 0), 0.5)


def test_generate_adaptive_feeds_the_vector_and_forces_the_answer(model):
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    # Make <|dense|> the favourite everywhere: every row thinks max_dense times, then is forced to answer.
    with torch.no_grad():
        model.unembed.b_U[D] += 100.0
    try:
        out = generate_adaptive(model, prompt, D, 2)
        assert out.n_dense.tolist() == [2, 2] and out.passes.tolist() == [3, 3]
        tokens = torch.cat([prompt, torch.full((2, 2), D)], dim=1)
        logits = sequential_forward(model, tokens, D)[:, -1]
        logits[:, D] = float("-inf")
        assert out.answers.tolist() == logits.argmax(-1).tolist()  # the exact computation, dense logit masked
    finally:
        with torch.no_grad():
            model.unembed.b_U[D] -= 100.0
    # Without that push the rows answer at once when <|dense|> is not their best token.
    plain = generate_adaptive(model, prompt, D, 0)
    assert plain.n_dense.tolist() == [0, 0]
    first = model(prompt)[:, -1]
    first[:, D] = float("-inf")
    assert plain.answers.tolist() == first.argmax(-1).tolist()


def test_generate_adaptive_bad_inputs(model):
    prompt = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError):
        generate_adaptive(model, prompt, D, 10)  # past n_ctx
    with pytest.raises(ValueError):
        generate_adaptive(model, prompt, 99, 1)
    with pytest.raises(TypeError):
        generate_adaptive(model, prompt, D, 1.0)
    with pytest.raises(TypeError):
        generate_adaptive(model, prompt.float(), D, 1)


def test_adaptive_answers_passes():
    a = AdaptiveAnswers(torch.tensor([1, 2]), torch.tensor([0, 3]))
    assert a.passes.tolist() == [1, 4]


def test_train_adaptive_and_fixed_budget_run_and_report(monkeypatch):
    spec = PointerSpec(max_hops=2)
    torch.manual_seed(0)
    m = GPT(pointer_model_config(spec, d_model=16))
    run = train_adaptive(m, spec, steps=4, batch_size=8, lr=1e-3, seed=0, max_dense=1)
    assert run.steps == (2, 2) and run.counts.shape == (16,) and set(run.counts.tolist()) <= {0, 1}
    acc = adaptive_accuracy(m, spec, 1, question_seed=5, n_questions=8)
    assert set(acc) == {1, 2} and all(0 <= v["accuracy"] <= 1 and v["passes"] == v["dense"] + 1 for v in acc.values())
    fixed = train_fixed_budget(GPT(pointer_model_config(spec, d_model=16)), spec, 2, 8, 1e-3, 0, budget=1)
    assert set(fixed_budget_accuracy(fixed, spec, 1, 5, 8)) == {1, 2}
    with pytest.raises(TypeError):
        train_adaptive(m, "spec", 4, 8, 1e-3, 0, 1)
    with pytest.raises(ValueError):
        train_adaptive(m, spec, 4, 8, 1e-3, 0, 5)  # no room in n_ctx
    with pytest.raises(ValueError):
        train_adaptive(m, spec, 1, 8, 1e-3, 0, 1)
    with pytest.raises(ValueError):
        fixed_budget_accuracy(fixed, spec, -1, 5, 8)


def test_the_questions_can_come_from_another_source_laid_out_on_the_spec():
    # The until-marked task (lib.tasks.pointer_until) lays its questions out on a PointerSpec: the
    # training and scoring use its questions, and a source that is not callable is refused first.
    from lib.tasks.pointer_until import UntilSpec, sample_until

    task = UntilSpec()
    asked = []

    def test_tables(n, generator, hops):
        asked.append(hops)
        return sample_until(task, n, generator, "test", hops)

    torch.manual_seed(0)
    m = GPT(GPTConfig(**{**pointer_model_config(task.spec, d_model=16).to_dict(), "n_ctx": task.n_nodes + 3 + 2 + 1}))
    run = train_adaptive(m, task.spec, 4, 8, 1e-3, 0, 2, questions=lambda n, g, h: sample_until(task, n, g, "train", h))
    with pytest.raises(TypeError, match="shuffle_counts"):
        train_adaptive(m, task.spec, 4, 8, 1e-3, 0, 2, shuffle_counts="yes")  # refused before training
    assert set(run.count_hops.tolist()) <= set(task.id_hops)  # the training split's lookups only
    acc = adaptive_accuracy(m, task.spec, 2, 5, 6, questions=test_tables)
    assert sorted(acc) == [1, 2, 3] and asked == [1, 2, 3]  # every count, the deeper one too
    with pytest.raises(TypeError, match="questions must be callable"):
        train_adaptive(m, task.spec, 4, 8, 1e-3, 0, 2, questions="until")


def test_the_shuffled_control_teaches_the_same_counts_to_other_questions(monkeypatch):
    import lib.methods.dense_emit as emit

    fixed_counts = torch.arange(16) % 2  # what scoring "finds", whatever the model
    monkeypatch.setattr(emit, "useful_counts", lambda probs, threshold: fixed_counts.clone())
    spec = PointerSpec(max_hops=2)
    plain = train_adaptive(GPT(pointer_model_config(spec, d_model=16)), spec, 4, 8, 1e-3, 0, 1)
    shuffled = train_adaptive(GPT(pointer_model_config(spec, d_model=16)), spec, 4, 8, 1e-3, 0, 1, shuffle_counts=True)
    assert plain.counts.tolist() == fixed_counts.tolist()
    assert sorted(shuffled.counts.tolist()) == sorted(fixed_counts.tolist()) and shuffled.counts.tolist() != fixed_counts.tolist()
    assert shuffled.count_hops.tolist() == plain.count_hops.tolist()  # the same questions, other counts


def _teacher_budgets(monkeypatch, **kwargs) -> list[list[int]]:
    """The dense tokens per row of each teacher-phase batch train_adaptive would train on."""
    import lib.core.training as training

    seen = []

    class Seen(Exception):  # stop before the switch: only the first half's batches are asked for
        pass

    def capture(model, batch_fn, cfg, loss_fn=None):
        for step in range(cfg.max_steps // 2):
            tokens, _ = batch_fn(step)
            seen.append((tokens == spec.dense_id).sum(dim=1).tolist())
        raise Seen

    monkeypatch.setattr(training, "train", capture)
    spec = PointerSpec(max_hops=2)
    torch.manual_seed(0)
    m = GPT(GPTConfig(**{**pointer_model_config(spec, d_model=16).to_dict(), "n_ctx": spec.n_nodes + 3 + 4 + 1}))
    with pytest.raises(Seen):
        train_adaptive(m, spec, 40, 16, 1e-3, 3, 4, **kwargs)
    return seen


def test_the_teacher_can_start_at_one_budget_before_it_draws(monkeypatch):
    plain = _teacher_budgets(monkeypatch, teacher_budgets="batch")
    assert [rows[0] for rows in plain[:8]] == [1, 0, 3, 3, 3, 1, 1, 1]  # no start: the draw of the code before it (91c89a2)
    started = _teacher_budgets(monkeypatch, teacher_budgets="batch", teacher_start=(6, 1))
    assert len(started) == 20 and all(rows == [1] * 16 for rows in started[:6])  # every row at 1 dense token
    assert started[6] != [1] * 16 and len({rows[0] for rows in started[6:]}) >= 3  # then the draw, from step 6 on
    longest = _teacher_budgets(monkeypatch, teacher_budgets="batch", teacher_start=(19, 4))  # the bounds are allowed
    assert all(rows == [4] * 16 for rows in longest[:19]) and longest[19] != [4] * 16
    spec = PointerSpec(max_hops=2)
    m = GPT(GPTConfig(**{**pointer_model_config(spec, d_model=16).to_dict(), "n_ctx": spec.n_nodes + 3 + 4 + 1}))
    before = [p.clone() for p in m.parameters()]
    for bad in ((0, 1), (20, 1), (5, 5), (5, -1), [5, 1], (5,), (True, 1), (5.0, 1)):
        with pytest.raises(ValueError, match="teacher_start"):
            train_adaptive(m, spec, 40, 8, 1e-3, 0, 4, teacher_start=bad)
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))  # refused before training
    from lib.methods.dense_emit import adaptive_experiment

    with pytest.raises(ValueError, match="teacher_start"):
        adaptive_experiment(spec, (0,), 40, (0, 1), teacher_start=(5, 2))  # more than the most it may write


def test_the_experiment_gives_the_teacher_s_start_to_both_arms(monkeypatch):
    import inspect

    import lib.methods.dense_emit as dense_emit

    real, given = dense_emit.train_adaptive, []

    def record(model, spec, steps, *args, **kwargs):  # what each arm was asked to train with, then no training
        bound = inspect.signature(real).bind(model, spec, steps, *args, **kwargs)
        bound.apply_defaults()
        given.append((bound.arguments["shuffle_counts"], bound.arguments["teacher_start"]))
        return dense_emit.AdaptiveRun(model, torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long), (2, 2))

    monkeypatch.setattr(dense_emit, "train_adaptive", record)
    spec = PointerSpec(max_hops=2)
    out = dense_emit.adaptive_experiment(spec, (0,), 4, (0, 1), n_questions=2, progress=False, shuffled_control=True,
                                         teacher_budgets="batch", teacher_start=(1, 1))
    assert given == [(False, (1, 1)), (True, (1, 1))]  # the adaptive model, then its control
    assert out["settings"]["teacher_start"] == [1, 1]


def test_the_teacher_draws_one_budget_per_question_or_one_per_batch(monkeypatch):
    per_question = _teacher_budgets(monkeypatch)
    per_batch = _teacher_budgets(monkeypatch, teacher_budgets="batch")
    assert len(per_batch) == len(per_question) == 20
    assert all(len(set(rows)) == 1 for rows in per_batch)  # one depth a step
    assert len({rows[0] for rows in per_batch}) >= 3  # and several depths over the phase
    assert sum(len(set(rows)) > 1 for rows in per_question) >= 18  # mixed within a batch
    assert {b for rows in per_batch for b in rows} <= set(range(5))
    spec = PointerSpec(max_hops=2)
    m = GPT(pointer_model_config(spec, d_model=16))
    before = [p.clone() for p in m.parameters()]
    with pytest.raises(ValueError, match="teacher_budgets"):
        train_adaptive(m, spec, 4, 8, 1e-3, 0, 1, teacher_budgets="step")
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))  # refused before training
    from lib.methods.dense_emit import adaptive_experiment

    with pytest.raises(ValueError, match="teacher_budgets"):
        adaptive_experiment(spec, (0,), 4, (0, 1), teacher_budgets="per batch")


def test_the_until_experiment_counts_what_the_model_writes_per_lookup():
    from lib.experiments.adaptive_until import count_by_hops, one_lookup_accuracy, until_experiment, written_mean_and_error

    result = until_experiment((0,), steps=10, n_questions=4, progress=False)
    assert result["settings"]["trained_hops"] == [1, 2] and result["settings"]["ood_hops"] == [3]
    assert result["settings"]["threshold"] == 0.9 and result["settings"]["max_dense"] == 4
    assert result["settings"]["teacher_budgets"] == "batch"  # one budget per teacher batch, recorded
    assert result["settings"]["teacher_start"] == [2, 1]  # 400 of 2,000 steps at 1 dense token: 2 of 10
    assert sorted(result["seeds"][0]["useful"]) == [1, 2] and sorted(result["seeds"][0]["fixed"]) == [0, 1, 2]
    assert sorted(result["seeds"][0]["shuffled"]) == [1, 2, 3]  # the control, scored like the adaptive model

    def hist(counts):  # the histogram of 4 questions' dense counts, 0..5
        return [sum(c == k for c in counts) / len(counts) for k in range(6)]

    def seed(by_hops):  # a stored seed, as JSON gives it back (string keys)
        return {"adaptive": {str(h): {"dense_hist": hist(c), "accuracy": 1.0} for h, c in by_hops.items()}}
    made = {"settings": {"trained_hops": [1, 2, 3], "ood_hops": [4], "n_questions": 4},
            "seeds": {"0": seed({1: [0] * 4, 2: [1] * 4, 3: [2] * 4, 4: [3, 3, 3, 5]}),  # follows the lookups
                      "1": seed({1: [0, 5, 0, 5], 2: [5, 0, 5, 0], 3: [0, 5, 5, 0], 4: [5] * 4}),  # noise: no rise beyond 2 errors
                      "2": seed({1: [5] * 4, 2: [5] * 4, 3: [5] * 4, 4: [5] * 4})}}  # always the most
    table = count_by_hops(made)
    assert [table["per_seed"][s]["rises_trained"] for s in (0, 1, 2)] == [True, False, False]
    assert table["rises_ood"] == 1 and table["n"] == 3
    assert table["per_seed"][0]["gap"][4] == pytest.approx(0.5) and table["per_seed"][2]["at_most"][1] == 1.0
    assert written_mean_and_error({"dense_hist": hist([0, 0, 2, 2])}, 4) == pytest.approx((1.0, (4 / 3) ** 0.5 / 2))
    assert one_lookup_accuracy(1) == 1.0 and one_lookup_accuracy(3) == 0.5
    with pytest.raises(ValueError, match="until_experiment"):
        count_by_hops({"seeds": {}})
    with pytest.raises(ValueError, match="arm"):
        count_by_hops(made, "fixed")


def test_seeds_run_in_parallel_give_what_they_give_in_series():
    # Each seed is trained and scored alone, so running seeds in worker processes changes nothing.
    from lib.core.training import make_reproducible
    from lib.experiments.adaptive_until import run_seeds

    threads = torch.get_num_threads()
    make_reproducible(seed=0, threads=2)
    serial = run_seeds((0, 1), 2, 1)  # one thread inside, as each worker has
    assert torch.get_num_threads() == 2  # and the caller's setting is back
    torch.set_num_threads(threads)
    parallel = run_seeds((0, 1), 2, 2)
    assert parallel["settings"]["seeds"] == [0, 1] and sorted(parallel["seeds"]) == [0, 1]
    assert parallel["seeds"] == serial["seeds"]
    for bad, match in ((((0,), 2, 0), "jobs"), (((), 2, 2), "seeds"), (([0], 2, 1), "seeds"), (((True,), 2, 1), "seeds"),
                       (((0,), 1, 2), "steps")):
        with pytest.raises(ValueError, match=match):
            run_seeds(*bad)  # refused before any process starts


def test_the_shuffled_control_has_the_adaptive_model_s_teacher(monkeypatch):
    # The control's first half is the adaptive model's step for step, so choosing seeds by what the
    # teacher learned selects both arms alike (lib.experiments.adaptive_until.control_comparison).
    # Checked through the experiment that makes the stored file, which builds both arms.
    import lib.methods.dense_emit as emit

    scored, real = [], emit.useful_counts
    monkeypatch.setattr(emit, "useful_counts", lambda probs, threshold: scored.append(probs.clone()) or real(probs, threshold))
    spec = PointerSpec(max_hops=2)
    emit.adaptive_experiment(spec, (3,), 8, (0,), batch_size=8, n_questions=4, progress=False, max_dense=2,
                             shuffled_control=True, teacher_budgets="batch")
    emit.adaptive_experiment(spec, (4,), 8, (0,), batch_size=8, n_questions=4, progress=False, max_dense=2,
                             shuffled_control=True, teacher_budgets="batch")
    assert len(scored) == 4  # per seed: the adaptive model's teacher, then the control's
    assert torch.equal(scored[0], scored[1]) and torch.equal(scored[2], scored[3])
    assert not torch.equal(scored[0], scored[2])  # another seed is another teacher: the check can fail


def _until_result(rises: dict[int, tuple[float, float]], useful: dict[int, tuple[float, float]]) -> dict:
    """A result laid out as until_experiment's: per seed the adaptive and shuffled arms' written
    counts (as histograms over 0..4 of 10 questions) rising by the given amounts from 1 lookup."""
    def arm(rise):
        def hist(mean):  # ten questions writing floor / ceil of mean
            lo, frac = int(mean), mean - int(mean)
            h = [0.0] * 5
            h[lo] += 1 - frac
            if frac:
                h[lo + 1] += frac
            return h
        return {h: {"dense_hist": hist(min(4.0, 0.2 + rise * (h - 1))), "accuracy": 1.0 if h < 3 else 0.5} for h in (1, 2, 3)}

    settings = {"n_questions": 10, "trained_hops": [1, 2], "ood_hops": [3], "budgets": [0, 1, 2], "max_dense": 4}
    return {"settings": settings, "seeds": {s: {"adaptive": arm(a), "shuffled": arm(c), "useful": dict(zip((1, 2), useful[s]))}
                                            for s, (a, c) in rises.items()}}


def test_teacher_outcomes_and_the_comparison_with_the_control():
    from lib.experiments.adaptive_until import control_comparison, teacher_outcomes

    rises = {1: (0.8, 0.2), 2: (0.0, 0.0), 3: (0.9, 0.1), 4: (0.7, 0.3), 5: (0.6, 0.25)}
    useful = {1: (0.2, 0.97), 2: (4.0, 4.0), 3: (0.1, 1.1), 4: (2.2, 3.8), 5: (0.25, 1.2)}
    result = _until_result(rises, useful)
    assert teacher_outcomes(result) == {1: "learned", 2: "stuck", 3: "learned", 4: "partial", 5: "learned"}
    learned = control_comparison(result, (1, 3, 5))
    name = "written at 2 - at 1"
    assert learned[name]["verdict"] == "better" and learned[name]["n_method"] == 3
    assert abs(learned[name]["method_mean"] - (0.8 + 0.9 + 0.6) / 3) < 1e-9
    assert abs(learned[name]["p_value"] - 0.1) < 1e-9  # 3 against 3, complete separation: 2/20, two-sided
    everyone = control_comparison(result)  # seed 2 writes the same in both arms: no complete separation
    assert everyone[name]["verdict"] == "no measurable effect" and everyone[name]["n_method"] == 5
    assert all(e["p_holm"] >= e["p_value"] for e in everyone.values()) and len(everyone) == 3
    # a control that rises as much: no effect, whichever seeds
    same = _until_result({s: (a, a) for s, (a, _) in rises.items()}, useful)
    assert control_comparison(same, (1, 3, 5))[name]["verdict"] == "no measurable effect"


def test_the_comparison_with_the_control_checks_its_arguments():
    from lib.experiments.adaptive_until import control_comparison, teacher_outcomes

    result = _until_result({1: (0.8, 0.2), 2: (0.5, 0.1)}, {1: (0.2, 1.0), 2: (0.2, 1.0)})
    for bad in ((1,), (1, 1), (1, 9), [1, 2], (True, 2), "12"):
        with pytest.raises(ValueError, match="seeds"):
            control_comparison(result, bad)
    no_control = {**result, "seeds": {s: {k: v for k, v in r.items() if k != "shuffled"} for s, r in result["seeds"].items()}}
    no_useful = {**result, "seeds": {s: {k: v for k, v in r.items() if k != "useful"} for s, r in result["seeds"].items()}}
    for bad in ({}, {"settings": {}, "seeds": {1: {}}}, "result"):
        with pytest.raises(ValueError, match="result"):
            teacher_outcomes(bad)
        with pytest.raises(ValueError, match="result"):
            control_comparison(bad)
    with pytest.raises(ValueError, match="lacks \\['useful'\\]"):  # each reader asks only for what it reads
        teacher_outcomes(no_useful)
    with pytest.raises(ValueError, match="lacks \\['shuffled'\\]"):
        control_comparison(no_control)
    assert teacher_outcomes(no_control) == {1: "learned", 2: "learned"}
    assert set(control_comparison(no_useful)) == set(control_comparison(result))


def test_rise_by_seed_reads_each_seeds_count_difference_and_checks_its_arguments():
    from lib.experiments.adaptive_until import rise_by_seed

    result = _until_result({1: (0.8, 0.2), 2: (0.5, 0.1), 3: (0.0, 0.0)}, {s: (0.2, 1.0) for s in (1, 2, 3)})
    got = rise_by_seed(result)
    assert sorted(got) == [1, 2, 3] and all(abs(got[s] - r) < 1e-9 for s, r in ((1, 0.8), (2, 0.5), (3, 0.0)))
    control = rise_by_seed(result, "shuffled", (1, 2))
    assert control.keys() == {1, 2} and abs(control[1] - 0.2) < 1e-9 and abs(control[2] - 0.1) < 1e-9
    deeper = rise_by_seed(result, lookups=(2, 3))  # the made-up arms rise by the same step at every lookup
    assert all(abs(deeper[s] - got[s]) < 1e-9 for s in got)
    assert all(abs(d + u) < 1e-9 for d, u in zip(rise_by_seed(result, lookups=(2, 1)).values(), got.values()))
    for bad in ((1, 1), (1, 9), [1, 2], (True, 2), ()):
        with pytest.raises(ValueError, match="seeds"):
            rise_by_seed(result, seeds=bad)
    for bad in ((1,), (1, 4), [1, 2], (True, 2)):
        with pytest.raises(ValueError, match="lookups"):
            rise_by_seed(result, lookups=bad)
    with pytest.raises(ValueError, match="arm"):
        rise_by_seed(result, "fixed")
