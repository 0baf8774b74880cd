"""A small, complete training loop: AdamW, warm-up + cosine schedule, gradient clipping,
periodic validation, a progress bar and a loss history to plot.

It is generic on purpose: ``train`` takes a ``batch_fn(step) -> batch`` and a
``loss_fn(model, batch) -> scalar``, so later notebooks (dense tokens, planning loss) train their
own models and losses with the same loop and the same schedule.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from jaxtyping import Int
from torch import Tensor
from tqdm import tqdm  # text bars on stderr: no widget state stored in the notebooks


def make_reproducible(seed: int = 0, threads: int = 2) -> None:
    """Seed torch's generator, fix the thread count and ask for deterministic kernels.

    Measured here: without deterministic algorithms, two identical 25-step training runs differed
    by ~3e-5 in the loss (multithreaded gradient accumulation adds in a varying order), enough to
    change printed losses in the third decimal after a few hundred steps. With it (or one thread)
    they are bitwise equal. ``warn_only`` keeps CUDA runs working where no deterministic kernel exists.
    """
    if threads <= 0:
        raise ValueError(f"threads must be positive, got {threads}")
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device(prefer: str | None = None) -> torch.device:
    """``prefer`` if given, else CUDA, then Apple's MPS, then the CPU."""
    if prefer is not None:
        return torch.device(prefer)
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
        if self.max_steps <= 0:
            raise ValueError(f"max_steps must be positive, got {self.max_steps}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.warmup_steps < 0 or self.eval_interval <= 0 or self.log_interval <= 0:
            raise ValueError("warmup_steps must be >= 0, eval_interval and log_interval > 0")


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


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``cfg.lr`` over ``warmup_steps``, then a cosine down to
    ``cfg.lr * min_lr_ratio`` at ``max_steps``. Warm-up keeps Adam's first, badly estimated
    steps small; the cosine tail lets the model settle into a minimum."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only: decaying biases and LayerNorm gains pulls them
    toward 0, which is not the prior anyone wants for them."""
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
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not callable(batch_fn) or not callable(loss_fn):
        raise TypeError("batch_fn and loss_fn must be callables")
    opt = optimizer if optimizer is not None else make_optimizer(model, cfg)
    history = History()
    start = time.perf_counter()
    bar = tqdm(range(cfg.max_steps), desc=cfg.progress_desc, disable=not cfg.progress, mininterval=1.0)
    model.train()
    for step in bar:
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = loss_fn(model, batch_fn(step))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss.item()} at step {step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            # Clipping the global norm bounds the size of any one update after a rare bad batch.
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if step % cfg.log_interval == 0 or step == cfg.max_steps - 1:
            history.steps.append(step)
            history.train_loss.append(loss.item())
            history.lr.append(lr)
        if val_fn is not None and ((step + 1) % cfg.eval_interval == 0 or step == cfg.max_steps - 1):
            model.eval()
            with torch.no_grad():
                history.val_loss.append(float(val_fn(model)))
            history.val_steps.append(step)
            model.train()
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
    if data.ndim != 1:
        raise ValueError(f"data must be a 1-D tensor of token ids, got shape {tuple(data.shape)}")
    if batch_size <= 0 or seq_len <= 0:
        raise ValueError(f"batch_size and seq_len must be positive, got {batch_size}, {seq_len}")
    if len(data) < seq_len:
        raise ValueError(f"data has {len(data)} tokens, fewer than one window of {seq_len}")
    starts = torch.randint(0, len(data) - seq_len + 1, (batch_size,), generator=generator)
    windows = torch.stack([data[s : s + seq_len] for s in starts.tolist()])
    return windows.to(device)


def lm_batch_fn(
    data: Int[Tensor, " n_tokens"], batch_size: int, seq_len: int, seed: int = 0, device: torch.device | str = "cpu"
) -> Callable[[int], Tensor]:
    """A ``batch_fn`` for :func:`train` drawing random windows from ``data`` with its own seeded
    generator, so the batches do not depend on anything else that consumes random numbers."""
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
    if data.ndim != 1:
        raise ValueError(f"data must be a 1-D tensor of token ids, got shape {tuple(data.shape)}")
    if seq_len < 2 or len(data) < seq_len:
        raise ValueError(f"need seq_len >= 2 and at least seq_len tokens, got {seq_len} and {len(data)}")
    stride = seq_len - 1
    starts = list(range(0, len(data) - seq_len + 1, stride))
    if max_windows is not None:
        starts = starts[:max_windows]
    device = next(model.parameters()).device
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    for i in range(0, len(starts), batch_size):
        batch = torch.stack([data[s : s + seq_len] for s in starts[i : i + batch_size]]).to(device)
        loss = model(batch, return_type="loss")
        n = batch.shape[0] * (seq_len - 1)
        total += loss.item() * n
        count += n
    model.train(was_training)
    return total / count


def nats_per_char(nats_per_token: float, n_tokens: int, n_chars: int) -> float:
    """Convert a per-token loss into a per-character one: the same total surprise spread over
    characters, so models with different tokenizers can be compared."""
    if n_tokens <= 0 or n_chars <= 0:
        raise ValueError(f"n_tokens and n_chars must be positive, got {n_tokens}, {n_chars}")
    return nats_per_token * n_tokens / n_chars


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(model: nn.Module, path: str | Path, metadata: dict | None = None) -> Path:
    """Write the weights as safetensors; the model's config (and ``metadata``) go in its header."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = getattr(model, "cfg", None)
    header = {"config": json.dumps(cfg.to_dict() if cfg is not None else {}), "model_class": type(model).__name__}
    header["metadata"] = json.dumps(metadata or {})
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=header)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict, dict]:
    """Return ``(state_dict, config_dict, metadata)`` of a checkpoint written by :func:`save_checkpoint`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (regenerate it with `python -m lib.prepare`)")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a readable safetensors checkpoint: {exc}") from exc
    if "config" not in header:
        raise ValueError(f"{path} has no model config in its header; was it written by save_checkpoint?")
    return state, json.loads(header["config"]), json.loads(header.get("metadata", "{}"))


def load_gpt(path: str | Path, device: torch.device | str = "cpu"):
    """Load a :class:`lib.model.GPT` checkpoint; returns ``(model, metadata)``, model in eval mode."""
    from lib.model import GPT, GPTConfig

    state, config, metadata = read_checkpoint(path)
    model = GPT(GPTConfig(**config))
    model.load_state_dict(state)
    return model.to(device).eval(), metadata
