"""Each notebook-07 checker passes on a correct answer and fails on a stub and on a typical mistake."""

import pytest
import torch
import torch.nn.functional as F

from lib.exercises import ExerciseFailed, unwritten_exercise
from lib.exercises.planning import (
    check_cosine_disaffinity,
    check_cross_attention_mask,
    check_future_aggregate,
    reference_cosine_disaffinity,
    reference_cross_attention_mask,
)


pytestmark = pytest.mark.usefixtures("strict_checkers")


stub = unwritten_exercise


def test_cross_attention_mask():
    check_cross_attention_mask(reference_cross_attention_mask)
    assert reference_cross_attention_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_cross_attention_mask(stub)
    # forgets that with a cache the queries are the last positions
    with pytest.raises(ExerciseFailed, match="n_query=1, n_key=5"):
        check_cross_attention_mask(lambda q, k: torch.ones(q, k, dtype=torch.bool).tril())
    # strict: a query may not see its own position
    with pytest.raises(ExerciseFailed, match="AND including"):
        check_cross_attention_mask(lambda q, k: torch.ones(q, k, dtype=torch.bool).tril(diagonal=k - q - 1))
    # float mask
    with pytest.raises(ExerciseFailed, match="bool"):
        check_cross_attention_mask(lambda q, k: reference_cross_attention_mask(q, k).float())


def good_future(E, n):
    keep = E.shape[1] - n
    return sum(E[:, z : z + keep] / z for z in range(1, n + 1))


def test_future_aggregate():
    check_future_aggregate(good_future)
    with pytest.raises(ExerciseFailed):
        check_future_aggregate(stub)
    # includes the present token (off by one)
    with pytest.raises(ExerciseFailed, match="NEXT"):
        check_future_aggregate(lambda E, n: sum(E[:, z - 1 : z - 1 + E.shape[1] - n] / z for z in range(1, n + 1)))
    # weights z instead of 1 / z
    with pytest.raises(ExerciseFailed):
        check_future_aggregate(lambda E, n: sum(E[:, z : z + E.shape[1] - n] * z for z in range(1, n + 1)))
    # keeps every position (zero-padded)
    with pytest.raises(ExerciseFailed, match="shape"):
        check_future_aggregate(lambda E, n: F.pad(good_future(E, n), (0, 0, 0, n)))


def test_cosine_disaffinity():
    check_cosine_disaffinity(reference_cosine_disaffinity)
    check_cosine_disaffinity(lambda a, b: reference_cosine_disaffinity(a, b).item())  # a float is fine
    with pytest.raises(ExerciseFailed):
        check_cosine_disaffinity(stub)
    # 1 - cos, not rescaled to [0, 1]
    with pytest.raises(ExerciseFailed, match="opposite"):
        check_cosine_disaffinity(lambda a, b: (1 - F.cosine_similarity(a, b, dim=-1)).mean())
    # cosine along the wrong dimension
    with pytest.raises(ExerciseFailed):
        check_cosine_disaffinity(lambda a, b: (1 - (F.cosine_similarity(a, b, dim=0) + 1) / 2).mean())
    # per-position values, not averaged
    with pytest.raises(ExerciseFailed, match="shape"):
        check_cosine_disaffinity(lambda a, b: 1 - (F.cosine_similarity(a, b, dim=-1) + 1) / 2)
