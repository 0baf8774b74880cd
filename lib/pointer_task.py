"""Multi-hop pointer chasing: a question whose answer needs several lookups in a row.

A random permutation ``f`` of ``n_nodes`` nodes is written out as a table (position ``i`` holds
``f(i)``). The question gives a hop count ``h`` and a start node ``x`` and asks for ``f`` applied
``h`` times:

    f(0) f(1) ... f(n-1)  QUERY  HOP_h  [decoys]  x  [filler x (h - 1)]  answer

Why this task: one attention layer can do one lookup (the query is the current node, the key is
the table position that holds its image), so a 1-layer transformer answers 1-hop questions but
not 2- or 3-hop ones in a single pass. Extra positions that carry nothing new (pause tokens) add
no sequential depth: the layer at position t reads only the layer below, at positions <= t.
A dense token is fed the last layer's output of the position before it, so each one buys one
more pass through the network: h - 1 dense tokens leave room for h lookups. The task therefore
separates "more positions" from "a vector passed forward".

The filler is ``"none"`` (answer right after ``x``), ``"pause"`` (h - 1 pause tokens) or
``"dense"`` (h - 1 dense tokens). ``decoys`` adds up to that many extra filler tokens right after
the hop token, where they cannot carry anything useful (they come before ``x``); notebook 05
uses them to test whether deletion scores can tell useful dense tokens from useless ones.

Related: Coconut (Hao et al. 2024) feeds the last hidden state back as the next input embedding;
pause tokens (Goyal et al. 2024) add positions without a vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

Filler = Literal["none", "pause", "dense"]
FILLERS: tuple[str, ...] = ("none", "pause", "dense")


@dataclass(frozen=True)
class PointerSpec:
    """Sizes of the task and its token ids (nodes first, then the special tokens)."""

    n_nodes: int = 6
    max_hops: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.n_nodes, int) or self.n_nodes < 2:
            raise ValueError(f"n_nodes must be an int >= 2, got {self.n_nodes!r}")
        if not isinstance(self.max_hops, int) or self.max_hops < 1:
            raise ValueError(f"max_hops must be an int >= 1, got {self.max_hops!r}")

    @property
    def query_id(self) -> int:
        return self.n_nodes

    @property
    def dense_id(self) -> int:
        return self.n_nodes + 1

    @property
    def pause_id(self) -> int:
        return self.n_nodes + 2

    @property
    def pad_id(self) -> int:
        return self.n_nodes + 3

    def hop_id(self, hops: int) -> int:
        if not 1 <= hops <= self.max_hops:
            raise ValueError(f"hops must lie in [1, {self.max_hops}], got {hops}")
        return self.n_nodes + 3 + hops

    @property
    def vocab_size(self) -> int:
        return self.n_nodes + 4 + self.max_hops

    def filler_id(self, filler: Filler) -> int | None:
        if filler not in FILLERS:
            raise ValueError(f"filler must be one of {FILLERS}, got {filler!r}")
        return {"none": None, "pause": self.pause_id, "dense": self.dense_id}[filler]

    def seq_len(self, filler: Filler, decoys: int = 0) -> int:
        """Length of a batch's rows: table, QUERY, HOP, decoys, x, filler, answer."""
        max_fill = 0 if filler == "none" else self.max_hops - 1
        return self.n_nodes + 4 + decoys + max_fill

    def token_names(self) -> list[str]:
        """Readable names for every id, for plots."""
        names = [str(i) for i in range(self.n_nodes)] + ["Q", "<|dense|>", "<|pause|>", "·"]
        return names + [f"H{h}" for h in range(1, self.max_hops + 1)]


@dataclass
class PointerBatch:
    """A batch of questions. Rows are right-padded with ``pad_id`` (targets -100 there)."""

    tokens: Int[Tensor, "batch pos"]
    targets: Int[Tensor, "batch pos"]  # the answer at answer_pos - 1, -100 elsewhere
    answers: Int[Tensor, " batch"]
    hops: Int[Tensor, " batch"]
    chain: Int[Tensor, "batch max_hops"]  # f(x), f(f(x)), ...: the intermediate pointers
    start_pos: Int[Tensor, " batch"]  # where x sits
    answer_pos: Int[Tensor, " batch"]  # where the answer token sits
    useful: Tensor  # [batch, pos] bool: filler tokens after x (decoys are not useful)
    spec: PointerSpec
    filler: str

    def to(self, device: torch.device | str) -> "PointerBatch":
        moved = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        return PointerBatch(**moved)

    def select(self, rows) -> "PointerBatch":
        """The questions at ``rows`` (a list or tensor of indices), as a batch of their own."""
        index = torch.as_tensor(rows, dtype=torch.long)
        if index.ndim != 1 or len(index) == 0:
            raise ValueError("rows must be a non-empty 1-D list of indices")
        picked = {k: (v[index.to(v.device)] if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        return PointerBatch(**picked)


def sample_pointer_batch(
    spec: PointerSpec,
    batch_size: int,
    generator: torch.Generator,
    filler: Filler = "dense",
    hops: int | None = None,
    decoys: int = 0,
) -> PointerBatch:
    """``batch_size`` random questions; ``hops=None`` draws the hop count uniformly per row.

    With ``decoys > 0`` each row also gets 0..decoys extra filler tokens between the hop token
    and ``x`` (uniformly many), which no lookup can use.
    """
    if not isinstance(spec, PointerSpec):
        raise TypeError(f"spec must be a PointerSpec, got {type(spec).__name__}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    fill_id = spec.filler_id(filler)
    if hops is not None and not 1 <= hops <= spec.max_hops:
        raise ValueError(f"hops must lie in [1, {spec.max_hops}] or be None, got {hops}")
    if not isinstance(decoys, int) or decoys < 0:
        raise ValueError(f"decoys must be an int >= 0, got {decoys!r}")
    if decoys and filler == "none":
        raise ValueError("decoys need a filler token (pause or dense)")
    n, B = spec.n_nodes, batch_size
    perm = torch.rand(B, n, generator=generator).argsort(dim=1)  # the table: f(i) = perm[:, i]
    x = torch.randint(0, n, (B,), generator=generator)
    h = torch.randint(1, spec.max_hops + 1, (B,), generator=generator) if hops is None else torch.full((B,), hops)
    r = torch.randint(0, decoys + 1, (B,), generator=generator) if decoys else torch.zeros(B, dtype=torch.long)
    chain = torch.empty(B, spec.max_hops, dtype=torch.long)
    current = x
    for k in range(spec.max_hops):
        current = perm.gather(1, current[:, None])[:, 0]
        chain[:, k] = current
    answers = chain.gather(1, (h - 1)[:, None])[:, 0]
    n_fill = torch.zeros_like(h) if filler == "none" else h - 1

    T = spec.seq_len(filler, decoys)
    pos = torch.arange(T)[None, :]
    start = n + 2 + r  # x's position: after the table, QUERY, HOP and the decoys
    answer_pos = start + 1 + n_fill
    tokens = torch.full((B, T), spec.pad_id, dtype=torch.long)
    tokens[:, :n] = perm
    tokens[:, n] = spec.query_id
    tokens[:, n + 1] = spec.n_nodes + 3 + h
    is_decoy = (pos >= n + 2) & (pos < start[:, None])
    is_fill = (pos > start[:, None]) & (pos < answer_pos[:, None])
    if fill_id is not None:
        tokens[is_decoy | is_fill] = fill_id
    rows = torch.arange(B)
    tokens[rows, start] = x
    tokens[rows, answer_pos] = answers
    targets = torch.full_like(tokens, -100)
    targets[rows, answer_pos - 1] = answers  # position i predicts token i + 1
    return PointerBatch(tokens, targets, answers, h, chain, start, answer_pos, is_fill, spec, filler)


def answer_logits(logits: Float[Tensor, "batch pos d_vocab"], batch: PointerBatch) -> Float[Tensor, "batch d_vocab"]:
    """The logits that predict each row's answer (at ``answer_pos - 1``)."""
    if logits.ndim != 3 or logits.shape[:2] != batch.tokens.shape:
        raise ValueError(f"logits must have shape {tuple(batch.tokens.shape)} + (d_vocab,), got {tuple(logits.shape)}")
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, batch.answer_pos.to(logits.device) - 1]


def answer_accuracy(logits: Float[Tensor, "batch pos d_vocab"], batch: PointerBatch) -> float:
    """Fraction of rows whose greedy answer (argmax over the whole vocabulary) is right."""
    predicted = answer_logits(logits, batch).argmax(dim=-1).cpu()
    return (predicted == batch.answers.cpu()).float().mean().item()


def accuracy_by_hops(logits: Float[Tensor, "batch pos d_vocab"], batch: PointerBatch) -> dict[int, float]:
    """Answer accuracy separately for each hop count present in the batch."""
    correct = (answer_logits(logits, batch).argmax(dim=-1).cpu() == batch.answers.cpu()).float()
    hops = batch.hops.cpu()
    return {int(h): correct[hops == h].mean().item() for h in hops.unique().tolist()}


# --------------------------------------------------------------------------- training and evaluation
def parse_method(method: str) -> tuple[str, int]:
    """``"none"``, ``"pause"`` or ``"dense-<depth>"`` -> ``(filler, unroll depth)``."""
    if method in ("none", "pause"):
        return method, 0
    if isinstance(method, str) and method.startswith("dense-") and method[6:].isdigit() and int(method[6:]) >= 1:
        return "dense", int(method[6:])
    raise ValueError(f"method must be 'none', 'pause' or 'dense-<depth >= 1>', got {method!r}")


def pointer_model_config(spec: PointerSpec, d_model: int = 64, n_layers: int = 1, n_heads: int = 4, decoys: int = 0):
    """The small GPT the notebook trains: one layer by default, so one pass = one lookup."""
    from lib.model import GPTConfig

    if d_model % n_heads:
        raise ValueError(f"d_model = {d_model} must be divisible by n_heads = {n_heads}")
    return GPTConfig(
        d_vocab=spec.vocab_size, n_ctx=spec.seq_len("dense", decoys), d_model=d_model, n_layers=n_layers,
        n_heads=n_heads, d_head=d_model // n_heads, d_mlp=4 * d_model,
    )


def pointer_logits(model, batch: PointerBatch, depth: int | None = None, source: str = "normed") -> Tensor:
    """Logits for a batch. Dense batches are unrolled to ``depth`` (default: as many passes as the
    batch has dense tokens, which equals generating one position at a time)."""
    from lib.dense import unrolled_forward

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
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = {}
    for hops in range(1, spec.max_hops + 1):
        batch = sample_pointer_batch(spec, n_questions, torch.Generator().manual_seed(seed + hops), filler, hops, decoys)
        batch = batch.to(device)
        out[hops] = answer_accuracy(pointer_logits(model, batch, depth, source), batch)
    model.train(was_training)
    return out


@dataclass
class PointerRun:
    """One trained model and what was measured on it."""

    method: str
    seed: int
    model: object
    history: object  # lib.training.History
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
    from lib.dense import unrolled_forward
    from lib.model import GPT
    from lib.training import TrainConfig, train

    filler, depth = parse_method(method)
    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
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


def carried_pointers(batch: PointerBatch) -> tuple[Tensor, Tensor, Tensor]:
    """For every useful dense position (rows, cols): the pointer the vector entering there should
    carry. The vector entering at x + i comes from position x + i - 1, which should hold the result
    of i lookups: f(x) for the first dense token, f(f(x)) for the second, ..."""
    rows, cols = batch.useful.nonzero(as_tuple=True)
    offset = cols - batch.start_pos.to(cols.device)[rows]
    return rows, cols, batch.chain.to(cols.device)[rows, offset - 1]


def lens_agreement(model, vectors: Tensor, batch: PointerBatch, source: str = "normed") -> float:
    """Fraction of useful dense vectors whose logit lens (restricted to node tokens) names the
    pointer they should carry (:func:`carried_pointers`). NaN if the batch has none."""
    from lib.dense import read_dense_vector

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
    from lib.dense import add_dense_vectors, unrolled_forward

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


def exact_depth(batch: PointerBatch) -> int:
    """Passes needed for an exact forward of a dense batch: its largest number of dense tokens in a row."""
    return int((batch.tokens == batch.spec.dense_id).sum(dim=1).max())


def needed_dense_tokens(batch: PointerBatch) -> Tensor:
    """``[batch, pos]`` bool: useful dense tokens whose deletion changes the right answer.

    Deleting one of the h - 1 tokens after x leaves room for h - 1 lookups, giving f^(h-1)(x)
    instead of f^h(x). When the chain has reached a fixed point (f(y) = y) the two are equal, and
    the token, although placed where a lookup happens, is not needed for this question."""
    rows = torch.arange(batch.tokens.shape[0], device=batch.tokens.device)
    h = batch.hops.to(rows.device)
    x = batch.tokens[rows, batch.start_pos.to(rows.device)]
    chain = batch.chain.to(rows.device)
    one_fewer = torch.where(h >= 2, chain[rows, (h - 2).clamp(min=0)], x)
    changes = one_fewer != chain[rows, h - 1]
    return batch.useful & changes[:, None]
