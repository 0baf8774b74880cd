"""One harness comparing every method of the course on the same tasks and budgets.

    python -m lib.harness                 # the small version (what notebook 08 runs on a CPU)
    python -m lib.harness --full --device cuda --json results.json   # full size, for a GPU

Tasks (each with one number per run):
- ``shakespeare``: validation loss of Tiny Shakespeare, nats per character (lower is better);
- ``pointer``: multi-hop pointer chasing (notebook 05), answer accuracy over 1-3 hops;
- ``path_star``: the path-star graph task (notebook 07), whole-path accuracy, forward order.

Methods: ``baseline``; ``pause`` (fixed filler tokens, no vector); ``dense`` (the same places,
fed the previous hidden state, unrolled); ``thoughts`` (learned thought insertion, notebook 06);
``planning`` (encoder-decoder with the future loss, notebook 07).

Budgets: within a task every method has the same parameter count (exactly, or up to a few
percent fewer for the encoder-decoder, whose width is chosen to fit), the same optimizer steps
and the same real tokens per step. What differs: forward passes per step (reported; dense:
depth + 1), the forward-only passes of the thoughts' insertion episodes (not counted), and the
thoughts' learning-rate schedule (notebook 06's, inside :func:`lib.thought_training.train_thinker`).

A verdict is "better" or "worse" only when every seed of one method beats every seed of the other
(for 3 vs 3 seeds an exact one-sided rank test gives p = 1/20) *and* the means differ by more
than the task's smallest effect worth reporting; otherwise "no measurable effect".
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

TASKS: tuple[str, ...] = ("shakespeare", "pointer", "path_star")
METHODS: tuple[str, ...] = ("baseline", "pause", "dense", "thoughts", "planning")


@dataclass(frozen=True)
class TaskInfo:
    metric: str
    higher_is_better: bool
    min_effect: float  # the smallest difference of means worth calling an effect


TASK_INFO: dict[str, TaskInfo] = {
    "shakespeare": TaskInfo("validation nats/char", False, 0.01),
    "pointer": TaskInfo("accuracy, 1-3 hops", True, 0.02),
    "path_star": TaskInfo("path accuracy (forward order)", True, 0.02),
}


@dataclass(frozen=True)
class Size:
    """How big every run is. ``small`` fits notebook 08 on a 2-core CPU; ``full`` wants a GPU."""

    name: str
    seeds: tuple[int, ...]
    text_steps: int
    text_batch: int
    text_window: int  # real tokens per window
    text_d_model: int
    text_layers: int  # GPT blocks (the encoder-decoder splits them in half)
    text_every: int  # one filler after this many real tokens
    text_val_windows: int
    pointer_steps: int
    path_steps: int
    path_lr: float = 3e-3


SMALL = Size("small", (0, 1, 2), text_steps=60, text_batch=16, text_window=48, text_d_model=64, text_layers=2,
             text_every=8, text_val_windows=32, pointer_steps=200, path_steps=200)
FULL = Size("full", (0, 1, 2, 3, 4), text_steps=2000, text_batch=32, text_window=96, text_d_model=128, text_layers=4,
            text_every=8, text_val_windows=400, pointer_steps=1000, path_steps=4000)


@dataclass
class CellResult:
    """One run: the task's number, and what it cost."""

    task: str
    method: str
    seed: int
    value: float
    n_params: int
    forward_passes_per_step: float
    seconds: float
    extra: dict = field(default_factory=dict)


THOUGHT_BUDGET = 2  # thoughts a model may place per row at evaluation
PLANNING = dict(lam=1.0, kind="cosine")  # notebook 07's best arm


def _thinker_eval_rank(model, tokens, lengths, thought_id: int, thoughts_per_row: float) -> int:
    """The rank threshold at which the trained thinker places about as many thoughts as its
    survivors had on training rows (notebook 06's calibration). It need not carry over to test
    rows: notebook 08 prints both rates per task."""
    from lib.thought_training import calibrate_max_rank

    rate = max(thoughts_per_row / float(lengths.float().mean()), 1e-3)
    return calibrate_max_rank(model, tokens[:512], lengths[:512], thought_id, min(rate, 1.0))


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


def run_text(method: str, seed: int, size: Size, device: torch.device | str = "cpu") -> CellResult:
    """Train from scratch on Tiny Shakespeare with one method; validation nats per character."""
    from lib.data import load_tokenizer, shakespeare_corpus
    from lib.encdec import EncoderDecoderGPT, gpt_matched_params, planning_loss_fn
    from lib.fillers import evaluate_text_nll, filler_logits, interleave_fillers, masked_lm_loss, validation_windows
    from lib.model import GPT
    from lib.thought_training import evaluate_nll, train_thinker
    from lib.thoughts import plain_batch
    from lib.training import TrainConfig, lm_batch_fn, nats_per_char, random_windows, train

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    start = time.perf_counter()
    tokenizer, corpus = load_tokenizer(), shakespeare_corpus()
    specials = [tokenizer.dense_id, tokenizer.thought_id]
    cfg = text_encdec_config(size)
    torch.manual_seed(seed)
    model = (EncoderDecoderGPT(cfg) if method == "planning" else GPT(gpt_matched_params(cfg))).to(device)
    train_cfg = TrainConfig(max_steps=size.text_steps, lr=3e-3, warmup_steps=max(1, size.text_steps // 10),
                            eval_interval=size.text_steps, progress=False)
    extra: dict = {}
    passes = 1.0
    if method == "thoughts":
        # The same windows the other methods draw, fixed in advance so episodes can run on them.
        pool = random_windows(corpus.train, size.text_steps * size.text_batch, size.text_window,
                              torch.Generator().manual_seed(seed), device)
        rows, lengths = plain_batch(pool)
        out = train_thinker(model, rows, lengths, torch.ones_like(rows, dtype=torch.bool), size.text_steps,
                            size.text_batch, tokenizer.thought_id, tokenizer.eot_id, seed=seed)
        max_rank = _thinker_eval_rank(model, rows, lengths, tokenizer.thought_id, out["thoughts_per_row"])
        val_rows, val_lengths = plain_batch(validation_windows(corpus.val, size.text_window, size.text_val_windows).to(device))
        result = evaluate_nll(model, val_rows, val_lengths, tokenizer.thought_id, tokenizer.eot_id,
                              budget=THOUGHT_BUDGET, max_rank=max_rank)
        nll = result["nll"]
        extra = {"survivor_thoughts_per_row": out["thoughts_per_row"], "eval_thoughts_per_row": result["thoughts_per_row"]}
    else:
        kind = None if method in ("baseline", "planning") else method
        filler = tokenizer.dense_id if method == "dense" else tokenizer.thought_id
        depth = 2  # dense: two unrolled passes in training (exact for the first two fillers of a window)
        batches = lm_batch_fn(corpus.train, size.text_batch, size.text_window, seed=seed, device=device)
        if method == "planning":
            loss_fn = planning_loss_fn(PLANNING["lam"], 4, PLANNING["kind"])
        else:
            def loss_fn(m, windows):
                if kind is None:
                    return m(windows, return_type="loss")
                tokens, targets = interleave_fillers(windows, size.text_every, filler)
                return masked_lm_loss(filler_logits(m, tokens, kind, filler, depth), targets, specials)
        train(model, batches, train_cfg, loss_fn=loss_fn)
        nll = evaluate_text_nll(model, corpus.val, size.text_window, kind, size.text_every, filler, specials,
                                max_windows=size.text_val_windows)
        passes = 1.0 + (depth if method == "dense" else 0)
    extra["nats_per_token"] = nll
    value = nats_per_char(nll, len(corpus.val), corpus.val_chars)
    return CellResult("shakespeare", method, seed, value, model.n_params(), passes, time.perf_counter() - start, extra)


# --------------------------------------------------------------------------- pointer chasing
POINTER_FILLER = {"baseline": "none", "pause": "pause", "dense": "dense-2"}
POINTER_ENCDEC_WIDTH = 40  # the widest 1 + 1 encoder-decoder with no more parameters than the 1-layer GPT


def run_pointer(method: str, seed: int, size: Size, device: torch.device | str = "cpu") -> CellResult:
    """Notebook 05's task and 1-layer model: mean answer accuracy over 1-3 hops."""
    from lib.encdec import EncDecConfig, EncoderDecoderGPT, planning_loss_fn
    from lib.model import GPT
    from lib.pointer_task import (
        PointerSpec, evaluate_pointer, parse_method, pointer_model_config, sample_pointer_batch, train_pointer_model,
    )
    from lib.thought_training import generate_with_thoughts, train_thinker
    from lib.training import TrainConfig, train

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    start = time.perf_counter()
    spec, batch = PointerSpec(), 64
    extra: dict = {}
    if method in POINTER_FILLER:
        run = train_pointer_model(POINTER_FILLER[method], seed, spec, steps=size.pointer_steps, batch_size=batch, device=device)
        _, depth = parse_method(POINTER_FILLER[method])
        model, accuracy, passes = run.model, run.accuracy, 1.0 + depth
    elif method == "planning":
        d = POINTER_ENCDEC_WIDTH
        cfg = EncDecConfig(d_vocab=spec.vocab_size, n_ctx=spec.seq_len("dense"), d_model=d, n_enc_layers=1,
                           n_dec_layers=1, n_heads=4, d_head=d // 4, d_mlp=4 * d)
        torch.manual_seed(seed)
        model = EncoderDecoderGPT(cfg).to(device)
        gen = torch.Generator().manual_seed(seed)
        train(model, lambda step: sample_pointer_batch(spec, batch, gen, "none").to(device),
              TrainConfig(max_steps=size.pointer_steps, lr=3e-3, warmup_steps=min(20, size.pointer_steps // 10),
                          eval_interval=size.pointer_steps, progress=False),
              loss_fn=planning_loss_fn(PLANNING["lam"], 2, PLANNING["kind"]))
        accuracy, passes = evaluate_pointer(model, spec, "none"), 1.0
    else:  # thoughts: the pause token plays <|thought|>, placed by the model itself
        torch.manual_seed(seed)
        model = GPT(pointer_model_config(spec)).to(device)
        pool = sample_pointer_batch(spec, size.pointer_steps * batch, torch.Generator().manual_seed(seed), "none").to(device)
        lengths = torch.full((pool.tokens.shape[0],), pool.tokens.shape[1], device=device)
        answer_only = pool.targets.roll(1, dims=1) != -100  # the answer token, by original position
        out = train_thinker(model, pool.tokens, lengths, answer_only, size.pointer_steps, batch, spec.pause_id,
                            spec.pad_id, seed=seed)
        max_rank = _thinker_eval_rank(model, pool.tokens, lengths, spec.pause_id, out["thoughts_per_row"])
        accuracy, used = {}, []
        for hops in range(1, spec.max_hops + 1):  # the same questions as evaluate_pointer
            test = sample_pointer_batch(spec, 600, torch.Generator().manual_seed(1234 + hops), "none", hops).to(device)
            answers, n_thoughts = generate_with_thoughts(model, test.tokens[:, : spec.n_nodes + 3], 1, spec.pause_id,
                                                         max_rank, THOUGHT_BUDGET)
            accuracy[hops] = (answers[:, 0] == test.answers).float().mean().item()
            used.append(n_thoughts.float().mean().item())
        passes = 1.0
        extra = {"survivor_thoughts_per_row": out["thoughts_per_row"], "eval_thoughts_per_row": sum(used) / len(used)}
    value = sum(accuracy.values()) / len(accuracy)
    extra["by_hops"] = accuracy
    return CellResult("pointer", method, seed, value, model.n_params(), passes, time.perf_counter() - start, extra)


# --------------------------------------------------------------------------- path-star
def path_star_setup():
    """Notebook 07's path-star size, its vocabulary extended by three ids (pause, dense, thought)
    so that every method has the same embedding table."""
    from lib.encdec import EncDecConfig
    from lib.path_star import PathStarSpec

    spec = PathStarSpec(degree=2, path_len=4, n_nodes=7)
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


def run_path_star(method: str, seed: int, size: Size, device: torch.device | str = "cpu", reverse: bool = False) -> CellResult:
    """Path-star in forward order (``reverse=True``: the reversed reference): whole-path accuracy
    of greedy decoding on 600 fresh graphs."""
    from lib.dense import generate_with_dense, unrolled_loss
    from lib.encdec import EncoderDecoderGPT, ce_loss_fn, gpt_matched_params, planning_loss_fn
    from lib.model import GPT
    from lib.path_star import greedy_answers, path_accuracy, sample_path_star
    from lib.thought_training import generate_with_thoughts, train_thinker
    from lib.training import TrainConfig, train

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    start = time.perf_counter()
    spec, k, ids, cfg = path_star_setup()
    torch.manual_seed(seed)
    model = (EncoderDecoderGPT(cfg) if method == "planning" else GPT(gpt_matched_params(cfg))).to(device)
    gen = torch.Generator().manual_seed(1000 + seed)
    train_cfg = TrainConfig(max_steps=size.path_steps, lr=size.path_lr, warmup_steps=20, min_lr_ratio=1.0, weight_decay=0.0,
                            eval_interval=size.path_steps, progress=False)
    test = sample_path_star(spec, 600, torch.Generator().manual_seed(99), reverse=reverse).to(device)
    n_fill = k if method in ("pause", "dense") else 0
    extra: dict = {}
    passes = 1.0 + (k if method == "dense" else 0)
    if method == "thoughts":
        pool = sample_path_star(spec, size.path_steps * 64, gen, reverse=reverse).to(device)
        lengths = torch.full((pool.tokens.shape[0],), spec.seq_len, device=device)
        answer = pool.targets.roll(1, dims=1) != -100
        out = train_thinker(model, pool.tokens, lengths, answer, size.path_steps, 64, ids["thought"], ids["pause"], seed=seed)
        max_rank = _thinker_eval_rank(model, pool.tokens, lengths, ids["thought"], out["thoughts_per_row"])
        predicted, used = generate_with_thoughts(model, test.tokens[:, : spec.prompt_len], spec.path_len, ids["thought"],
                                                 max_rank, THOUGHT_BUDGET)
        extra = {"survivor_thoughts_per_row": out["thoughts_per_row"], "eval_thoughts_per_row": used.float().mean().item()}
    else:
        filler = ids["dense"] if method == "dense" else ids["pause"]

        def batch_fn(step):
            b = sample_path_star(spec, 64, gen, reverse=reverse).to(device)
            return with_fillers(b, n_fill, filler) if n_fill else b

        if method == "planning":
            loss_fn = planning_loss_fn(PLANNING["lam"], spec.path_len, PLANNING["kind"])
        elif method == "dense":
            loss_fn = lambda m, b: unrolled_loss(m, b.tokens, b.targets, filler, k)
        else:
            loss_fn = ce_loss_fn
        train(model, batch_fn, train_cfg, loss_fn=loss_fn)
        if n_fill:
            prompt = with_fillers(test, n_fill, filler).tokens[:, : spec.prompt_len + n_fill]
            out, _ = generate_with_dense(model, prompt, spec.path_len, ids["dense"])  # pause rows carry no dense id
            predicted = out[:, prompt.shape[1]:]
        else:
            predicted = greedy_answers(model, test, use_kv_cache=False)
    value = path_accuracy(predicted.to(test.answers.device), test)
    name = "reference: reversed" if reverse else method
    return CellResult("path_star", name, seed, value, model.n_params(), passes, time.perf_counter() - start, extra)


# --------------------------------------------------------------------------- the harness
RUNNERS: dict[str, Callable[..., CellResult]] = {"shakespeare": run_text, "pointer": run_pointer, "path_star": run_path_star}


def run_harness(
    size: Size = SMALL,
    tasks: tuple[str, ...] = TASKS,
    methods: tuple[str, ...] = METHODS,
    device: torch.device | str = "cpu",
    progress: bool = True,
    references: bool = True,
) -> list[CellResult]:
    """Every (task, method) pair over ``size.seeds``; with ``references``, path-star also runs
    the baseline on the reversed order (the task is learnable when the answer is reversed)."""
    from tqdm import tqdm

    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {TASKS}")
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    jobs = [(t, m, s, False) for t in tasks for m in methods for s in size.seeds]
    if references and "path_star" in tasks:
        jobs += [("path_star", "baseline", s, True) for s in size.seeds]
    results = []
    for task, method, seed, reverse in tqdm(jobs, desc="harness", disable=not progress):
        kwargs = {"reverse": True} if reverse else {}
        results.append(RUNNERS[task](method, seed, size, device, **kwargs))
    return results


def values(results: list[CellResult], task: str, method: str) -> list[float]:
    """The per-seed numbers of one (task, method) cell, in seed order."""
    return [r.value for r in sorted(results, key=lambda r: r.seed) if r.task == task and r.method == method]


def verdict(baseline: list[float], method: list[float], higher_is_better: bool, min_effect: float) -> str:
    """``"better"``, ``"worse"`` or ``"no measurable effect"`` for ``method`` against ``baseline``.

    Better means every seed of the method beats every seed of the baseline (complete separation:
    for 3 vs 3 seeds an exact one-sided rank test gives p = 0.05) and the means differ by more than
    ``min_effect``; worse likewise the other way.
    """
    if len(baseline) < 2 or len(method) < 2:
        raise ValueError("a verdict needs at least 2 seeds on each side")
    if min_effect < 0:
        raise ValueError(f"min_effect must be >= 0, got {min_effect}")
    sign = 1.0 if higher_is_better else -1.0
    gain = sign * (sum(method) / len(method) - sum(baseline) / len(baseline))
    if min(sign * m for m in method) > max(sign * b for b in baseline) and gain > min_effect:
        return "better"
    if max(sign * m for m in method) < min(sign * b for b in baseline) and -gain > min_effect:
        return "worse"
    return "no measurable effect"


def summarize(results: list[CellResult]) -> dict[str, dict[str, dict]]:
    """Per task and method: mean, sd, n, per-seed values, parameters, passes per step, and the verdict."""
    from lib.plotting import mean_and_spread

    out: dict[str, dict[str, dict]] = {}
    for task in TASKS:
        base = values(results, task, "baseline")
        for method in METHODS + ("reference: reversed",):
            v = values(results, task, method)
            if not v:
                continue
            cell = [r for r in results if r.task == task and r.method == method]
            mean, sd = mean_and_spread(v)
            info = TASK_INFO[task]
            out.setdefault(task, {})[method] = {
                "mean": mean, "sd": sd, "n": len(v), "values": v,
                "n_params": cell[0].n_params, "forward_passes_per_step": cell[0].forward_passes_per_step,
                "verdict": "reference" if method not in METHODS or method == "baseline" or len(base) < 2 or len(v) < 2
                else verdict(base, v, info.higher_is_better, info.min_effect),
            }
    return out


METHOD_NAMES = {
    "baseline": "the baseline", "pause": "pause tokens", "dense": "dense tokens", "thoughts": "learned thought insertion",
    "planning": "the planning loss", "reference: reversed": "the baseline on reversed answers",
}


def verdict_sentences(summary: dict[str, dict[str, dict]]) -> list[str]:
    """One plain sentence per (task, method) compared with the baseline, with its numbers."""
    lines = []
    for task, cells in summary.items():
        base = cells.get("baseline")
        if base is None:
            continue
        for method, c in cells.items():
            if method == "baseline" or c["verdict"] == "reference":
                continue
            numbers = f"{c['mean']:.3f} ± {c['sd']:.3f} vs {base['mean']:.3f} ± {base['sd']:.3f} ({TASK_INFO[task].metric})"
            what = {"better": "better than the baseline", "worse": "worse than the baseline",
                    "no measurable effect": "no measurable effect"}[c["verdict"]]
            lines.append(f"{task}: {METHOD_NAMES[method]}: {what}, {numbers}")
    return lines


def format_table(summary: dict[str, dict[str, dict]]) -> str:
    """A plain-text table: one block per task, one row per method."""
    lines = []
    for task, cells in summary.items():
        info = TASK_INFO[task]
        lines.append(f"{task} ({info.metric}, {'higher' if info.higher_is_better else 'lower'} is better)")
        lines.append(f"  {'method':<10}{'mean':>9}{'sd':>9}{'seeds':>7}{'params':>10}{'passes':>8}  verdict vs baseline")
        for method, c in cells.items():
            lines.append(f"  {method:<10}{c['mean']:>9.3f}{c['sd']:>9.3f}{c['n']:>7}{c['n_params']:>10,}"
                         f"{c['forward_passes_per_step']:>8.1f}  {c['verdict']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full size (5 seeds, long runs): use a GPU")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--json", default=None, help="also write every run and the summary to this file")
    args = parser.parse_args(argv)
    from lib.training import make_reproducible, pick_device

    make_reproducible(seed=0, threads=max(1, min(2, torch.get_num_threads())))
    device = pick_device(args.device)
    size = FULL if args.full else SMALL
    results = run_harness(size, tuple(args.tasks), tuple(args.methods), device)
    summary = summarize(results)
    print(format_table(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": asdict(size), "device": str(device), "runs": [asdict(r) for r in results],
                       "summary": summary}, f, indent=2, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
