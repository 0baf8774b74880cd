"""Notebook claims: ✓/✗ lines with their numbers, raising only in strict mode."""

import numpy as np
import pytest
import torch

from lib.core.claims import ClaimFailed, claim, is_strict, strict


def test_true_claim_prints_a_tick_with_its_numbers(capsys):
    assert claim(True, "dense beats pause", dense=0.9981, pause=np.float64(0.35), n=3) is True
    assert capsys.readouterr().out == "✓ dense beats pause (dense=0.998, pause=0.350, n=3)\n"


def test_false_claim_prints_a_cross_outside_strict_mode(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_STRICT", raising=False)
    assert not is_strict()
    assert claim(False, "planning helps", gap=torch.tensor(0.25)) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ planning helps (gap=0.250)") and "do not support" in out


def test_false_claim_raises_in_strict_mode(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT", "1")
    assert is_strict()
    with pytest.raises(ClaimFailed, match="✗ planning helps"):
        claim(False, "planning helps")
    with strict(False):  # a block can turn it off again, and restores on exit
        assert claim(False, "explored") is False
    assert is_strict()


def test_strict_block_restores_after_an_error(monkeypatch):
    monkeypatch.delenv("COURSE_STRICT", raising=False)
    with pytest.raises(ClaimFailed):
        with strict():
            claim(False, "x")
    assert not is_strict()


def test_bad_inputs():
    with pytest.raises(TypeError, match="holds"):
        claim(torch.tensor([True, False]), "many")
    with pytest.raises(TypeError, match="holds"):
        claim("yes", "a string is not a condition")
    with pytest.raises(ValueError, match="statement"):
        claim(True, " ")
    with pytest.raises(TypeError, match="on"):
        with strict("yes"):
            pass
    assert claim(torch.tensor(True), "a 0-d tensor is a bool") is True
