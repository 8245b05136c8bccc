"""An example CI step runner built on trio_context.

Run it from the repository root::

    python examples/ci_runner PIPELINE.toml [--json FILE] [--dry-run] [--max-lines N]

Read it top to bottom: ``pipeline.py`` (the file format, its checks and the plan, with
``source_map.py`` for line numbers), ``runner.py`` (the contexts and the executor),
``display.py`` (live view and plain lines), ``report.py`` (summary table, ``--json``,
``--dry-run``) and ``cli.py`` (arguments, signals, exit codes).
"""
