"""Interactive explorers (ipywidgets, fully offline) with a static figure for GitHub and nbval.

Each ``*_explorer`` function draws the figure for its default settings with matplotlib first (so a
notebook viewed on GitHub, or compared by nbval, shows a result), then returns an ipywidgets box
whose controls draw the updated figure below them, live, in JupyterLab. Nothing is drawn into the
widgets' Output area until a control changes: nbval's kernel does not capture Output widgets, so a
figure drawn there while the cell runs would leak into the cell's outputs. Every explorer is built from a pure function
that computes what it shows (``token_pieces``, ``filtered_distribution``, ``attention_and_lens``,
``thought_effect``), tested without any widget.

- :func:`tokenizer_playground` (notebook 01): text in, coloured tokens out, the number of merges used.
- :func:`sampling_explorer` (02): temperature, top-k, top-p -> the distribution and a sample.
- :func:`attention_explorer` (04, 04b): attention pattern of any layer and head on any prompt, and
  the logit lens (the top prediction after each layer) at a chosen position.
- :func:`thought_insertion_explorer` (06): put ``<|thought|>`` at a position, see the change in
  log-probability of each following token.
"""

from __future__ import annotations

import html
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

PALETTE = ["#fde2e4", "#e2ece9", "#dfe7fd", "#fff1c1", "#e8dff5", "#d0f4de", "#ffd6a5", "#cde7f0"]


def _visible(piece: str) -> str:
    # Leading spaces are part of GPT-2-style tokens: show them (·) instead of hiding them.
    return piece.replace(" ", "·").replace("\n", "↵").replace("\t", "⇥")


def _widgets():
    try:
        import ipywidgets
    except ImportError as exc:  # pragma: no cover - ipywidgets is a course dependency
        raise ImportError("the explorers need ipywidgets (pip install 'ipywidgets>=8')") from exc
    return ipywidgets


def _figure_in(output, draw: Callable[[], plt.Figure]) -> None:
    """Redraw a matplotlib figure inside an ipywidgets Output."""
    from IPython.display import display

    output.clear_output(wait=True)
    with output:
        fig = draw()
        display(fig)
        plt.close(fig)


def annotated_heatmap(ax: plt.Axes, values: np.ndarray, row_labels, col_labels, fmt: str = "{:.2f}",
                      cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None) -> None:
    """A heatmap whose numbers stay readable: dark text on light cells, light text on dark ones."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"values must be 2-D, got shape {values.shape}")
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(values.shape[1]), col_labels)
    ax.set_yticks(range(values.shape[0]), row_labels)
    norm, colormap = image.norm, image.get_cmap()
    for (i, j), v in np.ndenumerate(values):
        r, g, b, _ = colormap(norm(v))
        luminance = 0.299 * r + 0.587 * g + 0.114 * b
        ax.text(j, i, fmt.format(v), ha="center", va="center", color="black" if luminance > 0.5 else "white", fontsize=9)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)


# ------------------------------------------------------------------------------------------- 01
def token_pieces(tokenizer, text: str, n_merges: int | None = None) -> list[str]:
    """The pieces ``text`` is cut into by ``tokenizer`` using only its first ``n_merges`` merges
    (all of them by default)."""
    from lib.core.bpe import BPETokenizer

    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    merges = list(tokenizer.merges.items())
    if n_merges is None:
        n_merges = len(merges)
    if not isinstance(n_merges, int) or not 0 <= n_merges <= len(merges):
        raise ValueError(f"n_merges must be an int in [0, {len(merges)}], got {n_merges!r}")
    if not text:
        return []
    small = tokenizer
    if n_merges < len(merges):
        vocab = {i: bytes([i]) for i in range(256)}
        for (a, b), new in merges[:n_merges]:
            vocab[new] = vocab[a] + vocab[b]
        small = BPETokenizer(vocab, dict(merges[:n_merges]), {})
    return [small.vocab[i].decode("utf-8", errors="replace") for i in small.encode(text, allowed_special="none")]


def tokens_html(pieces: Sequence[str]) -> str:
    """Coloured spans, one per token, spaces made visible."""
    spans = "".join(
        f'<span style="background:{PALETTE[i % len(PALETTE)]};padding:1px 0;margin-right:1px;'
        f'font-family:monospace">{html.escape(_visible(p))}</span>'
        for i, p in enumerate(pieces)
    )
    return f"<div style='line-height:1.9'>{spans}</div>"


def _draw_tokens(pieces: Sequence[str], title: str) -> plt.Figure:
    from lib.core.token_plot import plot_highlighted_tokens

    fig, ax = plt.subplots(figsize=(9, 1.6))
    plot_highlighted_tokens([_visible(p) for p in pieces] or ["(empty)"],
                            [PALETTE[i % len(PALETTE)] for i in range(max(1, len(pieces)))], ax=ax, title=title)
    return fig


def tokenizer_playground(tokenizer, text: str = "To be, or not to be: that is the question."):
    """Type text, move the merges slider: the tokens, coloured, and how many there are."""
    w = _widgets()
    n_all = len(tokenizer.merges)

    def caption(pieces, k):
        return f"{len(pieces)} tokens for {len(text_box.value)} characters with {k} of {n_all} merges"

    pieces = token_pieces(tokenizer, text)
    fig = _draw_tokens(pieces, f"{len(pieces)} tokens for {len(text)} characters with all {n_all} merges")
    plt.show()
    text_box = w.Textarea(value=text, description="text", layout=w.Layout(width="95%"))
    merges = w.IntSlider(value=n_all, min=0, max=n_all, step=1, description="merges", continuous_update=False)
    shown = w.HTML()
    count = w.Label()
    count.add_class("explorer-caption")  # a handle for the real-browser test

    def update(*_):
        pieces = token_pieces(tokenizer, text_box.value, merges.value)
        shown.value = tokens_html(pieces)
        count.value = caption(pieces, merges.value)

    text_box.observe(update, names="value")
    merges.observe(update, names="value")
    update()
    del fig
    return w.VBox([text_box, merges, count, shown])


# ------------------------------------------------------------------------------------------- 02
def filtered_distribution(logits: Tensor, temperature: float, top_k: int, top_p: float) -> Tensor:
    """The next-token distribution ``[d_vocab]`` after temperature, then top-k, then top-p."""
    from lib.core.sampling import apply_temperature, top_k_filter, top_p_filter

    if not isinstance(logits, Tensor) or logits.ndim != 1 or not logits.is_floating_point():
        raise TypeError("logits must be a 1-D floating-point tensor (one position's logits)")
    row = apply_temperature(logits[None].float(), temperature)
    row = top_k_filter(row, int(top_k))
    row = top_p_filter(row, float(top_p))
    return row.softmax(-1)[0]


def _draw_distribution(probs: Tensor, labels: Callable[[int], str], title: str, n_show: int = 15) -> plt.Figure:
    top = probs.topk(min(n_show, probs.numel()))
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(range(len(top.values)), top.values.tolist(), color="#4c72b0")
    ax.set_xticks(range(len(top.values)), [repr(labels(i))[1:-1] for i in top.indices.tolist()], rotation=60, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def sampling_explorer(model, tokenizer, prompt: str = "ROMEO:\nWhat", n_new: int = 20, seed: int = 0):
    """Temperature, top-k and top-p sliders: the filtered next-token distribution and a sample."""
    from lib.core.sampling import generate

    w = _widgets()
    device = next(model.parameters()).device
    tokens = torch.tensor([tokenizer.encode(prompt)], device=device)
    with torch.no_grad():
        logits = model(tokens)[0, -1].float().cpu()
    label = lambda i: tokenizer.decode([i])

    def title(t, k, p, probs):
        kept = int((probs > 0).sum())
        return f"after {prompt!r}: T={t:.2f}, top-k={k}, top-p={p:.2f} ({kept} tokens can be sampled)"

    probs = filtered_distribution(logits, 1.0, tokenizer.vocab_size, 1.0)
    _draw_distribution(probs, label, title(1.0, tokenizer.vocab_size, 1.0, probs))
    plt.show()
    temperature = w.FloatSlider(value=1.0, min=0.1, max=2.0, step=0.05, description="temperature", continuous_update=False)
    # Starts at the whole vocabulary (nothing cut), matching the static figure above.
    top_k = w.IntSlider(value=tokenizer.vocab_size, min=1, max=tokenizer.vocab_size, description="top-k",
                        continuous_update=False)
    top_p = w.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p", continuous_update=False)
    plot, sample = w.Output(), w.Textarea(layout=w.Layout(width="95%", height="80px"), description="sample")

    def update(*_, draw: bool = True):
        probs = filtered_distribution(logits, temperature.value, top_k.value, top_p.value)
        if draw:
            _figure_in(plot, lambda: _draw_distribution(probs, label, title(temperature.value, top_k.value, top_p.value, probs)))
        out = generate(model, tokens, n_new, temperature=temperature.value, top_k=top_k.value, top_p=top_p.value,
                       seed=seed)
        sample.value = tokenizer.decode(out[0].tolist())

    for control in (temperature, top_k, top_p):
        control.observe(update, names="value")
    update(draw=False)  # the static figure above shows the starting point; controls draw below
    return w.VBox([w.HBox([temperature, top_k, top_p]), plot, sample])


# ------------------------------------------------------------------------------------- 04 / 04b
def attention_and_lens(model, tokens: Tensor) -> tuple[Tensor, Tensor]:
    """(patterns ``[layer, head, pos, pos]``, logit-lens predictions ``[layer + 1, pos]``) for one
    sequence ``tokens [1, pos]``: stage 0 is the embeddings, stage l + 1 the stream after layer l,
    each decoded with the final LayerNorm (when the model has one) and the unembedding."""
    if not isinstance(tokens, Tensor) or tokens.ndim != 2 or tokens.shape[0] != 1:
        raise ValueError("tokens must be a [1, pos] tensor (one sequence)")
    n_layers = len(model.blocks)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        patterns = torch.stack([cache[f"blocks.{l}.attn.hook_pattern"][0] for l in range(n_layers)])
        stages = [cache["blocks.0.hook_resid_pre"]] + [cache[f"blocks.{l}.hook_resid_post"] for l in range(n_layers)]
        norm = getattr(model, "ln_final", None)
        preds = torch.stack([model.unembed(norm(s) if norm is not None else s)[0].argmax(-1) for s in stages])
    return patterns.cpu(), preds.cpu()


def _draw_attention(patterns: Tensor, preds: Tensor, labels: list[str], decode: Callable[[int], str],
                    layer: int, head: int, position: int) -> plt.Figure:
    fig, (ax, lens) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [3, 2]})
    pos = len(labels)
    ax.imshow(patterns[layer, head].numpy(), cmap="Blues", vmin=0, vmax=1)
    ticks = [_visible(l) for l in labels]
    ax.set_xticks(range(pos), ticks, rotation=90, fontsize=7)
    ax.set_yticks(range(pos), ticks, fontsize=7)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    ax.set_title(f"layer {layer}, head {head}: attention pattern")
    ax.axhline(position, color="#dd8452", lw=1)
    stages = ["embed"] + [f"after layer {l}" for l in range(preds.shape[0] - 1)]
    lens.axis("off")
    lens.set_title(f"logit lens at position {position} ({_visible(labels[position])!r})")
    rows = [[s, _visible(decode(int(preds[i, position])))] for i, s in enumerate(stages)]
    if position + 1 < pos:
        rows.append(["true next token", _visible(labels[position + 1])])
    table = lens.table(cellText=rows, colLabels=["stage", "top prediction"], loc="center")
    table.scale(1, 1.4)
    fig.tight_layout()
    return fig


def attention_explorer(model, encode: Callable[[str], list[int]], decode: Callable[[int], str], prompt: str,
                       layer: int = 0, head: int = 0):
    """Layer and head dropdowns, a prompt box and a position slider: the attention pattern and the
    logit lens at that position. ``encode(text) -> ids`` and ``decode(id) -> str`` adapt any model."""
    w = _widgets()
    device = next(model.parameters()).device
    n_layers, n_heads = len(model.blocks), model.blocks[0].attn.cfg.n_heads
    state = {}

    def compute(text):
        ids = encode(text)
        tokens = torch.tensor([ids], device=device)
        patterns, preds = attention_and_lens(model, tokens)
        state.update(labels=[decode(i) for i in ids], patterns=patterns, preds=preds)

    compute(prompt)
    last = len(state["labels"]) - 1
    _draw_attention(state["patterns"], state["preds"], state["labels"], decode, layer, head, last)
    plt.show()
    text = w.Text(value=prompt, description="prompt", layout=w.Layout(width="95%"), continuous_update=False)
    layer_box = w.Dropdown(options=list(range(n_layers)), value=layer, description="layer")
    head_box = w.Dropdown(options=list(range(n_heads)), value=head, description="head")
    position = w.IntSlider(value=last, min=0, max=last, description="position", continuous_update=False)
    plot = w.Output()

    def redraw(*_):
        _figure_in(plot, lambda: _draw_attention(state["patterns"], state["preds"], state["labels"], decode,
                                                 layer_box.value, head_box.value, min(position.value, len(state["labels"]) - 1)))

    def new_prompt(*_):
        compute(text.value)
        position.max = len(state["labels"]) - 1
        position.value = position.max
        redraw()

    text.observe(new_prompt, names="value")
    for control in (layer_box, head_box, position):
        control.observe(redraw, names="value")
    return w.VBox([text, w.HBox([layer_box, head_box, position]), plot])


# ------------------------------------------------------------------------------------------- 06
def thought_effect(model, tokens: Tensor, position: int, thought_id: int) -> Tensor:
    """Change in log-probability of each token at and after ``position`` when ``<|thought|>`` is
    inserted before it: ``[pos - position]`` nats (positive: the thought helped)."""
    from lib.core.model import per_token_log_probs

    if not isinstance(tokens, Tensor) or tokens.ndim != 2 or tokens.shape[0] != 1:
        raise ValueError("tokens must be a [1, pos] tensor (one sequence)")
    pos = tokens.shape[1]
    if not isinstance(position, int) or not 1 <= position < pos:
        raise ValueError(f"position must be an int in [1, {pos}), got {position!r}")
    thought = torch.full((1, 1), thought_id, dtype=tokens.dtype, device=tokens.device)
    with_thought = torch.cat([tokens[:, :position], thought, tokens[:, position:]], dim=1)
    with torch.no_grad():
        lp_without = per_token_log_probs(model(tokens), tokens)[0]  # entry i scores token i + 1
        lp_with = per_token_log_probs(model(with_thought), with_thought)[0]
    # token j >= position sits at j + 1 with the thought: scored by entry j there, j - 1 without
    return (lp_with[position:] - lp_without[position - 1 :]).cpu()


def _draw_thought(delta: Tensor, labels: list[str], position: int) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(10, 3))
    after = labels[position:]
    colors = ["#55a868" if d > 0 else "#c44e52" for d in delta.tolist()]
    ax.bar(range(len(after)), delta.tolist(), color=colors)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(after)), [_visible(l) for l in after], rotation=70, fontsize=8)
    ax.set_ylabel("Δ log p (nats)")
    ax.set_title(f"<|thought|> inserted before token {position} ({_visible(labels[position])!r}): "
                 f"total {delta.sum():+.2f} nats")
    fig.tight_layout()
    return fig


def thought_insertion_explorer(model, tokenizer, text: str, position: int | None = None):
    """A position slider: insert ``<|thought|>`` there and see each following token's change in
    log-probability (green: more likely with the thought)."""
    w = _widgets()
    device = next(model.parameters()).device
    ids = tokenizer.encode(text)
    tokens = torch.tensor([ids], device=device)
    labels = [tokenizer.decode([i]) for i in ids]
    start = position if position is not None else len(ids) // 2
    _draw_thought(thought_effect(model, tokens, start, tokenizer.thought_id), labels, start)
    plt.show()
    slider = w.IntSlider(value=start, min=1, max=len(ids) - 1, description="insert at", continuous_update=False)
    plot = w.Output()

    def update(*_):
        delta = thought_effect(model, tokens, slider.value, tokenizer.thought_id)
        _figure_in(plot, lambda: _draw_thought(delta, labels, slider.value))

    slider.observe(update, names="value")
    return w.VBox([slider, plot])
