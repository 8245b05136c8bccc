"""``after_func``: run a callback soon after a context is done (Go's ``AfterFunc``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import trio

from ._base import Context, check_parent
from ._cancel import CancelContext
from ._common import _INF, _lock, logger, trio_token_or_none
from ._timers import timers

__all__ = ["after_func"]


class _AfterFunc:
    __slots__ = ("fn", "state", "token")

    PENDING: Final = 0
    STARTED: Final = 1
    STOPPED: Final = 2

    def __init__(self, fn: Callable[[], object], token: trio.lowlevel.TrioToken | None) -> None:
        self.fn = fn
        self.token = token
        self.state = self.PENDING

    def dispatch(self) -> None:
        with _lock:
            if self.state != self.PENDING:
                return
            self.state = self.STARTED
        if self.token is not None:
            try:
                self.token.run_sync_soon(self.call)
                return
            except trio.RunFinishedError:
                pass
        self.call()

    def call(self) -> None:
        try:
            self.fn()
        except Exception:
            logger.exception("after_func callback %r raised", self.fn)


def after_func(ctx: Context, fn: Callable[[], object]) -> Callable[[], bool]:
    """Arrange for ``fn()`` to be called once, soon after ``ctx`` is done (soon, if it already
    is). Returns ``stop``: ``stop()`` returns True if it prevented the call, False if the call
    already started or ``stop()`` was already called.

    ``fn`` runs in the trio thread of the run that registered it (through its token), so it may
    touch trio objects; registered outside trio, it runs in the thread that cancels. An
    exception from ``fn`` is logged on the ``trio_context`` logger. Safe from any thread::

        stop = tc.after_func(ctx, lambda: print("done"))

    Raises:
        TypeError: ``ctx`` is not a context or ``fn`` is not callable.
    """
    check_parent(ctx, "ctx")
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, not {type(fn).__name__}")
    entry = _AfterFunc(fn, trio_token_or_none())
    src = ctx._canceller()
    if src is not None:
        with _lock:
            registered = src._err is None
            if registered:
                if src._after is None:
                    src._after = []
                src._after.append(entry)
        if not registered:
            entry.dispatch()
        elif src._clock is not None and src._deadline != _INF:
            if src._poll() is None:
                arm_timer(src)

    def stop() -> bool:
        with _lock:
            if entry.state != _AfterFunc.PENDING:
                return False
            entry.state = _AfterFunc.STOPPED
            if src is not None and src._after is not None and entry in src._after:
                src._after.remove(entry)
        return True

    return stop


def arm_timer(ctx: CancelContext) -> None:
    """Make sure ``ctx``'s deadline fires without anyone looking (any thread)."""
    target = ctx._deadline_src if ctx._deadline_src is not None else ctx
    when = target._deadline
    here = trio_token_or_none()
    if here is not None and here is target._token:
        timers().add(when, target)
    elif target._token is not None:
        try:
            target._token.run_sync_soon(lambda: timers().add(when, target))
        except trio.RunFinishedError:
            pass
