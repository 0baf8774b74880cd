"""The foundation (notebooks 01-04): what every later layer stands on.

``checks`` (argument checks, ``eval_mode``, atomic writes), ``paths``, ``data``, ``bpe`` (01),
``sampling`` (02), ``model`` (03), ``training`` and ``interp`` (04), ``plotting``, ``token_plot``,
``stats``, ``claims``, ``machine``, ``provenance``. Modules here import only each other."""
