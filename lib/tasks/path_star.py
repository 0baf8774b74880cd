"""The path-star task (Bachmann & Nagarajan 2024, "The pitfalls of next-token prediction").

A star graph: a centre node with ``degree`` arms, each a chain of ``path_len - 1`` further nodes,
all with random distinct labels. The prompt lists the edges in random order, then the centre and
one leaf; the answer is the path from the centre to that leaf (``path_len`` nodes).

Sequence layout (one token per item):

    u1 v1 u2 v2 ... uE vE  QUERY  centre leaf  ANSWER  p1 p2 ... p_path_len

Trained with teacher forcing in this forward order, models are known to stall at about
1/degree accuracy: the first step (which arm?) is only learnable by planning backwards from the
leaf, and teacher forcing lets every later step copy the edge list instead (the "Clever Hans"
shortcut). With the answer written from the leaf back to the centre (``reverse=True``) each step
is a lookup and the task is learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from lib.core import checks


@dataclass(frozen=True)
class PathStarSpec:
    degree: int = 2
    path_len: int = 4  # nodes on the answer path, centre and leaf included
    n_nodes: int = 20  # labels are drawn from range(n_nodes)

    def __post_init__(self) -> None:
        for name in ("degree", "path_len", "n_nodes"):
            checks.check_int(getattr(self, name), f"PathStarSpec.{name}")
        if self.degree < 2:
            raise ValueError(f"degree must be >= 2 (one arm is no choice), got {self.degree}")
        if self.path_len < 2:
            raise ValueError(f"path_len must be >= 2, got {self.path_len}")
        if self.n_nodes < self.n_graph_nodes:
            raise ValueError(f"n_nodes = {self.n_nodes} is fewer than the {self.n_graph_nodes} nodes a graph needs")

    @property
    def n_graph_nodes(self) -> int:
        return 1 + self.degree * (self.path_len - 1)

    @property
    def n_edges(self) -> int:
        return self.degree * (self.path_len - 1)

    @property
    def query_id(self) -> int:
        return self.n_nodes

    @property
    def answer_id(self) -> int:
        return self.n_nodes + 1

    @property
    def vocab_size(self) -> int:
        return self.n_nodes + 2

    @property
    def prompt_len(self) -> int:
        """Tokens up to and including ANSWER."""
        return 2 * self.n_edges + 4

    @property
    def seq_len(self) -> int:
        return self.prompt_len + self.path_len


@dataclass
class PathStarBatch:
    tokens: Tensor  # [batch, seq_len] int64
    targets: Tensor  # [batch, seq_len]: the next token where it is part of the answer, else -100
    answers: Tensor  # [batch, path_len]: the path as it should be written (reversed if asked)
    spec: PathStarSpec
    reverse: bool

    def to(self, device) -> "PathStarBatch":
        """The same batch with ``tokens`` and ``targets`` on ``device`` (answers stay on the CPU
        for scoring)."""
        return PathStarBatch(self.tokens.to(device), self.targets.to(device), self.answers, self.spec, self.reverse)


def sample_path_star(spec: PathStarSpec, batch_size: int, generator: torch.Generator, reverse: bool = False) -> PathStarBatch:
    """``batch_size`` random graphs with their queries and answers."""
    checks.check_type(spec, "spec", PathStarSpec)
    checks.check_int(batch_size, "batch_size", min=1)
    checks.check_type(generator, "generator", torch.Generator)
    checks.check_bool(reverse, "reverse")
    # Distinct labels per graph: the first of a random permutation.
    labels = torch.rand(batch_size, spec.n_nodes, generator=generator).argsort(dim=1)[:, : spec.n_graph_nodes]
    order = torch.rand(batch_size, spec.n_edges, generator=generator).argsort(dim=1)
    target_arm = torch.randint(0, spec.degree, (batch_size,), generator=generator)
    return _assemble(spec, labels, order, target_arm, reverse)


def star_edges(spec: PathStarSpec, labels: Int[Tensor, "batch n_graph_nodes"]) -> Int[Tensor, "batch n_edges 2"]:
    """The edges of the stars whose labels are ``labels`` (centre first, then each arm's chain in
    turn), pointing away from the centre, arm by arm: (centre, first node of each arm), then
    consecutive nodes along each arm."""
    checks.check_type(spec, "spec", PathStarSpec)
    checks.check_tensor(labels, "labels", shape=(None, spec.n_graph_nodes), dtype="int")
    batch_size, d, L = labels.shape[0], spec.degree, spec.path_len
    centre = labels[:, 0]
    arms = labels[:, 1:].view(batch_size, d, L - 1)  # arms[b, a] = the chain after the centre
    starts = torch.cat([centre[:, None, None].expand(-1, d, 1), arms[:, :, :-1]], dim=2)  # [b, d, L-1]
    return torch.stack([starts, arms], dim=-1).view(batch_size, spec.n_edges, 2)


def _assemble(
    spec: PathStarSpec,
    labels: Int[Tensor, "batch n_graph_nodes"],
    order: Int[Tensor, "batch n_edges"],
    target_arm: Int[Tensor, " batch"],
    reverse: bool,
) -> PathStarBatch:
    """Lay out graphs already drawn: their labels, the order their edges are listed in and the
    arm asked for (shared by :func:`sample_path_star` and :mod:`lib.tasks.path_star_splits`)."""
    batch_size, d, L = labels.shape[0], spec.degree, spec.path_len
    centre = labels[:, 0]
    arms = labels[:, 1:].view(batch_size, d, L - 1)
    edges = star_edges(spec, labels).gather(1, order[:, :, None].expand(-1, -1, 2))
    path = torch.cat([centre[:, None], arms[torch.arange(batch_size), target_arm]], dim=1)  # [b, L]
    leaf = path[:, -1]
    answers = path.flip(1) if reverse else path
    tokens = torch.cat(
        [
            edges.reshape(batch_size, -1),
            torch.full((batch_size, 1), spec.query_id),
            centre[:, None],
            leaf[:, None],
            torch.full((batch_size, 1), spec.answer_id),
            answers,
        ],
        dim=1,
    )
    targets = torch.full_like(tokens, -100)
    # Position i predicts token i + 1: the answer tokens are predicted from positions prompt_len - 1 onward.
    targets[:, spec.prompt_len - 1 : -1] = answers
    return PathStarBatch(tokens, targets, answers, spec, reverse)


def path_accuracy(predicted: Tensor, batch: PathStarBatch) -> float:
    """Fraction of graphs whose whole answer path was predicted exactly."""
    checks.check_type(batch, "batch", PathStarBatch)
    checks.check_tensor(predicted, "predicted", dtype="int")
    if predicted.shape != batch.answers.shape:
        raise ValueError(f"predicted paths must have shape {tuple(batch.answers.shape)}, got {tuple(predicted.shape)}")
    return (predicted == batch.answers).all(dim=1).float().mean().item()


@torch.no_grad()
def greedy_answers(model, batch: PathStarBatch, use_kv_cache: bool = True) -> Tensor:
    """Decode each answer greedily from the prompt (no teacher forcing): ``[batch, path_len]``.
    ``use_kv_cache=False`` reruns the whole prefix each step (for models without a cache)."""
    from lib.core.sampling import generate

    if not isinstance(batch, PathStarBatch):
        raise TypeError(f"batch must be a PathStarBatch, got {type(batch).__name__}")
    checks.check_bool(use_kv_cache, "use_kv_cache")
    prompt = batch.tokens[:, : batch.spec.prompt_len]
    out = generate(model, prompt, batch.spec.path_len, temperature=0, seed=None, use_kv_cache=use_kv_cache)
    return out[:, batch.spec.prompt_len :].cpu()


def teacher_forced_loss(model, batch: PathStarBatch) -> Tensor:
    """Cross-entropy on the answer tokens only, every earlier answer token given (teacher
    forcing): the ``loss_fn`` for :func:`lib.core.training.train` on path-star batches."""
    if not isinstance(batch, PathStarBatch):
        raise TypeError(f"batch must be a PathStarBatch, got {type(batch).__name__}")
    return model(batch.tokens, return_type="loss", targets=batch.targets)


@torch.no_grad()
def teacher_forced_accuracy(model, batch: PathStarBatch) -> Tensor:
    """Per answer position, the fraction of graphs whose next token is predicted right when the
    true earlier answer tokens are given: ``[path_len]``. Shows which step of the path fails
    (in forward order, the step after the centre)."""
    if not isinstance(batch, PathStarBatch):
        raise TypeError(f"batch must be a PathStarBatch, got {type(batch).__name__}")
    device = checks.model_device(model)
    with checks.eval_mode(model):
        logits = model(batch.tokens.to(device))
    start = batch.spec.prompt_len - 1
    predicted = logits[:, start : start + batch.spec.path_len].argmax(dim=-1).cpu()
    return (predicted == batch.answers).float().mean(dim=0)
