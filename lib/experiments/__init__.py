"""Runs that put the methods to work on the tasks, and the tools that store and check them.

``prepare`` (the shipped tokenizer and checkpoint), ``pretrained``, ``explorers`` and ``circuits``
(04b), ``pointer_runs`` (05), ``text_runs`` (08), ``thoughts_bench``, ``harness`` (the comparison of
08 and 09: tasks and arms in registries), ``stored_checks`` (the stored results against the code,
on any CPU), ``bench``. Imports: every layer below (``core``, ``tasks``, ``methods``)."""
