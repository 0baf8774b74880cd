"""The path-star graph task in the harness (notebook 07): whole-path accuracy of greedy decoding,
in forward order, on fresh graphs of each split. ``reversed`` (the baseline on reversed answers)
is the reference every forward arm is read against.

One run function per family of arms, each ``(method, seed, size, device, lr) -> CellResult``;
:mod:`.registry` says which arm uses which."""

from __future__ import annotations

import time

import torch

from .parts import thinker_eval_rank
from .spec import PLANNING, THOUGHT_BUDGET, CellResult, Size

GRAPH_SEEDS = {"val": 98, "test": 99}  # graph seeds of the two evaluation splits
BATCH = 64


def path_star_setup():
    """The harness's path-star size (degree 2, paths of 3 nodes, 5 labels: small enough that a
    2-layer model reaches the 1/degree plateau on a CPU), its vocabulary extended by three ids
    (pause, dense, thought) so that every method has the same embedding table."""
    from lib.methods.encdec import EncDecConfig
    from lib.tasks.path_star import PathStarSpec

    spec = PathStarSpec(degree=2, path_len=3, n_nodes=5)
    fillers = 2  # pause / dense tokens before the path; dense at depth 2, as on the pointer task
    ids = {"pause": spec.vocab_size, "dense": spec.vocab_size + 1, "thought": spec.vocab_size + 2}
    cfg = EncDecConfig(d_vocab=spec.vocab_size + 3, n_ctx=spec.seq_len + fillers, d_model=32, n_enc_layers=1,
                       n_dec_layers=1, n_heads=2, d_head=16, d_mlp=32)
    return spec, fillers, ids, cfg


def with_fillers(batch, k: int, filler_id: int):
    """Path-star rows with ``k`` filler tokens between the ANSWER marker and the path; the targets move along."""
    from lib.tasks.path_star import PathStarBatch

    p = batch.spec.prompt_len
    rows = batch.tokens.shape[0]
    fill = torch.full((rows, k), filler_id, dtype=batch.tokens.dtype, device=batch.tokens.device)
    tokens = torch.cat([batch.tokens[:, :p], fill, batch.tokens[:, p:]], dim=1)
    targets = torch.full_like(tokens, -100)
    targets[:, p - 1 + k : -1] = batch.answers.to(tokens.device)
    return PathStarBatch(tokens, targets, batch.answers, batch.spec, batch.reverse)


class _Setup:
    """What every path-star arm starts from: the task, the model of its kind, the training stream's
    generator and the evaluation graphs."""

    def __init__(self, method: str, seed: int, size: Size, device):
        from lib.core.model import GPT
        from lib.methods.encdec import EncoderDecoderGPT, gpt_matched_params
        from lib.tasks.path_star import sample_path_star

        self.start = time.perf_counter()
        self.reverse = method == "reversed"
        self.spec, self.k, self.ids, cfg = path_star_setup()
        torch.manual_seed(seed)
        encdec = method in ("encdec", "planning", "planning_scored")
        self.model = (EncoderDecoderGPT(cfg) if encdec else GPT(gpt_matched_params(cfg))).to(device)
        self.gen = torch.Generator().manual_seed(1000 + seed)
        self.evals = {s: sample_path_star(self.spec, size.eval_questions, torch.Generator().manual_seed(q),
                                          reverse=self.reverse).to(device) for s, q in GRAPH_SEEDS.items()}

    def finish(self, method: str, seed: int, lr: float, predicted: dict, passes: float, extra: dict) -> CellResult:
        from lib.tasks.path_star import path_accuracy

        value = {s: path_accuracy(predicted[s].to(b.answers.device), b) for s, b in self.evals.items()}
        return CellResult("path_star", method, seed, float(lr), value["test"], value["val"], self.model.n_params(), passes,
                          time.perf_counter() - self.start, extra)


def run_sequence_model(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """``baseline`` and ``reversed``, ``pause`` / ``dense`` (two fillers before the path, dense at
    depth 2), ``encdec``, ``planning`` and ``planning_scored`` (the future loss only at the ANSWER
    marker, whose future is the whole path)."""
    from lib.core.training import TrainConfig, train
    from lib.methods.dense import generate_with_dense, unrolled_loss
    from lib.methods.encdec import ce_loss_fn, planning_loss_fn
    from lib.tasks.path_star import greedy_answers, sample_path_star

    s = _Setup(method, seed, size, device)
    spec, k, model = s.spec, s.k, s.model
    n_fill = k if method in ("pause", "dense") else 0
    filler = s.ids["dense"] if method == "dense" else s.ids["pause"]

    def batch_fn(step):
        b = sample_path_star(spec, BATCH, s.gen, reverse=s.reverse).to(device)
        return with_fillers(b, n_fill, filler) if n_fill else b

    if method == "planning":
        loss_fn = planning_loss_fn(PLANNING["lam"], spec.path_len, PLANNING["kind"])
    elif method == "planning_scored":
        loss_fn = planning_loss_fn(PLANNING["lam"], spec.path_len, PLANNING["kind"], scored_only=True)
    elif method == "dense":
        loss_fn = lambda m, b: unrolled_loss(m, b.tokens, b.targets, filler, k)  # noqa: E731
    else:
        loss_fn = ce_loss_fn
    train_cfg = TrainConfig(max_steps=size.path_steps, lr=lr, warmup_steps=min(20, size.path_steps), min_lr_ratio=1.0,
                            weight_decay=0.0, eval_interval=size.path_steps, progress=False)
    train(model, batch_fn, train_cfg, loss_fn=loss_fn)
    predicted = {}
    for split, b in s.evals.items():
        if n_fill:
            prompt = with_fillers(b, n_fill, filler).tokens[:, : spec.prompt_len + n_fill]
            out_tokens, _ = generate_with_dense(model, prompt, spec.path_len, s.ids["dense"])  # pause rows carry no dense id
            predicted[split] = out_tokens[:, prompt.shape[1]:]
        else:
            predicted[split] = greedy_answers(model, b, use_kv_cache=False)
    return s.finish(method, seed, lr, predicted, 1.0 + (k if method == "dense" else 0), {})


def run_thoughts(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """``thoughts``: notebook 06's recipe, thoughts only before the path."""
    from lib.methods.thought_training import generate_with_thoughts, train_thinker
    from lib.tasks.path_star import sample_path_star

    s = _Setup(method, seed, size, device)
    spec, ids, model = s.spec, s.ids, s.model
    pool = sample_path_star(spec, size.path_steps * BATCH, s.gen).to(device)
    lengths = torch.full((pool.tokens.shape[0],), spec.seq_len, device=device)
    answer = pool.targets.roll(1, dims=1) != -100
    first_gap = spec.prompt_len  # before the path: where pause and dense tokens go
    out = train_thinker(model, pool.tokens, lengths, answer, size.path_steps, BATCH, ids["thought"], ids["pause"],
                        seed=seed, lr=lr, first_gap=first_gap)
    max_rank = thinker_eval_rank(model, pool.tokens, lengths, ids["thought"], out["thoughts_per_row"], first_gap)
    extra = {"survivor_thoughts_per_row": out["thoughts_per_row"]}
    predicted = {}
    for split, b in s.evals.items():
        predicted[split], used = generate_with_thoughts(model, b.tokens[:, : spec.prompt_len], spec.path_len, ids["thought"],
                                                        max_rank, THOUGHT_BUDGET, first_gap=first_gap)
        extra[f"{split}_thoughts_per_row"] = used.float().mean().item()
    return s.finish(method, seed, lr, predicted, 1.0, extra)


def path_star_references(size: Size) -> dict:
    from lib.tasks.references import path_star_plateau

    spec = path_star_setup()[0]
    return {"one_over_degree": path_star_plateau(spec.degree), "plateau_fraction_needed": 0.9, "reversed_needed": 0.9}
