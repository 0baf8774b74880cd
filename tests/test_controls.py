"""The literature's controls: chain of thought and token feedback on pointer chasing, multi-token
prediction and teacherless training on path-star (lib.methods.chain_of_thought, token_feedback,
multi_token)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lib.core.model import GPT
from lib.methods.chain_of_thought import chain_passes, greedy_chain_logits, written_chain
from lib.methods.dense import add_dense_vectors, unrolled_forward
from lib.methods.multi_token import (
    MultiTokenGPT, heads_loss, multi_token_loss, teacherless_answers, teacherless_tokens,
)
from lib.methods.token_feedback import fed_back_tokens, token_feedback_logits
from lib.tasks.pointer_task import PointerSpec, answer_accuracy, pointer_model_config, sample_pointer_batch


@pytest.fixture
def batch():
    return sample_pointer_batch(PointerSpec(n_nodes=6, max_hops=4), 32, torch.Generator().manual_seed(0), "dense")


class Oracle(torch.nn.Module):
    """Predicts, at every position from the start node on, the node its token points to (``step``
    lookups ahead): with ``step=1`` it writes a perfect chain."""

    def __init__(self, batch, step: int = 1):
        super().__init__()
        self.batch, self.step, self.w = batch, step, torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens):
        b, spec = self.batch, self.batch.spec
        logits = torch.full((*tokens.shape, spec.vocab_size), -10.0)
        perm = b.tokens[:, : spec.n_nodes]
        for p in range(tokens.shape[1]):
            node = tokens[:, p].clamp(max=spec.n_nodes - 1)
            for _ in range(self.step):
                node = perm.gather(1, node[:, None])[:, 0]
            logits[torch.arange(tokens.shape[0]), p, node] = 10.0
        return logits


def test_the_written_chain_fills_every_slot_with_the_pointer_reached_so_far(batch):
    tokens, targets = written_chain(batch)
    assert not (tokens == batch.spec.dense_id).any() and (batch.tokens == batch.spec.dense_id).any()  # input untouched
    for i in range(len(tokens)):
        h, s = int(batch.hops[i]), int(batch.start_pos[i])
        assert tokens[i, s + 1 : s + h].tolist() == batch.chain[i, : h - 1].tolist()
        assert targets[i, s : s + h].tolist() == batch.chain[i, :h].tolist()  # every step and the answer supervised
        assert (targets[i, :s] == -100).all() and (targets[i, s + h :] == -100).all()
    assert chain_passes(batch).tolist() == batch.hops.tolist()


def test_greedy_chain_reaches_the_answer_with_a_perfect_writer_and_not_with_a_wrong_one(batch):
    assert answer_accuracy(greedy_chain_logits(Oracle(batch), batch), batch) == 1.0
    # a writer that jumps two nodes per step overshoots every question of 2 or more hops
    wrong = answer_accuracy(greedy_chain_logits(Oracle(batch, step=2), batch), batch)
    assert wrong < 0.7


def test_the_chain_controls_refuse_a_batch_without_slots():
    b = sample_pointer_batch(PointerSpec(n_nodes=6, max_hops=3), 4, torch.Generator().manual_seed(0), "none")
    with pytest.raises(ValueError, match="filler 'dense'"):
        written_chain(b)


def test_token_feedback_feeds_the_predicted_tokens_embedding_and_passes_gradient(batch):
    torch.manual_seed(0)
    model = GPT(pointer_model_config(batch.spec))
    spec = batch.spec
    # depth 0: the dense tokens get only their own embedding, as in the dense arm
    assert torch.allclose(token_feedback_logits(model, batch.tokens, spec.dense_id, 0), model(batch.tokens), atol=1e-6)
    # depth 1 by hand: the embedding of the argmax one position earlier, added at the dense positions
    first = model(batch.tokens)
    fed = torch.zeros(*batch.tokens.shape, model.cfg.d_model)
    fed[:, 1:] = model.embed.W_E[first.argmax(-1)][:, :-1]
    mask = batch.tokens == spec.dense_id
    manual = model(input_embeds=add_dense_vectors(model.embed(batch.tokens), fed, mask))
    got = token_feedback_logits(model, batch.tokens, spec.dense_id, 1)
    assert torch.allclose(got, manual, atol=1e-5)
    # and it is not the dense arm: a token is not the hidden state
    dense = unrolled_forward(model, batch.tokens, spec.dense_id, 1).logits
    assert not torch.allclose(got, dense, atol=1e-3)
    # straight-through: the loss reaches the unembedding through the fed-back token
    model.zero_grad()
    GPT.loss(token_feedback_logits(model, batch.tokens, spec.dense_id, 2), targets=batch.targets).backward()
    with_st = model.unembed.W_U.grad.clone()
    model.zero_grad()
    logits = token_feedback_logits(model, batch.tokens, spec.dense_id, 2, straight_through=False)
    GPT.loss(logits, targets=batch.targets).backward()
    assert not torch.allclose(with_st, model.unembed.W_U.grad)


def test_fed_back_tokens_is_a_one_hot_lookup_forward():
    logits = torch.tensor([[[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]]])
    W_E = torch.arange(6.0).view(3, 2)
    assert torch.allclose(fed_back_tokens(logits, W_E), W_E[[1, 0]][None])
    with pytest.raises(ValueError, match="logits must be"):
        fed_back_tokens(logits[..., :2], W_E)
    with pytest.raises(TypeError, match="straight_through"):
        fed_back_tokens(logits, W_E, straight_through=1)


def _small_gpt(vocab=12, n_ctx=10):
    from lib.core.model import GPTConfig

    torch.manual_seed(0)
    return GPT(GPTConfig(d_vocab=vocab, n_ctx=n_ctx, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))


def test_multi_token_heads_score_the_tokens_ahead():
    gpt = _small_gpt()
    model = MultiTokenGPT(gpt, k=3)
    tokens = torch.randint(0, 12, (4, 10), generator=torch.Generator().manual_seed(1))
    targets = torch.full_like(tokens, -100)
    targets[:, 5:9] = tokens[:, 6:10]  # an answer of 4 tokens, as a path-star batch scores them
    # heads start as the next-token head (their up-projection is zero), so each head's loss is the
    # next-token head's cross-entropy against the targets shifted by the head's offset
    logits = gpt(tokens)
    expected = []
    for i in range(3):
        ahead = torch.full_like(targets, -100)
        ahead[:, : 10 - i] = targets[:, i:]
        expected.append(F.cross_entropy(logits.flatten(0, 1), ahead.flatten(), ignore_index=-100))
    assert torch.allclose(multi_token_loss(model, tokens, targets), torch.stack(expected).mean(), atol=1e-5)
    assert torch.allclose(MultiTokenGPT(gpt, k=1).head_logits(tokens)[0], logits)
    assert torch.equal(model(tokens), logits)  # generation uses the next-token head only
    extra = model.n_params() - gpt.n_params()
    assert extra == 2 * 2 * 16 * 8  # two heads of rank 8 in and out (a few percent of the path-star GPT: a test of the harness checks)
    with pytest.raises(ValueError, match="nothing to score"):
        multi_token_loss(model, tokens, torch.full_like(tokens, -100))


def test_heads_loss_averages_each_heads_loss_over_its_scored_targets_ahead():
    gen = torch.Generator().manual_seed(0)
    logits = [torch.randn(2, 5, 4, generator=gen) for _ in range(4)]
    targets = torch.full((2, 5), -100)
    targets[0, 0], targets[0, 1], targets[1, 1] = 1, 2, 3  # head i sees targets[:, i:]: heads 2 and 3 see nothing
    head0 = F.cross_entropy(logits[0][[0, 0, 1], [0, 1, 1]], torch.tensor([1, 2, 3]))
    head1 = F.cross_entropy(logits[1][[0, 1], [0, 0]], torch.tensor([2, 3]))
    assert torch.allclose(heads_loss(logits, targets), (head0 + head1) / 2, atol=1e-6)  # empty heads left out
    assert torch.allclose(heads_loss(logits[:1], targets), head0, atol=1e-6)  # one head: the next-token loss
    assert torch.allclose(heads_loss(tuple(logits), targets.int()), (head0 + head1) / 2, atol=1e-6)
    # more heads than positions: the far heads score nothing and are left out
    short = [torch.randn(2, 2, 4, generator=gen) for _ in range(4)]
    two = torch.tensor([[1, 2], [3, -100]])
    expected = (F.cross_entropy(short[0].flatten(0, 1), two.flatten(), ignore_index=-100)
                + F.cross_entropy(short[1][0, :1], two[0, 1:])) / 2
    assert torch.allclose(heads_loss(short, two), expected, atol=1e-6)
    model = MultiTokenGPT(_small_gpt(), k=2)
    tokens = torch.randint(0, 12, (2, 10), generator=gen)
    assert torch.equal(multi_token_loss(model, tokens, tokens), heads_loss(model.head_logits(tokens), tokens))
    with pytest.raises(ValueError, match="nothing to score"):
        heads_loss(logits, torch.full((2, 5), -100))
    with pytest.raises(TypeError, match="head_logits"):
        heads_loss(logits[0], targets)
    with pytest.raises(ValueError, match="head_logits is empty"):
        heads_loss([], targets)
    with pytest.raises(ValueError, match=r"head_logits\[1\] must have shape \(2, 5\)"):
        heads_loss([logits[0], logits[1][:, :4]], targets)
    with pytest.raises(TypeError, match=r"head_logits\[0\]"):
        heads_loss([targets], targets)
    with pytest.raises(TypeError, match="targets"):
        heads_loss(logits, targets.float())
    with pytest.raises(ValueError, match="targets"):
        heads_loss(logits, targets[0])


def test_teacherless_hides_every_answer_token_and_reads_the_answer_in_one_pass():
    tokens = torch.arange(20).view(2, 10) % 12
    out = teacherless_tokens(tokens, 6, 11)
    assert (out[:, 6:] == 11).all() and torch.equal(out[:, :6], tokens[:, :6]) and tokens[0, 7] == 7  # input untouched
    gpt = _small_gpt()
    answers = teacherless_answers(gpt, tokens, 6, 4, 11)
    assert torch.equal(answers, gpt(out)[:, 5:9].argmax(-1))
    with pytest.raises(ValueError, match="exceeds"):
        teacherless_answers(gpt, tokens, 8, 4, 11)
    with pytest.raises(ValueError, match="longer than"):
        teacherless_tokens(tokens, 11, 11)
