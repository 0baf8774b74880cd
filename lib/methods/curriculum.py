"""A curriculum from written steps to latent ones (Coconut, Hao et al. 2024), and the same
schedule with pause tokens: the control that matched it on ProsQA (Coconut's own ablation, and
beyond the trained depth in "The Curriculum Is the Mechanism", 2026).

Coconut does not train continuous thoughts from scratch. It starts from chain of thought (every
intermediate step written as a supervised token) and, stage by stage, replaces the first ``k``
written steps by continuous thoughts (the last hidden state fed back as the next input), until
none is written. The written steps that remain keep their targets; a continuous thought has none.

On pointer chasing a question of ``h`` hops has ``h - 1`` slots (:mod:`lib.methods.chain_of_thought`).
At stage ``k`` the first ``min(k, h - 1)`` slots are latent and the rest hold the intermediate
pointers, supervised. The last stage has every slot latent: the layout the dense arm trains on
from the start. ``pause_curriculum`` runs the same schedule with pause tokens as the latent
slots (nothing fed back): if it matches ``coconut``, the schedule, not the fed-back vector, did the work.
That comparison needs a model that can do several hops within one pass: in a 1-layer model a
pause slot cannot hold a hop, so there the control fails whatever the schedule.

Here the stages share one optimizer and one learning-rate schedule and split the training steps
equally (Coconut restarts the optimizer at each stage; with a cosine schedule over the whole run
the arms keep the same budget and the same schedule as every other arm).
"""

from __future__ import annotations

from typing import Literal

import torch
from jaxtyping import Int
from torch import Tensor

from lib.core import checks
from lib.tasks.pointer_task import PointerBatch, carried_pointers

Latent = Literal["dense", "pause"]
LATENTS: tuple[str, ...] = ("dense", "pause")


def curriculum_stage(step: int, total_steps: int, n_stages: int) -> int:
    """The stage (0 .. ``n_stages - 1``) training is in at ``step`` of ``total_steps``: equal shares, in order."""
    checks.check_int(total_steps, "total_steps", min=1)
    checks.check_int(step, "step", min=0, max=total_steps - 1)
    checks.check_int(n_stages, "n_stages", min=1)
    return min(n_stages - 1, step * n_stages // total_steps)


def staged_chain(batch: PointerBatch, latent_slots: int, latent: Latent = "dense") -> tuple[Int[Tensor, "batch pos"],
                                                                                              Int[Tensor, "batch pos"]]:
    """``(tokens, targets)`` of stage ``latent_slots``: in each row the first ``latent_slots``
    slots after the start node hold a latent token (``<|dense|>`` or ``<|pause|>``, no target), the
    rest the pointer reached there, each a target (as in chain of thought), and the answer a target.
    ``batch`` is a dense-layout batch (its slots are where the dense tokens sit)."""
    checks.check_type(batch, "batch", PointerBatch)
    if batch.filler != "dense":
        raise ValueError(f"batch must be laid out with filler 'dense' (one slot per intermediate node), got {batch.filler!r}")
    checks.check_int(latent_slots, "latent_slots", min=0)
    checks.check_choice(latent, "latent", LATENTS)
    rows, cols, nodes = carried_pointers(batch)
    index = cols - batch.start_pos.to(cols.device)[rows]  # 1 for the first slot
    written = index > latent_slots
    tokens, targets = batch.tokens.clone(), batch.targets.clone()
    tokens[rows, cols] = torch.where(written, nodes, torch.full_like(nodes, batch.spec.filler_id(latent)))
    targets[rows[written], cols[written] - 1] = nodes[written]  # position i predicts token i + 1
    return tokens, targets


def staged_path(batch, latent_slots: int, latent: Latent = "dense") -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """The same stage on a graph question (:class:`lib.tasks.graph_reach.GraphBatch`, dense layout):
    the first ``latent_slots`` of each row's ``d - 1`` slots hold a latent token (no target), the
    rest the path from the start to the answer, written and supervised as in
    :func:`lib.tasks.graph_reach.written_path`, and the answer a target."""
    from lib.tasks.graph_reach import GraphBatch, written_path

    checks.check_type(batch, "batch", GraphBatch)
    checks.check_int(latent_slots, "latent_slots", min=0)
    checks.check_choice(latent, "latent", LATENTS)
    tokens, targets = written_path(batch)  # checks the layout
    rows, cols = batch.useful.nonzero(as_tuple=True)
    hidden = cols - (batch.spec.question_pos + 3) <= latent_slots  # slot index 1, 2, ... from the start node
    tokens[rows[hidden], cols[hidden]] = batch.spec.filler_id(latent)
    targets[rows[hidden], cols[hidden] - 1] = -100  # a latent slot has no target
    return tokens, targets


def latent_depth(tokens: Int[Tensor, "batch pos"], dense_id: int) -> int:
    """Passes an exact unrolled forward needs: the most dense tokens in a row."""
    checks.check_tensor(tokens, "tokens", ndim=2, dtype="int")
    checks.check_int(dense_id, "dense_id", min=0)
    return int((tokens == dense_id).sum(dim=1).max()) if tokens.numel() else 0


__all__ = ["LATENTS", "curriculum_stage", "latent_depth", "staged_chain", "staged_path"]
