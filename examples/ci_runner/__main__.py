"""Entry point: ``python examples/ci_runner PIPELINE.toml [--json FILE] [--dry-run]``."""

import sys
from pathlib import Path

if not __package__:
    # Run as `python examples/ci_runner`: Python put this folder first on sys.path. Put its parent
    # there instead, so the modules import as the package `ci_runner` (and never shadow others).
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from ci_runner.cli import main

sys.exit(main())
