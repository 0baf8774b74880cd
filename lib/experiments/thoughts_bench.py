"""What one thought-insertion round costs, measured against one plain forward of the same batch.

    python -m lib.experiments.thoughts_bench                  # course model (4 x 128), batch 16 x 127, CPU
    python -m lib.experiments.thoughts_bench --json
    python -m lib.experiments.thoughts_bench --pythia --device cuda            # 6 x 512, vocab 50304, bf16, 32 x 511
    python -m lib.experiments.thoughts_bench --pythia --batch 2 --seq 64       # the same shape, small enough for a CPU

A round (:func:`lib.methods.thoughts.insertion_round` then :func:`lib.methods.thoughts.keep_best`) chooses one
position per row from the previous forward's statistics, inserts, runs one forward of the longer
batch, computes the statistics the next round needs (thought ranks, thought-masked text
log-probabilities) and keeps the best half. Ideally it costs barely more than the forward.

The naive implementation does what a first sketch does: one row at a time, a full sort of the
vocabulary to find the thought's rank, ``torch.cat`` to insert, one batch-of-one forward per row.

Figures (``insertion_round_benchmark`` returns them; ``lib.experiments.bench --json`` merges them):
- ``insertion_round_vs_forward``: seconds per round / seconds per plain forward (goal <= 1.5);
- ``naive_round_vs_forward`` and ``naive_vs_batched_round``: the naive round against both;
- ``forward_ms``, ``round_ms``, ``naive_round_ms`` and ``scored_tokens_per_s`` (tokens in the
  scored batch per second of rounds).
Forward and rounds are timed in alternating repeats, so a change in machine load hits both; each
figure uses the fastest repeat (the one least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from lib.core.model import GPT, GPTConfig
from lib.methods.thoughts import insertion_round, keep_best, start_batch

COURSE_CFG = GPTConfig(d_vocab=2048, n_ctx=128, d_model=128, n_layers=4, n_heads=4, d_head=32, d_mlp=512)
PYTHIA_70M_CFG = GPTConfig(d_vocab=50304, n_ctx=512, d_model=512, n_layers=6, n_heads=8, d_head=64, d_mlp=2048)
THOUGHT_ID = 2047  # the course tokenizer's <|thought|>; any id inside the vocabulary works for timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def naive_insertion_round(model: GPT, tokens: torch.Tensor, lengths: torch.Tensor, logits: torch.Tensor, thought_id: int):
    """The per-sequence reference: for each row, rank the thought by sorting the vocabulary at
    every position, insert with ``torch.cat`` after the best-ranked position, run that row alone
    and score the text tokens after the thought (thought-masked). Returns ``(positions, scores)``
    as Python lists, to compare with the batched round."""
    positions, scores = [], []
    for b in range(tokens.shape[0]):
        n = int(lengths[b])
        row = tokens[b, :n]
        order = torch.sort(logits[b, : n - 1], dim=-1, descending=True).indices  # [n-1, d_vocab]
        ranks = (order == thought_id).nonzero()[:, 1]  # where the thought landed in each sort
        probs = logits[b, : n - 1].float().softmax(-1)[:, thought_id]
        best = min(range(n - 1), key=lambda i: (int(ranks[i]), -float(probs[i])))
        t = best + 1  # the thought goes after token `best`
        new_row = torch.cat([row[:t], row.new_tensor([thought_id]), row[t:]])
        new_logits = model(new_row[None])[0]
        masked_old = logits[b, : n - 1].float().clone()
        masked_old[:, thought_id] = float("-inf")
        masked_new = new_logits[:-1].float().clone()
        masked_new[:, thought_id] = float("-inf")
        dev = row.device
        old_lp = masked_old.log_softmax(-1)[torch.arange(t - 1, n - 1, device=dev), row[t:]]
        new_lp = masked_new.log_softmax(-1)[torch.arange(t, n, device=dev), row[t:]]
        positions.append(t)
        scores.append(float((new_lp - old_lp).sum()))
    return positions, scores


def _time(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


@torch.no_grad()
def insertion_round_benchmark(
    cfg: GPTConfig = COURSE_CFG,
    batch_size: int = 16,
    seq_len: int | None = None,
    repeats: int = 5,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    naive: bool = True,
    seed: int = 0,
) -> dict[str, float]:
    """Time a plain forward, one batched insertion round and (optionally) the naive round on the
    same random batch of ``batch_size`` rows of ``seq_len`` tokens (default ``n_ctx - 1``, so the
    row with its new thought still fits). Returns the figures listed in the module docstring."""
    if not isinstance(cfg, GPTConfig):
        raise TypeError(f"cfg must be a GPTConfig, got {type(cfg).__name__}")
    seq_len = cfg.n_ctx - 1 if seq_len is None else seq_len
    if batch_size <= 0 or repeats <= 0:
        raise ValueError(f"batch_size and repeats must be positive, got {batch_size}, {repeats}")
    if not 2 <= seq_len <= cfg.n_ctx - 1:
        raise ValueError(f"seq_len must lie in [2, n_ctx - 1 = {cfg.n_ctx - 1}], got {seq_len}")
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
    device = torch.device(device)
    thought_id = min(THOUGHT_ID, cfg.d_vocab - 1)
    torch.manual_seed(seed)
    model = GPT(cfg).to(device=device, dtype=dtype).eval()
    gen = torch.Generator().manual_seed(seed)
    # Text ids avoid the thought id, as real text does.
    tokens = torch.randint(0, thought_id, (batch_size, seq_len), generator=gen).to(device)
    lengths = torch.full((batch_size,), seq_len, dtype=torch.long, device=device)
    start = start_batch(model, tokens, lengths, thought_id, pad_id=0)

    def plain() -> None:
        model(tokens)

    def one_round() -> None:
        keep_best(start, insertion_round(model, start, "rank"))

    logits = model(tokens)

    def naive_round() -> None:
        naive_insertion_round(model, tokens, lengths, logits, thought_id)

    fns = {"forward": plain, "round": one_round}
    if naive:
        fns["naive_round"] = naive_round
    for fn in fns.values():  # warm-up: the first calls allocate and pick kernels
        fn()
    seconds: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            seconds[name].append(_time(fn, device))
    # The fastest repeat is the least disturbed by other work on the machine (as timeit does);
    # the ratio of medians is reported too, to show how noisy the machine was.
    per = {k: min(v) for k, v in seconds.items()}
    median = {k: sorted(v)[len(v) // 2] for k, v in seconds.items()}
    out = {
        "insertion_round_vs_forward": per["round"] / per["forward"],
        "insertion_round_vs_forward_median": median["round"] / median["forward"],
        "forward_ms": 1000 * per["forward"],
        "round_ms": 1000 * per["round"],
        "scored_tokens_per_s": batch_size * (seq_len + 1) / per["round"],
        "forward_tokens_per_s": batch_size * seq_len / per["forward"],
        "bench_batch_size": float(batch_size),
        "bench_seq_len": float(seq_len),
    }
    if naive:
        out["naive_round_ms"] = 1000 * per["naive_round"]
        out["naive_round_vs_forward"] = per["naive_round"] / per["forward"]
        out["naive_vs_batched_round"] = per["naive_round"] / per["round"]
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--pythia", action="store_true", help="a random pythia-70m-shaped model in bf16, batch 32 x 511")
    parser.add_argument("--batch", type=int, default=None, help="rows per batch (default 16, or 32 with --pythia)")
    parser.add_argument("--seq", type=int, default=None, help="tokens per row before insertion (default n_ctx - 1)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-naive", action="store_true", help="skip the per-sequence implementation")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but no CUDA device is available")
    torch.set_num_threads(args.threads)
    cfg = PYTHIA_70M_CFG if args.pythia else COURSE_CFG
    batch = args.batch if args.batch is not None else (32 if args.pythia else 16)
    results = insertion_round_benchmark(
        cfg,
        batch_size=batch,
        seq_len=args.seq,
        repeats=args.repeats,
        device=args.device,
        dtype=torch.bfloat16 if args.pythia else torch.float32,
        naive=not args.no_naive,
    )
    results = {"model": "pythia-70m-shaped (random init, bf16)" if args.pythia else "course 4x128 (fp32)", "device": args.device, **results}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        width = max(len(k) for k in results)
        for key, value in results.items():
            print(f"{key:<{width}}  {value:,.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return results


if __name__ == "__main__":
    main()
