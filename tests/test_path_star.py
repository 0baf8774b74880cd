"""Path-star graphs: structure, answers, targets, scoring and greedy decoding."""

import pytest
import torch

from lib.core.model import GPT, GPTConfig
from lib.tasks.path_star import PathStarSpec, greedy_answers, path_accuracy, sample_path_star

SPEC = PathStarSpec(degree=3, path_len=4, n_nodes=20)


def batch(reverse=False, n=64):
    return sample_path_star(SPEC, n, torch.Generator().manual_seed(0), reverse=reverse)


def test_spec_sizes():
    assert SPEC.n_graph_nodes == 10 and SPEC.n_edges == 9
    assert SPEC.prompt_len == 22 and SPEC.seq_len == 26 and SPEC.vocab_size == 22
    for bad in (dict(degree=1), dict(path_len=1), dict(n_nodes=5)):
        with pytest.raises(ValueError):
            PathStarSpec(**bad)


def test_every_graph_is_a_star_and_the_answer_is_a_path():
    b = batch()
    assert b.tokens.shape == (64, SPEC.seq_len)
    for row, answer in zip(b.tokens, b.answers):
        edges = row[: 2 * SPEC.n_edges].view(-1, 2).tolist()
        query = row[2 * SPEC.n_edges : SPEC.prompt_len].tolist()
        assert query[0] == SPEC.query_id and query[3] == SPEC.answer_id
        centre, leaf = query[1], query[2]
        nodes = {u for e in edges for u in e}
        assert len(nodes) == SPEC.n_graph_nodes  # distinct labels
        out_degree = {u: sum(1 for a, _ in edges if a == u) for u in nodes}
        assert out_degree[centre] == SPEC.degree
        assert out_degree[leaf] == 0
        path = answer.tolist()
        assert path[0] == centre and path[-1] == leaf
        assert all([a, b] in edges for a, b in zip(path, path[1:]))
        assert row[SPEC.prompt_len :].tolist() == path


def test_reverse_writes_the_path_backwards_and_targets_cover_the_answer():
    fwd, rev = batch(False), batch(True)
    assert torch.equal(fwd.answers.flip(1), rev.answers)
    assert torch.equal(fwd.tokens[:, : SPEC.prompt_len], rev.tokens[:, : SPEC.prompt_len])
    t = fwd.targets
    assert (t[:, : SPEC.prompt_len - 1] == -100).all() and (t[:, -1] == -100).all()
    assert torch.equal(t[:, SPEC.prompt_len - 1 : -1], fwd.tokens[:, SPEC.prompt_len :])


def test_target_leaf_is_spread_over_arms():
    b = batch(n=600)
    first_steps = b.answers[:, 1]
    edges = b.tokens[:, : 2 * SPEC.n_edges].view(600, -1, 2)
    centre = b.answers[:, 0]
    # Which of the centre's arms was asked for: roughly uniform over the 3 arms.
    arm_rank = []
    for e, c, s in zip(edges, centre, first_steps):
        children = sorted(int(v) for u, v in e.tolist() if u == c)
        arm_rank.append(children.index(int(s)))
    counts = torch.bincount(torch.tensor(arm_rank), minlength=3).float() / 600
    assert (counts > 0.25).all()


def test_path_accuracy():
    b = batch(n=4)
    predicted = b.answers.clone()
    assert path_accuracy(predicted, b) == 1.0
    predicted[0, 1] += 1
    predicted[1, -1] += 1
    assert path_accuracy(predicted, b) == 0.5
    with pytest.raises(ValueError, match="shape"):
        path_accuracy(predicted[:, :2], b)


def test_greedy_answers_shape_and_determinism():
    torch.manual_seed(0)
    model = GPT(GPTConfig(d_vocab=SPEC.vocab_size, n_ctx=SPEC.seq_len, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))
    b = batch(n=8)
    a1, a2 = greedy_answers(model, b), greedy_answers(model, b)
    assert a1.shape == (8, SPEC.path_len) and torch.equal(a1, a2)
    assert 0.0 <= path_accuracy(a1, b) <= 1.0


def test_bad_arguments():
    with pytest.raises(TypeError):
        sample_path_star({"degree": 2}, 4, torch.Generator())
    with pytest.raises(ValueError):
        sample_path_star(SPEC, 0, torch.Generator())


def test_teacher_forced_loss_and_accuracy():
    from lib.tasks.path_star import teacher_forced_accuracy, teacher_forced_loss

    torch.manual_seed(0)
    model = GPT(GPTConfig(d_vocab=SPEC.vocab_size, n_ctx=SPEC.seq_len, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))
    b = batch(n=8)
    loss = teacher_forced_loss(model, b)
    logits = model(b.tokens)
    answer_logits = logits[:, SPEC.prompt_len - 1 : -1]
    expected = torch.nn.functional.cross_entropy(answer_logits.flatten(0, 1), b.answers.flatten())
    assert torch.allclose(loss, expected)
    acc = teacher_forced_accuracy(model, b)
    assert acc.shape == (SPEC.path_len,)
    assert torch.allclose(acc, (answer_logits.argmax(-1) == b.answers).float().mean(0))

    class Oracle(torch.nn.Module):  # puts all its mass on the true next token
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, tokens):
            return torch.nn.functional.one_hot(torch.roll(tokens, -1, dims=1), SPEC.vocab_size).float() * 10

    assert teacher_forced_accuracy(Oracle(), b).tolist() == [1.0] * SPEC.path_len
    with pytest.raises(TypeError):
        teacher_forced_loss(model, b.tokens)
    with pytest.raises(TypeError):
        teacher_forced_accuracy(model, b.tokens)


def test_batch_to_device():
    b = batch(n=4)
    moved = b.to("cpu")
    assert torch.equal(moved.tokens, b.tokens) and torch.equal(moved.targets, b.targets)
    assert moved.spec == b.spec and moved.reverse == b.reverse and moved is not b
