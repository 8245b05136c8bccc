"""Writing to a terminal or a pipe that may go away, and text that must not drive the terminal.

Rules for callers: write through :func:`emit` (never ``print``) so that a closed reader
(``| head``, a ``| cat`` killed by the same Ctrl-C, a closed terminal) never stops the run:
the first failed write points the stream at the null device and says so with ``False``; later
writes are silently dropped. Pass text that comes from a step through :func:`neutralise` before it
reaches a terminal. Both are pure functions of their arguments, safe from any thread.
"""

from __future__ import annotations

import os
import re
from typing import TextIO

# ESC [ params intermediates final (CSI), ESC ] ... BEL/ST (OSC), ESC P/X/^/_ ... ST (strings),
# then any other two-byte escape, then the C0 and C1 control characters that are left.
_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def neutralise(line: str) -> str:
    """Return what a line of step output should show on a terminal, with nothing that moves the
    cursor, clears the screen, sets the title or colours what follows.

    A carriage return (a progress bar redrawing itself) keeps the last non-empty part, as the
    terminal would have shown it at the end; tabs become spaces; escape sequences and other
    control characters are removed::

        neutralise("\\x1b[2Jdone")       == "done"
        neutralise("10%\\r50%\\r100%\\r") == "100%"
    """
    if "\r" in line:
        parts = [part for part in line.split("\r") if part]
        line = parts[-1] if parts else ""
    if "\t" in line:
        line = line.expandtabs(8)
    return _SEQUENCES.sub("", line)


def emit(out: TextIO, text: str) -> bool:
    """Write ``text`` to ``out`` and flush; return False (and silence ``out``) when the reader
    is gone (``BrokenPipeError``, ``EIO`` of a closed terminal, any other ``OSError``)."""
    try:
        out.write(text)
        out.flush()
    except OSError:
        silence(out)
        return False
    return True


def silence(out: TextIO) -> None:
    """Point ``out``'s file descriptor at the null device, so that buffered text and later
    writes (Python's own flush at exit included) go nowhere instead of raising. Idempotent."""
    try:
        fd = out.fileno()
    except (OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)
    try:
        out.flush()
    except (OSError, ValueError):
        pass
