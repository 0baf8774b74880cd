"""`python -m lib.experiments.bench --json` prints exactly one JSON object on stdout, whatever the libraries
print while the benchmark runs (the run itself is replaced by a stub that prints, as
TransformerLens does; tests/test_prepare_and_bench.py runs the real one, marked slow)."""

from __future__ import annotations

import json

from lib.experiments import bench


def _noisy_run_all(smoke: bool = False) -> dict[str, float]:
    print("Changing model dtype to torch.float32")
    return {"torch_threads": 2, "train_speed_ratio_vs_tl": 1.2}


def test_json_stdout_is_one_object(monkeypatch, capsys):
    monkeypatch.setattr(bench, "run_all", _noisy_run_all)
    assert bench.main(["--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"torch_threads": 2, "train_speed_ratio_vs_tl": 1.2}
    assert "Changing model dtype" in err  # not lost, only moved to stderr


def test_table_output_keeps_the_notes_on_stdout(monkeypatch, capsys):
    monkeypatch.setattr(bench, "run_all", _noisy_run_all)
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert "Changing model dtype" in out and "train_speed_ratio_vs_tl" in out


def test_smoke_flag_reaches_the_run_and_refuses_course(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(bench, "run_all", lambda smoke=False: seen.append(smoke) or {"smoke": smoke})
    assert bench.main(["--json", "--smoke"]) == 0
    assert seen == [True] and json.loads(capsys.readouterr().out) == {"smoke": True}
    import pytest

    with pytest.raises(SystemExit):
        bench.main(["--smoke", "--course"])
