"""Dense tokens: positions whose input is a vector the model produced, not a row of ``W_E``.

Where the sequence holds ``<|dense|>`` at position t, the model's input there is

    W_E[<|dense|>] + h[t - 1]

with ``h[t - 1]`` the final hidden state at the position before (``d_model`` wide: the vector the
unembedding reads, so no vocabulary-sized vector is ever stored). At generation this is
sequential: the vector exists only once position t - 1 has been computed, and it is passed
forward only at positions whose token is ``<|dense|>`` (given in the prompt or sampled).

Training wants the whole sequence in one go, so we **unroll**: pass 0 runs with no vectors; pass k
feeds every dense position the hidden state that pass k - 1 produced at the position before it;
the loss is computed on the last pass, and backpropagation runs through every pass (Coconut, Hao
et al. 2024, trains its continuous thoughts with one pass per thought in the same spirit).

Depth and exactness: after ``depth`` passes that produce vectors (``depth + 1`` forward passes in
all), the result equals the sequential computation whenever the sequence holds at most ``depth``
dense tokens: the first dense token's vector is exact after pass 1, the second's after pass 2
(it depends on everything before it, the first dense token included), and so on.

``source`` picks the vector: ``"normed"`` is the hidden state after the final LayerNorm (its size
is set by the LayerNorm gain), ``"raw"`` the residual stream before it (its size is free to grow
from pass to pass: the instability reported for continuous thoughts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from lib.core.checks import check_tensor, check_token_id, check_token_ids, eval_mode
from lib.core.model import GPT, KVCache, per_token_log_probs

Source = Literal["normed", "raw"]
SOURCES: tuple[str, ...] = ("normed", "raw")


def _check_tokens(model: GPT, tokens: Tensor, name: str = "tokens") -> None:
    if not isinstance(tokens, Tensor) or tokens.is_floating_point() or tokens.ndim != 2:
        raise ValueError(f"{name} must be an integer tensor of shape [batch, pos], got {getattr(tokens, 'shape', tokens)}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= model.cfg.d_vocab):
        raise ValueError(f"{name} hold ids outside [0, {model.cfg.d_vocab})")


def _check_dense_id(model: GPT, dense_id: int) -> None:
    if not isinstance(dense_id, int) or not 0 <= dense_id < model.cfg.d_vocab:
        raise ValueError(f"dense_id must be a token id in [0, {model.cfg.d_vocab}), got {dense_id!r}")


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")


# --------------------------------------------------------------------------- the mechanism
def dense_mask(tokens: Int[Tensor, "batch pos"], dense_id: int) -> Bool[Tensor, "batch pos"]:
    """True where the token is ``<|dense|>``: the only places a vector may enter."""
    if not isinstance(tokens, Tensor) or tokens.is_floating_point() or tokens.ndim != 2:
        raise ValueError("tokens must be an integer tensor of shape [batch, pos]")
    return tokens == dense_id


def shift_to_next_position(hidden: Float[Tensor, "batch pos d"]) -> Float[Tensor, "batch pos d"]:
    """``out[:, t] = hidden[:, t - 1]`` and ``out[:, 0] = 0``: the vector produced at t - 1 is the
    one that enters at t (position 0 has nothing before it)."""
    if not isinstance(hidden, Tensor) or hidden.ndim != 3:
        raise ValueError(f"hidden must have shape [batch, pos, d], got {getattr(hidden, 'shape', hidden)}")
    return F.pad(hidden[:, :-1], (0, 0, 1, 0))


def add_dense_vectors(
    token_embeds: Float[Tensor, "batch pos d"],
    vectors: Float[Tensor, "batch pos d"],
    mask: Bool[Tensor, "batch pos"],
) -> Float[Tensor, "batch pos d"]:
    """Add ``vectors`` to the token embeddings at masked positions only; elsewhere the input is
    the ordinary one-hot embedding."""
    if token_embeds.shape != vectors.shape:
        raise ValueError(f"token_embeds {tuple(token_embeds.shape)} and vectors {tuple(vectors.shape)} must match")
    if mask.shape != token_embeds.shape[:2] or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(token_embeds.shape[:2])}")
    return token_embeds + vectors * mask[..., None].to(vectors.dtype)


def dense_embed_hook(vectors: Float[Tensor, "batch pos d"], mask: Bool[Tensor, "batch pos"]) -> Callable:
    """A hook for ``hook_embed`` doing :func:`add_dense_vectors` inside the model, so
    ``model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", dense_embed_hook(v, m))])`` runs a
    forward pass with dense inputs (the same computation as ``model(input_embeds=...)``)."""

    def hook(embed: Tensor, hook=None) -> Tensor:
        return add_dense_vectors(embed, vectors, mask)

    return hook


def hidden_and_logits(
    model: GPT,
    input_embeds: Float[Tensor, "batch pos d_model"],
    source: Source = "normed",
    kv_cache: KVCache | None = None,
) -> tuple[Float[Tensor, "batch pos d_model"], Float[Tensor, "batch pos d_vocab"]]:
    """One forward pass returning the vectors it would pass on (``source``) and its logits."""
    _check_source(source)
    resid = model(input_embeds=input_embeds, return_type="resid", kv_cache=kv_cache)
    normed = model.ln_final(resid)
    return (normed if source == "normed" else resid), model.unembed(normed)


@dataclass
class UnrolledOutput:
    logits: Tensor  # [batch, pos, d_vocab] of the last pass
    vectors: list[Tensor] = field(default_factory=list)  # the vectors fed in passes 1..depth, [batch, pos, d] each
    mask: Tensor | None = None  # [batch, pos] dense positions


def unrolled_forward(
    model: GPT,
    tokens: Int[Tensor, "batch pos"],
    dense_id: int,
    depth: int,
    source: Source = "normed",
    truncate_backprop: bool = False,
) -> UnrolledOutput:
    """``depth + 1`` forward passes; pass k feeds dense positions the hidden states of pass k - 1.

    ``depth = 0`` is an ordinary forward (dense tokens get only their embedding, like pause
    tokens). ``truncate_backprop`` detaches the vectors between passes, so gradients no longer
    reach the parameters through the earlier passes (a baseline for the gradient test).
    """
    _check_tokens(model, tokens)
    _check_dense_id(model, dense_id)
    _check_source(source)
    if not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an int >= 0, got {depth!r}")
    return _unrolled_forward(model, tokens, dense_id, depth, source, truncate_backprop)


def _unrolled_forward(model: GPT, tokens: Tensor, dense_id: int, depth: int, source: Source = "normed",
                      truncate_backprop: bool = False) -> UnrolledOutput:
    """:func:`unrolled_forward` for arguments its caller has checked."""
    mask = tokens == dense_id
    embeds = model.embed(tokens)
    out = UnrolledOutput(logits=torch.empty(0), mask=mask)
    vectors = torch.zeros_like(embeds)
    for _ in range(depth):
        hidden, _ = hidden_and_logits(model, add_dense_vectors(embeds, vectors, mask), source)
        vectors = shift_to_next_position(hidden.detach() if truncate_backprop else hidden)
        out.vectors.append(vectors)
    _, out.logits = hidden_and_logits(model, add_dense_vectors(embeds, vectors, mask), source)
    return out


def unrolled_loss(
    model: GPT,
    tokens: Int[Tensor, "batch pos"],
    targets: Int[Tensor, "batch pos"],
    dense_id: int,
    depth: int,
    source: Source = "normed",
    truncate_backprop: bool = False,
) -> Tensor:
    """Cross-entropy of the last unrolled pass against ``targets`` (-100 ignored)."""
    logits = unrolled_forward(model, tokens, dense_id, depth, source, truncate_backprop).logits
    return GPT.loss(logits, targets=targets)


# --------------------------------------------------------------------------- sequential (generation)
def _step(
    model: GPT, token: Tensor, previous: Tensor | None, dense_id: int, cache: KVCache, source: Source
) -> tuple[Tensor, Tensor]:
    """Feed one position per row: ``token`` [batch], ``previous`` the hidden state of the position
    before (None at position 0). Returns the new position's logits and hidden state."""
    embeds = model.embed(token[:, None])
    if previous is not None:
        embeds = add_dense_vectors(embeds, previous[:, None], (token == dense_id)[:, None])
    hidden, logits = hidden_and_logits(model, embeds, source, kv_cache=cache)
    return logits[:, 0], hidden[:, 0]


def sequential_forward(
    model: GPT, tokens: Int[Tensor, "batch pos"], dense_id: int, source: Source = "normed"
) -> Float[Tensor, "batch pos d_vocab"]:
    """The exact computation, one position at a time with a KV cache: each dense position gets
    the hidden state that was just computed before it. What :func:`unrolled_forward` approximates
    (and equals when depth >= the number of dense tokens)."""
    _check_tokens(model, tokens)
    _check_dense_id(model, dense_id)
    _check_source(source)
    cache, previous, logits = model.new_kv_cache(), None, []
    for t in range(tokens.shape[1]):
        step_logits, previous = _step(model, tokens[:, t], previous, dense_id, cache, source)
        logits.append(step_logits)
    return torch.stack(logits, dim=1)


@torch.no_grad()
def generate_with_dense(
    model: GPT,
    prompt: Int[Tensor, "batch pos"],
    max_new_tokens: int,
    dense_id: int,
    temperature: float = 0.0,
    source: Source = "normed",
    seed: int | None = 0,
) -> tuple[Int[Tensor, "batch total"], Float[Tensor, "batch total d_model"]]:
    """Generate, passing the hidden state forward only where the current token is ``<|dense|>``
    (given in the prompt or sampled). Returns the tokens and the vector that entered at each
    position (zero where none did)."""
    from lib.core.sampling import sample_next_token

    _check_tokens(model, prompt, "prompt")
    _check_dense_id(model, dense_id)
    _check_source(source)
    if prompt.shape[1] == 0:
        raise ValueError("generation needs a prompt of at least one token")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if prompt.shape[1] + max_new_tokens > model.cfg.n_ctx:
        raise ValueError(f"prompt + new tokens = {prompt.shape[1] + max_new_tokens} exceeds n_ctx = {model.cfg.n_ctx}")
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    with eval_mode(model):
        cache, previous = model.new_kv_cache(), None
        tokens, entered = [], []
        step_logits = None
        for t in range(prompt.shape[1] + max_new_tokens):
            token = prompt[:, t] if t < prompt.shape[1] else sample_next_token(step_logits, temperature, generator=gen)
            entered.append(torch.zeros(prompt.shape[0], model.cfg.d_model, device=prompt.device) if previous is None
                           else previous * (token == dense_id)[:, None])
            step_logits, previous = _step(model, token, previous, dense_id, cache, source)
            tokens.append(token)
    return torch.stack(tokens, dim=1), torch.stack(entered, dim=1)


# --------------------------------------------------------------------------- looking at the vectors
def dense_vector_norms(vectors: Float[Tensor, "batch pos d"], mask: Bool[Tensor, "batch pos"]) -> Tensor:
    """L2 norm of the vectors at dense positions, flattened: ``[n_dense]``."""
    if vectors.ndim != 3 or mask.shape != vectors.shape[:2]:
        raise ValueError(f"vectors [batch, pos, d] and mask [batch, pos] must agree, got {tuple(vectors.shape)}, {tuple(mask.shape)}")
    return vectors[mask].norm(dim=-1)


def read_dense_vector(
    model: GPT, vectors: Float[Tensor, "... d_model"], source: Source = "normed"
) -> Float[Tensor, "... d_vocab"]:
    """Logit lens on a dense vector: what the unembedding reads from it. A ``"raw"`` vector goes
    through the final LayerNorm first, as the last layer's output would."""
    _check_source(source)
    if vectors.shape[-1] != model.cfg.d_model:
        raise ValueError(f"vectors must end in d_model = {model.cfg.d_model}, got {tuple(vectors.shape)}")
    return model.unembed(vectors if source == "normed" else model.ln_final(vectors))


# --------------------------------------------------------------------------- which dense tokens help?
def remove_positions(
    tokens: Int[Tensor, "batch pos"],
    targets: Int[Tensor, "batch pos"],
    remove: Bool[Tensor, "batch pos"],
    pad_id: int,
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """Delete the marked positions of each row, shift the rest left and right-pad with ``pad_id``.

    Targets follow the tokens: the prediction made at a kept position i must now be the next
    *kept* token, so it takes the target that the position just before that token had. The
    target that predicted a removed token disappears with it. Padded positions get -100.
    """
    if tokens.shape != targets.shape or remove.shape != tokens.shape or remove.dtype != torch.bool:
        raise ValueError(
            f"tokens {tuple(tokens.shape)}, targets {tuple(targets.shape)} and a bool remove mask must have the same shape"
        )
    B, T = tokens.shape
    index = torch.arange(T, device=tokens.device).expand(B, T)
    # next_kept_from[i] = first kept position >= i (T if none): a reverse running minimum.
    kept_index = torch.where(remove, torch.full_like(index, T), index)
    next_kept_from = kept_index.flip(1).cummin(dim=1).values.flip(1)
    next_kept = torch.cat([next_kept_from[:, 1:], torch.full((B, 1), T, device=tokens.device)], dim=1)
    source = (next_kept - 1).clamp(max=T - 1)
    shifted_targets = torch.where(next_kept < T, targets.gather(1, source), torch.full_like(targets, -100))
    # Stable compaction: kept positions first, in order.
    order = torch.sort(remove.long() * T + index, dim=1).indices
    n_kept = (~remove).sum(dim=1, keepdim=True)
    tail = index >= n_kept
    new_tokens = tokens.gather(1, order).masked_fill(tail, pad_id)
    new_targets = shifted_targets.gather(1, order).masked_fill(tail, -100)
    return new_tokens, new_targets


_IGNORE = -100  # the target of a position that is not scored


def _check_logits_and_targets(logits, targets) -> None:
    """``logits`` float ``[batch, pos, d_vocab]``, ``targets`` integer ``[batch, pos]`` holding ids
    in ``[0, d_vocab)`` or -100: any other negative id would be read as a clamped token 0."""
    check_tensor(logits, "logits", ndim=3, dtype="float")
    check_token_ids(targets, "targets", logits.shape[-1], ndim=2, ignore_index=_IGNORE)
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must agree on [batch, pos]")


def target_log_likelihood(
    logits: Float[Tensor, "batch pos d_vocab"], targets: Int[Tensor, "batch pos"]
) -> Float[Tensor, " batch"]:
    """Sum over each row of log p(target) at the positions whose target is not -100."""
    _check_logits_and_targets(logits, targets)
    return _target_log_likelihood(logits, targets)


def _target_log_likelihood(logits: Tensor, targets: Tensor) -> Tensor:
    scored = targets != _IGNORE
    log_probs = logits.log_softmax(dim=-1).gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
    return (log_probs * scored).sum(dim=1)


def targets_accuracy(logits: Float[Tensor, "batch pos d_vocab"], targets: Int[Tensor, "batch pos"]) -> float:
    """Fraction of rows whose greedy prediction is right at every scored position (target != -100)."""
    _check_logits_and_targets(logits, targets)
    scored = targets != _IGNORE
    if not bool(scored.any()):  # the mean of rows with nothing to get wrong would be a perfect 1.0
        raise ValueError("nothing to score: every entry of targets is -100 (ignored); targets must hold at least one id")
    right = (logits.argmax(dim=-1) == targets) | ~scored
    return right.all(dim=1).float().mean().item()


@torch.no_grad()
def deletion_scores(
    model: GPT,
    tokens: Int[Tensor, "batch pos"],
    targets: Int[Tensor, "batch pos"],
    dense_id: int,
    pad_id: int,
    source: Source = "normed",
) -> Float[Tensor, "batch pos"]:
    """For every dense token: the targets' log-likelihood with it minus without it (deleted).

    Large means the token carries something the targets need; about 0 means it can go. Every
    forward is exact (as many passes as dense tokens). Non-dense positions get NaN.
    """
    _check_tokens(model, tokens)
    _check_dense_id(model, dense_id)
    _check_source(source)
    check_token_ids(targets, "targets", model.cfg.d_vocab, ndim=2, ignore_index=_IGNORE)
    if targets.shape != tokens.shape:
        raise ValueError(f"targets {tuple(targets.shape)} must have the shape of tokens {tuple(tokens.shape)}")
    check_token_id(pad_id, "pad_id", model.cfg.d_vocab)
    mask = dense_mask(tokens, dense_id)
    depth = int(mask.sum(dim=1).max()) if mask.numel() else 0
    base = _target_log_likelihood(_unrolled_forward(model, tokens, dense_id, depth, source).logits, targets)
    rows, cols = mask.nonzero(as_tuple=True)
    scores = torch.full(tokens.shape, float("nan"), device=tokens.device)
    if len(rows) == 0:
        return scores
    # One variant per dense token, all in one batch: row `rows[k]` with column `cols[k]` deleted.
    remove = torch.zeros(len(rows), tokens.shape[1], dtype=torch.bool, device=tokens.device)
    remove[torch.arange(len(rows)), cols] = True
    variant_tokens, variant_targets = remove_positions(tokens[rows], targets[rows], remove, pad_id)
    logits = _unrolled_forward(model, variant_tokens, dense_id, max(depth - 1, 0), source).logits
    scores[rows, cols] = base[rows] - _target_log_likelihood(logits, variant_targets)
    return scores


# --------------------------------------------------------------------------- one vector, optimised
def continuation_loss(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"], position: int
) -> Float[Tensor, " batch"]:
    """Mean next-token loss of the tokens after ``position`` (predicted from ``position`` on)."""
    if logits.ndim != 3 or logits.shape[:2] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and tokens {tuple(tokens.shape)} must agree")
    if not 0 <= position < tokens.shape[1] - 1:
        raise ValueError(f"position must lie in [0, {tokens.shape[1] - 1}) so that a token follows it, got {position}")
    return -per_token_log_probs(logits, tokens)[:, position:].mean(dim=1)  # entry i scores token i + 1


def token_sweep_losses(
    model: GPT, tokens: Int[Tensor, "1 pos"], position: int, chunk: int = 256
) -> Float[Tensor, " d_vocab"]:
    """Continuation loss with every vocabulary entry in turn at ``position``: the best a single
    discrete token can do there."""
    _check_tokens(model, tokens)
    if tokens.shape[0] != 1:
        raise ValueError(f"tokens must hold one sequence, got batch {tokens.shape[0]}")
    out = []
    with torch.no_grad():
        for start in range(0, model.cfg.d_vocab, chunk):
            ids = torch.arange(start, min(start + chunk, model.cfg.d_vocab), device=tokens.device)
            batch = tokens.repeat(len(ids), 1)
            batch[:, position] = ids
            out.append(continuation_loss(model(batch), batch, position))
    return torch.cat(out)


def optimize_dense_vector(
    model: GPT,
    tokens: Int[Tensor, "1 pos"],
    position: int,
    steps: int = 100,
    lr: float = 0.05,
    init: Float[Tensor, " d_model"] | None = None,
) -> tuple[Float[Tensor, " d_model"], list[float]]:
    """Everything frozen but one vector added at ``position``: Adam on that vector alone, to
    lower the loss of what follows. Returns the vector and the loss before each step (and after
    the last). The model's parameters are left untouched."""
    _check_tokens(model, tokens)
    if tokens.shape[0] != 1:
        raise ValueError(f"tokens must hold one sequence, got batch {tokens.shape[0]}")
    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    device = tokens.device
    vector = (torch.zeros(model.cfg.d_model, device=device) if init is None else init.detach().clone()).requires_grad_(True)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[0, position] = True
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)  # frozen: only the vector learns, and no parameter gradients are kept
    try:
        opt = torch.optim.Adam([vector], lr=lr)
        embeds = model.embed(tokens)
        losses = []
        for _ in range(steps + 1):
            logits = model(input_embeds=add_dense_vectors(embeds, vector.expand_as(embeds), mask))
            loss = continuation_loss(logits, tokens, position)[0]
            losses.append(loss.item())
            if len(losses) == steps + 1:
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)
    return vector.detach(), losses
