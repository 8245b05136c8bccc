"""``after_func``: run a callback soon after a context is done (Go's ``AfterFunc``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import trio

from ._callbacks import AfterFunc
from ._cancel import CancelContext
from ._common import _INF, _lock, trio_token_or_none
from ._context import Context, check_parent
from ._timers import Timed, timers

__all__ = ["after_func", "call_at", "on_done"]


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
    entry = AfterFunc(fn, trio_token_or_none(), direct=False)
    canceller = cast(CancelContext | None, ctx._canceller)
    if canceller is not None:
        _register(canceller, entry)

    def stop() -> bool:
        with _lock:
            if entry.state != AfterFunc.PENDING:
                return False
            entry.state = AfterFunc.STOPPED
            if canceller is not None and canceller._after is not None and entry in canceller._after:
                canceller._after.remove(entry)
        return True

    return stop


def on_done(ctx: Context, fn: Callable[[], object]) -> None:
    """The toolkit's hook: like :func:`after_func` without a ``stop()``, and ``fn`` is called
    *at once* by whatever ends the context when that runs in the registering run's trio
    thread (else through its token, as ``after_func`` does): no trip through trio's entry
    queue. So ``fn`` must be quick, must not block and must not raise (it is logged if it
    does): it may run inside a ``cancel()`` or a read of ``ctx.err`` that finds the deadline
    passed. Safe from any thread."""
    canceller = cast(CancelContext | None, ctx._canceller)
    if canceller is not None:  # else it is never done
        _register(canceller, AfterFunc(fn, trio_token_or_none(), direct=True))


def _register(canceller: CancelContext, entry: AfterFunc) -> None:
    """Keep ``entry`` on ``canceller`` until it is done (dispatch it now if it is already), and
    make sure a deadline fires it even if nobody looks."""
    with _lock:
        registered = canceller._err is None
        if registered:
            if canceller._after is None:
                canceller._after = []
            canceller._after.append(entry)
    if not registered:
        entry.dispatch()
    elif canceller._clock is not None and canceller._deadline != _INF:
        if canceller._poll() is None:
            arm_timer(canceller)


def call_at(when: float, target: Timed) -> Callable[[], None]:
    """The toolkit's hook: call ``target._on_timer(now)`` at trio time ``when`` from the run's
    timer task (it may return a later time to be called again). ``target`` is held weakly: one
    that is gone is skipped. Returns ``disarm()``, which forgets the call (and its memory) if
    it has not happened yet. Trio thread only."""
    run_timers = timers()
    entry = run_timers.add(when, target)
    return lambda: run_timers.disarm(entry)


def arm_timer(ctx: CancelContext) -> None:
    """Make sure ``ctx``'s deadline fires without anyone looking (any thread)."""
    target = ctx._deadline_owner if ctx._deadline_owner is not None else ctx
    when = target._deadline
    here = trio_token_or_none()
    if here is not None and here is target._token:
        timers().add(when, target)
    elif target._token is not None:
        try:
            target._token.run_sync_soon(lambda: timers().add(when, target))
        except trio.RunFinishedError:
            pass
