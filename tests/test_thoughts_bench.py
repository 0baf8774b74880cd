"""The thought-insertion benchmark runs and reports its figures (timings are not asserted), and the
naive per-sequence round it compares against computes the same thing as the batched round."""

import json

import pytest
import torch

from lib.core.model import GPT, GPTConfig
from lib.methods.thoughts import insertion_round, start_batch
from lib.experiments.thoughts_bench import PYTHIA_70M_CFG, insertion_round_benchmark, main, naive_insertion_round

SMALL = GPTConfig(d_vocab=40, n_ctx=12, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32)


def test_benchmark_reports_every_figure():
    out = insertion_round_benchmark(SMALL, batch_size=2, repeats=1)
    for key in (
        "insertion_round_vs_forward",
        "naive_round_vs_forward",
        "naive_vs_batched_round",
        "forward_ms",
        "round_ms",
        "scored_tokens_per_s",
    ):
        assert out[key] > 0, key
    assert out["bench_seq_len"] == 11  # n_ctx - 1: the row with its thought still fits
    assert "naive_round_ms" not in insertion_round_benchmark(SMALL, batch_size=2, repeats=1, naive=False)


def test_benchmark_rejects_bad_arguments():
    with pytest.raises(ValueError, match="seq_len"):
        insertion_round_benchmark(SMALL, seq_len=12)
    with pytest.raises(ValueError, match="positive"):
        insertion_round_benchmark(SMALL, repeats=0)
    with pytest.raises(ValueError, match="dtype"):
        insertion_round_benchmark(SMALL, dtype=torch.int64)
    with pytest.raises(TypeError):
        insertion_round_benchmark("pythia")


def test_naive_round_agrees_with_the_batched_round():
    torch.manual_seed(0)
    model = GPT(SMALL).eval()
    with torch.no_grad():
        model.unembed.W_U.mul_(20.0)
    thought = SMALL.d_vocab - 1
    tokens = torch.randint(0, thought, (4, 10), generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([10, 6, 10, 3])
    batch = start_batch(model, tokens, lengths, thought, pad_id=0)
    batched = insertion_round(model, batch, "rank")
    with torch.no_grad():
        positions, scores = naive_insertion_round(model, tokens, lengths, model(tokens), thought)
    assert positions == batched.positions.tolist()
    assert scores == pytest.approx(batched.scores.tolist(), abs=1e-4)


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()  # main() sets the thread count: give it back afterwards
    yield
    torch.set_num_threads(threads)


def test_cli_json_and_pythia_shape(capsys, keep_threads):
    results = main(["--json", "--batch", "1", "--seq", "6", "--repeats", "1", "--no-naive", "--threads", "1"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["insertion_round_vs_forward"] == pytest.approx(results["insertion_round_vs_forward"])
    assert PYTHIA_70M_CFG.n_layers == 6 and PYTHIA_70M_CFG.d_model == 512 and PYTHIA_70M_CFG.d_vocab == 50304


def test_cli_pythia_runs_on_cpu_in_bf16(keep_threads):
    results = main(["--pythia", "--batch", "1", "--seq", "8", "--repeats", "1", "--no-naive", "--threads", "2"])
    assert results["scored_tokens_per_s"] > 0 and "pythia" in results["model"]
