"""One harness comparing every method of the course on the same tasks, budgets and tuning.

    python -m lib.experiments.harness                                    # small: what notebook 08 reruns live
    python -m lib.experiments.harness --size medium --jobs 2 --json data/results/harness_medium.json
    python -m lib.experiments.harness --size full --device cuda --json data/results/harness_full.json
    python -m lib.experiments.harness --size medium --tasks pointer --methods dense_adaptive --jobs 2 --add --json data/results/harness_medium.json
    python -m lib.experiments.harness --size medium --tasks graph_reach_unseen --methods dense --lrs 3e-3 --jobs 2 --json data/results/harness_graph_dense_3e-3.json

Tasks (each run gives one number, measured on a *test* split no choice was made on):
- ``shakespeare``: Tiny Shakespeare, nats per character on the second half of the held-out text
  (the first half is the validation split the learning rate is chosen on); lower is better;
- ``pointer``: multi-hop pointer chasing (notebook 05), answer accuracy averaged over 1-3 hops;
- ``path_star``: the path-star graph task (notebook 07), whole-path accuracy in forward order;
- ``pointer_unseen`` and ``path_star_unseen``: the same two tasks on tables and graphs no training
  question used, with a deeper (or longer-armed) out-of-distribution column;
- ``graph_chain_unseen`` and ``graph_reach_unseen``: graph reachability on unseen graphs (which of
  two candidates the start node reaches), with one or two nodes per search frontier
  (:mod:`.graph_reach`), depths 1-3 trained and 4-5 deeper; baseline, pause, dense tokens, chain of
  thought, Coconut's curriculum and pause with it, and the looped blocks.

Methods (not every method applies to every task: :data:`TASK_METHODS`):
``baseline``; ``pause`` (fixed filler tokens, no vector); ``dense`` (the same places fed the
previous hidden state, unrolled to depth 2); ``looped`` (the baseline's block run 3 times, weights
tied: the passes of ``dense`` without its vector); ``deeper`` (3 narrower layers, no more
parameters); ``pause_deeper`` (pause tokens in that deeper model, where extra positions could
matter); ``encdec`` (the encoder-decoder alone); ``planning`` (the encoder-decoder plus the future
loss, notebook 07); ``planning_scored`` (the future loss only at positions whose next token is
scored); ``thoughts`` (learned thought insertion, notebook 06's recipe, thoughts only where the
task's fillers may go). Path-star also runs ``reversed`` (the baseline on reversed answers): a
reference, not a method.

The design notes' open questions (:data:`NEW_METHODS`, on pointer chasing and text;
path-star does not run them): ``dense_selected`` (dense tokens at random places, each step's
windows kept where one pass of candidate vectors helped most, trained with cross-entropy + 1 x
the dense-token loss, :mod:`lib.methods.dense_selection`), ``dense_selected_l0`` / ``dense_selected_l3``
(the same with lambda 0 / 3) and ``dense_selected_random`` (lambda 1 on windows kept at random:
the control that separates the selection from the loss); ``dense_adaptive`` (pointer only: the
model writes ``<|dense|>`` itself as often as scoring found useful, free generation at test,
:mod:`lib.methods.dense_emit`); ``dense_thoughts`` (the thoughts recipe with thoughts that carry the
previous hidden state, :mod:`lib.methods.dense_thoughts`). :data:`METHODS` is the original comparison
(notebook 08), :data:`ALL_METHODS` adds these and the literature's controls (:data:`CONTROLS`, on
the unseen tasks only): ``cot`` (the intermediate nodes written out as supervised tokens,
:mod:`lib.methods.chain_of_thought`), ``token_feedback`` (the dense slots fed the embedding of the
predicted token instead of the vector, :mod:`lib.methods.token_feedback`), ``mtp`` and
``teacherless`` (path-star: :mod:`lib.methods.multi_token`). Add them to a results file without rerunning the
rest with ``--add`` (see :func:`merge_results`).

A batch that writes ``--json FILE`` keeps every run in ``FILE.runs.jsonl`` as it finishes; after an
interruption, the same command with ``--resume`` makes only the runs it lacks (every run seeds
itself, so a kept run is the run it would make), and the provenance counts the runs resumed. A
batch longer than one sitting goes on in the next.

Budgets and tuning: within a task every method has the same parameter count (exactly, or up to a
few percent fewer for the encoder-decoders and the deeper GPT, whose widths are the widest that
fit), the same optimizer steps and the same real tokens per step; forward passes per step are
reported. Every arm, the baseline included, gets the same learning-rate sweep on one seed, chosen
on the validation split; the chosen rate then runs on every seed and is reported on the test split.

Verdicts come from :mod:`lib.core.stats` (complete separation over the seeds and a difference larger
than the task's minimum effect and the baseline's spread; Holm-adjusted p-values beside them),
and are given only when the task's baseline is past its reference line (:mod:`lib.tasks.references`):
below the bigram model on text, at the 1/degree plateau on path-star, at least 0.9 on 1-hop
pointer questions. Otherwise the table says "undertrained: no verdict".
"""

from lib.core.provenance import provenance

from .cli import main
from .parts import SELECT_POOL, SELECT_SPAN, SELECTED, thinker_eval_rank, widest_gpt_within
from .path_star import GRAPH_SEEDS as PATH_STAR_SEEDS
from .path_star import path_star_setup, with_fillers
from .pointer import ADAPTIVE_THRESHOLD, ENCDEC_WIDTH as POINTER_ENCDEC_WIDTH, FILLER as POINTER_FILLER
from .pointer import QUESTION_SEEDS as POINTER_SEEDS
from .pointer import pointer_deeper_config
from .protocol import harness_jobs, next_rate, run_harness, tune_and_run
from .registry import (
    ALL_METHODS, ARMS, CONTROLS, METHOD_NAMES, METHODS, NEW_METHODS, REFERENCE_RUNS, RUNNERS, TASK_INFO, TASK_METHODS,
    TASK_REGISTRY, TASKS, Arm, Task, arm_tables, check_run_args, reference_check, run_gate, task_references,
)
from .results import load_results, load_results_summary, merge_results, write_results
from .spec import (
    ALPHA, DEEP_LAYERS, FULL, LOOPS, MEDIUM, NOT_SIGNIFICANT, OPENING_STEPS, PLANNING, ROLES, SIZES, SMALL, THOUGHT_BUDGET,
    UNDERTRAINED, CellResult, Size, TaskInfo,
)
from .summary import final_runs, format_table, summarize, values, verdict_sentences
from .text import TextSplit, text_encdec_config, text_splits
