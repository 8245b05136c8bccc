"""Ctrl-C, SIGTERM and SIGHUP as contexts: the first signal asks politely, the second forces.

Rules for callers:

- Open it once, near the top of the program, in the main thread, and pass the context it yields
  down like any other::

      async def main() -> None:
          async with tc.open_signal_context(tc.background()) as ctx:
              await run_pipeline(ctx)

- First signal (of ``signals``, default SIGINT, SIGTERM and, where it exists, SIGHUP: the
  terminal closed or the SSH session dropped, which by default would kill the program at once
  and leave its process groups behind): the yielded *soft* context is
  cancelled with a :class:`SignalReceived` cause. Code winds down; ``cleanup()`` contexts still
  run their ``finally:`` work.
- Second signal: the *hard* twin is cancelled (cause ``SignalReceived(forced=True)``). Every
  :func:`with_grace` and :func:`cleanup` context derived below ends at once, so
  ``run_process`` SIGKILLs its process groups and cleanup is cut short.
- Third signal: trio's own handling, i.e. ``KeyboardInterrupt`` in the main task (for SIGTERM
  too), for a program that is stuck anyway.
- On exit the previous handlers are restored and both contexts are cancelled (their work is
  over), like ``stop()`` of Go's ``signal.NotifyContext``.

The contexts are cancelled in the trio thread (the handler only schedules that through trio's
token), so ``after_func`` callbacks and scopes see an ordinary ``cancel()``.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any, final

import trio

from ._core import HARD_KEY, CancelContext, Context, check_seconds, with_cancel, with_value

__all__ = ["SignalReceived", "open_signal_context"]

_Handler = Callable[[int, FrameType | None], Any] | int | None

DEFAULT_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""What :func:`open_signal_context` handles by default: SIGINT, SIGTERM and SIGHUP (POSIX)."""


@final
class SignalReceived(Exception):
    """The cause of a context cancelled by :func:`open_signal_context`.

    ``signum`` is the signal (a :class:`signal.Signals` when known); ``forced`` is False for the
    first, graceful cancellation and True for the second, forced one::

        if isinstance(tc.cause(ctx), tc.SignalReceived):
            return 130  # the shell convention for "stopped by Ctrl-C"
    """

    signum: int
    forced: bool

    def __init__(self, signum: int, *, forced: bool = False) -> None:
        try:
            known: int = signal.Signals(signum)
        except ValueError:
            known = signum
        name = known.name if isinstance(known, signal.Signals) else f"signal {signum}"
        what = "forcing stop" if forced else "stopping gracefully"
        super().__init__(f"received {name}: {what}")
        self.signum = known
        self.forced = forced

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.signum, self.forced))


def _rebuild(signum: int, forced: bool) -> SignalReceived:
    return SignalReceived(signum, forced=forced)


@asynccontextmanager
async def open_signal_context(
    parent: Context,
    signals: Iterable[int] = DEFAULT_SIGNALS,
    *,
    grace: float = math.inf,
) -> AsyncGenerator[CancelContext]:
    """Yield a context that the first of ``signals`` cancels gracefully, the second forcefully.

    ``signals`` defaults to SIGINT, SIGTERM and SIGHUP (SIGHUP is handled like SIGTERM).
    ``grace`` is the whole program's budget for a graceful stop: the hard twin also ends that
    many seconds after the first signal (default: only on the second), and every grace period
    started below is capped by it (see :func:`graceful`).

    Soft and hard are built as in ``docs/explanation/internals.md``:
    ``hard = with_cancel(parent)``, ``soft = with_cancel(with_value(hard, <key>, hard))``;
    :func:`hard_context` finds ``hard`` from ``soft`` or anything derived from it. A third
    signal raises ``KeyboardInterrupt`` through trio. Handlers are restored on exit, and both
    contexts are cancelled. Not re-entrant per signal: an inner ``open_signal_context`` takes
    the signals over until it
    exits::

        async with tc.open_signal_context(tc.background()) as ctx:
            await tc.run_process(ctx, ["make", "test"])

    Raises:
        RuntimeError: not in the main thread of a running trio loop (Python only delivers
            signals there).
        ValueError: ``signals`` is empty or names an invalid signal, or ``grace`` is
            negative or NaN.
    """
    budget = check_seconds(grace, "grace")
    wanted = tuple(dict.fromkeys(signal.Signals(s) for s in signals))
    if not wanted:
        raise ValueError("`signals` must name at least one signal")
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("open_signal_context() must be used in the main thread")
    try:
        token = trio.lowlevel.current_trio_token()
    except RuntimeError:
        raise RuntimeError("open_signal_context() needs a running trio loop") from None

    hard = with_cancel(parent)
    soft = with_cancel(with_value(hard, HARD_KEY, hard))
    previous: dict[int, _Handler] = {}
    count = 0

    def deliver(signum: int, n: int) -> None:  # in the trio thread
        if n == 1:
            soft.cancel(SignalReceived(signum))
            if budget != math.inf:
                hard.cancel_after(budget, cause=SignalReceived(signum, forced=True))
        else:
            hard.cancel(SignalReceived(signum, forced=True))

    def handler(signum: int, frame: FrameType | None) -> None:  # in the main thread, any time
        nonlocal count
        count += 1
        if count <= 2:
            try:
                token.run_sync_soon(deliver, signum, count)
            except trio.RunFinishedError:
                pass
            return
        ki: _Handler = previous.get(signal.SIGINT, signal.getsignal(signal.SIGINT))
        if callable(ki) and ki is not handler:
            ki(signal.SIGINT, frame)  # trio's KeyboardInterrupt handler: protection-aware
        else:
            raise KeyboardInterrupt

    try:
        for sig in wanted:
            previous[sig] = signal.signal(sig, handler)
        yield soft
    finally:
        for num, old in previous.items():
            signal.signal(num, old if old is not None else signal.SIG_DFL)
        hard.cancel()
