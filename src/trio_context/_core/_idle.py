"""Idle deadlines: a context that ends when nothing has made progress for a while.

Rules for callers:

- Call ``ctx.touch()`` whenever the work makes progress (a line of output, a finished step). It
  is cheap enough for a hot loop and safe from any thread, so a worker thread's step loop
  touches directly.
- The context is an ordinary :class:`~trio_context.CancelContext` in every other way: bind it
  with ``scope()``, derive children from it, hand it to a group or ``run_process``.
- Its ``deadline`` is the *current* idle deadline (last touch + ``seconds``), still capped by the
  parent's; it moves later with every touch, so read it when you need it, don't keep it.

This module is part of the deadline machinery, so it implements the core's private timer hooks
(``_is_due``, ``_on_due``, ``_on_timer``) instead of using only the public API.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import final

import trio

from .._trio_private import system_clock_offset
from ._cancel import CancelContext, new_cancel
from ._common import check_cause, check_seconds, clock_for
from ._context import Context, check_parent
from ._timers import timers

__all__ = ["IdleContext", "IdleTimeout", "with_idle_timeout"]


class IdleTimeout(TimeoutError):
    """The cause of an idle context's :class:`~trio_context.DeadlineExceeded`: nothing
    touched it for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no progress for {seconds:g} s")
        self.seconds = seconds

    def __reduce__(self) -> tuple[type[IdleTimeout], tuple[float]]:
        return type(self), (self.seconds,)


@final
class IdleContext(CancelContext):
    """A :class:`~trio_context.CancelContext` that also ends when :meth:`touch` has not been
    called for ``idle_timeout`` seconds. Made by :func:`with_idle_timeout`."""

    __slots__ = ("_idle", "_idle_cause", "_last", "_now", "_offset")

    _idle: float  # seconds of silence allowed
    _idle_cause: BaseException | None
    _now: Callable[[], float]  # a raw time source; trio time = _now() + _offset
    _offset: float
    _last: float  # raw time of the last touch

    _moves = True  # children read the idle deadline through _follow

    @property
    def idle_timeout(self) -> float:
        """The seconds of silence after which the context ends."""
        return self._idle

    def touch(self) -> None:
        """Record progress: the idle deadline becomes now + ``idle_timeout``.

        Cheap (one clock read and one attribute store) and safe from any thread; touching a
        done context does nothing.
        """
        self._last = self._now()

    def _idle_deadline(self) -> float:
        return self._last + self._offset + self._idle

    def _current_deadline(self) -> float:
        return min(super()._current_deadline(), self._idle_deadline())

    def _is_due(self, now: float) -> bool:
        return super()._is_due(now) or now >= self._idle_deadline()

    def _on_due(self) -> None:
        assert self._clock is not None
        if super()._is_due(self._clock.current_time()):
            super()._on_due()
        else:
            self._expire(self._idle_deadline(), self._idle_cause or IdleTimeout(self._idle))

    def _expired_before(self, when: float | None) -> tuple[float, BaseException | None] | None:
        own = super()._expired_before(when)
        idle = self._idle_deadline()
        assert self._clock is not None
        if (self._clock.current_time() if when is None else when) >= idle and (
            own is None or idle < own[0]
        ):
            return idle, self._idle_cause or IdleTimeout(self._idle)
        return own

    def _on_timer(self, now: float) -> float | None:
        if self._err is not None:
            return None
        if self._is_due(now):
            self._on_due()
            return None
        return self._idle_deadline()


def with_idle_timeout(
    parent: Context, seconds: float, *, cause: BaseException | None = None
) -> IdleContext:
    """Return a child of ``parent`` that ends with :class:`~trio_context.DeadlineExceeded`
    when ``touch()`` has not been called for ``seconds`` (on trio's clock), its cause an
    :class:`IdleTimeout` (or ``cause``). It also ends with ``parent``, and at the parent's
    deadline when that comes first. The idle clock starts at creation::

        ctx = tc.with_idle_timeout(job_ctx, 600)  # "no output for 10 minutes"
        async for line in lines:
            ctx.touch()

    Raises:
        TypeError: ``parent`` is not a context, ``seconds`` is not a number, or ``cause`` is
            not an exception.
        ValueError: ``seconds`` is negative or NaN.
        RuntimeError: no trio loop is running.
    """
    check_parent(parent)
    seconds = check_seconds(seconds)
    check_cause(cause)
    clock = clock_for("with_idle_timeout()")
    ctx: IdleContext = new_cancel(IdleContext, parent, "with_idle_timeout", seconds)
    ctx._idle = seconds
    ctx._idle_cause = cause
    offset = system_clock_offset(clock)
    if offset is not None:
        ctx._now, ctx._offset = time.perf_counter, offset
    else:
        ctx._now, ctx._offset = clock.current_time, 0.0
    ctx._last = ctx._now()
    if ctx._clock is None:
        ctx._clock = clock
        ctx._token = trio.lowlevel.current_trio_token()
    if ctx._err is None:
        if seconds == 0:
            ctx._expire(ctx._idle_deadline(), cause or IdleTimeout(seconds))
        else:
            timers().add(ctx._idle_deadline(), ctx)
    return ctx
