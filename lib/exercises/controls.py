"""Checkers for notebook 08's controls from the literature: the targets of a written chain of thought
(``chain_of_thought_targets``) and the loss of multi-token prediction's heads
(``multi_token_heads_loss``)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from lib.exercises import (
    call_learner, checker, describe_mismatch, expect, expect_close, expect_unchanged, explain, report,
)
from lib.methods.chain_of_thought import written_chain
from lib.methods.multi_token import heads_loss
from lib.tasks.pointer_task import PointerBatch, PointerSpec, sample_pointer_batch


def reference_chain_of_thought_targets(batch: PointerBatch) -> tuple[Tensor, Tensor]:
    """The solution: ``(tokens, targets)`` with every slot after the start node holding the pointer
    reached so far, and a target for it at the position before."""
    return written_chain(batch)


# ----------------------------------------------------------------------------- chain_of_thought_targets
M_NO_TARGETS = ("you wrote the slots' tokens but did not add their targets: every written slot is also a target, at "
                "the position before it")
M_NO_TOKENS = ("you added the targets but left the dense tokens in the slots: the slots must hold the written chain "
               "too")
M_AHEAD = ("you are one pointer ahead in the chain: the first slot after the start node holds f(x) = chain[:, 0] (one "
           "lookup), slot i holds chain[:, i - 1]")
M_BEHIND = ("you are one pointer behind in the chain: the first slot after the start node holds f(x) = chain[:, 0], "
            "not the start node itself")
M_AT_SLOT = ("you put each slot's target at the slot itself: position p predicts token p + 1, so the target of the "
             "slot at column c goes at column c - 1")
M_ANSWER_TARGET = ("the answer's target is gone: start from a copy of batch.targets (which holds it) and add the "
                   "slots' targets to it")
M_PAST = ("you wrote past each row's h - 1 slots (into the answer or the padding): a row of h hops has h - 1 "
          "slots, the dense tokens after its start node (batch.useful)")
M_DECOYS = ("you replaced the decoy dense tokens BEFORE the start node too: only the dense tokens AFTER it are slots "
            "(batch.useful); decoys stay dense")


def _write(batch: PointerBatch, rows: Tensor, cols: Tensor, nodes: Tensor, tokens: bool = True, targets: bool = True,
           target_shift: int = 1, keep_answer: bool = True) -> tuple[Tensor, Tensor]:
    """``batch``'s tokens and targets with ``nodes`` written at (rows, cols), as the variants below
    get them wrong."""
    new_tokens = batch.tokens.clone()
    new_targets = batch.targets.clone() if keep_answer else torch.full_like(batch.targets, -100)
    if tokens:
        new_tokens[rows, cols] = nodes
    if targets:
        new_targets[rows, cols - target_shift] = nodes
    return new_tokens, new_targets


def _slots(batch: PointerBatch) -> tuple[Tensor, Tensor, Tensor]:
    rows, cols = batch.useful.nonzero(as_tuple=True)
    return rows, cols, cols - batch.start_pos[rows]  # slot 1 is the one right after the start node


def _chain_ahead(batch: PointerBatch) -> tuple[Tensor, Tensor]:
    rows, cols, slot = _slots(batch)
    return _write(batch, rows, cols, batch.chain[rows, slot])


def _chain_behind(batch: PointerBatch) -> tuple[Tensor, Tensor]:
    rows, cols, slot = _slots(batch)
    x = batch.tokens[rows, batch.start_pos[rows]]
    return _write(batch, rows, cols, torch.where(slot >= 2, batch.chain[rows, (slot - 2).clamp(min=0)], x))


def _every_row_full(batch: PointerBatch) -> tuple[Tensor, Tensor]:
    """``max_hops - 1`` slots written in every row, whatever its hop count."""
    n_slots = batch.spec.max_hops - 1
    rows = torch.arange(batch.tokens.shape[0]).repeat_interleave(n_slots)
    slot = torch.arange(1, n_slots + 1).repeat(batch.tokens.shape[0])
    return _write(batch, rows, batch.start_pos[rows] + slot, batch.chain[rows, slot - 1])


def _every_dense_token(batch: PointerBatch) -> tuple[Tensor, Tensor]:
    """Every dense token taken for a slot, its number counted from the start node (so a decoy's is
    negative and indexes the chain from its end)."""
    rows, cols = (batch.tokens == batch.spec.dense_id).nonzero(as_tuple=True)
    slot = cols - batch.start_pos[rows]
    return _write(batch, rows, cols, batch.chain[rows, slot - 1])


def _chain_variants(batch: PointerBatch) -> dict[str, tuple[Tensor, Tensor]]:
    rows, cols, slot = _slots(batch)
    nodes = batch.chain[rows, slot - 1]
    return {
        M_NO_TARGETS: _write(batch, rows, cols, nodes, targets=False),
        M_NO_TOKENS: _write(batch, rows, cols, nodes, tokens=False),
        M_AHEAD: _chain_ahead(batch),
        M_BEHIND: _chain_behind(batch),
        M_AT_SLOT: _write(batch, rows, cols, nodes, target_shift=0),
        M_ANSWER_TARGET: _write(batch, rows, cols, nodes, keep_answer=False),
        M_PAST: _every_row_full(batch),
        M_DECOYS: _every_dense_token(batch),
    }


def _structural_mistake(batch: PointerBatch, tokens: Tensor, targets: Tensor) -> str | None:
    """A mistake named from WHERE the answer differs, when it matches no variant exactly."""
    pos = torch.arange(batch.tokens.shape[1])[None]
    before_start = pos < batch.start_pos[:, None]
    decoys = (batch.tokens == batch.spec.dense_id) & before_start
    if (tokens[decoys] != batch.tokens[decoys]).any():
        return M_DECOYS
    from_answer = pos >= batch.answer_pos[:, None]
    if (tokens[from_answer] != batch.tokens[from_answer]).any():
        return M_PAST
    rows = torch.arange(batch.tokens.shape[0])
    if (targets[rows, batch.answer_pos - 1] != batch.answers).any():
        return M_ANSWER_TARGET
    slots_or_x = batch.useful | ~before_start
    if (tokens[~slots_or_x] != batch.tokens[~slots_or_x]).any():
        return "you changed tokens before the start node (the table, the question or the decoys): only the slots change"
    return None


def _distinct_chain_rows(batch: PointerBatch, hops: list[int]) -> list[int]:
    """For each hop count in ``hops``, the first row of that count whose start node and chain are all
    different nodes (a fixed point would hide an off-by-one)."""
    picked = []
    for h in hops:
        for row in range(batch.tokens.shape[0]):
            nodes = [int(batch.tokens[row, batch.start_pos[row]])] + batch.chain[row].tolist()
            if int(batch.hops[row]) == h and row not in picked and len(set(nodes)) == len(nodes):
                picked.append(row)
                break
        else:
            raise RuntimeError(f"no row of {h} hops with a chain of distinct nodes")  # the seeds below have them
    return picked


def _chain_cases() -> list[tuple[str, PointerBatch]]:
    spec3, spec4 = PointerSpec(n_nodes=6, max_hops=3), PointerSpec(n_nodes=7, max_hops=4)
    pool3 = sample_pointer_batch(spec3, 64, torch.Generator().manual_seed(0), "dense")
    pool4 = sample_pointer_batch(spec4, 64, torch.Generator().manual_seed(1), "dense")
    decoys = sample_pointer_batch(spec3, 64, torch.Generator().manual_seed(2), "dense", decoys=2)
    # rows with decoys, of every hop count, each chain of distinct nodes
    with_decoys = decoys.select([r for r in range(64) if int(decoys.start_pos[r]) > spec3.n_nodes + 2])
    return [
        ("three rows of 1, 2 and 3 hops", pool3.select(_distinct_chain_rows(pool3, [1, 2, 3]))),
        ("two 1-hop questions (no slot to write)", pool3.select(_distinct_chain_rows(pool3, [1, 1]))),
        ("max_hops = 4: rows of 4, 2, 3 and 1 hops", pool4.select(_distinct_chain_rows(pool4, [4, 2, 3, 1]))),
        ("rows with 1 or 2 decoy dense tokens BEFORE the start node (they must stay dense)",
         with_decoys.select(_distinct_chain_rows(with_decoys, [2, 3, 1, 3]))),
    ]


def _copy(batch: PointerBatch) -> PointerBatch:
    return PointerBatch(**{k: (v.clone() if isinstance(v, Tensor) else v) for k, v in batch.__dict__.items()})


def _same_pair(a, b) -> bool:
    return (isinstance(a, (tuple, list)) and len(a) == 2 and all(isinstance(t, Tensor) for t in a)
            and all(x.shape == y.shape and torch.equal(x.long(), y) for x, y in zip(a, b)))


_CHAIN_HINT = ("slot i (1 for the dense token right after the start node, batch.useful marks the slots) holds "
               "chain[:, i - 1], the pointer reached after i lookups, and the same value is a target at the position "
               "before the slot (position p predicts token p + 1); the answer's target stays, decoys before the start "
               "node and everything else are copied unchanged, into NEW tensors")


@checker("chain_of_thought_targets")
def check_chain_of_thought_targets(fn: Callable) -> None:
    """``fn(batch) -> (tokens, targets)``: the chain written into the slots of a dense-layout pointer
    batch, each written slot also a target; the batch is not modified."""
    name = "chain_of_thought_targets"
    cases = _chain_cases()
    outputs = []
    for case, batch in cases:
        given = _copy(batch)
        got = call_learner(name, fn, given)
        expect_unchanged(batch.tokens, given.tokens, name, case, "batch.tokens")
        expect_unchanged(batch.targets, given.targets, name, case, "batch.targets")
        expect(isinstance(got, (tuple, list)) and len(got) == 2 and all(isinstance(t, Tensor) for t in got),
               name, case, f"return a pair (tokens, targets) of tensors, not {type(got).__name__}")
        for what, t in zip(("tokens", "targets"), got):
            expect(tuple(t.shape) == tuple(batch.tokens.shape), name, case,
                   f"{what} must have the batch's shape {tuple(batch.tokens.shape)}, yours is {tuple(t.shape)}")
            expect(not t.is_floating_point() and t.dtype != torch.bool, name, case,
                   f"{what} must hold integer token ids (like batch.{what}), not {t.dtype}")
            expect(t.data_ptr() not in (given.tokens.data_ptr(), given.targets.data_ptr()), name, case,
                   f"it looks like you returned the batch's own `{what}` tensor: return NEW tensors (copies), the "
                   "batch is not modified")
        outputs.append(tuple(got))
    candidates: dict[str, list] = {}
    for _, batch in cases:
        for description, pair in _chain_variants(batch).items():
            candidates.setdefault(description, []).append(pair)
    for at, ((case, batch), got) in enumerate(zip(cases, outputs)):
        expected = written_chain(batch)
        if _same_pair(got, expected):
            continue
        named = explain(outputs, candidates, same=_same_pair, at=at) or _structural_mistake(batch, *got)
        which = 0 if not torch.equal(got[0].long(), expected[0]) else 1
        where = describe_mismatch(got[which], expected[which], 0.5)
        expect(False, name, f"{case}, {('tokens', 'targets')[which]}",
               (f"It looks like {named}. " if named else "") + f"{where}. " + _CHAIN_HINT)
    report(name, len(cases))


# ----------------------------------------------------------------------------- multi_token_heads_loss
H_WRONG_WAY = ("you shifted the targets the wrong way: head i at position t is scored on the target i positions "
               "AHEAD, targets[:, t + i], not targets[:, t - i]")
H_NO_SHIFT = ("you scored every head on the next-token targets (no shift): head i at position t is scored on "
              "targets[:, t + i]")
H_ONE_TOO_FAR = ("you shifted head i by i + 1: head 0 is the ordinary next-token head (the targets already are the "
                 "next tokens), so head i's shift is i")
H_SUM = "you summed the heads' losses: the loss is their MEAN"
H_UNSCORED = ("you averaged over every position, the unscored ones (-100) counted as 0: each head's cross-entropy is "
              "the mean over its SCORED positions only")
H_POOLED = ("you pooled the scored positions of all heads into one mean: take each head's mean first, then the mean "
            "over heads")
H_EMPTY_ZERO = ("a head with nothing to score counted as a loss of 0 in your mean: leave such heads out of the mean")
H_EMPTY_NAN = ("a head with nothing to score made your loss NaN (a mean over no positions): leave such heads out")
H_FIRST_ONLY = "you returned the first (next-token) head's loss only: average the loss of every head"


def _shifted(targets: Tensor, s: int) -> Tensor:
    """Position t gets targets[:, t + s] (-100 where that is outside the row)."""
    out = torch.full_like(targets, -100)
    pos = targets.shape[1]
    if s >= 0:
        out[:, : max(pos - s, 0)] = targets[:, s:]
    else:
        out[:, -s:] = targets[:, : pos + s]
    return out


def _ce(logits: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=-100)


def _heads_variant(shift=lambda i: i, reduce: str = "mean", empty: str = "skip", per_head=_ce) -> Callable:
    def loss(head_logits, targets):
        losses = []
        for i, logits in enumerate(head_logits):
            ahead = _shifted(targets, shift(i))
            if (ahead != -100).any() or empty == "nan":
                losses.append(per_head(logits, ahead))
            elif empty == "zero":
                losses.append(torch.zeros(()))
        stacked = torch.stack(losses)
        return stacked.sum() if reduce == "sum" else stacked.mean()
    return loss


def _mean_over_all_positions(logits: Tensor, target: Tensor) -> Tensor:
    scored = target != -100
    each = F.cross_entropy(logits.flatten(0, 1), target.clamp(min=0).flatten(), reduction="none")
    return (each * scored.flatten()).mean()


def _pooled(head_logits, targets):
    logits = torch.cat([l.flatten(0, 1) for l in head_logits])
    ahead = torch.cat([_shifted(targets, i).flatten() for i in range(len(head_logits))])
    return F.cross_entropy(logits, ahead, ignore_index=-100)


_HEADS_MISTAKES = {
    H_WRONG_WAY: _heads_variant(shift=lambda i: -i),
    H_NO_SHIFT: _heads_variant(shift=lambda i: 0),
    H_ONE_TOO_FAR: _heads_variant(shift=lambda i: i + 1),
    H_SUM: _heads_variant(reduce="sum"),
    H_UNSCORED: _heads_variant(per_head=_mean_over_all_positions),
    H_POOLED: _pooled,
    H_EMPTY_ZERO: _heads_variant(empty="zero"),
    H_EMPTY_NAN: _heads_variant(empty="nan"),
    H_FIRST_ONLY: lambda head_logits, targets: _ce(head_logits[0], targets),
}


def _heads_cases() -> list[tuple[str, list[Tensor], Tensor]]:
    gen = torch.Generator().manual_seed(0)

    def logits(k, batch, pos, vocab):
        return [2 * torch.randn(batch, pos, vocab, generator=gen) for _ in range(k)]

    def targets(batch, pos, vocab, scored):
        out = torch.full((batch, pos), -100, dtype=torch.long)
        t = torch.randint(0, vocab, (batch, pos), generator=gen)
        out[scored] = t[scored]
        return out

    one = torch.ones(2, 6, dtype=torch.bool)
    one[:, -1] = False
    one[1, 2] = False
    answer = torch.zeros(2, 9, dtype=torch.bool)
    answer[:, 3:7] = True
    ragged = torch.zeros(3, 8, dtype=torch.bool)
    ragged[0, 1:7], ragged[1, 5:7], ragged[2, 3] = True, True, True
    early = torch.zeros(2, 7, dtype=torch.bool)
    early[:, :2] = True
    return [
        ("one head: the ordinary next-token loss", logits(1, 2, 6, 5), targets(2, 6, 5, one)),
        ("three heads, an answer of 4 tokens scored at positions 3-6 (as in a path-star batch)",
         logits(3, 2, 9, 7), targets(2, 9, 7, answer)),
        ("two heads, rows with 6, 2 and 1 scored targets", logits(2, 3, 8, 6), targets(3, 8, 6, ragged)),
        ("four heads, only positions 0 and 1 scored: heads 2 and 3 have nothing to score",
         logits(4, 2, 7, 5), targets(2, 7, 5, early)),
    ]


_HEADS_HINT = ("head i at position t is scored on targets[:, t + i] (head 0 on the targets as they are), -100 and "
               "positions past the end not scored; each head's loss is the mean cross-entropy over its scored "
               "positions, heads with nothing to score are left out, and the loss is the mean over the heads left")


@checker("multi_token_heads_loss")
def check_multi_token_heads_loss(fn: Callable) -> None:
    """``fn(head_logits, targets) -> loss``: the mean over heads of each head's cross-entropy, head i
    scored on the targets i positions ahead."""
    name = "multi_token_heads_loss"
    cases = _heads_cases()
    outputs = []
    for case, head_logits, targets in cases:
        given_logits = [l.clone().requires_grad_(True) for l in head_logits]
        given_targets = targets.clone()
        with torch.enable_grad():
            got = call_learner(name, fn, given_logits, given_targets)
        expect_unchanged(targets, given_targets, name, case, "targets")
        for l, given in zip(head_logits, given_logits):
            expect_unchanged(l, given, name, case, "head_logits")
        if isinstance(got, Tensor) and got.numel() == 1:
            got = got.reshape(())  # a [1] tensor is fine
        outputs.append(got)
    candidates = {d: [wrong(l, t) for _, l, t in cases] for d, wrong in _HEADS_MISTAKES.items()}
    for at, ((case, head_logits, targets), got) in enumerate(zip(cases, outputs)):
        expected = heads_loss(head_logits, targets)
        named = explain(outputs, candidates, at=at)
        expect_close(got, expected, name, case, _HEADS_HINT, atol=1e-5,
                     mistakes={named: candidates[named][at]} if named else None)
        expect(got.requires_grad, name, case,
               "it looks like your loss is cut off from the logits (detached, or rebuilt from Python numbers with "
               ".item()): training backpropagates through it, so keep it a tensor computed from the logits")
    report(name, len(cases))


__all__ = [
    "check_chain_of_thought_targets",
    "check_multi_token_heads_loss",
    "reference_chain_of_thought_targets",
]
