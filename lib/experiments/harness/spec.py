"""What one harness run is: its size (:class:`Size`), its record (:class:`CellResult`), and the
budgets every arm shares."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskInfo:
    metric: str
    higher_is_better: bool
    min_effect: float  # the smallest difference of means worth calling an effect


@dataclass(frozen=True)
class Size:
    """How big every run is. ``small`` fits notebook 08 on a 2-core CPU, ``medium`` reaches real
    learning on one (about an hour with ``--jobs 2``), ``full`` wants a GPU."""

    name: str
    seeds: tuple[int, ...]
    lrs: tuple[float, ...]  # the learning-rate sweep every arm gets (one value: no sweep)
    text_steps: int
    text_batch: int
    text_window: int  # real tokens per window
    text_d_model: int
    text_layers: int  # GPT blocks (the encoder-decoder splits them in half)
    text_every: int  # one filler after this many real tokens
    text_val_windows: int  # validation windows (the lr is chosen on these)
    text_test_windows: int  # test windows (reported)
    pointer_steps: int
    path_steps: int
    sweep_seed: int = 0
    eval_questions: int = 600  # pointer questions per hop count, path-star graphs


SMALL = Size("small", (0, 1, 2), (3e-3,), text_steps=60, text_batch=16, text_window=48, text_d_model=64, text_layers=2,
             text_every=8, text_val_windows=32, text_test_windows=32, pointer_steps=200, path_steps=300)
MEDIUM = Size("medium", (0, 1, 2), (1e-3, 3e-3, 1e-2), text_steps=1000, text_batch=16, text_window=48, text_d_model=64,
              text_layers=2, text_every=8, text_val_windows=128, text_test_windows=400, pointer_steps=600, path_steps=2000)
FULL = Size("full", (0, 1, 2, 3, 4), (1e-3, 3e-3, 1e-2), text_steps=4000, text_batch=32, text_window=96, text_d_model=128,
            text_layers=4, text_every=8, text_val_windows=200, text_test_windows=400, pointer_steps=2000, path_steps=6000)
SIZES: dict[str, Size] = {s.name: s for s in (SMALL, MEDIUM, FULL)}


@dataclass
class CellResult:
    """One run: the task's number on the test split (``value``) and on the validation split, and what it cost."""

    task: str
    method: str
    seed: int
    lr: float
    value: float
    val_value: float
    n_params: int
    forward_passes_per_step: float
    seconds: float
    extra: dict = field(default_factory=dict)


UNDERTRAINED = "undertrained: no verdict"
OPENING_STEPS = 30  # training losses kept per run, compared by lib.experiments.stored_checks
THOUGHT_BUDGET = 2  # thoughts a model may place per row at evaluation (pause/dense get at most 2 fillers too)
PLANNING = dict(lam=1.0, kind="cosine")  # notebook 07's best arm
LOOPS = 3  # the looped control runs its block as many times as dense depth 2 runs the model
DEEP_LAYERS = 3
