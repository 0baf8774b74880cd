"""Token feedback: the control that separates "a vector" from "a token" in dense tokens.

A dense token's input is the hidden state the model produced one position earlier
(:mod:`lib.methods.dense`). Here it is instead the *embedding of the token the model predicted*
there (its argmax), added to the dense token's own embedding exactly where the dense arm adds the
vector. Everything else is the same: the same slots, the same unrolled passes, the same answer
target. If the gain of dense tokens comes from what a continuous vector can hold beyond one
token, this arm should fall short of them; if it comes from feeding back the intermediate node,
it should not.

The argmax has no gradient. The feedback is made differentiable by the straight-through
estimator: the forward pass uses the one-hot of the argmax, the backward pass the softmax's
gradient (``onehot + p - p.detach()``), so training can still shape what the model predicts at
the positions before the slots, as it shapes the fed-back vectors of the dense arm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from lib.core import checks
from lib.core.model import GPT
from lib.methods.dense import add_dense_vectors, shift_to_next_position


def fed_back_tokens(logits: Float[Tensor, "batch pos d_vocab"], W_E: Float[Tensor, "d_vocab d_model"],
                    straight_through: bool = True) -> Float[Tensor, "batch pos d_model"]:
    """The embedding of each position's argmax token; with ``straight_through`` its gradient is
    the softmax's (forward value unchanged)."""
    checks.check_tensor(logits, "logits", dtype="float")
    checks.check_tensor(W_E, "W_E", dtype="float")
    if logits.ndim != 3 or logits.shape[-1] != W_E.shape[0]:
        raise ValueError(f"logits must be [batch, pos, {W_E.shape[0]}], got {tuple(logits.shape)}")
    checks.check_bool(straight_through, "straight_through")
    hard = F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)
    if straight_through:
        probs = logits.softmax(dim=-1)
        hard = hard + probs - probs.detach()
    return hard @ W_E


def token_feedback_logits(model: GPT, tokens: Int[Tensor, "batch pos"], dense_id: int, depth: int,
                          straight_through: bool = True) -> Float[Tensor, "batch pos d_vocab"]:
    """``depth + 1`` passes; pass k feeds each dense position the embedding of the token pass
    k - 1 predicted at the position before it. ``depth`` = the most dense tokens in a row makes it
    exact (as :func:`lib.methods.dense.unrolled_forward`)."""
    checks.check_type(model, "model", GPT)
    checks.check_tensor(tokens, "tokens", dtype="int")
    checks.check_int(dense_id, "dense_id", min=0)
    if dense_id >= model.cfg.d_vocab:
        raise ValueError(f"dense_id {dense_id} is outside the model's vocabulary of {model.cfg.d_vocab}")
    checks.check_int(depth, "depth", min=0)
    mask = tokens == dense_id
    embeds = model.embed(tokens)
    fed = torch.zeros_like(embeds)
    for _ in range(depth):
        logits = model(input_embeds=add_dense_vectors(embeds, fed, mask))
        fed = shift_to_next_position(fed_back_tokens(logits, model.embed.W_E, straight_through))
    return model(input_embeds=add_dense_vectors(embeds, fed, mask))
