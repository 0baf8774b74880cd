"""Course benchmarks, measured in one run on this machine.

    python -m lib.bench           # a readable table
    python -m lib.bench --json    # the same figures as one JSON object

Figures:
- ``train_tokens_per_s_ours`` / ``train_tokens_per_s_tl``: training throughput (forward, backward,
  AdamW step) of our GPT and of TransformerLens' native model of the same shape, with the same
  batches; ``train_speed_ratio_vs_tl`` is ours / theirs. The two are timed in alternating rounds
  so that a change in machine load hits both.
- ``hooked_pattern_slowdown``: how much slower our model trains when ``hook_pattern`` is hooked
  (the attention pattern must then be materialised instead of using fused attention).
- ``bpe_train_seconds``: training the course tokenizer (2048 tokens) on Tiny Shakespeare.
- ``insertion_round_vs_forward``: one thought-insertion round relative to one plain forward
  (when ``lib.thoughts_bench`` is present).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from lib.model import GPT, GPTConfig, reference_bridge

BENCH_CFG = GPTConfig(d_vocab=2048, n_ctx=128, d_model=128, n_layers=4, n_heads=4, d_head=32, d_mlp=512)


def _train_step_fn(model: torch.nn.Module, tokens: torch.Tensor, hook_pattern: bool = False):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        if hook_pattern:
            logits = model.run_with_hooks(
                tokens, fwd_hooks=[(lambda name: name.endswith("hook_pattern"), lambda x, hook: x)]
            )
        else:
            logits = model(tokens)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def training_throughput(
    cfg: GPTConfig = BENCH_CFG, batch_size: int = 16, steps: int = 6, rounds: int = 3
) -> dict[str, float]:
    """Tokens per second of training steps for ours, ours with the pattern hooked, and TL's."""
    if steps <= 0 or rounds <= 0 or batch_size <= 0:
        raise ValueError("batch_size, steps and rounds must be positive")
    torch.manual_seed(0)
    ours = GPT(cfg)
    theirs = reference_bridge(ours)
    tokens = torch.randint(0, cfg.d_vocab, (batch_size, cfg.n_ctx), generator=torch.Generator().manual_seed(0))
    fns = {
        "ours": _train_step_fn(ours, tokens),
        "tl": _train_step_fn(theirs, tokens),
        "ours_hooked": _train_step_fn(ours, tokens, hook_pattern=True),
    }
    for fn in fns.values():  # warm-up: first calls allocate and pick kernels
        fn()
    seconds = {k: 0.0 for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            seconds[name] += time.perf_counter() - start
    n_tokens = batch_size * cfg.n_ctx * steps * rounds
    out = {f"train_tokens_per_s_{k}": n_tokens / s for k, s in seconds.items()}
    out["train_speed_ratio_vs_tl"] = out["train_tokens_per_s_ours"] / out["train_tokens_per_s_tl"]
    out["hooked_pattern_slowdown"] = out["train_tokens_per_s_ours"] / out["train_tokens_per_s_ours_hooked"]
    return out


def bpe_training_seconds(vocab_size: int = 2048) -> float:
    """Seconds to train the course tokenizer on the whole of Tiny Shakespeare."""
    from lib.bpe import BPETokenizer
    from lib.paths import shakespeare_text

    text = shakespeare_text()
    start = time.perf_counter()
    BPETokenizer.train(text, vocab_size)
    return time.perf_counter() - start


def run_all() -> dict[str, float]:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    results: dict[str, float] = {"torch_threads": torch.get_num_threads()}
    results.update(training_throughput())
    results["bpe_train_seconds"] = bpe_training_seconds()
    try:
        from lib.thoughts_bench import insertion_round_benchmark
    except ImportError:
        pass
    else:
        thoughts = insertion_round_benchmark()
        results.update({k: float(v) for k, v in thoughts.items() if isinstance(v, (int, float))})
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    results = run_all()
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value:,.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
