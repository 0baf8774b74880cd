"""A circuit small enough to find by hand: induction heads in a 2-layer attention-only model.

On a sequence of random tokens repeated twice, ``[BOS, t1 .. tL, t1 .. tL]``, the first half is
unpredictable (about ln(d_vocab - 1) nats per token) but the second half can be copied: at the
second ``t_j`` look back for the earlier ``t_j`` and predict what came after it. A two-layer
attention-only transformer learns this with two heads working together (Elhage et al. 2021,
Olsson et al. 2022):

- a **previous-token head** in layer 0 writes into each position which token came just before it
  (its pattern is the diagonal at offset 1);
- an **induction head** in layer 1 matches the current token against those "previous token"
  records (its keys are built from the layer-0 head's output: K-composition), so it attends to the
  position just AFTER the earlier copy and copies that token to the output. On this task its
  pattern is a stripe at offset ``half_len - 1``.

The model reuses the course's parts (:mod:`lib.core.model`: embeddings, attention with TransformerLens'
hook names, unembedding) without MLPs or LayerNorms, so every path through it is a sum of attention
heads, and ``run_with_cache`` / ``run_with_hooks`` work as on the course's GPT.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from lib.core.model import Attention, Embed, GPTConfig, PosEmbed, Unembed, check_token_ids, init_gpt2_weights

BOS = 0  # token 0 starts every sequence; the random tokens are drawn from 1 .. d_vocab - 1


@dataclass
class InductionConfig:
    """Shape of the attention-only model and of its task."""

    d_vocab: int = 64
    half_len: int = 24  # random tokens per half: sequences are 1 + 2 * half_len long
    d_model: int = 64
    n_heads: int = 4
    d_head: int = 16
    n_layers: int = 2
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("d_vocab", "half_len", "d_model", "n_heads", "d_head", "n_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"InductionConfig.{name} must be a positive int, got {value!r}")
        if self.d_vocab < 3:
            raise ValueError(f"InductionConfig.d_vocab must be at least 3 (BOS and two tokens), got {self.d_vocab}")
        if self.half_len < 2:
            raise ValueError(f"InductionConfig.half_len must be at least 2, got {self.half_len}")

    @property
    def n_ctx(self) -> int:
        return 1 + 2 * self.half_len

    def gpt_config(self) -> GPTConfig:
        """The shapes the reused :mod:`lib.core.model` parts read (d_mlp is unused: there is no MLP)."""
        return GPTConfig(d_vocab=self.d_vocab, n_ctx=self.n_ctx, d_model=self.d_model, n_layers=self.n_layers,
                         n_heads=self.n_heads, d_head=self.d_head, d_mlp=1, init_std=self.init_std)


def repeated_random_tokens(
    batch: int, half_len: int, d_vocab: int, generator: torch.Generator | None = None
) -> Int[Tensor, "batch pos"]:
    """``[batch, 1 + 2 * half_len]``: BOS, then ``half_len`` random tokens (1 .. d_vocab - 1), then
    the same tokens again."""
    for name, value in (("batch", batch), ("half_len", half_len), ("d_vocab", d_vocab)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if d_vocab < 3:
        raise ValueError(f"d_vocab must be at least 3, got {d_vocab}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    half = torch.randint(1, d_vocab, (batch, half_len), generator=generator)
    return torch.cat([torch.full((batch, 1), BOS, dtype=torch.long), half, half], dim=1)


def varied_repeat_tokens(
    batch: int, half_len: int, d_vocab: int, generator: torch.Generator | None = None, min_period: int | None = None
) -> Int[Tensor, "batch pos"]:
    """Training data: ``[batch, 1 + 2 * half_len]``, each row BOS, ``m`` random tokens, the same ``m``
    tokens again, then random tokens up to the full length, with the period ``m`` drawn per row from
    ``min_period .. half_len`` (default ``half_len // 2``).

    Why vary it: with one fixed period, "attend to the position half_len - 1 back" solves the task by
    position alone, and the model learns that instead of an induction circuit (measured: ablating
    layer 0 then changes nothing). With a varying period only matching CONTENT finds the earlier copy.
    """
    base = repeated_random_tokens(batch, half_len, d_vocab, generator)  # also checks the arguments
    low = max(2, half_len // 2) if min_period is None else min_period
    if not isinstance(low, int) or not 2 <= low <= half_len:
        raise ValueError(f"min_period must be an int in [2, {half_len}], got {min_period!r}")
    periods = torch.randint(low, half_len + 1, (batch,), generator=generator)
    noise = torch.randint(1, d_vocab, base.shape, generator=generator)
    pos = torch.arange(base.shape[1])[None]
    m = periods[:, None]
    first = base[:, 1 : half_len + 1]
    # position p of the second copy (m < p <= 2m) repeats the token at p - m
    source = torch.where((pos > m) & (pos <= 2 * m), pos - m, pos).clamp(max=half_len)
    tokens = torch.where(pos <= m, base, noise)
    tokens = torch.where((pos > m) & (pos <= 2 * m), first.gather(1, (source - 1).clamp(min=0)), tokens)
    tokens[:, 0] = BOS
    return tokens


class AttnOnlyBlock(nn.Module):
    """resid_post = resid_pre + attn(resid_pre): attention only, no LayerNorm, no MLP."""

    def __init__(self, cfg: GPTConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.attn = Attention(cfg)
        self.hook_resid_pre = HookPoint()  # [batch, pos, d_model]
        self.hook_attn_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_post = HookPoint()  # [batch, pos, d_model]

    def forward(self, resid: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        resid = self.hook_resid_pre(resid)
        return self.hook_resid_post(resid + self.hook_attn_out(self.attn(resid)))


class AttnOnlyTransformer(HookedRootModule):
    """Embeddings, ``n_layers`` attention-only blocks, unembedding; hook names as in TransformerLens
    (``blocks.0.attn.hook_pattern``, ``blocks.1.attn.hook_z`` ...)."""

    def __init__(self, cfg: InductionConfig):
        super().__init__()
        if not isinstance(cfg, InductionConfig):
            raise TypeError(f"AttnOnlyTransformer expects an InductionConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        parts = cfg.gpt_config()
        self.embed = Embed(parts)
        self.hook_embed = HookPoint()
        self.pos_embed = PosEmbed(parts)
        self.hook_pos_embed = HookPoint()
        self.blocks = nn.ModuleList([AttnOnlyBlock(parts, i) for i in range(cfg.n_layers)])
        self.unembed = Unembed(parts)
        init_gpt2_weights(self, cfg.init_std, cfg.n_layers)
        self.setup()

    def forward(self, tokens: Int[Tensor, "batch pos"], return_type: str = "logits"):
        """``return_type``: ``"logits"`` ``[batch, pos, d_vocab]`` or ``"loss"`` (mean next-token
        loss over the whole sequence)."""
        if return_type not in ("logits", "loss"):
            raise ValueError(f"return_type must be 'logits' or 'loss', got {return_type!r}")
        batch, pos = check_token_ids(tokens, self.cfg.d_vocab)
        if pos > self.cfg.n_ctx:
            raise ValueError(f"sequence of {pos} positions exceeds n_ctx = {self.cfg.n_ctx}")
        resid = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(batch, pos, 0))
        for block in self.blocks:
            resid = block(resid)
        logits = self.unembed(resid)
        if return_type == "logits":
            return logits
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def per_token_loss(logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos_minus_1"]:
    """Loss of predicting token i + 1 from position i, for every i."""
    if logits.ndim != 3 or tokens.shape != logits.shape[:2]:
        raise ValueError(f"logits [batch, pos, d_vocab] and tokens [batch, pos] must agree, got "
                         f"{tuple(logits.shape)} and {tuple(tokens.shape)}")
    return -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


def half_losses(logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"], half_len: int) -> tuple[float, float]:
    """(mean loss on the first half's tokens, on the repeated half's tokens), in nats per token.

    The first half's tokens are positions 2 .. half_len (the first random token cannot be predicted
    by anything, so it is left out); the repeated half's are positions half_len + 2 .. 2 * half_len
    (its first token, half_len + 1, is the first one that has been seen before but whose successor
    has not, so it is left out too: both halves average half_len - 1 tokens).
    """
    if tokens.shape[1] != 1 + 2 * half_len:
        raise ValueError(f"tokens must have 1 + 2 * half_len = {1 + 2 * half_len} positions, got {tokens.shape[1]}")
    loss = per_token_loss(logits, tokens)  # column i scores token i + 1
    first = loss[:, 1:half_len].mean().item()
    second = loss[:, half_len + 1 :].mean().item()
    return first, second


def train_induction_model(
    cfg: InductionConfig,
    steps: int = 600,
    batch_size: int = 32,
    lr: float = 1e-2,
    seed: int = 0,
    progress: bool = False,
) -> tuple[AttnOnlyTransformer, dict[str, list[float]]]:
    """Train on fresh sequences every step (:func:`varied_repeat_tokens`; AdamW, linear warm-up
    over 10% of the steps, then a cosine decay to 10% of ``lr``).

    Returns the model (in eval mode) and a history measured every 10 steps on a fixed batch of the
    standard layout (:func:`repeated_random_tokens`): ``step``, ``loss_first`` and ``loss_second``
    (each half's loss, nats per token) and ``seconds``.
    """
    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    torch.manual_seed(seed)
    model = AttnOnlyTransformer(cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 10)
    history: dict[str, list[float]] = {"step": [], "loss_first": [], "loss_second": [], "seconds": []}
    start = time.perf_counter()
    iterator = range(steps)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="training", mininterval=1.0)
    probe = repeated_random_tokens(64, cfg.half_len, cfg.d_vocab, torch.Generator().manual_seed(seed + 2))
    model.train()
    for step in iterator:
        # linear warm-up, then a cosine down to 10%: the late steps settle the heads instead of jittering
        progress = max(0.0, (step + 1 - warmup) / max(1, steps - warmup))
        scale = min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimizer.param_groups:
            group["lr"] = lr * scale
        tokens = varied_repeat_tokens(batch_size, cfg.half_len, cfg.d_vocab, gen)
        logits = model(tokens)
        loss = per_token_loss(logits, tokens).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 10 == 0 or step == steps - 1:
            with torch.no_grad():
                first, second = half_losses(model(probe), probe, cfg.half_len)
            history["step"].append(step)
            history["loss_first"].append(first)
            history["loss_second"].append(second)
            history["seconds"].append(time.perf_counter() - start)
    return model.eval(), history


def _check_pattern(pattern: Tensor) -> None:
    if not isinstance(pattern, Tensor) or not pattern.is_floating_point():
        raise TypeError("pattern must be a floating-point torch.Tensor [batch, head, query, key]")
    if pattern.ndim != 4 or pattern.shape[-1] != pattern.shape[-2]:
        raise ValueError(f"pattern must have shape [batch, head, pos, pos], got {tuple(pattern.shape)}")


def stripe_score(pattern: Float[Tensor, "batch head q k"], offset: int, queries: slice | None = None) -> Float[Tensor, " head"]:
    """Mean attention each head pays from query i to key ``i - offset`` (over the queries in
    ``queries``, by default every query that has such a key): 1.0 means the head looks only there."""
    _check_pattern(pattern)
    pos = pattern.shape[-1]
    if not isinstance(offset, int) or not 0 <= offset < pos:
        raise ValueError(f"offset must be an int in [0, {pos}), got {offset!r}")
    q = torch.arange(offset, pos)
    on_stripe = pattern[:, :, q, q - offset]  # [batch, head, n_queries]
    if queries is not None:
        keep = torch.zeros(pos, dtype=torch.bool)
        keep[queries] = True
        on_stripe = on_stripe[:, :, keep[q]]
        if on_stripe.shape[-1] == 0:
            raise ValueError(f"no query in {queries} has a key at offset {offset}")
    return on_stripe.mean(dim=(0, 2))


def previous_token_scores(cache, n_layers: int) -> Float[Tensor, "layer head"]:
    """Attention to the previous token (offset 1) of every head, from a ``run_with_cache`` cache."""
    return torch.stack([stripe_score(cache[f"blocks.{l}.attn.hook_pattern"], 1) for l in range(n_layers)])


def induction_scores(cache, n_layers: int, half_len: int) -> Float[Tensor, "layer head"]:
    """Attention from each token of the repeated half to the token just AFTER its earlier copy
    (offset ``half_len - 1``), for every head."""
    second_half = slice(half_len + 1, 2 * half_len + 1)
    return torch.stack([
        stripe_score(cache[f"blocks.{l}.attn.hook_pattern"], half_len - 1, second_half) for l in range(n_layers)
    ])


def zero_ablate_head_hook(head: int):
    """A ``hook_z`` hook that removes one head's output (its z set to 0, so it adds nothing)."""
    if not isinstance(head, int) or head < 0:
        raise ValueError(f"head must be a non-negative int, got {head!r}")

    def hook(z: Float[Tensor, "batch pos head d_head"], hook=None) -> Tensor:
        if head >= z.shape[2]:
            raise ValueError(f"head {head} out of range: z has {z.shape[2]} heads")
        z = z.clone()
        z[:, :, head] = 0.0
        return z

    return hook


def ablation_half_losses(
    model: AttnOnlyTransformer, tokens: Int[Tensor, "batch pos"], heads: list[tuple[int, int]]
) -> tuple[float, float]:
    """(first-half loss, repeated-half loss) with the given (layer, head) pairs zero-ablated."""
    if not isinstance(model, AttnOnlyTransformer):
        raise TypeError(f"model must be an AttnOnlyTransformer, got {type(model).__name__}")
    hooks = []
    for layer, head in heads:
        if not 0 <= layer < model.cfg.n_layers or not 0 <= head < model.cfg.n_heads:
            raise ValueError(f"(layer, head) = ({layer}, {head}) is outside the model's "
                             f"{model.cfg.n_layers} x {model.cfg.n_heads} heads")
        hooks.append((f"blocks.{layer}.attn.hook_z", zero_ablate_head_hook(head)))
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return half_losses(logits, tokens, model.cfg.half_len)


def chance_loss(d_vocab: int) -> float:
    """Nats per token of a uniform guess among the d_vocab - 1 random tokens."""
    return math.log(d_vocab - 1)


# The settings notebook 04b trains with (and tests/test_circuits.py checks): chosen among a few
# tried on the 2-core CPU as the cheapest that forms both heads (4 heads of 16 or d_model 32 did
# not, or only partly, within 600-800 steps). See notebooks/04b_induction_heads.ipynb.
NOTEBOOK_CONFIG = InductionConfig(d_vocab=64, half_len=16, d_model=64, n_heads=2, d_head=32, n_layers=2)
NOTEBOOK_STEPS = 600
NOTEBOOK_LR = 1.5e-2
