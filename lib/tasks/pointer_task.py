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

from lib.core import checks

Filler = Literal["none", "pause", "dense"]
FILLERS: tuple[str, ...] = ("none", "pause", "dense")


@dataclass(frozen=True)
class PointerSpec:
    """Sizes of the task and its token ids (nodes first, then the special tokens)."""

    n_nodes: int = 6
    max_hops: int = 3

    def __post_init__(self) -> None:
        checks.check_int(self.n_nodes, "PointerSpec.n_nodes", min=2)
        checks.check_int(self.max_hops, "PointerSpec.max_hops", min=1)

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
        checks.check_int(hops, "hops", min=1, max=self.max_hops)
        return self.n_nodes + 3 + hops

    @property
    def vocab_size(self) -> int:
        return self.n_nodes + 4 + self.max_hops

    def filler_id(self, filler: Filler) -> int | None:
        checks.check_choice(filler, "filler", FILLERS)
        return {"none": None, "pause": self.pause_id, "dense": self.dense_id}[filler]

    def seq_len(self, filler: Filler, decoys: int = 0) -> int:
        """Length of a batch's rows: table, QUERY, HOP, decoys, x, filler, answer."""
        checks.check_choice(filler, "filler", FILLERS)
        checks.check_int(decoys, "decoys", min=0)
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
        if isinstance(rows, Tensor):
            checks.check_tensor(rows, "rows", dtype="int")
        elif not isinstance(rows, (list, tuple)) or any(isinstance(r, bool) or not isinstance(r, int) for r in rows):
            raise TypeError(f"rows must be a list or integer tensor of row indices, got {checks._got(rows)}")
        index = torch.as_tensor(rows, dtype=torch.long)
        if index.ndim != 1 or len(index) == 0:
            raise ValueError("rows must be a non-empty 1-D list of indices")
        n = self.tokens.shape[0]
        if int(index.min()) < -n or int(index.max()) >= n:
            raise ValueError(f"rows must hold indices in [0, {n}), got min {int(index.min())}, max {int(index.max())}")
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
    checks.check_type(spec, "spec", PointerSpec)
    checks.check_int(batch_size, "batch_size", min=1)
    checks.check_type(generator, "generator", torch.Generator)
    spec.filler_id(filler)  # checks filler
    checks.check_int(hops, "hops", min=1, max=spec.max_hops, allow_none=True)
    checks.check_int(decoys, "decoys", min=0)
    if decoys and filler == "none":
        raise ValueError("decoys need a filler token (pause or dense)")
    n, B = spec.n_nodes, batch_size
    perm = torch.rand(B, n, generator=generator).argsort(dim=1)  # the table: f(i) = perm[:, i]
    x = torch.randint(0, n, (B,), generator=generator)
    h = torch.randint(1, spec.max_hops + 1, (B,), generator=generator) if hops is None else torch.full((B,), hops)
    r = torch.randint(0, decoys + 1, (B,), generator=generator) if decoys else torch.zeros(B, dtype=torch.long)
    return _assemble(spec, perm, x, h, r, filler, decoys)


def _assemble(
    spec: PointerSpec,
    perm: Int[Tensor, "batch n_nodes"],
    x: Int[Tensor, " batch"],
    h: Int[Tensor, " batch"],
    r: Int[Tensor, " batch"],
    filler: Filler,
    decoys: int,
) -> PointerBatch:
    """Lay out questions already drawn: tables ``perm``, starts ``x``, hop counts ``h`` and decoy
    counts ``r`` (shared by :func:`sample_pointer_batch` and the split samplers of
    :mod:`lib.tasks.pointer_splits`, so both write one layout)."""
    fill_id = spec.filler_id(filler)
    n, B = spec.n_nodes, perm.shape[0]
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
    checks.check_type(batch, "batch", PointerBatch)
    checks.check_tensor(logits, "logits", dtype="float")
    if logits.ndim != 3 or logits.shape[:2] != batch.tokens.shape:
        raise ValueError(f"logits must have shape {tuple(batch.tokens.shape)} + (d_vocab,), got {tuple(logits.shape)}")
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, batch.answer_pos.to(logits.device) - 1]


def answer_accuracy(logits: Float[Tensor, "batch pos d_vocab"], batch: PointerBatch) -> float:
    """Fraction of rows whose greedy answer (argmax over the whole vocabulary) is right."""
    chosen = answer_logits(logits, batch)
    # argmax would pick a NaN's index and call it an answer.
    checks.check_tensor(chosen, "logits (at the answer positions)", finite=True)
    predicted = chosen.argmax(dim=-1).cpu()
    return (predicted == batch.answers.cpu()).float().mean().item()


def accuracy_by_hops(logits: Float[Tensor, "batch pos d_vocab"], batch: PointerBatch) -> dict[int, float]:
    """Answer accuracy separately for each hop count present in the batch."""
    chosen = answer_logits(logits, batch)
    checks.check_tensor(chosen, "logits (at the answer positions)", finite=True)
    correct = (chosen.argmax(dim=-1).cpu() == batch.answers.cpu()).float()
    hops = batch.hops.cpu()
    return {int(h): correct[hops == h].mean().item() for h in hops.unique().tolist()}


# --------------------------------------------------------------------------- methods and models
def parse_method(method: str) -> tuple[str, int]:
    """``"none"``, ``"pause"`` or ``"dense-<depth>"`` -> ``(filler, unroll depth)``."""
    checks.check_str(method, "method")
    if method in ("none", "pause"):
        return method, 0
    if isinstance(method, str) and method.startswith("dense-") and method[6:].isdigit() and int(method[6:]) >= 1:
        return "dense", int(method[6:])
    raise ValueError(f"method must be 'none', 'pause' or 'dense-<depth >= 1>', got {method!r}")


def pointer_model_config(spec: PointerSpec, d_model: int = 64, n_layers: int = 1, n_heads: int = 4, decoys: int = 0):
    """The small GPT the notebook trains: one layer by default, so one pass = one lookup."""
    from lib.core.model import GPTConfig

    checks.check_type(spec, "spec", PointerSpec)
    checks.check_int(d_model, "d_model", min=1)
    checks.check_int(n_layers, "n_layers", min=1)
    checks.check_int(n_heads, "n_heads", min=1)
    checks.check_int(decoys, "decoys", min=0)
    if d_model % n_heads:
        raise ValueError(f"d_model = {d_model} must be divisible by n_heads = {n_heads}")
    return GPTConfig(
        d_vocab=spec.vocab_size, n_ctx=spec.seq_len("dense", decoys), d_model=d_model, n_layers=n_layers,
        n_heads=n_heads, d_head=d_model // n_heads, d_mlp=4 * d_model,
    )


def carried_pointers(batch: PointerBatch) -> tuple[Tensor, Tensor, Tensor]:
    """For every useful dense position (rows, cols): the pointer the vector entering there should
    carry. The vector entering at x + i comes from position x + i - 1, which should hold the result
    of i lookups: f(x) for the first dense token, f(f(x)) for the second, ..."""
    checks.check_type(batch, "batch", PointerBatch)
    rows, cols = batch.useful.nonzero(as_tuple=True)
    offset = cols - batch.start_pos.to(cols.device)[rows]
    return rows, cols, batch.chain.to(cols.device)[rows, offset - 1]


def exact_depth(batch: PointerBatch) -> int:
    """Passes needed for an exact forward of a dense batch: its largest number of dense tokens in a row."""
    checks.check_type(batch, "batch", PointerBatch)
    return int((batch.tokens == batch.spec.dense_id).sum(dim=1).max())


def needed_dense_tokens(batch: PointerBatch) -> Tensor:
    """``[batch, pos]`` bool: useful dense tokens whose deletion changes the right answer.

    Deleting one of the h - 1 tokens after x leaves room for h - 1 lookups, giving f^(h-1)(x)
    instead of f^h(x). When the chain has reached a fixed point (f(y) = y) the two are equal, and
    the token, although placed where a lookup happens, is not needed for this question."""
    checks.check_type(batch, "batch", PointerBatch)
    rows = torch.arange(batch.tokens.shape[0], device=batch.tokens.device)
    h = batch.hops.to(rows.device)
    x = batch.tokens[rows, batch.start_pos.to(rows.device)]
    chain = batch.chain.to(rows.device)
    one_fewer = torch.where(h >= 2, chain[rows, (h - 2).clamp(min=0)], x)
    changes = one_fewer != chain[rows, h - 1]
    return batch.useful & changes[:, None]


# Training and evaluating models on the task runs the methods (dense unrolling): that lives in
# lib.experiments.pointer_runs (an experiment), so this task module imports no method.
