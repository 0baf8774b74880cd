"""The feedback a learner gets from a checker: typical mistakes named, the first mismatch and the
largest difference shown, no raw TypeError/ValueError on a wrong return type, and in the default
(learner) mode a printed ✗ plus a fall-back to the reference instead of an exception."""

import pytest
import torch

from lib.core.claims import strict
from lib.exercises import ExerciseFailed, checker, describe_mismatch, expect_close
from lib.exercises.catalog import EXERCISES
from lib.exercises.tokenization import check_merge_pair, reference_merge_pair
from lib.exercises.training_hooks import check_lr_schedule, reference_lr_schedule
from lib.exercises.transformer import (
    check_apply_causal_mask,
    check_attention_output,
    check_attention_scores,
    check_layer_norm,
    reference_apply_causal_mask,
    reference_attention_output,
    reference_attention_scores,
)


def test_describe_mismatch_gives_first_and_largest():
    expected = torch.zeros(2, 3)
    actual = expected.clone()
    actual[0, 2] = 0.5
    actual[1, 1] = -2.0
    text = describe_mismatch(actual, expected, 1e-5)
    assert "first mismatch at index (0, 2): yours 0.5, expected 0" in text
    assert "largest difference 2 at (1, 1)" in text and "2 of 6 entries differ" in text
    inf = torch.tensor([float("-inf"), 1.0])
    assert describe_mismatch(inf, inf.clone(), 1e-5) == "no mismatch"


def test_expect_close_names_a_matching_mistake():
    with strict(), pytest.raises(ExerciseFailed, match="it looks like you forgot the scale"):
        expect_close(torch.ones(2), torch.zeros(2), "f", "case", "hint", mistakes={"you forgot the scale": torch.ones(2)})
    with strict(), pytest.raises(ExerciseFailed, match="return a torch.Tensor"):
        expect_close([0.0, 0.0], torch.zeros(2), "f", "case", "hint")


@pytest.mark.parametrize("wrong", [lambda ids, pair, new_id: None, lambda ids, pair, new_id: 3,
                                   lambda ids, pair, new_id: "oops"])
def test_merge_pair_checker_reports_a_wrong_return_type(wrong):
    with strict(), pytest.raises(ExerciseFailed, match="return a list of ints"):
        check_merge_pair(wrong)


@pytest.mark.parametrize("wrong, match", [
    (lambda *a: None, "Python float"),
    (lambda *a: "0.1", "Python float"),
    (lambda *a: torch.tensor([0.1, 0.2]), "Python float"),
    (lambda step, max_lr, warmup, total, ratio: max_lr * step / warmup if step < warmup
     else reference_lr_schedule(step, max_lr, warmup, total, ratio), r"\(step \+ 1\)"),
])
def test_lr_schedule_checker_reports_wrong_types_and_the_plus_one(wrong, match):
    with strict(), pytest.raises(ExerciseFailed, match=match):
        check_lr_schedule(wrong)


def test_a_crashing_solution_is_a_failure_not_a_crash():
    def crashes(ids, pair, new_id):
        return ids[len(ids) + 5]

    with strict(), pytest.raises(ExerciseFailed, match="raised IndexError"):
        check_merge_pair(crashes)
    with pytest.raises(TypeError):  # misusing the checker itself is still an error
        check_merge_pair("merge_pair")


def test_attention_steps_name_the_typical_mistakes():
    d = 8  # d_head of the checkers' config
    cases = [
        (check_attention_scores, lambda x, attn: reference_attention_scores(x, attn) * d**0.5, "sqrt\\(d_head\\)"),
        (check_attention_scores, lambda x, attn: reference_attention_scores(x, attn).transpose(-1, -2), "transpose"),
        (check_apply_causal_mask, lambda s: s.masked_fill(torch.ones(s.shape[-1], s.shape[-1], dtype=torch.bool).triu(0), float("-inf")), "diagonal"),
        (check_apply_causal_mask, lambda s: s.masked_fill(torch.ones(s.shape[-1], s.shape[-1], dtype=torch.bool).triu(1), 0.0), "instead of -inf"),
        (check_apply_causal_mask, lambda s: s.masked_fill_(torch.ones(s.shape[-1], s.shape[-1], dtype=torch.bool).triu(1), float("-inf")), "in place"),
        (check_attention_output, lambda p, x, attn: reference_attention_output(p, x, attn) - attn.b_O, "forgot b_O"),
        (check_attention_output, lambda p, x, attn: torch.zeros(*x.shape[:2], 2, 16), "sum over the head axis"),
        (check_layer_norm, lambda x, w, b, eps: (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True) + eps).sqrt() * w + b, "unbiased"),
    ]
    for check, wrong, match in cases:
        with strict(), pytest.raises(ExerciseFailed, match=match):
            check(wrong)
    check_apply_causal_mask(reference_apply_causal_mask)


def test_learner_mode_prints_and_falls_back_to_the_reference(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_STRICT", "0")  # the learner's default, whatever the test run exports
    namespace = {"check_merge_pair": check_merge_pair}
    exec("def merge_pair(ids, pair, new_id):\n    raise NotImplementedError\n\ncheck_merge_pair(merge_pair)", namespace)
    with strict(False):
        exec("check_merge_pair(merge_pair)", namespace)
    out = capsys.readouterr().out
    assert "✗ merge_pair: not written yet" in out and "now refers to the reference" in out
    assert namespace["merge_pair"] is reference_merge_pair and callable(namespace["merge_pair_yours"])
    # A passing function is left alone, and a name bound to something else is never overwritten.
    with strict(False):
        exec("check_merge_pair(merge_pair)", namespace)
        namespace["other"] = lambda ids, pair, new_id: []
        exec("check_merge_pair(other)", namespace)
    out = capsys.readouterr().out
    # Re-checking the name now bound to the reference says so: it never reports the reference's success as yours.
    assert "holds the reference solution" in out and "checks passed" not in out, out
    assert "merge_pair_yours" in out and EXERCISES["merge_pair"].import_line in out
    assert namespace["merge_pair"] is reference_merge_pair and namespace["other"] is not reference_merge_pair


def test_strict_mode_from_the_environment(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT", "1")
    with pytest.raises(ExerciseFailed):
        check_merge_pair(lambda ids, pair, new_id: [])
    monkeypatch.setenv("COURSE_STRICT", "0")
    check_merge_pair(lambda ids, pair, new_id: [])  # prints, does not raise


def test_checker_decorator_converts_comparison_errors():
    @checker("merge_pair")
    def check_something(fn):
        len(fn())  # a checker tripping over an unexpected return value

    with strict(), pytest.raises(ExerciseFailed, match="could not be compared"):
        check_something(lambda: None)
