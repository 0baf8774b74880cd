"""The notebook-04b checker passes on the reference and fails on a stub and on typical mistakes."""

import pytest
import torch

from lib.experiments.circuits import stripe_score
from lib.core.claims import strict
from lib.exercises import ExerciseFailed
from lib.exercises.circuits import check_attention_at_offset, reference_attention_at_offset


@pytest.fixture(autouse=True)
def _strict_checkers():
    with strict():
        yield


def test_reference_agrees_with_the_library():
    pattern = torch.rand(2, 3, 7, 7).tril().softmax(-1)
    for offset in (0, 1, 4):
        assert torch.allclose(reference_attention_at_offset(pattern, offset), stripe_score(pattern, offset))
    check_attention_at_offset(reference_attention_at_offset)


def test_fails_on_stub_and_typical_mistakes():
    def stub(pattern, offset):
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_attention_at_offset(stub)

    def all_queries(pattern, offset):
        q = torch.arange(offset, pattern.shape[-1])
        return pattern[:, :, q, q - offset].sum(2).mean(0) / pattern.shape[-1]

    with pytest.raises(ExerciseFailed, match="ALL queries"):
        check_attention_at_offset(all_queries)

    def future(pattern, offset):
        q = torch.arange(offset, pattern.shape[-1])
        return pattern[:, :, q - offset, q].mean(dim=(0, 2))

    with pytest.raises(ExerciseFailed, match="future"):
        check_attention_at_offset(future)
    with pytest.raises(ExerciseFailed, match="shape"):
        check_attention_at_offset(lambda pattern, offset: pattern.mean())
    with pytest.raises(TypeError):
        check_attention_at_offset(None)
