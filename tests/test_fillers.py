"""Fixed-interval fillers: layout and targets by hand, masked scoring, evaluation over the same tokens."""

import math

import pytest
import torch

from lib.methods.fillers import interleave_fillers, masked_lm_loss, validation_windows
from lib.experiments.text_runs import evaluate_text_nll, filler_logits
from lib.core.model import GPT, GPTConfig

F_ID = 9


def test_interleave_by_hand():
    windows = torch.tensor([[1, 2, 3, 4, 5]])
    tokens, targets = interleave_fillers(windows, every=2, filler_id=F_ID)
    assert tokens.tolist() == [[1, 2, F_ID, 3, 4, F_ID, 5]]
    # 1->2 predicted at 0; position 1 is followed by a filler (no target); the filler predicts 3; ...
    assert targets.tolist() == [[2, -100, 3, 4, -100, 5, -100]]
    # Every real token after the first is predicted exactly once.
    assert sorted(t for t in targets[0].tolist() if t != -100) == [2, 3, 4, 5]
    # A filler never ends the row; every > length means no filler at all.
    tokens, targets = interleave_fillers(windows, every=4, filler_id=F_ID)
    assert tokens.tolist() == [[1, 2, 3, 4, F_ID, 5]]
    tokens, targets = interleave_fillers(windows, every=10, filler_id=F_ID)
    assert tokens.tolist() == [[1, 2, 3, 4, 5]] and targets.tolist() == [[2, 3, 4, 5, -100]]


def test_interleave_bad_inputs():
    with pytest.raises(ValueError):
        interleave_fillers(torch.tensor([1, 2, 3]), 2, F_ID)
    with pytest.raises(TypeError, match="windows"):
        interleave_fillers(torch.tensor([[1.0, 2.0]]), 2, F_ID)
    with pytest.raises(ValueError):
        interleave_fillers(torch.tensor([[1, 2]]), 0, F_ID)
    with pytest.raises(ValueError):
        interleave_fillers(torch.tensor([[1]]), 1, F_ID)


def test_masked_loss_renormalises():
    logits = torch.zeros(1, 2, 4)
    logits[0, 0, 3] = 100.0  # all the mass on a special token
    targets = torch.tensor([[1, -100]])
    assert masked_lm_loss(logits, targets).item() > 50
    assert masked_lm_loss(logits, targets, masked_ids=[3]).item() == pytest.approx(math.log(3))
    assert masked_lm_loss(logits, targets, [3], reduction="sum").item() == pytest.approx(math.log(3))
    with pytest.raises(ValueError):
        masked_lm_loss(logits, targets[:, :1])


def make_model():
    torch.manual_seed(0)
    return GPT(GPTConfig(d_vocab=10, n_ctx=24, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32)).eval()


def test_filler_logits_and_evaluation():
    from lib.methods.dense import sequential_forward

    model = make_model()
    windows = torch.randint(0, 9, (2, 9), generator=torch.Generator().manual_seed(1))
    tokens, targets = interleave_fillers(windows, 3, F_ID)
    assert torch.allclose(filler_logits(model, tokens, "pause", F_ID), model(tokens))
    assert torch.allclose(filler_logits(model, tokens, "dense", F_ID), sequential_forward(model, tokens, F_ID), atol=1e-5)
    assert torch.allclose(filler_logits(model, windows, None, F_ID), model(windows))
    with pytest.raises(ValueError):
        filler_logits(model, tokens, "thought", F_ID)
    data = torch.randint(0, 9, (200,), generator=torch.Generator().manual_seed(2))
    plain = evaluate_text_nll(model, data, 9, None, 3, F_ID, masked_ids=[F_ID], max_windows=8)
    by_hand = masked_lm_loss(model(torch.stack([data[s : s + 9] for s in range(0, 64, 8)])),
                             torch.stack([torch.cat([data[s + 1 : s + 9], torch.tensor([-100])]) for s in range(0, 64, 8)]),
                             [F_ID]).item()
    assert plain == pytest.approx(by_hand, rel=1e-5)
    for kind in ("pause", "dense"):
        value = evaluate_text_nll(model, data, 9, kind, 3, F_ID, masked_ids=[F_ID], max_windows=8)
        assert 0 < value < 10 and value != pytest.approx(plain)
    with pytest.raises(ValueError):
        evaluate_text_nll(model, data[:5], 9, None, 3, F_ID)


def test_validation_windows_overlap_by_one():
    data = torch.arange(20)
    w = validation_windows(data, 5, max_windows=3)
    assert w.tolist() == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [8, 9, 10, 11, 12]]
    assert len(validation_windows(data, 5, max_windows=100)) == 4
    with pytest.raises(ValueError):
        validation_windows(data, 30, 3)
    with pytest.raises(ValueError):
        validation_windows(data, 5, 0)


def test_fillers_import_no_method():
    """Layers read in one direction: where fillers go and how text is scored knows nothing of dense
    unrolling; running a method on text (filler_logits, evaluate_text_nll) lives in lib.experiments.text_runs."""
    import subprocess
    import sys

    later = ["lib.methods.dense", "lib.methods.looped", "lib.methods.thoughts", "lib.methods.encdec", "lib.methods.future_loss", "lib.experiments.text_runs", "lib.experiments.harness"]
    code = (f"import sys, lib.methods.fillers as f; bad = [m for m in {later!r} if m in sys.modules]; "
            "assert not bad, f'lib.methods.fillers imports {bad}'; "
            "assert not hasattr(f, 'filler_logits'), 'a method runner is still in the task module'")
    subprocess.run([sys.executable, "-c", code], check=True)
