"""Episodic thought insertion: put ``<|thought|>`` tokens into text where they help the model.

A thought token carries no text. Inserting one gives the model an extra position (one more set of
attention queries at every layer) before it predicts what follows. This module finds *where* a
thought helps, keeps the thoughts that did, and lets a model learn to place them itself.

Conventions used everywhere below:

- Batches are **right-padded**: ``tokens: [batch, pos]`` with ``lengths: [batch]`` real tokens per
  row. Attention is causal, so padding after a row's end never changes that row's logits.
- The logits at position ``i`` predict token ``i + 1``. "Insert after token ``i``" therefore means
  the thought becomes index ``i + 1``; we always name an insertion by that **insertion index**
  ``t`` (the thought goes *before* the current token ``t``). ``t = 0`` is never used (nothing
  predicts the first token, so there is nothing to compare).
- Scores of text are **thought-masked**: when we ask "how likely is text token x", the
  ``<|thought|>`` logit is removed and the softmax renormalised over the rest. A model that
  learnt to predict thoughts would otherwise lose probability on every text token simply because
  it spends some on ``<|thought|>``, and one that never predicts them would get that mass for free.
  Thoughts themselves are never scored as targets.

Pieces (all vectorised over the batch: no Python loop over sequences):

- :func:`thought_ranks`, :func:`text_log_probs`, :func:`position_stats`: what one forward tells us.
- :func:`candidate_mask`, :func:`placement_scores`, :func:`choose_positions`: the placement rules
  ``"rank"`` (insert where the model ranks ``<|thought|>`` highest), ``"lowest_ll"`` (before the
  token the model finds hardest, as DIT does) and ``"random"``.
- :func:`insert_tokens` (one token per row) and :func:`insert_before_mask` (many).
- :func:`insertion_scores`: log-likelihood change of the same text tokens, with minus without.
- :func:`start_batch`, :func:`insertion_round`, :func:`keep_best`, :func:`run_episode`: the episodes.
- :func:`fast_forward`: walk all rows left to right with a KV cache, inserting a thought wherever
  the model ranks it high enough (as if generating), one shared cache offset for the batch.
- :func:`thought_lm_targets`, :func:`insert_random_thoughts`: training data with thoughts.

References: Goyal et al. 2024, "Think before you speak: training language models with pause
tokens" (ICLR); Kim et al. 2025, "Learning to insert [PAUSE] tokens for better reasoning" (DIT,
ACL Findings: pauses before the lowest-likelihood tokens); Zelikman et al. 2024, "Quiet-STaR".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from lib.core.checks import check_bool, check_float, check_int, check_padded_rows, check_tensor, check_token_id

Rule = Literal["rank", "lowest_ll", "random"]
RULES: tuple[str, ...] = ("rank", "lowest_ll", "random")


# --------------------------------------------------------------------------- input checks
# Public functions check their arguments once and hand them to the private ones (``_name``),
# which trust them: an episode then checks each tensor once, not once per helper it passes through.
def _check_logits(logits, thought_id: int) -> None:
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating-point torch.Tensor")
    if logits.ndim != 3:
        raise ValueError(f"logits must have shape [batch, pos, d_vocab], got {tuple(logits.shape)}")
    check_token_id(thought_id, "thought_id", logits.shape[-1])


def _check_thought_and_pad(thought_id: int, pad_id: int, d_vocab: int | None = None, thought_name: str = "thought_id",
                           pad_name: str = "pad_id") -> None:
    """Both ids in the vocabulary, and different: padding equal to the thought would be counted
    (and scored, and kept) as thoughts."""
    check_token_id(thought_id, thought_name, d_vocab)
    check_token_id(pad_id, pad_name, d_vocab)
    if thought_id == pad_id:
        raise ValueError(f"{thought_name} and {pad_name} must differ, both are {thought_id}: padding would count as thoughts")


def _check_window(window) -> None:
    """One rule for ``window`` wherever it is taken (a window of 0 tokens would score every thought 0)."""
    if window is None:
        return
    if isinstance(window, bool) or not isinstance(window, int):
        raise TypeError(f"window must be a positive int or None (score every token after the thought), got {window!r}")
    if window < 1:
        raise ValueError(f"window must be a positive int or None (score every token after the thought), got {window!r}")


def _check_rule(rule) -> None:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _check_n_ctx(model, tokens: Tensor) -> None:
    n_ctx = model.cfg.n_ctx
    if tokens.shape[1] > n_ctx:
        raise ValueError(f"rows of {tokens.shape[1]} tokens exceed n_ctx = {n_ctx}")


# --------------------------------------------------------------------------- one forward's statistics
def thought_ranks(logits: Float[Tensor, "batch pos d_vocab"], thought_id: int) -> Int[Tensor, "batch pos"]:
    """Rank of ``<|thought|>`` among all tokens at every position (0 = the model's top choice):
    the number of tokens with a strictly larger logit (ties count in the thought's favour)."""
    _check_logits(logits, thought_id)
    return _thought_ranks(logits, thought_id)


def _thought_ranks(logits: Tensor, thought_id: int) -> Tensor:
    return (logits > logits[..., thought_id : thought_id + 1]).sum(-1)


def _masked_logsumexp(logits: Tensor, thought_id: int) -> Tensor:
    """logsumexp over the vocabulary without the thought column, in float32, exactly: two slices
    instead of ``log(exp(lse) - exp(l_thought))``, which cancels badly when p(thought) is near 1."""
    left = logits[..., :thought_id].float().logsumexp(-1)
    right = logits[..., thought_id + 1 :].float().logsumexp(-1)  # an empty slice gives -inf: fine
    return torch.logaddexp(left, right)


def text_log_probs(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"], thought_id: int
) -> Float[Tensor, "batch pos"]:
    """Entry ``j`` = log p(tokens[:, j] | tokens[:, :j]) with ``<|thought|>`` excluded from the
    softmax (renormalised over the other tokens). Aligned with the *targets*: column 0 is 0
    (nothing predicts the first token), and entries whose target is a thought are 0 (thoughts are
    never scored). Padding is not masked here: callers mask with their lengths."""
    _check_logits(logits, thought_id)
    check_tensor(tokens, "tokens", ndim=2, dtype="int")
    if logits.shape[:2] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and tokens {tuple(tokens.shape)} disagree on [batch, pos]")
    return _text_lp(logits, tokens, thought_id)


def _text_lp(logits: Tensor, tokens: Tensor, thought_id: int) -> Tensor:
    return _masked_stats(logits, tokens, thought_id)[0]


def _masked_stats(logits: Tensor, tokens: Tensor, thought_id: int) -> tuple[Tensor, Tensor]:
    """Thought-masked text log-probs ``[batch, pos]`` (aligned with targets) and the masked
    logsumexp ``[batch, pos]``, from ONE fused log-softmax over the vocabulary.

    The thought column is set to -inf and the softmax renormalises over the rest, exactly. For
    float32 logits outside autograd this is done in place and the column restored afterwards (no
    copy of the ``[batch, pos, d_vocab]`` tensor); otherwise on a float32 copy, which also keeps
    bf16 logits from losing precision in the log-probabilities."""
    in_place = logits.dtype == torch.float32 and not (torch.is_grad_enabled() and logits.requires_grad)
    if in_place:
        work, column = logits, logits[..., thought_id].clone()
        work[..., thought_id] = float("-inf")
    else:  # a new float32 tensor: autograd-safe, and bf16 logits keep their precision
        index = torch.tensor([thought_id], device=logits.device)
        work = logits.float().index_fill(-1, index, float("-inf"))
    try:
        log_probs = work.log_softmax(-1)
        other = 1 if thought_id == 0 else 0  # any finite column gives logsumexp = logit - log-prob
        lse = work[..., other] - log_probs[..., other]
        target = tokens[:, 1:].long()
        lp = log_probs[:, :-1].gather(-1, target[..., None]).squeeze(-1)
    finally:
        if in_place:
            work[..., thought_id] = column
    lp = lp.masked_fill(target == thought_id, 0.0)  # a thought is never a target
    return torch.cat([lp.new_zeros(lp.shape[0], 1), lp], dim=1), lse


@dataclass
class PositionStats:
    """What one forward says about every position of a batch (shapes ``[batch, pos]``).

    ``text_lp[:, j]``: thought-masked log-probability of token ``j`` (see :func:`text_log_probs`).
    ``thought_rank[:, i]`` / ``thought_lp[:, i]``: rank and (unmasked) log-probability of
    ``<|thought|>`` as the token *after* position ``i``.
    """

    text_lp: Tensor
    thought_rank: Tensor
    thought_lp: Tensor

    def select_rows(self, keep: Tensor, other: "PositionStats") -> "PositionStats":
        """Rows where ``keep`` is True from ``self``, the others from ``other`` (same widths)."""
        k = keep[:, None]
        return PositionStats(
            torch.where(k, self.text_lp, other.text_lp),
            torch.where(k, self.thought_rank, other.thought_rank),
            torch.where(k, self.thought_lp, other.thought_lp),
        )

    def pad_to(self, width: int) -> "PositionStats":
        """Right-pad (or cut) every field to ``width`` positions."""
        def fit(x: Tensor, value) -> Tensor:
            if x.shape[1] >= width:
                return x[:, :width]
            return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)

        return PositionStats(fit(self.text_lp, 0.0), fit(self.thought_rank, 0), fit(self.thought_lp, float("-inf")))


def position_stats(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"], thought_id: int
) -> PositionStats:
    """Everything the placement rules and the scores need from one forward, in one function, so
    the ``[batch, pos, d_vocab]`` logits can be dropped right after."""
    _check_logits(logits, thought_id)
    check_tensor(tokens, "tokens", ndim=2, dtype="int")
    if logits.shape[:2] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and tokens {tuple(tokens.shape)} disagree on [batch, pos]")
    return _position_stats(logits, tokens, thought_id)


def _position_stats(logits: Tensor, tokens: Tensor, thought_id: int) -> PositionStats:
    thought_logit = logits[..., thought_id : thought_id + 1]
    # int32 accumulation: half the time of the default int64 sum of the comparison.
    rank = (logits > thought_logit).sum(-1, dtype=torch.int32).long()
    text_lp, lse_masked = _masked_stats(logits, tokens, thought_id)
    thought = thought_logit.squeeze(-1).float()
    thought_lp = thought - torch.logaddexp(lse_masked, thought)  # the full logsumexp adds it back
    return PositionStats(text_lp, rank, thought_lp)


# --------------------------------------------------------------------------- where a thought may go
def candidate_mask(
    tokens: Int[Tensor, "batch pos"],
    lengths: Int[Tensor, " batch"],
    thought_id: int,
    tried: Bool[Tensor, "batch orig_pos"] | None = None,
) -> Bool[Tensor, "batch pos"]:
    """True at every insertion index ``t`` where a new thought may go: ``1 <= t <= length - 1``
    (a text token follows it, so there is something to score), neither neighbour
    (``t - 1``, ``t``) is already a thought (one thought per gap), and the gap was not tried in an
    earlier round. ``tried[b, k]`` marks the gap before *original* token ``k`` (original = the row
    without any thoughts), so it stays valid however many thoughts were inserted since."""
    check_padded_rows(tokens, lengths)
    check_token_id(thought_id, "thought_id")
    batch = tokens.shape[0]
    if tried is not None:
        if not isinstance(tried, Tensor) or tried.dtype != torch.bool or tried.ndim != 2 or tried.shape[0] != batch:
            raise ValueError(f"tried must be a bool tensor [batch={batch}, orig_pos], got {getattr(tried, 'shape', tried)}")
    return _candidate_mask(tokens, lengths, thought_id, tried)


def _candidate_mask(tokens: Tensor, lengths: Tensor, thought_id: int, tried: Tensor | None) -> Tensor:
    pos = tokens.shape[1]
    is_thought = tokens == thought_id
    ar = torch.arange(pos, device=tokens.device)
    prev_thought = torch.nn.functional.pad(is_thought[:, :-1], (1, 0), value=True)  # t = 0 excluded too
    ok = (ar[None] < lengths[:, None]) & ~is_thought & ~prev_thought
    if tried is not None:
        orig = _original_index(tokens, thought_id)
        ok = ok & ~tried.gather(1, orig.clamp(0, tried.shape[1] - 1))
    return ok


def original_index(tokens: Int[Tensor, "batch pos"], thought_id: int) -> Int[Tensor, "batch pos"]:
    """For each position, the index the token had before any thought was inserted (the number of
    text tokens before it). Meaningless at thought positions."""
    check_tensor(tokens, "tokens", ndim=2, dtype="int")
    return _original_index(tokens, thought_id)


def _original_index(tokens: Tensor, thought_id: int) -> Tensor:
    is_thought = (tokens == thought_id).long()
    ar = torch.arange(tokens.shape[1], device=tokens.device)
    return ar[None] - is_thought.cumsum(1)


def placement_scores(
    rule: Rule, stats: PositionStats, generator: torch.Generator | None = None
) -> Float[Tensor, "batch pos"]:
    """A score per insertion index ``t`` (lower = insert here first), from the forward *without*
    the new thought:

    - ``"rank"`` (the seed's rule): the rank of ``<|thought|>`` in the logits at ``t - 1``, ties
      broken by its probability (higher first);
    - ``"lowest_ll"`` (DIT): the log-likelihood of token ``t`` (the hardest token gets the pause);
    - ``"random"``: uniform noise from ``generator`` (drawn on the CPU, so every device agrees).
    Column 0 is ``+inf``: nothing is ever inserted before the first token.
    """
    _check_rule(rule)
    if not isinstance(stats, PositionStats):
        raise TypeError(f"stats must be a PositionStats, got {type(stats).__name__}")
    _check_generator(generator)
    return _placement_scores(rule, stats, generator)


def _placement_scores(rule: str, stats: PositionStats, generator: torch.Generator | None) -> Tensor:
    lp = stats.text_lp
    if rule == "rank":
        prev = stats.thought_rank[:, :-1].float() - stats.thought_lp[:, :-1].exp()
    elif rule == "lowest_ll":
        prev = lp[:, 1:]
    else:
        prev = torch.rand(lp.shape[0], lp.shape[1] - 1, generator=generator).to(lp.device)
    return torch.cat([torch.full_like(lp[:, :1], float("inf")), prev.float()], dim=1)


def choose_positions(scores: Float[Tensor, "batch pos"], allowed: Bool[Tensor, "batch pos"]) -> Int[Tensor, " batch"]:
    """The allowed insertion index with the lowest score in each row (the leftmost on ties), or
    ``-1`` for a row with no allowed index."""
    if not isinstance(scores, Tensor) or not scores.is_floating_point() or scores.ndim != 2:
        raise TypeError("scores must be a 2-D floating-point tensor [batch, pos]")
    if not isinstance(allowed, Tensor) or allowed.dtype != torch.bool or allowed.shape != scores.shape:
        raise ValueError(f"allowed must be a bool tensor of shape {tuple(scores.shape)}")
    return _choose_positions(scores, allowed)


def _choose_positions(scores: Tensor, allowed: Tensor) -> Tensor:
    masked = scores.masked_fill(~allowed, float("inf"))
    best = masked.argmin(-1)
    return torch.where(allowed.any(-1), best, torch.full_like(best, -1))


# --------------------------------------------------------------------------- insertion
def insert_before_mask(
    tokens: Int[Tensor, "batch pos"],
    lengths: Int[Tensor, " batch"],
    mask: Bool[Tensor, "batch pos_plus_1"],
    token_id: int,
    pad_id: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Insert ``token_id`` before every old position ``t`` where ``mask[b, t]`` (``t = length``
    appends at the end). Returns ``(new_tokens [batch, pos + max_inserted], new_lengths,
    index_map [batch, pos])`` where ``index_map[b, j]`` is the new index of old token ``j``
    (``-1`` at padding). Old token ``j`` moves right by the number of insertions at or before it.
    """
    check_padded_rows(tokens, lengths)
    check_token_id(token_id, "token_id")
    check_token_id(pad_id, "pad_id")
    batch, pos = tokens.shape
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (batch, pos + 1):
        raise ValueError(f"mask must be a bool tensor of shape {(batch, pos + 1)}, got {getattr(mask, 'shape', mask)}")
    ar = torch.arange(pos + 1, device=tokens.device)
    if (mask & (ar[None] > lengths[:, None])).any():
        raise ValueError("mask marks an insertion past the end of a row (t > length)")
    return _insert_before_mask(tokens, lengths, mask, token_id, pad_id)


def _insert_before_mask(tokens: Tensor, lengths: Tensor, mask: Tensor, token_id: int, pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    batch, pos = tokens.shape
    ar = torch.arange(pos + 1, device=tokens.device)
    shift = mask.long().cumsum(1)  # [batch, pos + 1]: insertions at or before t
    n_new = shift[:, -1]
    new_lengths = lengths + n_new
    width = pos + int(n_new.max()) if batch else pos
    index_map = ar[None, :pos] + shift[:, :pos]
    new = torch.full((batch, width), pad_id, dtype=tokens.dtype, device=tokens.device)
    real = ar[None, :pos] < lengths[:, None]
    rows_old = torch.arange(batch, device=tokens.device)[:, None].expand(batch, pos)
    new[rows_old[real], index_map[real]] = tokens[real]  # only real tokens move; the rest stays padding
    # The inserted token before old position t lands at t + (insertions at or before t) - 1.
    thought_at = (ar[None] + shift - 1).clamp(0, width - 1)
    rows = torch.arange(batch, device=tokens.device)[:, None].expand_as(mask)
    new[rows[mask], thought_at[mask]] = token_id
    new = new.masked_fill(torch.arange(width, device=tokens.device)[None] >= new_lengths[:, None], pad_id)
    return new, new_lengths, torch.where(real, index_map, torch.full_like(index_map, -1))


def insert_tokens(
    tokens: Int[Tensor, "batch pos"],
    lengths: Int[Tensor, " batch"],
    positions: Int[Tensor, " batch"],
    token_id: int,
    pad_id: int,
) -> tuple[Int[Tensor, "batch pos_plus_1"], Int[Tensor, " batch"], Int[Tensor, "batch pos"]]:
    """Insert one ``token_id`` per row so that it becomes index ``positions[b]`` (it goes before
    the old token at that index; ``positions[b] == lengths[b]`` appends; ``-1`` leaves the row
    unchanged). The result is always ``pos + 1`` wide, right-padded with ``pad_id``.

    Returns ``(new_tokens, new_lengths, index_map)``; ``index_map[b, j]`` is the new index of old
    token ``j`` (``j`` if ``j < positions[b]``, else ``j + 1``; ``-1`` at padding).
    """
    check_padded_rows(tokens, lengths)
    check_tensor(positions, "positions", ndim=1, dtype="int")
    if positions.shape[0] != tokens.shape[0]:
        raise ValueError(f"positions has {positions.shape[0]} rows, tokens has {tokens.shape[0]}")
    if ((positions < -1) | (positions > lengths)).any():
        raise ValueError("every position must be -1 (no insertion) or lie in [0, length of its row]")
    check_token_id(token_id, "token_id")
    check_token_id(pad_id, "pad_id")
    return _insert_tokens(tokens, lengths, positions, token_id, pad_id)


def _insert_tokens(tokens: Tensor, lengths: Tensor, positions: Tensor, token_id: int, pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    pos = tokens.shape[1]
    ar = torch.arange(pos + 1, device=tokens.device)
    mask = ar[None] == positions[:, None].long()  # -1 matches nothing
    new, new_lengths, index_map = _insert_before_mask(tokens, lengths, mask, token_id, pad_id)
    if new.shape[1] == pos:  # no row inserted anything: keep the promised width
        new = torch.nn.functional.pad(new, (0, 1), value=pad_id)
    return new, new_lengths, index_map


# --------------------------------------------------------------------------- scoring
def insertion_scores(
    lp_without: Float[Tensor, "batch pos"],
    lp_with: Float[Tensor, "batch new_pos"],
    tokens: Int[Tensor, "batch pos"],
    lengths: Int[Tensor, " batch"],
    positions: Int[Tensor, " batch"],
    index_map: Int[Tensor, "batch pos"],
    thought_id: int,
    window: int | None = None,
) -> Float[Tensor, " batch"]:
    """Log-likelihood gain of one inserted thought per row:
    ``sum_j [lp_with(x_j) - lp_without(x_j)]`` over the *same* text tokens ``j`` after the
    insertion (old indices ``positions[b] <= j < lengths[b]``, earlier thoughts excluded,
    optionally only ``j < positions[b] + window``). ``lp_without`` / ``lp_with`` are
    :func:`text_log_probs` of the batch before / after the insertion, and ``index_map`` comes from
    :func:`insert_tokens`. Tokens before the thought cannot change (causal attention), so with
    ``window=None`` this is the change in the whole row's text log-likelihood. Rows with
    ``positions == -1`` score 0.
    """
    check_padded_rows(tokens, lengths)
    check_token_id(thought_id, "thought_id")
    for name, x in (("lp_without", lp_without), ("lp_with", lp_with)):
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim != 2 or x.shape[0] != tokens.shape[0]:
            raise ValueError(f"{name} must be a float tensor [batch={tokens.shape[0]}, pos]")
    if lp_without.shape != tokens.shape:
        raise ValueError(f"lp_without {tuple(lp_without.shape)} must match tokens {tuple(tokens.shape)}")
    if not isinstance(index_map, Tensor) or index_map.shape != tokens.shape:
        raise ValueError(f"index_map must have the shape of tokens {tuple(tokens.shape)}")
    check_tensor(positions, "positions", ndim=1, dtype="int")
    if positions.shape[0] != tokens.shape[0]:
        raise ValueError(f"positions has {positions.shape[0]} rows, tokens has {tokens.shape[0]}")
    if index_map.numel() and int(index_map.max()) >= lp_with.shape[1]:
        raise ValueError("index_map points past the end of lp_with")
    _check_window(window)
    return _scores(lp_without, lp_with, tokens, lengths, positions, index_map, thought_id, window)


def _scores(lp_without, lp_with, tokens, lengths, positions, index_map, thought_id, window):
    ar = torch.arange(tokens.shape[1], device=tokens.device)[None]
    t = positions[:, None]
    use = (t >= 0) & (ar >= t) & (ar < lengths[:, None]) & (tokens != thought_id)
    if window is not None:
        use = use & (ar < t + window)
    moved = lp_with.gather(1, index_map.clamp(min=0))  # [batch, pos]: lp_with at each old token's new place
    return torch.where(use, moved - lp_without, torch.zeros_like(lp_without)).sum(1)


def text_log_likelihood(text_lp: Float[Tensor, "batch pos"], lengths: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
    """Total thought-masked log-likelihood of each row's text tokens (thoughts and the first token
    contribute 0 by construction of :func:`text_log_probs`; padding is cut by ``lengths``)."""
    check_tensor(lengths, "lengths", ndim=1, dtype="int")
    if not isinstance(text_lp, Tensor) or text_lp.ndim != 2 or text_lp.shape[0] != lengths.shape[0]:
        raise ValueError("text_lp must be [batch, pos] with one length per row")
    return _text_log_likelihood(text_lp, lengths)


def _text_log_likelihood(text_lp: Tensor, lengths: Tensor) -> Tensor:
    ar = torch.arange(text_lp.shape[1], device=text_lp.device)[None]
    return torch.where(ar < lengths[:, None], text_lp, torch.zeros_like(text_lp)).sum(1)


# --------------------------------------------------------------------------- episodes
@dataclass
class ThoughtBatch:
    """A batch of rows with the thoughts kept so far, and what the last forward said about it.

    ``tried[b, k]``: the gap before original token ``k`` has had a thought (kept or not).
    """

    tokens: Tensor  # [batch, pos]
    lengths: Tensor  # [batch]
    stats: PositionStats
    tried: Tensor  # [batch, orig_pos] bool
    thought_id: int
    pad_id: int

    @property
    def n_thoughts(self) -> Tensor:
        """Thoughts per row, ``[batch]``."""
        return (self.tokens == self.thought_id).sum(1)

    def text_ll(self) -> Tensor:
        """Total thought-masked text log-likelihood per row, ``[batch]``."""
        return _text_log_likelihood(self.stats.text_lp, self.lengths)


def _forward_stats(model, tokens: Tensor, thought_id: int) -> PositionStats:
    return _position_stats(model(tokens), tokens, thought_id)


@torch.no_grad()
def start_batch(
    model, tokens: Int[Tensor, "batch pos"], lengths: Int[Tensor, " batch"], thought_id: int, pad_id: int,
    first_gap: int = 1,
) -> ThoughtBatch:
    """One forward of the plain rows: the baseline every later round compares against.

    ``first_gap``: thoughts may go only before original tokens ``first_gap, first_gap + 1, ...``
    (a task's answer region, where its fillers go); the earlier gaps start out as tried."""
    check_padded_rows(tokens, lengths)
    _check_thought_and_pad(thought_id, pad_id, model.cfg.d_vocab)
    check_int(first_gap, "first_gap", min=1)
    return _start_batch(model, tokens, lengths, thought_id, pad_id, first_gap)


@torch.no_grad()
def _start_batch(model, tokens: Tensor, lengths: Tensor, thought_id: int, pad_id: int, first_gap: int) -> ThoughtBatch:
    tried = torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
    tried[:, :first_gap] = True
    return ThoughtBatch(tokens, lengths, _forward_stats(model, tokens, thought_id), tried, thought_id, pad_id)


@dataclass
class RoundResult:
    """One round: every row got (at most) one new thought; nothing was dropped yet."""

    candidate: ThoughtBatch  # the rows with their new thought
    positions: Tensor  # [batch] insertion index in the previous rows, -1 where none was possible
    scores: Tensor  # [batch] text log-likelihood gain of the new thought (0 where none)
    index_map: Tensor  # [batch, previous pos] where each previous token sits in the candidate rows


@torch.no_grad()
def insertion_round(
    model,
    batch: ThoughtBatch,
    rule: Rule = "rank",
    generator: torch.Generator | None = None,
    window: int | None = None,
) -> RoundResult:
    """Choose a position per row from the previous forward's statistics, insert a thought there,
    run ONE forward of the new batch, and score each row. The new forward's statistics feed the
    next round, so a round costs one forward plus a few passes over the logits."""
    if not isinstance(batch, ThoughtBatch):
        raise TypeError(f"batch must be a ThoughtBatch, got {type(batch).__name__}")
    check_padded_rows(batch.tokens, batch.lengths)
    _check_thought_and_pad(batch.thought_id, batch.pad_id, model.cfg.d_vocab, "batch.thought_id", "batch.pad_id")
    _check_rule(rule)
    _check_generator(generator)
    _check_window(window)
    return _insertion_round(model, batch, rule, generator, window)


@torch.no_grad()
def _insertion_round(model, batch: ThoughtBatch, rule: str, generator: torch.Generator | None, window: int | None) -> RoundResult:
    allowed = _candidate_mask(batch.tokens, batch.lengths, batch.thought_id, batch.tried)
    positions = _choose_positions(_placement_scores(rule, batch.stats, generator), allowed)
    new_tokens, new_lengths, index_map = _insert_tokens(batch.tokens, batch.lengths, positions, batch.thought_id, batch.pad_id)
    n_ctx = model.cfg.n_ctx
    width = new_tokens.shape[1]
    if width > n_ctx:  # a longer row than the model allows: drop the all-padding tail if there is one
        width = int(new_lengths.max())
        if width > n_ctx:
            raise ValueError(f"rows of {width} tokens after insertion exceed n_ctx = {n_ctx}; use shorter rows")
        new_tokens = new_tokens[:, :width]
    stats = _forward_stats(model, new_tokens, batch.thought_id)
    scores = _scores(batch.stats.text_lp, stats.text_lp, batch.tokens, batch.lengths, positions, index_map, batch.thought_id, window)
    # The gap before the chosen original token is now tried, whatever happens to this thought.
    tried = batch.tried.clone()
    orig = _original_index(batch.tokens, batch.thought_id).gather(1, positions.clamp(min=0)[:, None]).squeeze(1)
    rows = torch.nonzero(positions >= 0).squeeze(1)
    tried[rows, orig[rows]] = True
    candidate = ThoughtBatch(new_tokens, new_lengths, stats, tried, batch.thought_id, batch.pad_id)
    return RoundResult(candidate, positions, scores, index_map)


def keep_best(
    previous: ThoughtBatch, result: RoundResult, keep_fraction: float = 0.5, min_score: float | None = None
) -> tuple[ThoughtBatch, Bool[Tensor, " batch"]]:
    """Keep the best ``keep_fraction`` of this round's new thoughts (ranked by score across the
    batch; optionally only those scoring above ``min_score``) and revert the other rows to
    ``previous``. No forward is needed: a reverted row's old statistics are still exact, because
    rows never interact. Returns the merged batch and the ``[batch]`` mask of kept rows."""
    if not isinstance(previous, ThoughtBatch) or not isinstance(result, RoundResult):
        raise TypeError("keep_best needs the previous ThoughtBatch and a RoundResult")
    _check_keep(keep_fraction, min_score)
    return _keep_best(previous, result, keep_fraction, min_score)


def _check_keep(keep_fraction, min_score) -> None:
    check_float(keep_fraction, "keep_fraction", min=0.0, max=1.0)
    check_float(min_score, "min_score", finite=False, allow_none=True)


def _keep_best(previous: ThoughtBatch, result: RoundResult, keep_fraction: float, min_score: float | None) -> tuple[ThoughtBatch, Tensor]:
    new = result.candidate
    inserted = result.positions >= 0
    n_keep = int(round(keep_fraction * int(inserted.sum())))
    ranked = result.scores.masked_fill(~inserted, float("-inf"))
    order = torch.sort(ranked, descending=True, stable=True).indices
    place = torch.empty_like(order)
    place[order] = torch.arange(order.numel(), device=order.device)
    keep = inserted & (place < n_keep)
    if min_score is not None:
        keep = keep & (result.scores > min_score)
    width = new.tokens.shape[1]
    old_tokens = torch.nn.functional.pad(previous.tokens, (0, width - previous.tokens.shape[1]), value=previous.pad_id)
    tokens = torch.where(keep[:, None], new.tokens, old_tokens)
    lengths = torch.where(keep, new.lengths, previous.lengths)
    stats = new.stats.select_rows(keep, previous.stats.pad_to(width))
    width = int(lengths.max())  # a round where every row reverted must not grow the batch
    merged = ThoughtBatch(tokens[:, :width], lengths, stats.pad_to(width), new.tried, new.thought_id, new.pad_id)
    return merged, keep


@dataclass
class EpisodeResult:
    batch: ThoughtBatch  # the rows with every kept thought
    history: list[dict] = field(default_factory=list)  # one dict of numbers per round
    baseline_text_ll: Tensor | None = None  # [batch] text log-likelihood with no thought at all


@torch.no_grad()
def run_episode(
    model,
    tokens: Int[Tensor, "batch pos"],
    lengths: Int[Tensor, " batch"],
    thought_id: int,
    pad_id: int,
    n_rounds: int,
    rule: Rule = "rank",
    keep_fraction: float = 0.5,
    min_score: float | None = None,
    generator: torch.Generator | None = None,
    window: int | None = None,
    first_gap: int = 1,
) -> EpisodeResult:
    """Rounds of insert -> score -> keep the best ``keep_fraction`` -> insert again; the kept
    thoughts accumulate (a row gains at most one per round) and a gap is never tried twice.

    ``history[r]`` holds ``mean_score`` (this round's new thoughts), ``mean_kept_score``,
    ``frac_positive``, ``n_kept``, ``thoughts_per_row`` and ``text_ll_gain`` (mean per row, vs
    the rows without thoughts, in nats). ``first_gap``: as in :func:`start_batch`."""
    # Everything is checked before the first forward: a bad argument found in round 2 would
    # leave a "random" rule's generator advanced by round 1.
    check_padded_rows(tokens, lengths)
    _check_thought_and_pad(thought_id, pad_id, model.cfg.d_vocab)
    if isinstance(n_rounds, bool) or not isinstance(n_rounds, int) or n_rounds < 0:
        raise ValueError(f"n_rounds must be a non-negative int, got {n_rounds!r}")
    _check_rule(rule)
    _check_keep(keep_fraction, min_score)
    _check_generator(generator)
    _check_window(window)
    check_int(first_gap, "first_gap", min=1)
    return _run_episode(model, tokens, lengths, thought_id, pad_id, n_rounds, rule, keep_fraction, min_score, generator,
                        window, first_gap)


@torch.no_grad()
def _run_episode(model, tokens, lengths, thought_id, pad_id, n_rounds, rule, keep_fraction, min_score, generator, window,
                 first_gap) -> EpisodeResult:
    batch = _start_batch(model, tokens, lengths, thought_id, pad_id, first_gap)
    base_ll = batch.text_ll()
    out = EpisodeResult(batch, [], base_ll)
    for r in range(n_rounds):
        result = _insertion_round(model, batch, rule, generator, window)
        batch, keep = _keep_best(batch, result, keep_fraction, min_score)
        inserted = result.positions >= 0
        s = result.scores[inserted]
        out.history.append(
            {
                "round": r + 1,
                "n_inserted": int(inserted.sum()),
                "mean_score": float(s.mean()) if s.numel() else 0.0,
                "frac_positive": float((s > 0).float().mean()) if s.numel() else 0.0,
                "n_kept": int(keep.sum()),
                "mean_kept_score": float(result.scores[keep].mean()) if keep.any() else 0.0,
                "thoughts_per_row": float(batch.n_thoughts.float().mean()),
                "text_ll_gain": float((batch.text_ll() - base_ll).mean()),
            }
        )
    out.batch = batch
    return out


# --------------------------------------------------------------------------- the decoders' placement rule
def thought_gate(
    rank: Int[Tensor, " batch"],
    max_rank: int,
    used: Int[Tensor, " batch"],
    budget: int,
    after_thought: Bool[Tensor, " batch"],
    text_follows: Bool[Tensor, " batch"],
    gap_open: Bool[Tensor, " batch"],
) -> Bool[Tensor, " batch"]:
    """The one rule by which a trained model places its own thoughts, shared by both decoders
    (:func:`fast_forward` on text, :func:`lib.methods.thought_training.generate_with_thoughts` on a
    task): a row feeds ``<|thought|>`` now when the model ranks it ``<= max_rank`` (the
    ``"rank"`` placement rule), the row has budget left, a text token still follows (a thought
    must precede something it can help) and the gap is open (at or after ``first_gap``, where the
    task's fillers go). ``after_thought`` marks rows whose previous token was a thought: such a row
    may think again only where the caller lets one gap hold several thoughts (pass all False)."""
    return (rank <= max_rank) & (used < budget) & ~after_thought & text_follows & gap_open


# --------------------------------------------------------------------------- fast-forward
@dataclass
class FastForwardResult:
    tokens: Tensor  # [batch, pos] the rows with the thoughts the model chose
    lengths: Tensor  # [batch]
    text_lp: Tensor  # [batch, pos] thought-masked log p of each text token (0 at thoughts, first token, padding)
    n_thoughts: Tensor  # [batch]


@torch.no_grad()
def fast_forward(
    model,
    tokens: Int[Tensor, "batch pos"],
    lengths: Int[Tensor, " batch"],
    thought_id: int,
    pad_id: int,
    max_rank: int = 0,
    budget: int = 8,
    first_gap: int = 1,
) -> FastForwardResult:
    """Walk every row left to right as if generating, feeding either the next text token or
    ``<|thought|>``: a thought whenever the model ranks it ``<= max_rank`` at this step, the row
    has budget left, the previous token was not a thought, a text token still follows and the gap
is open (before text tokens ``first_gap`` and later), the rule of :func:`thought_gate`. All rows
    advance one position per step, so the batch shares one :class:`lib.core.model.KVCache` offset; a
    finished row feeds padding. Cost: one single-position forward per step (no recompute of the
    prefix). The text tokens' log-probabilities come out for free (thought-masked)."""
    check_padded_rows(tokens, lengths)
    _check_thought_and_pad(thought_id, pad_id, model.cfg.d_vocab)
    _check_walk(max_rank, budget, first_gap)
    _check_n_ctx(model, tokens)
    return _fast_forward(model, tokens, lengths, thought_id, pad_id, max_rank, budget, first_gap)


def _check_walk(max_rank, budget, first_gap) -> None:
    if isinstance(max_rank, bool) or not isinstance(max_rank, int) or max_rank < 0:
        raise ValueError(f"max_rank must be a non-negative int, got {max_rank!r}")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"budget must be a non-negative int, got {budget!r}")
    check_int(first_gap, "first_gap", min=1)


@torch.no_grad()
def _fast_forward(model, tokens: Tensor, lengths: Tensor, thought_id: int, pad_id: int, max_rank: int, budget: int,
                  first_gap: int) -> FastForwardResult:
    n_ctx = model.cfg.n_ctx
    batch, pos = tokens.shape
    device = tokens.device
    width = min(n_ctx, pos + budget)
    out = torch.full((batch, width), pad_id, dtype=tokens.dtype, device=device)
    text_lp = torch.zeros(batch, width, device=device)
    out[:, 0] = tokens[:, 0]
    ptr = torch.ones(batch, dtype=torch.long, device=device)  # next text token to feed
    used = torch.zeros(batch, dtype=torch.long, device=device)
    prev_thought = torch.zeros(batch, dtype=torch.bool, device=device)
    cache = model.new_kv_cache()
    logits = model(tokens[:, :1], kv_cache=cache)[:, -1]  # [batch, d_vocab]
    for step in range(1, width):
        remaining = lengths - ptr  # text tokens still to feed
        if not bool((remaining > 0).any()):
            break
        rank = (logits > logits[:, thought_id : thought_id + 1]).sum(-1)
        # A thought at `step` leaves `remaining` text tokens for positions step+1 .. : they must fit.
        think = thought_gate(rank, max_rank, used, budget, prev_thought, (remaining > 0) & (step + remaining < width),
                             ptr >= first_gap)
        text = tokens.gather(1, ptr.clamp(max=pos - 1)[:, None]).squeeze(1)
        feeds_text = ~think & (remaining > 0)
        lp = logits.gather(1, text[:, None].long()).squeeze(1).float() - _masked_logsumexp(logits, thought_id)
        text_lp[:, step] = torch.where(feeds_text, lp, torch.zeros_like(lp))
        fed = torch.where(think, torch.full_like(text, thought_id), torch.where(feeds_text, text, torch.full_like(text, pad_id)))
        out[:, step] = fed
        ptr = ptr + feeds_text.long()
        used = used + think.long()
        prev_thought = think
        if bool((lengths - ptr > 0).any()):  # the last step's logits would predict nothing
            logits = model(fed[:, None], kv_cache=cache)[:, -1]
    new_lengths = lengths + used
    width = int(new_lengths.max())
    return FastForwardResult(out[:, :width], new_lengths, text_lp[:, :width], used)


# --------------------------------------------------------------------------- training data
def thought_lm_targets(
    tokens: Int[Tensor, "batch pos"], lengths: Int[Tensor, " batch"], thought_id: int, thought_targets: bool = True
) -> Int[Tensor, "batch pos"]:
    """Next-token targets for ``GPT.loss(logits, targets=...)``: ``targets[:, i] = tokens[:, i+1]``,
    ``-100`` (ignored) past each row's end, and also where the next token is a thought if
    ``thought_targets`` is False (the model then learns to read thoughts, not to place them)."""
    check_padded_rows(tokens, lengths)
    check_token_id(thought_id, "thought_id")
    check_bool(thought_targets, "thought_targets")
    nxt = torch.nn.functional.pad(tokens[:, 1:].long(), (0, 1), value=-100)
    ar = torch.arange(tokens.shape[1], device=tokens.device)[None]
    ignore = ar >= (lengths[:, None] - 1)
    if not thought_targets:
        ignore = ignore | (nxt == thought_id)
    return nxt.masked_fill(ignore, -100)


def insert_random_thoughts(
    tokens: Int[Tensor, "batch pos"],
    lengths: Int[Tensor, " batch"],
    n: int | Int[Tensor, " batch"],
    thought_id: int,
    pad_id: int,
    generator: torch.Generator | None = None,
    first_gap: int = 1,
) -> tuple[Tensor, Tensor]:
    """Insert ``n`` thoughts per row (an int, or one count per row) at distinct random gaps (never
    before token ``first_gap``, by default the second, never two in one gap); rows with fewer gaps
    get one per gap. Returns ``(new_tokens, new_lengths)``. Used to warm a model up to thoughts it
    has never seen."""
    check_padded_rows(tokens, lengths)
    check_int(first_gap, "first_gap", min=1)
    _check_thought_and_pad(thought_id, pad_id)
    _check_generator(generator)
    batch = tokens.shape[0]
    if isinstance(n, Tensor):
        check_tensor(n, "n", ndim=1, dtype="int")
        if n.shape[0] != batch or (n.numel() and int(n.min()) < 0):
            raise ValueError(f"n must hold {batch} non-negative counts, got {tuple(n.shape)}")
    elif not (isinstance(n, int) and not isinstance(n, bool) and n >= 0):
        raise ValueError(f"n must be a non-negative int or a tensor of counts, got {n!r}")
    return _insert_random_thoughts(tokens, lengths, n, thought_id, pad_id, generator, first_gap)


def _insert_random_thoughts(tokens: Tensor, lengths: Tensor, n: int | Tensor, thought_id: int, pad_id: int,
                            generator: torch.Generator | None, first_gap: int) -> tuple[Tensor, Tensor]:
    batch, pos = tokens.shape
    counts = n.to(tokens.device)[:, None] if isinstance(n, Tensor) else n
    ar = torch.arange(pos + 1, device=tokens.device)[None]
    gap_ok = (ar >= first_gap) & (ar < lengths[:, None])  # a text token follows the thought
    noise = torch.rand(batch, pos + 1, generator=generator).to(tokens.device).masked_fill(~gap_ok, 2.0)
    rank = noise.argsort(1).argsort(1)  # rank of each gap's noise in its row
    mask = gap_ok & (rank < counts)
    new, new_lengths, _ = _insert_before_mask(tokens, lengths, mask, thought_id, pad_id)
    return new, new_lengths


def stack_rows(batches: list[tuple[Tensor, Tensor]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Concatenate ``(tokens, lengths)`` batches of different widths into one right-padded batch."""
    if not batches:
        raise ValueError("no batches to stack")
    width = max(t.shape[1] for t, _ in batches)
    toks = [torch.nn.functional.pad(t, (0, width - t.shape[1]), value=pad_id) for t, _ in batches]
    return torch.cat(toks), torch.cat([l for _, l in batches])


def plain_batch(windows: Int[Tensor, "batch pos"]) -> tuple[Tensor, Tensor]:
    """A batch of full windows as ``(tokens, lengths)``."""
    check_tensor(windows, "windows", ndim=2, dtype="int")
    return windows, torch.full((windows.shape[0],), windows.shape[1], dtype=torch.long, device=windows.device)


__all__ = [
    "RULES",
    "EpisodeResult",
    "FastForwardResult",
    "PositionStats",
    "RoundResult",
    "ThoughtBatch",
    "candidate_mask",
    "choose_positions",
    "fast_forward",
    "insert_before_mask",
    "insert_random_thoughts",
    "insert_tokens",
    "insertion_round",
    "insertion_scores",
    "keep_best",
    "original_index",
    "placement_scores",
    "plain_batch",
    "position_stats",
    "run_episode",
    "stack_rows",
    "start_batch",
    "text_log_likelihood",
    "text_log_probs",
    "thought_gate",
    "thought_lm_targets",
    "thought_ranks",
]
