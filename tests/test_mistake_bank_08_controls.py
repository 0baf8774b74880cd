"""Mistake bank, notebook 08's controls: typical mistakes in writing a chain of thought's targets and
in the loss of multi-token prediction's heads, written as a learner would write them (not with the
checker's own helpers), each rejected in strict mode with a message that NAMES the mistake."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mistake_bank_common import assert_enough_mistakes, assert_rejected_and_named, bank_ids
from lib.exercises.controls import check_chain_of_thought_targets, check_multi_token_heads_loss


# ----------------------------------------------------------------------------- 08 chain_of_thought_targets
def _chain(batch, slot_offset=-1, write_tokens=True, write_targets=True, target_shift=1, keep_answer=True,
           mask=None, in_place=False):
    """The chain written at the slots ``mask`` (default batch.useful), slot i holding
    chain[:, i + slot_offset], its target ``target_shift`` columns to the left."""
    tokens = batch.tokens if in_place else batch.tokens.clone()
    targets = batch.targets if in_place else batch.targets.clone()
    if not keep_answer:
        targets = torch.full_like(batch.targets, -100)
    rows, cols = (batch.useful if mask is None else mask(batch)).nonzero(as_tuple=True)
    slot = cols - batch.start_pos[rows]
    nodes = batch.chain[rows, (slot + slot_offset).clamp(max=batch.chain.shape[1] - 1)]
    if write_tokens:
        tokens[rows, cols] = nodes
    if write_targets:
        targets[rows, cols - target_shift] = nodes
    return tokens, targets


def chain_no_targets(batch):
    return _chain(batch, write_targets=False)


def chain_no_tokens(batch):
    return _chain(batch, write_tokens=False)


def chain_skips_first_pointer(batch):  # slot i holds chain[i]
    return _chain(batch, slot_offset=0)


def chain_target_at_slot(batch):
    return _chain(batch, target_shift=0)


def chain_in_place(batch):
    return _chain(batch, in_place=True)


def chain_new_targets(batch):  # targets from scratch: the answer's target is lost
    return _chain(batch, keep_answer=False)


def chain_into_padding(batch):  # max_hops - 1 slots in every row, whatever its hop count
    pos = torch.arange(batch.tokens.shape[1])[None]
    start = batch.start_pos[:, None]
    return _chain(batch, mask=lambda b: (pos > start) & (pos < start + b.spec.max_hops))


def chain_every_dense_token(batch):  # the decoys before the start node taken for slots too
    return _chain(batch, mask=lambda b: b.tokens == b.spec.dense_id)


def chain_start_node_first(batch):  # slot 1 holds the start node x, slot i the pointer after i - 1 lookups
    tokens, targets = batch.tokens.clone(), batch.targets.clone()
    rows, cols = batch.useful.nonzero(as_tuple=True)
    slot = cols - batch.start_pos[rows]
    x = batch.tokens[rows, batch.start_pos[rows]]
    nodes = torch.where(slot == 1, x, batch.chain[rows, (slot - 2).clamp(min=0)])
    tokens[rows, cols] = nodes
    targets[rows, cols - 1] = nodes
    return tokens, targets


# ----------------------------------------------------------------------------- 08 multi_token_heads_loss
def _ahead(targets, s):
    out = torch.full_like(targets, -100)
    if s >= 0:
        out[:, : targets.shape[1] - s] = targets[:, s:]
    else:
        out[:, -s:] = targets[:, : targets.shape[1] + s]
    return out


def _heads(head_logits, targets, shift=lambda i: i, total=False, skip_empty=True):
    losses = []
    for i, logits in enumerate(head_logits):
        ahead = _ahead(targets, shift(i))
        if (ahead != -100).any() or not skip_empty:
            losses.append(F.cross_entropy(logits.flatten(0, 1), ahead.flatten(), ignore_index=-100))
    losses = torch.stack(losses)
    return losses.sum() if total else losses.mean()


def heads_wrong_way(head_logits, targets):
    return _heads(head_logits, targets, shift=lambda i: -i)


def heads_no_shift(head_logits, targets):
    return _heads(head_logits, targets, shift=lambda i: 0)


def heads_shift_one_more(head_logits, targets):
    return _heads(head_logits, targets, shift=lambda i: i + 1)


def heads_summed(head_logits, targets):
    return _heads(head_logits, targets, total=True)


def heads_mean_over_all_positions(head_logits, targets):  # unscored positions masked to 0, then a plain mean
    losses = []
    for i, logits in enumerate(head_logits):
        ahead = _ahead(targets, i)
        if (ahead != -100).any():
            each = F.cross_entropy(logits.flatten(0, 1), ahead.flatten().clamp(min=0), reduction="none")
            losses.append((each * (ahead.flatten() != -100)).mean())
    return torch.stack(losses).mean()


def heads_pooled(head_logits, targets):
    logits = torch.cat([l.flatten(0, 1) for l in head_logits])
    ahead = torch.cat([_ahead(targets, i).flatten() for i in range(len(head_logits))])
    return F.cross_entropy(logits, ahead)


def heads_empty_is_nan(head_logits, targets):
    return _heads(head_logits, targets, skip_empty=False)


def heads_empty_is_zero(head_logits, targets):
    losses = [F.cross_entropy(l.flatten(0, 1), _ahead(targets, i).flatten()) if (_ahead(targets, i) != -100).any()
              else torch.zeros(()) for i, l in enumerate(head_logits)]
    return torch.stack(losses).mean()


def heads_first_only(head_logits, targets):
    return F.cross_entropy(head_logits[0].flatten(0, 1), targets.flatten())


def heads_detached(head_logits, targets):
    return torch.tensor(_heads(head_logits, targets).item())


BANK = [
    ("chain_of_thought_targets", check_chain_of_thought_targets, chain_no_targets, "did not add their targets"),
    ("chain_of_thought_targets", check_chain_of_thought_targets, chain_no_tokens, "left the dense tokens"),
    ("chain_of_thought_targets", check_chain_of_thought_targets, chain_skips_first_pointer, "one pointer ahead"),
    ("chain_of_thought_targets", check_chain_of_thought_targets, chain_start_node_first, "one pointer behind"),
    ("chain_of_thought_targets", check_chain_of_thought_targets, chain_target_at_slot, "at the slot itself"),
    ("chain_of_thought_targets", check_chain_of_thought_targets, chain_in_place, "in place"),
    ("chain_of_thought_targets", check_chain_of_thought_targets, chain_new_targets, "answer's target is gone"),
    ("chain_of_thought_targets", check_chain_of_thought_targets, chain_into_padding, "wrote past each row's h - 1"),
    ("chain_of_thought_targets", check_chain_of_thought_targets, chain_every_dense_token, "decoy dense tokens BEFORE"),
    ("multi_token_heads_loss", check_multi_token_heads_loss, heads_wrong_way, "the wrong way"),
    ("multi_token_heads_loss", check_multi_token_heads_loss, heads_no_shift, "no shift"),
    ("multi_token_heads_loss", check_multi_token_heads_loss, heads_shift_one_more, "by i + 1"),
    ("multi_token_heads_loss", check_multi_token_heads_loss, heads_summed, "summed"),
    ("multi_token_heads_loss", check_multi_token_heads_loss, heads_mean_over_all_positions, "unscored ones (-100)"),
    ("multi_token_heads_loss", check_multi_token_heads_loss, heads_pooled, "pooled"),
    ("multi_token_heads_loss", check_multi_token_heads_loss, heads_empty_is_nan, "NaN"),
    ("multi_token_heads_loss", check_multi_token_heads_loss, heads_empty_is_zero, "counted as a loss of 0"),
    ("multi_token_heads_loss", check_multi_token_heads_loss, heads_first_only, "first (next-token) head's loss only"),
    ("multi_token_heads_loss", check_multi_token_heads_loss, heads_detached, "cut off from the logits"),
]

NOTEBOOK_EXERCISES = ["chain_of_thought_targets", "multi_token_heads_loss"]


def test_every_exercise_has_at_least_five_named_mistakes():
    assert_enough_mistakes(BANK, NOTEBOOK_EXERCISES, at_least=5)


@pytest.mark.parametrize("exercise, check, wrong, named", BANK, ids=bank_ids(BANK))
def test_mistake_is_rejected_and_named(exercise, check, wrong, named):
    assert_rejected_and_named(exercise, check, wrong, named)
