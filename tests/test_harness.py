"""The comparison harness: verdicts from numbers, the summary table, and bad inputs."""

import pytest

from lib.harness import (
    METHODS,
    SMALL,
    TASKS,
    CellResult,
    format_table,
    run_harness,
    summarize,
    values,
    verdict,
    verdict_sentences,
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
