"""One harness comparing every method of the course on the same tasks, budgets and tuning.

    python -m lib.harness                                    # small: what notebook 08 reruns live
    python -m lib.harness --size medium --jobs 2 --json data/results/harness_medium.json
    python -m lib.harness --size full --device cuda --json data/results/harness_full.json
    python -m lib.harness --size medium --tasks pointer --methods dense_adaptive --jobs 2 --add --json data/results/harness_medium.json

Tasks (each run gives one number, measured on a *test* split no choice was made on):
- ``shakespeare``: Tiny Shakespeare, nats per character on the second half of the held-out text
  (the first half is the validation split the learning rate is chosen on); lower is better;
- ``pointer``: multi-hop pointer chasing (notebook 05), answer accuracy averaged over 1-3 hops;
- ``path_star``: the path-star graph task (notebook 07), whole-path accuracy in forward order.

Methods (not every method applies to every task: :data:`TASK_METHODS`):
``baseline``; ``pause`` (fixed filler tokens, no vector); ``dense`` (the same places fed the
previous hidden state, unrolled to depth 2); ``looped`` (the baseline's block run 3 times, weights
tied: the passes of ``dense`` without its vector); ``deeper`` (3 narrower layers, no more
parameters); ``pause_deeper`` (pause tokens in that deeper model, where extra positions could
matter); ``encdec`` (the encoder-decoder alone); ``planning`` (the encoder-decoder plus the future
loss, notebook 07); ``planning_scored`` (the future loss only at positions whose next token is
scored); ``thoughts`` (learned thought insertion, notebook 06's recipe, thoughts only where the
task's fillers may go). Path-star also runs ``reversed`` (the baseline on reversed answers): a
reference, not a method.

The design notes' open questions (:data:`NEW_METHODS`, on pointer chasing and text;
path-star does not run them): ``dense_selected`` (dense tokens at random places, each step's
windows kept where one pass of candidate vectors helped most, trained with cross-entropy + 1 x
the dense-token loss, :mod:`lib.dense_selection`), ``dense_selected_l0`` / ``dense_selected_l3``
(the same with lambda 0 / 3) and ``dense_selected_random`` (lambda 1 on windows kept at random:
the control that separates the selection from the loss); ``dense_adaptive`` (pointer only: the
model writes ``<|dense|>`` itself as often as scoring found useful, free generation at test,
:mod:`lib.dense_emit`); ``dense_thoughts`` (the thoughts recipe with thoughts that carry the
previous hidden state, :mod:`lib.dense_thoughts`). :data:`METHODS` is the original comparison
(notebook 08), :data:`ALL_METHODS` adds these. Add them to a results file without rerunning the
rest with ``--add`` (see :func:`merge_results`).

Budgets and tuning: within a task every method has the same parameter count (exactly, or up to a
few percent fewer for the encoder-decoders and the deeper GPT, whose widths are the widest that
fit), the same optimizer steps and the same real tokens per step; forward passes per step are
reported. Every arm, the baseline included, gets the same learning-rate sweep on one seed, chosen
on the validation split; the chosen rate then runs on every seed and is reported on the test split.

Verdicts come from :mod:`lib.stats` (complete separation over the seeds and a difference larger
than the task's minimum effect and the baseline's spread; Holm-adjusted p-values beside them),
and are given only when the task's baseline is past its reference line (:mod:`lib.references`):
below the bigram model on text, at the 1/degree plateau on path-star, at least 0.9 on 1-hop
pointer questions. Otherwise the table says "undertrained: no verdict".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from lib.stats import compare_table, mean_and_spread

TASKS: tuple[str, ...] = ("shakespeare", "pointer", "path_star")
METHODS: tuple[str, ...] = (
    "baseline", "pause", "dense", "looped", "deeper", "pause_deeper", "encdec", "planning", "planning_scored", "thoughts",
)
# The design notes' open questions (lib.dense_selection, lib.dense_emit, lib.dense_thoughts).
# dense_selected: random dense places, the windows where they helped kept, lam = 1 on the dense-token
# loss; _l0 / _l3: lam = 0 / 3; _random: the same lam = 1 on windows kept at random (the control
# that separates the selection from the loss).
SELECTED: dict[str, tuple[float, str]] = {"dense_selected": (1.0, "top"), "dense_selected_l0": (0.0, "top"),
                                           "dense_selected_l3": (3.0, "top"), "dense_selected_random": (1.0, "random")}
NEW_METHODS: tuple[str, ...] = (*SELECTED, "dense_adaptive", "dense_thoughts")
ALL_METHODS: tuple[str, ...] = METHODS + NEW_METHODS  # METHODS stays the comparison of notebook 08
TASK_METHODS: dict[str, tuple[str, ...]] = {
    "shakespeare": ("baseline", "pause", "dense", "encdec", "planning", "thoughts", *SELECTED, "dense_thoughts"),
    "pointer": ALL_METHODS,
    "path_star": ("baseline", "pause", "dense", "encdec", "planning", "planning_scored", "thoughts"),
}
REFERENCE_RUNS: dict[str, tuple[str, ...]] = {"path_star": ("reversed",)}  # trained references, not methods
UNDERTRAINED = "undertrained: no verdict"


@dataclass(frozen=True)
class TaskInfo:
    metric: str
    higher_is_better: bool
    min_effect: float  # the smallest difference of means worth calling an effect


TASK_INFO: dict[str, TaskInfo] = {
    "shakespeare": TaskInfo("test nats/char", False, 0.01),
    "pointer": TaskInfo("accuracy, 1-3 hops", True, 0.02),
    "path_star": TaskInfo("path accuracy (forward order)", True, 0.02),
}


@dataclass(frozen=True)
class Size:
    """How big every run is. ``small`` fits notebook 08 on a 2-core CPU, ``medium`` reaches real
    learning on one (about an hour with ``--jobs 2``), ``full`` wants a GPU."""

    name: str
    seeds: tuple[int, ...]
    lrs: tuple[float, ...]  # the learning-rate sweep every arm gets (one value: no sweep)
    text_steps: int
    text_batch: int
    text_window: int  # real tokens per window
    text_d_model: int
    text_layers: int  # GPT blocks (the encoder-decoder splits them in half)
    text_every: int  # one filler after this many real tokens
    text_val_windows: int  # validation windows (the lr is chosen on these)
    text_test_windows: int  # test windows (reported)
    pointer_steps: int
    path_steps: int
    sweep_seed: int = 0
    eval_questions: int = 600  # pointer questions per hop count, path-star graphs


SMALL = Size("small", (0, 1, 2), (3e-3,), text_steps=60, text_batch=16, text_window=48, text_d_model=64, text_layers=2,
             text_every=8, text_val_windows=32, text_test_windows=32, pointer_steps=200, path_steps=300)
MEDIUM = Size("medium", (0, 1, 2), (1e-3, 3e-3, 1e-2), text_steps=1000, text_batch=16, text_window=48, text_d_model=64,
              text_layers=2, text_every=8, text_val_windows=128, text_test_windows=400, pointer_steps=600, path_steps=2000)
FULL = Size("full", (0, 1, 2, 3, 4), (1e-3, 3e-3, 1e-2), text_steps=4000, text_batch=32, text_window=96, text_d_model=128,
            text_layers=4, text_every=8, text_val_windows=200, text_test_windows=400, pointer_steps=2000, path_steps=6000)
SIZES: dict[str, Size] = {s.name: s for s in (SMALL, MEDIUM, FULL)}


@dataclass
class CellResult:
    """One run: the task's number on the test split (``value``) and on the validation split, and what it cost."""

    task: str
    method: str
    seed: int
    lr: float
    value: float
    val_value: float
    n_params: int
    forward_passes_per_step: float
    seconds: float
    extra: dict = field(default_factory=dict)


OPENING_STEPS = 30  # training losses kept per run, compared by lib.stored_checks
THOUGHT_BUDGET = 2  # thoughts a model may place per row at evaluation (pause/dense get at most 2 fillers too)
PLANNING = dict(lam=1.0, kind="cosine")  # notebook 07's best arm
LOOPS = 3  # the looped control runs its block as many times as dense depth 2 runs the model
DEEP_LAYERS = 3


def _check_run_args(task: str, method: str, seed, lr) -> None:
    allowed = TASK_METHODS[task] + REFERENCE_RUNS.get(task, ())
    if method not in allowed:
        raise ValueError(f"method {method!r} does not apply to {task}; choose from {allowed}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")


def _thinker_eval_rank(model, tokens, lengths, thought_id: int, thoughts_per_row: float, first_gap: int = 1) -> int:
    """The rank threshold at which the trained thinker places about as many thoughts as its
    survivors had on training rows (notebook 06's calibration), counted over the gaps where a
    thought may go. It need not carry over to test rows: both rates are stored per run."""
    from lib.thought_training import calibrate_max_rank

    gaps = float((lengths - first_gap).clamp(min=1).float().mean())
    rate = min(max(thoughts_per_row / gaps, 1e-3), 1.0)
    return calibrate_max_rank(model, tokens[:512], lengths[:512], thought_id, rate, first_gap=first_gap)


def widest_gpt_within(base, n_layers: int, budget: int, n_heads: int = 4):
    """The widest GPT with ``n_layers`` blocks (width a multiple of ``n_heads``, MLP 4x) whose
    parameter count is at most ``budget``: the deeper control at matched parameters."""
    from lib.encdec import _count_params
    from lib.model import GPT

    best = None
    for d in range(n_heads, base.d_model + 1, n_heads):
        cfg = replace(base, d_model=d, n_layers=n_layers, n_heads=n_heads, d_head=d // n_heads, d_mlp=4 * d)
        if _count_params(GPT, cfg) <= budget:
            best = cfg
    if best is None:
        raise ValueError(f"no {n_layers}-layer GPT fits {budget} parameters")
    return best


# --------------------------------------------------------------------------- Tiny Shakespeare
def text_encdec_config(size: Size):
    """The encoder-decoder of the text task; every GPT method gets at least its parameter count."""
    from lib.encdec import EncDecConfig

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
    from lib.data import load_tokenizer, shakespeare_corpus

    tokenizer, corpus = load_tokenizer(), shakespeare_corpus()
    half = len(corpus.val) // 2
    parts = corpus.val[:half], corpus.val[half:]
    return tuple(TextSplit(p, len(tokenizer.decode(p.tolist()))) for p in parts)  # type: ignore[return-value]


def run_text(method: str, seed: int, size: Size, device: torch.device | str = "cpu", lr: float = 3e-3) -> CellResult:
    """Train from scratch on Tiny Shakespeare with one method; nats per character on both splits."""
    from lib.data import load_tokenizer, shakespeare_corpus
    from lib.encdec import EncoderDecoderGPT, ce_loss_fn, gpt_matched_params, planning_loss_fn
    from lib.fillers import interleave_fillers, masked_lm_loss, validation_windows
    from lib.text_runs import evaluate_text_nll, filler_logits
    from lib.model import GPT
    from lib.thought_training import evaluate_nll, train_thinker
    from lib.thoughts import plain_batch
    from lib.training import TrainConfig, lm_batch_fn, nats_per_char, random_windows, train

    _check_run_args("shakespeare", method, seed, lr)
    if method in NEW_METHODS:
        return _run_text_open_question(method, seed, size, device, lr)
    start = time.perf_counter()
    tokenizer, corpus = load_tokenizer(), shakespeare_corpus()
    splits = dict(zip(("val", "test"), text_splits()))
    n_windows = {"val": size.text_val_windows, "test": size.text_test_windows}
    specials = [tokenizer.dense_id, tokenizer.thought_id]
    cfg = text_encdec_config(size)
    torch.manual_seed(seed)
    encdec = method in ("encdec", "planning")
    model = (EncoderDecoderGPT(cfg) if encdec else GPT(gpt_matched_params(cfg))).to(device)
    train_cfg = TrainConfig(max_steps=size.text_steps, lr=lr, warmup_steps=max(1, size.text_steps // 10),
                            eval_interval=size.text_steps, progress=False)
    extra: dict = {}
    passes = 1.0
    nll: dict[str, float] = {}
    if method == "thoughts":
        # The same windows the other methods draw, fixed in advance so episodes can run on them.
        pool = random_windows(corpus.train, size.text_steps * size.text_batch, size.text_window,
                              torch.Generator().manual_seed(seed), device)
        rows, lengths = plain_batch(pool)
        out = train_thinker(model, rows, lengths, torch.ones_like(rows, dtype=torch.bool), size.text_steps,
                            size.text_batch, tokenizer.thought_id, tokenizer.eot_id, seed=seed, lr=lr)
        max_rank = _thinker_eval_rank(model, rows, lengths, tokenizer.thought_id, out["thoughts_per_row"])
        extra = {"survivor_thoughts_per_row": out["thoughts_per_row"]}
        for split, part in splits.items():
            r, l = plain_batch(validation_windows(part.tokens, size.text_window, n_windows[split]).to(device))
            result = evaluate_nll(model, r, l, tokenizer.thought_id, tokenizer.eot_id, budget=THOUGHT_BUDGET, max_rank=max_rank)
            nll[split] = result["nll"]
            extra[f"{split}_thoughts_per_row"] = result["thoughts_per_row"]
    else:
        kind = method if method in ("pause", "dense") else None
        filler = tokenizer.dense_id if method == "dense" else tokenizer.thought_id
        depth = 2  # dense: two unrolled passes in training (exact for the first two fillers of a window)
        batches = lm_batch_fn(corpus.train, size.text_batch, size.text_window, seed=seed, device=device)
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
        train(model, batches, train_cfg, loss_fn=loss_fn)
        for split, part in splits.items():
            nll[split] = evaluate_text_nll(model, part.tokens, size.text_window, kind, size.text_every, filler, specials,
                                           max_windows=n_windows[split])
        passes = 1.0 + (depth if method == "dense" else 0)
    extra["test_nats_per_token"] = nll["test"]
    value = {s: nats_per_char(nll[s], len(p.tokens), p.chars) for s, p in splits.items()}
    return CellResult("shakespeare", method, seed, float(lr), value["test"], value["val"], model.n_params(), passes,
                      time.perf_counter() - start, extra)


# --------------------------------------------------------------------------- pointer chasing
POINTER_FILLER = {"baseline": "none", "pause": "pause", "dense": "dense-2", "looped": "none", "deeper": "none",
                  "pause_deeper": "pause"}
POINTER_ENCDEC_WIDTH = 40  # the widest 1 + 1 encoder-decoder with no more parameters than the 1-layer GPT
POINTER_SEEDS = {"val": 777, "test": 1234}  # question seeds of the two evaluation splits


def pointer_deeper_config(spec=None):
    """The 3-layer pointer GPT at the 1-layer model's parameter count."""
    from lib.model import GPT
    from lib.pointer_task import PointerSpec, pointer_model_config

    base = pointer_model_config(spec or PointerSpec())
    from lib.encdec import _count_params

    return widest_gpt_within(base, DEEP_LAYERS, _count_params(GPT, base))


def _thinker_pointer_accuracy(model, spec, max_rank: int, question_seed: int, n_questions: int, device) -> tuple[dict, float]:
    """Per-hop accuracy of a thinker answering freely (thoughts only before the answer), and the
    thoughts it placed per question."""
    from lib.pointer_task import sample_pointer_batch
    from lib.thought_training import generate_with_thoughts

    accuracy, used = {}, []
    prompt_len = spec.n_nodes + 3
    for hops in range(1, spec.max_hops + 1):  # the same questions as evaluate_pointer
        test = sample_pointer_batch(spec, n_questions, torch.Generator().manual_seed(question_seed + hops), "none", hops).to(device)
        answers, n_thoughts = generate_with_thoughts(model, test.tokens[:, :prompt_len], 1, spec.pause_id, max_rank,
                                                     THOUGHT_BUDGET, first_gap=prompt_len)
        accuracy[hops] = (answers[:, 0] == test.answers).float().mean().item()
        used.append(n_thoughts.float().mean().item())
    return accuracy, sum(used) / len(used)


def run_pointer(method: str, seed: int, size: Size, device: torch.device | str = "cpu", lr: float = 3e-3) -> CellResult:
    """Notebook 05's task and 1-layer model (or its controls): mean answer accuracy over 1-3 hops."""
    from lib.encdec import EncDecConfig, EncoderDecoderGPT, planning_loss_fn
    from lib.looped import LoopedGPT
    from lib.model import GPT
    from lib.pointer_runs import evaluate_pointer, train_pointer_model
    from lib.pointer_task import PointerSpec, parse_method, pointer_model_config, sample_pointer_batch
    from lib.thought_training import train_thinker
    from lib.training import TrainConfig, train

    _check_run_args("pointer", method, seed, lr)
    if method in NEW_METHODS:
        return _run_pointer_open_question(method, seed, size, device, lr)
    start = time.perf_counter()
    spec, batch = PointerSpec(), 64
    n_q = size.eval_questions
    extra: dict = {}
    if method in POINTER_FILLER:
        filler, depth = parse_method(POINTER_FILLER[method])
        kwargs: dict = {}
        if method == "looped":
            torch.manual_seed(seed)
            kwargs["model"] = LoopedGPT(pointer_model_config(spec), LOOPS).to(device)
        elif method in ("deeper", "pause_deeper"):
            deep = pointer_deeper_config(spec)
            kwargs.update(d_model=deep.d_model, n_layers=deep.n_layers)
        run = train_pointer_model(POINTER_FILLER[method], seed, spec, steps=size.pointer_steps, batch_size=batch, lr=lr,
                                  device=device, **kwargs)
        model = run.model
        accuracy = {s: evaluate_pointer(model, spec, filler, n_q, seed=q) for s, q in POINTER_SEEDS.items()}
        passes = 1.0 + depth + (LOOPS - 1 if method == "looped" else 0)
    elif method in ("encdec", "planning", "planning_scored"):
        d = POINTER_ENCDEC_WIDTH
        cfg = EncDecConfig(d_vocab=spec.vocab_size, n_ctx=spec.seq_len("dense"), d_model=d, n_enc_layers=1,
                           n_dec_layers=1, n_heads=4, d_head=d // 4, d_mlp=4 * d)
        torch.manual_seed(seed)
        model = EncoderDecoderGPT(cfg).to(device)
        gen = torch.Generator().manual_seed(seed)
        # planning: the future of every position (horizon 2); scored: only at the position that
        # predicts the answer, whose whole future is the answer (horizon 1).
        lam = 0.0 if method == "encdec" else PLANNING["lam"]
        horizon = 1 if method == "planning_scored" else 2
        train(model, lambda step: sample_pointer_batch(spec, batch, gen, "none").to(device),
              TrainConfig(max_steps=size.pointer_steps, lr=lr, warmup_steps=min(20, size.pointer_steps // 10),
                          eval_interval=size.pointer_steps, progress=False),
              loss_fn=planning_loss_fn(lam, horizon, PLANNING["kind"], scored_only=method == "planning_scored"))
        accuracy = {s: evaluate_pointer(model, spec, "none", n_q, seed=q) for s, q in POINTER_SEEDS.items()}
        passes = 1.0
    else:  # thoughts: the pause token plays <|thought|>, placed by the model itself, only before the answer
        torch.manual_seed(seed)
        model = GPT(pointer_model_config(spec)).to(device)
        pool = sample_pointer_batch(spec, size.pointer_steps * batch, torch.Generator().manual_seed(seed), "none").to(device)
        lengths = torch.full((pool.tokens.shape[0],), pool.tokens.shape[1], device=device)
        answer_only = pool.targets.roll(1, dims=1) != -100  # the answer token, by original position
        first_gap = spec.n_nodes + 3  # the answer's index: where pause and dense tokens go
        out = train_thinker(model, pool.tokens, lengths, answer_only, size.pointer_steps, batch, spec.pause_id,
                            spec.pad_id, seed=seed, lr=lr, first_gap=first_gap)
        max_rank = _thinker_eval_rank(model, pool.tokens, lengths, spec.pause_id, out["thoughts_per_row"], first_gap)
        accuracy = {}
        extra = {"survivor_thoughts_per_row": out["thoughts_per_row"]}
        for s, q in POINTER_SEEDS.items():
            accuracy[s], extra[f"{s}_thoughts_per_row"] = _thinker_pointer_accuracy(model, spec, max_rank, q, n_q, device)
        passes = 1.0
    value = {s: sum(a.values()) / len(a) for s, a in accuracy.items()}
    extra["by_hops"] = accuracy["test"]
    return CellResult("pointer", method, seed, float(lr), value["test"], value["val"], model.n_params(), passes,
                      time.perf_counter() - start, extra)


# --------------------------------------------------------------------------- the design notes' open questions
SELECT_POOL = 2  # dense_selected: candidate windows drawn per kept window
SELECT_SPAN = 4  # the dense-token loss scores this many tokens after each dense token
ADAPTIVE_THRESHOLD = 0.5  # dense_adaptive: the answer probability a budget must reach to count as enough


def _selection_batches(draw, n_keep: int, mode: str, model, dense_id: int, log: dict):
    """``step -> (tokens, targets)``: ``draw(step)`` gives candidate rows with random dense tokens
    and their targets; the ``n_keep`` kept are the top gains, or random ones (the control)."""
    from lib.dense_selection import select_rows, selection_gains

    gen = torch.Generator().manual_seed(4321)

    def fn(step: int):
        tokens, targets = draw(step)
        if mode == "top":
            gains = selection_gains(model, tokens, targets, dense_id)
            keep = select_rows(gains, n_keep, "top")
            log["gain_all"].append(float(gains.mean()))
            log["gain_kept"].append(float(gains[keep].mean()))
        else:
            keep = select_rows(torch.zeros(tokens.shape[0]), n_keep, "random", gen)
        return tokens[keep.to(tokens.device)], targets[keep.to(tokens.device)]

    return fn


def _selection_extra(log: dict, lam: float, mode: str) -> dict:
    extra = {"lam": lam, "selection": mode, "pool": SELECT_POOL, "span": SELECT_SPAN}
    if log["gain_all"]:
        extra["mean_gain_all"] = sum(log["gain_all"]) / len(log["gain_all"])
        extra["mean_gain_kept"] = sum(log["gain_kept"]) / len(log["gain_kept"])
    return extra


def _run_text_open_question(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """Text with ``dense_selected*`` (random dense places, windows selected, evaluated with the
    dense arm's fillers) or ``dense_thoughts`` (dense thoughts placed by the model, notebook 06's
    evaluation with vectors fed back)."""
    from lib.data import load_tokenizer, shakespeare_corpus
    from lib.dense_selection import dense_targets, insert_random_dense, selected_dense_loss
    from lib.dense_thoughts import DenseView, train_dense_thinker
    from lib.encdec import gpt_matched_params
    from lib.fillers import validation_windows
    from lib.text_runs import evaluate_text_nll
    from lib.model import GPT
    from lib.thought_training import evaluate_nll
    from lib.thoughts import plain_batch
    from lib.training import TrainConfig, lm_batch_fn, nats_per_char, random_windows, train

    start = time.perf_counter()
    tokenizer, corpus = load_tokenizer(), shakespeare_corpus()
    splits = dict(zip(("val", "test"), text_splits()))
    n_windows = {"val": size.text_val_windows, "test": size.text_test_windows}
    specials = (tokenizer.dense_id, tokenizer.thought_id)
    torch.manual_seed(seed)
    model = GPT(gpt_matched_params(text_encdec_config(size))).to(device)
    nll: dict[str, float] = {}
    if method in SELECTED:
        lam, mode = SELECTED[method]
        n_dense = (size.text_window - 1) // size.text_every  # as many as the dense arm's fixed fillers
        windows = lm_batch_fn(corpus.train, SELECT_POOL * size.text_batch, size.text_window, seed=seed, device=device)
        places = torch.Generator().manual_seed(seed + 5000)

        def draw(step):
            w = windows(step)
            tokens, lengths = insert_random_dense(w, torch.full((w.shape[0],), w.shape[1], device=device), n_dense,
                                                  tokenizer.dense_id, tokenizer.eot_id, places)
            return tokens, dense_targets(tokens, lengths, tokenizer.dense_id)

        log: dict = {"gain_all": [], "gain_kept": []}
        batches = _selection_batches(draw, size.text_batch, mode, model, tokenizer.dense_id, log)
        depth = 2  # as the dense arm trains
        train(model, batches, TrainConfig(max_steps=size.text_steps, lr=lr, warmup_steps=max(1, size.text_steps // 10),
                                          eval_interval=size.text_steps, progress=False),
              loss_fn=lambda m, b: selected_dense_loss(m, b[0], b[1], tokenizer.dense_id, depth, lam, SELECT_SPAN, specials)[0])
        for split, part in splits.items():  # scored as the dense arm is: fillers every text_every tokens, exact
            nll[split] = evaluate_text_nll(model, part.tokens, size.text_window, "dense", size.text_every, tokenizer.dense_id,
                                           specials, max_windows=n_windows[split])
        extra = _selection_extra(log, lam, mode)
        passes = 1.0 + depth + (2.0 * SELECT_POOL if mode == "top" else 0.0)
    else:  # dense_thoughts
        pool = random_windows(corpus.train, size.text_steps * size.text_batch, size.text_window,
                              torch.Generator().manual_seed(seed), device)
        rows, lengths = plain_batch(pool)
        out = train_dense_thinker(model, rows, lengths, torch.ones_like(rows, dtype=torch.bool), size.text_steps,
                                  size.text_batch, tokenizer.dense_id, tokenizer.eot_id, seed=seed, lr=lr)
        view = DenseView(model, tokenizer.dense_id, THOUGHT_BUDGET)
        max_rank = _thinker_eval_rank(view, rows, lengths, tokenizer.dense_id, out["thoughts_per_row"])
        extra = {"survivor_thoughts_per_row": out["thoughts_per_row"], "rounds": out["rounds"]}
        for split, part in splits.items():
            r, l = plain_batch(validation_windows(part.tokens, size.text_window, n_windows[split]).to(device))
            result = evaluate_nll(view, r, l, tokenizer.dense_id, tokenizer.eot_id, budget=THOUGHT_BUDGET, max_rank=max_rank)
            nll[split] = result["nll"]
            extra[f"{split}_thoughts_per_row"] = result["thoughts_per_row"]
        passes = 2.5  # warm-up half: 3 passes (2 random dense thoughts, exact); survivor half: 2 (warm start, depth 1)
    extra["test_nats_per_token"] = nll["test"]
    value = {s: nats_per_char(nll[s], len(p.tokens), p.chars) for s, p in splits.items()}
    return CellResult("shakespeare", method, seed, float(lr), value["test"], value["val"], model.n_params(), passes,
                      time.perf_counter() - start, extra)


def _run_pointer_open_question(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """Pointer chasing (1-3 hops) with ``dense_selected*``, ``dense_adaptive`` or ``dense_thoughts``,
    on the 1-layer model of every pointer arm."""
    from lib.dense_emit import adaptive_accuracy, train_adaptive
    from lib.dense_selection import dense_targets, insert_random_dense, selected_dense_loss
    from lib.dense_thoughts import DenseView, train_dense_thinker
    from lib.model import GPT
    from lib.pointer_runs import evaluate_pointer
    from lib.pointer_task import PointerSpec, pointer_model_config, sample_pointer_batch
    from lib.thought_training import generate_with_thoughts
    from lib.training import TrainConfig, train

    start = time.perf_counter()
    spec, batch = PointerSpec(), 64
    n_q = size.eval_questions
    n = spec.n_nodes
    torch.manual_seed(seed)
    model = GPT(pointer_model_config(spec)).to(device)
    accuracy: dict = {}
    extra: dict = {}
    steps = size.pointer_steps
    if method in SELECTED:
        lam, mode = SELECTED[method]
        questions = torch.Generator().manual_seed(seed)
        places = torch.Generator().manual_seed(seed + 5000)
        answer_only = torch.zeros(1, n + 4, dtype=torch.bool, device=device)
        answer_only[0, n + 3] = True  # by original index: the answer

        def draw(step):
            b = sample_pointer_batch(spec, SELECT_POOL * batch, questions, "none").to(device)
            lengths = torch.full((b.tokens.shape[0],), b.tokens.shape[1], device=device)
            # max_hops - 1 dense tokens, each before HOP, before x or before the answer, at random
            tokens, lengths = insert_random_dense(b.tokens, lengths, spec.max_hops - 1, spec.dense_id, spec.pad_id, places,
                                                  first_gap=n + 1)
            return tokens, dense_targets(tokens, lengths, spec.dense_id, answer_only.expand(tokens.shape[0], -1))

        log: dict = {"gain_all": [], "gain_kept": []}
        batches = _selection_batches(draw, batch, mode, model, spec.dense_id, log)
        depth = spec.max_hops - 1
        train(model, batches, TrainConfig(max_steps=steps, lr=lr, warmup_steps=min(20, steps // 10), eval_interval=steps,
                                          progress=False),
              loss_fn=lambda m, b: selected_dense_loss(m, b[0], b[1], spec.dense_id, depth, lam, SELECT_SPAN)[0])
        # scored as the dense arm is: h - 1 dense tokens right after x, exact
        accuracy = {s: evaluate_pointer(model, spec, "dense", n_q, seed=q) for s, q in POINTER_SEEDS.items()}
        extra = _selection_extra(log, lam, mode)
        passes = 1.0 + depth + (2.0 * SELECT_POOL if mode == "top" else 0.0)
    elif method == "dense_adaptive":
        max_dense = spec.max_hops - 1
        run = train_adaptive(model, spec, steps, batch, lr, seed, max_dense, ADAPTIVE_THRESHOLD, device)
        per_hop = {s: adaptive_accuracy(model, spec, max_dense, q, n_q, device) for s, q in POINTER_SEEDS.items()}
        accuracy = {s: {h: v["accuracy"] for h, v in d.items()} for s, d in per_hop.items()}
        extra = {"dense_by_hops": {h: v["dense"] for h, v in per_hop["test"].items()},
                 "passes_per_question": sum(v["passes"] for v in per_hop["test"].values()) / len(per_hop["test"]),
                 "useful_counts_by_hops": {h: float(run.counts[run.count_hops.to(run.counts.device) == h].float().mean())
                                           for h in range(1, spec.max_hops + 1)}}
        # training: max_dense + 1 passes a step; scoring: sum over budgets k of (k + 1) passes, on half the steps' questions
        scoring = sum(k + 1 for k in range(max_dense + 1)) * run.steps[1] / steps
        passes = 1.0 + max_dense + scoring
    else:  # dense_thoughts: the thoughts arm's recipe with <|dense|> as the thought, vectors fed back
        pool = sample_pointer_batch(spec, steps * batch, torch.Generator().manual_seed(seed), "none").to(device)
        lengths = torch.full((pool.tokens.shape[0],), pool.tokens.shape[1], device=device)
        answer_only = pool.targets.roll(1, dims=1) != -100
        first_gap = n + 3
        out = train_dense_thinker(model, pool.tokens, lengths, answer_only, steps, batch, spec.dense_id, spec.pad_id,
                                  seed=seed, lr=lr, first_gap=first_gap)
        view = DenseView(model, spec.dense_id, THOUGHT_BUDGET)
        max_rank = _thinker_eval_rank(view, pool.tokens, lengths, spec.dense_id, out["thoughts_per_row"], first_gap)
        extra = {"survivor_thoughts_per_row": out["thoughts_per_row"], "rounds": out["rounds"]}
        for s, q in POINTER_SEEDS.items():
            accuracy[s], used = {}, []
            for hops in range(1, spec.max_hops + 1):
                test = sample_pointer_batch(spec, n_q, torch.Generator().manual_seed(q + hops), "none", hops).to(device)
                answers, n_thoughts = generate_with_thoughts(view, test.tokens[:, :first_gap], 1, spec.dense_id, max_rank,
                                                             THOUGHT_BUDGET, first_gap=first_gap)
                accuracy[s][hops] = (answers[:, 0] == test.answers).float().mean().item()
                used.append(n_thoughts.float().mean().item())
            extra[f"{s}_thoughts_per_row"] = sum(used) / len(used)
        passes = 2.5  # warm-up half: 3 passes (2 random dense thoughts, exact); survivor half: 2 (warm start, depth 1)
    value = {s: sum(a.values()) / len(a) for s, a in accuracy.items()}
    extra["by_hops"] = accuracy["test"]
    return CellResult("pointer", method, seed, float(lr), value["test"], value["val"], model.n_params(), passes,
                      time.perf_counter() - start, extra)


# --------------------------------------------------------------------------- path-star
PATH_STAR_SEEDS = {"val": 98, "test": 99}  # graph seeds of the two evaluation splits


def path_star_setup():
    """The harness's path-star size (degree 2, paths of 3 nodes, 5 labels: small enough that a
    2-layer model reaches the 1/degree plateau on a CPU), its vocabulary extended by three ids
    (pause, dense, thought) so that every method has the same embedding table."""
    from lib.encdec import EncDecConfig
    from lib.path_star import PathStarSpec

    spec = PathStarSpec(degree=2, path_len=3, n_nodes=5)
    fillers = 2  # pause / dense tokens before the path; dense at depth 2, as on the pointer task
    ids = {"pause": spec.vocab_size, "dense": spec.vocab_size + 1, "thought": spec.vocab_size + 2}
    cfg = EncDecConfig(d_vocab=spec.vocab_size + 3, n_ctx=spec.seq_len + fillers, d_model=32, n_enc_layers=1,
                       n_dec_layers=1, n_heads=2, d_head=16, d_mlp=32)
    return spec, fillers, ids, cfg


def with_fillers(batch, k: int, filler_id: int):
    """Path-star rows with ``k`` filler tokens between the ANSWER marker and the path; the targets move along."""
    from lib.path_star import PathStarBatch

    p = batch.spec.prompt_len
    rows = batch.tokens.shape[0]
    fill = torch.full((rows, k), filler_id, dtype=batch.tokens.dtype, device=batch.tokens.device)
    tokens = torch.cat([batch.tokens[:, :p], fill, batch.tokens[:, p:]], dim=1)
    targets = torch.full_like(tokens, -100)
    targets[:, p - 1 + k : -1] = batch.answers.to(tokens.device)
    return PathStarBatch(tokens, targets, batch.answers, batch.spec, batch.reverse)


def run_path_star(method: str, seed: int, size: Size, device: torch.device | str = "cpu", lr: float = 3e-3) -> CellResult:
    """Path-star in forward order (``method="reversed"``: the baseline on reversed answers, the
    reference): whole-path accuracy of greedy decoding on fresh graphs of each split."""
    from lib.dense import generate_with_dense, unrolled_loss
    from lib.encdec import EncoderDecoderGPT, ce_loss_fn, gpt_matched_params, planning_loss_fn
    from lib.model import GPT
    from lib.path_star import greedy_answers, path_accuracy, sample_path_star
    from lib.thought_training import generate_with_thoughts, train_thinker
    from lib.training import TrainConfig, train

    _check_run_args("path_star", method, seed, lr)
    start = time.perf_counter()
    reverse = method == "reversed"
    spec, k, ids, cfg = path_star_setup()
    torch.manual_seed(seed)
    encdec = method in ("encdec", "planning", "planning_scored")
    model = (EncoderDecoderGPT(cfg) if encdec else GPT(gpt_matched_params(cfg))).to(device)
    gen = torch.Generator().manual_seed(1000 + seed)
    train_cfg = TrainConfig(max_steps=size.path_steps, lr=lr, warmup_steps=min(20, size.path_steps), min_lr_ratio=1.0, weight_decay=0.0,
                            eval_interval=size.path_steps, progress=False)
    evals = {s: sample_path_star(spec, size.eval_questions, torch.Generator().manual_seed(q), reverse=reverse).to(device)
             for s, q in PATH_STAR_SEEDS.items()}
    n_fill = k if method in ("pause", "dense") else 0
    extra: dict = {}
    passes = 1.0 + (k if method == "dense" else 0)
    predicted = {}
    if method == "thoughts":
        pool = sample_path_star(spec, size.path_steps * 64, gen).to(device)
        lengths = torch.full((pool.tokens.shape[0],), spec.seq_len, device=device)
        answer = pool.targets.roll(1, dims=1) != -100
        first_gap = spec.prompt_len  # before the path: where pause and dense tokens go
        out = train_thinker(model, pool.tokens, lengths, answer, size.path_steps, 64, ids["thought"], ids["pause"],
                            seed=seed, lr=lr, first_gap=first_gap)
        max_rank = _thinker_eval_rank(model, pool.tokens, lengths, ids["thought"], out["thoughts_per_row"], first_gap)
        extra = {"survivor_thoughts_per_row": out["thoughts_per_row"]}
        for s, b in evals.items():
            predicted[s], used = generate_with_thoughts(model, b.tokens[:, : spec.prompt_len], spec.path_len, ids["thought"],
                                                        max_rank, THOUGHT_BUDGET, first_gap=first_gap)
            extra[f"{s}_thoughts_per_row"] = used.float().mean().item()
    else:
        filler = ids["dense"] if method == "dense" else ids["pause"]

        def batch_fn(step):
            b = sample_path_star(spec, 64, gen, reverse=reverse).to(device)
            return with_fillers(b, n_fill, filler) if n_fill else b

        if method == "planning":
            loss_fn = planning_loss_fn(PLANNING["lam"], spec.path_len, PLANNING["kind"])
        elif method == "planning_scored":  # only at the ANSWER marker: its future is the whole path
            loss_fn = planning_loss_fn(PLANNING["lam"], spec.path_len, PLANNING["kind"], scored_only=True)
        elif method == "dense":
            loss_fn = lambda m, b: unrolled_loss(m, b.tokens, b.targets, filler, k)
        else:
            loss_fn = ce_loss_fn
        train(model, batch_fn, train_cfg, loss_fn=loss_fn)
        for s, b in evals.items():
            if n_fill:
                prompt = with_fillers(b, n_fill, filler).tokens[:, : spec.prompt_len + n_fill]
                out_tokens, _ = generate_with_dense(model, prompt, spec.path_len, ids["dense"])  # pause rows carry no dense id
                predicted[s] = out_tokens[:, prompt.shape[1]:]
            else:
                predicted[s] = greedy_answers(model, b, use_kv_cache=False)
    value = {s: path_accuracy(predicted[s].to(b.answers.device), b) for s, b in evals.items()}
    return CellResult("path_star", method, seed, float(lr), value["test"], value["val"], model.n_params(), passes,
                      time.perf_counter() - start, extra)


# --------------------------------------------------------------------------- references
def task_references(task: str, size: Size) -> dict:
    """The reference lines of one task, on the splits its runs are scored on (:mod:`lib.references`)."""
    from lib.references import path_star_plateau, pointer_chance, text_references

    if task == "shakespeare":
        from lib.data import shakespeare_corpus
        from lib.fillers import validation_windows
        from lib.training import nats_per_char

        val, test = text_splits()
        refs = text_references(shakespeare_corpus().train, validation_windows(val.tokens, size.text_window, size.text_val_windows),
                               validation_windows(test.tokens, size.text_window, size.text_test_windows), 2048)
        for name in ("unigram", "bigram"):
            refs[name] = nats_per_char(refs[f"{name}_nats_per_token"], len(test.tokens), test.chars)
        return refs
    if task == "pointer":
        from lib.pointer_task import PointerSpec

        return {"chance": pointer_chance(PointerSpec().n_nodes), "one_hop_needed": 0.9}
    if task == "path_star":
        spec = path_star_setup()[0]
        return {"one_over_degree": path_star_plateau(spec.degree), "plateau_fraction_needed": 0.9, "reversed_needed": 0.9}
    raise ValueError(f"unknown task {task!r}; choose from {TASKS}")


# --------------------------------------------------------------------------- the harness
RUNNERS: dict[str, Callable[..., CellResult]] = {"shakespeare": run_text, "pointer": run_pointer, "path_star": run_path_star}


def tune_and_run(task: str, method: str, size: Size, device: torch.device | str = "cpu") -> list[CellResult]:
    """The learning-rate sweep on ``size.sweep_seed`` (chosen on the validation split), then every
    seed at the chosen rate. Every run comes back, ``extra["role"]`` saying which is which:
    ``"final"`` (a seed at the chosen rate: what is reported) or ``"sweep"`` (a rate not chosen)."""
    info = TASK_INFO[task]

    def runner(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
        # Every run keeps its opening losses: the check that a stored file comes from this code
        # on a CPU that cannot reproduce its last digits (lib.stored_checks).
        from lib.training import trace_losses

        with trace_losses(OPENING_STEPS) as trace:
            result = RUNNERS[task](method, seed, size, device, lr=lr)
        result.extra["opening_losses"] = trace.losses
        return result

    sweep = [runner(method, size.sweep_seed, size, device, lr=lr) for lr in size.lrs] if len(size.lrs) > 1 else []
    if sweep:
        key = (lambda r: r.val_value) if info.higher_is_better else (lambda r: -r.val_value)
        best = max(sweep, key=key)  # ties: the first (smallest) rate
        chosen = best.lr
    else:
        chosen, best = size.lrs[0], None
    out = []
    for r in sweep:
        r.extra["role"] = "final" if r is best else "sweep"
        out.append(r)
    for seed in size.seeds:
        if best is not None and seed == size.sweep_seed:
            continue
        r = runner(method, seed, size, device, lr=chosen)
        r.extra["role"] = "final"
        out.append(r)
    return out


def _job(args) -> list[CellResult]:
    task, method, size, device, threads = args
    from lib.training import make_reproducible

    make_reproducible(seed=0, threads=threads)
    return tune_and_run(task, method, size, device)


def harness_jobs(tasks: tuple[str, ...], methods: tuple[str, ...] | None, references: bool = True) -> list[tuple[str, str]]:
    """The (task, method) pairs to run: the methods that apply to each task (all when ``methods``
    is None), plus the trained references when asked."""
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {TASKS}")
    for method in methods or ():
        if method not in ALL_METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {ALL_METHODS}")
    jobs = []
    for task in tasks:
        jobs += [(task, m) for m in TASK_METHODS[task] if methods is None or m in methods]
        if references:
            jobs += [(task, m) for m in REFERENCE_RUNS.get(task, ())]
    return jobs


def run_harness(
    size: Size = SMALL,
    tasks: tuple[str, ...] = TASKS,
    methods: tuple[str, ...] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    references: bool = True,
    jobs: int = 1,
) -> list[CellResult]:
    """Every applicable (task, method) pair, tuned and run over ``size.seeds``. ``jobs > 1`` runs
    pairs in that many worker processes of one thread each (each run seeds itself, so the numbers
    do not depend on the order or the worker)."""
    from tqdm import tqdm

    if not isinstance(size, Size):
        raise TypeError(f"size must be a Size, got {type(size).__name__}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    pairs = harness_jobs(tuple(tasks), None if methods is None else tuple(methods), references)
    results: list[CellResult] = []
    if jobs == 1:
        for task, method in tqdm(pairs, desc="harness", disable=not progress):
            results += tune_and_run(task, method, size, device)
        return results
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(jobs) as pool:
        work = [(t, m, size, str(device), 1) for t, m in pairs]
        for part in tqdm(pool.imap(_job, work), total=len(work), desc="harness", disable=not progress):
            results += part
    return results


def final_runs(results: list[CellResult], task: str, method: str) -> list[CellResult]:
    """The reported runs of one cell (the chosen rate, every seed), in seed order."""
    cell = [r for r in results if r.task == task and r.method == method and r.extra.get("role", "final") == "final"]
    return sorted(cell, key=lambda r: r.seed)


def values(results: list[CellResult], task: str, method: str) -> list[float]:
    """The per-seed test numbers of one (task, method) cell, in seed order."""
    return [r.value for r in final_runs(results, task, method)]


def reference_check(task: str, cells: dict[str, dict], refs: dict) -> tuple[bool, str]:
    """Is the task's baseline past its reference line? ``(passed, one line saying why)``."""
    base = cells.get("baseline")
    if base is None:
        return False, "no baseline run"
    if task == "shakespeare":
        ok = base["mean"] < refs["bigram"]
        return ok, f"baseline {base['mean']:.3f} vs bigram {refs['bigram']:.3f} nats/char: {'below' if ok else 'NOT below'}"
    if task == "pointer":
        one_hop = base.get("one_hop")
        ok = one_hop is not None and one_hop >= refs["one_hop_needed"]
        return ok, f"baseline 1-hop accuracy {one_hop:.3f} (needs >= {refs['one_hop_needed']}; chance {refs['chance']:.3f})"
    if task == "path_star":
        need = refs["plateau_fraction_needed"] * refs["one_over_degree"]
        rev = cells.get("reversed", {}).get("mean")
        ok = base["mean"] >= need and rev is not None and rev >= refs["reversed_needed"]
        rev_text = "not run" if rev is None else f"{rev:.3f}"
        return ok, (f"forward baseline {base['mean']:.3f} (needs >= {need:.3f}, 0.9 x 1/degree); "
                    f"reversed {rev_text} (needs >= {refs['reversed_needed']})")
    raise ValueError(f"unknown task {task!r}")


def summarize(results: list[CellResult], references: dict | None = None) -> dict[str, dict[str, dict]]:
    """Per task and method: mean, sd, n, per-seed values, the chosen rate, parameters, passes per
    step, the comparison with the baseline (:func:`lib.stats.compare_table`, Holm over the task's
    methods) and the verdict, or "undertrained: no verdict" when ``references`` are given and the
    baseline has not passed them. Each task also gets ``"_reference"``: the check and its reason."""
    out: dict[str, dict[str, dict]] = {}
    for task in TASKS:
        names = [m for m in TASK_METHODS[task] + REFERENCE_RUNS.get(task, ()) if values(results, task, m)]
        if not names:
            continue
        cells: dict[str, dict] = {}
        for method in names:
            runs = final_runs(results, task, method)
            v = [r.value for r in runs]
            mean, sd = mean_and_spread(v)
            cells[method] = {"mean": mean, "sd": sd, "n": len(v), "values": v, "lr": runs[0].lr,
                             "n_params": runs[0].n_params, "forward_passes_per_step": runs[0].forward_passes_per_step,
                             "verdict": "reference"}
            if task == "pointer":
                cells[method]["one_hop"] = sum(r.extra["by_hops"][1] for r in runs) / len(runs)
        info = TASK_INFO[task]
        compared = {m: cells[m]["values"] for m in names if m in ALL_METHODS}
        passed, why = (True, "no references given") if references is None else reference_check(task, cells, references[task])
        if "baseline" in compared and len(compared["baseline"]) >= 2:
            usable = {m: v for m, v in compared.items() if len(v) >= 2}
            table = compare_table(usable, "baseline", info.higher_is_better, info.min_effect)
            for m, row in table.items():
                cells[m].update(p_value=row["p_value"], p_holm=row["p_holm"], difference=row["difference"],
                                verdict=row["verdict"] if passed else UNDERTRAINED)
        cells["_reference"] = {"passed": passed, "why": why}
        out[task] = cells
    return out


METHOD_NAMES = {
    "baseline": "the baseline", "pause": "pause tokens", "dense": "dense tokens", "looped": "a looped block (3 passes, tied)",
    "deeper": "a deeper GPT (3 layers)", "pause_deeper": "pause tokens in the deeper GPT", "encdec": "the encoder-decoder alone",
    "planning": "the planning loss", "planning_scored": "the planning loss at scored positions",
    "thoughts": "learned thought insertion", "reversed": "the baseline on reversed answers",
    "dense_selected": "dense tokens at random places, windows selected (lam 1)",
    "dense_selected_l0": "dense tokens at random places, windows selected (lam 0)",
    "dense_selected_l3": "dense tokens at random places, windows selected (lam 3)",
    "dense_selected_random": "dense tokens at random places, windows at random (lam 1)",
    "dense_adaptive": "dense tokens the model emits itself", "dense_thoughts": "dense thoughts placed by episodes",
}


def _method_cells(cells: dict) -> dict:
    return {k: v for k, v in cells.items() if not k.startswith("_")}


def verdict_sentences(summary: dict[str, dict[str, dict]]) -> list[str]:
    """One plain sentence per (task, method) compared with the baseline, with its numbers."""
    lines = []
    for task, cells in summary.items():
        base = cells.get("baseline")
        if base is None:
            continue
        for method, c in _method_cells(cells).items():
            if method == "baseline" or c["verdict"] == "reference":
                continue
            numbers = (f"{c['mean']:.3f} ± {c['sd']:.3f} vs {base['mean']:.3f} ± {base['sd']:.3f} "
                       f"({TASK_INFO[task].metric}; p = {c['p_value']:.3f}, Holm {c['p_holm']:.3f})")
            what = {"better": "better than the baseline", "worse": "worse than the baseline",
                    "no measurable effect": "no measurable effect", UNDERTRAINED: UNDERTRAINED}[c["verdict"]]
            lines.append(f"{task}: {METHOD_NAMES[method]}: {what}, {numbers}")
    return lines


def format_table(summary: dict[str, dict[str, dict]]) -> str:
    """A plain-text table: one block per task, one row per method, the reference check under it."""
    lines = []
    for task, cells in summary.items():
        info = TASK_INFO[task]
        lines.append(f"{task} ({info.metric}, {'higher' if info.higher_is_better else 'lower'} is better)")
        rows = _method_cells(cells)
        w = max([16] + [len(m) + 2 for m in rows])  # 16 fits the original methods; longer names widen it
        lines.append(f"  {'method':<{w}}{'mean':>8}{'sd':>8}{'seeds':>6}{'lr':>8}{'params':>9}{'passes':>7}"
                     f"{'p':>7}{'Holm':>7}  verdict vs baseline")
        for method, c in rows.items():
            p = f"{c['p_value']:>7.3f}{c['p_holm']:>7.3f}" if "p_value" in c else f"{'':>14}"
            lines.append(f"  {method:<{w}}{c['mean']:>8.3f}{c['sd']:>8.3f}{c['n']:>6}{c['lr']:>8.0e}{c['n_params']:>9,}"
                         f"{c['forward_passes_per_step']:>7.1f}{p}  {c['verdict']}")
        if "_reference" in cells:
            lines.append(f"  reference: {cells['_reference']['why']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- stored results
def provenance(command: str, threads: int, jobs: int, wall_seconds: float, device: str) -> dict:
    """Where a results file came from: enough to rerun it and to know when it could differ."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    return {
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_changes": git("status", "--porcelain", "--untracked-files=no") not in ("", "unknown"),
        "command": command, "torch": torch.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "device": device, "threads_per_job": threads, "jobs": jobs,
        "cpu_pins": {k: os.environ.get(k) for k in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "wall_seconds": round(wall_seconds, 1),
    }


def load_results(path: str | Path) -> dict:
    """A results file written by ``python -m lib.harness --json``: provenance, size, references,
    runs (as :class:`CellResult`) and summary. Raises naming the file when it is missing or not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results at {path}: generate them with the command in lib/harness.py's docstring")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    missing = [k for k in ("provenance", "size", "references", "runs") if not isinstance(data, dict) or k not in data]
    if missing:
        raise ValueError(f"{path} lacks {missing}: not a harness results file")
    data["size"] = Size(**{**data["size"], "seeds": tuple(data["size"]["seeds"]), "lrs": tuple(data["size"]["lrs"])})
    data["runs"] = [CellResult(**r) for r in data["runs"]]
    for r in data["runs"]:
        if "by_hops" in r.extra:
            r.extra["by_hops"] = {int(k): v for k, v in r.extra["by_hops"].items()}
    return data


def write_results(path: str | Path, size: Size, results: list[CellResult], refs: dict, prov: dict) -> Path:
    """Write every run, the references and the summary; via a temporary file, so a failure leaves
    any earlier file untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"provenance": prov, "size": asdict(size), "references": refs, "runs": [asdict(r) for r in results],
            "summary": summarize(results, refs)}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float))
    tmp.replace(path)
    return path


def merge_results(path: str | Path, size: Size, new: list[CellResult], refs: dict, prov: dict) -> Path:
    """Add ``new`` runs to the results file at ``path`` (written at the same ``size``): runs of the
    same (task, method) already there are replaced, every other run is kept as it was; the file's
    provenance stays and gains an entry under ``"added"`` (``prov``: this batch's commit, command,
    date, wall time); references of tasks the file lacks are added; the summary is recomputed."""
    path = Path(path)
    data = load_results(path)
    if data["size"] != size:
        raise ValueError(f"{path} was written at size {data['size'].name!r} with other settings; cannot merge {size.name!r} runs")
    if not isinstance(new, list) or not all(isinstance(r, CellResult) for r in new):
        raise TypeError("new must be a list of CellResult")
    replaced = {(r.task, r.method) for r in new}
    runs = [r for r in data["runs"] if (r.task, r.method) not in replaced] + new
    provenance_ = dict(data["provenance"])
    provenance_["added"] = list(provenance_.get("added", [])) + [{**prov, "cells": sorted(f"{t}/{m}" for t, m in replaced)}]
    references = {**refs, **data["references"]}
    return write_results(path, size, runs, references, provenance_)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--full", action="store_true", help="the same as --size full")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--methods", nargs="+", default=None, choices=ALL_METHODS)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes, one thread each (default 1: this process)")
    parser.add_argument("--json", default=None, help="also write every run, the references and the summary to this file")
    parser.add_argument("--add", action="store_true",
                        help="merge the runs into the existing --json file (same size) instead of overwriting it: "
                             "cells run now replace the same cells there, the rest is kept, provenance records the batch")
    parser.add_argument("--no-references", action="store_true", help="skip the trained reference runs (path-star reversed)")
    args = parser.parse_args(argv)
    if args.add and not args.json:
        parser.error("--add needs --json FILE (the results to merge into)")
    if args.add and not Path(args.json).is_file():
        parser.error(f"--add: {args.json} does not exist")
    from lib.training import make_reproducible, pick_device

    threads = 1 if args.jobs > 1 else max(1, min(2, torch.get_num_threads()))
    make_reproducible(seed=0, threads=threads)
    device = pick_device(args.device)
    size = FULL if args.full else SIZES[args.size]
    start = time.perf_counter()
    results = run_harness(size, tuple(args.tasks), None if args.methods is None else tuple(args.methods), device,
                          jobs=args.jobs, references=not args.no_references)
    refs = {t: task_references(t, size) for t in args.tasks}
    if args.json:
        command = "python -m lib.harness " + " ".join(sys.argv[1:] if argv is None else argv)
        prov = provenance(command, threads, args.jobs, time.perf_counter() - start, str(device))
        if args.add:
            merge_results(args.json, size, results, refs, prov)
            print(format_table(load_results_summary(args.json)))
            return 0
        write_results(args.json, size, results, refs, prov)
    print(format_table(summarize(results, refs)))
    return 0


def load_results_summary(path: str | Path) -> dict:
    """The summary of a results file, recomputed from its runs and references."""
    data = load_results(path)
    return summarize(data["runs"], data["references"])


if __name__ == "__main__":
    raise SystemExit(main())
