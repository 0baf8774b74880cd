"""A small, complete training loop: AdamW, warm-up + cosine schedule, gradient clipping,
periodic validation, a progress bar and a loss history to plot.

It is generic on purpose: ``train`` takes a ``batch_fn(step) -> batch`` and a
``loss_fn(model, batch) -> scalar``, so later notebooks (dense tokens, planning loss) train their
own models and losses with the same loop and the same schedule.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from jaxtyping import Int
from torch import Tensor
from tqdm import tqdm  # text bars on stderr: no widget state stored in the notebooks

from lib.core import checks
from lib.core.checks import atomic_path, eval_mode  # noqa: F401  (eval_mode: the course's one way to evaluate a model for a while)
from lib.core.checks import check_path as _check_path


def make_reproducible(seed: int = 0, threads: int = 2) -> None:
    """Seed torch's generator, fix the thread count and ask for deterministic kernels.

    Measured here: without deterministic algorithms, two identical 25-step training runs differed
    by ~3e-5 in the loss (multithreaded gradient accumulation adds in a varying order), enough to
    change printed losses in the third decimal after a few hundred steps. With it (or one thread)
    they are bitwise equal. ``warn_only`` keeps CUDA runs working where no deterministic kernel exists.
    """
    checks.check_int(seed, "seed", min=0)
    checks.check_int(threads, "threads", min=1)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


SEED_ENV = "COURSE_SEED"
_MAX_SEED = 10**6


def course_seeds(n: int) -> list[int]:
    """The seeds of a notebook's training runs: ``0 .. n-1``, or ``s .. s+n-1`` when ``COURSE_SEED=s``.

    Only training runs (model initialisation, batch order) take their seeds from here; data,
    untrained models and evaluation sets keep fixed seeds of their own. Re-running a notebook
    with ``COURSE_SEED=10`` therefore changes every number a training run produces and nothing
    else: each claim must still hold, and every output nbval compares must stay the same
    (``make test`` runs the notebooks exactly that way).
    """
    checks.check_int(n, "n", min=1)
    raw = os.environ.get(SEED_ENV, "").strip()
    if not raw:
        first = 0
    else:
        try:
            first = int(raw)
        except ValueError:
            raise ValueError(f"{SEED_ENV} must be a whole number such as 10, got {raw!r}") from None
        if not 0 <= first <= _MAX_SEED:
            raise ValueError(f"{SEED_ENV} must lie in [0, {_MAX_SEED}], got {first}")
    return list(range(first, first + n))


def course_seed() -> int:
    """The seed of a notebook's one training run: ``course_seeds(1)[0]`` (0 unless ``COURSE_SEED`` is set)."""
    return course_seeds(1)[0]


def pick_device(prefer: str | None = None) -> torch.device:
    """``prefer`` if given, else CUDA, then Apple's MPS, then the CPU."""
    if prefer is not None:
        if not isinstance(prefer, (str, torch.device)):
            raise TypeError(f"prefer must be a device name such as 'cpu' or 'cuda', got {type(prefer).__name__}")
        try:
            return torch.device(prefer)
        except RuntimeError as exc:
            raise ValueError(f"prefer must name a device such as 'cpu' or 'cuda', got {prefer!r}") from exc
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class TrainConfig:
    max_steps: int = 1000
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    eval_interval: int = 100  # validate every this many steps (and at the last step)
    log_interval: int = 10  # record the training loss every this many steps
    progress: bool = True
    progress_desc: str = "training"

    def __post_init__(self) -> None:
        # Every field, because a wrong one trains silently: grad_clip < 0 climbs the loss
        # (gradient ascent), grad_clip = 0 never moves the weights, lr = nan learns nothing.
        checks.check_int(self.max_steps, "TrainConfig.max_steps", min=1)
        checks.check_float(self.lr, "TrainConfig.lr", positive=True)
        checks.check_prob(self.min_lr_ratio, "TrainConfig.min_lr_ratio")
        checks.check_int(self.warmup_steps, "TrainConfig.warmup_steps", min=0, max=self.max_steps)
        checks.check_float(self.weight_decay, "TrainConfig.weight_decay", min=0.0)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise TypeError(f"TrainConfig.betas must be a pair of numbers, got {self.betas!r}")
        for beta in self.betas:
            checks.check_float(beta, "TrainConfig.betas", min=0.0)
            if not beta < 1:
                raise ValueError(f"TrainConfig.betas must lie in [0, 1), got {tuple(self.betas)}")
        checks.check_float(self.grad_clip, "TrainConfig.grad_clip (None turns clipping off)", positive=True, allow_none=True)
        checks.check_int(self.eval_interval, "TrainConfig.eval_interval", min=1)
        checks.check_int(self.log_interval, "TrainConfig.log_interval", min=1)
        checks.check_bool(self.progress, "TrainConfig.progress")
        checks.check_str(self.progress_desc, "TrainConfig.progress_desc", nonempty=False)


@dataclass
class History:
    """What happened during training, ready to plot."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class _TraceFull(Exception):
    """Raised inside train() to stop a run once its trace has the steps it asked for."""


@dataclass
class LossTrace:
    """The first ``steps`` training losses recorded by :func:`train` inside :func:`trace_losses`."""

    steps: int
    stop: bool
    losses: list[float] = field(default_factory=list)

    @property
    def full(self) -> bool:
        return len(self.losses) >= self.steps


_traces: list[LossTrace] = []


@contextlib.contextmanager
def trace_losses(steps: int, stop: bool = False):
    """Record the first ``steps`` training losses of whatever :func:`train` runs inside the block.

    With ``stop=True`` that run ends right after them, and the block exits quietly: the start of a
    long run costs only its first steps. The opening losses of a run are its fingerprint: they
    depend on the code, the seed and the data order, and they agree across CPUs in their first
    digits, while the last digits of a long run do not (the stored results' provenance check in
    lib.experiments.harness relies on both facts).

        with trace_losses(30, stop=True) as trace:
            RUNNERS["pointer"]("dense", 1, MEDIUM)
        trace.losses  # 30 floats
    """
    checks.check_int(steps, "steps", min=1)
    checks.check_bool(stop, "stop")
    trace = LossTrace(steps, stop)
    _traces.append(trace)
    try:
        yield trace
    except _TraceFull:
        if not (trace.stop and trace.full):
            raise
    finally:
        _traces.remove(trace)


def _record(loss: float) -> None:
    stop = False
    for trace in _traces:
        if not trace.full:
            trace.losses.append(loss)
            stop = stop or (trace.full and trace.stop)
    if stop:
        raise _TraceFull()


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``cfg.lr`` over ``warmup_steps``, then a cosine down to
    ``cfg.lr * min_lr_ratio`` at ``max_steps``. Warm-up keeps Adam's first, badly estimated
    steps small; the cosine tail lets the model settle into a minimum."""
    checks.check_int(step, "step", min=0)
    checks.check_type(cfg, "cfg", TrainConfig)
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only: decaying biases and LayerNorm gains pulls them
    toward 0, which is not the prior anyone wants for them."""
    checks.check_type(model, "model", nn.Module)
    checks.check_type(cfg, "cfg", TrainConfig)
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def lm_loss(model: nn.Module, batch: Tensor) -> Tensor:
    """The default loss: next-token cross-entropy of a ``[batch, pos]`` tensor of token ids."""
    return model(batch, return_type="loss")


def train(
    model: nn.Module,
    batch_fn: Callable[[int], Any],
    cfg: TrainConfig,
    *,
    loss_fn: Callable[[nn.Module, Any], Tensor] = lm_loss,
    val_fn: Callable[[nn.Module], float] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> History:
    """Train ``model`` for ``cfg.max_steps`` steps and return its :class:`History`.

    Args:
        batch_fn: ``step -> batch``; the batch is handed to ``loss_fn`` untouched.
        loss_fn: ``(model, batch) -> scalar loss`` (default: next-token cross-entropy).
        val_fn: ``model -> validation loss``, called in eval mode without gradients every
            ``cfg.eval_interval`` steps and after the last step.
        optimizer: defaults to :func:`make_optimizer`; the schedule overrides its learning rate.
    """
    checks.check_module(model)
    checks.check_type(cfg, "cfg", TrainConfig)
    for name, fn in (("batch_fn", batch_fn), ("loss_fn", loss_fn)):
        if not callable(fn):
            raise TypeError(f"{name} must be a callable, got {type(fn).__name__}")
    if val_fn is not None and not callable(val_fn):
        raise TypeError(f"val_fn must be a callable or None, got {type(val_fn).__name__}")
    checks.check_type(optimizer, "optimizer", torch.optim.Optimizer, allow_none=True)
    if optimizer is not None:
        _check_optimizer_covers(model, optimizer)
    opt = optimizer if optimizer is not None else make_optimizer(model, cfg)
    # If training fails, the model goes back to the mode it came in (its weights may have moved).
    modes = [(m, m.training) for m in model.modules()]
    try:
        return _train_loop(model, batch_fn, cfg, loss_fn, val_fn, opt)
    except BaseException:
        for m, mode in modes:
            m.training = mode
        raise


def _check_optimizer_covers(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Every trainable parameter of ``model`` (by identity) must be in ``optimizer``: one that is
    not keeps its initial value while the loss falls through the others, with no error. Extra
    parameters (a loss module trained alongside, say) are fine; frozen ones
    (``requires_grad=False``) need not be there."""
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    missing = [name for name, p in trainable if id(p) not in held]
    if not missing:
        return
    if len(missing) == len(trainable):
        # The usual cause: the model was rebuilt, the optimizer still holds the old model's tensors.
        raise ValueError(
            "optimizer's parameters are not this model's: it holds none of the model's "
            f"{len(trainable)} trainable parameters, so training would move no weight. It was built "
            "for another model (re-ran the cell that builds the model, not the one that builds the "
            "optimizer?): re-run the cell that builds the optimizer, e.g. optimizer = make_optimizer(model, cfg)"
        )
    shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
    raise ValueError(
        f"optimizer is missing {len(missing)} of the model's {len(trainable)} trainable parameters ({shown}): "
        "they would never be updated. Build the optimizer from this model (make_optimizer(model, cfg)), "
        "or freeze the ones you mean to keep fixed with p.requires_grad_(False)"
    )


def _train_loop(model, batch_fn, cfg: TrainConfig, loss_fn, val_fn, opt) -> History:
    history = History()
    start = time.perf_counter()
    bar = tqdm(range(cfg.max_steps), desc=cfg.progress_desc, disable=not cfg.progress, mininterval=1.0)
    model.train()
    for step in bar:
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = loss_fn(model, batch_fn(step))
        if not isinstance(loss, Tensor) or loss.numel() != 1 or not loss.is_floating_point():
            raise TypeError(f"loss_fn must return a scalar floating-point tensor, got {checks._got(loss)}")
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss.item()} at step {step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            # Clipping the global norm bounds the size of any one update after a rare bad batch.
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if _traces:
            _record(loss.item())
        if step % cfg.log_interval == 0 or step == cfg.max_steps - 1:
            history.steps.append(step)
            history.train_loss.append(loss.item())
            history.lr.append(lr)
        if val_fn is not None and ((step + 1) % cfg.eval_interval == 0 or step == cfg.max_steps - 1):
            with eval_mode(model), torch.no_grad():
                history.val_loss.append(float(val_fn(model)))
            history.val_steps.append(step)
            bar.set_postfix(train=f"{loss.item():.3f}", val=f"{history.val_loss[-1]:.3f}")
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


# --------------------------------------------------------------------------- data batches
def random_windows(
    data: Int[Tensor, " n_tokens"],
    batch_size: int,
    seq_len: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> Int[Tensor, "batch seq_len"]:
    """``batch_size`` windows of ``seq_len`` consecutive tokens at random offsets."""
    _check_windows_args(data, batch_size, seq_len)
    checks.check_type(generator, "generator", torch.Generator)
    if len(data) < seq_len:
        raise ValueError(f"data has {len(data)} tokens, fewer than one window of {seq_len}")
    starts = torch.randint(0, len(data) - seq_len + 1, (batch_size,), generator=generator)
    windows = torch.stack([data[s : s + seq_len] for s in starts.tolist()])
    return windows.to(device)


def _check_windows_args(data: Tensor, batch_size: int, seq_len: int) -> None:
    checks.check_token_ids(data, "data", ndim=1)
    checks.check_int(batch_size, "batch_size", min=1)
    checks.check_int(seq_len, "seq_len", min=1)
    if len(data) < seq_len:
        raise ValueError(f"data has {len(data)} tokens, fewer than one window of seq_len = {seq_len}")


def lm_batch_fn(
    data: Int[Tensor, " n_tokens"], batch_size: int, seq_len: int, seed: int = 0, device: torch.device | str = "cpu"
) -> Callable[[int], Tensor]:
    """A ``batch_fn`` for :func:`train` drawing random windows from ``data`` with its own seeded
    generator, so the batches do not depend on anything else that consumes random numbers."""
    _check_windows_args(data, batch_size, seq_len)
    checks.check_int(seed, "seed", min=0)
    gen = torch.Generator().manual_seed(seed)
    return lambda step: random_windows(data, batch_size, seq_len, gen, device)


@torch.no_grad()
def evaluate_lm_loss(
    model: nn.Module,
    data: Int[Tensor, " n_tokens"],
    seq_len: int,
    batch_size: int = 32,
    max_windows: int | None = None,
) -> float:
    """Mean next-token loss (nats/token) over ``data``, every token after the first predicted
    exactly once: windows of ``seq_len`` overlap by one token, so the last token of one window is
    the context-free first token of the next."""
    device = checks.model_device(model)
    checks.check_token_ids(data, "data", getattr(getattr(model, "cfg", None), "d_vocab", None), ndim=1)
    checks.check_int(seq_len, "seq_len", min=2)
    checks.check_int(batch_size, "batch_size", min=1)
    checks.check_int(max_windows, "max_windows", min=1, allow_none=True)
    if len(data) < seq_len:
        raise ValueError(f"data has {len(data)} tokens, fewer than one window of seq_len = {seq_len}")
    stride = seq_len - 1
    starts = list(range(0, len(data) - seq_len + 1, stride))
    if max_windows is not None:
        starts = starts[:max_windows]
    total, count = 0.0, 0
    with eval_mode(model):
        for i in range(0, len(starts), batch_size):
            batch = torch.stack([data[s : s + seq_len] for s in starts[i : i + batch_size]]).to(device)
            loss = model(batch, return_type="loss")
            n = batch.shape[0] * (seq_len - 1)
            total += loss.item() * n
            count += n
    return total / count


def nats_per_char(nats_per_token: float, n_tokens: int, n_chars: int) -> float:
    """Convert a per-token loss into a per-character one: the same total surprise spread over
    characters, so models with different tokenizers can be compared."""
    nats_per_token = checks.check_float(nats_per_token, "nats_per_token", min=0.0)
    checks.check_int(n_tokens, "n_tokens", min=1)
    checks.check_int(n_chars, "n_chars", min=1)
    return nats_per_token * n_tokens / n_chars


# --------------------------------------------------------------------------- checkpoints
_DIGEST_KEY = "tensors_sha256"


def _tensors_digest(tensors: dict[str, Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and raw bytes, in name order: a flipped
    bit anywhere in the weights changes it (safetensors itself checks only the layout)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(model: nn.Module, path: str | Path, metadata: dict | None = None) -> Path:
    """Write the weights as safetensors; the model's config (and ``metadata``) go in its header,
    with a sha256 of the weights that :func:`read_checkpoint` and :func:`load_gpt` verify."""
    from safetensors.torch import save_file

    checks.check_type(model, "model", nn.Module)
    path = checks.check_file_path(path, "path")
    checks.check_type(metadata, "metadata", dict, allow_none=True)
    cfg = getattr(model, "cfg", None)
    try:
        meta_json = json.dumps(metadata or {})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from exc
    header = {"config": json.dumps(cfg.to_dict() if cfg is not None else {}), "model_class": type(model).__name__}
    header["metadata"] = meta_json
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header[_DIGEST_KEY] = _tensors_digest(tensors)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed at the end: a failure never leaves half a checkpoint.
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict, dict]:
    """Return ``(state_dict, config_dict, metadata)`` of a checkpoint written by :func:`save_checkpoint`."""
    state, header = _read(path)
    return state, _header_json(header, "config", path), _header_json(header, "metadata", path, default="{}")


def _read(path) -> tuple[dict[str, Tensor], dict]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = _check_path(path, "path")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (regenerate it with `python -m lib.experiments.prepare`)")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a readable safetensors checkpoint: {exc}") from exc
    if "config" not in header:
        raise ValueError(f"{path} has no model config in its header; was it written by save_checkpoint?")
    # Files written before the digest existed (the shipped checkpoint among them) have none: they load unchecked.
    recorded = header.get(_DIGEST_KEY)
    if recorded is not None and recorded != _tensors_digest(state):
        raise ValueError(
            f"{path} is a corrupt or edited checkpoint: the sha256 of its weights differs from the one "
            "save_checkpoint recorded in its header (regenerate it, e.g. with `python -m lib.experiments.prepare`)"
        )
    return state, header


def _header_json(header: dict, key: str, path: Path, default: str | None = None) -> dict:
    """One JSON object of a checkpoint header, or a ValueError naming the file and the entry."""
    try:
        value = json.loads(header[key] if default is None else header.get(key, default))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the header's {key!r} entry is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{path}: the header's {key!r} entry must be a JSON object, got {type(value).__name__}")
    return value


def load_gpt(path: str | Path, device: torch.device | str = "cpu"):
    """Load a :class:`lib.core.model.GPT` checkpoint; returns ``(model, metadata)``, model in eval mode."""
    from lib.core.model import GPT, GPTConfig

    state, header = _read(path)
    config, metadata = _header_json(header, "config", path), _header_json(header, "metadata", path, default="{}")
    model_class = header.get("model_class", "GPT")
    if model_class != "GPT" or "n_enc_layers" in config:
        raise ValueError(f"{path} holds a {model_class} (config {sorted(config)}), not a GPT: load_gpt reads GPT checkpoints only")
    try:
        cfg = GPTConfig(**config)
    except TypeError as exc:
        raise ValueError(f"{path}: the header's config does not describe a GPTConfig ({exc})") from exc
    model = GPT(cfg)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit the config in its header ({exc})") from exc
    return model.to(device).eval(), metadata
