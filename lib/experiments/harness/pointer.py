"""Multi-hop pointer chasing in the harness (notebook 05's task and 1-layer model): mean answer
accuracy over 1-3 hops, on question seeds no choice was made on.

One run function per family of arms, each ``(method, seed, size, device, lr) -> CellResult``;
:mod:`.registry` says which arm uses which."""

from __future__ import annotations

import time

import torch

from .parts import SELECT_POOL, SELECT_SPAN, SELECTED, selection_batches, selection_extra, thinker_eval_rank, widest_gpt_within
from .spec import DEEP_LAYERS, LOOPS, PLANNING, THOUGHT_BUDGET, CellResult, Size

FILLER = {"baseline": "none", "pause": "pause", "dense": "dense-2", "looped": "none", "deeper": "none", "pause_deeper": "pause"}
ENCDEC_WIDTH = 40  # the widest 1 + 1 encoder-decoder with no more parameters than the 1-layer GPT
QUESTION_SEEDS = {"val": 777, "test": 1234}  # question seeds of the two evaluation splits
BATCH = 64
ADAPTIVE_THRESHOLD = 0.5  # dense_adaptive: the answer probability a budget must reach to count as enough


def pointer_deeper_config(spec=None):
    """The 3-layer pointer GPT at the 1-layer model's parameter count."""
    from lib.core.model import GPT
    from lib.methods.encdec import _count_params
    from lib.tasks.pointer_task import PointerSpec, pointer_model_config

    base = pointer_model_config(spec or PointerSpec())
    return widest_gpt_within(base, DEEP_LAYERS, _count_params(GPT, base))


def _finish(method: str, seed: int, lr: float, accuracy: dict, model, passes: float, extra: dict, start: float) -> CellResult:
    value = {s: sum(a.values()) / len(a) for s, a in accuracy.items()}
    extra["by_hops"] = accuracy["test"]
    return CellResult("pointer", method, seed, float(lr), value["test"], value["val"], model.n_params(), passes,
                      time.perf_counter() - start, extra)


def _train_config(steps: int, lr: float):
    from lib.core.training import TrainConfig

    return TrainConfig(max_steps=steps, lr=lr, warmup_steps=min(20, steps // 10), eval_interval=steps, progress=False)


def run_filler(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """The GPT arms of notebook 05 (:data:`FILLER`: none, pause or dense fillers), the looped
    block and the deeper GPT: trained and scored by :mod:`lib.experiments.pointer_runs`."""
    from lib.experiments.pointer_runs import evaluate_pointer, train_pointer_model
    from lib.methods.looped import LoopedGPT
    from lib.tasks.pointer_task import PointerSpec, parse_method, pointer_model_config

    start = time.perf_counter()
    spec = PointerSpec()
    filler, depth = parse_method(FILLER[method])
    kwargs: dict = {}
    if method == "looped":
        torch.manual_seed(seed)
        kwargs["model"] = LoopedGPT(pointer_model_config(spec), LOOPS).to(device)
    elif method in ("deeper", "pause_deeper"):
        deep = pointer_deeper_config(spec)
        kwargs.update(d_model=deep.d_model, n_layers=deep.n_layers)
    run = train_pointer_model(FILLER[method], seed, spec, steps=size.pointer_steps, batch_size=BATCH, lr=lr,
                              device=device, **kwargs)
    accuracy = {s: evaluate_pointer(run.model, spec, filler, size.eval_questions, seed=q) for s, q in QUESTION_SEEDS.items()}
    passes = 1.0 + depth + (LOOPS - 1 if method == "looped" else 0)
    return _finish(method, seed, lr, accuracy, run.model, passes, {}, start)


def run_encdec(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """``encdec`` (lam 0), ``planning`` (the future of every position, horizon 2) and
    ``planning_scored`` (only at the position that predicts the answer, horizon 1)."""
    from lib.core.training import train
    from lib.experiments.pointer_runs import evaluate_pointer
    from lib.methods.encdec import EncDecConfig, EncoderDecoderGPT, planning_loss_fn
    from lib.tasks.pointer_task import PointerSpec, sample_pointer_batch

    start = time.perf_counter()
    spec, d = PointerSpec(), ENCDEC_WIDTH
    cfg = EncDecConfig(d_vocab=spec.vocab_size, n_ctx=spec.seq_len("dense"), d_model=d, n_enc_layers=1,
                       n_dec_layers=1, n_heads=4, d_head=d // 4, d_mlp=4 * d)
    torch.manual_seed(seed)
    model = EncoderDecoderGPT(cfg).to(device)
    gen = torch.Generator().manual_seed(seed)
    lam = 0.0 if method == "encdec" else PLANNING["lam"]
    horizon = 1 if method == "planning_scored" else 2
    train(model, lambda step: sample_pointer_batch(spec, BATCH, gen, "none").to(device), _train_config(size.pointer_steps, lr),
          loss_fn=planning_loss_fn(lam, horizon, PLANNING["kind"], scored_only=method == "planning_scored"))
    accuracy = {s: evaluate_pointer(model, spec, "none", size.eval_questions, seed=q) for s, q in QUESTION_SEEDS.items()}
    return _finish(method, seed, lr, accuracy, model, 1.0, {}, start)


def _thinker_accuracy(model, spec, thought_id: int, max_rank: int, question_seed: int, n_questions: int, device) -> tuple[dict, float]:
    """Per-hop accuracy of a thinker answering freely (thoughts only before the answer), and the
    thoughts it placed per question."""
    from lib.methods.thought_training import generate_with_thoughts
    from lib.tasks.pointer_task import sample_pointer_batch

    accuracy, used = {}, []
    prompt_len = spec.n_nodes + 3
    for hops in range(1, spec.max_hops + 1):  # the same questions as evaluate_pointer
        test = sample_pointer_batch(spec, n_questions, torch.Generator().manual_seed(question_seed + hops), "none", hops).to(device)
        answers, n_thoughts = generate_with_thoughts(model, test.tokens[:, :prompt_len], 1, thought_id, max_rank,
                                                     THOUGHT_BUDGET, first_gap=prompt_len)
        accuracy[hops] = (answers[:, 0] == test.answers).float().mean().item()
        used.append(n_thoughts.float().mean().item())
    return accuracy, sum(used) / len(used)


def run_thoughts(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """``thoughts``: the pause token plays <|thought|>, placed by the model itself, only before the
    answer; ``dense_thoughts``: the same recipe with <|dense|>, vectors fed back."""
    from lib.core.model import GPT
    from lib.methods.dense_thoughts import DenseView, train_dense_thinker
    from lib.methods.thought_training import train_thinker
    from lib.tasks.pointer_task import PointerSpec, pointer_model_config, sample_pointer_batch

    start = time.perf_counter()
    spec, steps = PointerSpec(), size.pointer_steps
    dense = method == "dense_thoughts"
    thought_id = spec.dense_id if dense else spec.pause_id
    torch.manual_seed(seed)
    model = GPT(pointer_model_config(spec)).to(device)
    pool = sample_pointer_batch(spec, steps * BATCH, torch.Generator().manual_seed(seed), "none").to(device)
    lengths = torch.full((pool.tokens.shape[0],), pool.tokens.shape[1], device=device)
    answer_only = pool.targets.roll(1, dims=1) != -100  # the answer token, by original position
    first_gap = spec.n_nodes + 3  # the answer's index: where pause and dense tokens go
    trainer = train_dense_thinker if dense else train_thinker
    out = trainer(model, pool.tokens, lengths, answer_only, steps, BATCH, thought_id, spec.pad_id, seed=seed, lr=lr,
                  first_gap=first_gap)
    scorer = DenseView(model, thought_id, THOUGHT_BUDGET) if dense else model
    max_rank = thinker_eval_rank(scorer, pool.tokens, lengths, thought_id, out["thoughts_per_row"], first_gap)
    extra = {"survivor_thoughts_per_row": out["thoughts_per_row"]}
    if dense:
        extra["rounds"] = out["rounds"]
    accuracy = {}
    for s, q in QUESTION_SEEDS.items():
        accuracy[s], extra[f"{s}_thoughts_per_row"] = _thinker_accuracy(scorer, spec, thought_id, max_rank, q,
                                                                        size.eval_questions, device)
    # dense_thoughts: warm-up half 3 passes (2 random dense thoughts, exact), survivor half 2 (warm start, depth 1)
    return _finish(method, seed, lr, accuracy, model, 2.5 if dense else 1.0, extra, start)


def run_selected(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """``dense_selected*``: max_hops - 1 dense tokens at random places (before HOP, before x or
    before the answer), rows kept by selection or at random; scored as the dense arm is."""
    from lib.core.model import GPT
    from lib.core.training import train
    from lib.experiments.pointer_runs import evaluate_pointer
    from lib.methods.dense_selection import dense_targets, insert_random_dense, selected_dense_loss
    from lib.tasks.pointer_task import PointerSpec, pointer_model_config, sample_pointer_batch

    start = time.perf_counter()
    spec, steps = PointerSpec(), size.pointer_steps
    n = spec.n_nodes
    torch.manual_seed(seed)
    model = GPT(pointer_model_config(spec)).to(device)
    lam, mode = SELECTED[method]
    questions = torch.Generator().manual_seed(seed)
    places = torch.Generator().manual_seed(seed + 5000)
    answer_only = torch.zeros(1, n + 4, dtype=torch.bool, device=device)
    answer_only[0, n + 3] = True  # by original index: the answer

    def draw(step):
        b = sample_pointer_batch(spec, SELECT_POOL * BATCH, questions, "none").to(device)
        lengths = torch.full((b.tokens.shape[0],), b.tokens.shape[1], device=device)
        tokens, lengths = insert_random_dense(b.tokens, lengths, spec.max_hops - 1, spec.dense_id, spec.pad_id, places,
                                              first_gap=n + 1)
        return tokens, dense_targets(tokens, lengths, spec.dense_id, answer_only.expand(tokens.shape[0], -1))

    log: dict = {"gain_all": [], "gain_kept": []}
    depth = spec.max_hops - 1
    train(model, selection_batches(draw, BATCH, mode, model, spec.dense_id, log), _train_config(steps, lr),
          loss_fn=lambda m, b: selected_dense_loss(m, b[0], b[1], spec.dense_id, depth, lam, SELECT_SPAN)[0])
    # scored as the dense arm is: h - 1 dense tokens right after x, exact
    accuracy = {s: evaluate_pointer(model, spec, "dense", size.eval_questions, seed=q) for s, q in QUESTION_SEEDS.items()}
    passes = 1.0 + depth + (2.0 * SELECT_POOL if mode == "top" else 0.0)
    return _finish(method, seed, lr, accuracy, model, passes, selection_extra(log, lam, mode), start)


def run_adaptive(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """``dense_adaptive``: the model writes <|dense|> itself as often as scoring found useful; free
    generation at test (:mod:`lib.methods.dense_emit`)."""
    from lib.core.model import GPT
    from lib.methods.dense_emit import adaptive_accuracy, train_adaptive
    from lib.tasks.pointer_task import PointerSpec, pointer_model_config

    start = time.perf_counter()
    spec, steps = PointerSpec(), size.pointer_steps
    torch.manual_seed(seed)
    model = GPT(pointer_model_config(spec)).to(device)
    max_dense = spec.max_hops - 1
    run = train_adaptive(model, spec, steps, BATCH, lr, seed, max_dense, ADAPTIVE_THRESHOLD, device)
    per_hop = {s: adaptive_accuracy(model, spec, max_dense, q, size.eval_questions, device) for s, q in QUESTION_SEEDS.items()}
    accuracy = {s: {h: v["accuracy"] for h, v in d.items()} for s, d in per_hop.items()}
    extra = {"dense_by_hops": {h: v["dense"] for h, v in per_hop["test"].items()},
             "passes_per_question": sum(v["passes"] for v in per_hop["test"].values()) / len(per_hop["test"]),
             "useful_counts_by_hops": {h: float(run.counts[run.count_hops.to(run.counts.device) == h].float().mean())
                                       for h in range(1, spec.max_hops + 1)}}
    # training: max_dense + 1 passes a step; scoring: sum over budgets k of (k + 1) passes, on half the steps' questions
    scoring = sum(k + 1 for k in range(max_dense + 1)) * run.steps[1] / steps
    return _finish(method, seed, lr, accuracy, model, 1.0 + max_dense + scoring, extra, start)


def pointer_references(size: Size) -> dict:
    from lib.tasks.pointer_task import PointerSpec
    from lib.tasks.references import pointer_chance

    return {"chance": pointer_chance(PointerSpec().n_nodes), "one_hop_needed": 0.9}
