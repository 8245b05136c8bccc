"""``--log-dir DIR``: every step's whole output, one file per step, whatever the screen shows.

Rules for callers: make one :class:`StepLogs` per run with a folder that exists; call
:meth:`StepLogs.open` when a step starts, :meth:`StepLogs.write` for each line and
:meth:`StepLogs.close` when it ends, all from the trio thread. A file is named after the step's
place in the pipeline and its name (``03-unit-tests.log``, characters a file name cannot hold
become ``_``); stdout and stderr lines are interleaved as they came, stderr ones marked
``[err] ``. A step that runs again (a retry) appends to its file. A file that cannot be written
(disk full) is dropped with one line on stderr; the job goes on.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TextIO

from .pipeline import Pipeline, Step
from .terminal import emit

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def log_name(index: int, count: int, name: str) -> str:
    """Return the file name of step number ``index`` (0-based) of ``count``: ``03-build.log``."""
    width = max(2, len(str(count)))
    return f"{index + 1:0{width}d}-{_UNSAFE.sub('_', name).strip('._') or 'step'}.log"


class StepLogs:
    """The log files of one run, in ``folder`` (see the module rules)."""

    def __init__(self, folder: Path, pipeline: Pipeline) -> None:
        count = len(pipeline.steps)
        self.paths = {
            step.name: folder / log_name(index, count, step.name)
            for index, step in enumerate(pipeline.steps)
        }
        self.files: dict[str, TextIO] = {}
        self.started: set[str] = set()

    def open(self, step: Step) -> None:
        """Open the step's file: truncated the first time, appended to after that."""
        path = self.paths[step.name]
        again = step.name in self.started
        self.started.add(step.name)
        try:
            if again:
                self.files[step.name] = path.open("a", encoding="utf-8", errors="replace")
            else:
                self.files[step.name] = path.open("w", encoding="utf-8", errors="replace")
        except OSError as exc:
            self.drop(step.name, exc)

    def write(self, name: str, stream: str, line: str) -> None:
        """Append one line of the step's output (no-op when its file was dropped)."""
        file = self.files.get(name)
        if file is None:
            return
        try:
            file.write(("[err] " if stream == "stderr" else "") + line + "\n")
        except OSError as exc:
            self.drop(name, exc)

    def close(self, name: str) -> None:
        """Close the step's file (idempotent)."""
        file = self.files.pop(name, None)
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                self.drop(name, exc)

    def drop(self, name: str, exc: OSError) -> None:
        file = self.files.pop(name, None)
        if file is not None:
            try:
                file.close()
            except OSError:
                pass
        emit(sys.stderr, f"ci_runner: step {name!r}: log file not kept: {exc}\n")
