"""An example CI step runner built on trio_context.

Run it from the repository root::

    python examples/ci_runner PIPELINE.toml [--json FILE] [--dry-run] [--max-lines N]
                                            [--max-parallel N] [--log-dir DIR]

Read it top to bottom: ``model.py`` (the pipeline every front end compiles to),
``pipeline.py`` (the TOML format and its checks, with ``source_map.py`` for line numbers),
``runner.py`` (the contexts and the executor), ``command.py`` (one run of a step's command),
``results.py`` (how steps end, in words), ``display.py`` and ``terminal.py`` (live view and
plain lines), ``report.py`` (summary table, ``--json``, ``--dry-run``) and ``cli.py``
(arguments, signals, exit codes). The README lists the rest.
"""
