"""Training and evaluating models on multi-hop pointer chasing (notebook 05, the harness).

The task itself (questions, answers, accuracy) is :mod:`lib.tasks.pointer_task`; this module runs the
methods on it: a plain forward for no filler and pause tokens, the unrolled forward of
:mod:`lib.methods.dense` for dense tokens, and the measurements notebook 05 makes on dense vectors
(their norms, what the logit lens reads in them, where the lookups attend).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from lib.core import checks
from lib.methods.dense import add_dense_vectors, read_dense_vector, unrolled_forward
from lib.core.model import GPT
from lib.tasks.pointer_task import (
    FILLERS,
    Filler,
    PointerBatch,
    PointerSpec,
    answer_accuracy,
    carried_pointers,
    exact_depth,
    parse_method,
    pointer_model_config,
    sample_pointer_batch,
)
from lib.core.training import TrainConfig, train


def pointer_logits(model, batch: PointerBatch, depth: int | None = None, source: str = "normed") -> Tensor:
    """Logits for a batch. Dense batches are unrolled to ``depth`` (default: as many passes as the
    batch has dense tokens, which equals generating one position at a time)."""
    checks.check_type(batch, "batch", PointerBatch)
    checks.check_int(depth, "depth", min=0, allow_none=True)
    if batch.filler != "dense":
        return model(batch.tokens)
    return unrolled_forward(model, batch.tokens, batch.spec.dense_id, exact_depth(batch) if depth is None else depth, source).logits


@torch.no_grad()
def evaluate_pointer(
    model, spec: PointerSpec, filler: Filler, n_questions: int = 600, seed: int = 1234, decoys: int = 0,
    depth: int | None = None, source: str = "normed",
) -> dict[int, float]:
    """Answer accuracy per hop count on fresh questions (the same questions for every method with
    the same ``seed``). Dense models are evaluated exactly, as at generation, unless ``depth`` is given."""
    device = checks.model_device(model)
    checks.check_type(spec, "spec", PointerSpec)
    checks.check_choice(filler, "filler", FILLERS)
    checks.check_int(n_questions, "n_questions", min=1)
    checks.check_int(seed, "seed", min=0)
    checks.check_int(decoys, "decoys", min=0)
    checks.check_int(depth, "depth", min=0, allow_none=True)
    checks.check_choice(source, "source", ("normed", "raw"))
    out = {}
    with checks.eval_mode(model):
        for hops in range(1, spec.max_hops + 1):
            batch = sample_pointer_batch(spec, n_questions, torch.Generator().manual_seed(seed + hops), filler, hops, decoys)
            batch = batch.to(device)
            out[hops] = answer_accuracy(pointer_logits(model, batch, depth, source), batch)
    return out


@dataclass
class PointerRun:
    """One trained model and what was measured on it."""

    method: str
    seed: int
    model: object
    history: object  # lib.core.training.History
    accuracy: dict[int, float]  # per hop count, evaluated as at generation
    norm_steps: list[int]  # training steps at which the dense vectors were logged
    norms: list[list[float]]  # mean norm of the vectors fed at each pass (one list per log step)
    lens_agreement: list[float]  # fraction of useful dense vectors whose logit lens names the right pointer

    @property
    def mean_accuracy(self) -> float:
        return sum(self.accuracy.values()) / len(self.accuracy)


def train_pointer_model(
    method: str,
    seed: int,
    spec: PointerSpec = PointerSpec(),
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 3e-3,
    d_model: int = 64,
    n_layers: int = 1,
    source: str = "normed",
    decoys: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    model=None,
) -> PointerRun:
    """Train a fresh model (or continue ``model``) on the task with one method and evaluate it.

    Every method trains the same architecture (same parameter count) on the same questions (the
    batch generator is seeded by ``seed``); only the filler and the unrolling differ.
    """
    filler, depth = parse_method(method)
    checks.check_int(seed, "seed", min=0)
    checks.check_type(spec, "spec", PointerSpec)
    checks.check_int(steps, "steps", min=1)
    checks.check_int(batch_size, "batch_size", min=1)
    checks.check_float(lr, "lr", positive=True)
    checks.check_choice(source, "source", ("normed", "raw"))
    checks.check_int(decoys, "decoys", min=0)
    checks.check_bool(progress, "progress")
    if model is not None:
        checks.check_module(model)
    torch.manual_seed(seed)
    if model is None:
        model = GPT(pointer_model_config(spec, d_model, n_layers, decoys=decoys)).to(device)
    gen = torch.Generator().manual_seed(seed)
    log_every = max(1, steps // 10)
    norm_steps: list[int] = []
    norms: list[list[float]] = []
    agreement: list[float] = []
    step_counter = [0]

    def batch_fn(step: int) -> PointerBatch:
        step_counter[0] = step
        return sample_pointer_batch(spec, batch_size, gen, filler, None, decoys).to(device)

    def loss_fn(m, batch: PointerBatch) -> Tensor:
        if filler != "dense":
            return m(batch.tokens, return_type="loss", targets=batch.targets)
        out = unrolled_forward(m, batch.tokens, spec.dense_id, depth, source)
        if step_counter[0] % log_every == 0:
            with torch.no_grad():
                norm_steps.append(step_counter[0])
                norms.append([v[out.mask].norm(dim=-1).mean().item() for v in out.vectors])
                agreement.append(lens_agreement(m, out.vectors[-1], batch, source))
        return GPT.loss(out.logits, targets=batch.targets)

    cfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=min(20, steps // 10), eval_interval=steps,
                      log_interval=log_every, progress=progress, progress_desc=method)
    history = train(model, batch_fn, cfg, loss_fn=loss_fn)
    accuracy = evaluate_pointer(model, spec, filler, decoys=decoys, source=source)
    return PointerRun(method, seed, model, history, accuracy, norm_steps, norms, agreement)


def lens_agreement(model, vectors: Tensor, batch: PointerBatch, source: str = "normed") -> float:
    """Fraction of useful dense vectors whose logit lens (restricted to node tokens) names the
    pointer they should carry (:func:`carried_pointers`). NaN if the batch has none."""
    checks.check_tensor(vectors, "vectors", ndim=3, dtype="float")
    rows, cols, expected = carried_pointers(batch)
    if len(rows) == 0:
        return float("nan")
    read = read_dense_vector(model, vectors[rows, cols], source)[:, : batch.spec.n_nodes].argmax(dim=-1)
    return (read == expected).float().mean().item()


@torch.no_grad()
def lookup_attention(model, batch: PointerBatch, layer: int = 0, source: str = "normed") -> Float[Tensor, "hops n_heads"]:
    """Mean attention, per head, from each lookup position to the table entry of the pointer it holds.

    Lookup k (k = 0 .. h - 1) happens at position ``start_pos + k``: at x itself, then at each
    dense (or pause) token. The pointer held there is x, then f(x), f(f(x)), ...; its image sits at
    table position = the pointer. The batch must share one hop count h and have a filler
    (``"none"`` only for h = 1). Dense batches are run exactly, the vectors entering through
    ``input_embeds``.
    """
    checks.check_type(batch, "batch", PointerBatch)
    checks.check_int(layer, "layer", min=0)
    hops = batch.hops.unique()
    if len(hops) != 1:
        raise ValueError("the batch must share one hop count (sample it with hops=...)")
    h = int(hops)
    if batch.filler == "none" and h > 1:
        raise ValueError("without a filler only the 1-hop lookup happens inside the question")
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer must lie in [0, {model.cfg.n_layers}), got {layer}")
    name = f"blocks.{layer}.attn.hook_pattern"
    tokens = batch.tokens
    if batch.filler == "dense":
        out = unrolled_forward(model, tokens, batch.spec.dense_id, exact_depth(batch), source)
        embeds = add_dense_vectors(model.embed(tokens), out.vectors[-1] if out.vectors else torch.zeros_like(model.embed(tokens)), out.mask)
        _, cache = model.run_with_cache(input_embeds=embeds, names_filter=name)
    else:
        _, cache = model.run_with_cache(tokens, names_filter=name)
    pattern = cache[name]  # [batch, head, query, key]
    rows = torch.arange(tokens.shape[0], device=pattern.device)
    start = batch.start_pos.to(pattern.device)
    x = tokens[rows, start].to(pattern.device)
    pointers = torch.cat([x[:, None], batch.chain.to(pattern.device)[:, : h - 1]], dim=1)  # [batch, h]
    out_rows = [pattern[rows, :, start + k, pointers[:, k]].mean(dim=0) for k in range(h)]  # each [head]
    return torch.stack(out_rows)


__all__ = ["PointerRun", "evaluate_pointer", "lens_agreement", "lookup_attention", "pointer_logits", "train_pointer_model"]
