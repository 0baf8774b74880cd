"""Corpus loading and splitting, paths, the exercise-check helpers, and the BPE timing figure."""

import pytest
import torch

from lib.experiments.bench import bpe_training_seconds
from lib.core.data import TokenizedCorpus, load_tokenizer, shakespeare_corpus, split_text, tokenize_corpus
from lib.exercises import ExerciseFailed, call_learner, expect, expect_close, report
from lib.core.paths import DATA_DIR, SHAKESPEARE_PATH, shakespeare_text


def test_shakespeare_text_and_errors(tmp_path):
    text = shakespeare_text()
    assert len(text) == 1_115_394 and text.startswith("First Citizen:")
    assert SHAKESPEARE_PATH.parent == DATA_DIR
    with pytest.raises(FileNotFoundError, match="corpus not found"):
        shakespeare_text(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        shakespeare_text(empty)


def test_split_text():
    train, val = split_text("abcdefghij", 0.2)
    assert (train, val) == ("abcdefgh", "ij")
    for bad in (0, 1, 1.5):
        with pytest.raises(ValueError, match="val_fraction"):
            split_text("abc", bad)
    with pytest.raises(ValueError, match="non-empty"):
        split_text("", 0.1)


def test_tokenize_corpus_and_shipped_corpus():
    tok = load_tokenizer()
    small = tokenize_corpus(tok, shakespeare_text()[:10_000])
    assert isinstance(small, TokenizedCorpus)
    assert small.train.dtype == torch.long and small.train_chars + small.val_chars == 10_000
    assert tok.decode(small.val.tolist()) == shakespeare_text()[9_000:10_000]
    corpus = shakespeare_corpus()
    assert len(corpus.train) > 9 * len(corpus.val) * 0.8
    assert 2.5 < 1 / corpus.val_tokens_per_char < 3.2
    with pytest.raises(FileNotFoundError):
        load_tokenizer(DATA_DIR / "missing.json")


def test_exercise_helpers(capsys):
    report("thing", 3)
    assert capsys.readouterr().out == "thing: 3/3 checks passed\n"
    expect(True, "thing", "case", "hint")
    with pytest.raises(ExerciseFailed, match="wrong on case"):
        expect(False, "thing", "case", "hint")
    expect_close(torch.ones(2), torch.ones(2), "thing", "case", "hint")
    with pytest.raises(ExerciseFailed, match="shape"):
        expect_close(torch.ones(3), torch.ones(2), "thing", "case", "hint")
    with pytest.raises(ExerciseFailed, match="torch.Tensor"):
        expect_close([1.0, 1.0], torch.ones(2), "thing", "case", "hint")
    assert call_learner("thing", lambda x: x + 1, 1) == 2
    with pytest.raises(TypeError):
        call_learner("thing", 3)


@pytest.mark.slow
def test_bpe_training_seconds_is_fast():
    assert 0 < bpe_training_seconds() < 15
