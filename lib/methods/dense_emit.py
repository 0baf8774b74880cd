"""Learning when to emit ``<|dense|>``: the model chooses how many dense steps to take.

Seed 000's inference rule passes the hidden state on only where ``<|dense|>`` is sampled. Until
now every dense token was placed by hand and the position before it had no target, so the model
never decided *when* to think. Here the dense token becomes a target:

1. **Budgets** (:func:`budget_rows`): a question's prompt, ``k`` dense tokens, then the answer.
   Trained with random ``k`` (0 .. ``max_dense``) and only the answer as target, a model learns
   to *use* however many dense tokens it is given (the teacher).
2. **Scoring** (:func:`useful_counts`): for each training question, the fewest dense tokens with
   which the teacher gives the answer a probability of at least ``threshold``; ``max_dense``
   if none does. The hop count is never read: only the teacher's answers are.
3. **Emission** (:func:`budget_rows` with ``emit=True``): the scored count of dense tokens become
   targets too, so the model learns to write ``<|dense|>`` as often as scoring found useful, then
   the answer.
4. **Free generation** (:func:`generate_adaptive`): the model writes ``<|dense|>`` (its vector fed
   back at the next position) until it writes something else, its answer, or until ``max_dense``
   dense tokens, after which the answer is forced. Forward passes per question: 1 + dense emitted.

:func:`train_adaptive` runs 1-3 on one schedule of optimizer steps; :func:`train_fixed_budget`
trains the comparison, a model always given ``k`` dense tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from lib.core.checks import check_choice, check_int, check_tensor, check_token_ids, eval_mode
from lib.methods.dense import add_dense_vectors, hidden_and_logits, unrolled_forward

# How train_adaptive's teacher phase draws budgets: one per question, or one per batch.
TEACHER_BUDGETS = ("question", "batch")

# --------------------------------------------------------------------------- checks


def _check_rows(prompt, answers) -> None:
    check_token_ids(prompt, "prompt", ndim=2)
    check_token_ids(answers, "answers", ndim=1)
    if answers.shape[0] != prompt.shape[0]:
        raise ValueError(f"answers has {answers.shape[0]} rows, prompt has {prompt.shape[0]}")
    if prompt.shape[1] == 0:
        raise ValueError("prompt must hold at least one token")


# --------------------------------------------------------------------------- rows
def budget_rows(
    prompt: Int[Tensor, "batch prompt_len"],
    answers: Int[Tensor, " batch"],
    counts: Int[Tensor, " batch"],
    dense_id: int,
    pad_id: int,
    emit: bool = False,
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """Rows ``prompt, <|dense|> x counts[b], answer``, right-padded with ``pad_id`` to
    ``prompt_len + max(counts) + 1``, and their targets: the answer at the position before it;
    with ``emit=True`` also ``<|dense|>`` at the positions before each dense token (the model
    learns to write them); -100 everywhere else."""
    _check_rows(prompt, answers)
    check_tensor(counts, "counts", ndim=1, dtype="int")
    if counts.shape[0] != prompt.shape[0]:
        raise ValueError(f"counts has {counts.shape[0]} rows, prompt has {prompt.shape[0]}")
    if counts.numel() and int(counts.min()) < 0:
        raise ValueError("counts must be >= 0")
    if not isinstance(emit, bool):
        raise TypeError(f"emit must be a bool, got {emit!r}")
    B, P = prompt.shape
    width = P + (int(counts.max()) if B else 0) + 1
    pos = torch.arange(width, device=prompt.device)[None]
    counts = counts.to(prompt.device)[:, None]
    answer_pos = P + counts  # [batch, 1]
    tokens = torch.full((B, width), pad_id, dtype=prompt.dtype, device=prompt.device)
    tokens[:, :P] = prompt
    tokens = torch.where((pos >= P) & (pos < answer_pos), torch.full_like(tokens, dense_id), tokens)
    tokens = torch.where(pos == answer_pos, answers.to(prompt.device)[:, None].to(tokens.dtype), tokens)
    targets = torch.full((B, width), -100, dtype=torch.long, device=prompt.device)
    targets = torch.where(pos == answer_pos - 1, answers.to(prompt.device)[:, None].long(), targets)
    if emit:
        targets = torch.where((pos >= P - 1) & (pos < answer_pos - 1), torch.full_like(targets, dense_id), targets)
    return tokens, targets


@torch.no_grad()
def answer_probs_by_budget(
    model, prompt: Int[Tensor, "batch prompt_len"], answers: Int[Tensor, " batch"], dense_id: int, pad_id: int,
    max_dense: int, batch_size: int = 512,
) -> Float[Tensor, "batch budgets"]:
    """``[batch, max_dense + 1]``: the probability the model gives each row's answer when the
    prompt is followed by ``k`` dense tokens (column ``k``), every forward exact (``k`` passes
    that make vectors). The dense token's own logit is left out of the softmax: with a fixed
    budget the answer comes next, whatever the model would rather write."""
    _check_rows(prompt, answers)
    check_int(max_dense, "max_dense", min=0)
    check_int(batch_size, "batch_size", min=1)
    with eval_mode(model):
        out = torch.empty(prompt.shape[0], max_dense + 1, device=prompt.device)
        P = prompt.shape[1]
        for s in range(0, prompt.shape[0], batch_size):
            p, a = prompt[s : s + batch_size], answers[s : s + batch_size]
            for k in range(max_dense + 1):
                tokens, _ = budget_rows(p, a, torch.full_like(a, k), dense_id, pad_id)
                logits = unrolled_forward(model, tokens, dense_id, k).logits[:, P + k - 1]
                logits = logits.index_fill(-1, torch.tensor([dense_id], device=logits.device), float("-inf"))
                out[s : s + batch_size, k] = logits.softmax(-1).gather(1, a[:, None].long())[:, 0]
    return out


def useful_counts(
    probs: Float[Tensor, "batch budgets"], threshold: float = 0.5
) -> Int[Tensor, " batch"]:
    """The fewest dense tokens with which the answer's probability reaches ``threshold`` (from
    :func:`answer_probs_by_budget`); the largest budget when none does."""
    if not isinstance(probs, Tensor) or not probs.is_floating_point() or probs.ndim != 2 or probs.shape[1] == 0:
        raise TypeError("probs must be a floating-point tensor [batch, budgets] with at least one budget")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold!r}")
    ok = probs >= threshold
    first = ok.float().argmax(dim=1)  # the first True (0 when none)
    return torch.where(ok.any(dim=1), first, torch.full_like(first, probs.shape[1] - 1))


# --------------------------------------------------------------------------- generation
@dataclass
class AdaptiveAnswers:
    answers: Tensor  # [batch] the first token that is not <|dense|>
    n_dense: Tensor  # [batch] dense tokens written before it

    @property
    def passes(self) -> Tensor:
        """[batch] forward passes each answer cost after the prompt: one per dense token, one for the answer."""
        return self.n_dense + 1


@torch.no_grad()
def generate_adaptive(
    model, prompt: Int[Tensor, "batch prompt_len"], dense_id: int, max_dense: int
) -> AdaptiveAnswers:
    """Greedy free generation after ``prompt``: while a row's best next token is ``<|dense|>``
    (and it has written fewer than ``max_dense``), it writes one and the hidden state of the
    position before enters there with it; the first other token is its answer. After
    ``max_dense`` dense tokens the answer is forced (the dense logit is masked). One position per
    step with a KV cache: every forward is exact."""
    check_token_ids(prompt, "prompt", ndim=2)
    check_int(max_dense, "max_dense", min=0)
    if isinstance(dense_id, bool) or not isinstance(dense_id, int) or not 0 <= dense_id < model.cfg.d_vocab:
        raise ValueError(f"dense_id must be a token id in [0, {model.cfg.d_vocab}), got {dense_id!r}")
    B, P = prompt.shape
    if P == 0:
        raise ValueError("prompt must hold at least one token")
    if P + max_dense > model.cfg.n_ctx:
        raise ValueError(f"prompt + max_dense = {P + max_dense} exceeds n_ctx = {model.cfg.n_ctx}")
    with eval_mode(model):
        cache = model.new_kv_cache()
        hidden, logits = hidden_and_logits(model, model.embed(prompt), kv_cache=cache)
        last_hidden, last_logits = hidden[:, -1], logits[:, -1]
        answers = torch.full((B,), -1, dtype=torch.long, device=prompt.device)
        n_dense = torch.zeros(B, dtype=torch.long, device=prompt.device)
        done = torch.zeros(B, dtype=torch.bool, device=prompt.device)
        dense = torch.tensor([dense_id], device=prompt.device)
        for step in range(max_dense + 1):
            best = last_logits.argmax(-1)
            forced = last_logits.index_fill(-1, dense, float("-inf")).argmax(-1)
            think = ~done & (best == dense_id) & (n_dense < max_dense)
            answering = ~done & ~think
            answers = torch.where(answering, torch.where(best == dense_id, forced, best), answers)
            done = done | answering
            n_dense = n_dense + think.long()
            if bool(done.all()) or step == max_dense:
                break
            # Every row advances one position (finished rows feed a dense token that nobody reads).
            token = torch.full((B, 1), dense_id, dtype=prompt.dtype, device=prompt.device)
            embeds = add_dense_vectors(model.embed(token), last_hidden[:, None], torch.ones(B, 1, dtype=torch.bool, device=prompt.device))
            h, lg = hidden_and_logits(model, embeds, kv_cache=cache)
            last_hidden, last_logits = h[:, -1], lg[:, -1]
    return AdaptiveAnswers(answers, n_dense)


# --------------------------------------------------------------------------- training
@dataclass
class AdaptiveRun:
    model: object
    counts: Tensor  # [n] the dense tokens scoring found useful for each training question of phase 2
    count_hops: Tensor  # [n] those questions' hop counts (for reporting only; never trained on)
    steps: tuple[int, int]  # optimizer steps of phase 1 (budgets) and phase 2 (emission)


def _question_parts(batch) -> tuple[Tensor, Tensor]:
    """Prompt (table, QUERY, HOP, x) and answer of a pointer batch sampled with filler "none"."""
    if batch.filler != "none":
        raise ValueError(f"pointer questions must be sampled with filler 'none', got {batch.filler!r}")
    P = batch.spec.n_nodes + 3
    return batch.tokens[:, :P], batch.answers


def _check_teacher_start(teacher_start, steps: int, max_dense: int) -> tuple[int, int]:
    # (steps at one budget before the draw, that budget); (0, 0) where there is none
    if teacher_start is None:
        return 0, 0
    if not isinstance(teacher_start, tuple) or len(teacher_start) != 2 or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in teacher_start):
        raise ValueError(f"teacher_start must be None or a pair of ints (steps, budget), got {teacher_start!r}")
    start, budget = teacher_start
    if not 1 <= start < steps // 2:
        raise ValueError(f"teacher_start's steps must lie in [1, {steps // 2}) (inside the first half), got {start}")
    if not 0 <= budget <= max_dense:
        raise ValueError(f"teacher_start's budget must lie in [0, {max_dense}] (max_dense), got {budget}")
    return start, budget


Questions = Callable[[int, torch.Generator, "int | None"], object]  # (count, generator, hops or None) -> PointerBatch


def _questions(spec, questions: Questions | None) -> Questions:
    # where questions come from: pointer chasing on spec (hops drawn per row when None), or the caller's source
    from lib.tasks.pointer_task import PointerSpec, sample_pointer_batch

    if not isinstance(spec, PointerSpec):
        raise TypeError(f"spec must be a PointerSpec, got {type(spec).__name__}")
    if questions is None:
        return lambda n, generator, hops: sample_pointer_batch(spec, n, generator, "none", hops)
    if not callable(questions):
        raise TypeError(f"questions must be callable (count, generator, hops) -> PointerBatch, got {type(questions).__name__}")
    return questions


def train_adaptive(
    model, spec, steps: int, batch_size: int, lr: float, seed: int, max_dense: int, threshold: float = 0.5,
    device: torch.device | str = "cpu", questions: Questions | None = None, shuffle_counts: bool = False,
    teacher_budgets: str = "question", teacher_start: tuple[int, int] | None = None,
) -> AdaptiveRun:
    """Train ``model`` on pointer questions of mixed hop counts (``spec``; ``questions``: another
    source laid out on ``spec``, e.g. :func:`lib.tasks.pointer_until.sample_until`'s training
    split): the first half of the ``steps`` with a random budget of 0..``max_dense`` dense tokens
    per question (answer only as target), then :func:`useful_counts` on the second half's questions
    with the model as it is (the teacher), then the second half with those counts of dense tokens
    as targets. Every forward in training is exact (``max_dense`` passes that make vectors).
    ``shuffle_counts``: the control, the same counts shuffled across the questions (seeded by
    ``seed``), so a model taught them can only learn how often to emit, not for which question.
    ``teacher_budgets``: ``"question"`` draws the first half's budget per question; ``"batch"`` draws
    one per batch, so every step trains one unrolled depth at a time (on the until-marked task's
    tuning seed a per-question mix taught "write the most" almost everywhere; one per batch did not).
    ``teacher_start``: ``(steps, budget)``, the first half's first ``steps`` train every question at
    ``budget`` dense tokens before any budget is drawn (on some seeds a model asked for every depth
    from the first step never learned to use any in the first half; :mod:`lib.experiments.adaptive_until`
    says where this was measured)."""
    from lib.core.training import TrainConfig, train

    draw = _questions(spec, questions)
    if not isinstance(shuffle_counts, bool):
        raise TypeError(f"shuffle_counts must be a bool, got {shuffle_counts!r}")
    check_choice(teacher_budgets, "teacher_budgets", TEACHER_BUDGETS)
    check_int(steps, "steps", min=2)
    check_int(batch_size, "batch_size", min=1)
    check_int(max_dense, "max_dense", min=0)
    start_steps, start_budget = _check_teacher_start(teacher_start, steps, max_dense)
    if spec.n_nodes + 3 + max_dense + 1 > model.cfg.n_ctx:
        raise ValueError(f"the model's n_ctx = {model.cfg.n_ctx} cannot hold a prompt, {max_dense} dense tokens and the answer")
    gen = torch.Generator().manual_seed(seed)
    half = steps // 2
    pool = draw((steps - half) * batch_size, torch.Generator().manual_seed(seed + 10_000), None).to(device)
    pool_prompt, pool_answers = _question_parts(pool)
    state: dict = {}

    def batch_fn(step: int):
        if step < half:
            b = draw(batch_size, gen, None).to(device)
            p, a = _question_parts(b)
            if step < start_steps:
                counts = torch.full((batch_size,), start_budget, dtype=torch.long, device=device)
            elif teacher_budgets == "batch":
                counts = torch.randint(0, max_dense + 1, (1,), generator=gen).expand(batch_size).to(device)
            else:
                counts = torch.randint(0, max_dense + 1, (batch_size,), generator=gen).to(device)
            return budget_rows(p, a, counts, spec.dense_id, spec.pad_id)
        if "counts" not in state:  # the switch: score the second half's questions with the teacher
            probs = answer_probs_by_budget(model, pool_prompt, pool_answers, spec.dense_id, spec.pad_id, max_dense)
            state["counts"] = useful_counts(probs, threshold)
            if shuffle_counts:
                order = torch.randperm(len(state["counts"]), generator=torch.Generator().manual_seed(seed + 20_000))
                state["counts"] = state["counts"][order.to(state["counts"].device)]
        idx = slice((step - half) * batch_size, (step - half + 1) * batch_size)
        return budget_rows(pool_prompt[idx], pool_answers[idx], state["counts"][idx], spec.dense_id, spec.pad_id, emit=True)

    def loss_fn(m, batch):
        tokens, targets = batch
        return type(m).loss(unrolled_forward(m, tokens, spec.dense_id, max_dense).logits, targets=targets)

    cfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=min(20, steps // 10), eval_interval=steps, progress=False)
    train(model, batch_fn, cfg, loss_fn=loss_fn)
    return AdaptiveRun(model, state["counts"], pool.hops, (half, steps - half))


def train_fixed_budget(
    model, spec, steps: int, batch_size: int, lr: float, seed: int, budget: int, device: torch.device | str = "cpu",
    questions: Questions | None = None,
):
    """The comparison: every question gets exactly ``budget`` dense tokens (answer only as target),
    whatever its hop count, on questions drawn from ``questions`` (as :func:`train_adaptive` draws
    them, with the same seed and schedule; the adaptive model's streams part where its teacher
    draws a budget from the same generator)."""
    from lib.core.training import TrainConfig, train

    draw = _questions(spec, questions)
    check_int(steps, "steps", min=1)
    check_int(budget, "budget", min=0)
    gen = torch.Generator().manual_seed(seed)

    def batch_fn(step: int):
        p, a = _question_parts(draw(batch_size, gen, None).to(device))
        return budget_rows(p, a, torch.full_like(a, budget), spec.dense_id, spec.pad_id)

    def loss_fn(m, batch):
        tokens, targets = batch
        return type(m).loss(unrolled_forward(m, tokens, spec.dense_id, budget).logits, targets=targets)

    cfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=min(20, steps // 10), eval_interval=steps, progress=False)
    train(model, batch_fn, cfg, loss_fn=loss_fn)
    return model


@torch.no_grad()
def fixed_budget_accuracy(model, spec, budget: int, question_seed: int, n_questions: int, device="cpu",
                          questions: Questions | None = None) -> dict[int, float]:
    """Per-hop accuracy with exactly ``budget`` dense tokens before the answer (the dense logit
    masked at the answer position), on the questions :func:`adaptive_accuracy` uses."""
    draw = _questions(spec, questions)
    check_int(budget, "budget", min=0)
    with eval_mode(model):
        out = {}
        for hops in range(1, spec.max_hops + 1):
            b = draw(n_questions, torch.Generator().manual_seed(question_seed + hops), hops).to(device)
            p, a = _question_parts(b)
            tokens, _ = budget_rows(p, a, torch.full_like(a, budget), spec.dense_id, spec.pad_id)
            logits = unrolled_forward(model, tokens, spec.dense_id, budget).logits[:, p.shape[1] + budget - 1]
            logits = logits.index_fill(-1, torch.tensor([spec.dense_id], device=logits.device), float("-inf"))
            out[hops] = (logits.argmax(-1) == a).float().mean().item()
    return out


@torch.no_grad()
def adaptive_accuracy(model, spec, max_dense: int, question_seed: int, n_questions: int, device="cpu",
                      questions: Questions | None = None) -> dict[int, dict]:
    """Per hop count (1 .. ``spec.max_hops``): accuracy of free generation
    (:func:`generate_adaptive`), mean dense tokens written and mean forward passes per question, on
    fresh questions (from ``questions``, e.g. a test split) seeded by ``question_seed + hops``."""
    draw = _questions(spec, questions)
    out = {}
    for hops in range(1, spec.max_hops + 1):
        b = draw(n_questions, torch.Generator().manual_seed(question_seed + hops), hops).to(device)
        p, a = _question_parts(b)
        gen = generate_adaptive(model, p, spec.dense_id, max_dense)
        out[hops] = {"accuracy": (gen.answers == a).float().mean().item(), "dense": gen.n_dense.float().mean().item(),
                     "passes": gen.passes.float().mean().item(),
                     "dense_hist": [(gen.n_dense == k).float().mean().item() for k in range(max_dense + 1)]}
    return out


# --------------------------------------------------------------------------- the experiment: hops 1-4 in one model
HOPS_MAX = 4  # hop counts 1..4 in one model
BUDGETS = (0, 1, 2, 3, 4)  # the fixed budgets it is compared with (and the adaptive model's most)


def adaptive_experiment(
    spec, seeds: tuple[int, ...], steps: int, budgets: tuple[int, ...], batch_size: int = 64, lr: float = 3e-3,
    n_questions: int = 300, question_seed: int = 1234, device: torch.device | str = "cpu", progress: bool = True,
    train_questions: Questions | None = None, test_questions: Questions | None = None, desc: str = "adaptive experiment",
    threshold: float = 0.5, max_dense: int | None = None, shuffled_control: bool = False,
    teacher_budgets: str = "question", teacher_start: tuple[int, int] | None = None,
) -> dict:
    """Per seed, a 1-layer model that emits its own dense tokens (:func:`train_adaptive`, up to
    ``max(budgets)``) and one model per fixed budget (:func:`train_fixed_budget`), the same
    architecture, steps and learning rate, trained on ``train_questions`` (pointer chasing on
    ``spec`` when None) and scored per hop count 1 .. ``spec.max_hops`` on ``test_questions``.
    Returns per seed the adaptive model's accuracy, dense tokens written (mean and histogram) and
    passes per hop, the counts scoring found useful per hop of its training questions, and each
    fixed budget's accuracy per hop. ``threshold``: the answer probability a budget must reach to
    count as enough (above what guessing gives); ``max_dense``: the adaptive model's most dense
    tokens (default ``max(budgets)``); ``shuffled_control``: also, per seed, an adaptive model taught
    the same counts shuffled across questions (``"shuffled"``, scored like the adaptive one);
    ``teacher_budgets`` and ``teacher_start``: as :func:`train_adaptive` has them, for both."""
    from tqdm.auto import tqdm

    from lib.core.model import GPT
    from lib.tasks.pointer_task import pointer_model_config

    if not isinstance(seeds, tuple) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty tuple of ints >= 0, got {seeds!r}")
    if not isinstance(budgets, tuple) or not budgets or not all(isinstance(b, int) and b >= 0 for b in budgets):
        raise ValueError(f"budgets must be a non-empty tuple of ints >= 0, got {budgets!r}")
    check_int(steps, "steps", min=2)
    check_int(n_questions, "n_questions", min=1)
    check_choice(teacher_budgets, "teacher_budgets", TEACHER_BUDGETS)
    _questions(spec, train_questions), _questions(spec, test_questions)  # checked before any training
    max_dense = max(budgets) if max_dense is None else check_int(max_dense, "max_dense", min=max(budgets))
    _check_teacher_start(teacher_start, steps, max_dense)
    cfg = pointer_model_config(spec)
    cfg = type(cfg)(**{**cfg.to_dict(), "n_ctx": spec.n_nodes + 3 + max_dense + 1})  # room for the largest budget
    out: dict = {"settings": {"seeds": list(seeds), "steps": steps, "batch_size": batch_size, "lr": lr, "n_questions": n_questions,
                              "max_hops": spec.max_hops, "budgets": list(budgets), "threshold": threshold, "n_ctx": cfg.n_ctx},
                 "seeds": {}}
    if max_dense != max(budgets):
        out["settings"]["max_dense"] = max_dense
    if teacher_budgets != "question":  # the stored pointer file predates the choice
        out["settings"]["teacher_budgets"] = teacher_budgets
    if teacher_start is not None:
        out["settings"]["teacher_start"] = list(teacher_start)
    bar = tqdm(total=len(seeds) * (1 + len(budgets) + shuffled_control), desc=desc, disable=not progress)
    for seed in seeds:
        torch.manual_seed(seed)
        model = GPT(cfg).to(device)
        run = train_adaptive(model, spec, steps, batch_size, lr, seed, max_dense, threshold, device, train_questions,
                             teacher_budgets=teacher_budgets, teacher_start=teacher_start)
        bar.update()
        adaptive = adaptive_accuracy(model, spec, max_dense, question_seed, n_questions, device, test_questions)
        hops_trained = sorted(set(run.count_hops.tolist()))
        useful = {h: float(run.counts[run.count_hops.to(run.counts.device) == h].float().mean()) for h in hops_trained}
        fixed = {}
        for b in budgets:
            torch.manual_seed(seed)
            trained = train_fixed_budget(GPT(cfg).to(device), spec, steps, batch_size, lr, seed, b, device, train_questions)
            fixed[b] = fixed_budget_accuracy(trained, spec, b, question_seed, n_questions, device, test_questions)
            bar.update()
        out["seeds"][seed] = {"adaptive": adaptive, "useful": useful, "fixed": fixed, "n_params": model.n_params()}
        if shuffled_control:
            torch.manual_seed(seed)
            control = GPT(cfg).to(device)
            train_adaptive(control, spec, steps, batch_size, lr, seed, max_dense, threshold, device, train_questions, True,
                           teacher_budgets, teacher_start)
            out["seeds"][seed]["shuffled"] = adaptive_accuracy(control, spec, max_dense, question_seed, n_questions, device,
                                                               test_questions)
            bar.update()
    bar.close()
    return out


def hops_experiment(
    seeds: tuple[int, ...] = (0, 1, 2), steps: int = 600, batch_size: int = 64, lr: float = 3e-3, n_questions: int = 300,
    question_seed: int = 1234, device: torch.device | str = "cpu", progress: bool = True,
) -> dict:
    """Pointer chasing with 1-4 hops in one 1-layer model (the hop count a prompt token):
    :func:`adaptive_experiment` with the fixed budgets :data:`BUDGETS`."""
    from lib.tasks.pointer_task import PointerSpec

    return adaptive_experiment(PointerSpec(max_hops=HOPS_MAX), seeds, steps, BUDGETS, batch_size, lr, n_questions,
                               question_seed, device, progress, desc="hops experiment")


def hops_table(result: dict) -> dict:
    """Means over seeds of :func:`hops_experiment`'s numbers: per hop, the adaptive model's
    accuracy, dense tokens written and the counts scoring found useful; per fixed budget, the
    accuracy per hop, its mean over hops, and its passes per question (budget + 1); and per seed
    the mean accuracy over hops of the adaptive model and of each budget (for :mod:`lib.core.stats`)."""
    if not isinstance(result, dict) or "seeds" not in result or not result["seeds"]:
        raise ValueError("result must come from hops_experiment (a dict with per-seed results)")
    seeds = list(result["seeds"].values())
    hops = sorted(int(h) for h in seeds[0]["adaptive"])
    budgets = sorted(int(b) for b in seeds[0]["fixed"])

    def get(d, k):  # keys are ints fresh from the experiment, strings after a JSON round trip
        return d[k] if k in d else d[str(k)]

    def mean(xs):
        return sum(xs) / len(xs)

    adaptive = {h: {key: mean([get(s["adaptive"], h)[key] for s in seeds]) for key in ("accuracy", "dense", "passes")}
                for h in hops}
    for h in hops:
        adaptive[h]["useful"] = mean([get(s["useful"], h) for s in seeds])
    fixed = {b: {h: mean([get(get(s["fixed"], b), h) for s in seeds]) for h in hops} for b in budgets}
    per_seed_adaptive = [mean([get(s["adaptive"], h)["accuracy"] for h in hops]) for s in seeds]
    per_seed_fixed = {b: [mean([get(get(s["fixed"], b), h) for h in hops]) for s in seeds] for b in budgets}
    return {"hops": hops, "budgets": budgets, "adaptive": adaptive, "fixed": fixed,
            "adaptive_passes": mean([adaptive[h]["passes"] for h in hops]),
            "per_seed_adaptive": per_seed_adaptive, "per_seed_fixed": per_seed_fixed}


def main(argv: list[str] | None = None) -> int:
    """``python -m lib.methods.dense_emit --json data/results/dense_adaptive_hops.json``: the stored experiment."""
    import argparse
    import json
    import sys
    import time

    from lib.core.training import make_reproducible

    parser = argparse.ArgumentParser(description="dense tokens the model emits: hops 1-4 against fixed budgets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    make_reproducible(seed=0, threads=1)
    start = time.perf_counter()
    result = hops_experiment(tuple(args.seeds), args.steps)
    table = hops_table(result)
    for h in table["hops"]:
        a = table["adaptive"][h]
        print(f"hops {h}: adaptive acc {a['accuracy']:.3f}, dense {a['dense']:.2f} (useful {a['useful']:.2f}); fixed "
              + " ".join(f"b{b} {table['fixed'][b][h]:.3f}" for b in table["budgets"]))
    if args.json:
        from pathlib import Path

        from lib.core.provenance import provenance

        command = "python -m lib.methods.dense_emit " + " ".join(sys.argv[1:] if argv is None else argv)
        result["provenance"] = provenance(command, 1, 1, time.perf_counter() - start, "cpu")
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0



__all__ = ["BUDGETS", "HOPS_MAX", "TEACHER_BUDGETS", "AdaptiveAnswers", "AdaptiveRun", "adaptive_accuracy", "adaptive_experiment", "answer_probs_by_budget",
           "budget_rows", "fixed_budget_accuracy", "generate_adaptive", "hops_experiment", "hops_table", "train_adaptive",
           "train_fixed_budget", "useful_counts"]


if __name__ == "__main__":
    raise SystemExit(main())
