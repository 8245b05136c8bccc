"""Entry point: ``python examples/jobs demo`` or ``python examples/jobs serve --port N``."""

import sys
from pathlib import Path

if not __package__:
    # Run as `python examples/jobs`: Python put this folder first on sys.path. Put its parent
    # there instead, so the modules import as the package `jobs` (and never shadow others).
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from jobs.cli import main

sys.exit(main())
