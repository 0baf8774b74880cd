"""The ideas the course builds, one module each.

``dense``, ``looped``, ``dense_selection`` and ``dense_emit`` (05, 09), ``fillers`` (pause and
dense fillers in text), ``thoughts``, ``thought_training`` and ``dense_thoughts`` (06),
``future_loss`` and ``encdec`` (07). Imports: ``lib.core`` and ``lib.tasks``."""
