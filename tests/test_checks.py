"""lib.core.checks: one convention (TypeError for the kind of a value, ValueError for its value), every
message naming the argument; eval_mode restores the mode on error; atomic_path never leaves half a file."""

import math

import pytest
import torch

from lib.core import checks


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: checks.check_int(True, "n"), TypeError, "n must be an int"),
        (lambda: checks.check_int(2.0, "n"), TypeError, "n must be an int"),
        (lambda: checks.check_int("1", "n"), TypeError, "n must be an int"),
        (lambda: checks.check_int(None, "n"), TypeError, "n must be an int"),
        (lambda: checks.check_int(0, "n", min=1), ValueError, "n must be >= 1, got 0"),
        (lambda: checks.check_int(5, "n", max=4), ValueError, "n must be <= 4, got 5"),
        (lambda: checks.check_float("0.1", "lr"), TypeError, "lr must be a number"),
        (lambda: checks.check_float(False, "lr"), TypeError, "lr must be a number"),
        (lambda: checks.check_float(float("nan"), "lr"), ValueError, "lr must be a finite number"),
        (lambda: checks.check_float(float("inf"), "lr"), ValueError, "lr must be a finite number"),
        (lambda: checks.check_float(0.0, "lr", positive=True), ValueError, "lr must be > 0"),
        (lambda: checks.check_float(-1, "wd", min=0.0), ValueError, "wd must be >= 0.0"),
        (lambda: checks.check_prob(1.5, "p"), ValueError, "p must be <= 1.0"),
        (lambda: checks.check_prob(0.0, "p", allow_zero=False), ValueError, r"p must lie in \(0, 1\]"),
        (lambda: checks.check_prob(None, "p"), TypeError, "p must be a number"),
        (lambda: checks.check_bool(1, "flag"), TypeError, "flag must be a bool"),
        (lambda: checks.check_choice("probs", "return_type", ("logits", None)), ValueError, "return_type must be one of"),
        (lambda: checks.check_choice(True, "order", (1, 2)), ValueError, "order must be one of"),
        (lambda: checks.check_str(3, "text"), TypeError, "text must be a str"),
        (lambda: checks.check_str("", "text"), ValueError, "text must not be empty"),
        (lambda: checks.check_type([], "cfg", dict), TypeError, "cfg must be a dict"),
        (lambda: checks.check_tensor([1, 2], "x"), TypeError, "x must be a torch.Tensor"),
        (lambda: checks.check_tensor(torch.zeros(2), "x", dtype="int"), TypeError, "x must be an integer tensor"),
        (lambda: checks.check_tensor(torch.zeros(2, dtype=torch.long), "x", dtype="float"), TypeError, "floating-point"),
        (lambda: checks.check_tensor(torch.zeros(2), "x", ndim=2), ValueError, "x must have 2 dimension"),
        (lambda: checks.check_tensor(torch.zeros(2, 3), "x", shape=(2, 4)), ValueError, r"x must have shape \[2, 4\]"),
        (lambda: checks.check_tensor(torch.tensor([1.0, math.nan]), "x", finite=True), ValueError, "x holds NaN"),
        (lambda: checks.check_tensor(torch.zeros(0), "x", nonempty=True), ValueError, "x is empty"),
        (lambda: checks.check_tensor(torch.zeros(1), "x", dtype="complex"), ValueError, "dtype must be"),
        (lambda: checks.check_token_ids(torch.zeros(1, 2), "tokens"), TypeError, "tokens must be an integer tensor"),
        (lambda: checks.check_token_ids(torch.zeros(2, dtype=torch.bool), "tokens"), TypeError, "integer"),
        (lambda: checks.check_token_ids(torch.zeros(3, dtype=torch.long), "tokens"), ValueError, r"\[batch, pos\]"),
        (lambda: checks.check_token_ids(torch.tensor([[0, 9]]), "tokens", 5), ValueError, r"tokens must hold ids in \[0, 5\)"),
        (lambda: checks.check_token_ids(torch.tensor([[0, -5]]), "targets", 5, ignore_index=-100), ValueError, "targets"),
        (lambda: checks.check_token_id(True, "pad_id"), TypeError, "pad_id must be an int"),
        (lambda: checks.check_token_id(2.0, "pad_id"), TypeError, "pad_id must be an int"),
        (lambda: checks.check_token_id(5, "pad_id", 5), ValueError, r"pad_id = 5 is outside the vocabulary \[0, 5\)"),
        (lambda: checks.check_token_id(-1, "thought_id"), ValueError, "thought_id = -1 is outside the vocabulary"),
        (lambda: checks.check_padded_rows(torch.zeros(2, 3), torch.ones(2, dtype=torch.long)), TypeError, "tokens must be an integer"),
        (lambda: checks.check_padded_rows(torch.zeros(2, 3, dtype=torch.long), torch.ones(2)), TypeError, "lengths must be an integer"),
        (lambda: checks.check_padded_rows(torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)), ValueError, "tokens must have 2"),
        (lambda: checks.check_padded_rows(torch.zeros(2, 3, dtype=torch.long), torch.ones(3, dtype=torch.long)), ValueError, "lengths has 3 rows"),
        (lambda: checks.check_padded_rows(torch.zeros(2, 3, dtype=torch.long), torch.tensor([1, 4])), ValueError, r"every length must lie in \[1, 3\]"),
        (lambda: checks.check_padded_rows(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 2])), ValueError, "got min 0"),
        (lambda: checks.check_module(torch.nn.Identity()), ValueError, "model has no parameters"),
        (lambda: checks.check_module("gpt"), TypeError, "model must be a torch.nn.Module"),
        (lambda: checks.check_path(3, "out"), TypeError, "out must be a str"),
        (lambda: checks.check_path("", "out"), ValueError, "out must not be empty"),
    ],
)
def test_each_check_raises_the_convention_and_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_checks_return_what_they_accept():
    assert checks.check_int(3, "n", min=1) == 3 and checks.check_int(None, "n", allow_none=True) is None
    assert checks.check_float(2, "x") == 2.0 and isinstance(checks.check_float(2, "x"), float)
    assert checks.check_float(torch.tensor(0.5), "x") == 0.5
    assert checks.check_float(float("inf"), "x", finite=False) == float("inf")
    assert checks.check_prob(1, "p") == 1.0
    assert checks.check_choice(None, "r", ("logits", None)) is None
    t = torch.tensor([[0, -100, 4]])
    assert checks.check_token_ids(t, "targets", 5, ignore_index=-100) is t
    assert checks.check_tensor(torch.zeros(2, 3), "x", shape=(None, 3), finite=True).shape == (2, 3)
    assert checks.check_token_id(4, "pad_id", 5) == 4 and checks.check_token_id(10**6, "pad_id") == 10**6
    assert checks.check_padded_rows(torch.zeros(2, 3, dtype=torch.long), torch.tensor([1, 3])) is None


@pytest.mark.parametrize("start_training", [True, False])
def test_eval_mode_restores_every_submodule_even_on_error(start_training):
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1))
    model.train(start_training)
    model[1].train(not start_training)  # a mixed state must come back exactly
    before = [m.training for m in model.modules()]
    with checks.eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before
    with pytest.raises(RuntimeError, match="boom"):
        with checks.eval_mode(model):
            raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == before
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        with checks.eval_mode("model"):
            pass


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with checks.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("failed midway")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    with checks.atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
