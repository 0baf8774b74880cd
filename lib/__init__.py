"""Helpers for the course "Beyond next-token prediction".

Each layer is a folder; each module in it holds one idea and is imported by the notebooks, e.g.
``from lib.core.model import GPT`` or ``from lib.methods.dense import unrolled_forward``. Everything
here is tested in ``tests/``. The layers, each importing only the ones before it (checked by
``tests/test_layers.py``):

- ``lib.core``: the foundation (notebooks 01-04): checks, paths, data, BPE, sampling, the model,
  training, hooks, plots, statistics, claims, the machine, provenance;
- ``lib.tasks``: pointer chasing (05), path-star (07) and the reference lines each task's runs must beat;
- ``lib.methods``: dense tokens, looped blocks, fillers, thought insertion, dense thoughts,
  selection, emission (05, 06, 09), the future loss and the encoder-decoder (07);
- ``lib.experiments``: the shipped assets, pretrained models, explorers, the runs of 05 and 08,
  the harness (a package: tasks and arms in registries), stored-result checks, benchmarks;
- ``lib.exercises``: checkers per notebook and the learner copies' generator.
"""

import warnings

# TransformerLens imports ``tqdm.auto``, which warns in every notebook that ipywidgets is missing.
# The course draws plain-text bars (``tqdm.tqdm``) on purpose, so that warning tells a learner nothing.
warnings.filterwarnings("ignore", message="IProgress not found")
