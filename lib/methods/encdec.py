"""An autoregressive encoder-decoder transformer (DeepSight's architecture) and its planning loss.

A decoder-only GPT with ``L`` layers is split in two:

    tokens -> embed + pos_embed = E ------------------------------.  (E feeds the future loss)
           -> encoder: n_enc_layers causal TransformerBlocks -> ln_enc -> encoder_out
           -> enc_to_dec (a linear map) -> decoder input
           -> decoder: n_dec_layers blocks, each: causal self-attention
                                                 + cross-attention to encoder_out
                                                 + MLP            (pre-LN, residual)
           -> ln_final -> unembed -> logits

Everything is causal: the encoder is causally masked, and in cross-attention the query at
position t sees encoder outputs at positions <= t only, so the model is an ordinary next-token
predictor that can be sampled like :class:`lib.core.model.GPT` (with or without a KV cache).

The encoder output is the natural place to ask for "planning": the future loss
(:mod:`lib.methods.future_loss`) pulls ``encoder_out[t]`` toward an aggregate of the embeddings of the
present and of the next ``n`` tokens. :func:`planning_loss_fn` adds it to the cross-entropy with
a weight ``lam`` and logs both parts.

Hook names follow TransformerLens' encoder-decoder models: ``encoder.{i}.attn.hook_pattern``,
``decoder.{i}.attn.hook_pattern``, ``decoder.{i}.cross_attn.hook_pattern``,
``decoder.{i}.hook_resid_post``, ``hook_encoder_out``, ``hook_decoder_in`` ...

References: Vaswani et al. 2017 (encoder-decoder, cross-attention); the DeepSight design notes
(course seed 002) for the autoregressive split and the future loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Literal, NamedTuple

import torch
import torch.nn as nn
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from lib.core import checks
from lib.methods.future_loss import Disaffinity, future_loss
from lib.core.model import (
    GPT,
    CrossAttention,  # noqa: F401  (re-exported: the decoder's cross-attention is lib.core.model's Attention)
    Embed,
    GPTConfig,
    KVCache,
    LayerNorm,
    PosEmbed,
    TransformerBlock,
    Unembed,
    check_config_fields,
    count_params,
    init_gpt2_weights,
    restored_on_error,
)

EncDecReturnType = Literal["logits", "loss", "both", "final_resid", "planning", None]
ENCDEC_RETURN_TYPES: tuple = ("logits", "loss", "both", "final_resid", "planning", None)


@dataclass
class EncDecConfig(GPTConfig):
    """Shape of the encoder-decoder: a :class:`lib.core.model.GPTConfig` whose blocks are split into
    ``n_enc_layers`` encoder and ``n_dec_layers`` decoder blocks (``n_layers`` is their sum and
    is not set by hand). Encoder and decoder blocks share d_model, heads and d_mlp."""

    # New defaults for the inherited fields (their order stays GPTConfig's) ...
    n_ctx: int = 64
    d_model: int = 64
    n_layers: int = field(init=False, default=2, repr=False)  # derived in __post_init__
    d_head: int = 16
    d_mlp: int = 256
    # ... and the split.
    n_enc_layers: int = 1
    n_dec_layers: int = 1

    def __post_init__(self) -> None:
        check_config_fields(self, ("n_enc_layers", "n_dec_layers"))
        self.n_layers = self.n_enc_layers + self.n_dec_layers  # total number of blocks
        super().__post_init__()

    def block_config(self) -> GPTConfig:
        """The plain :class:`GPTConfig` of the same blocks (``n_layers`` = all blocks)."""
        return GPTConfig(**{k: v for k, v in asdict(self).items() if k not in ("n_enc_layers", "n_dec_layers")})

    def to_dict(self) -> dict:
        order = ("d_vocab", "n_ctx", "d_model", "n_enc_layers", "n_dec_layers", "n_heads", "d_head", "d_mlp",
                 "act_fn", "ln_eps", "init_std", "use_sdpa")
        return {k: getattr(self, k) for k in order}


class EncDecOutput(NamedTuple):
    """What the planning loss needs from one forward pass."""

    logits: Tensor  # [batch, pos, d_vocab]
    encoder_out: Tensor  # [batch, pos, d_model], after ln_enc
    embeds: Tensor  # [batch, pos, d_model]: E = token + position embeddings (not detached)


class DecoderBlock(TransformerBlock):
    """A :class:`lib.core.model.TransformerBlock` with cross-attention to the encoder output:
    resid_mid = resid_pre + attn(ln1(resid_pre))
    resid_mid_cross = resid_mid + cross_attn(ln_cross(resid_mid), encoder_out)
    resid_post = resid_mid_cross + mlp(ln2(resid_mid_cross))"""

    def __init__(self, cfg: GPTConfig, self_layer: int, cross_layer: int):
        # Indices into the model's KV cache for this block's self- and cross-attention.
        super().__init__(cfg, self_layer, cross_layer=cross_layer)

    @property
    def self_layer(self) -> int:
        return self.layer

    def forward(self, resid: Tensor, encoder_out: Tensor, kv_cache: KVCache | None = None) -> Tensor:  # type: ignore[override]
        return super().forward(resid, kv_cache, encoder_out=encoder_out)


class EncToDec(nn.Module):
    """The linear map that turns the encoder output into the decoder's input stream."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        d = cfg.d_model
        self.W, self.b = nn.Parameter(torch.empty(d, d)), nn.Parameter(torch.zeros(d))  # W first: init order

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        checks.check_tensor(x, "x", dtype="float")
        return x @ self.W + self.b


class EncoderDecoderGPT(HookedRootModule):
    """The autoregressive encoder-decoder. Same call interface as :class:`lib.core.model.GPT`:
    ``model(tokens, return_type="logits" | "loss" | "both", targets=None, kv_cache=None)``, and
    ``return_type="planning"`` gives :class:`EncDecOutput` ``(logits, encoder_out, embeds)``."""

    def __init__(self, cfg: EncDecConfig):
        super().__init__()
        if not isinstance(cfg, EncDecConfig):
            raise TypeError(f"EncoderDecoderGPT expects an EncDecConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        bcfg = cfg
        n_enc, n_dec = cfg.n_enc_layers, cfg.n_dec_layers
        self.embed = Embed(bcfg)
        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        self.pos_embed = PosEmbed(bcfg)
        self.hook_pos_embed = HookPoint()  # [batch, pos, d_model]
        # Encoder layers ARE GPT blocks; their KV-cache slots are 0 .. n_enc - 1.
        self.encoder = nn.ModuleList([TransformerBlock(bcfg, i) for i in range(n_enc)])
        self.ln_enc = LayerNorm(bcfg)  # the encoder ends with a LayerNorm, as T5's and BART's do
        self.hook_encoder_out = HookPoint()  # [batch, pos, d_model]
        self.enc_to_dec = EncToDec(bcfg)
        self.hook_decoder_in = HookPoint()  # [batch, pos, d_model]
        # Cache slots: decoder self-attention n_enc + i, cross-attention n_enc + n_dec + i.
        self.decoder = nn.ModuleList([DecoderBlock(bcfg, n_enc + i, n_enc + n_dec + i) for i in range(n_dec)])
        self.ln_final = LayerNorm(bcfg)
        self.unembed = Unembed(bcfg)
        self.init_weights()
        self.setup()

    def init_weights(self) -> None:
        """GPT-2's init, as :meth:`lib.core.model.GPT.init_weights` (:func:`lib.core.model.init_gpt2_weights`)."""
        init_gpt2_weights(self, self.cfg.init_std, self.cfg.n_layers)

    # The same input rules as GPT's (tokens only: the encoder-decoder takes no input_embeds).
    _check_call = GPT._check_call
    _check_inputs = GPT._check_inputs
    _check_loss_inputs = GPT._check_loss_inputs
    _head = GPT._head

    def forward(
        self,
        tokens: Int[Tensor, "batch pos"],
        *,
        return_type: EncDecReturnType = "logits",
        targets: Int[Tensor, "batch pos"] | None = None,
        kv_cache: KVCache | None = None,
    ):
        """Run encoder then decoder. ``return_type``: ``"logits"``, ``"loss"`` (next-token
        cross-entropy, or against ``targets`` with -100 ignored), ``"both"``, ``"final_resid"``,
        ``"planning"`` (an :class:`EncDecOutput`) or ``None``."""
        batch, pos, offset = self._check_call(tokens, None, return_type, targets, kv_cache, ENCDEC_RETURN_TYPES)
        with restored_on_error(kv_cache):
            return self._run(tokens, return_type, targets, kv_cache, batch, pos, offset)

    def _run(self, tokens, return_type, targets, kv_cache, batch: int, pos: int, offset: int):
        embeds = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(batch, pos, offset))
        resid = embeds
        for block in self.encoder:
            resid = block(resid, kv_cache)
        encoder_out = self.hook_encoder_out(self.ln_enc(resid))
        resid = self.hook_decoder_in(self.enc_to_dec(encoder_out))
        for block in self.decoder:
            resid = block(resid, encoder_out, kv_cache)
        final = self.ln_final(resid)
        if return_type == "planning":
            return EncDecOutput(self.unembed(final), encoder_out, embeds)
        return self._head(final, tokens, targets, return_type)

    loss = staticmethod(GPT.loss)

    def new_kv_cache(self) -> KVCache:
        """One slot per encoder block, per decoder self-attention and per cross-attention."""
        return KVCache(self.cfg.n_enc_layers + 2 * self.cfg.n_dec_layers)

    def n_params(self, include_embeddings: bool = True) -> int:
        """Number of parameters (optionally without the embedding/unembedding/position tables)."""
        return count_params(self, include_embeddings)


# --------------------------------------------------------------------------- fair baselines
def gpt_same_layers(cfg: EncDecConfig) -> GPTConfig:
    """A decoder-only GPT with the same width and the same total number of blocks
    (it has fewer parameters: no cross-attention, no enc->dec map)."""
    if not isinstance(cfg, EncDecConfig):
        raise TypeError(f"expected an EncDecConfig, got {type(cfg).__name__}")
    return cfg.block_config()


def gpt_matched_params(cfg: EncDecConfig) -> GPTConfig:
    """The GPT with the same width and number of blocks whose MLP is widened just enough that it
    has at least as many parameters as the encoder-decoder: the fair "no fewer parameters"
    baseline. (d_mlp is the smallest integer that reaches the count.)"""
    base = gpt_same_layers(cfg)
    target = _count_params(EncoderDecoderGPT, cfg)
    have = _count_params(GPT, base)
    # Each extra unit of d_mlp adds 2 * d_model + 1 parameters per block.
    per_unit = (2 * cfg.d_model + 1) * base.n_layers
    extra = max(0, -(-(target - have) // per_unit))
    return replace(base, d_mlp=base.d_mlp + extra)


def _count_params(cls, cfg) -> int:
    with torch.device("meta"):  # no memory, no init cost
        return count_params(cls(cfg))


# --------------------------------------------------------------------------- the training loss
@dataclass
class PlanningLossLog:
    """Both parts of the loss at every call, so the LM loss can be plotted beside the future loss."""

    ce: list[float] = field(default_factory=list)
    future: list[float] = field(default_factory=list)

    def append(self, ce: Tensor, future: Tensor) -> None:
        self.ce.append(float(ce.detach()))
        self.future.append(float(future.detach()))


def _unpack_batch(batch: Any) -> tuple[Tensor, Tensor | None]:
    """A token tensor (next-token targets), or anything with ``.tokens`` and ``.targets``
    (e.g. :class:`lib.tasks.path_star.PathStarBatch`)."""
    if isinstance(batch, Tensor):
        return batch, None
    if hasattr(batch, "tokens") and hasattr(batch, "targets"):
        return batch.tokens, batch.targets
    raise TypeError(f"a batch must be a token tensor or have .tokens and .targets, got {type(batch).__name__}")


def planning_loss_fn(
    lam: float,
    n: int,
    kind: Disaffinity = "mse",
    log: PlanningLossLog | None = None,
    future_fn: Callable[[Tensor, Tensor, int, str], Tensor] | None = None,
    scored_only: bool = False,
) -> Callable[[nn.Module, Any], Tensor]:
    """A ``loss_fn`` for :func:`lib.core.training.train`: ``cross-entropy + lam * future loss``.

    Args:
        lam: weight of the future loss (>= 0). With ``lam == 0`` the future loss is still
            computed (without gradient) and logged, so "would it fall on its own?" can be seen.
        n: planning horizon (future tokens aggregated); must be < the sequence length.
        kind: ``"mse"`` or ``"cosine"`` disaffinity.
        log: a :class:`PlanningLossLog` that receives both parts at every step.
        future_fn: ``(encoder_out, E, n, kind) -> loss``; default :func:`lib.methods.future_loss.future_loss`
            (non-affine LayerNorms). Pass e.g. a :class:`lib.methods.future_loss.LearnableNormFutureLoss`
            to show the collapse.
        scored_only: apply the future loss only at positions whose next token is scored
            (``targets != -100``): where the task makes a decision. Needs batches with targets.
    """
    checks.check_float(lam, "lam", min=0.0)
    checks.check_int(n, "the horizon n", min=1)
    checks.check_choice(kind, "kind", ("mse", "cosine"))
    checks.check_type(log, "log", PlanningLossLog, allow_none=True)
    if future_fn is not None and not callable(future_fn):
        raise TypeError(f"future_fn must be a callable or None, got {type(future_fn).__name__}")
    checks.check_bool(scored_only, "scored_only")
    if scored_only and future_fn is not None:
        raise ValueError("scored_only works with the default future loss only (future_fn must be None)")
    fut = future_fn if future_fn is not None else future_loss

    def loss_fn(model: nn.Module, batch: Any) -> Tensor:
        if not isinstance(model, EncoderDecoderGPT):
            raise TypeError(f"planning_loss_fn needs an EncoderDecoderGPT (an encoder output), got {type(model).__name__}")
        tokens, targets = _unpack_batch(batch)
        if scored_only and targets is None:
            raise ValueError("scored_only needs batches with targets (an object with .tokens and .targets)")
        out = model(tokens, return_type="planning")
        ce = GPT.loss(out.logits, tokens, targets)
        where = {"positions": targets != -100} if scored_only else {}
        if lam == 0:
            with torch.no_grad():
                future = fut(out.encoder_out, out.embeds, n, kind, **where)
            total = ce
        else:
            future = fut(out.encoder_out, out.embeds, n, kind, **where)
            total = ce + lam * future
        if log is not None:
            log.append(ce, future)
        return total

    return loss_fn


def ce_loss_fn(model: nn.Module, batch: Any) -> Tensor:
    """Cross-entropy alone, for any model (GPT or encoder-decoder) and either kind of batch
    (a token tensor, or an object with ``.tokens`` and ``.targets``)."""
    tokens, targets = _unpack_batch(batch)
    return model(tokens, return_type="loss", targets=targets)


VARIANTS = ("gpt", "gpt_matched", "encdec", "encdec+mse", "encdec+cosine")


@dataclass
class Variant:
    """A model ready to train, with its loss and (for the encoder-decoders) the log of both parts."""

    name: str
    model: nn.Module
    loss_fn: Callable[[nn.Module, Any], Tensor]
    log: PlanningLossLog | None


def build_variant(
    name: str, cfg: EncDecConfig, lam: float = 1.0, n: int = 4, seed: int = 0, device: torch.device | str = "cpu"
) -> Variant:
    """One arm of the comparison, initialised from ``seed``:

    - ``"gpt"``: decoder-only, same width and total blocks (fewer parameters);
    - ``"gpt_matched"``: the same with the MLP widened to >= the encoder-decoder's parameters;
    - ``"encdec"``: the encoder-decoder trained on cross-entropy only (future loss logged);
    - ``"encdec+mse"`` / ``"encdec+cosine"``: cross-entropy + ``lam`` * future loss (horizon ``n``).
    """
    checks.check_choice(name, "name", VARIANTS)
    checks.check_type(cfg, "cfg", EncDecConfig)
    checks.check_float(lam, "lam", min=0.0)
    checks.check_int(n, "n", min=1)
    checks.check_int(seed, "seed", min=0)
    torch.manual_seed(seed)
    if name.startswith("gpt"):
        model = GPT(gpt_same_layers(cfg) if name == "gpt" else gpt_matched_params(cfg)).to(device)
        return Variant(name, model, ce_loss_fn, None)
    log = PlanningLossLog()
    kind = "cosine" if name.endswith("cosine") else "mse"
    loss_fn = planning_loss_fn(0.0 if name == "encdec" else lam, n, kind, log=log)
    return Variant(name, EncoderDecoderGPT(cfg).to(device), loss_fn, log)
