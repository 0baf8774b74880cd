"""Helpers for the course "Beyond next-token prediction".

Each module holds one idea and is imported by the notebooks, e.g. ``from lib.model import GPT``.
Everything here is tested in ``tests/``. Layers, each importing only the ones above it, modules in
the order the course meets them:

- **foundation** (notebooks 01-04): ``checks`` (argument checks, ``eval_mode``, atomic writes),
  ``paths``, ``data``, ``bpe`` (01), ``sampling`` (02), ``model`` (03), ``training`` and
  ``interp`` (04), ``plotting``, ``token_plot``, ``stats``, ``claims``, ``machine``;
- **methods**: ``dense``, ``looped``, ``dense_selection`` and ``dense_emit`` (05), ``fillers``
  (pause/dense fillers in text), ``thoughts``, ``thought_training`` and ``dense_thoughts`` (06),
  ``future_loss`` and ``encdec`` (07);
- **tasks**: ``pointer_task`` (05), ``path_star`` (07), ``references`` (the line each task's
  runs must beat);
- **experiments**: ``prepare`` (the shipped tokenizer and checkpoint), ``pretrained``,
  ``pointer_runs`` (05), ``text_runs`` (08), ``thoughts_bench``, ``harness`` (08), ``stored_checks``
  (the stored results against the code, on any CPU), ``bench``;
- **exercises**: ``lib.exercises`` (checkers per notebook, the learner copies' generator).
"""

import warnings

# TransformerLens imports ``tqdm.auto``, which warns in every notebook that ipywidgets is missing.
# The course draws plain-text bars (``tqdm.tqdm``) on purpose, so that warning tells a learner nothing.
warnings.filterwarnings("ignore", message="IProgress not found")
