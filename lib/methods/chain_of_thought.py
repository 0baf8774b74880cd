"""Chain of thought on pointer chasing: the intermediate pointers written out as tokens.

The control every latent-reasoning method is measured against. A question of ``h`` hops has
``h - 1`` slots between the start node and the answer (the places where the dense arm puts its
``<|dense|>`` tokens). Here each slot holds the node reached so far, as an ordinary token, and
every one of them is a target: the model is taught to *write* ``f(x), f(f(x)), ...`` and then
the answer. Training is teacher-forced (one forward pass a step); at test the model fills the
slots itself, greedily, one pass per slot, and only its final answer is scored. A question
therefore costs ``h`` forward passes: the same as ``h - 1`` dense tokens unrolled exactly, which
is what makes "a vector fed back" and "a token written out" comparable at equal compute.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from lib.core import checks
from lib.tasks.pointer_task import PointerBatch, carried_pointers


def _check_slotted(batch) -> None:
    from lib.tasks.graph_reach import GraphBatch  # graph questions have the same slots (lib.tasks.graph_reach.written_path)

    checks.check_type(batch, "batch", (PointerBatch, GraphBatch))
    if batch.filler != "dense":
        raise ValueError(f"batch must be laid out with filler 'dense' (one slot per intermediate node), got {batch.filler!r}")


def written_chain(batch: PointerBatch) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """``(tokens, targets)`` with every slot after the start node holding the pointer reached so
    far, and every slot (and the answer) a target. ``batch`` is a dense-layout batch: its slots are
    where the dense tokens after the start node sit (decoy fillers before it, if any, stay)."""
    _check_slotted(batch)
    rows, cols, nodes = carried_pointers(batch)
    tokens, targets = batch.tokens.clone(), batch.targets.clone()
    tokens[rows, cols] = nodes
    targets[rows, cols - 1] = nodes  # position i predicts token i + 1
    return tokens, targets


@torch.no_grad()
def greedy_chain_logits(model, batch) -> Float[Tensor, "batch pos d_vocab"]:
    """The logits of the last of ``1 + max slots`` passes in which the model has written every
    slot itself (greedy, left to right); the answer is read from them as for any pointer batch
    (:func:`lib.tasks.pointer_task.answer_logits`). Rows with fewer slots are finished early and
    stay unchanged. ``batch``: a :class:`PointerBatch` or a graph question's
    :class:`lib.tasks.graph_reach.GraphBatch`, both in the dense layout."""
    _check_slotted(batch)
    checks.check_module(model)
    tokens = batch.tokens.clone()
    slots = batch.useful.clone()
    logits = model(tokens)
    while slots.any():
        first = slots.float().argmax(dim=1)  # each row's leftmost unwritten slot
        rows = slots.any(dim=1).nonzero(as_tuple=True)[0]
        tokens[rows, first[rows]] = logits[rows, first[rows] - 1].argmax(dim=-1)
        slots[rows, first[rows]] = False
        logits = model(tokens)
    return logits


def chain_passes(batch: PointerBatch) -> Tensor:
    """Forward passes each question costs when the model writes its own chain: ``h`` for ``h`` hops."""
    _check_slotted(batch)
    return batch.useful.sum(dim=1) + 1
