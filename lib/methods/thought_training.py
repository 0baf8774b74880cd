"""Training a model to place its own thoughts, and measuring whether it helps.

The recipe (each step one function, so a notebook can show and time each):

1. **Warm-up** (:func:`warmup_batch_fn` + :func:`thought_loss` with ``thought_targets=False``):
   a model that never saw ``<|thought|>`` treats it as noise (its embedding row was never
   trained), so almost any inserted thought hurts. A short fine-tune on rows with thoughts at
   random gaps teaches it to *read past* them, without teaching it to *predict* them.
2. **Episodes** (:func:`collect_survivors`, built on :func:`lib.methods.thoughts.run_episode`): insert,
   score, keep the best; the rows with their kept thoughts are the survivors.
3. **Training on the survivors** (:func:`rows_batch_fn` + :func:`thought_loss` with
   ``thought_targets=True``): thoughts are ordinary targets, so the model learns where to think.
4. **Measurement** (:func:`evaluate_nll`): the model walks held-out rows with
   :func:`lib.methods.thoughts.fast_forward`, inserting thoughts where it ranks them high enough, and only
   the original tokens are scored (thought-masked). The baseline is the same base model trained
   for the same number of steps on the same rows without thoughts, scored on the same tokens.

:func:`train_thinker` runs steps 1-3 as one schedule (:class:`ThinkerSchedule`, episodes with
:data:`PLACEMENT_RULE` at the half-way switch): the course's one recipe, used by notebook 06 and by
the harness of notebook 08. ``with_thoughts=False`` trains the twin, the same schedule without
thoughts. :func:`thinker_max_rank` sets the threshold at which the trained thinker places about
as many thoughts as its survivors had.

Also here: :func:`digit_sum_task`, a small task where a model may insert thoughts before it
answers (``d1 d2 ... = (d1 + d2 + ...) mod 10``).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from lib.core.checks import check_bool, check_int, check_padded_rows, check_tensor, check_token_id, eval_mode
from lib.core.model import GPT
from lib.methods.thoughts import (
    _check_keep,
    _check_n_ctx,
    _check_rule,
    _check_thought_and_pad,
    _check_walk,
    _fast_forward,
    _insert_random_thoughts,
    _original_index,
    _run_episode,
    _text_lp,
    _thought_ranks,
    plain_batch,
    stack_rows,
    thought_gate,
    thought_lm_targets,
)

Batch = tuple[Tensor, Tensor]  # (tokens [batch, pos], lengths [batch])


# --------------------------------------------------------------------------- batches and loss
def thought_loss(model: GPT, batch: Batch, thought_id: int, thought_targets: bool = True) -> Tensor:
    """Mean next-token cross-entropy of right-padded rows (padding ignored). With
    ``thought_targets=False`` the tokens *after* which a thought follows are not scored, so the
    model learns to read thoughts but not to place them."""
    tokens, lengths = batch
    targets = thought_lm_targets(tokens, lengths, thought_id, thought_targets)
    return GPT.loss(model(tokens), targets=targets)


def rows_batch_fn(
    tokens: Int[Tensor, "n pos"], lengths: Int[Tensor, " n"], batch_size: int, seed: int = 0
) -> Callable[[int], Batch]:
    """``step -> (tokens, lengths)``: ``batch_size`` rows drawn at random (with replacement) by a
    generator of its own, cut to the longest row drawn."""
    check_padded_rows(tokens, lengths)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    check_int(seed, "seed", min=0)
    gen = torch.Generator().manual_seed(seed)

    def fn(step: int) -> Batch:
        idx = torch.randint(0, tokens.shape[0], (batch_size,), generator=gen).to(tokens.device)
        rows, lens = tokens[idx], lengths[idx]
        return rows[:, : int(lens.max())], lens

    return fn


def warmup_batch_fn(
    tokens: Int[Tensor, "n pos"],
    lengths: Int[Tensor, " n"],
    batch_size: int,
    n_thoughts: int,
    thought_id: int,
    pad_id: int,
    seed: int = 0,
) -> Callable[[int], Batch]:
    """Like :func:`rows_batch_fn`, with between 0 and ``n_thoughts`` thoughts (uniformly, per
    row) inserted at fresh random gaps of every row drawn (see
    :func:`lib.methods.thoughts.insert_random_thoughts`). Some rows keep no thought, so the model still
    sees plain text: a model warmed up only on rows *with* thoughts reads a plain row as unusual."""
    if isinstance(n_thoughts, bool) or not isinstance(n_thoughts, int) or n_thoughts < 0:
        raise ValueError(f"n_thoughts must be a non-negative int, got {n_thoughts!r}")
    _check_thought_and_pad(thought_id, pad_id)  # here, not at the first step of training
    draw = rows_batch_fn(tokens, lengths, batch_size, seed)
    gen = torch.Generator().manual_seed(seed + 1)

    def fn(step: int) -> Batch:
        rows, lens = draw(step)
        counts = torch.randint(0, n_thoughts + 1, (rows.shape[0],), generator=gen)
        return _insert_random_thoughts(rows, lens, counts, thought_id, pad_id, gen, 1)

    return fn


# --------------------------------------------------------------------------- episodes -> survivors
@torch.no_grad()
def collect_survivors(
    model: GPT,
    tokens: Int[Tensor, "n pos"],
    lengths: Int[Tensor, " n"],
    thought_id: int,
    pad_id: int,
    n_rounds: int,
    rule: str = "lowest_ll",
    keep_fraction: float = 0.5,
    min_score: float | None = 0.0,
    chunk: int = 128,
    seed: int = 0,
    first_gap: int = 1,
) -> tuple[Tensor, Tensor, list[list[dict]]]:
    """Run an episode on every chunk of ``chunk`` rows and return the rows with their kept
    thoughts ``(tokens, lengths)`` plus each chunk's per-round history. By default only thoughts
    that raised the text log-likelihood (``min_score=0``) survive."""
    check_padded_rows(tokens, lengths)
    _check_thought_and_pad(thought_id, pad_id, model.cfg.d_vocab)
    _check_episode_args(n_rounds, rule, first_gap)
    _check_keep(keep_fraction, min_score)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    check_int(seed, "seed", min=0)
    return _collect_survivors(model, tokens, lengths, thought_id, pad_id, n_rounds, rule, keep_fraction, min_score,
                              chunk, seed, first_gap)


def _check_episode_args(n_rounds, rule, first_gap) -> None:
    if isinstance(n_rounds, bool) or not isinstance(n_rounds, int) or n_rounds < 0:
        raise ValueError(f"n_rounds must be a non-negative int, got {n_rounds!r}")
    _check_rule(rule)
    check_int(first_gap, "first_gap", min=1)


@torch.no_grad()
def _collect_survivors(model, tokens, lengths, thought_id, pad_id, n_rounds, rule, keep_fraction=0.5, min_score=0.0,
                       chunk=128, seed=0, first_gap=1) -> tuple[Tensor, Tensor, list[list[dict]]]:
    gen = torch.Generator().manual_seed(seed)
    with eval_mode(model):
        out, histories = [], []
        for start in range(0, tokens.shape[0], chunk):
            ep = _run_episode(
                model, tokens[start : start + chunk], lengths[start : start + chunk], thought_id, pad_id,
                n_rounds, rule, keep_fraction, min_score, gen, None, first_gap,
            )
            out.append((ep.batch.tokens, ep.batch.lengths))
            histories.append(ep.history)
    new_tokens, new_lengths = stack_rows(out, pad_id)
    return new_tokens, new_lengths, histories


# --------------------------------------------------------------------------- measurement
@torch.no_grad()
def evaluate_nll(
    model: GPT,
    tokens: Int[Tensor, "n pos"],
    lengths: Int[Tensor, " n"],
    thought_id: int,
    pad_id: int,
    score_mask: Bool[Tensor, "n pos"] | None = None,
    budget: int = 0,
    max_rank: int = 0,
    batch_size: int = 64,
    first_gap: int = 1,
) -> dict[str, float]:
    """Mean thought-masked negative log-likelihood (nats per scored token) of the original tokens
    of each row, while the model inserts up to ``budget`` thoughts per row wherever it ranks
    ``<|thought|>`` ``<= max_rank`` (``budget=0``: the plain model), only before original tokens
    ``first_gap`` and later (:func:`lib.methods.thoughts.fast_forward`). ``score_mask[b, j]`` picks
    which original tokens count (default: every token but the first). Returns ``nll``,
    ``thoughts_per_row`` and ``n_scored``."""
    check_padded_rows(tokens, lengths)
    _check_thought_and_pad(thought_id, pad_id, model.cfg.d_vocab)
    _check_walk(max_rank, budget, first_gap)
    check_int(batch_size, "batch_size", min=1)
    _check_n_ctx(model, tokens)
    n, pos = tokens.shape
    ar = torch.arange(pos, device=tokens.device)[None]
    if score_mask is None:
        score_mask = (ar >= 1) & (ar < lengths[:, None])
    if not isinstance(score_mask, Tensor) or score_mask.dtype != torch.bool or score_mask.shape != tokens.shape:
        raise ValueError(f"score_mask must be a bool tensor of shape {tuple(tokens.shape)}")
    if bool(score_mask[:, 0].any()):
        raise ValueError("score_mask must not select the first token: nothing predicts it")
    if bool((score_mask & (ar >= lengths[:, None])).any()):
        raise ValueError("score_mask must select only real tokens (index < the row's length), not padding")
    if not bool(score_mask.any()):  # the mean of nothing would read as a perfect 0 nats
        raise ValueError("nothing to score: score_mask selects no token (it must select at least one token after "
                         "the first of a row; rows of length 1 have none)")
    with eval_mode(model):
        total, count, thoughts = 0.0, 0, 0
        for s in range(0, n, batch_size):
            rows, lens, mask = tokens[s : s + batch_size], lengths[s : s + batch_size], score_mask[s : s + batch_size]
            if budget == 0:  # no thought can be placed: one forward instead of a step-by-step walk
                lp = _text_lp(model(rows), rows, thought_id)
            else:
                ff = _fast_forward(model, rows, lens, thought_id, pad_id, max_rank, budget, first_gap)
                # Put each text token's log-probability back at its original index.
                orig = _original_index(ff.tokens, thought_id)
                keep = (ff.tokens != thought_id) & (torch.arange(ff.tokens.shape[1], device=rows.device)[None] < ff.lengths[:, None])
                lp = torch.zeros(rows.shape, device=rows.device)
                r = torch.arange(rows.shape[0], device=rows.device)[:, None].expand_as(orig)
                lp[r[keep], orig[keep]] = ff.text_lp[keep]
                thoughts += int(ff.n_thoughts.sum())
            total += float(-(lp * mask).sum())
            count += int(mask.sum())
    return {"nll": total / max(count, 1), "thoughts_per_row": thoughts / n, "n_scored": float(count)}


@torch.no_grad()
def calibrate_max_rank(
    model: GPT, tokens: Int[Tensor, "n pos"], lengths: Int[Tensor, " n"], thought_id: int, rate: float, batch_size: int = 64,
    first_gap: int = 1,
) -> int:
    """The smallest ``max_rank`` at which the model would want a thought at a fraction ``rate``
    of the positions of these (thought-free, training) rows: a threshold for
    :func:`lib.methods.thoughts.fast_forward` that inserts about as many thoughts as the survivors had,
    chosen without looking at held-out text. With ``first_gap``, only the positions before gaps
    ``>= first_gap`` (where a thought may go) count."""
    check_padded_rows(tokens, lengths)
    check_token_id(thought_id, "thought_id", model.cfg.d_vocab)
    _check_rate(rate)
    check_int(batch_size, "batch_size", min=1)
    check_int(first_gap, "first_gap", min=1)
    return _calibrate_max_rank(model, tokens, lengths, thought_id, rate, batch_size, first_gap)


def _check_rate(rate) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must lie in (0, 1], got {rate!r}")


@torch.no_grad()
def _calibrate_max_rank(model, tokens, lengths, thought_id, rate, batch_size=64, first_gap=1) -> int:
    ranks = []
    for s in range(0, tokens.shape[0], batch_size):
        rows, lens = tokens[s : s + batch_size], lengths[s : s + batch_size]
        r = _thought_ranks(model(rows), thought_id)
        ar = torch.arange(rows.shape[1], device=rows.device)[None]
        ranks.append(r[(ar < lens[:, None] - 1) & (ar >= first_gap - 1)])  # a text token still follows
    flat = torch.cat(ranks).sort().values
    if flat.numel() == 0:
        raise ValueError(f"no gap to calibrate on: every row is too short for a thought at or after first_gap = {first_gap}")
    k = max(0, math.ceil(rate * flat.numel()) - 1)
    return int(flat[k])


# --------------------------------------------------------------------------- a small task
def digit_sum_task(
    n: int, n_digits: int = 2, seed: int = 0, equals_id: int = 10, modulus: int = 10, n_values: int = 10
) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` rows ``d_1 ... d_k = a`` with random digits ``d_i`` in ``[0, n_values)`` (ids 0-9),
    ``=`` (``equals_id``) and the answer ``a = (d_1 + ... + d_k) mod modulus``. Returns ``(tokens [n, k + 2], lengths,
    answer_mask)``; ``answer_mask`` marks the answer, the one token worth scoring (the digits are
    random). A thought may go anywhere, in particular between ``=`` and the answer."""
    if not isinstance(n, int) or n <= 0 or not isinstance(n_digits, int) or n_digits <= 0:
        raise ValueError(f"n and n_digits must be positive ints, got {n!r}, {n_digits!r}")
    if not 2 <= modulus <= 10:
        raise ValueError(f"modulus must lie in [2, 10] (answers are single digits), got {modulus}")
    if not isinstance(n_values, int) or not 2 <= n_values <= 10:
        raise ValueError(f"n_values must be an int in [2, 10], got {n_values!r}")
    check_token_id(equals_id, "equals_id")
    if equals_id < 10:
        raise ValueError(f"equals_id must not be a digit (0-9), got {equals_id}")
    gen = torch.Generator().manual_seed(seed)
    digits = torch.randint(0, n_values, (n, n_digits), generator=gen)
    answer = digits.sum(1, keepdim=True) % modulus
    tokens = torch.cat([digits, torch.full((n, 1), equals_id), answer], dim=1)
    _, lengths = plain_batch(tokens)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[:, -1] = True
    return tokens, lengths, mask


# --------------------------------------------------------------------------- one budget, any task
def masked_thought_targets(
    tokens: Int[Tensor, "batch pos"],
    lengths: Int[Tensor, " batch"],
    thought_id: int,
    text_targets: Bool[Tensor, "batch orig_pos"],
    thought_targets: bool = True,
) -> Int[Tensor, "batch pos"]:
    """Targets for rows with thoughts when only some original tokens are trained (a task's answer,
    say): position t targets token t + 1 when it is a thought (if ``thought_targets``) or an
    original token j with ``text_targets[b, j]``; -100 everywhere else. ``text_targets`` is
    indexed by *original* position (the row before any thought), so it survives insertions."""
    check_padded_rows(tokens, lengths)
    check_token_id(thought_id, "thought_id")
    _check_text_targets(text_targets, tokens)
    check_bool(thought_targets, "thought_targets")
    return _masked_thought_targets(tokens, lengths, thought_id, text_targets, thought_targets)


def _check_text_targets(text_targets, tokens: Tensor) -> None:
    if not isinstance(text_targets, Tensor) or text_targets.dtype != torch.bool or text_targets.ndim != 2:
        raise ValueError("text_targets must be a bool tensor [batch, orig_pos]")
    if text_targets.shape[0] != tokens.shape[0]:
        raise ValueError(f"text_targets has {text_targets.shape[0]} rows for {tokens.shape[0]} rows of tokens")


def _masked_thought_targets(tokens: Tensor, lengths: Tensor, thought_id: int, text_targets: Tensor,
                            thought_targets: bool) -> Tensor:
    nxt = torch.nn.functional.pad(tokens[:, 1:].long(), (0, 1), value=-100)
    orig_next = torch.nn.functional.pad(_original_index(tokens, thought_id)[:, 1:], (0, 1), value=0)
    wanted = text_targets.gather(1, orig_next.clamp(0, text_targets.shape[1] - 1))
    is_thought = nxt == thought_id
    keep = torch.where(is_thought, torch.full_like(wanted, thought_targets), wanted)
    ar = torch.arange(tokens.shape[1], device=tokens.device)[None]
    keep = keep & (ar < lengths[:, None] - 1)
    return nxt.masked_fill(~keep, -100)


PLACEMENT_RULE = "rank"  # the recipe's one rule for episodes (notebook 06 and the harness): the model's own ranking


class ThinkerSchedule:
    """The recipe's data, ``step -> (rows, lengths, text_targets, thought_targets)``, for ``steps``
    optimizer steps on ``steps * batch_size`` rows used once each, in order:

    - steps ``< steps // 2`` (the warm-up): the next ``batch_size`` rows of the first half, with
      0..``warmup_thoughts`` random thoughts per row (uniformly) at gaps ``>= first_gap``; the
      thoughts are read, not predicted (``thought_targets=False``);
    - at step ``steps // 2`` (**the switch**), once: episodes with the warmed-up model on the second
      half's rows keep the thoughts that raised the text log-likelihood (:func:`collect_survivors`
      with ``rule``); ``survivors`` and ``thoughts_per_row`` are set then;
    - later steps: the survivors, in order, with the thoughts as targets, so the model learns where
      to think.

    ``with_thoughts=False`` gives the **twin**: the same rows in the same order, the same targets,
    no thought anywhere and no episodes. Only ``text_targets`` (by original position) are trained
    among the text tokens."""

    def __init__(self, model, tokens, lengths, text_targets, steps, batch_size, thought_id, pad_id, *, seed=0,
                 warmup_thoughts=2, n_rounds=2, rule=PLACEMENT_RULE, first_gap=1, with_thoughts=True):
        check_padded_rows(tokens, lengths)
        if not isinstance(text_targets, Tensor) or text_targets.dtype != torch.bool or text_targets.shape != tokens.shape:
            raise ValueError(f"text_targets must be a bool tensor of the shape of tokens {tuple(tokens.shape)}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"steps must be an int >= 2, got {steps!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if tokens.shape[0] < steps * batch_size:
            raise ValueError(f"need steps * batch_size = {steps * batch_size} rows, got {tokens.shape[0]}")
        _check_thought_and_pad(thought_id, pad_id, model.cfg.d_vocab)
        if isinstance(warmup_thoughts, bool) or not isinstance(warmup_thoughts, int) or warmup_thoughts < 0:
            raise ValueError(f"warmup_thoughts must be a non-negative int, got {warmup_thoughts!r}")
        _check_episode_args(n_rounds, rule, first_gap)
        check_int(seed, "seed", min=0)
        if not isinstance(with_thoughts, bool):
            raise TypeError(f"with_thoughts must be a bool, got {with_thoughts!r}")
        self.model, self.tokens, self.lengths, self.text_targets = model, tokens, lengths, text_targets
        self.steps, self.batch_size, self.thought_id, self.pad_id = steps, batch_size, thought_id, pad_id
        self.seed, self.warmup_thoughts, self.n_rounds, self.rule = seed, warmup_thoughts, n_rounds, rule
        self.first_gap, self.with_thoughts = first_gap, with_thoughts
        self.half = steps // 2
        self.second = slice(self.half * batch_size, steps * batch_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.survivors: tuple[Tensor, Tensor] | None = None
        self.thoughts_per_row = 0.0

    def __call__(self, step: int):
        b = self.batch_size
        if step < self.half:
            idx = slice(step * b, (step + 1) * b)
            rows, lens = self.tokens[idx], self.lengths[idx]
            if self.with_thoughts:
                counts = torch.randint(0, self.warmup_thoughts + 1, (b,), generator=self.generator)
                rows, lens = _insert_random_thoughts(rows, lens, counts, self.thought_id, self.pad_id, self.generator,
                                                     self.first_gap)
            return rows, lens, self.text_targets[idx], False
        if self.survivors is None:  # the switch: episodes with the warmed-up model
            if self.with_thoughts:
                sv_tokens, sv_lengths, _ = _collect_survivors(
                    self.model, self.tokens[self.second], self.lengths[self.second], self.thought_id, self.pad_id,
                    self.n_rounds, self.rule, seed=self.seed, first_gap=self.first_gap)
                self.thoughts_per_row = float((sv_tokens == self.thought_id).sum()) / sv_tokens.shape[0]
            else:
                sv_tokens, sv_lengths = self.tokens[self.second], self.lengths[self.second]
            self.survivors = (sv_tokens, sv_lengths)
        sv_tokens, sv_lengths = self.survivors
        idx = slice((step - self.half) * b, (step - self.half + 1) * b)
        rows, lens = sv_tokens[idx], sv_lengths[idx]
        return rows[:, : int(lens.max())], lens, self.text_targets[self.second][idx], True

    def loss(self, model: GPT, batch) -> Tensor:
        """Cross-entropy of one batch of this schedule: its text targets, and its thoughts once they are targets."""
        rows, lens, wanted, thought_targets = batch
        return GPT.loss(model(rows), targets=_masked_thought_targets(rows, lens, self.thought_id, wanted, thought_targets))


def train_thinker(
    model: GPT,
    tokens: Int[Tensor, "n pos"],
    lengths: Int[Tensor, " n"],
    text_targets: Bool[Tensor, "n pos"],
    steps: int,
    batch_size: int,
    thought_id: int,
    pad_id: int,
    *,
    seed: int = 0,
    lr: float = 3e-3,
    warmup_thoughts: int = 2,
    n_rounds: int = 2,
    rule: str = PLACEMENT_RULE,
    progress: bool = False,
    first_gap: int = 1,
    with_thoughts: bool = True,
    progress_desc: str = "thinker",
) -> dict:
    """The course's one thought recipe (notebook 06 and the harness of notebook 08): ``steps``
    AdamW steps (learning rate ``lr``, warm-up ``steps // 10``, cosine) on the data of
    :class:`ThinkerSchedule`: a warm-up on rows with random thoughts (read, not predicted), the
    switch to the survivors of episodes at the half-way step, then training on the survivors with
    the thoughts as targets. ``with_thoughts=False`` trains the **twin**: the same model, rows,
    order, targets and schedule, without thoughts. Returns ``thoughts_per_row`` (the survivors'),
    ``survivors`` (their ``(tokens, lengths)``, the plain rows for the twin) and the ``history``."""
    from lib.core.training import TrainConfig, train

    schedule = ThinkerSchedule(model, tokens, lengths, text_targets, steps, batch_size, thought_id, pad_id, seed=seed,
                               warmup_thoughts=warmup_thoughts, n_rounds=n_rounds, rule=rule, first_gap=first_gap,
                               with_thoughts=with_thoughts)
    cfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=max(1, steps // 10), eval_interval=steps, progress=progress,
                      progress_desc=progress_desc)
    history = train(model, schedule, cfg, loss_fn=schedule.loss)
    return {"thoughts_per_row": schedule.thoughts_per_row, "survivors": schedule.survivors, "history": history}


@torch.no_grad()
def thinker_max_rank(
    model: GPT, tokens: Int[Tensor, "n pos"], lengths: Int[Tensor, " n"], thought_id: int, thoughts_per_row: float,
    first_gap: int = 1, max_rows: int = 512,
) -> int:
    """The rank threshold at which a trained thinker places about ``thoughts_per_row`` thoughts per
    row (its survivors' rate) on these training rows, counted over the gaps where a thought may go
    (the first ``max_rows`` rows; :func:`calibrate_max_rank`). It need not carry over to held-out
    rows: report the rate placed there too."""
    check_padded_rows(tokens, lengths)
    check_token_id(thought_id, "thought_id", model.cfg.d_vocab)
    if isinstance(thoughts_per_row, bool) or not isinstance(thoughts_per_row, (int, float)) or not thoughts_per_row >= 0:
        raise ValueError(f"thoughts_per_row must be a number >= 0, got {thoughts_per_row!r}")
    check_int(first_gap, "first_gap", min=1)
    check_int(max_rows, "max_rows", min=1)
    gaps = float((lengths - first_gap).clamp(min=1).float().mean())
    rate = min(max(thoughts_per_row / gaps, 1e-3), 1.0)
    return _calibrate_max_rank(model, tokens[:max_rows], lengths[:max_rows], thought_id, rate, first_gap=first_gap)


@torch.no_grad()
def generate_with_thoughts(
    model: GPT, prompt: Int[Tensor, "batch pos"], n_answer: int, thought_id: int, max_rank: int = 0, budget: int = 2,
    first_gap: int = 1,
    one_per_gap: bool = False,
) -> tuple[Int[Tensor, "batch n_answer"], Tensor]:
    """Read the prompt and answer greedily, thinking where the model wants to: before each prompt
    token after the first, and before each answer token, a row inserts ``<|thought|>`` when the
    model ranks it ``<= max_rank`` and the row has budget left (as :func:`lib.methods.thoughts.fast_forward`
    does on text); otherwise it feeds its next prompt token, or writes its best non-thought token.
    Every row advances one position per step. ``first_gap``: no thought before prompt tokens
    ``< first_gap`` (``first_gap = prompt length``: thoughts only among the answer, where a
    task's fillers go). The placement rule is :func:`lib.methods.thoughts.thought_gate`, the one
    :func:`lib.methods.thoughts.fast_forward` follows; ``one_per_gap=True`` applies all of it (never two
    thoughts in a row, as the survivors the model was trained on have them). ``False`` (the
    default, kept so the stored harness runs reproduce) lets one gap take several thoughts up to
    the budget. Returns the ``n_answer`` answer tokens of each row (thoughts stripped) and how
    many thoughts each row placed."""
    check_tensor(prompt, "prompt", ndim=2, dtype="int")
    if not isinstance(n_answer, int) or n_answer <= 0 or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"n_answer must be a positive int and budget a non-negative int, got {n_answer!r}, {budget!r}")
    # Checked here: an id outside the vocabulary would fail deep inside with a size mismatch.
    check_token_id(thought_id, "thought_id", model.cfg.d_vocab)
    check_int(max_rank, "max_rank")  # any negative value: never think
    rows, P = prompt.shape
    if isinstance(first_gap, bool) or not isinstance(first_gap, int) or not 1 <= first_gap <= P:
        raise ValueError(f"first_gap must be an int in [1, prompt length = {P}], got {first_gap!r}")
    if not isinstance(one_per_gap, bool):
        raise TypeError(f"one_per_gap must be a bool, got {one_per_gap!r}")
    if P + n_answer + budget > model.cfg.n_ctx:
        raise ValueError(f"prompt + answer + budget = {P + n_answer + budget} exceeds n_ctx = {model.cfg.n_ctx}")
    with eval_mode(model):
        device = prompt.device
        r = torch.arange(rows, device=device)
        tokens = prompt[:, :1]
        next_prompt = torch.ones(rows, dtype=torch.long, device=device)  # index of the next prompt token to feed
        used = torch.zeros(rows, dtype=torch.long, device=device)
        written = torch.zeros(rows, dtype=torch.long, device=device)
        answers = torch.full((rows, n_answer), -1, dtype=torch.long, device=device)
        thought = torch.tensor([thought_id], device=device)
        after_thought = torch.zeros(rows, dtype=torch.bool, device=device)
        for _ in range(P - 1 + n_answer + budget):
            logits = model(tokens)[:, -1]
            rank = (logits > logits[:, thought_id : thought_id + 1]).sum(-1)
            think = thought_gate(rank, max_rank, used, budget, after_thought & one_per_gap, written < n_answer, next_prompt >= first_gap)
            in_prompt = next_prompt < P
            best = logits.index_fill(-1, thought, float("-inf")).argmax(-1)
            feed = torch.where(in_prompt, prompt[r, next_prompt.clamp(max=P - 1)], best)
            nxt = torch.where(think, torch.full_like(best, thought_id), feed)
            writing = ~think & ~in_prompt & (written < n_answer)
            w = writing.nonzero().flatten()
            answers[w, written[w]] = best[w]
            written += writing.long()
            next_prompt += (~think & in_prompt).long()
            used += think.long()
            after_thought = think
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
    return answers, used

__all__ = [
    "PLACEMENT_RULE",
    "ThinkerSchedule",
    "calibrate_max_rank",
    "collect_survivors",
    "digit_sum_task",
    "evaluate_nll",
    "generate_with_thoughts",
    "masked_thought_targets",
    "thinker_max_rank",
    "train_thinker",
    "rows_batch_fn",
    "thought_loss",
    "warmup_batch_fn",
]
