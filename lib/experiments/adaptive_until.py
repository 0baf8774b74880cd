"""Does a model that writes its own dense tokens write as many as a question needs when nothing in
the prompt says how many? Pointer chasing until the first marked node (:mod:`lib.tasks.pointer_until`):
the lookups a question needs are in its table, not its prompt, so a count that follows them is read
off the model's own progress, not off a hop token.

Per seed: the adaptive model (:func:`lib.methods.dense_emit.train_adaptive`, up to ``max(BUDGETS)``
dense tokens) and a model per fixed budget, trained on training tables at 1..3 lookups, scored on
test tables (never trained) at 1..3 and at 4..5 lookups (never asked in training). The stored run::

    python -m lib.experiments.adaptive_until --json data/results/dense_adaptive_until.json
"""

from __future__ import annotations

import torch

from lib.core import checks
from lib.methods.dense_emit import adaptive_experiment
from lib.tasks.pointer_until import UntilSpec, sample_until

TASK = UntilSpec()  # 12 nodes, 2 marked, 1-3 lookups trained, 4-5 out of distribution
BUDGETS = (0, 2, 4)  # no dense token; what the deepest trained question needs; what the deepest OOD one needs
SEEDS = (0, 1, 2, 3, 4)
STEPS = 1500
QUESTION_SEED = 4321


def until_experiment(seeds: tuple[int, ...] = SEEDS, steps: int = STEPS, n_questions: int = 300, lr: float = 3e-3,
                     device: torch.device | str = "cpu", progress: bool = True) -> dict:
    """:func:`lib.methods.dense_emit.adaptive_experiment` on :data:`TASK`: training tables and
    lookups for training, test tables at every lookup count for scoring; ``settings`` also names the
    task and which lookup counts training asked."""
    def train(n, generator, hops):
        return sample_until(TASK, n, generator, "train", hops)

    def test(n, generator, hops):
        return sample_until(TASK, n, generator, "test", hops)

    out = adaptive_experiment(TASK.spec, seeds, steps, BUDGETS, lr=lr, n_questions=n_questions, question_seed=QUESTION_SEED,
                              device=device, progress=progress, train_questions=train, test_questions=test,
                              desc="until-marked experiment")
    out["settings"] |= {"task": "pointer_until", "n_nodes": TASK.n_nodes, "n_marked": TASK.n_marked,
                        "trained_hops": list(TASK.id_hops), "ood_hops": list(TASK.ood_hops)}
    return out


def count_by_hops(result: dict) -> dict:
    """Per seed and over seeds, from :func:`until_experiment`'s result: the dense tokens the adaptive
    model wrote per lookup count, whether they rise with the lookups at the trained counts and on
    to the deeper ones (each count above the one before), and how far they sit from the ``h - 1``
    a question of ``h`` lookups needs (mean absolute gap per hop)."""
    if not isinstance(result, dict) or not result.get("seeds"):
        raise ValueError("result must come from until_experiment (a dict with per-seed results)")

    def get(d, k):  # int keys fresh from the experiment, strings after a JSON round trip
        return d[k] if k in d else d[str(k)]

    trained = result["settings"]["trained_hops"]
    every = trained + result["settings"]["ood_hops"]
    per_seed = {}
    for seed, r in result["seeds"].items():
        written = {h: get(r["adaptive"], h)["dense"] for h in every}
        per_seed[int(seed)] = {
            "written": written,
            "accuracy": {h: get(r["adaptive"], h)["accuracy"] for h in every},
            "rises_trained": all(written[a] < written[b] for a, b in zip(trained, trained[1:])),
            "rises_ood": all(written[a] < written[b] for a, b in zip(every, every[1:])),
            "gap": {h: abs(written[h] - (h - 1)) for h in every},
        }
    n = len(per_seed)
    mean = {h: sum(s["written"][h] for s in per_seed.values()) / n for h in every}
    return {"per_seed": per_seed, "written": mean, "rises_trained": sum(s["rises_trained"] for s in per_seed.values()),
            "rises_ood": sum(s["rises_ood"] for s in per_seed.values()), "n": n, "trained_hops": trained,
            "ood_hops": result["settings"]["ood_hops"]}


def one_lookup_accuracy(hops: int) -> float:
    """What a model that does one lookup and then guesses scores at ``hops`` lookups: the answer at
    one lookup, one of the two marked nodes at random beyond (the reference a search must beat)."""
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
    print(f"count rises with the lookups on {table['rises_trained']}/{table['n']} seeds (trained), "
          f"{table['rises_ood']}/{table['n']} on to the deeper ones")
    if args.json:
        command = "python -m lib.experiments.adaptive_until " + " ".join(sys.argv[1:] if argv is None else argv)
        result["provenance"] = provenance(command, 1, 1, time.perf_counter() - start, "cpu")
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


__all__ = ["BUDGETS", "SEEDS", "STEPS", "TASK", "count_by_hops", "one_lookup_accuracy", "until_experiment"]


if __name__ == "__main__":
    raise SystemExit(main())
