"""Helpers for the course "Beyond next-token prediction".

Each module holds one idea and is imported by the notebooks, e.g. ``from lib.model import GPT``.
Everything here is tested in ``tests/``.
"""
