"""Episodic insertion of thoughts that carry vectors: notebook 06's episodes with dense thoughts.

Seed 001 (read whole) inserts one thought per row per round where the model ranks it highest,
scores each by the change in log-likelihood of what follows, drops the worst half and repeats for
R rounds; the thoughts are then "unrolled in the forward-backward phase", with "the pre-computed
thought tokens" as a warm start. Notebook 06's thoughts are plain tokens. Here each thought is a
``<|dense|>`` token: the hidden state of the position before it enters with it.

Nothing in :mod:`lib.methods.thoughts` needs to change for that: its episodes only call ``model(tokens)``
(and ``model(token, kv_cache=...)`` when walking a row), so :class:`DenseView` wraps a GPT and
answers those calls with dense semantics (an exact unrolled forward on whole rows; the previous
hidden state fed in, one position at a time, with a cache). :func:`lib.methods.thoughts.run_episode`,
:func:`lib.methods.thought_training.collect_survivors`, :func:`lib.methods.thoughts.fast_forward` and
:func:`lib.methods.thought_training.generate_with_thoughts` then run unchanged with ``thought_id =
dense_id``.

Training on the survivors (:func:`train_dense_thinker`) uses the warm start: the survivors'
vectors are computed once, exactly, when they are chosen (:func:`precompute_vectors`), and every
training step starts its unrolled forward from them (:func:`unrolled_from`) instead of from zero,
so ``depth`` passes refresh them instead of ``n_thoughts`` passes rebuilding them.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from jaxtyping import Float, Int
from torch import Tensor

from lib.core.checks import check_float, check_int, check_padded_rows, check_token_id, check_token_ids, eval_mode
from lib.methods.dense import _unrolled_forward, add_dense_vectors, hidden_and_logits, shift_to_next_position, unrolled_forward
from lib.core.model import GPT, KVCache
from lib.methods.thought_training import _check_episode_args, _collect_survivors, _masked_thought_targets
from lib.methods.thoughts import _check_thought_and_pad, _insert_random_thoughts


def _check_model_and_id(model, dense_id) -> None:
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a lib.core.model.GPT, got {type(model).__name__}")
    check_token_id(dense_id, "dense_id", model.cfg.d_vocab)


class DenseView(nn.Module):
    """``model`` seen through dense semantics, for code written for plain tokens.

    ``view(tokens)``: logits of an exact forward in which every ``<|dense|>`` position gets the
    hidden state of the position before it (:func:`lib.methods.dense.unrolled_forward` to ``depth``;
    exact when no row holds more than ``depth`` dense tokens, which is checked).
    ``view(tokens, kv_cache=cache)``: the same one position at a time, the previous hidden state
    kept on the cache. The wrapped model's parameters are the view's: training one trains the other.
    """

    def __init__(self, model: GPT, dense_id: int, depth: int):
        super().__init__()
        _check_model_and_id(model, dense_id)
        check_int(depth, "depth", min=0)
        self.model, self.dense_id, self.depth = model, dense_id, depth

    @property
    def cfg(self):
        return self.model.cfg

    def new_kv_cache(self) -> KVCache:
        return self.model.new_kv_cache()

    def n_params(self) -> int:
        return self.model.n_params()

    def forward(self, tokens: Int[Tensor, "batch pos"], kv_cache: KVCache | None = None) -> Float[Tensor, "batch pos d_vocab"]:
        if kv_cache is None:
            most = int((tokens == self.dense_id).sum(dim=1).max()) if tokens.numel() else 0
            if most > self.depth:
                raise ValueError(f"a row holds {most} dense tokens, more than depth = {self.depth}: the forward would not be exact")
            return unrolled_forward(self.model, tokens, self.dense_id, self.depth).logits
        logits = []
        for t in range(tokens.shape[1]):
            token = tokens[:, t : t + 1]
            embeds = self.model.embed(token)
            previous = getattr(kv_cache, "dense_previous", None)
            if previous is not None:
                embeds = add_dense_vectors(embeds, previous[:, None], token == self.dense_id)
            hidden, step_logits = hidden_and_logits(self.model, embeds, kv_cache=kv_cache)
            kv_cache.dense_previous = hidden[:, -1]
            logits.append(step_logits)
        return torch.cat(logits, dim=1)


@torch.no_grad()
def precompute_vectors(
    model: GPT, tokens: Int[Tensor, "batch pos"], dense_id: int, batch_size: int = 256
) -> Float[Tensor, "batch pos d_model"]:
    """The vectors that enter at every dense position of an exact forward (zero elsewhere):
    the warm start of :func:`unrolled_from`."""
    _check_model_and_id(model, dense_id)
    check_token_ids(tokens, "tokens", model.cfg.d_vocab, ndim=2)
    check_int(batch_size, "batch_size", min=1)
    return _precompute_vectors(model, tokens, dense_id, batch_size)


@torch.no_grad()
def _precompute_vectors(model: GPT, tokens: Tensor, dense_id: int, batch_size: int = 256) -> Tensor:
    with eval_mode(model):
        out = torch.zeros(*tokens.shape, model.cfg.d_model, device=tokens.device)
        for s in range(0, tokens.shape[0], batch_size):
            rows = tokens[s : s + batch_size]
            mask = rows == dense_id
            depth = int(mask.sum(dim=1).max()) if rows.numel() else 0
            if depth:
                out[s : s + batch_size] = _unrolled_forward(model, rows, dense_id, depth).vectors[-1] * mask[..., None]
    return out


def unrolled_from(
    model: GPT,
    tokens: Int[Tensor, "batch pos"],
    dense_id: int,
    depth: int,
    init: Float[Tensor, "batch pos d_model"],
) -> Float[Tensor, "batch pos d_vocab"]:
    """Like :func:`lib.methods.dense.unrolled_forward`, but pass 0 already feeds ``init`` at the dense
    positions (the pre-computed vectors, no gradient through them), and ``depth`` more passes
    refresh them with the current parameters: ``depth + 1`` passes, the logits of the last."""
    _check_model_and_id(model, dense_id)
    check_token_ids(tokens, "tokens", model.cfg.d_vocab, ndim=2)
    check_int(depth, "depth", min=0)
    if not isinstance(init, Tensor) or not init.is_floating_point() or tuple(init.shape) != (*tokens.shape, model.cfg.d_model):
        raise ValueError(f"init must be a float tensor of shape {(*tokens.shape, model.cfg.d_model)}, got {getattr(init, 'shape', init)}")
    return _unrolled_from(model, tokens, dense_id, depth, init)


def _unrolled_from(model: GPT, tokens: Tensor, dense_id: int, depth: int, init: Tensor) -> Tensor:
    mask = tokens == dense_id
    embeds = model.embed(tokens)
    vectors = init.detach()
    for _ in range(depth):
        hidden, _ = hidden_and_logits(model, add_dense_vectors(embeds, vectors, mask))
        vectors = shift_to_next_position(hidden)
    return hidden_and_logits(model, add_dense_vectors(embeds, vectors, mask))[1]


def round_table(histories: list[list[dict]]) -> list[dict]:
    """The episodes' rounds summed over chunks: per round, thoughts inserted, kept, dropped and
    the mean log-likelihood gain of the inserted ones (weighted by chunk)."""
    if not isinstance(histories, list) or not all(isinstance(h, list) for h in histories):
        raise TypeError("histories must be a list (one per chunk) of lists of round dicts")
    rounds: dict[int, dict] = {}
    for chunk in histories:
        for r in chunk:
            row = rounds.setdefault(r["round"], {"round": r["round"], "inserted": 0, "kept": 0, "_gain": 0.0})
            row["inserted"] += r["n_inserted"]
            row["kept"] += r["n_kept"]
            row["_gain"] += r["mean_score"] * r["n_inserted"]
    out = []
    for k in sorted(rounds):
        row = rounds[k]
        out.append({"round": k, "inserted": row["inserted"], "kept": row["kept"], "dropped": row["inserted"] - row["kept"],
                    "mean_gain": row["_gain"] / max(row["inserted"], 1)})
    return out


def train_dense_thinker(
    model: GPT,
    tokens: Int[Tensor, "n pos"],
    lengths: Int[Tensor, " n"],
    text_targets,
    steps: int,
    batch_size: int,
    dense_id: int,
    pad_id: int,
    seed: int = 0,
    lr: float = 3e-3,
    warmup_thoughts: int = 2,
    n_rounds: int = 2,
    depth: int = 1,
    rule: str = "rank",
    first_gap: int = 1,
) -> dict:
    """:func:`lib.methods.thought_training.train_thinker`'s schedule with dense thoughts: the first half
    of ``steps`` reads 0..``warmup_thoughts`` random dense thoughts (exact unrolled forward, not
    predicted); at the half-way step, episodes of ``n_rounds`` rounds on the second half's rows
    (through :class:`DenseView`) keep the thoughts that raised the text log-likelihood, and their
    vectors are pre-computed; the second half trains on the survivors with the thoughts as
    targets, unrolled ``depth`` passes from those vectors (:func:`unrolled_from`). Returns the
    survivors' thoughts per row, the rounds (:func:`round_table`) and the training history."""
    from lib.core.training import TrainConfig, train

    # Every argument is checked here, once: a bad rule found at the half-way switch would leave
    # the model half trained, and the helpers below trust what they are given.
    _check_model_and_id(model, dense_id)
    _check_thought_and_pad(dense_id, pad_id, model.cfg.d_vocab, "dense_id")
    check_padded_rows(tokens, lengths, d_vocab=model.cfg.d_vocab)
    if not isinstance(text_targets, Tensor) or text_targets.dtype != torch.bool or text_targets.shape != tokens.shape:
        raise ValueError(f"text_targets must be a bool tensor of the shape of tokens {tuple(tokens.shape)}")
    check_int(steps, "steps", min=2)
    check_int(batch_size, "batch_size", min=1)
    check_int(warmup_thoughts, "warmup_thoughts", min=0)
    check_int(n_rounds, "n_rounds", min=0)
    check_int(depth, "depth", min=0)
    check_int(seed, "seed", min=0)
    check_float(lr, "lr", positive=True)
    _check_episode_args(n_rounds, rule, first_gap)
    if tokens.shape[0] < steps * batch_size:
        raise ValueError(f"need steps * batch_size = {steps * batch_size} rows, got {tokens.shape[0]}")
    gen = torch.Generator().manual_seed(seed)
    half = steps // 2
    second = slice(half * batch_size, steps * batch_size)
    state: dict = {}

    def batch_fn(step: int):
        if step < half:
            idx = slice(step * batch_size, (step + 1) * batch_size)
            counts = torch.randint(0, warmup_thoughts + 1, (batch_size,), generator=gen)
            rows, lens = _insert_random_thoughts(tokens[idx], lengths[idx], counts, dense_id, pad_id, gen, first_gap)
            return rows, lens, text_targets[idx], None
        if "survivors" not in state:  # the switch: dense episodes with the warmed-up model
            view = DenseView(model, dense_id, max(n_rounds, 1))
            sv_tokens, sv_lengths, histories = _collect_survivors(view, tokens[second], lengths[second], dense_id, pad_id,
                                                                  n_rounds, rule, seed=seed, first_gap=first_gap)
            state["survivors"] = (sv_tokens, sv_lengths, _precompute_vectors(model, sv_tokens, dense_id))
            state["thoughts_per_row"] = float((sv_tokens == dense_id).sum()) / sv_tokens.shape[0]
            state["rounds"] = round_table(histories)
        sv_tokens, sv_lengths, vectors = state["survivors"]
        idx = slice((step - half) * batch_size, (step - half + 1) * batch_size)
        rows, lens = sv_tokens[idx], sv_lengths[idx]
        width = int(lens.max())
        return rows[:, :width], lens, text_targets[second][idx], vectors[idx, :width]

    def loss_fn(m, batch) -> Tensor:
        rows, lens, wanted, init = batch
        if init is None:  # warm-up: thoughts are read, not predicted; exact forward
            logits = _unrolled_forward(m, rows, dense_id, warmup_thoughts).logits
            return GPT.loss(logits, targets=_masked_thought_targets(rows, lens, dense_id, wanted, False))
        logits = _unrolled_from(m, rows, dense_id, depth, init)
        return GPT.loss(logits, targets=_masked_thought_targets(rows, lens, dense_id, wanted, True))

    cfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=max(1, steps // 10), eval_interval=steps, progress=False)
    history = train(model, batch_fn, cfg, loss_fn=loss_fn)
    return {"thoughts_per_row": state.get("thoughts_per_row", 0.0), "rounds": state.get("rounds", []), "history": history}


__all__ = ["DenseView", "precompute_vectors", "round_table", "train_dense_thinker", "unrolled_from"]
