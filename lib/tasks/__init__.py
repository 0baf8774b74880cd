"""The synthetic tasks the research notebooks train on, and the reference lines a run must beat.

``pointer_task`` (multi-hop pointer chasing, 05), ``path_star`` (the path-star graph, 07),
``references`` (chance, the 1/degree plateau, unigram and bigram lines). ``splits`` sends each
item to train / val / test by a hash of the item and counts test items seen in training;
``pointer_splits`` and ``path_star_splits`` sample each task from one split, with
out-of-distribution questions (deeper hops, longer arms). Imports: ``lib.core`` only."""
