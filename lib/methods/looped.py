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

    def blocks_to_run(self) -> list[nn.Module]:
        return list(self.blocks) * self.n_loops

    def forward(self, tokens=None, *, kv_cache: KVCache | None = None, **kwargs):
        if kv_cache is not None:
            raise ValueError("kv_cache is not supported by a looped model: call it on the whole sequence")
        return super().forward(tokens, **kwargs)

    def new_kv_cache(self) -> KVCache:
        raise ValueError("a looped model has no KV cache: call it on the whole sequence")


__all__ = ["LoopedGPT"]
