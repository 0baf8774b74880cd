"""Pointer chasing on tables no training question used (:mod:`lib.tasks.pointer_splits`): mean answer
accuracy over the trained hop counts on unseen test tables (``value``), and over deeper hop counts
than any training question asked, on the same unseen tables (``ood_value``).

How deep each arm may think out of distribution: dense tokens get ``h - 1`` of them for ``h`` hops
and are unrolled exactly (one pass per dense token), as deep as the question needs; pause tokens
get ``h - 1`` pauses; the looped block keeps its 3 passes (its depth is fixed by its weights),
while the looped block with input injection runs ``h`` loops on the deeper questions (3 in
distribution, as trained); the others answer in one pass. One run function per family of arms, each ``(method, seed, size,
device, lr) -> CellResult``; :mod:`.registry` says which arm uses which."""

from __future__ import annotations

import time

import torch

from .parts import widest_gpt_within
from .spec import DEEP_LAYERS, LOOPS, PLANNING, CellResult, Size

FILLER = {"baseline": "none", "pause": "pause", "dense": "dense", "looped": "none", "deeper": "none", "pause_deeper": "pause"}
ENCDEC_WIDTH = 40  # the widest 1 + 1 encoder-decoder with no more parameters than the 1-layer GPT (checked by a test)
QUESTION_SEED = 4321  # the fixed evaluation questions (lib.tasks.pointer_splits.pointer_eval_sets)
BATCH = 64


def unseen_task():
    from lib.tasks.pointer_splits import PointerSplitSpec

    return PointerSplitSpec()


def _finish(method: str, seed: int, lr: float, model, passes: float, extra: dict, start: float, accuracy: dict) -> CellResult:
    mean = {s: sum(a.values()) / len(a) for s, a in accuracy.items()}
    extra["by_hops"] = accuracy["test"]
    extra["ood_by_hops"] = accuracy["test_ood"]
    return CellResult("pointer_unseen", method, seed, float(lr), mean["test"], mean["val"], model.n_params(), passes,
                      time.perf_counter() - start, extra, ood_value=mean["test_ood"])


@torch.no_grad()
def _accuracy(model, task, filler: str, n_per_hop: int, device, logits_fn=None) -> dict[str, dict[int, float]]:
    """Per split ("val", "test", "test_ood") and hop count: answer accuracy, dense rows unrolled
    exactly (``logits_fn(model, batch)``: how the arm reads a batch, default the plain or dense forward)."""
    from lib.core import checks
    from lib.experiments.pointer_runs import pointer_logits
    from lib.tasks.pointer_splits import pointer_eval_sets
    from lib.tasks.pointer_task import answer_accuracy

    read = logits_fn or pointer_logits
    sets = pointer_eval_sets(task, n_per_hop, QUESTION_SEED, filler)
    with checks.eval_mode(model):
        return {split: {h: answer_accuracy(read(model, b.to(device)), b.to(device)) for h, b in by_hop.items()}
                for split, by_hop in sets.items()}


def _train_config(steps: int, lr: float):
    from lib.core.training import TrainConfig

    return TrainConfig(max_steps=steps, lr=lr, warmup_steps=min(20, steps // 10), eval_interval=steps, progress=False)


def run_filler(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """The 1-layer GPT with no filler, pause or dense tokens (``h - 1`` of them, dense unrolled
    exactly: depth ``train_hops - 1`` in training), the looped block, and the deeper GPT."""
    from lib.core.model import GPT
    from lib.core.training import train
    from lib.methods.dense import unrolled_forward
    from lib.methods.encdec import _count_params
    from lib.methods.looped import LoopedGPT
    from lib.tasks.pointer_splits import sample_pointer_split
    from lib.tasks.pointer_task import pointer_model_config

    start = time.perf_counter()
    task = unseen_task()
    spec, filler = task.spec, FILLER[method]
    base = pointer_model_config(spec)
    torch.manual_seed(seed)
    if method == "looped":
        model = LoopedGPT(base, LOOPS)
    elif method in ("deeper", "pause_deeper"):
        model = GPT(widest_gpt_within(base, DEEP_LAYERS, _count_params(GPT, base)))
    else:
        model = GPT(base)
    model = model.to(device)
    gen = torch.Generator().manual_seed(seed)
    depth = task.train_hops - 1  # the most dense tokens a training question has: exact

    def loss_fn(m, batch):
        if filler != "dense":
            return m(batch.tokens, return_type="loss", targets=batch.targets)
        return GPT.loss(unrolled_forward(m, batch.tokens, spec.dense_id, depth).logits, targets=batch.targets)

    train(model, lambda step: sample_pointer_split(task, BATCH, gen, "train", filler).to(device),
          _train_config(size.pointer_unseen_steps, lr), loss_fn=loss_fn)
    accuracy = _accuracy(model, task, filler, size.eval_questions, device)
    passes = 1.0 + (depth if filler == "dense" else 0) + (LOOPS - 1 if method == "looped" else 0)
    return _finish(method, seed, lr, model, passes, {}, start, accuracy)


def run_written(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """The controls that separate what a dense token feeds back: ``cot`` writes the ``h - 1``
    intermediate nodes as supervised tokens in the dense slots (teacher-forced, one pass a step;
    at test it writes them itself, one pass each); ``token_feedback`` feeds each slot the
    embedding of the token predicted before it instead of the hidden state (straight-through),
    unrolled exactly as the dense arm. Both cost ``h`` passes for a question of ``h`` hops, as
    dense tokens do."""
    from lib.core.model import GPT
    from lib.core.training import train
    from lib.methods.chain_of_thought import greedy_chain_logits, written_chain
    from lib.methods.token_feedback import token_feedback_logits
    from lib.tasks.pointer_splits import sample_pointer_split
    from lib.tasks.pointer_task import exact_depth, pointer_model_config

    start = time.perf_counter()
    task = unseen_task()
    spec = task.spec
    torch.manual_seed(seed)
    model = GPT(pointer_model_config(spec)).to(device)
    gen = torch.Generator().manual_seed(seed)
    depth = task.train_hops - 1

    if method == "cot":
        def loss_fn(m, batch):
            tokens, targets = written_chain(batch)
            return m(tokens, return_type="loss", targets=targets)

        read, passes = (lambda m, b: greedy_chain_logits(m, b)), 1.0
    else:
        def loss_fn(m, batch):
            return GPT.loss(token_feedback_logits(m, batch.tokens, spec.dense_id, depth), targets=batch.targets)

        read, passes = (lambda m, b: token_feedback_logits(m, b.tokens, spec.dense_id, exact_depth(b))), 1.0 + depth
    train(model, lambda step: sample_pointer_split(task, BATCH, gen, "train", "dense").to(device),
          _train_config(size.pointer_unseen_steps, lr), loss_fn=loss_fn)
    accuracy = _accuracy(model, task, "dense", size.eval_questions, device, read)
    extra = {"passes_per_question": {"in_distribution": sum(task.id_hops) / len(task.id_hops),
                                     "ood": sum(task.ood_hops) / len(task.ood_hops)}}
    return _finish(method, seed, lr, model, passes, extra, start, accuracy)


def run_curriculum(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """``coconut`` and ``pause_curriculum`` (:mod:`lib.methods.curriculum`): ``train_hops`` stages
    of equal length, stage ``k`` with the first ``k`` slots latent and the rest written and
    supervised; at test every slot is latent (dense tokens unrolled exactly, or pause tokens in
    one pass), scored on the answer as the dense and pause arms are."""
    from lib.core.model import GPT
    from lib.core.training import train
    from lib.methods.curriculum import curriculum_stage, latent_depth, staged_chain
    from lib.methods.dense import unrolled_forward
    from lib.tasks.pointer_splits import sample_pointer_split
    from lib.tasks.pointer_task import pointer_model_config

    start = time.perf_counter()
    task = unseen_task()
    spec, steps = task.spec, size.pointer_unseen_steps
    latent = "dense" if method == "coconut" else "pause"
    n_stages = task.train_hops  # 0 .. train_hops - 1 latent slots
    torch.manual_seed(seed)
    model = GPT(pointer_model_config(spec)).to(device)
    gen = torch.Generator().manual_seed(seed)

    def batch_fn(step):
        batch = sample_pointer_split(task, BATCH, gen, "train", "dense").to(device)
        return staged_chain(batch, curriculum_stage(step, steps, n_stages), latent)

    def loss_fn(m, staged):
        tokens, targets = staged
        if latent == "pause":
            return m(tokens, return_type="loss", targets=targets)
        return GPT.loss(unrolled_forward(m, tokens, spec.dense_id, latent_depth(tokens, spec.dense_id)).logits,
                        targets=targets)

    train(model, batch_fn, _train_config(steps, lr), loss_fn=loss_fn)
    accuracy = _accuracy(model, task, latent, size.eval_questions, device)
    # training passes per step, averaged over the stages (stage k unrolls k dense tokens)
    passes = 1.0 + (sum(range(n_stages)) / n_stages if latent == "dense" else 0.0)
    extra = {"stages": n_stages, "steps_per_stage": steps / n_stages}
    return _finish(method, seed, lr, model, passes, extra, start, accuracy)


def run_looped_injected(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """The looped block with input injection (:class:`lib.methods.looped.InjectedLoopedGPT`),
    trained with :data:`LOOPS` loops; at test it runs ``max(LOOPS, h)`` loops on questions of ``h``
    hops, so out of distribution it may think as deep as the question needs, as dense tokens do."""
    from lib.core.training import train
    from lib.methods.looped import InjectedLoopedGPT, with_loops
    from lib.tasks.pointer_splits import sample_pointer_split
    from lib.tasks.pointer_task import pointer_model_config

    start = time.perf_counter()
    task = unseen_task()
    torch.manual_seed(seed)
    model = InjectedLoopedGPT(pointer_model_config(task.spec), LOOPS).to(device)
    gen = torch.Generator().manual_seed(seed)
    train(model, lambda step: sample_pointer_split(task, BATCH, gen, "train", "none").to(device),
          _train_config(size.pointer_unseen_steps, lr),
          loss_fn=lambda m, b: m(b.tokens, return_type="loss", targets=b.targets))

    def read(m, b):
        with with_loops(m, max(LOOPS, int(b.hops.max()))):
            return m(b.tokens)

    accuracy = _accuracy(model, task, "none", size.eval_questions, device, read)
    extra = {"test_loops": {"in_distribution": LOOPS, "ood": [max(LOOPS, h) for h in task.ood_hops]}}
    return _finish(method, seed, lr, model, float(LOOPS), extra, start, accuracy)


def run_encdec(method: str, seed: int, size: Size, device, lr: float) -> CellResult:
    """``encdec`` (lam 0), ``planning`` (the future of every position, horizon 2) and
    ``planning_scored`` (only at the position that predicts the answer, horizon 1)."""
    from lib.core.training import train
    from lib.methods.encdec import EncDecConfig, EncoderDecoderGPT, planning_loss_fn
    from lib.tasks.pointer_splits import sample_pointer_split

    start = time.perf_counter()
    task = unseen_task()
    spec, d = task.spec, ENCDEC_WIDTH
    cfg = EncDecConfig(d_vocab=spec.vocab_size, n_ctx=spec.seq_len("dense"), d_model=d, n_enc_layers=1, n_dec_layers=1,
                       n_heads=4, d_head=d // 4, d_mlp=4 * d)
    torch.manual_seed(seed)
    model = EncoderDecoderGPT(cfg).to(device)
    gen = torch.Generator().manual_seed(seed)
    lam = 0.0 if method == "encdec" else PLANNING["lam"]
    horizon = 1 if method == "planning_scored" else 2
    train(model, lambda step: sample_pointer_split(task, BATCH, gen, "train", "none").to(device),
          _train_config(size.pointer_unseen_steps, lr),
          loss_fn=planning_loss_fn(lam, horizon, PLANNING["kind"], scored_only=method == "planning_scored"))
    return _finish(method, seed, lr, model, 1.0, {}, start, _accuracy(model, task, "none", size.eval_questions, device))


def unseen_references(size: Size) -> dict:
    from lib.tasks.references import pointer_chance

    task = unseen_task()
    return {"chance": pointer_chance(task.n_nodes), "one_hop_needed": 0.9, "train_hops": list(task.id_hops),
            "ood_hops": list(task.ood_hops)}


def unseen_splits(size: Size, seeds: tuple[int, ...]) -> dict:
    """The measured overlap between the training questions of every reported seed's stream and the
    evaluation questions (in distribution and out): 0 by construction, counted anyway."""
    from lib.tasks.pointer_splits import pointer_eval_sets, sample_pointer_split
    from lib.tasks.splits import split_overlap

    task = unseen_task()

    def streams():  # each seed's training questions, drawn exactly as its runs draw them
        for s in seeds:
            gen = torch.Generator().manual_seed(s)
            for _ in range(size.pointer_unseen_steps):
                yield sample_pointer_split(task, BATCH, gen, "train", "none")

    train = list(streams())
    sets = pointer_eval_sets(task, size.eval_questions, QUESTION_SEED, "none")
    return {split: split_overlap(train, list(by_hop.values())) for split, by_hop in sets.items()}
