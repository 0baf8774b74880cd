"""Regenerate the course's trained assets: the tokenizer and the small Shakespeare checkpoint.

    python -m lib.experiments.prepare            # data/tokenizer.json + data/tiny_shakespeare_gpt.safetensors
    python -m lib.experiments.prepare --quick --out /tmp/assets   # a seconds-long version (used by the tests)

Later notebooks load these files instead of retraining. The full run takes about 9 minutes on a
2-core CPU and is deterministic at a fixed thread count (it sets 2 threads).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lib.core import checks
from lib.core.bpe import BPETokenizer
from lib.core.data import tokenize_corpus
from lib.core.model import GPT, GPTConfig
from lib.core.paths import CHECKPOINT_PATH, DATA_DIR, SHAKESPEARE_PATH, TOKENIZER_PATH, shakespeare_text
from lib.core.training import (
    History,
    TrainConfig,
    evaluate_lm_loss,
    lm_batch_fn,
    nats_per_char,
    save_checkpoint,
    train,
)

# The shape every notebook uses for "the tiny model": ~1.3 M parameters, 5 MB as float32.
TINY_MODEL = GPTConfig(d_vocab=2048, n_ctx=128, d_model=128, n_layers=4, n_heads=4, d_head=32, d_mlp=512)
TINY_TRAINING = TrainConfig(max_steps=1500, lr=3e-3, warmup_steps=100, eval_interval=150, progress_desc="checkpoint")
BATCH_SIZE = 32


@dataclass
class PreparedAssets:
    tokenizer_path: Path
    checkpoint_path: Path
    history: History
    val_loss_per_token: float
    val_loss_per_char: float


def prepare(
    out_dir: Path = DATA_DIR,
    text: str | None = None,
    vocab_size: int = 2048,
    model_cfg: GPTConfig = TINY_MODEL,
    train_cfg: TrainConfig = TINY_TRAINING,
    batch_size: int = BATCH_SIZE,
    seed: int = 0,
) -> PreparedAssets:
    """Train the tokenizer, then the model on its tokens; write both into ``out_dir``.

    Nothing is written until both are trained: the two files are written beside their targets
    and renamed at the end, so a failure leaves the old pair (or nothing) in place, never a new
    tokenizer beside an old checkpoint."""
    out_dir = checks.check_path(out_dir, "out_dir")
    if text is not None:
        checks.check_str(text, "text")
    checks.check_int(vocab_size, "vocab_size", min=256)
    checks.check_type(model_cfg, "model_cfg", GPTConfig)
    checks.check_type(train_cfg, "train_cfg", TrainConfig)
    checks.check_int(batch_size, "batch_size", min=1)
    checks.check_int(seed, "seed", min=0)
    if model_cfg.d_vocab != vocab_size:
        raise ValueError(f"model_cfg.d_vocab = {model_cfg.d_vocab} differs from the tokenizer's vocab_size = {vocab_size}")
    text = shakespeare_text() if text is None else text
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {out_dir} exists and is not a folder")
    torch.manual_seed(seed)

    tokenizer = BPETokenizer.train(text, vocab_size)
    tokenizer_path = out_dir / TOKENIZER_PATH.name

    corpus = tokenize_corpus(tokenizer, text)
    model = GPT(model_cfg)
    n_ctx = model_cfg.n_ctx
    history = train(
        model,
        lm_batch_fn(corpus.train, batch_size, n_ctx, seed=seed),
        train_cfg,
        val_fn=lambda m: evaluate_lm_loss(m, corpus.val, n_ctx, max_windows=64),
    )
    val_tok = evaluate_lm_loss(model, corpus.val, n_ctx)
    val_char = nats_per_char(val_tok, len(corpus.val), corpus.val_chars)
    metadata = {
        "val_loss_per_token": val_tok,
        "val_loss_per_char": val_char,
        "train_steps": train_cfg.max_steps,
        "batch_size": batch_size,
        "train_seconds": history.seconds,
        "seed": seed,
        "corpus": SHAKESPEARE_PATH.name,
        "history": history.to_dict(),
        "train_config": asdict(train_cfg),
    }
    checkpoint_path = out_dir / CHECKPOINT_PATH.name
    out_dir.mkdir(parents=True, exist_ok=True)
    with checks.atomic_path(tokenizer_path) as tmp_tokenizer, checks.atomic_path(checkpoint_path) as tmp_checkpoint:
        tokenizer.save(tmp_tokenizer)
        save_checkpoint(model, tmp_checkpoint, metadata=metadata)
    return PreparedAssets(tokenizer_path, checkpoint_path, history, val_tok, val_char)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="where to write the two files")
    parser.add_argument("--quick", action="store_true", help="tiny tokenizer and model, a few seconds")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    start = time.perf_counter()
    if args.quick:
        text = shakespeare_text()[:60_000]
        cfg = GPTConfig(d_vocab=300, n_ctx=32, d_model=32, n_layers=1, n_heads=2, d_head=16, d_mlp=64)
        tcfg = TrainConfig(max_steps=60, lr=1e-2, warmup_steps=5, eval_interval=20, progress=False)
        result = prepare(args.out, text, vocab_size=300, model_cfg=cfg, train_cfg=tcfg, batch_size=16)
    else:
        result = prepare(args.out)
    summary = {
        "tokenizer": str(result.tokenizer_path),
        "checkpoint": str(result.checkpoint_path),
        "first_val_loss": result.history.val_loss[0],
        "final_val_loss_per_token": result.val_loss_per_token,
        "final_val_loss_per_char": result.val_loss_per_char,
        "seconds": time.perf_counter() - start,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
