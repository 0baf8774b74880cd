"""Byte-level BPE: exact round trips, a hand-checkable example, special tokens, files, GPT-2
exactness (checked against HF tokenizers built from the same local files), compression and speed."""

import json
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.core.bpe import (
    SPECIAL_TOKENS,
    BPETokenizer,
    compare_with_hf_tokenizers,
    get_pair_counts,
    gpt2_files,
    merge_pair,
)
from lib.core.paths import shakespeare_text

SMALL_TEXT = shakespeare_text()[:20_000]


@pytest.fixture(scope="module")
def small():
    return BPETokenizer.train(SMALL_TEXT, 400)


@pytest.fixture(scope="module")
def gpt2():
    return BPETokenizer.from_gpt2_files(*gpt2_files())


def test_pair_counts_and_merge_by_hand():
    assert get_pair_counts([1, 2, 1, 2, 1]) == {(1, 2): 2, (2, 1): 2}
    assert get_pair_counts([5]) == {}
    assert merge_pair([1, 2, 1, 2, 1], (1, 2), 9) == [9, 9, 1]
    # Overlapping occurrences merge left to right: "aaa" with (a, a) -> [aa, a].
    assert merge_pair([7, 7, 7], (7, 7), 8) == [8, 7]


def test_worked_example_small_enough_to_check_by_hand():
    # "aaabdaaabac" is one pre-token. Counts: aa 4, ab 2, ... -> merge (a, a) -> 256, giving
    # [aa, a, b, d, aa, a, b, a, c]. Now (aa, a) and (a, b) both occur twice: the tie goes to the
    # smaller ids, (97, 98), so ab -> 257, giving [aa, ab, d, aa, ab, a, c]; then (aa, ab) -> 258.
    tok = BPETokenizer.train("aaabdaaabac", 256 + 3, special_tokens=())
    a, b, c, d = (ord(x) for x in "abcd")
    assert list(tok.merges.items()) == [((a, a), 256), ((a, b), 257), ((256, 257), 258)]
    assert tok.vocab[258] == b"aaab"
    assert tok.encode("aaabdaaabac") == [258, d, 258, a, c]


def test_ties_are_broken_by_smaller_ids():
    tok = BPETokenizer.train("ab cd", 257, special_tokens=())
    assert list(tok.merges) == [(ord(" "), ord("c"))]  # (32, 99) < (97, 98)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(), st.sampled_from(SPECIAL_TOKENS)), max_size=6))
def test_round_trip_is_exact_for_any_string(small, parts):
    text = "".join(parts)
    assert small.decode(small.encode(text)) == text


@settings(max_examples=50, deadline=None)
@given(st.text())
def test_round_trip_without_specials(small, text):
    assert small.decode(small.encode(text, allowed_special="none")) == text


def test_special_tokens_take_the_last_ids_and_never_merge(small):
    assert [small.token_to_id(s) for s in SPECIAL_TOKENS] == [397, 398, 399]
    assert (small.eot_id, small.dense_id, small.thought_id) == (397, 398, 399)
    assert small.vocab_size == 400
    ids = small.encode("the<|dense|>the<|thought|><|thought|>")
    the = small.encode("the")
    assert ids == the + [398] + the + [399, 399]
    # With "none" the same string is plain text, and with a subset only those are recognised.
    assert 398 not in small.encode("<|dense|>", allowed_special="none")
    assert small.encode("<|dense|><|thought|>", allowed_special={"<|thought|>"})[-1] == 399
    assert 398 not in small.encode("<|dense|><|thought|>", allowed_special={"<|thought|>"})


def test_decode_tokens_and_tensors(small):
    ids = small.encode("Hello there")
    assert "".join(small.decode_tokens(ids)) == "Hello there"
    assert small.decode(torch.tensor(ids)) == "Hello there"
    # A lone continuation byte is not valid UTF-8: it decodes to the replacement character.
    assert small.decode([0x80]) == "\ufffd"


def test_save_load_round_trip(small, tmp_path):
    path = small.save(tmp_path / "tok.json")
    loaded = BPETokenizer.load(path)
    assert loaded.merges == small.merges and loaded.special_tokens == small.special_tokens
    assert loaded.encode(SMALL_TEXT[:2000]) == small.encode(SMALL_TEXT[:2000])
    assert json.loads(path.read_text())["format"] == "course-bpe-v1"


TRICKY = [
    "Butterfly", " Butterfly", " butterfly", "butterfly", "1234+5678=12345678", "I'm here, aren't you?",
    "DON'T shout", "  two  spaces", "tabs\tand\nnewlines\n\n", "héllo wörld", "emoji 😀👍🏽", "日本語のテキスト",
    "<|endoftext|>after", "x" * 50, "3.14159 is pi", "http://example.com/a?b=c",
]


def hf_gpt2_ids(texts):
    from tokenizers import Tokenizer, models, pre_tokenizers

    enc, merges = gpt2_files()
    hf = Tokenizer(models.BPE.from_file(str(enc), str(merges)))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return [hf.encode(t).ids for t in texts]


def test_gpt2_merges_give_gpt2_ids(gpt2):
    plain = [t for t in TRICKY if "<|" not in t]
    assert [gpt2.encode(t) for t in plain] == hf_gpt2_ids(plain)
    assert gpt2.encode("<|endoftext|>after")[0] == 50256
    assert gpt2.vocab_size == 50257
    assert gpt2.decode(gpt2.encode(" Butterfly")) == " Butterfly"
    assert gpt2.encode(" Butterfly") == [39108]  # one token with its leading space
    with pytest.raises(KeyError):
        gpt2.dense_id


def test_gpt2_on_a_page_of_shakespeare(gpt2):
    page = shakespeare_text()[5000:9000]
    assert gpt2.encode(page) == hf_gpt2_ids([page])[0]


def test_compression_within_two_percent_of_hf():
    result = compare_with_hf_tokenizers(shakespeare_text()[:200_000], 1024)
    assert result["hf_vocab_size"] == 1024
    assert abs(result["relative_difference"]) <= 0.02, result


@pytest.mark.slow
def test_full_corpus_2048_trains_in_15_seconds():
    text = shakespeare_text()
    start = time.perf_counter()
    tok = BPETokenizer.train(text, 2048)
    assert time.perf_counter() - start <= 15
    assert tok.vocab_size == 2048 and len(tok.merges) == 2048 - 256 - 3


@pytest.mark.parametrize(
    "args, error, match",
    [
        (("", 300), ValueError, "empty corpus"),
        ((b"bytes", 300), TypeError, "must be a str"),
        (("abc", 100), ValueError, "vocab_size must be >= 259"),
        (("abc", 300.0), TypeError, "must be an int"),
    ],
)
def test_train_bad_inputs(args, error, match):
    with pytest.raises(error, match=match):
        BPETokenizer.train(*args)
    with pytest.raises(ValueError, match="duplicate"):
        BPETokenizer.train("abc", 300, special_tokens=["<|a|>", "<|a|>"])


def test_encode_decode_bad_inputs(small, tmp_path):
    with pytest.raises(TypeError, match="must be a str"):
        small.encode(123)
    with pytest.raises(ValueError, match="unknown special"):
        small.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="allowed_special"):
        small.encode("x", allowed_special="some")
    with pytest.raises(ValueError, match="unknown token id 400"):
        small.decode([1, 400])
    with pytest.raises(ValueError, match="unknown token id -1"):
        small.decode([-1])
    with pytest.raises(TypeError, match="integers"):
        small.decode(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="1-D"):
        small.decode(torch.tensor([[1, 2]]))
    with pytest.raises(TypeError):
        small.decode("abc")
    with pytest.raises(KeyError, match="not a special token"):
        small.token_to_id("<|nope|>")
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        BPETokenizer.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a valid tokenizer"):
        BPETokenizer.load(bad)
    with pytest.raises(FileNotFoundError, match="GPT-2 file"):
        BPETokenizer.from_gpt2_files(tmp_path / "a.json", tmp_path / "b.bpe")
