"""Does a model that writes its own dense tokens write as many as a question needs when nothing in
the prompt says how many? Pointer chasing until the first marked node (:mod:`lib.tasks.pointer_until`):
the lookups a question needs are in its table, not its prompt, and every table has the same shape
at every lookup count, so a count that follows the lookups is read off the model's own progress.

Per seed: the adaptive model (:func:`lib.methods.dense_emit.train_adaptive`, up to
:data:`MAX_DENSE` dense tokens, more than any question needs, so "unsure: write the most" is not
"write what the deepest question needs"), the control taught the same counts shuffled across
questions, and a model per fixed budget; trained on training tables at 1..2 lookups, scored on
test tables (never trained) at 1..2 and at 3 lookups (never asked in training). A budget counts
as enough where the answer's probability reaches :data:`THRESHOLD`, well above the 0.5 a guess
between the two marked nodes gives. The stored run::

    python -m lib.experiments.adaptive_until --json data/results/dense_adaptive_until.json
"""

from __future__ import annotations

import math

import torch

from lib.core import checks
from lib.methods.dense_emit import adaptive_experiment
from lib.tasks.pointer_until import UntilSpec, sample_until

# 2 lanes of 4 unmarked nodes (10 nodes), 1-2 lookups trained, 3 out of distribution. Measured on
# seed 0 (not stored): 12 nodes (lanes of 5, 1-3 lookups) learned nothing in 3,000 steps at 1e-3 or
# 3e-3 (every dense budget answered one marked node whatever the question); at 10 nodes and 1e-3
# the fixed budgets learn the trained lookups in 2,000 steps (0, 1, 2 dense tokens: 1.000 / 0.987,
# 1.000 / 1.000, 0.987 / 0.750; all at chance on the never-trained third), but the adaptive model's
# teacher (1,000 steps of mixed budgets) learned nothing, so it wrote the most, 4, on every question.
# And no dense token is needed for 2 lookups: the marked labels are the same in every table, so one
# pass can look forward from x (f(x)) and back from each marked node (the position holding it) and
# meet in the middle. The count a question needs is then about half its lookups, and at 1-2 trained
# lookups none: the next design names the marked nodes in the prompt, per table, and trains deeper.
TASK = UntilSpec()
BUDGETS = (0, 1, 2)  # one lookup; what the deepest trained question needs; what the deeper one needs
MAX_DENSE = 4  # the adaptive model's most: two more than any question needs
THRESHOLD = 0.9
SEEDS = (0, 1, 2, 3, 4)
STEPS = 2000
LR = 1e-3
QUESTION_SEED = 4321


def until_experiment(seeds: tuple[int, ...] = SEEDS, steps: int = STEPS, n_questions: int = 300, lr: float = LR,
                     device: torch.device | str = "cpu", progress: bool = True) -> dict:
    """:func:`lib.methods.dense_emit.adaptive_experiment` on :data:`TASK` with the shuffled-count
    control: training tables and lookups for training, test tables at every lookup count for
    scoring; ``settings`` also names the task and which lookup counts training asked."""
    def train(n, generator, hops):
        return sample_until(TASK, n, generator, "train", hops)

    def test(n, generator, hops):
        return sample_until(TASK, n, generator, "test", hops)

    out = adaptive_experiment(TASK.spec, seeds, steps, BUDGETS, lr=lr, n_questions=n_questions, question_seed=QUESTION_SEED,
                              device=device, progress=progress, train_questions=train, test_questions=test,
                              desc="until-marked experiment", threshold=THRESHOLD, max_dense=MAX_DENSE,
                              shuffled_control=True)
    out["settings"] |= {"task": "pointer_until", "n_nodes": TASK.n_nodes, "n_marked": TASK.n_marked,
                        "trained_hops": list(TASK.id_hops), "ood_hops": list(TASK.ood_hops)}
    return out


def _get(d: dict, k):  # int keys fresh from the experiment, strings after a JSON round trip
    return d[k] if k in d else d[str(k)]


def written_mean_and_error(scored: dict, n_questions: int) -> tuple[float, float]:
    """The mean dense tokens written over one hop count's questions and its standard error, from the
    histogram :func:`lib.methods.dense_emit.adaptive_accuracy` stores (``dense_hist``)."""
    checks.check_int(n_questions, "n_questions", min=2)
    hist = scored["dense_hist"]
    mean = sum(k * f for k, f in enumerate(hist))
    var = sum(f * (k - mean) ** 2 for k, f in enumerate(hist)) * n_questions / (n_questions - 1)
    return mean, math.sqrt(var / n_questions)


def count_by_hops(result: dict, arm: str = "adaptive") -> dict:
    """Per seed and over seeds, from :func:`until_experiment`'s result, for ``arm`` (``"adaptive"``
    or the ``"shuffled"`` control): the dense tokens written per lookup count, the share written at
    the most allowed, whether they rise with the lookups (each count's mean above the one before by
    more than two standard errors of the difference) at the trained counts and on to the deeper
    ones, and the gap to the ``h - 1`` a question of ``h`` lookups needs."""
    if not isinstance(result, dict) or not result.get("seeds") or "settings" not in result:
        raise ValueError("result must come from until_experiment (a dict with settings and per-seed results)")
    checks.check_choice(arm, "arm", ("adaptive", "shuffled"))
    settings = result["settings"]
    n_questions = settings["n_questions"]
    trained = settings["trained_hops"]
    every = trained + settings["ood_hops"]

    def rises(stats, hops):
        return all(stats[b][0] - stats[a][0] > 2 * math.hypot(stats[a][1], stats[b][1]) for a, b in zip(hops, hops[1:]))

    per_seed = {}
    for seed, r in result["seeds"].items():
        scored = {h: _get(r[arm], h) for h in every}
        stats = {h: written_mean_and_error(scored[h], n_questions) for h in every}
        per_seed[int(seed)] = {
            "written": {h: stats[h][0] for h in every}, "error": {h: stats[h][1] for h in every},
            "at_most": {h: scored[h]["dense_hist"][-1] for h in every},
            "accuracy": {h: scored[h]["accuracy"] for h in every},
            "rises_trained": rises(stats, trained), "rises_ood": rises(stats, every),
            "gap": {h: abs(stats[h][0] - (h - 1)) for h in every},
        }
    n = len(per_seed)
    mean = {h: sum(s["written"][h] for s in per_seed.values()) / n for h in every}
    return {"per_seed": per_seed, "written": mean, "rises_trained": sum(s["rises_trained"] for s in per_seed.values()),
            "rises_ood": sum(s["rises_ood"] for s in per_seed.values()), "n": n, "trained_hops": trained,
            "ood_hops": settings["ood_hops"]}


def one_lookup_accuracy(hops: int) -> float:
    """What a model that does one lookup and then guesses scores at ``hops`` lookups: the answer at
    one lookup, one of the marked nodes at random beyond (the reference a search must beat)."""
    checks.check_int(hops, "hops", min=1)
    return 1.0 if hops == 1 else 1 / TASK.n_marked


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import sys
    import time
    from pathlib import Path

    from lib.core.provenance import provenance
    from lib.core.training import make_reproducible

    parser = argparse.ArgumentParser(description="dense tokens the model emits where the prompt does not give the count")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    make_reproducible(seed=0, threads=1)
    start = time.perf_counter()
    result = until_experiment(tuple(args.seeds), args.steps)
    table = count_by_hops(result)
    for h, w in table["written"].items():
        acc = sum(s["accuracy"][h] for s in table["per_seed"].values()) / table["n"]
        print(f"{h} lookups{' (OOD)' if h in table['ood_hops'] else ''}: adaptive accuracy {acc:.3f}, dense written {w:.2f} "
              f"(needed {h - 1})")
    control = count_by_hops(result, "shuffled")
    print(f"count rises with the lookups on {table['rises_trained']}/{table['n']} seeds (trained), "
          f"{table['rises_ood']}/{table['n']} on to the deeper ones; the shuffled-count control on "
          f"{control['rises_trained']}/{control['n']} and {control['rises_ood']}/{control['n']}")
    if args.json:
        command = "python -m lib.experiments.adaptive_until " + " ".join(sys.argv[1:] if argv is None else argv)
        result["provenance"] = provenance(command, 1, 1, time.perf_counter() - start, "cpu")
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


__all__ = ["BUDGETS", "LR", "MAX_DENSE", "SEEDS", "STEPS", "TASK", "THRESHOLD", "count_by_hops", "one_lookup_accuracy",
           "until_experiment", "written_mean_and_error"]


if __name__ == "__main__":
    raise SystemExit(main())
