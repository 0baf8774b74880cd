"""Helpers for the course "Beyond next-token prediction".

Each module holds one idea and is imported by the notebooks, e.g. ``from lib.model import GPT``.
Everything here is tested in ``tests/``.
"""

import warnings

# TransformerLens imports ``tqdm.auto``, which warns in every notebook that ipywidgets is missing.
# The course draws plain-text bars (``tqdm.tqdm``) on purpose, so that warning tells a learner nothing.
warnings.filterwarnings("ignore", message="IProgress not found")
