"""The synthetic tasks the research notebooks train on, and the reference lines a run must beat.

``pointer_task`` (multi-hop pointer chasing, 05), ``path_star`` (the path-star graph, 07),
``references`` (chance, the 1/degree plateau, unigram and bigram lines). Imports: ``lib.core`` only."""
