"""A GPT-2-style decoder built from its parts, with TransformerLens hook points everywhere.

The model is small enough to read in one sitting: token + position embeddings, a stack of
pre-LayerNorm blocks (causal multi-head attention, then an MLP, each added to the residual
stream), a final LayerNorm and an unembedding. Weights use TransformerLens' layouts
(``W_Q: [n_heads, d_model, d_head]`` ...) and every intermediate passes through a ``HookPoint``
named as TransformerLens names it (``blocks.0.attn.hook_pattern`` ...), so ``run_with_cache`` and
``run_with_hooks`` work exactly as they do on TransformerLens' own models.

Two extras the later notebooks need:
- ``input_embeds``: the caller may pass token embeddings instead of token ids (dense tokens feed
  the model vectors it produced itself).
- ``KVCache``: keys and values of earlier positions are kept, so generating or walking a sequence
  one token at a time costs one position per step instead of the whole prefix.

References: Vaswani et al. 2017 (attention); Radford et al. 2019 (GPT-2: pre-LN, GELU, init);
Karpathy's nanoGPT for the spirit of one readable file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from lib.core import checks

ReturnType = Literal["logits", "loss", "both", "final_resid", "resid", None]
RETURN_TYPES: tuple = ("logits", "loss", "both", "final_resid", "resid", None)
ACT_FNS: tuple[str, ...] = ("gelu", "gelu_new", "relu")


def is_hooked(*points: HookPoint) -> bool:
    """True if any of these hook points has a hook attached (TransformerLens attaches ordinary
    forward/backward hooks to the HookPoint module). Unhooked, the model may take fused fast paths
    that never materialise the intermediate the hook point would show."""
    return any(p._forward_hooks or p._backward_hooks or p._forward_pre_hooks for p in points)


def check_config_fields(config: object, int_fields: tuple[str, ...]) -> None:
    """Check a model config's fields, naming the config and the field in the message: each of
    ``int_fields`` a positive int (TypeError for a bool, float or string; ValueError for <= 0),
    ``act_fn`` one the blocks implement, and, where the config has them, ``ln_eps`` and
    ``init_std`` finite and > 0 and ``use_sdpa`` a bool (shared by GPTConfig and EncDecConfig)."""
    label = type(config).__name__
    for name in int_fields:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{label}.{name} must be a positive int, got {type(value).__name__} {value!r}")
        if value <= 0:
            raise ValueError(f"{label}.{name} must be a positive int, got {value!r}")
    act_fn = getattr(config, "act_fn")
    if act_fn not in ACT_FNS:
        raise ValueError(f"{label}.act_fn must be 'gelu', 'gelu_new' or 'relu', got {act_fn!r}")
    for name in ("ln_eps", "init_std"):
        if hasattr(config, name):
            # ln_eps <= 0 gives NaN logits (the square root of a negative variance).
            checks.check_float(getattr(config, name), f"{label}.{name}", positive=True)
    if hasattr(config, "use_sdpa"):
        checks.check_bool(getattr(config, "use_sdpa"), f"{label}.use_sdpa")


@dataclass
class GPTConfig:
    """Shape of the model. ``d_head * n_heads`` need not equal ``d_model`` (TransformerLens allows it)."""

    d_vocab: int = 2048
    n_ctx: int = 128
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    act_fn: Literal["gelu", "gelu_new", "relu"] = "gelu"
    ln_eps: float = 1e-5
    init_std: float = 0.02
    # Scaled-dot-product attention is fused and faster, but never materialises the pattern; the
    # model falls back to the explicit path whenever someone hooks the scores or the pattern.
    use_sdpa: bool = True

    def __post_init__(self) -> None:
        check_config_fields(self, ("d_vocab", "n_ctx", "d_model", "n_layers", "n_heads", "d_head", "d_mlp"))

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def init_gpt2_weights(module: nn.Module, init_std: float, n_layers: int) -> None:
    """GPT-2's init for any model built from these parts: N(0, init_std) weights, zero biases, unit
    LayerNorm gains, and the two projections that write into the residual stream (``W_O``,
    ``W_out``) scaled by 1/sqrt(2 n_layers) so its variance does not grow with depth."""
    checks.check_type(module, "module", nn.Module)
    checks.check_float(init_std, "init_std", positive=True)
    checks.check_int(n_layers, "n_layers", min=1)
    for name, p in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "w":  # LayerNorm gain
            p.fill_(1.0)
        elif leaf == "b" or leaf.startswith("b_"):  # every bias
            p.zero_()
        elif leaf in ("W_O", "W_out"):
            p.normal_(0.0, init_std / math.sqrt(2 * n_layers))
        else:
            p.normal_(0.0, init_std)


def check_token_ids(tokens: Tensor, d_vocab: int, name: str = "tokens") -> tuple[int, int]:
    """``(batch, pos)`` of a valid ``[batch, pos]`` integer tensor of ids in ``[0, d_vocab)``;
    raises a clear error otherwise (:func:`lib.core.checks.check_token_ids`)."""
    checks.check_token_ids(tokens, name, d_vocab)
    return tokens.shape[0], tokens.shape[1]


def check_targets(targets: Tensor, shape: tuple[int, ...], d_vocab: int, name: str = "targets") -> None:
    """Targets for a cross-entropy: an integer tensor of ``shape`` holding ids in ``[0, d_vocab)``
    or -100 (ignored), with at least one scored position. Float targets would be truncated, a
    negative id other than -100 would be scored as another token, and a batch with nothing to
    score would give a NaN loss: each is refused here instead."""
    checks.check_tensor(targets, name, dtype="int")
    if tuple(targets.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(targets.shape)}")
    checks.check_token_ids(targets, name, d_vocab, ndim=targets.ndim, ignore_index=-100)
    if targets.numel() == 0 or not bool((targets != -100).any()):
        raise ValueError(f"{name} has no scored position (every target is -100): the loss would be NaN")


def count_params(module: nn.Module, include_embeddings: bool = True) -> int:
    """Number of parameters, optionally without the embedding, position and unembedding tables."""
    checks.check_type(module, "module", nn.Module)
    checks.check_bool(include_embeddings, "include_embeddings")
    skip = () if include_embeddings else ("embed.W_E", "pos_embed.W_pos", "unembed.W_U", "unembed.b_U")
    return sum(p.numel() for n, p in module.named_parameters() if n not in skip)


def _check_stream(x: Tensor, d_model: int, name: str, exact_3d: bool = False) -> None:
    """A residual-stream input of a block: a floating-point ``[..., d_model]`` tensor (exactly
    ``[batch, pos, d_model]`` for attention). Cheap: no pass over the values, so the blocks can
    afford it on every call."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor, got {checks._got(x)}")
    if (x.ndim != 3 if exact_3d else x.ndim < 1) or x.shape[-1] != d_model:
        shape = "[batch, pos, " if exact_3d else "[..., "
        raise ValueError(f"{name} must have shape {shape}{d_model}], got {tuple(x.shape)}")


class LayerNorm(nn.Module):
    """LayerNorm written out, with hooks on the scale and the normalised output."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.eps = cfg.ln_eps
        self.w = nn.Parameter(torch.ones(cfg.d_model))
        self.b = nn.Parameter(torch.zeros(cfg.d_model))
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, d_model]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        _check_stream(x, self.w.shape[0], "x")
        if not is_hooked(self.hook_scale, self.hook_normalized):
            # The same computation as below in one fused kernel (forward and backward).
            return F.layer_norm(x, (x.shape[-1],), self.w, self.b, self.eps)
        x = x - x.mean(dim=-1, keepdim=True)
        # The scale is the standard deviation; hooking it lets interpretability work freeze it.
        scale = self.hook_scale((x.pow(2).mean(dim=-1, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized(x / scale) * self.w + self.b


class Embed(nn.Module):
    """Token ids -> vectors: a lookup into the rows of ``W_E`` (the same as one-hot @ W_E)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        checks.check_tensor(tokens, "tokens", dtype="int")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.W_E.shape[0]):
            raise ValueError(f"tokens must hold ids in [0, {self.W_E.shape[0]}), got min {int(tokens.min())}, max {int(tokens.max())}")
        return self.W_E[tokens]


class PosEmbed(nn.Module):
    """A learned vector per position, added to the token embedding."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))

    def forward(self, batch: int, seq_len: int, offset: int = 0) -> Float[Tensor, "batch pos d_model"]:
        checks.check_int(batch, "batch", min=0)
        checks.check_int(seq_len, "seq_len", min=0)
        checks.check_int(offset, "offset", min=0)
        if offset + seq_len > self.W_pos.shape[0]:
            raise ValueError(f"offset + seq_len = {offset + seq_len} exceeds n_ctx = {self.W_pos.shape[0]}")
        return self.W_pos[offset : offset + seq_len].unsqueeze(0).expand(batch, -1, -1)


class KVCache:
    """Keys and values of the positions already processed, one ``(k, v)`` pair per layer.

    Shapes: ``k, v: [batch, n_heads, cached_pos, d_head]``. The model appends to it in ``forward``;
    ``length`` is the number of cached positions, which is also the position offset of new tokens.
    Every write is checked first, so a failing call leaves the cache as it was.
    """

    def __init__(self, n_layers: int):
        checks.check_int(n_layers, "n_layers", min=1)
        self.layers: list[tuple[Tensor, Tensor] | None] = [None] * n_layers

    @property
    def length(self) -> int:
        return self.layer_length(0)

    def _check_layer(self, layer: int) -> int:
        return checks.check_int(layer, "layer", min=0, max=len(self.layers) - 1)

    def layer_length(self, layer: int) -> int:
        kv = self.layers[self._check_layer(layer)]
        return 0 if kv is None else kv[0].shape[2]

    def batch_size(self) -> int | None:
        """The batch size of the cached keys (None while the cache is empty)."""
        kv = next((kv for kv in self.layers if kv is not None), None)
        return None if kv is None else kv[0].shape[0]

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add this step's keys/values for ``layer`` and return everything cached so far."""
        self._check_layer(layer)
        checks.check_tensor(k, "k", ndim=4, dtype="float")
        checks.check_tensor(v, "v", shape=tuple(k.shape), dtype=k.dtype)
        old = self.layers[layer]
        if old is not None:
            ok, ov = old
            if (ok.shape[0], ok.shape[1], ok.shape[3]) != (k.shape[0], k.shape[1], k.shape[3]) or ok.dtype != k.dtype:
                raise ValueError(
                    f"k of shape {tuple(k.shape)} ({k.dtype}) does not continue the cached keys of layer {layer}, "
                    f"shape {tuple(ok.shape)} ({ok.dtype}): same batch, heads and d_head needed"
                )
            k = torch.cat([ok, k], dim=2)
            v = torch.cat([ov, v], dim=2)
        self.layers[layer] = (k, v)
        return k, v

    def select(self, batch_index: Tensor) -> "KVCache":
        """A new cache holding only the given batch rows (or repeating them)."""
        index = torch.as_tensor(batch_index) if isinstance(batch_index, (list, tuple)) else batch_index
        checks.check_tensor(index, "batch_index", ndim=1, dtype="int")
        rows = self.batch_size()
        if rows is not None and index.numel() and (int(index.min()) < -rows or int(index.max()) >= rows):
            raise ValueError(f"batch_index must hold rows in [0, {rows}), got min {int(index.min())}, max {int(index.max())}")
        new = KVCache(len(self.layers))
        new.layers = [None if kv is None else (kv[0][index], kv[1][index]) for kv in self.layers]
        return new

    def check_for(self, n_layers: int, batch: int, name: str = "kv_cache") -> None:
        """Raise unless this cache can serve a model with ``n_layers`` cache slots on ``batch`` rows:
        the right number of slots, one length for all of them, the same batch size."""
        checks.check_type(self, name, KVCache)
        if len(self.layers) != n_layers:
            raise ValueError(f"{name} has {len(self.layers)} layers, the model needs {n_layers} (use model.new_kv_cache())")
        lengths = {0 if kv is None else kv[0].shape[2] for kv in self.layers}
        if len(lengths) != 1:
            raise ValueError(f"{name} holds layers of different lengths {sorted(lengths)}: it is inconsistent")
        rows = self.batch_size()
        if rows is not None and rows != batch:
            raise ValueError(f"{name} holds {rows} rows, the input has {batch}")


class Attention(nn.Module):
    """Multi-head attention with TransformerLens' weight layout and hook names, causally masked.

    Self-attention by default. With ``key_input`` (TransformerLens' name) the keys and values come
    from that stream instead, at the same positions: cross-attention to an encoder's output (query
    t still sees positions <= t only, so no future token leaks in through the other stream)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        h, d, dh = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_Q = nn.Parameter(torch.empty(h, d, dh))
        self.W_K = nn.Parameter(torch.empty(h, d, dh))
        self.W_V = nn.Parameter(torch.empty(h, d, dh))
        self.W_O = nn.Parameter(torch.empty(h, dh, d))
        self.b_Q = nn.Parameter(torch.zeros(h, dh))
        self.b_K = nn.Parameter(torch.zeros(h, dh))
        self.b_V = nn.Parameter(torch.zeros(h, dh))
        self.b_O = nn.Parameter(torch.zeros(d))
        self.hook_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_k = HookPoint()  # [batch, pos, head, d_head]
        self.hook_v = HookPoint()  # [batch, pos, head, d_head]
        self.hook_attn_scores = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_pattern = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_z = HookPoint()  # [batch, pos, head, d_head]

    def _pattern_is_hooked(self) -> bool:
        return is_hooked(self.hook_pattern, self.hook_attn_scores)

    def _project(self, x: Tensor, key_input: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Queries from ``x``, keys and values from ``key_input`` (``x`` if None), each
        ``[batch, pos, head, d_head]``."""
        batch, pos, d_model = x.shape
        h, dh = self.cfg.n_heads, self.cfg.d_head
        if key_input is None:
            # One matrix product for the queries, keys and values of every head (the einsum
            # "bpd,hde->bphe" for each of W_Q, W_K, W_V, done as a single [d_model, 3 * head * d_head] matmul).
            W_qkv = torch.cat([self.W_Q, self.W_K, self.W_V]).transpose(0, 1).reshape(d_model, 3 * h * dh)
            qkv = (x.reshape(batch * pos, d_model) @ W_qkv).view(batch, pos, 3 * h, dh)
            qkv = qkv + torch.cat([self.b_Q, self.b_K, self.b_V])
            return qkv.split(h, dim=2)
        q = torch.einsum("bpd,hde->bphe", x, self.W_Q) + self.b_Q
        # Keys and values in one matmul: [d_model, 2 * head * d_head].
        W_kv = torch.cat([self.W_K, self.W_V]).transpose(0, 1).reshape(d_model, 2 * h * dh)
        kv = (key_input.reshape(batch * pos, d_model) @ W_kv).view(batch, pos, 2 * h, dh)
        k, v = (kv + torch.cat([self.b_K, self.b_V])).split(h, dim=2)
        return q, k, v

    def forward(
        self,
        x: Float[Tensor, "batch pos d_model"],
        kv_cache: KVCache | None = None,
        layer: int = 0,
        *,
        key_input: Float[Tensor, "batch pos d_model"] | None = None,
    ) -> Float[Tensor, "batch pos d_model"]:
        _check_stream(x, self.cfg.d_model, "x", exact_3d=True)
        if key_input is not None:
            _check_stream(key_input, self.cfg.d_model, "key_input", exact_3d=True)
            if key_input.shape != x.shape:
                raise ValueError(f"query stream {tuple(x.shape)} and key_input {tuple(key_input.shape)} must align")
        if kv_cache is not None:
            checks.check_type(kv_cache, "kv_cache", KVCache)
            kv_cache._check_layer(layer)
        batch, pos, d_model = x.shape
        h, dh = self.cfg.n_heads, self.cfg.d_head
        q, k, v = self._project(x, key_input)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        # [batch, pos, head, d_head] -> [batch, head, pos, d_head], the layout attention wants.
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        offset = 0
        if kv_cache is not None:
            # Read this layer's own cache: lower layers have already appended this step's keys.
            # (A cross-attention layer caches too: the encoder is causal, so the encoder outputs
            # of earlier positions, hence their keys and values, never change.)
            offset = kv_cache.layer_length(layer)
            k, v = kv_cache.append(layer, k, v)
        n_q, n_k = q.shape[2], k.shape[2]

        if self.cfg.use_sdpa and not self._pattern_is_hooked():
            if offset == 0:
                z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                # Query i (absolute position offset + i) may see keys 0 .. offset + i.
                allowed = torch.ones(n_q, n_k, dtype=torch.bool, device=x.device).tril(diagonal=offset)
                z = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        else:
            scores = torch.einsum("bhqe,bhke->bhqk", q, k) / math.sqrt(self.cfg.d_head)
            # -inf, not a large negative number: exp(-inf) is exactly 0, so no future leaks in.
            future = torch.ones(n_q, n_k, dtype=torch.bool, device=x.device).triu(diagonal=offset + 1)
            scores = self.hook_attn_scores(scores.masked_fill(future, float("-inf")))
            pattern = self.hook_pattern(scores.softmax(dim=-1))
            z = torch.einsum("bhqk,bhke->bhqe", pattern, v)
        z = self.hook_z(z.transpose(1, 2))  # [batch, pos, head, d_head]
        # Sum over heads of z_h @ W_O[h]: one matmul over the flattened (head, d_head) axis.
        out = z.reshape(batch * n_q, h * dh) @ self.W_O.reshape(h * dh, d_model)
        return out.view(batch, n_q, d_model) + self.b_O


class CrossAttention(Attention):
    """:class:`Attention` whose keys and values come from an encoder output at the same
    positions: ``cross_attn(x, encoder_out)`` is ``attn(x, key_input=encoder_out)``."""

    def forward(  # type: ignore[override]
        self,
        x: Float[Tensor, "batch pos d_model"],
        encoder_out: Float[Tensor, "batch pos d_model"],
        kv_cache: KVCache | None = None,
        layer: int = 0,
    ) -> Float[Tensor, "batch pos d_model"]:
        if encoder_out is None:
            raise TypeError("encoder_out must be a floating-point torch.Tensor, got None")
        return super().forward(x, kv_cache, layer, key_input=encoder_out)


class MLP(nn.Module):
    """Position-wise feed-forward: d_model -> d_mlp -> nonlinearity -> d_model."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.act_fn = cfg.act_fn
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        _check_stream(x, self.W_in.shape[0], "x")
        pre = self.hook_pre(x @ self.W_in + self.b_in)
        if self.act_fn == "gelu":
            post = F.gelu(pre)
        elif self.act_fn == "gelu_new":
            post = F.gelu(pre, approximate="tanh")
        else:
            post = F.relu(pre)
        return self.hook_post(post) @ self.W_out + self.b_out


class TransformerBlock(nn.Module):
    """resid_mid = resid_pre + attn(ln1(resid_pre)); resid_post = resid_mid + mlp(ln2(resid_mid)).

    With ``cross_layer`` (the KV-cache slot of its cross-attention) the block is a decoder block
    of an encoder-decoder (:mod:`lib.methods.encdec`): between the two sublayers it adds
    ``resid_mid_cross = resid_mid + cross_attn(ln_cross(resid_mid), encoder_out)``."""

    def __init__(self, cfg: GPTConfig, layer: int, cross_layer: int | None = None):
        super().__init__()
        self.layer = layer
        self.cross_layer = cross_layer
        # Registration order fixes the order of the init's random draws: keep it.
        self.ln1 = LayerNorm(cfg)
        self.attn = Attention(cfg)
        if cross_layer is not None:
            self.ln_cross = LayerNorm(cfg)
            self.cross_attn = CrossAttention(cfg)
        self.ln2 = LayerNorm(cfg)
        self.mlp = MLP(cfg)
        self.hook_resid_pre = HookPoint()
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        if cross_layer is not None:
            self.hook_cross_attn_out = HookPoint()
            self.hook_resid_mid_cross = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(
        self, resid: Float[Tensor, "batch pos d_model"], kv_cache: KVCache | None = None, encoder_out: Tensor | None = None
    ) -> Tensor:
        if (encoder_out is not None) != (self.cross_layer is not None):
            raise ValueError("encoder_out must be given to a block with cross-attention, and only to one")
        resid = self.hook_resid_pre(resid)
        resid = self.hook_resid_mid(resid + self.hook_attn_out(self.attn(self.ln1(resid), kv_cache, self.layer)))
        if encoder_out is not None:
            cross = self.cross_attn(self.ln_cross(resid), encoder_out, kv_cache, self.cross_layer)
            resid = self.hook_resid_mid_cross(resid + self.hook_cross_attn_out(cross))
        return self.hook_resid_post(resid + self.hook_mlp_out(self.mlp(self.ln2(resid))))


class Unembed(nn.Module):
    """Final residual vector -> one logit per vocabulary entry."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab))

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        _check_stream(x, self.W_U.shape[0], "x")
        return x @ self.W_U + self.b_U


class GPT(HookedRootModule):
    """The course's decoder-only transformer.

    ``model(tokens)`` returns logits ``[batch, pos, d_vocab]``; ``return_type="loss"`` returns the
    mean next-token cross-entropy (the prediction at position i is scored against token i + 1).
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        if not isinstance(cfg, GPTConfig) or hasattr(cfg, "n_enc_layers"):
            hint = " (an encoder-decoder's config: build a lib.methods.encdec.EncoderDecoderGPT)" if hasattr(cfg, "n_enc_layers") else ""
            raise TypeError(f"GPT expects a GPTConfig, got {type(cfg).__name__}{hint}")
        self.cfg = cfg
        self.embed = Embed(cfg)
        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        self.pos_embed = PosEmbed(cfg)
        self.hook_pos_embed = HookPoint()  # [batch, pos, d_model]
        self.blocks = nn.ModuleList([TransformerBlock(cfg, i) for i in range(cfg.n_layers)])
        self.ln_final = LayerNorm(cfg)
        self.unembed = Unembed(cfg)
        self.init_weights()
        self.setup()  # HookedRootModule: names every HookPoint so hooks can find it

    def init_weights(self) -> None:
        """GPT-2's init (:func:`init_gpt2_weights`)."""
        init_gpt2_weights(self, self.cfg.init_std, self.cfg.n_layers)

    # ------------------------------------------------------------------ inputs
    def _check_inputs(self, tokens: Tensor | None, input_embeds: Tensor | None, offset: int) -> tuple[int, int]:
        if (tokens is None) == (input_embeds is None):
            raise ValueError("pass exactly one of tokens or input_embeds")
        if tokens is not None:
            batch, pos = check_token_ids(tokens, self.cfg.d_vocab)
        else:
            if not isinstance(input_embeds, Tensor) or not input_embeds.is_floating_point():
                raise TypeError("input_embeds must be a floating-point torch.Tensor")
            if input_embeds.ndim != 3 or input_embeds.shape[-1] != self.cfg.d_model:
                raise ValueError(
                    f"input_embeds must have shape [batch, pos, {self.cfg.d_model}], got {tuple(input_embeds.shape)}"
                )
            dtype = self.embed.W_E.dtype
            if input_embeds.dtype != dtype:
                raise TypeError(f"input_embeds must have the model's dtype {dtype}, got {input_embeds.dtype}")
            # A NaN would flow through every position after it (attention mixes them) unnoticed.
            checks.check_tensor(input_embeds, "input_embeds", finite=True)
            batch, pos = input_embeds.shape[:2]
        if pos == 0:
            raise ValueError("the sequence is empty (pos = 0)")
        if offset + pos > self.cfg.n_ctx:
            raise ValueError(f"sequence of {offset + pos} positions exceeds n_ctx = {self.cfg.n_ctx}")
        return batch, pos

    def embed_tokens(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        """Token embeddings alone (no positions): what ``input_embeds`` replaces."""
        self._check_inputs(tokens, None, 0)
        return self.embed(tokens)

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        tokens: Int[Tensor, "batch pos"] | None = None,
        *,
        input_embeds: Float[Tensor, "batch pos d_model"] | None = None,
        return_type: ReturnType = "logits",
        targets: Int[Tensor, "batch pos"] | None = None,
        kv_cache: KVCache | None = None,
    ):
        """Run the model.

        Args:
            tokens: token ids ``[batch, pos]`` (or pass ``input_embeds`` instead).
            input_embeds: token embeddings ``[batch, pos, d_model]``; position embeddings are
                still added, so this replaces only the ``W_E`` lookup.
            return_type: ``"logits"``, ``"loss"`` (mean next-token cross-entropy), ``"both"``,
                ``"final_resid"`` (the residual stream after ``ln_final``, ``[batch, pos, d_model]``),
                ``"resid"`` (the residual stream after the last block, before ``ln_final``) or ``None``.
            targets: optional target ids ``[batch, pos]`` for the loss (``-100`` is ignored);
                by default the loss predicts ``tokens[:, 1:]`` from ``tokens[:, :-1]``.
            kv_cache: a :class:`KVCache`; positions continue after those already cached.
        """
        batch, pos, offset = self._check_call(tokens, input_embeds, return_type, targets, kv_cache, RETURN_TYPES)
        with restored_on_error(kv_cache):
            return self._run(tokens, input_embeds, return_type, targets, kv_cache, batch, pos, offset)

    def _check_call(self, tokens, input_embeds, return_type, targets, kv_cache, return_types: tuple) -> tuple[int, int, int]:
        """Every argument of a forward call checked before anything runs (so a failing call
        changes nothing): ``(batch, pos, offset)``. Shared with the encoder-decoder."""
        checks.check_choice(return_type, "return_type", return_types)
        offset = 0 if kv_cache is None else checks.check_type(kv_cache, "kv_cache", KVCache).length
        batch, pos = self._check_inputs(tokens, input_embeds, offset)
        if kv_cache is not None:
            kv_cache.check_for(len(self.new_kv_cache().layers), batch)
        if return_type in ("loss", "both"):
            self._check_loss_inputs(tokens, targets, batch, pos)
        elif targets is not None:
            raise ValueError(f"targets are only used with return_type 'loss' or 'both', got return_type={return_type!r}")
        return batch, pos, offset

    def _check_loss_inputs(self, tokens: Tensor | None, targets: Tensor | None, batch: int, pos: int) -> None:
        if targets is not None:
            check_targets(targets, (batch, pos), self.cfg.d_vocab)
        elif tokens is None:
            raise ValueError("the loss needs tokens or targets (input_embeds alone have no next tokens)")
        elif pos < 2:
            raise ValueError("the next-token loss needs at least 2 positions")

    def _run(self, tokens, input_embeds, return_type, targets, kv_cache, batch: int, pos: int, offset: int):
        tok = self.embed(tokens) if input_embeds is None else input_embeds
        resid = self.hook_embed(tok) + self.hook_pos_embed(self.pos_embed(batch, pos, offset))
        for block in self.blocks_to_run():
            resid = block(resid, kv_cache)
        if return_type == "resid":
            return resid
        return self._head(self.ln_final(resid), tokens, targets, return_type)

    def _head(self, final: Tensor, tokens: Tensor | None, targets: Tensor | None, return_type: str | None):
        """What ``return_type`` asks for, from the normalised final residual stream: the part
        every model of the course shares after its last block."""
        if return_type == "final_resid":
            return final
        if return_type is None:
            return None
        logits = self.unembed(final)
        if return_type == "logits":
            return logits
        loss = self.loss(logits, tokens, targets)
        return loss if return_type == "loss" else (logits, loss)

    @staticmethod
    def loss(
        logits: Float[Tensor, "batch pos d_vocab"],
        tokens: Int[Tensor, "batch pos"] | None = None,
        targets: Int[Tensor, "batch pos"] | None = None,
    ) -> Tensor:
        """Mean next-token cross-entropy. With ``targets``, position i is scored against
        ``targets[:, i]`` (ignore_index -100); otherwise against ``tokens[:, i + 1]``."""
        checks.check_tensor(logits, "logits", ndim=3, dtype="float")
        if targets is not None:
            check_targets(targets, tuple(logits.shape[:2]), logits.shape[-1])
            return F.cross_entropy(logits.flatten(0, 1), targets.flatten().long(), ignore_index=-100)
        if tokens is None:
            raise ValueError("the loss needs tokens or targets")
        checks.check_token_ids(tokens, "tokens", logits.shape[-1])
        if tokens.shape != logits.shape[:2]:
            raise ValueError(f"tokens must have shape {tuple(logits.shape[:2])}, got {tuple(tokens.shape)}")
        if tokens.shape[1] < 2:
            raise ValueError("the next-token loss needs at least 2 positions")
        return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten().long())

    def blocks_to_run(self) -> list[nn.Module]:
        """The blocks one forward pass runs, in order (a looped model repeats them)."""
        return list(self.blocks)

    def new_kv_cache(self) -> KVCache:
        return KVCache(self.cfg.n_layers)

    def n_params(self, include_embeddings: bool = True) -> int:
        """Number of parameters (optionally without the embedding/unembedding/position tables)."""
        return count_params(self, include_embeddings)


class restored_on_error:
    """``with restored_on_error(kv_cache): ...``: if the block raises, the cache gets back the
    layers it held before, so a failed forward leaves no half-written step behind (None: no-op)."""

    def __init__(self, kv_cache: KVCache | None):
        self.kv_cache = kv_cache
        self.saved = None if kv_cache is None else list(kv_cache.layers)

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and self.kv_cache is not None:
            self.kv_cache.layers = self.saved
        return False


def per_token_log_probs(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos_minus_1"]:
    """log p(tokens[:, i + 1] | tokens[:, :i + 1]) for every position: the model's score of what
    actually came next. Entry i scores token i + 1."""
    checks.check_tensor(logits, "logits", dtype="float")
    checks.check_tensor(tokens, "tokens", dtype="int")
    if logits.ndim != 3 or tokens.ndim != 2 or logits.shape[:2] != tokens.shape:
        raise ValueError(
            f"logits [batch, pos, d_vocab] and tokens [batch, pos] must agree, got {tuple(logits.shape)} and {tuple(tokens.shape)}"
        )
    checks.check_token_ids(tokens, "tokens", logits.shape[-1])
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return log_probs.gather(-1, tokens[:, 1:, None].long()).squeeze(-1)


def to_bridge_state_dict(model: GPT) -> dict[str, Tensor]:
    """Our weights renamed and transposed into TransformerBridge's native layout (nn.Linear's
    ``[out, in]``), so ``bridge.load_state_dict`` gives a model that must compute the same logits."""
    if not isinstance(model, GPT):
        raise TypeError(f"expected a GPT, got {type(model).__name__}")
    cfg = model.cfg
    out: dict[str, Tensor] = {
        "embed.weight": model.embed.W_E.detach().clone(),
        "pos_embed.weight": model.pos_embed.W_pos.detach().clone(),
        "ln_final.weight": model.ln_final.w.detach().clone(),
        "ln_final.bias": model.ln_final.b.detach().clone(),
        "unembed.weight": model.unembed.W_U.detach().T.clone(),
        "unembed.bias": model.unembed.b_U.detach().clone(),
    }
    hd = cfg.n_heads * cfg.d_head
    for i, blk in enumerate(model.blocks):
        p = f"blocks.{i}."
        a = blk.attn
        for ln_name in ("ln1", "ln2"):
            ln = getattr(blk, ln_name)
            out[p + ln_name + ".weight"] = ln.w.detach().clone()
            out[p + ln_name + ".bias"] = ln.b.detach().clone()
        for name, W, b in (("q", a.W_Q, a.b_Q), ("k", a.W_K, a.b_K), ("v", a.W_V, a.b_V)):
            # [head, d_model, d_head] -> [head * d_head, d_model]
            out[p + f"attn.{name}.weight"] = W.detach().permute(0, 2, 1).reshape(hd, cfg.d_model).clone()
            out[p + f"attn.{name}.bias"] = b.detach().reshape(hd).clone()
        out[p + "attn.o.weight"] = a.W_O.detach().reshape(hd, cfg.d_model).T.clone()
        out[p + "attn.o.bias"] = a.b_O.detach().clone()
        out[p + "mlp.in.weight"] = blk.mlp.W_in.detach().T.clone()
        out[p + "mlp.in.bias"] = blk.mlp.b_in.detach().clone()
        out[p + "mlp.out.weight"] = blk.mlp.W_out.detach().T.clone()
        out[p + "mlp.out.bias"] = blk.mlp.b_out.detach().clone()
    return out


def bridge_config(cfg: GPTConfig, seed: int = 0):
    """The ``TransformerBridgeConfig`` of TransformerLens' native model with our shape."""
    checks.check_type(cfg, "cfg", GPTConfig)
    checks.check_int(seed, "seed", min=0)
    from transformer_lens import TransformerBridgeConfig

    return TransformerBridgeConfig(
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        n_ctx=cfg.n_ctx,
        d_head=cfg.d_head,
        n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp,
        d_vocab=cfg.d_vocab,
        act_fn=cfg.act_fn,
        normalization_type="LN",
        eps=cfg.ln_eps,
        seed=seed,
    )


def reference_bridge(model: GPT):
    """TransformerLens' own native model (built offline) carrying ``model``'s weights."""
    checks.check_type(model, "model", GPT)
    import transformer_lens.model_bridge.sources.native  # noqa: F401  (registers boot_native)
    from transformer_lens import TransformerBridge

    bridge = TransformerBridge.boot_native(bridge_config(model.cfg))
    bridge.load_state_dict(to_bridge_state_dict(model), strict=True)
    return bridge.to(next(model.parameters()).dtype)
