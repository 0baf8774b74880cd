"""Tiny Shakespeare in the harness: nats per character on the second half of the held-out text
(the first half is the validation split the learning rate is chosen on); lower is better.

One run function per family of arms, each ``(method, seed, size, device, lr) -> CellResult``;
:mod:`.registry` says which arm uses which."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .parts import (
    PROBE_WINDOWS, SELECT_POOL, SELECT_SPAN, SELECT_WARMUP, SELECTED, WARM_SELECTED, probe_information, selection_batches,
    selection_extra, thinker_eval_rank,
)
from .spec import PLANNING, THOUGHT_BUDGET, CellResult, Size


def text_encdec_config(size: Size):
    """The encoder-decoder of the text task; every GPT method gets at least its parameter count."""
    from lib.methods.encdec import EncDecConfig

    d = size.text_d_model
    # Room for every filler of a window, or for the thoughts (at most THOUGHT_BUDGET per row),
    # whichever is more; one n_ctx for all methods keeps the parameter counts equal.
    n_ctx = size.text_window + max((size.text_window - 1) // size.text_every, THOUGHT_BUDGET)
    return EncDecConfig(d_vocab=2048, n_ctx=n_ctx, d_model=d, n_enc_layers=size.text_layers // 2,
                        n_dec_layers=size.text_layers - size.text_layers // 2, n_heads=4, d_head=d // 4, d_mlp=4 * d)


@dataclass(frozen=True)
class TextSplit:
    tokens: torch.Tensor  # [n] token ids of this part of the held-out text
    chars: int  # characters it decodes to: the nats/char conversion


def text_splits() -> tuple[TextSplit, TextSplit]:
    """The held-out 10% of Tiny Shakespeare cut in two at a token: the first half validates (the
    learning rate is chosen there), the second half tests (every reported number)."""
    from lib.core.data import load_tokenizer, shakespeare_corpus

    tokenizer, corpus = load_tokenizer(), shakespeare_corpus()
    half = len(corpus.val) // 2
    parts = corpus.val[:half], corpus.val[half:]
    return tuple(TextSplit(p, len(tokenizer.decode(p.tolist()))) for p in parts)  # type: ignore[return-value]


@dataclass
class _Text:
    """What every text arm starts from."""

    tokenizer: object
    corpus: object
    splits: dict
    n_windows: dict
    start: float


def _setup(size: Size) -> _Text:
    from lib.core.data import load_tokenizer, shakespeare_corpus

    start = time.perf_counter()
    tokenizer, corpus = load_tokenizer(), shakespeare_corpus()
    splits = dict(zip(("val", "test"), text_splits()))
    return _Text(tokenizer, corpus, splits, {"val": size.text_val_windows, "test": size.text_test_windows}, start)


def _finish(t: _Text, method: str, seed: int, lr: float, nll: dict, model, passes: float, extra: dict) -> CellResult:
    from lib.core.training import nats_per_char

    extra["test_nats_per_token"] = nll["test"]
    value = {s: nats_per_char(nll[s], len(p.tokens), p.chars) for s, p in t.splits.items()}
    return CellResult("shakespeare", method, seed, float(lr), value["test"], value["val"], model.n_params(), passes,
                      time.perf_counter() - t.start, extra)


def _train_config(size: Size, lr: float):
    from lib.core.training import TrainConfig

    return TrainConfig(max_steps=size.text_steps, lr=lr, warmup_steps=max(1, size.text_steps // 10),
                       eval_interval=size.text_steps, progress=False)


def run_language_model(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """``baseline``, ``pause``, ``dense`` (a GPT, fillers every ``text_every`` tokens), ``encdec``
    and ``planning`` (the encoder-decoder, with the future loss for ``planning``)."""
    from lib.core.model import GPT
    from lib.core.training import lm_batch_fn, train
    from lib.experiments.text_runs import evaluate_text_nll, filler_logits
    from lib.methods.encdec import EncoderDecoderGPT, ce_loss_fn, gpt_matched_params, planning_loss_fn
    from lib.methods.fillers import interleave_fillers, masked_lm_loss

    t = _setup(size)
    specials = [t.tokenizer.dense_id, t.tokenizer.thought_id]
    cfg = text_encdec_config(size)
    torch.manual_seed(seed)
    model = (EncoderDecoderGPT(cfg) if method in ("encdec", "planning") else GPT(gpt_matched_params(cfg))).to(device)
    kind = method if method in ("pause", "dense") else None
    filler = t.tokenizer.dense_id if method == "dense" else t.tokenizer.thought_id
    depth = 2  # dense: two unrolled passes in training (exact for the first two fillers of a window)
    batches = lm_batch_fn(t.corpus.train, size.text_batch, size.text_window, seed=seed, device=device)
    if method == "planning":
        loss_fn = planning_loss_fn(PLANNING["lam"], 4, PLANNING["kind"])
    elif method == "encdec":
        loss_fn = ce_loss_fn
    else:
        def loss_fn(m, windows):
            if kind is None:
                return m(windows, return_type="loss")
            tokens, targets = interleave_fillers(windows, size.text_every, filler)
            return masked_lm_loss(filler_logits(m, tokens, kind, filler, depth), targets, specials)
    train(model, batches, _train_config(size, lr), loss_fn=loss_fn)
    nll = {split: evaluate_text_nll(model, part.tokens, size.text_window, kind, size.text_every, filler, specials,
                                    max_windows=t.n_windows[split]) for split, part in t.splits.items()}
    return _finish(t, method, seed, lr, nll, model, 1.0 + (depth if method == "dense" else 0), {})


def run_thoughts(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """``thoughts``: notebook 06's recipe on windows drawn in advance; ``dense_thoughts``: the same
    with thoughts that carry the previous hidden state (evaluated with the vectors fed back)."""
    from lib.core.model import GPT
    from lib.core.training import random_windows
    from lib.methods.dense_thoughts import DenseView, train_dense_thinker
    from lib.methods.encdec import gpt_matched_params
    from lib.methods.fillers import validation_windows
    from lib.methods.thought_training import evaluate_nll, train_thinker
    from lib.methods.thoughts import plain_batch

    t = _setup(size)
    torch.manual_seed(seed)
    model = GPT(gpt_matched_params(text_encdec_config(size))).to(device)
    dense = method == "dense_thoughts"
    thought_id = t.tokenizer.dense_id if dense else t.tokenizer.thought_id
    # The same windows the other methods draw, fixed in advance so episodes can run on them.
    pool = random_windows(t.corpus.train, size.text_steps * size.text_batch, size.text_window,
                          torch.Generator().manual_seed(seed), device)
    rows, lengths = plain_batch(pool)
    trainer = train_dense_thinker if dense else train_thinker
    out = trainer(model, rows, lengths, torch.ones_like(rows, dtype=torch.bool), size.text_steps, size.text_batch,
                  thought_id, t.tokenizer.eot_id, seed=seed, lr=lr)
    scorer = DenseView(model, thought_id, THOUGHT_BUDGET) if dense else model
    max_rank = thinker_eval_rank(scorer, rows, lengths, thought_id, out["thoughts_per_row"])
    extra = {"survivor_thoughts_per_row": out["thoughts_per_row"]}
    if dense:
        extra["rounds"] = out["rounds"]
    nll = {}
    for split, part in t.splits.items():
        r, l = plain_batch(validation_windows(part.tokens, size.text_window, t.n_windows[split]).to(device))
        result = evaluate_nll(scorer, r, l, thought_id, t.tokenizer.eot_id, budget=THOUGHT_BUDGET, max_rank=max_rank)
        nll[split] = result["nll"]
        extra[f"{split}_thoughts_per_row"] = result["thoughts_per_row"]
    # dense_thoughts: warm-up half 3 passes (2 random dense thoughts, exact), survivor half 2 (warm start, depth 1)
    return _finish(t, method, seed, lr, nll, model, 2.5 if dense else 1.0, extra)


def run_selected(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """``dense_selected*``: dense tokens at random places, the windows kept where one pass of
    candidate vectors helped most (or at random), trained with cross-entropy + lam x the
    dense-token loss; scored as the dense arm is (fillers every ``text_every`` tokens, exact).
    ``selected_warm*``: the same, the selection starting after :data:`SELECT_WARMUP` of the steps,
    with a probe of fixed windows that says whether the scores carry information."""
    from lib.core.model import GPT
    from lib.core.training import lm_batch_fn, train
    from lib.experiments.text_runs import evaluate_text_nll
    from lib.methods.dense_selection import dense_targets, insert_random_dense, selected_dense_loss, selection_gains
    from lib.methods.encdec import gpt_matched_params

    t = _setup(size)
    dense_id = t.tokenizer.dense_id
    specials = (dense_id, t.tokenizer.thought_id)
    torch.manual_seed(seed)
    model = GPT(gpt_matched_params(text_encdec_config(size))).to(device)
    warm = method in WARM_SELECTED
    lam, mode = WARM_SELECTED[method] if warm else SELECTED[method]
    n_dense = (size.text_window - 1) // size.text_every  # as many as the dense arm's fixed fillers
    windows = lm_batch_fn(t.corpus.train, SELECT_POOL * size.text_batch, size.text_window, seed=seed, device=device)
    places = torch.Generator().manual_seed(seed + 5000)

    def with_dense(w, generator):
        tokens, lengths = insert_random_dense(w, torch.full((w.shape[0],), w.shape[1], device=device), n_dense,
                                              dense_id, t.tokenizer.eot_id, generator)
        return tokens, dense_targets(tokens, lengths, dense_id)

    warmup, probe = 0, None
    if warm:
        warmup = int(SELECT_WARMUP * size.text_steps)
        # fixed training windows with their own generators, so the training stream is the unwarmed arms' stream
        probe_windows = lm_batch_fn(t.corpus.train, PROBE_WINDOWS, size.text_window, seed=seed + 10_000, device=device)(0)
        probe = with_dense(probe_windows, torch.Generator().manual_seed(seed + 6000))
    log: dict = {"gain_all": [], "gain_kept": []}
    depth = 2  # as the dense arm trains
    train(model, selection_batches(lambda step: with_dense(windows(step), places), size.text_batch, mode, model, dense_id,
                                   log, warmup, probe), _train_config(size, lr),
          loss_fn=lambda m, b: selected_dense_loss(m, b[0], b[1], dense_id, depth, lam, SELECT_SPAN, specials)[0])
    nll = {split: evaluate_text_nll(model, part.tokens, size.text_window, "dense", size.text_every, dense_id, specials,
                                    max_windows=t.n_windows[split]) for split, part in t.splits.items()}
    selecting = 1.0 - warmup / size.text_steps  # the share of steps that score their candidates
    passes = 1.0 + depth + (2.0 * SELECT_POOL * selecting if mode == "top" else 0.0)
    extra = selection_extra(log, lam, mode)
    if warm:
        extra.update(probe_information(log, selection_gains(model, *probe, dense_id).tolist(), warmup))
    return _finish(t, method, seed, lr, nll, model, passes, extra)


def text_references(size: Size) -> dict:
    """The unigram and bigram lines on the test split, in nats per character (:mod:`lib.tasks.references`)."""
    from lib.core.data import shakespeare_corpus
    from lib.core.training import nats_per_char
    from lib.methods.fillers import validation_windows
    from lib.tasks.references import text_references as lines

    val, test = text_splits()
    refs = lines(shakespeare_corpus().train, validation_windows(val.tokens, size.text_window, size.text_val_windows),
                 validation_windows(test.tokens, size.text_window, size.text_test_windows), 2048)
    for name in ("unigram", "bigram"):
        refs[name] = nats_per_char(refs[f"{name}_nats_per_token"], len(test.tokens), test.chars)
    return refs
