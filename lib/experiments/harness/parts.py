"""Pieces several task runners share: the deeper control's width, the thinker's evaluation rank,
and the window selection of the ``dense_selected`` arms."""

from __future__ import annotations

from dataclasses import replace

import torch

SELECT_POOL = 2  # dense_selected: candidate windows drawn per kept window
SELECT_SPAN = 4  # the dense-token loss scores this many tokens after each dense token
# dense_selected: random dense places, the windows where they helped kept, lam = 1 on the dense-token
# loss; _l0 / _l3: lam = 0 / 3; _random: the same lam = 1 on windows kept at random (the control
# that separates the selection from the loss). Values: (lam, how windows are kept).
SELECTED: dict[str, tuple[float, str]] = {"dense_selected": (1.0, "top"), "dense_selected_l0": (0.0, "top"),
                                           "dense_selected_l3": (3.0, "top"), "dense_selected_random": (1.0, "random")}
# The same four on text, with the selection started after a warm-up: the stored dense_selected runs
# scored windows from step 0, with a model whose scores are noise (notebook 05 shows it). On text the
# dense-token loss weighs the tokens after a dense token again, so lam can change what is learned; on
# pointer chasing every scored answer follows a dense token and the loss is (1 + lam) x the cross-entropy.
WARM_SELECTED: dict[str, tuple[float, str]] = {"selected_warm": (1.0, "top"), "selected_warm_l0": (0.0, "top"),
                                                "selected_warm_l3": (3.0, "top"), "selected_warm_random": (1.0, "random")}
SELECT_WARMUP = 0.25  # the fraction of the steps before selection starts
PROBE_WINDOWS = 256  # fixed candidate windows whose gains are compared across training


def thinker_eval_rank(model, tokens, lengths, thought_id: int, thoughts_per_row: float, first_gap: int = 1) -> int:
    """The rank threshold at which the trained thinker places about as many thoughts as its
    survivors had on training rows (notebook 06's calibration), counted over the gaps where a
    thought may go. It need not carry over to test rows: both rates are stored per run."""
    from lib.methods.thought_training import calibrate_max_rank

    gaps = float((lengths - first_gap).clamp(min=1).float().mean())
    rate = min(max(thoughts_per_row / gaps, 1e-3), 1.0)
    return calibrate_max_rank(model, tokens[:512], lengths[:512], thought_id, rate, first_gap=first_gap)


def widest_gpt_within(base, n_layers: int, budget: int, n_heads: int = 4):
    """The widest GPT with ``n_layers`` blocks (width a multiple of ``n_heads``, MLP 4x) whose
    parameter count is at most ``budget``: the deeper control at matched parameters."""
    from lib.core.model import GPT
    from lib.methods.encdec import _count_params

    best = None
    for d in range(n_heads, base.d_model + 1, n_heads):
        cfg = replace(base, d_model=d, n_layers=n_layers, n_heads=n_heads, d_head=d // n_heads, d_mlp=4 * d)
        if _count_params(GPT, cfg) <= budget:
            best = cfg
    if best is None:
        raise ValueError(f"no {n_layers}-layer GPT fits {budget} parameters")
    return best


def selection_batches(draw, n_keep: int, mode: str, model, dense_id: int, log: dict, warmup: int = 0,
                      probe: tuple | None = None):
    """``step -> (tokens, targets)``: ``draw(step)`` gives candidate rows with random dense tokens
    and their targets; the ``n_keep`` kept are the top gains, or random ones (the control).

    ``warmup``: steps before the selection starts; until then rows are kept at random, as the
    control keeps them (a model at step 0 scores windows by noise). ``probe``: ``(tokens,
    targets)`` of fixed candidate windows, whose gains are logged at step 0 and at step ``warmup``
    (``log["probe_gains"]``) so that :func:`probe_information` can ask whether they predict the
    gains of the trained model."""
    from lib.methods.dense_selection import select_rows, selection_gains

    gen = torch.Generator().manual_seed(4321)

    def fn(step: int):
        if probe is not None and step in (0, warmup):
            log.setdefault("probe_gains", {})[step] = selection_gains(model, *probe, dense_id).tolist()
        tokens, targets = draw(step)
        if mode == "top" and step >= warmup:
            gains = selection_gains(model, tokens, targets, dense_id)
            keep = select_rows(gains, n_keep, "top")
            log["gain_all"].append(float(gains.mean()))
            log["gain_kept"].append(float(gains[keep].mean()))
        else:
            keep = select_rows(torch.zeros(tokens.shape[0]), n_keep, "random", gen)
        return tokens[keep.to(tokens.device)], targets[keep.to(tokens.device)]

    return fn


def probe_information(log: dict, final_gains: list[float], warmup: int) -> dict:
    """Do a model's window scores carry information? The rank correlation of the probe windows'
    gains at step 0 and at the warm-up's end with their gains under the trained model: scores that
    pick the windows the trained model would pick correlate; scores of noise do not."""
    from lib.core.stats import rank_correlation

    gains = log.get("probe_gains", {})
    out = {"probe_windows": len(final_gains), "warmup_steps": warmup,
           "probe_mean_gain": {"start": sum(gains[0]) / len(gains[0]), "end": sum(final_gains) / len(final_gains)}}
    out["probe_rank_corr_with_end"] = {"start": rank_correlation(gains[0], final_gains)}
    if warmup in gains:
        out["probe_mean_gain"]["warmup"] = sum(gains[warmup]) / len(gains[warmup])
        out["probe_rank_corr_with_end"]["warmup"] = rank_correlation(gains[warmup], final_gains)
    return out


def selection_extra(log: dict, lam: float, mode: str) -> dict:
    extra = {"lam": lam, "selection": mode, "pool": SELECT_POOL, "span": SELECT_SPAN}
    if log["gain_all"]:
        extra["mean_gain_all"] = sum(log["gain_all"]) / len(log["gain_all"])
        extra["mean_gain_kept"] = sum(log["gain_kept"]) / len(log["gain_kept"])
    return extra
