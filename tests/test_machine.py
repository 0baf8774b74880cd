"""lib.core.machine: the matmul ceiling and the FLOP count a training run is compared with."""

import pytest
import torch

from lib.core.machine import fraction_of_peak, matmul_peak_flops, training_flops


def test_matmul_peak_is_a_plausible_rate_and_restores_threads():
    before = torch.get_num_threads()
    peak = matmul_peak_flops(1, size=256, repeats=3)
    assert torch.get_num_threads() == before
    # Any CPU of the last decade does 256^3 products at more than 0.1 GFLOP/s and less than 10 TFLOP/s.
    assert 1e8 < peak < 1e13


def test_training_flops_counts_six_per_parameter_and_token_plus_attention():
    assert training_flops(1000, 10) == 60_000
    assert training_flops(1000, 10, n_layers=2, n_ctx=8, d_model=4) == 60_000 + 6 * 2 * 2 * 8 * 4 * 10
    assert fraction_of_peak(50.0, 200.0) == 0.25


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: matmul_peak_flops(0), ValueError, "threads"),
        (lambda: matmul_peak_flops("2"), TypeError, "threads"),
        (lambda: matmul_peak_flops(1, size=8), ValueError, "size"),
        (lambda: training_flops(0, 10), ValueError, "n_params"),
        (lambda: training_flops(10, 1.5), TypeError, "tokens"),
        (lambda: fraction_of_peak(1.0, 0.0), ValueError, "peak_flops"),
        (lambda: fraction_of_peak(float("nan"), 1.0), ValueError, "achieved_flops"),
    ],
)
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()
