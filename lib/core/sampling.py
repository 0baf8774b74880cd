"""From logits to text: temperature, top-k, top-p (nucleus) and an autoregressive ``generate``.

Every strategy is a transformation of the last position's logits followed by one draw from the
softmax; greedy decoding is the limit of temperature -> 0.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from lib.core import checks


def _check_logits(logits: Tensor) -> None:
    """A floating-point ``[batch, d_vocab]`` tensor without NaN or +inf, with at least one finite
    logit per row (-inf marks a banned token). A NaN would otherwise be picked by argmax."""
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point torch.Tensor, got {checks._got(logits)}")
    if logits.ndim != 2 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape [batch, d_vocab], got {tuple(logits.shape)}")
    if logits.numel():
        if bool(torch.isnan(logits).any()) or bool((logits == float("inf")).any()):
            raise ValueError("logits hold NaN or +inf values")
        if not bool(torch.isfinite(logits).any(dim=-1).all()):
            raise ValueError("logits have a row where every entry is -inf: nothing can be sampled")


def _check_options(temperature, top_k, top_p, generator) -> None:
    checks.check_float(temperature, "temperature", min=0.0)
    checks.check_int(top_k, "top_k", min=1, allow_none=True)
    if top_p is not None:
        checks.check_prob(top_p, "top_p", allow_zero=False)
    checks.check_type(generator, "generator", torch.Generator, allow_none=True)


def apply_temperature(logits: Float[Tensor, "batch d_vocab"], temperature: float) -> Float[Tensor, "batch d_vocab"]:
    """Divide by the temperature: < 1 sharpens the distribution, > 1 flattens it."""
    _check_logits(logits)
    checks.check_float(temperature, "temperature (use greedy decoding for 0)", positive=True)
    return logits / temperature


def top_k_filter(logits: Float[Tensor, "batch d_vocab"], k: int) -> Float[Tensor, "batch d_vocab"]:
    """Keep the ``k`` largest logits of each row, set the rest to -inf (ties at the cut are kept)."""
    _check_logits(logits)
    checks.check_int(k, "k", min=1)
    k = min(k, logits.shape[-1])
    kth = logits.topk(k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Float[Tensor, "batch d_vocab"], p: float) -> Float[Tensor, "batch d_vocab"]:
    """Nucleus filtering (Holtzman et al. 2020): keep the smallest set of most likely tokens whose
    probabilities sum to at least ``p``; the most likely token is always kept."""
    _check_logits(logits)
    checks.check_prob(p, "p", allow_zero=False)
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
    _check_options(temperature, top_k, top_p, generator)
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
    device = checks.model_device(model)
    cfg = getattr(model, "cfg", None)
    if not hasattr(cfg, "n_ctx") or not hasattr(cfg, "d_vocab"):
        raise TypeError(f"model must be one of the course's models (with .cfg.n_ctx and .cfg.d_vocab), got {type(model).__name__}")
    checks.check_token_ids(tokens, "tokens", cfg.d_vocab)
    if tokens.shape[1] == 0:
        raise ValueError("tokens must hold a prompt of at least one token")
    checks.check_int(max_new_tokens, "max_new_tokens", min=0)
    _check_options(temperature, top_k, top_p, None)
    checks.check_int(seed, "seed", min=0, allow_none=True)
    checks.check_int(stop_token, "stop_token", min=0, max=cfg.d_vocab - 1, allow_none=True)
    checks.check_bool(use_kv_cache, "use_kv_cache")
    with checks.eval_mode(model):
        return _generate(model, tokens.to(device), max_new_tokens, temperature, top_k, top_p, seed, stop_token, use_kv_cache)


def _generate(model, tokens, max_new_tokens, temperature, top_k, top_p, seed, stop_token, use_kv_cache) -> Tensor:
    n_ctx = model.cfg.n_ctx
    device = tokens.device
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    finished = torch.zeros(tokens.shape[0], dtype=torch.bool, device=device)
    cache = None
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
    return tokens
