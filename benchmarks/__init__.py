"""Benchmarks: plain scripts (``python benchmarks/NAME.py``). A package only so that type
checkers tell ``benchmarks/ci_runner.py`` apart from the ``examples/ci_runner`` package."""
