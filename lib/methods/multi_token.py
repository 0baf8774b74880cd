"""Two published answers to "next-token prediction cannot plan", as controls for the planning loss.

**Multi-token prediction** (Gloeckle et al. 2024): ``k`` output heads on one shared trunk, head
``i`` predicting the token ``i`` positions ahead, all trained together; at test only the
next-token head is used. Their heads are whole transformer blocks; to keep the parameter count
within a few percent of the plain GPT, each extra head here is a low-rank residual map of the
trunk's final state (``x + x A B``, rank :data:`HEAD_RANK`) read out by the shared unembedding:
the pressure to predict further ahead falls on the trunk, which is the point of the method.

**Teacherless training** (Bachmann & Nagarajan 2024): every answer token is predicted from the
prompt and a row of dummy inputs, never from the true earlier answer tokens, so the shortcut of
copying the next edge once the previous node is given (the "Clever Hans" cheat that stalls
forward training on path-star at 1/degree) is not available. At test the model answers in one
pass over the same dummies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from lib.core import checks
from lib.core.model import GPT

HEAD_RANK = 8


class MultiTokenGPT(nn.Module):
    """A :class:`GPT` trunk with ``k - 1`` extra heads; ``forward`` is the trunk's own (the
    next-token head), so generation and evaluation treat it as the plain GPT."""

    def __init__(self, gpt: GPT, k: int, rank: int = HEAD_RANK):
        super().__init__()
        checks.check_type(gpt, "gpt", GPT)
        checks.check_int(k, "k", min=1)
        checks.check_int(rank, "rank", min=1)
        self.gpt, self.k = gpt, k
        d = gpt.cfg.d_model
        # B starts at zero: every extra head starts as the next-token head and learns its offset
        self.down = nn.ParameterList([nn.Parameter(torch.randn(d, rank) / d**0.5) for _ in range(k - 1)])
        self.up = nn.ParameterList([nn.Parameter(torch.zeros(rank, d)) for _ in range(k - 1)])

    @property
    def cfg(self):
        return self.gpt.cfg

    def forward(self, *args, **kwargs):
        return self.gpt(*args, **kwargs)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def head_logits(self, tokens: Int[Tensor, "batch pos"]) -> list[Float[Tensor, "batch pos d_vocab"]]:
        """Head ``i`` (0-based) predicts the token ``i + 1`` positions ahead of each position."""
        normed = self.gpt.ln_final(self.gpt(tokens, return_type="resid"))
        out = [self.gpt.unembed(normed)]
        for down, up in zip(self.down, self.up):
            out.append(self.gpt.unembed(normed + normed @ down @ up))
        return out


def heads_loss(head_logits: list[Float[Tensor, "batch pos d_vocab"]], targets: Int[Tensor, "batch pos"]) -> Tensor:
    """Mean over heads of each head's cross-entropy (a 0-d tensor). ``targets`` are the next-token
    targets (-100 where unscored); head ``i`` (0-based) at position ``t`` is scored on
    ``targets[:, t + i]`` (the token ``i + 1`` ahead), where that is scored: head 0 is the ordinary
    next-token head. Each head's cross-entropy is the mean over ITS scored positions; a head with
    nothing to score (every target ``i`` or more ahead is -100) is left out of the mean. ValueError
    when no head has anything to score."""
    checks.check_type(head_logits, "head_logits", (list, tuple))
    if len(head_logits) == 0:
        raise ValueError("head_logits is empty: give one [batch, pos, d_vocab] tensor per head")
    checks.check_tensor(targets, "targets", ndim=2, dtype="int")
    for i, logits in enumerate(head_logits):
        checks.check_tensor(logits, f"head_logits[{i}]", ndim=3, dtype="float")
        if tuple(logits.shape[:2]) != tuple(targets.shape):
            raise ValueError(f"head_logits[{i}] must have shape {tuple(targets.shape)} + (d_vocab,) to match targets, "
                             f"got {tuple(logits.shape)}")
    targets = targets.long()
    losses = []
    for i, logits in enumerate(head_logits):
        ahead = torch.full_like(targets, -100)
        ahead[:, : max(targets.shape[1] - i, 0)] = targets[:, i:]  # a head further ahead than the rows are long scores nothing
        if (ahead != -100).any():
            losses.append(F.cross_entropy(logits.flatten(0, 1), ahead.flatten().to(logits.device), ignore_index=-100))
    if not losses:
        raise ValueError("targets has nothing to score")
    return torch.stack(losses).mean()


def multi_token_loss(model: MultiTokenGPT, tokens: Int[Tensor, "batch pos"], targets: Int[Tensor, "batch pos"]) -> Tensor:
    """Mean over heads of each head's cross-entropy (:func:`heads_loss` of the model's
    :meth:`~MultiTokenGPT.head_logits`). ``targets`` are the next-token targets (-100 where
    unscored); head ``i`` at position ``t`` is scored on ``targets[t + i]`` (the token ``i + 1``
    ahead), where that is scored, so it only ever predicts tokens the task scores."""
    checks.check_type(model, "model", MultiTokenGPT)
    checks.check_tensor(tokens, "tokens", dtype="int")
    checks.check_tensor(targets, "targets", dtype="int")
    if targets.shape != tokens.shape:
        raise ValueError(f"targets {tuple(targets.shape)} must match tokens {tuple(tokens.shape)}")
    return heads_loss(model.head_logits(tokens), targets)


def teacherless_tokens(tokens: Int[Tensor, "batch pos"], prompt_len: int, dummy_id: int) -> Int[Tensor, "batch pos"]:
    """``tokens`` with every position after the prompt replaced by ``dummy_id``: the answer is
    then predicted (at the same positions, against the same targets) without seeing any of it."""
    checks.check_tensor(tokens, "tokens", dtype="int")
    checks.check_int(prompt_len, "prompt_len", min=1)
    checks.check_int(dummy_id, "dummy_id", min=0)
    if prompt_len > tokens.shape[1]:
        raise ValueError(f"prompt_len {prompt_len} is longer than the rows ({tokens.shape[1]})")
    out = tokens.clone()
    out[:, prompt_len:] = dummy_id
    return out


@torch.no_grad()
def teacherless_answers(model, tokens: Int[Tensor, "batch pos"], prompt_len: int, answer_len: int,
                        dummy_id: int) -> Int[Tensor, "batch answer_len"]:
    """The answer read off one pass over the prompt and ``answer_len`` dummies."""
    checks.check_module(model)
    checks.check_int(answer_len, "answer_len", min=1)
    if prompt_len + answer_len > tokens.shape[1]:
        raise ValueError(f"prompt_len + answer_len = {prompt_len + answer_len} exceeds the rows ({tokens.shape[1]})")
    rows = teacherless_tokens(tokens[:, : prompt_len + answer_len], prompt_len, dummy_id)
    with checks.eval_mode(model):
        logits = model(rows)
    return logits[:, prompt_len - 1 : prompt_len - 1 + answer_len].argmax(dim=-1)
