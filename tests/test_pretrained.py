"""lib.experiments.pretrained, offline: tiny random Hugging Face models built from a config, saved to a
temporary folder and loaded back through our loaders. Nothing here touches the network."""

from __future__ import annotations


import pytest
import torch
from safetensors.torch import save_file

from lib.experiments import pretrained as pt
from lib.core.model import GPT, GPTConfig

transformers = pytest.importorskip("transformers")
VOCAB = 61
N_CTX = 16


def _tiny_tokenizer():
    """A word-level tokenizer over 26 letters plus an end-of-text token: enough for the bridge."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {chr(97 + i): i for i in range(26)} | {"<|endoftext|>": 26}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    eot = "<|endoftext|>"
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eot, eos_token=eot, unk_token=eot)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=N_CTX, vocab_size=VOCAB,
                                  bos_token_id=26, eos_token_id=26)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    folder = tmp_path_factory.mktemp("gpt2_tiny")
    model.save_pretrained(folder)
    _tiny_tokenizer().save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def neox_dir(tmp_path_factory):
    torch.manual_seed(1)
    cfg = transformers.GPTNeoXConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                                     max_position_embeddings=N_CTX, vocab_size=VOCAB, rotary_pct=0.25,
                                     use_parallel_residual=True, bos_token_id=26, eos_token_id=26)
    model = transformers.GPTNeoXForCausalLM(cfg).eval()
    folder = tmp_path_factory.mktemp("neox_tiny")
    model.save_pretrained(folder)
    _tiny_tokenizer().save_pretrained(folder)
    return folder, model


def _ids(batch: int = 2) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, N_CTX), generator=torch.Generator().manual_seed(3))


def _copy_checkpoint(src, dst, weights: bool = True):
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "config.json").write_text((src / "config.json").read_text())
    if weights:
        (dst / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    return dst


# ------------------------------------------------------------------ GPT-2 in our GPT
@torch.no_grad()
def test_load_gpt2_matches_transformers_logits(gpt2_dir):
    folder, hf = gpt2_dir
    ours = pt.load_gpt2(folder)
    assert isinstance(ours, GPT) and not ours.training
    ids = _ids()
    assert (ours(ids) - hf(ids).logits).abs().max().item() < 1e-4


@torch.no_grad()
def test_load_gpt2_hook_points_work_and_the_explicit_attention_path_agrees(gpt2_dir):
    folder, hf = gpt2_dir
    ours = pt.load_gpt2(str(folder))
    ids = _ids(1)
    # Caching the pattern forces the explicit (non-fused) attention path: it must agree too.
    logits, cache = ours.run_with_cache(ids)
    assert cache["blocks.1.attn.hook_pattern"].shape == (1, 4, N_CTX, N_CTX)
    assert cache["ln_final.hook_normalized"].shape == (1, N_CTX, 32)
    assert (logits - hf(ids).logits).abs().max().item() < 1e-4


def test_gpt2_config_maps_the_fields(gpt2_dir):
    cfg = pt.gpt2_config(pt.read_config(gpt2_dir[0]))
    assert cfg == GPTConfig(d_vocab=VOCAB, n_ctx=N_CTX, d_model=32, n_layers=2, n_heads=4, d_head=8, d_mlp=128,
                            act_fn="gelu_new", ln_eps=1e-5, init_std=0.02)


def test_gpt2_config_rejects_bad_input():
    with pytest.raises(TypeError, match="hf_config"):
        pt.gpt2_config("gpt2")
    with pytest.raises(ValueError, match="model_type"):
        pt.gpt2_config({"model_type": "gpt_neox"})
    base = {"model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_layer": 1, "n_positions": 8, "vocab_size": 10}
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        pt.gpt2_config(base | {"scale_attn_by_inverse_layer_idx": True})
    with pytest.raises(ValueError, match="activation_function"):
        pt.gpt2_config(base | {"activation_function": "swish"})
    with pytest.raises(ValueError, match="n_layer"):
        pt.gpt2_config({k: v for k, v in base.items() if k != "n_layer"})


def test_weights_without_the_transformer_prefix_and_as_pytorch_bin(gpt2_dir, tmp_path):
    """The hub's own gpt2 files name tensors ``h.0...`` (no ``transformer.`` prefix); older ones
    ship ``pytorch_model.bin`` only. Both load to the same logits."""
    folder, hf = gpt2_dir
    plain = {k.removeprefix("transformer."): v.contiguous() for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    a = _copy_checkpoint(folder, tmp_path / "plain", weights=False)
    save_file(plain, str(a / "model.safetensors"))
    b = _copy_checkpoint(folder, tmp_path / "bin", weights=False)
    torch.save(plain, b / "pytorch_model.bin")
    ids = _ids(1)
    with torch.no_grad():
        want = hf(ids).logits
        for d in (a, b):
            assert (pt.load_gpt2(d)(ids) - want).abs().max().item() < 1e-4


def test_convert_gpt2_state_dict_rejects_bad_input(gpt2_dir):
    folder, _ = gpt2_dir
    cfg = pt.gpt2_config(pt.read_config(folder))
    weights = pt.read_weights(folder)
    with pytest.raises(TypeError, match="hf_weights"):
        pt.convert_gpt2_state_dict({"wte.weight": [1.0]}, cfg)
    with pytest.raises(TypeError, match="cfg"):
        pt.convert_gpt2_state_dict(weights, {"d_model": 32})
    missing = {k: v for k, v in weights.items() if "h.1.mlp.c_fc.weight" not in k}
    with pytest.raises(ValueError, match="h.1.mlp.c_fc.weight"):
        pt.convert_gpt2_state_dict(missing, cfg)
    wrong = dict(weights) | {"transformer.wpe.weight": torch.zeros(N_CTX + 1, 32)}
    with pytest.raises(ValueError, match="wpe.weight has shape"):
        pt.convert_gpt2_state_dict(wrong, cfg)


# ------------------------------------------------------------------ missing / corrupt folders
def test_missing_folder_names_the_path(tmp_path):
    where = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=str(where)):
        pt.load_gpt2(where)
    with pytest.raises(FileNotFoundError, match=str(where)):
        pt.load_bridge(where)


def test_folder_without_config_or_weights(tmp_path, gpt2_dir):
    with pytest.raises(FileNotFoundError, match="config.json"):
        pt.resolve_model_dir(tmp_path)
    only_config = _copy_checkpoint(gpt2_dir[0], tmp_path / "cfg_only", weights=False)
    with pytest.raises(FileNotFoundError, match="holds no weights"):
        pt.load_gpt2(only_config)


def test_corrupt_config_and_weights_name_the_file(tmp_path, gpt2_dir):
    bad_cfg = _copy_checkpoint(gpt2_dir[0], tmp_path / "bad_cfg")
    (bad_cfg / "config.json").write_text('{"model_type": "gpt2", ')
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        pt.load_gpt2(bad_cfg)
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        pt.load_bridge(bad_cfg)
    (bad_cfg / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        pt.read_config(bad_cfg)
    bad_w = _copy_checkpoint(gpt2_dir[0], tmp_path / "bad_w")
    data = (bad_w / "model.safetensors").read_bytes()
    (bad_w / "model.safetensors").write_bytes(data[: len(data) // 3])  # a download cut short
    with pytest.raises(ValueError, match="model.safetensors"):
        pt.load_gpt2(bad_w)


def test_load_gpt2_refuses_a_gpt_neox_folder(neox_dir):
    with pytest.raises(ValueError, match="load_bridge"):
        pt.load_gpt2(neox_dir[0])


def test_bad_argument_types(tmp_path):
    for fn in (pt.resolve_model_dir, pt.load_gpt2, pt.load_bridge, pt.find_local, pt.download_pretrained,
               pt.enable_hint, pt.read_config, pt.read_weights):
        with pytest.raises(TypeError):
            fn(42)
        with pytest.raises(TypeError):
            fn("  ")
    with pytest.raises(TypeError, match="local_only"):
        pt.resolve_model_dir(tmp_path, local_only="yes")
    with pytest.raises(TypeError, match="device"):
        pt.load_gpt2(tmp_path, device=0)
    with pytest.raises(TypeError, match="device"):
        pt.load_bridge(tmp_path, device=0)
    with pytest.raises(TypeError, match="tokenizer"):
        pt.load_bridge(tmp_path, tokenizer="gpt2")
    with pytest.raises(FileNotFoundError, match="holds no weights"):
        pt.read_weights(tmp_path)


# ------------------------------------------------------------------ the bridge
@torch.no_grad()
@pytest.mark.parametrize("which", ["gpt2", "neox"])
def test_load_bridge_matches_transformers_logits(which, gpt2_dir, neox_dir):
    folder, hf = gpt2_dir if which == "gpt2" else neox_dir
    bridge = pt.load_bridge(folder)
    ids = _ids()
    assert (bridge(ids) - hf(ids).logits).abs().max().item() < 1e-4
    _, cache = bridge.run_with_cache(ids[:1])
    assert cache["blocks.0.attn.hook_pattern"].shape == (1, 4, N_CTX, N_CTX)


def test_load_bridge_without_a_tokenizer_says_so(tmp_path, gpt2_dir):
    folder = _copy_checkpoint(gpt2_dir[0], tmp_path / "no_tok")
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        pt.load_bridge(folder)


# ------------------------------------------------------------------ cache look-ups (offline)
MISSING_ID = "beyond-next-token-tests/no-such-model"


def test_find_local_and_resolve_for_an_uncached_id(gpt2_dir):
    assert pt.find_local(MISSING_ID) is None
    with pytest.raises(pt.PretrainedUnavailable, match="python -m lib.experiments.pretrained download"):
        pt.resolve_model_dir(MISSING_ID)
    assert pt.find_local(str(gpt2_dir[0])) == gpt2_dir[0]


def test_enable_hint_names_the_command():
    assert pt.enable_hint("gpt2") == "to enable it, run once while online: python -m lib.experiments.pretrained download gpt2"


def test_download_refuses_paths_and_offline_mode(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="model id"):
        pt.download_pretrained(str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE=0 python -m lib.experiments.pretrained download gpt2"):
        pt.download_pretrained("gpt2")


def test_cli_check(capsys, gpt2_dir, monkeypatch):
    assert pt.main(["check", MISSING_ID]) == 1
    assert "not on this machine" in capsys.readouterr().out
    assert pt.main(["check", str(gpt2_dir[0])]) == 0
    assert str(gpt2_dir[0]) in capsys.readouterr().out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError):
        pt.main(["download", "gpt2"])
    with pytest.raises(SystemExit):
        pt.main(["fetch"])


# ------------------------------------------------------------------ the notebooks' helpers
def test_gpt2_tokenizer_gives_gpt2_ids():
    tok = pt.gpt2_tokenizer()
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.eot_id == 50256 and tok.vocab_size == 50257


@torch.no_grad()
def test_next_token_table_rows_and_order():
    from lib.core.data import load_tokenizer

    tok = load_tokenizer()
    torch.manual_seed(0)
    model = GPT(GPTConfig(d_vocab=tok.vocab_size, n_ctx=32, d_model=32, n_layers=1, n_heads=2, d_head=16, d_mlp=64)).eval()
    text = "To be, or not"
    table = pt.next_token_table(model, tok, text, k=3, bos_id=tok.eot_id)
    ids = tok.encode(text)
    assert [t for t, _ in table] == [tok.decode([i]) for i in ids]
    logits = model(torch.tensor([[tok.eot_id] + ids]))[0, 1:]
    for row, (_, guesses) in enumerate(table):
        probs = [p for _, p in guesses]
        assert probs == sorted(probs, reverse=True) and 0 < probs[-1] <= probs[0] <= 1
        assert guesses[0][0] == tok.decode([int(logits[row].argmax())])
    text_out = pt.format_next_token_table(table)
    assert len(text_out.splitlines()) == len(ids) and "->" in text_out
    no_bos = pt.next_token_table(model, tok, text, k=1)
    assert len(no_bos) == len(ids)


def test_next_token_table_rejects_bad_input():
    from lib.core.data import load_tokenizer

    tok = load_tokenizer()
    model = GPT(GPTConfig(d_vocab=tok.vocab_size, n_ctx=32, d_model=32, n_layers=1, n_heads=2, d_head=16, d_mlp=64))
    with pytest.raises(TypeError, match="model"):
        pt.next_token_table("gpt2", tok, "a")
    with pytest.raises(TypeError, match="tokenizer"):
        pt.next_token_table(model, object(), "a")
    with pytest.raises(ValueError, match="text"):
        pt.next_token_table(model, tok, "")
    for k in (0, True, tok.vocab_size + 1, 2.0):
        with pytest.raises(ValueError, match="k must"):
            pt.next_token_table(model, tok, "a", k=k)
    with pytest.raises(ValueError, match="bos_id"):
        pt.next_token_table(model, tok, "a", bos_id=tok.vocab_size)
    with pytest.raises(TypeError, match="table"):
        pt.format_next_token_table([])
    with pytest.raises(TypeError, match="table"):
        pt.format_next_token_table(["a"])


# ------------------------------------------------------------------ design note 004's sentence, offline
NOTE_004_SENTENCE = "I am an autoregressive, decoder-only, GPT-2 style transformer."
NOTE_004_IDS = [40, 716, 281, 1960, 382, 19741, 11, 875, 12342, 12, 8807, 11, 402, 11571, 12, 17, 3918, 47385, 13]


def test_gpt2_tokenizer_gives_design_note_004s_ids():
    """The ids design note 004 printed for its sentence (after <|endoftext|>, 50256), which the
    notebooks' optional GPT-2 sections feed to GPT-2."""
    tok = pt.gpt2_tokenizer()
    assert tok.encode(NOTE_004_SENTENCE) == NOTE_004_IDS
    assert [tok.decode([i]) for i in NOTE_004_IDS[3:6]] == [" aut", "ore", "gressive"]


def test_a_model_id_in_the_hugging_face_cache_is_found_and_loaded(gpt2_dir, tmp_path):
    """What the notebooks do: find_local("gpt2") then load_gpt2 on it, here against a fake cache
    (a tiny random model stored under the id "gpt2"), in a fresh process because huggingface_hub
    reads HF_HUB_CACHE when imported."""
    import os
    import subprocess
    import sys

    folder, hf = gpt2_dir
    snapshot = tmp_path / "hub" / "models--gpt2" / "snapshots" / ("0" * 40)
    _copy_checkpoint(folder, snapshot)
    (tmp_path / "hub" / "models--gpt2" / "refs").mkdir()
    (tmp_path / "hub" / "models--gpt2" / "refs" / "main").write_text("0" * 40)
    ids = _ids(1)
    with torch.no_grad():
        want = hf(ids).logits
    torch.save(ids, tmp_path / "ids.pt")
    script = (
        "import sys, torch; from lib.experiments import pretrained as pt\n"
        "folder = pt.find_local('gpt2'); print(folder)\n"
        "print(pt.find_local('gpt2-medium'))\n"
        "logits = pt.load_gpt2('gpt2')(torch.load(sys.argv[1]))\n"
        "torch.save(logits.detach(), sys.argv[2])\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "ids.pt"), str(tmp_path / "logits.pt")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    found, medium = out.stdout.splitlines()[-2:]
    assert found == str(snapshot) and medium == "None"
    assert (torch.load(tmp_path / "logits.pt") - want).abs().max().item() < 1e-4
