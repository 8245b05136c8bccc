"""One test's wall-clock limits: which phase runs, and what to interrupt when its limit passes.

A :class:`TestGuard` follows a test through its phases (``enter("setup")``, ``"call"``,
``"teardown"``; ``finish()``) and arms a shared :class:`~._limits.Watchdog` for each. When a
limit passes, it interrupts what it can reach, from the watchdog thread:

- the body, bound to the test's context (``attach_context``): the context is cancelled with a
  :class:`~._limits.TimeLimitExceeded` cause, so the body stops at its next checkpoint and the
  report is ``ctx.explain()`` plus the stacks where it waited;
- async fixtures in a trio run the guard knows (``attach_run``, e.g. pytest-trio's, which sets
  fixtures up and tears them down inside the run): the stacks of every task are kept, then the
  run's fixture scope is cancelled;
- anything else (sync code, another event loop): where the main thread is stuck is written to
  stderr at once, and the phase fails when it ends.

If the phase is still running ``grace`` seconds after that (code that ignores cancellation or
blocks the trio thread), the stacks of every thread are written to stderr, so a CI log shows
where it hangs. ``stream`` replaces stderr (the pytest plugin passes a copy of the real stderr,
which its output capture does not swallow). Nothing here imports pytest.
"""

from __future__ import annotations

import faulthandler
import functools
import sys
import threading
import traceback
from typing import TextIO

import trio

from .._core import CancelContext
from ._leakcheck import all_tasks
from ._leakreport import format_stack, has_user_frames, task_stack
from ._limits import PhaseLimits, TimeLimitExceeded, Watchdog

__all__ = ["TestGuard"]


class TestGuard:
    """The wall-clock limits of one test; see the module docstring. Its methods may be
    called from any thread; ``enter``/``finish`` come from the thread that runs the test."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        watchdog: Watchdog,
        limits: PhaseLimits,
        *,
        grace: float = 2.0,
        stream: TextIO | None = None,
    ) -> None:
        self.limits = limits
        self.grace = grace
        self.stream = stream  # where stacks are written when a limit passes (sys.stderr)
        #: The limit that passed (None while none did); set by the watchdog thread.
        self.expired: TimeLimitExceeded | None = None
        #: The stacks where the phase was stuck when its limit passed ("" if not known).
        self.stuck = ""
        #: ``explain()`` of the test's context when the limit cancelled it outside the body.
        self.explained = ""
        #: Set by the test runner once the expiry has been reported (so it is reported once).
        self.reported = False
        self._watchdog = watchdog
        self._lock = threading.Lock()  # protects the fields below
        self._phase: str | None = None
        self._ctx: CancelContext | None = None
        self._run: tuple[trio.lowlevel.TrioToken, trio.CancelScope] | None = None

    @property
    def phase(self) -> str | None:
        """The phase being watched (None before ``enter`` and after ``finish``)."""
        return self._phase

    def enter(self, phase: str) -> None:
        """Start watching ``phase`` with its own limit. Entering the phase already watched
        does nothing (its time keeps running); nothing is armed once a limit has passed."""
        with self._lock:
            if phase == self._phase or self.expired is not None:
                return
            self._phase = phase
        self._watchdog.arm(self.limits.of(phase), functools.partial(self._expire, phase))

    def finish(self) -> None:
        """Stop watching. Idempotent."""
        with self._lock:
            self._phase = None
            self._ctx = None
            self._run = None
        self._watchdog.disarm()

    def attach_context(self, ctx: CancelContext | None) -> None:
        """The test's context, cancelled when the ``call`` limit passes (None: forget it)."""
        with self._lock:
            self._ctx = ctx

    def attach_run(self, scope: trio.CancelScope | None) -> None:
        """In a trio run: cancel ``scope`` (around the test's fixtures) when a ``setup`` or
        ``teardown`` limit passes, or, with None, forget the run (call it before it ends)."""
        run = None if scope is None else (trio.lowlevel.current_trio_token(), scope)
        with self._lock:
            self._run = run

    def report(self) -> str:
        """What to show for the limit that passed: why, ``explain()`` of the test's context
        when the limit cancelled it, and where the test was stuck. ``""`` if none passed."""
        exc = self.expired
        if exc is None:
            return ""
        lines = [exc.args[0]]
        if self.explained:
            lines.append(self.explained)
        if self.stuck:
            lines += ["where it was stuck when the limit passed:", self.stuck]
        return "\n".join(lines)

    # -- in the watchdog thread -----------------------------------------------------------

    def _expire(self, phase: str) -> None:
        seconds = self.limits.of(phase)
        assert seconds is not None
        exc = TimeLimitExceeded(phase, seconds, self.limits.source)
        with self._lock:
            if self._phase != phase:
                return  # the phase ended meanwhile
            self.expired = exc
            ctx, run = self._ctx, self._run
        self._watchdog.arm(self.grace, functools.partial(self._dump, phase))
        if phase == "call" and ctx is not None and not ctx.done.is_set():
            ctx.cancel(exc)  # the body's report says the rest
            return
        if run is not None:
            token, scope = run
            try:
                token.run_sync_soon(self._interrupt_run, exc, ctx, scope)
                return
            except trio.RunFinishedError:
                pass
        self.stuck = _main_thread_stack()
        stream = self.stream or sys.stderr
        stream.write(f"\ntrio_context: {exc}; it goes on until it ends\n{self.stuck}\n")
        stream.flush()

    def _interrupt_run(
        self, exc: TimeLimitExceeded, ctx: CancelContext | None, scope: trio.CancelScope
    ) -> None:
        # In the trio thread: keep the stacks first, cancelling unwinds them.
        stacks = [task_stack(task) for task in all_tasks()]
        self.stuck = "\n".join(
            f"  - #{n}:\n{format_stack(s, '      ')}"
            for n, s in enumerate((s for s in stacks if has_user_frames(s)), 1)
        )
        if ctx is not None and not ctx.done.is_set():
            ctx.cancel(exc)
            self.explained = ctx.explain()
        scope.cancel()

    def _dump(self, phase: str) -> None:
        with self._lock:
            if self._phase != phase:
                return
        stream = self.stream or sys.stderr
        stream.write(
            f"\ntrio_context: the test's {phase} is still running {self.grace:g} s after its "
            "wall-clock limit passed; the stacks of every thread:\n"
        )
        stream.flush()
        faulthandler.dump_traceback(stream, all_threads=True)


def _main_thread_stack() -> str:
    frame = sys._current_frames().get(threading.main_thread().ident or -1)
    if frame is None:
        return ""
    summary = traceback.StackSummary.extract(traceback.walk_stack(frame), limit=24)
    summary.reverse()
    return format_stack(summary, "      ")
