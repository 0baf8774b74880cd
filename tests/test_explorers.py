"""lib.experiments.explorers: the pure functions behind each explorer, and each explorer built, drawn once
statically and redrawn when a control changes (outside a browser; tests/test_lab_smoke.py drives
one in Chromium)."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

pytest.importorskip("ipywidgets")

from lib.core.data import load_tokenizer  # noqa: E402
from lib.experiments.explorers import (  # noqa: E402
    annotated_heatmap,
    attention_and_lens,
    attention_explorer,
    filtered_distribution,
    sampling_explorer,
    thought_effect,
    thought_insertion_explorer,
    token_pieces,
    tokenizer_playground,
    tokens_html,
)
from lib.core.model import GPT, GPTConfig  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def tiny_gpt(tokenizer):
    torch.manual_seed(0)
    return GPT(GPTConfig(d_vocab=tokenizer.vocab_size, n_ctx=64, d_model=16, n_layers=2, n_heads=2, d_head=8, d_mlp=32)).eval()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def redraws(monkeypatch):
    """Record each figure an explorer redraws (an Output widget captures nothing outside a kernel):
    the list of every redrawn figure's axes titles."""
    import lib.experiments.explorers as explorers

    seen = []

    def record(output, draw):
        fig = draw()
        seen.append(" | ".join(ax.get_title() for ax in fig.axes))
        plt.close(fig)

    monkeypatch.setattr(explorers, "_figure_in", record)
    return seen


def test_token_pieces_follow_the_number_of_merges(tokenizer):
    text = "To be, or not to be"
    assert "".join(token_pieces(tokenizer, text)) == text
    assert token_pieces(tokenizer, text, 0) == list(text)  # bytes only: one piece per character here
    counts = [len(token_pieces(tokenizer, text, k)) for k in (0, 10, 100, len(tokenizer.merges))]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    assert token_pieces(tokenizer, "") == []
    with pytest.raises(ValueError):
        token_pieces(tokenizer, text, len(tokenizer.merges) + 1)
    with pytest.raises(TypeError):
        token_pieces(tokenizer, 3)
    assert "·be" in tokens_html([" be"]) and "&lt;" in tokens_html(["<"])


def test_tokenizer_playground_reacts(tokenizer):
    box = tokenizer_playground(tokenizer, "hello world")
    text, merges, caption, shown = box.children
    n_all = len(token_pieces(tokenizer, "hello world"))
    assert caption.value.startswith(f"{n_all} tokens for 11 characters") and "span" in shown.value
    merges.value = 0
    assert caption.value.startswith("11 tokens") and n_all < 11
    text.value = "hi"
    assert caption.value.startswith("2 tokens for 2 characters")
    assert plt.get_fignums(), "no static figure was drawn"


def test_filtered_distribution():
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0])
    full = filtered_distribution(logits, 1.0, 5, 1.0)
    assert torch.allclose(full, logits.softmax(-1))
    top2 = filtered_distribution(logits, 1.0, 2, 1.0)
    assert (top2 > 0).sum() == 2 and top2.sum().item() == pytest.approx(1.0)
    sharp = filtered_distribution(logits, 0.1, 5, 1.0)
    assert sharp[0] > full[0]
    nucleus = filtered_distribution(logits, 1.0, 5, 0.5)
    assert (nucleus > 0).sum() == 1
    with pytest.raises(TypeError):
        filtered_distribution(logits[None], 1.0, 5, 1.0)


def test_sampling_explorer_reacts(tiny_gpt, tokenizer, redraws):
    box = sampling_explorer(tiny_gpt, tokenizer, "ROMEO:", n_new=5)
    (temperature, top_k, top_p), sample = box.children[0].children, box.children[2]
    assert sample.value.startswith("ROMEO:") and redraws == []  # nothing drawn in the widget until a change
    assert top_k.value == top_k.max == tokenizer.vocab_size  # starts with nothing cut, like the static figure
    top_k.value = 1  # one token left: the sample is the greedy continuation, whatever the seed
    greedy = sample.value
    temperature.value = 1.5
    assert sample.value == greedy and "top-k=1" in redraws[-1] and "(1 tokens can be sampled)" in redraws[-1]
    top_p.value = 0.5
    assert len(redraws) == 3


def test_attention_and_lens_and_explorer(tiny_gpt, tokenizer, redraws):
    tokens = torch.tensor([tokenizer.encode("To be or not to be")])
    patterns, preds = attention_and_lens(tiny_gpt, tokens)
    pos = tokens.shape[1]
    assert patterns.shape == (2, 2, pos, pos) and preds.shape == (3, pos)
    assert torch.allclose(patterns.sum(-1), torch.ones(2, 2, pos), atol=1e-5)
    assert (patterns.triu(1) == 0).all()
    assert torch.equal(preds[-1], tiny_gpt(tokens)[0].argmax(-1))  # the last stage is the model's own output
    with pytest.raises(ValueError):
        attention_and_lens(tiny_gpt, tokens[0])
    box = attention_explorer(tiny_gpt, tokenizer.encode, lambda i: tokenizer.decode([i]), "To be or not")
    text, (layer, head, position), plot = box.children[0], box.children[1].children, box.children[2]
    assert position.max == len(tokenizer.encode("To be or not")) - 1
    text.value = "To be or not to be, that is"
    assert position.max == len(tokenizer.encode("To be or not to be, that is")) - 1
    layer.value, head.value = 1, 1
    assert "layer 1, head 0" in redraws[-2] and "layer 1, head 1" in redraws[-1]
    position.value = 2
    assert "logit lens at position 2" in redraws[-1]


def test_thought_effect_and_explorer(tiny_gpt, tokenizer, redraws):
    tokens = torch.tensor([tokenizer.encode("To be or not to be, that is the question")])
    delta = thought_effect(tiny_gpt, tokens, 3, tokenizer.thought_id)
    assert delta.shape == (tokens.shape[1] - 3,)
    # by hand for the first token after the insertion point
    with_thought = torch.cat([tokens[:, :3], torch.tensor([[tokenizer.thought_id]]), tokens[:, 3:]], 1)
    lp = lambda logits, t, i: logits[0, i].log_softmax(-1)[t[0, i + 1]]
    with torch.no_grad():
        expected = lp(tiny_gpt(with_thought), with_thought, 3) - lp(tiny_gpt(tokens), tokens, 2)
    assert delta[0].item() == pytest.approx(expected.item(), abs=1e-5)
    for bad in (0, tokens.shape[1], 2.5):
        with pytest.raises(ValueError):
            thought_effect(tiny_gpt, tokens, bad, tokenizer.thought_id)
    box = thought_insertion_explorer(tiny_gpt, tokenizer, "To be or not to be", position=2)
    slider, plot = box.children
    slider.value = 4
    assert redraws and "before token 4" in redraws[-1]


def test_annotated_heatmap_picks_readable_text_colours():
    fig, ax = plt.subplots()
    annotated_heatmap(ax, [[0.0, 1.0]], ["row"], ["low", "high"], vmin=0, vmax=1)
    colours = [t.get_color() for t in ax.texts]
    assert colours == ["white", "black"]  # viridis: dark at 0, light at 1
    with pytest.raises(ValueError):
        annotated_heatmap(ax, [1.0, 2.0], ["a"], ["b"])
