"""From logits to text: temperature, top-k, top-p (nucleus) and an autoregressive ``generate``.

Every strategy is a transformation of the last position's logits followed by one draw from the
softmax; greedy decoding is the limit of temperature -> 0.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor


def _check_logits(logits: Tensor) -> None:
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating-point torch.Tensor")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape [batch, d_vocab], got {tuple(logits.shape)}")


def apply_temperature(logits: Float[Tensor, "batch d_vocab"], temperature: float) -> Float[Tensor, "batch d_vocab"]:
    """Divide by the temperature: < 1 sharpens the distribution, > 1 flattens it."""
    _check_logits(logits)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use greedy for 0), got {temperature}")
    return logits / temperature


def top_k_filter(logits: Float[Tensor, "batch d_vocab"], k: int) -> Float[Tensor, "batch d_vocab"]:
    """Keep the ``k`` largest logits of each row, set the rest to -inf (ties at the cut are kept)."""
    _check_logits(logits)
    if not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")
    k = min(k, logits.shape[-1])
    kth = logits.topk(k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Float[Tensor, "batch d_vocab"], p: float) -> Float[Tensor, "batch d_vocab"]:
    """Nucleus filtering (Holtzman et al. 2020): keep the smallest set of most likely tokens whose
    probabilities sum to at least ``p``; the most likely token is always kept."""
    _check_logits(logits)
    if not 0 < p <= 1:
        raise ValueError(f"p must lie in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # Drop a token when the tokens before it already reach p.
    drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next_token(
    logits: Float[Tensor, "batch d_vocab"],
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Int[Tensor, " batch"]:
    """One token per row. ``temperature == 0`` means greedy (argmax)."""
    _check_logits(logits)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = apply_temperature(logits.float(), temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(dim=-1)
    if generator is not None and generator.device != probs.device:
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(
    model,
    tokens: Int[Tensor, "batch pos"],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = 0,
    stop_token: int | None = None,
    use_kv_cache: bool = True,
) -> Int[Tensor, "batch total_pos"]:
    """Sample ``max_new_tokens`` tokens after ``tokens``, feeding each one back in.

    With ``use_kv_cache`` each step runs the model on one new position only (earlier keys and
    values are cached); without it every step reruns the whole prefix, which is what the
    definition says and what the cache must reproduce. When the sequence outgrows the model's
    context, the oldest tokens are dropped and the cache is rebuilt.
    Rows that produced ``stop_token`` keep emitting it.
    """
    if not isinstance(tokens, Tensor) or tokens.ndim != 2 or tokens.is_floating_point():
        raise ValueError("tokens must be an integer tensor of shape [batch, pos]")
    if tokens.shape[1] == 0:
        raise ValueError("generation needs a prompt of at least one token")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    n_ctx = model.cfg.n_ctx
    device = next(model.parameters()).device
    tokens = tokens.to(device)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    finished = torch.zeros(tokens.shape[0], dtype=torch.bool, device=device)
    cache = None
    was_training = model.training
    model.eval()
    for _ in range(max_new_tokens):
        if use_kv_cache and cache is not None and cache.length < n_ctx:
            logits = model(tokens[:, -1:], kv_cache=cache)
        else:
            window = tokens[:, -n_ctx:]
            cache = model.new_kv_cache() if use_kv_cache else None
            logits = model(window, kv_cache=cache)
        next_tok = sample_next_token(logits[:, -1], temperature, top_k, top_p, gen)
        if stop_token is not None:
            next_tok = torch.where(finished, torch.full_like(next_tok, stop_token), next_tok)
            finished |= next_tok == stop_token
        tokens = torch.cat([tokens, next_tok[:, None]], dim=1)
        if stop_token is not None and bool(finished.all()):
            break
    model.train(was_training)
    return tokens
