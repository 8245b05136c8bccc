"""What the core's modules share: the lock, the logger, and the checks of arguments.

Errors name the argument the caller passed (``seconds must be non-negative``), as trio's do.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Final

import trio

from .._trio_private import system_clock_offset

logger: Final = logging.getLogger("trio_context")

# Protects the "first cancel wins" transition and the lazy creation of per-context containers.
# Reentrant, so a signal handler that cancels while this thread holds it cannot deadlock.
_lock: Final = threading.RLock()

_INF: Final = math.inf


def trio_token_or_none() -> trio.lowlevel.TrioToken | None:
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None


def check_cause(cause: object) -> None:
    if cause is not None and not isinstance(cause, BaseException):
        raise TypeError(f"`cause` must be an exception or None, not {type(cause).__name__}")


def check_number(name: str, value: object) -> float:
    """A time in seconds on trio's clock: an int or float (not a bool), not NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"`{name}` must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if math.isnan(seconds):
        raise ValueError(f"`{name}` must not be NaN")
    return seconds


def check_seconds(value: object, name: str = "seconds") -> float:
    """A duration: :func:`check_number`, and not negative (``math.inf`` is allowed)."""
    seconds = check_number(name, value)
    if seconds < 0:
        raise ValueError(f"`{name}` must be non-negative, got {value!r}")
    return seconds


def clock_for(what: str) -> trio.abc.Clock:
    try:
        return trio.lowlevel.current_clock()
    except RuntimeError:
        raise RuntimeError(
            f"{what} needs a running trio loop (deadlines are on trio's clock); "
            "with_cancel() and with_value() do not"
        ) from None


# A translated deadline is moved this much later, so that rounding never makes the trio scope
# fire before the context's own clock says the deadline passed (a silently skipped body).
_SLACK: Final = 1e-6


def deadline_in(deadline: float, source: trio.abc.Clock, clock: trio.abc.Clock) -> float:
    """``deadline`` on clock ``source`` (another trio run's), as a time on ``clock``.

    trio's default clock reads ``offset + time.perf_counter()`` with a random offset per run,
    so two such clocks differ by the difference of their offsets.

    Raises:
        RuntimeError: either clock is not trio's ``SystemClock`` (a ``MockClock``): the two
            runs' times cannot be related.
    """
    if source is clock:
        return deadline
    src, dst = system_clock_offset(source), system_clock_offset(clock)
    if src is None or dst is None:
        which = type(source if src is None else clock).__name__
        raise RuntimeError(
            "this context's deadline was set in another trio run, and the clock of one of the "
            f"two runs is a {which}, not trio's SystemClock, so it cannot be translated to "
            "this run: make the context (or its deadline) inside this run"
        )
    return deadline - src + dst + _SLACK
