"""The comparison harness: verdicts from numbers, the summary table, every runner at a tiny size, and bad inputs."""

import pytest
import torch

from lib.harness import (
    METHODS,
    RUNNERS,
    SMALL,
    TASKS,
    THOUGHT_BUDGET,
    CellResult,
    Size,
    format_table,
    path_star_setup,
    run_harness,
    summarize,
    text_encdec_config,
    values,
    verdict,
    verdict_sentences,
    with_fillers,
)


def test_verdict_needs_separation_and_size():
    assert verdict([0.1, 0.2, 0.15], [0.8, 0.9, 0.85], True, 0.02) == "better"
    assert verdict([0.1, 0.2, 0.15], [0.8, 0.9, 0.85], False, 0.02) == "worse"
    # Overlapping seeds: no verdict, however large the mean difference.
    assert verdict([0.1, 0.2, 0.9], [0.8, 0.9, 0.85], True, 0.02) == "no measurable effect"
    # Separated but smaller than the smallest effect worth reporting.
    assert verdict([1.000, 1.001, 1.002], [1.003, 1.004, 1.005], True, 0.01) == "no measurable effect"
    # Lower is better (a loss).
    assert verdict([2.0, 2.1, 2.05], [1.8, 1.85, 1.9], False, 0.01) == "better"
    with pytest.raises(ValueError):
        verdict([1.0], [2.0, 3.0], True, 0.0)
    with pytest.raises(ValueError):
        verdict([1.0, 2.0], [2.0, 3.0], True, -1.0)


def fake_results():
    out = []
    for seed in (0, 1, 2):
        out.append(CellResult("pointer", "baseline", seed, 0.5 + 0.01 * seed, 100, 1, 1.0))
        out.append(CellResult("pointer", "dense", seed, 0.9 + 0.01 * seed, 100, 3, 2.0))
        out.append(CellResult("pointer", "pause", seed, 0.49 + 0.02 * seed, 100, 1, 1.0))
    return out


def test_summary_and_table():
    results = fake_results()
    assert values(results, "pointer", "dense") == [0.9, 0.91, 0.92]
    summary = summarize(results)
    assert set(summary) == {"pointer"}
    cells = summary["pointer"]
    assert cells["baseline"]["verdict"] == "reference"
    assert cells["dense"]["verdict"] == "better" and cells["pause"]["verdict"] == "no measurable effect"
    assert cells["dense"]["mean"] == pytest.approx(0.91) and cells["dense"]["n"] == 3
    assert cells["dense"]["forward_passes_per_step"] == 3
    sentences = verdict_sentences(summary)
    assert sentences == [
        "pointer: pause tokens: no measurable effect, 0.510 ± 0.020 vs 0.510 ± 0.010 (accuracy, 1-3 hops)",
        "pointer: dense tokens: better than the baseline, 0.910 ± 0.010 vs 0.510 ± 0.010 (accuracy, 1-3 hops)",
    ]
    table = format_table(summary)
    assert "pointer" in table and "better" in table and "higher is better" in table


def test_bad_arguments():
    with pytest.raises(ValueError, match="task"):
        run_harness(SMALL, tasks=("chess",))
    with pytest.raises(ValueError, match="method"):
        run_harness(SMALL, methods=("magic",))
    assert set(TASKS) == {"shakespeare", "pointer", "path_star"} and "baseline" in METHODS


# A size small enough to run every (task, method) pair in seconds: the runners' wiring, budgets
# and bookkeeping are tested here; what they learn at the notebook's size is notebook 08's business.
TINY = Size("tiny", (0,), text_steps=2, text_batch=2, text_window=16, text_d_model=16, text_layers=2,
            text_every=8, text_val_windows=2, pointer_steps=2, path_steps=2)


@pytest.fixture(scope="module")
def tiny_results():
    return run_harness(TINY, progress=False, references=True)


@pytest.mark.slow
def test_every_runner_returns_one_result_per_task_method_and_seed(tiny_results):
    keys = [(r.task, r.method, r.seed) for r in tiny_results]
    expected = [(t, m, s) for t in TASKS for m in METHODS for s in TINY.seeds]
    expected += [("path_star", "reference: reversed", s) for s in TINY.seeds]
    assert keys == expected
    for r in tiny_results:
        if r.task == "shakespeare":
            assert 0 < r.value < 10 and r.extra["nats_per_token"] > r.value  # a token holds several characters
        else:
            assert 0 <= r.value <= 1
        assert r.seconds > 0
    by_hops = [r.extra["by_hops"] for r in tiny_results if r.task == "pointer"]
    assert all(set(h) == {1, 2, 3} for h in by_hops)


@pytest.mark.slow
def test_runners_keep_the_budgets_equal_and_report_the_extra_passes(tiny_results):
    for task in TASKS:
        cells = {r.method: r for r in tiny_results if r.task == task and r.seed == 0}
        gpt_params = {cells[m].n_params for m in ("baseline", "pause", "dense", "thoughts")}
        assert len(gpt_params) == 1, f"{task}: every GPT method has the same parameter count"
        (gpt,) = gpt_params
        assert 0.9 * gpt <= cells["planning"].n_params <= gpt, f"{task}: the encoder-decoder fits within the GPT's budget"
        assert cells["dense"].forward_passes_per_step == 3
        assert all(cells[m].forward_passes_per_step == 1 for m in ("baseline", "pause", "thoughts", "planning"))
        assert cells["thoughts"].extra["eval_thoughts_per_row"] <= THOUGHT_BUDGET


def test_text_context_has_room_for_fillers_and_thoughts():
    cfg = text_encdec_config(TINY)
    assert cfg.n_ctx == 16 + max(15 // 8, THOUGHT_BUDGET)
    assert text_encdec_config(SMALL).n_ctx == SMALL.text_window + (SMALL.text_window - 1) // SMALL.text_every


def test_with_fillers_moves_the_targets_with_the_path():
    from lib.path_star import sample_path_star

    spec, k, ids, _ = path_star_setup()
    batch = sample_path_star(spec, 5, torch.Generator().manual_seed(0))
    filled = with_fillers(batch, k, ids["pause"])
    p = spec.prompt_len
    assert filled.tokens.shape == (5, batch.tokens.shape[1] + k)
    assert (filled.tokens[:, p : p + k] == ids["pause"]).all()
    assert torch.equal(filled.tokens[:, p + k :], batch.tokens[:, p:])
    # Each path node is predicted from the position before it, as in the unfilled batch.
    kept = filled.targets != -100
    assert torch.equal(filled.targets[kept].view(5, -1), batch.targets[batch.targets != -100].view(5, -1))
    assert torch.equal(filled.tokens[:, 1:][kept[:, :-1]].view(5, -1), batch.answers)


def test_runners_reject_unknown_methods():
    for runner in RUNNERS.values():
        with pytest.raises(ValueError, match="unknown method"):
            runner("magic", 0, TINY)


def test_command_line_prints_the_table_and_writes_json(monkeypatch, tmp_path, capsys):
    import json

    import lib.harness
    import lib.training

    monkeypatch.setattr(lib.harness, "SMALL", TINY)  # the command's default size, made tiny
    monkeypatch.setattr(lib.training, "make_reproducible", lambda **kwargs: None)  # no global torch settings
    out = tmp_path / "results.json"
    argv = ["--tasks", "pointer", "--methods", "baseline", "dense", "--device", "cpu", "--json", str(out)]
    assert lib.harness.main(argv) == 0
    printed = capsys.readouterr().out
    assert "pointer" in printed and "dense" in printed
    saved = json.loads(out.read_text())
    assert saved["size"]["name"] == "tiny" and saved["device"] == "cpu"
    assert [(r["method"], r["seed"]) for r in saved["runs"]] == [("baseline", 0), ("dense", 0)]
    assert set(saved["summary"]["pointer"]) == {"baseline", "dense"}
    with pytest.raises(SystemExit):
        lib.harness.main(["--tasks", "chess"])
