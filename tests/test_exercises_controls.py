"""Each checker of notebook 08's controls (chain-of-thought targets, multi-token heads' loss) passes
on a correct answer and fails on a stub and on a typical mistake."""

import pytest
import torch
import torch.nn.functional as F

from lib.exercises import ExerciseFailed, unwritten_exercise
from lib.exercises.catalog import EXERCISES
from lib.exercises.controls import (
    check_chain_of_thought_targets, check_multi_token_heads_loss, reference_chain_of_thought_targets,
)
from lib.methods.chain_of_thought import written_chain
from lib.methods.multi_token import heads_loss


pytestmark = pytest.mark.usefixtures("strict_checkers")


stub = unwritten_exercise


def test_the_exercises_are_in_the_catalog():
    for name in ("chain_of_thought_targets", "multi_token_heads_loss"):
        assert EXERCISES[name].notebook == "08"
    assert EXERCISES["multi_token_heads_loss"].import_line == (
        "from lib.methods.multi_token import heads_loss as multi_token_heads_loss")


def solved_chain(batch):  # as the notebook writes it
    tokens, targets = batch.tokens.clone(), batch.targets.clone()
    rows, cols = batch.useful.nonzero(as_tuple=True)
    nodes = batch.chain[rows, cols - batch.start_pos[rows] - 1]
    tokens[rows, cols] = nodes
    targets[rows, cols - 1] = nodes
    return tokens, targets


def test_chain_of_thought_targets_checker(capsys):
    check_chain_of_thought_targets(solved_chain)
    assert "chain_of_thought_targets: 4/4 checks passed" in capsys.readouterr().out
    check_chain_of_thought_targets(reference_chain_of_thought_targets)  # runs, says it is the reference
    assert "holds the reference solution" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_chain_of_thought_targets(stub)

    def in_place(batch):  # writes into the batch's own tensors, then returns copies of them
        tokens, targets = written_chain(batch)
        batch.tokens.copy_(tokens)
        batch.targets.copy_(targets)
        return tokens.clone(), targets.clone()

    with pytest.raises(ExerciseFailed, match="in place"):
        check_chain_of_thought_targets(in_place)

    def no_targets(batch):
        return written_chain(batch)[0], batch.targets.clone()

    with pytest.raises(ExerciseFailed, match="did not add their targets"):
        check_chain_of_thought_targets(no_targets)

    def every_dense_token(batch):  # the decoys before the start node are not slots
        tokens, targets = batch.tokens.clone(), batch.targets.clone()
        dense = tokens == batch.spec.dense_id
        rows, cols = dense.nonzero(as_tuple=True)
        first = dense.float().argmax(1)[rows]  # slots counted from the row's first dense token
        nodes = batch.chain[rows, (cols - first).clamp(max=batch.chain.shape[1] - 1)]
        tokens[rows, cols] = nodes
        targets[rows, cols - 1] = nodes
        return tokens, targets

    with pytest.raises(ExerciseFailed, match="decoy"):
        check_chain_of_thought_targets(every_dense_token)
    with pytest.raises(ExerciseFailed, match="pair"):
        check_chain_of_thought_targets(lambda batch: written_chain(batch)[0])
    with pytest.raises(ExerciseFailed, match="integer"):
        check_chain_of_thought_targets(lambda batch: tuple(t.float() for t in written_chain(batch)))
    with pytest.raises(ExerciseFailed, match="NEW tensors"):
        check_chain_of_thought_targets(lambda batch: (batch.tokens, batch.targets) if not batch.useful.any()
                                       else written_chain(batch))


def solved_heads(head_logits, targets):  # as the notebook writes it
    losses = []
    for i, logits in enumerate(head_logits):
        ahead = torch.full_like(targets, -100)
        ahead[:, : targets.shape[1] - i] = targets[:, i:]
        if (ahead != -100).any():
            losses.append(F.cross_entropy(logits.flatten(0, 1), ahead.flatten(), ignore_index=-100))
    return torch.stack(losses).mean()


def test_multi_token_heads_loss_checker(capsys):
    check_multi_token_heads_loss(solved_heads)
    assert "multi_token_heads_loss: 4/4 checks passed" in capsys.readouterr().out
    check_multi_token_heads_loss(lambda logits, targets: solved_heads(logits, targets)[None])  # [1] is fine
    check_multi_token_heads_loss(heads_loss)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        check_multi_token_heads_loss(stub)

    def no_shift(head_logits, targets):  # every head scored on the next-token targets
        return torch.stack([F.cross_entropy(l.flatten(0, 1), targets.flatten()) for l in head_logits]).mean()

    with pytest.raises(ExerciseFailed, match="no shift"):
        check_multi_token_heads_loss(no_shift)
    with pytest.raises(ExerciseFailed, match="summed"):
        check_multi_token_heads_loss(lambda logits, targets: solved_heads(logits, targets) * len(logits))
    with pytest.raises(ExerciseFailed, match="cut off from the logits"):
        check_multi_token_heads_loss(lambda logits, targets: solved_heads(logits, targets).detach())
    with pytest.raises(ExerciseFailed, match="torch.Tensor"):
        check_multi_token_heads_loss(lambda logits, targets: solved_heads(logits, targets).item())

    def shifts_in_place(head_logits, targets):  # reuses targets as the shifted buffer
        losses = []
        for logits in head_logits:
            if (targets != -100).any():
                losses.append(F.cross_entropy(logits.flatten(0, 1), targets.flatten()))
            targets[:, :-1] = targets[:, 1:].clone()
            targets[:, -1] = -100
        return torch.stack(losses).mean()

    with pytest.raises(ExerciseFailed, match="in place"):
        check_multi_token_heads_loss(shifts_in_place)
