"""Course benchmarks, measured in one run on this machine.

    python -m lib.experiments.bench           # a readable table
    python -m lib.experiments.bench --json    # the same figures as one JSON object, alone on stdout
    python -m lib.experiments.bench --course [--json] [--notebooks-dir DIR]   # the whole-course time budget

Figures:
- ``train_tokens_per_s_ours`` / ``train_tokens_per_s_tl``: training throughput (forward, backward,
  AdamW step) of our GPT and of TransformerLens' native model of the same shape, with the same
  batches; ``train_speed_ratio_vs_tl`` is ours / theirs. The two are timed in alternating rounds
  so that a change in machine load hits both.
- ``hooked_pattern_slowdown``: how much slower our model trains when ``hook_pattern`` is hooked
  (the attention pattern must then be materialised instead of using fused attention).
- ``train_flops_per_s_ours``, ``matmul_peak_flops_per_s``, ``train_fraction_of_peak``: our training
  FLOP/s (``lib.core.machine.training_flops``: 6 per parameter and token, embedding tables left out
  since they are looked up, plus attention) against the
  fp32 matmul peak of this CPU measured in the same run at the same thread count; how much of the
  machine the training loop uses.
- ``bpe_train_seconds``: training the course tokenizer (2048 tokens) on Tiny Shakespeare.
- ``insertion_round_vs_forward``: one thought-insertion round relative to one plain forward
  (when ``lib.experiments.thoughts_bench`` is present).
- ``ensemble_*``: K = 5 seeds of a pointer-task-sized GPT (d_model 64, 2 layers, batch 64, 100 steps)
  trained one after another (``lib.core.ensemble.train_sequential``, i.e. ``train``) and as one vmapped
  ensemble (``train_ensemble``), on the same pre-drawn batches, at 1 thread and at the bench's thread
  count: ``ensemble_seq_seconds_*``, ``ensemble_seconds_*`` and ``ensemble_speedup_*`` (sequential /
  ensemble) for ``1_thread`` and ``default_threads`` (``ensemble_default_threads`` of them);
  ``ensemble_max_loss_rel_diff`` checks the two trained the same models (float rounding apart).

``--course`` instead runs every solved notebook (``notebooks/[0-9]*.ipynb``) under nbval with the
flags of ``make test-notebooks``, one pytest process per notebook so each is timed on its own
(kernel start included, as a learner or CI pays it), and prints seconds per notebook and the total;
``--json`` prints ``{"notebooks": {"01_tokenization": 14.2, ...}, "total_s": ..., "passed": true,
"failed": [...]}``. The exit code is 1 when any notebook fails. The course's budget is 10 minutes
for all notebooks on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lib.core.machine import fraction_of_peak, matmul_peak_flops, training_flops
from lib.core.model import GPT, GPTConfig, reference_bridge
from lib.core.paths import REPO_ROOT, solved_notebooks

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
    # How close training comes to the machine: the model's FLOP/s against the fp32 matmul peak
    # measured now, at the same thread count (lib.core.machine).
    # Embedding tables are looked up, not multiplied: counting them in 6N would flatter the rate.
    matmul_params = sum(p.numel() for name, p in ours.named_parameters() if not name.startswith(("embed.", "pos_embed.")))
    per_token = training_flops(matmul_params, 1, cfg.n_layers, cfg.n_ctx, cfg.d_model)
    out["train_flops_per_s_ours"] = per_token * out["train_tokens_per_s_ours"]
    out["matmul_peak_flops_per_s"] = matmul_peak_flops(torch.get_num_threads())
    out["train_fraction_of_peak"] = fraction_of_peak(out["train_flops_per_s_ours"], out["matmul_peak_flops_per_s"])
    return out


def bpe_training_seconds(vocab_size: int = 2048) -> float:
    """Seconds to train the course tokenizer on the whole of Tiny Shakespeare."""
    from lib.core.bpe import BPETokenizer
    from lib.core.paths import shakespeare_text

    text = shakespeare_text()
    start = time.perf_counter()
    BPETokenizer.train(text, vocab_size)
    return time.perf_counter() - start


def ensemble_speedup(k: int = 5, d_model: int = 64, n_layers: int = 2, batch_size: int = 64, steps: int = 100) -> dict[str, float]:
    """Seconds to train ``k`` seeds of a pointer-task-sized GPT sequentially and as one ensemble, at
    1 thread and at the current thread count (restored afterwards), and the speed-ups."""
    from lib.core.ensemble import train_ensemble, train_sequential
    from lib.core.training import TrainConfig
    from lib.tasks.pointer_splits import PointerSplitSpec
    from lib.tasks.pointer_task import pointer_model_config

    for name, value in (("k", k), ("batch_size", batch_size), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    cfg = pointer_model_config(PointerSplitSpec().spec, d_model=d_model, n_layers=n_layers)
    seeds = list(range(k))
    # Every batch drawn before the clocks start, the same for both ways: only training is timed.
    # Random rows with the pointer task's vocabulary and length; the cost of a step does not depend on the ids.
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, cfg.d_vocab, (k, steps, batch_size, cfg.n_ctx), generator=gen)
    targets = tokens.roll(-1, dims=-1)
    targets[..., -1] = -100

    def batch_fn(seed: int, step: int):
        return tokens[seed, step], targets[seed, step]

    def build() -> GPT:
        return GPT(cfg)

    train_cfg = TrainConfig(max_steps=steps, lr=3e-3, warmup_steps=min(20, steps // 10), progress=False)
    warm_cfg = TrainConfig(max_steps=min(2, steps), lr=3e-3, warmup_steps=0, progress=False)
    default_threads = torch.get_num_threads()
    out: dict[str, float] = {"ensemble_k": k, "ensemble_steps": steps, "ensemble_default_threads": default_threads}
    worst = 0.0
    try:
        for label, threads in (("1_thread", 1), ("default_threads", default_threads)):
            torch.set_num_threads(threads)
            seconds = {}
            for way, fn in (("seq", train_sequential), ("ens", train_ensemble)):
                fn(build, seeds, batch_fn, warm_cfg)  # warm-up: first calls allocate and pick kernels
                start = time.perf_counter()
                _, losses = fn(build, seeds, batch_fn, train_cfg)
                seconds[way] = time.perf_counter() - start
                if way == "seq":
                    seq_losses = losses
                else:
                    worst = max(worst, float(((losses - seq_losses).abs() / seq_losses.abs()).max()))
            out[f"ensemble_seq_seconds_{label}"] = seconds["seq"]
            out[f"ensemble_seconds_{label}"] = seconds["ens"]
            out[f"ensemble_speedup_{label}"] = seconds["seq"] / seconds["ens"]
    finally:
        torch.set_num_threads(default_threads)
    out["ensemble_max_loss_rel_diff"] = worst
    return out


# --smoke: every figure, measured on models and inputs so small that the run takes seconds. The
# numbers mean nothing; the test suite runs this to check the benchmark works, on a loaded machine too.
SMOKE_CFG = GPTConfig(d_vocab=64, n_ctx=16, d_model=32, n_layers=1, n_heads=2, d_head=16, d_mlp=64)


def run_all(smoke: bool = False) -> dict[str, float]:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    results: dict[str, float] = {"torch_threads": torch.get_num_threads(), "smoke": smoke}
    if smoke:
        results.update(training_throughput(SMOKE_CFG, batch_size=2, steps=1, rounds=1))
        results["bpe_train_seconds"] = bpe_training_seconds(vocab_size=300)
        results.update(ensemble_speedup(batch_size=8, steps=3))
    else:
        results.update(training_throughput())
        results["bpe_train_seconds"] = bpe_training_seconds()
        results.update(ensemble_speedup())
    try:
        from lib.experiments.thoughts_bench import insertion_round_benchmark
    except ImportError:
        pass
    else:
        thoughts = insertion_round_benchmark(SMOKE_CFG, batch_size=2, repeats=1) if smoke else insertion_round_benchmark()
        results.update({k: float(v) for k, v in thoughts.items() if isinstance(v, (int, float))})
    return results


# The flags of `make test-notebooks` (tests/test_bench_course.py checks the Makefile agrees).
NBVAL_FLAGS: tuple[str, ...] = (
    "--nbval",
    "--nbval-current-env",
    "--nbval-sanitize-with",
    "nbval_sanitize.cfg",
    "--nbval-cell-timeout=300",
)
NOTEBOOK_TIMEOUT_S = 900  # per notebook: a hung kernel fails the run instead of blocking it
# Stored outputs are bitwise reproducible only at 2 threads and on one CPU code path (measured:
# unpinned, an AVX-512 machine moved notebook 04's losses). The Makefile exports the same values.
PINNED_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def course_notebooks(notebook_dir: Path | str = REPO_ROOT / "notebooks") -> list[Path]:
    """The solved notebooks ``[0-9]*.ipynb`` of ``notebook_dir``, in course order."""
    notebook_dir = Path(notebook_dir)
    if not notebook_dir.is_dir():
        raise ValueError(f"notebook_dir {notebook_dir} is not a directory")
    return solved_notebooks(notebook_dir)


def nbval_command(notebook: Path | str) -> list[str]:
    """The pytest command that checks one notebook under nbval, as ``make test-notebooks`` does."""
    return [sys.executable, "-m", "pytest", str(Path(notebook).resolve()), *NBVAL_FLAGS, "-p", "no:cacheprovider", "-q"]


def run_notebook_check(notebook: Path | str, timeout_s: float = NOTEBOOK_TIMEOUT_S) -> tuple[bool, float, str]:
    """Run nbval on one notebook in its own pytest process: (passed, seconds, output)."""
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    env = {**PINNED_ENV, **os.environ}  # the caller's own settings win, as with the Makefile's
    env.setdefault("COURSE_STRICT", "1")  # a notebook whose claims fail must fail its check (lib/core/claims.py)
    start = time.perf_counter()
    # cwd is the repository so that nbval_sanitize.cfg and conftest.py (skipped output types) apply;
    # a session of its own lets a timeout kill pytest and everything it started.
    proc = subprocess.Popen(
        nbval_command(notebook), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return False, time.perf_counter() - start, (output or "") + f"\ntimed out after {timeout_s:.0f} s"
    return proc.returncode == 0, time.perf_counter() - start, output


def run_course(
    notebook_dir: Path | str = REPO_ROOT / "notebooks",
    runner=None,
    log=None,
) -> dict:
    """Check every notebook under nbval, one process each; seconds per notebook and in total.

    ``runner(path) -> (passed, seconds, output)`` defaults to :func:`run_notebook_check`; tests pass
    a fake one.
    ``log`` (e.g. ``sys.stderr``) receives one progress line per notebook and failing output.
    """
    if runner is None:
        runner = run_notebook_check
    if not callable(runner):
        raise TypeError(f"runner must be callable, got {type(runner).__name__}")
    notebooks = course_notebooks(notebook_dir)
    if not notebooks:
        raise ValueError(f"no notebooks matching [0-9]*.ipynb in {notebook_dir}")
    seconds: dict[str, float] = {}
    failed: list[str] = []
    for path in notebooks:
        passed, elapsed, output = runner(path)
        seconds[path.stem] = round(float(elapsed), 2)
        if not passed:
            failed.append(path.stem)
        if log is not None:
            print(f"{path.stem}: {'passed' if passed else 'FAILED'} in {elapsed:.1f} s", file=log, flush=True)
            if not passed:
                print(output[-4000:], file=log, flush=True)
    return {
        "notebooks": seconds,
        "total_s": round(sum(seconds.values()), 2),
        "passed": not failed,
        "failed": failed,
    }


def format_course(result: dict) -> str:
    """A readable table of :func:`run_course`'s result."""
    width = max(len(name) for name in result["notebooks"]) + 2
    lines = [f"{'notebook':<{width}}{'seconds':>9}  status"]
    for name, secs in result["notebooks"].items():
        lines.append(f"{name:<{width}}{secs:>9.1f}  {'FAILED' if name in result['failed'] else 'passed'}")
    lines.append(f"{'total':<{width}}{result['total_s']:>9.1f}  {'passed' if result['passed'] else 'FAILED'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--course", action="store_true", help="time every notebook under nbval instead")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the benchmark runs; the figures mean nothing")
    parser.add_argument(
        "--notebooks-dir", type=Path, default=None, help="with --course: where the notebooks are (default: notebooks/)"
    )
    args = parser.parse_args(argv)
    if args.notebooks_dir is not None and not args.course:
        parser.error("--notebooks-dir only makes sense with --course")
    if args.smoke and args.course:
        parser.error("--smoke times the library benchmarks; --course runs the notebooks")
    if args.course:
        notebook_dir = args.notebooks_dir if args.notebooks_dir is not None else REPO_ROOT / "notebooks"
        if not notebook_dir.is_dir():
            parser.error(f"--notebooks-dir {notebook_dir} is not a directory")
        result = run_course(notebook_dir, log=sys.stderr)
        print(json.dumps(result, indent=2) if args.json else format_course(result))
        return 0 if result["passed"] else 1
    if args.json:
        # Keep stdout for the one JSON object: libraries print notes while the models are built
        # (TransformerLens: "Changing model dtype to torch.float32"); send those to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            results = run_all(smoke=args.smoke)
    else:
        results = run_all(smoke=args.smoke)
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return 0
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value:,.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
