"""Small interpretability tools built on hooks: the logit lens, head ablation and attention scores.

All of them work on any model whose hooks follow TransformerLens' names (our GPT, or
TransformerLens' own models), through ``run_with_cache`` and ``run_with_hooks``.
"""

from __future__ import annotations

from typing import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from lib.core import checks
from lib.core.model import GPT


def _check_tokens(model: GPT, tokens: Tensor) -> None:
    checks.check_module(model)
    cfg = getattr(model, "cfg", None)
    if not hasattr(cfg, "n_layers") or not hasattr(cfg, "d_vocab"):
        raise TypeError(f"model must have a .cfg with n_layers and d_vocab (a hooked transformer), got {type(model).__name__}")
    checks.check_token_ids(tokens, "tokens", cfg.d_vocab)
    if tokens.shape[1] < 2:
        raise ValueError("need at least 2 positions to score next-token predictions")


@torch.no_grad()
def logit_lens(model: GPT, tokens: Int[Tensor, "batch pos"]) -> tuple[list[str], Float[Tensor, "n_stages batch pos d_vocab"]]:
    """Decode the residual stream after each stage as if it were the last one (nostalgebraist 2020).

    The residual after the embeddings and after every block goes through the final LayerNorm and
    the unembedding. Returns the stage names (``"embed"``, ``"block 0"``, ...) and their logits.
    """
    _check_tokens(model, tokens)
    names = ["hook_pos_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names or n == "hook_embed")
    residuals = [cache["hook_embed"] + cache["hook_pos_embed"]]
    residuals += [cache[f"blocks.{i}.hook_resid_post"] for i in range(model.cfg.n_layers)]
    logits = torch.stack([model.unembed(model.ln_final(r)) for r in residuals])
    return ["embed"] + [f"block {i}" for i in range(model.cfg.n_layers)], logits


@torch.no_grad()
def logit_lens_losses(model: GPT, tokens: Int[Tensor, "batch pos"]) -> tuple[list[str], list[float]]:
    """Next-token loss (nats/token) of each stage's logit-lens prediction."""
    names, logits = logit_lens(model, tokens)
    losses = [float(GPT.loss(stage_logits, tokens)) for stage_logits in logits]
    return names, losses


def mean_ablate_head_hook(layer_mean_z: Float[Tensor, "head d_head"], head: int) -> Callable:
    """A ``hook_z`` hook replacing one head's output by its mean over a reference batch: the head
    then carries no information about this particular input, while the rest of the network still
    sees a typical-sized signal (zeroing would also remove the head's constant contribution)."""
    checks.check_tensor(layer_mean_z, "layer_mean_z", ndim=2, dtype="float", finite=True)
    checks.check_int(head, "head", min=0, max=layer_mean_z.shape[0] - 1)

    def hook(z: Tensor, hook) -> Tensor:
        z = z.clone()
        z[:, :, head] = layer_mean_z[head]
        return z

    return hook


@torch.no_grad()
def head_ablation_losses(model: GPT, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "layer head"]:
    """Increase in next-token loss when each attention head in turn is mean-ablated."""
    _check_tokens(model, tokens)
    z_names = [f"blocks.{i}.attn.hook_z" for i in range(model.cfg.n_layers)]
    clean_loss, cache = model.run_with_cache(tokens, return_type="loss", names_filter=lambda n: n in z_names)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer, name in enumerate(z_names):
        mean_z = cache[name].mean(dim=(0, 1))  # [head, d_head]
        for head in range(model.cfg.n_heads):
            loss = model.run_with_hooks(
                tokens, return_type="loss", fwd_hooks=[(name, mean_ablate_head_hook(mean_z, head))]
            )
            out[layer, head] = loss - clean_loss
    return out


@torch.no_grad()
def attention_to_offset(pattern: Float[Tensor, "batch head q k"], offset: int = 1) -> Float[Tensor, " head"]:
    """Mean attention each head pays to the key ``offset`` positions back (1 = the previous token;
    0 = itself). A score near 1 for offset 1 marks a previous-token head."""
    checks.check_tensor(pattern, "pattern", ndim=4, dtype="float", finite=True)
    if pattern.shape[-1] != pattern.shape[-2] or pattern.shape[-1] == 0:
        raise ValueError(f"pattern must have shape [batch, head, q, k] with q == k, got {tuple(pattern.shape)}")
    n = pattern.shape[-1]
    checks.check_int(offset, "offset", min=0, max=n - 1)
    diag = pattern.diagonal(offset=-offset, dim1=-2, dim2=-1)  # [batch, head, n - offset]
    return diag.mean(dim=(0, 2))
