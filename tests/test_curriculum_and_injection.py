"""Coconut's curriculum (written steps replaced by latent ones, stage by stage), its pause-token
control, and the looped block that re-reads its input (lib.methods.curriculum, lib.methods.looped)."""

from __future__ import annotations

import pytest
import torch

from lib.core.model import GPT
from lib.methods.chain_of_thought import written_chain
from lib.methods.curriculum import curriculum_stage, latent_depth, staged_chain
from lib.methods.looped import InjectedLoopedGPT, LoopedGPT, with_loops
from lib.tasks.pointer_task import PointerSpec, pointer_model_config, sample_pointer_batch


@pytest.fixture
def batch():
    return sample_pointer_batch(PointerSpec(n_nodes=6, max_hops=4), 48, torch.Generator().manual_seed(0), "dense")


def test_the_stages_split_the_steps_equally_and_in_order():
    stages = [curriculum_stage(s, 9, 3) for s in range(9)]
    assert stages == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [curriculum_stage(s, 10, 3) for s in range(10)] == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="step"):
        curriculum_stage(9, 9, 3)
    with pytest.raises(ValueError, match="n_stages"):
        curriculum_stage(0, 9, 0)


def test_stage_zero_is_chain_of_thought_and_the_last_stage_is_the_dense_layout(batch):
    tokens, targets = staged_chain(batch, 0)
    written_tokens, written_targets = written_chain(batch)
    assert torch.equal(tokens, written_tokens) and torch.equal(targets, written_targets)
    tokens, targets = staged_chain(batch, batch.spec.max_hops)  # every slot latent
    assert torch.equal(tokens, batch.tokens) and torch.equal(targets, batch.targets)


def test_stage_k_makes_the_first_k_slots_latent_without_targets_and_writes_the_rest(batch):
    spec = batch.spec
    before = (batch.tokens.clone(), batch.targets.clone())
    for latent, fill in (("dense", spec.dense_id), ("pause", spec.pause_id)):
        tokens, targets = staged_chain(batch, 1, latent)
        assert torch.equal(batch.tokens, before[0]) and torch.equal(batch.targets, before[1])  # not changed in place
        for i in range(len(tokens)):
            h, s = int(batch.hops[i]), int(batch.start_pos[i])
            slots = tokens[i, s + 1 : s + h].tolist()
            assert slots == ([fill] + batch.chain[i, 1 : h - 1].tolist() if h >= 2 else [])
            # the first slot has no target (position s would predict it); later slots and the answer do
            expected = [-100] + batch.chain[i, 1:h].tolist() if h >= 2 else batch.chain[i, :1].tolist()
            assert targets[i, s : s + h].tolist() == expected
        assert latent_depth(tokens, spec.dense_id) == (1 if latent == "dense" else 0)


def test_staged_chain_refuses_what_it_cannot_use(batch):
    with pytest.raises(ValueError, match="filler 'dense'"):
        staged_chain(sample_pointer_batch(batch.spec, 4, torch.Generator().manual_seed(0), "none"), 1)
    with pytest.raises(ValueError, match="latent"):
        staged_chain(batch, 1, "thought")
    with pytest.raises(TypeError, match="latent_slots"):
        staged_chain(batch, 1.0)


def test_input_injection_re_adds_the_inputs_before_every_loop_after_the_first():
    spec = PointerSpec(n_nodes=6, max_hops=3)
    cfg = pointer_model_config(spec)
    torch.manual_seed(0)
    injected = InjectedLoopedGPT(cfg, 3)
    plain = LoopedGPT(cfg, 3)
    plain.load_state_dict(injected.state_dict())
    tokens = torch.randint(0, spec.vocab_size, (4, 8), generator=torch.Generator().manual_seed(1))
    inputs = injected.embed(tokens) + injected.pos_embed(4, 8)
    resid = inputs
    for loop in range(3):
        resid = injected.blocks[0](resid + (inputs if loop else 0))
    assert torch.allclose(injected(tokens), injected.unembed(injected.ln_final(resid)), atol=1e-5)
    assert not torch.allclose(injected(tokens), plain(tokens), atol=1e-4)  # one loop alone would be the same
    with with_loops(injected, 1):
        one = injected(tokens)
    assert injected.n_loops == 3
    single = GPT(cfg)
    single.load_state_dict(injected.state_dict())
    assert torch.allclose(one, single(tokens), atol=1e-5)  # one loop: the plain GPT


def test_with_loops_puts_the_count_back_when_the_block_raises():
    model = InjectedLoopedGPT(pointer_model_config(PointerSpec(n_nodes=6, max_hops=3)), 3)
    with pytest.raises(RuntimeError):
        with with_loops(model, 6):
            assert model.n_loops == 6
            raise RuntimeError("inside")
    assert model.n_loops == 3
    with pytest.raises(TypeError, match="model"):
        with_loops(GPT(model.cfg), 2)
    with pytest.raises(ValueError, match="n_loops"):
        with_loops(model, 0)


def test_the_curriculum_and_injected_arms_run_and_report_what_they_cost(monkeypatch):
    """Three steps of each arm: the stages the batches are built for, the filler each is scored
    with, and the passes per step it reports."""
    from dataclasses import replace

    import lib.methods.curriculum as curriculum
    from lib.experiments.harness import pointer_unseen
    from lib.experiments.harness.spec import MEDIUM

    size = replace(MEDIUM, pointer_unseen_steps=3, eval_questions=4)
    stages, fillers = [], []
    real_stage, real_accuracy = curriculum.curriculum_stage, pointer_unseen._accuracy
    monkeypatch.setattr(curriculum, "curriculum_stage", lambda *a: stages.append(real_stage(*a)) or stages[-1])
    monkeypatch.setattr(pointer_unseen, "_accuracy", lambda m, t, filler, *a, **k: fillers.append(filler) or real_accuracy(m, t, filler, *a, **k))
    coconut = pointer_unseen.run_curriculum("coconut", 0, size, "cpu", 1e-3)
    assert stages == [0, 1, 2] and fillers == ["dense"] and coconut.forward_passes_per_step == 2.0
    pause = pointer_unseen.run_curriculum("pause_curriculum", 0, size, "cpu", 1e-3)
    assert stages[3:] == [0, 1, 2] and fillers[1:] == ["pause"] and pause.forward_passes_per_step == 1.0
    looped = pointer_unseen.run_looped_injected("looped_injected", 0, size, "cpu", 1e-3)
    assert fillers[2:] == ["none"] and looped.forward_passes_per_step == 3.0
    assert looped.extra["test_loops"] == {"in_distribution": 3, "ood": [4, 5, 6]}
    for r in (coconut, pause, looped):
        assert set(r.extra["by_hops"]) == {1, 2, 3} and set(r.extra["ood_by_hops"]) == {4, 5, 6}


def test_a_looped_model_refuses_zero_loops_and_an_injected_one_its_flat_block_list():
    model = InjectedLoopedGPT(pointer_model_config(PointerSpec(n_nodes=6, max_hops=3)), 3)
    with pytest.raises(ValueError, match="n_loops"):
        model.n_loops = 0
    assert model.n_loops == 3
    with pytest.raises(ValueError, match="adds its input back"):
        model.blocks_to_run()
