"""Reference lines: what a run must beat before its verdict means anything.

A comparison between two models that have learned nothing says nothing about the methods. Each
task of the harness therefore has a reference computed here, on the very rows the models are
scored on:

- text: a **unigram** and a **bigram** model of the training tokens (add-k smoothing, k chosen on
  the validation rows), scored on exactly the (previous, next) token pairs a model is scored on:
  a transformer that does not beat the bigram line has learned little beyond which token tends to
  follow which;
- path-star: **1/degree**, the plateau of forward-order teacher forcing (pick an arm at random,
  then copy edges: Bachmann & Nagarajan 2024), and the reversed-order baseline (a run, in
  :mod:`lib.experiments.harness`), which shows the task itself is learnable at this size;
- pointer chasing: **chance**, 1/n_nodes for every hop count.

:func:`path_star_forward_references` re-derives the path-star lines for any degree and arm length
(the graph-split size of :mod:`lib.tasks.path_star_splits`, in and out of distribution).
"""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from lib.core import checks


def ngram_nats_per_token(
    train: Int[Tensor, " n_train"],
    windows: Int[Tensor, "n_windows pos"],
    d_vocab: int,
    order: int,
    k: float,
) -> float:
    """Mean nats per token of an add-``k`` unigram (``order=1``) or bigram (``order=2``) model
    counted on ``train``, over every token of ``windows`` after the first (the first is context
    only, as for the transformers)."""
    checks.check_int(d_vocab, "d_vocab", min=2)
    checks.check_token_ids(train, "train", d_vocab, ndim=1)
    checks.check_token_ids(windows, "windows", d_vocab, ndim=2)
    checks.check_choice(order, "order (1: unigram, 2: bigram)", (1, 2))
    checks.check_float(k, "k", positive=True)
    if windows.shape[1] < 2 or len(train) < 2:
        raise ValueError("windows need at least 2 positions and train at least 2 tokens")
    prev, nxt = windows[:, :-1].flatten(), windows[:, 1:].flatten()
    if order == 1:
        counts = torch.bincount(train, minlength=d_vocab).double() + k
        logp = counts.log() - counts.sum().log()
        return float(-logp[nxt].mean())
    pair = torch.bincount(train[:-1] * d_vocab + train[1:], minlength=d_vocab * d_vocab).double().view(d_vocab, d_vocab)
    pair += k
    logp = pair[prev, nxt].log() - pair[prev].sum(-1).log()
    return float(-logp.mean())


def text_references(
    train: Int[Tensor, " n_train"],
    val_windows: Int[Tensor, "n pos"],
    test_windows: Int[Tensor, "m pos"],
    d_vocab: int,
    ks: Sequence[float] = (1.0, 0.1, 0.01, 0.001),
) -> dict[str, float]:
    """Unigram and bigram nats per token on ``test_windows``, each with the ``k`` that scored best
    on ``val_windows``; also the chosen ``k`` of each."""
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Sequence):
        raise TypeError(f"ks must be a sequence of smoothing constants, got {type(ks).__name__}")
    for k in ks:
        checks.check_float(k, "ks (each constant)", positive=True)
    if not ks:
        raise ValueError("ks must name at least one smoothing constant")
    out: dict[str, float] = {}
    for order, name in ((1, "unigram"), (2, "bigram")):
        best_k = min(ks, key=lambda k: ngram_nats_per_token(train, val_windows, d_vocab, order, k))
        out[f"{name}_nats_per_token"] = ngram_nats_per_token(train, test_windows, d_vocab, order, best_k)
        out[f"{name}_k"] = float(best_k)
    return out


def path_star_plateau(degree: int) -> float:
    """Whole-path accuracy of "choose an arm at random, then follow it": 1/degree."""
    checks.check_int(degree, "degree", min=2)
    return 1.0 / degree


def path_star_forward_references(degree: int, path_len: int) -> dict:
    """The reference lines of a path-star size (any label count), re-derived for ``path_len >= 3``.

    Forward order (centre ... leaf), a model that has learned everything except which arm to take:
    the centre is copied from the prompt; the node after it is one of ``degree`` arm starts, and
    nothing before it in the answer says which; every later node is the one successor of the node
    before it in the edge list (each non-centre node has one outgoing edge), which teacher forcing
    hands over. So only the first step after the centre is uncertain, and whole-path accuracy of
    "pick an arm at random, then follow it" is 1/degree at every arm length and label count.
    Teacher-forced accuracy per answer position: 1, 1/degree, then 1. With ``path_len = 2`` the
    arm is the leaf itself, which the prompt names: no choice, and no plateau (refused here).

    Reversed order (leaf ... centre): every step is the one predecessor of the node before it (a
    lookup), so the task is determined, ceiling 1.0: a reversed run that reaches it shows the size
    is learnable by the model, and is the reference a forward arm is read against.
    """
    checks.check_int(degree, "degree", min=2)
    checks.check_int(path_len, "path_len", min=3)
    return {
        "forward_plateau": 1.0 / degree,
        "forward_plateau_by_position": [1.0, 1.0 / degree] + [1.0] * (path_len - 2),
        "reversed_ceiling": 1.0,
        "reversed_by_position": [1.0] * path_len,
    }


def pointer_chance(n_nodes: int) -> float:
    """Accuracy of a uniform guess among the nodes: 1/n_nodes, for every hop count."""
    checks.check_int(n_nodes, "n_nodes", min=2)
    return 1.0 / n_nodes


__all__ = ["ngram_nats_per_token", "path_star_forward_references", "path_star_plateau", "pointer_chance", "pointer_shortcut_lines",
           "text_references"]


def pointer_shortcut_lines(batches: dict[int, "PointerBatch"]) -> dict[int, dict[str, float]]:  # noqa: F821
    """Per hop count, what two answers that do no chasing score on these questions: the start
    node itself (``"start"``: right whenever ``f^h(x) = x``, e.g. ``x`` on a cycle whose length
    divides ``h``: 2 / n at 2 and 3 hops of a random table) and one lookup (``"one_lookup"``:
    ``f(x)``, right at 1 hop and whenever ``f^h(x) = f(x)``). An arm near these lines beyond one
    hop has learned a shortcut, not the chase; ``1 / n`` (chance) sits below them."""
    from lib.tasks.pointer_task import PointerBatch

    if not isinstance(batches, dict) or not batches:
        raise TypeError("batches must map hop counts to PointerBatch")
    out = {}
    for h, b in batches.items():
        checks.check_type(b, f"batches[{h}]", PointerBatch)
        rows = torch.arange(b.tokens.shape[0], device=b.tokens.device)
        x = b.tokens[rows, b.start_pos.to(rows.device)]
        out[h] = {"start": (b.answers == x).float().mean().item(), "one_lookup": (b.answers == b.chain[:, 0]).float().mean().item()}
    return out
