"""A weight-tied looped transformer: the same blocks run several times in one forward pass.

The control that notebook 05's dense-token result needs. Dense tokens unrolled to depth 2 cost a
1-layer model 3 forward passes, so they add *serial depth* as well as *a vector passed forward*.
A looped model gets the same serial depth with the same parameters and no vector at all: its one
block runs ``n_loops`` times over every position (cf. looped transformers on p-hop induction,
Saunshi et al. 2025, "Reasoning with latent thoughts"). If it matches dense tokens, depth was
enough; if it does not, the fed-back vector at its own positions did something depth alone does not.

The loops share one set of weights, so the parameter count is that of the unlooped model; a KV
cache is refused (each loop would need its own cache layers, and no caller here needs one).
"""

from __future__ import annotations

import torch.nn as nn

from lib.core import checks
from lib.core.model import GPT, GPTConfig, KVCache


class LoopedGPT(GPT):
    """:class:`lib.core.model.GPT` whose blocks run ``n_loops`` times in a row, weights tied."""

    def __init__(self, cfg: GPTConfig, n_loops: int):
        checks.check_int(n_loops, "n_loops", min=1)
        super().__init__(cfg)
        self.n_loops = n_loops

    @property
    def n_loops(self) -> int:
        return self._n_loops

    @n_loops.setter
    def n_loops(self, value: int) -> None:
        self._n_loops = checks.check_int(value, "n_loops", min=1)  # 0 loops would run no block at all, silently

    def blocks_to_run(self) -> list[nn.Module]:
        return list(self.blocks) * self.n_loops

    def forward(self, tokens=None, *, kv_cache: KVCache | None = None, **kwargs):
        if kv_cache is not None:
            raise ValueError("kv_cache is not supported by a looped model: call it on the whole sequence")
        return super().forward(tokens, **kwargs)

    def new_kv_cache(self) -> KVCache:
        raise ValueError("a looped model has no KV cache: call it on the whole sequence")


class InjectedLoopedGPT(LoopedGPT):
    """A looped model that adds the input embeddings (tokens and positions) back into the residual
    stream before every loop after the first ("input injection", as in Yang et al. 2023 and Fan et
    al. 2025): each loop re-reads the question, so a loop can act as one more step of the same
    computation, and the model may be run with more loops at test than it was trained with
    (:func:`with_loops` sets :attr:`n_loops` for a while)."""

    def blocks_to_run(self) -> list[nn.Module]:
        # a flat list of blocks would drop the injection between loops: code that walks it would
        # compute another model
        raise ValueError("an InjectedLoopedGPT adds its input back between loops: call the model itself, "
                         "not its blocks in a row")

    def _run(self, tokens, input_embeds, return_type, targets, kv_cache, batch: int, pos: int, offset: int):
        tok = self.embed(tokens) if input_embeds is None else input_embeds
        inputs = self.hook_embed(tok) + self.hook_pos_embed(self.pos_embed(batch, pos, offset))
        resid = inputs
        for loop in range(self.n_loops):
            if loop:
                resid = resid + inputs
            for block in self.blocks:
                resid = block(resid, kv_cache)
        if return_type == "resid":
            return resid
        return self._head(self.ln_final(resid), tokens, targets, return_type)


class with_loops:
    """``with with_loops(model, n): ...`` runs ``model`` (a :class:`LoopedGPT`) with ``n`` loops
    inside the block and puts its own count back after it, also when the block raises."""

    def __init__(self, model: LoopedGPT, n_loops: int):
        checks.check_type(model, "model", LoopedGPT)
        self.model, self.n = model, checks.check_int(n_loops, "n_loops", min=1)

    def __enter__(self) -> LoopedGPT:
        self.saved, self.model.n_loops = self.model.n_loops, self.n
        return self.model

    def __exit__(self, *exc) -> None:
        self.model.n_loops = self.saved


__all__ = ["InjectedLoopedGPT", "LoopedGPT", "with_loops"]
