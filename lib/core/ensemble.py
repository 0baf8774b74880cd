"""Train the seeds of one configuration together, as one batched ensemble.

A small GPT on a CPU spends most of a training step on per-operation overhead, not arithmetic.
:func:`train_ensemble` trains K independently initialised copies of the same GPT at once: their
parameters are stacked into one tensor per weight (``torch.func.stack_module_state``), one forward
runs every member on its own batch (``torch.vmap`` over ``torch.func.functional_call``), and one
AdamW updates the stacked tensors. Every operation then works on K members for the price of one
call. Nothing is shared between members:

- member k is built after ``torch.manual_seed(seeds[k])``, exactly as a sequential run builds it;
- it gets its own batches, ``batch_fn(seeds[k], step)``;
- the loss is the sum of the members' losses, and member k's loss depends only on member k's
  weights, so each member's gradient is the gradient of its own loss;
- gradient clipping uses each member's own global norm, as ``clip_grad_norm_`` would for it alone;
- AdamW (moments, bias correction, weight decay) is elementwise, so AdamW over the stacked tensors
  is K separate AdamWs (tests/test_ensemble.py checks both this and the whole run).

The schedule, weight decay groups and clipping are those of :func:`lib.core.training.train`, read
from the same :class:`~lib.core.training.TrainConfig`; :func:`train_sequential` is the one-seed-
after-another reference, made of ``train`` itself. Both return the trained models (ordinary GPTs,
in eval mode) and every step's training loss per member.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from torch.func import functional_call, stack_module_state
from tqdm import tqdm

from lib.core import checks
from lib.core.model import GPT
from lib.core.training import TrainConfig, lr_at, train

Batch = tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]
BatchFn = Callable[[int, int], Batch]  # (seed, step) -> (inputs, targets); targets -100 are not scored


def _check_args(build_model, seeds, batch_fn, cfg) -> list[int]:
    """Every argument checked before anything is built or drawn; the seeds as a list."""
    for name, fn in (("build_model", build_model), ("batch_fn", batch_fn)):
        if not callable(fn):
            raise TypeError(f"{name} must be a callable, got {type(fn).__name__} {checks._got(fn)}")
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise TypeError(f"seeds must be a sequence of ints, got {type(seeds).__name__} {checks._got(seeds)}")
    seeds = [checks.check_int(s, f"seeds[{i}]", min=0) for i, s in enumerate(seeds)]
    if not seeds:
        raise ValueError("seeds must hold at least one seed, got an empty sequence")
    if len(set(seeds)) != len(seeds):
        # Two members with one seed get the same weights and batches: the same run, twice.
        raise ValueError(f"seeds must be distinct, got {seeds}")
    checks.check_type(cfg, "cfg", TrainConfig)
    return seeds


def _build(build_model: Callable[[], nn.Module], seed: int) -> GPT:
    """``build_model()`` after ``torch.manual_seed(seed)``: a sequential run's model for ``seed``."""
    torch.manual_seed(seed)
    model = build_model()
    # Exactly GPT: the ensemble's forward (:func:`_unchecked_logits`) mirrors GPT's own; a subclass
    # (a looped GPT, an encoder-decoder) may compute something else.
    if type(model) is not GPT:
        raise TypeError(f"build_model must return a lib.core.model.GPT, got {type(model).__name__}")
    return model


def _unchecked_logits(model: GPT, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_vocab"]:
    """GPT's forward (``GPT._run`` for logits, unhooked) without its checks of the input's values.

    vmap cannot run those checks: ``int(tokens.min())`` reads a value, which a batched tensor does
    not have (vmap raises "calling .item() on a Tensor"). :func:`_stack_batches` runs the same checks
    on every member's batch before the forward instead."""
    batch, pos = tokens.shape
    resid = model.hook_embed(model.embed.W_E[tokens]) + model.hook_pos_embed(model.pos_embed(batch, pos, 0))
    for block in model.blocks_to_run():
        resid = block(resid)
    return model.unembed(model.ln_final(resid))


class _MemberLoss(nn.Module):
    """One member's loss as a module, for ``functional_call``: the parameters are swapped in per call."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model

    def forward(self, inputs: Int[Tensor, "batch pos"], targets: Int[Tensor, "batch pos"]) -> Float[Tensor, ""]:
        logits = _unchecked_logits(self.model, inputs)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten().long(), ignore_index=-100)


def _stack_batches(batch_fn: BatchFn, seeds: list[int], step: int, d_vocab: int, n_ctx: int, device) -> Batch:
    """Every member's batch for ``step``, checked as GPT's forward checks one, stacked:
    ``(inputs, targets)``, each ``[member, batch, pos]``."""
    inputs, targets = [], []
    for seed in seeds:
        where = f"batch_fn(seed={seed}, step={step})"
        out = batch_fn(seed, step)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(f"{where} must return a pair (inputs, targets), got {type(out).__name__} {checks._got(out)}")
        x, y = out
        checks.check_tensor(x, f"{where} inputs", ndim=2, dtype="int")
        checks.check_tensor(y, f"{where} targets", shape=tuple(x.shape), dtype="int")
        if not 1 <= x.shape[1] <= n_ctx or x.shape[0] == 0:
            raise ValueError(f"{where} inputs must have shape [batch >= 1, 1 <= pos <= {n_ctx}], got {tuple(x.shape)}")
        if inputs and x.shape != inputs[0].shape:
            raise ValueError(f"{where} inputs have shape {tuple(x.shape)}, member seed={seeds[0]}'s {tuple(inputs[0].shape)}: "
                             "every member's batch must have one shape")
        if x.device != device or y.device != device:
            raise ValueError(f"{where} must return tensors on the models' device {device}, got {x.device} and {y.device}")
        inputs.append(x)
        targets.append(y)
    x, y = torch.stack(inputs), torch.stack(targets)
    # The value checks, once over all members (GPT.forward's, which vmap cannot run).
    checks.check_token_ids(x, "batch_fn inputs", d_vocab, ndim=3)
    checks.check_token_ids(y, "batch_fn targets", d_vocab, ndim=3, ignore_index=-100)
    scored = (y != -100).flatten(1).any(dim=1)
    if not bool(scored.all()):
        seed = seeds[int((~scored).nonzero()[0])]
        raise ValueError(f"batch_fn(seed={seed}, step={step}) targets have no scored position (all -100): the loss would be NaN")
    return x, y


def train_ensemble(
    build_model: Callable[[], nn.Module], seeds: Sequence[int], batch_fn: BatchFn, cfg: TrainConfig
) -> tuple[list[GPT], Float[Tensor, "member step"]]:
    """Train one GPT per seed, all at once; the same models :func:`train_sequential` trains.

    Args:
        build_model: ``() -> GPT``, called once per member after ``torch.manual_seed(seed)``.
        seeds: distinct seeds, one member each (K of them).
        batch_fn: ``(seed, step) -> (inputs, targets)``, each ``[batch, pos]`` integer ids,
            targets ``-100`` where nothing is scored; the same shape for every member. Each seed's
            stream must depend on that seed alone (e.g. one ``torch.Generator`` per seed), so that
            the order members are asked in does not matter.
        cfg: steps (``max_steps``), learning rate, schedule, weight decay, betas, clipping and the
            progress bar, as in :func:`lib.core.training.train` (no validation: ``eval_interval``
            and ``log_interval`` are unused).

    Returns:
        The K trained GPTs (in eval mode, in the order of ``seeds``) and every step's training
        loss, ``[K, max_steps]``.

    The global random state is the same afterwards as before, also when a call fails; a failure
    returns nothing, so no model is left half-trained (``batch_fn``'s own streams may have moved).
    """
    seeds = _check_args(build_model, seeds, batch_fn, cfg)
    with torch.random.fork_rng():
        members = [_build(build_model, seed) for seed in seeds]
    first = members[0]
    for seed, m in zip(seeds, members):
        if m.cfg != first.cfg:
            raise ValueError(f"build_model must build one configuration; seed {seed} gave {m.cfg}, seed {seeds[0]} gave {first.cfg}")
    device = next(first.parameters()).device

    params, buffers = stack_module_state(members)  # each [K, *shape], fresh leaves
    # The template functional_call runs: no storage (meta) and the explicit attention path, since
    # the fused CPU kernel (aten::_scaled_dot_product_flash_attention_for_cpu) has no vmap batching
    # rule: vmap would run it once per member in a loop, with a warning. The two paths compute the
    # same attention up to float rounding.
    with torch.device("meta"), torch.random.fork_rng():
        template = _MemberLoss(GPT(dataclasses.replace(first.cfg, use_sdpa=False)))
    state = {f"model.{k}": v for k, v in {**params, **buffers}.items()}

    def member_loss(state_k: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return functional_call(template, state_k, (x, y))

    batched_loss = torch.vmap(member_loss)  # randomness="error": a random op (dropout) would raise

    # make_optimizer's groups: decay on each member's matrices (ndim >= 2, so >= 3 stacked).
    trainable = [p for p in params.values() if p.requires_grad]
    decay = [p for p in trainable if p.ndim >= 3]
    no_decay = [p for p in trainable if p.ndim < 3]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=cfg.betas,
    )
    losses = torch.empty(len(seeds), cfg.max_steps)
    bar = tqdm(range(cfg.max_steps), desc=cfg.progress_desc, disable=not cfg.progress, mininterval=1.0)
    for step in bar:
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = _stack_batches(batch_fn, seeds, step, first.cfg.d_vocab, first.cfg.n_ctx, device)
        loss = batched_loss(state, x, y)  # [K]
        if not bool(torch.isfinite(loss).all()):
            bad = int((~torch.isfinite(loss)).nonzero()[0])
            raise FloatingPointError(f"the loss of seed {seeds[bad]} became {loss[bad].item()} at step {step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        if cfg.grad_clip is not None:
            _clip_per_member(trainable, cfg.grad_clip)
        opt.step()
        losses[:, step] = loss.detach()
    with torch.no_grad():
        for k, m in enumerate(members):
            for name, p in m.named_parameters():
                p.copy_(params[name][k])
            for name, b in m.named_buffers():
                b.copy_(buffers[name][k])
    for m in members:
        m.eval()
    return members, losses


@torch.no_grad()
def _clip_per_member(stacked: list[Tensor], max_norm: float) -> None:
    """``clip_grad_norm_(member.parameters(), max_norm)`` for every member at once: each member's
    gradients scaled by ``min(1, max_norm / (its global norm + 1e-6))``."""
    grads = [p.grad for p in stacked if p.grad is not None]
    if not grads:
        return
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2, dim=1) for g in grads])  # [n_params, K]
    total = torch.linalg.vector_norm(norms, 2, dim=0)  # [K]
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.ndim - 1))))


def train_sequential(
    build_model: Callable[[], nn.Module], seeds: Sequence[int], batch_fn: BatchFn, cfg: TrainConfig
) -> tuple[list[GPT], Float[Tensor, "member step"]]:
    """The reference for :func:`train_ensemble`, with the same arguments and results: one seed
    after another, each built after ``torch.manual_seed(seed)`` and trained by
    :func:`lib.core.training.train` with GPT's own (checked) loss."""
    seeds = _check_args(build_model, seeds, batch_fn, cfg)
    every_step = dataclasses.replace(cfg, log_interval=1)  # History.train_loss: every step's loss
    models, losses = [], []
    with torch.random.fork_rng():
        for seed in seeds:
            model = _build(build_model, seed)
            history = train(model, lambda step, seed=seed: batch_fn(seed, step), every_step,
                            loss_fn=lambda m, batch: m(batch[0], return_type="loss", targets=batch[1]))
            models.append(model)
            losses.append(history.train_loss)
    return models, torch.tensor(losses)
