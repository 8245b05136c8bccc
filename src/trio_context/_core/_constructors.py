"""Contexts: a deadline, values, a cancel cause and a ``done`` event that travel with the work.

Rules for callers (the same as Go's ``context`` package):

- Pass a context explicitly, as the first argument of the functions that need it, named ``ctx``.
  Don't keep one in an object that outlives the work it belongs to.
- Every :class:`CancelContext` you make should be cancelled when its work is over; ``with ctx:``
  does it for you. A context that is dropped without ``cancel()`` costs nothing afterwards
  (parents hold children weakly), but cancelling says "this work is finished" to everything
  below it.
- Code that can wait, waits on *either* its result *or* ``ctx.done``: run it inside
  ``with ctx.scope():`` (or ``await ctx.run(afn)``) and trio interrupts it at its next
  checkpoint when the context is done. Code that cannot be interrupted (a worker thread)
  polls ``ctx.check()``.
- Values are for request-scoped data that crosses API boundaries (a request id, a tenant),
  not for optional parameters. Use keys that cannot collide (an object of your own).

Everything here is safe to read from any thread; ``cancel()`` may be called from any thread.
Deadlines are on the trio clock of the run that made them (``trio.current_time()``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import trio

from .._trio_private import run_clock_and_token
from ._after import after_func
from ._cancel import CancelContext, new_cancel
from ._common import check_cause, check_number, check_seconds, clock_for, deadline_in
from ._context import Context, _new, background, check_parent, current, todo
from ._scope import Done
from ._values import derive

__all__ = [
    "CancelContext",
    "Context",
    "Done",
    "after_func",
    "background",
    "cause",
    "current",
    "todo",
    "with_cancel",
    "with_deadline",
    "with_timeout",
    "with_value",
    "without_cancel",
]


def cause(ctx: Context) -> BaseException | None:
    """Same as ``ctx.cause`` (Go's ``context.Cause``)."""
    check_parent(ctx, "ctx")
    return ctx.cause


def with_cancel(parent: Context) -> CancelContext:
    """Return a child of ``parent`` that can be cancelled (Go's ``WithCancel``).

    It is done when ``cancel()`` is called on it or when ``parent`` is done, whichever comes
    first; cancelling it never touches ``parent``. Works without a running trio loop::

        with tc.with_cancel(parent) as ctx:
            await work(ctx)

    Raises:
        TypeError: ``parent`` is not a context.
    """
    if not isinstance(parent, Context):  # pyright: ignore[reportUnnecessaryIsInstance]
        check_parent(parent)  # raises
    ctx: CancelContext = new_cancel(CancelContext, parent, "with_cancel")
    return ctx


def with_deadline(
    parent: Context, deadline: float, *, cause: BaseException | None = None
) -> CancelContext:
    """Return a child of ``parent`` that ends with :class:`DeadlineExceeded` (cause ``cause``
    or the err itself) at ``deadline`` on trio's clock, unless ``parent``'s deadline is earlier
    or equal: then it ends when the parent does, with the parent's err and cause. A deadline
    already past gives a context that is done at once.

    Raises:
        TypeError: ``parent`` is not a context, or ``deadline`` is not a number.
        ValueError: ``deadline`` is NaN.
        RuntimeError: no trio loop is running.
    """
    check_parent(parent)
    deadline = check_number("deadline", deadline)
    check_cause(cause)
    run = run_clock_and_token()
    if run is None:
        clock_for("with_deadline()")  # raises
        raise AssertionError("unreachable")  # pragma: no cover
    return _with_deadline(parent, deadline, cause, "with_deadline", deadline, run)


def _with_deadline(
    parent: Context,
    deadline: float,
    cause: BaseException | None,
    kind: str,
    label_arg: object,
    run: tuple[trio.abc.Clock, trio.lowlevel.TrioToken],
    now: float | None = None,
) -> CancelContext:
    ctx: CancelContext = new_cancel(CancelContext, parent, kind, label_arg)
    inherited = ctx._deadline
    if ctx._clock is not None and ctx._clock is not run[0] and inherited != math.inf:
        inherited = deadline_in(inherited, ctx._clock, run[0])  # set in another run
    if deadline < inherited:
        clock, token = run
        ctx._deadline = deadline
        ctx._deadline_owner = None  # its own (a reference to itself would be a cycle)
        ctx._clock = clock
        ctx._token = token
        if ctx._err is None:
            ctx._cause = cause
            if deadline <= (clock.current_time() if now is None else now):
                ctx._expire()
    return ctx


def with_timeout(
    parent: Context, seconds: float, *, cause: BaseException | None = None
) -> CancelContext:
    """Return ``with_deadline(parent, trio.current_time() + seconds, cause=cause)``.

    Raises:
        TypeError: ``parent`` is not a context, or ``seconds`` is not a number.
        ValueError: ``seconds`` is negative or NaN.
        RuntimeError: no trio loop is running.
    """
    # The checks inlined for the common case: with_timeout() is on every request's path.
    if not isinstance(parent, Context):  # pyright: ignore[reportUnnecessaryIsInstance]
        check_parent(parent)  # raises
    if type(seconds) is int:
        seconds = float(seconds)
    if type(seconds) is not float or not seconds >= 0:  # NaN fails >= 0
        seconds = check_seconds(seconds)
    if cause is not None:
        check_cause(cause)
    run = run_clock_and_token()
    if run is None:
        clock_for("with_timeout()")  # raises
        raise AssertionError("unreachable")  # pragma: no cover
    now = run[0].current_time()
    return _with_deadline(parent, now + seconds, cause, "with_timeout", seconds, run, now)


def with_value(parent: Context, key: Hashable, value: Any) -> Context:
    """Return a child of ``parent`` where ``value(key)`` is ``value``; everything else
    (deadline, cancellation) is the parent's. Deriving costs constant memory and lookups
    constant time at any depth (see ``_values.py``); keep keys few all the same, as Go
    advises: below 16 keys a lookup is one dict access.

    Raises:
        TypeError: ``parent`` is not a context, or ``key`` is None or unhashable.
    """
    check_parent(parent)
    if key is None:
        raise TypeError("`key` must not be None")
    try:
        hash(key)
    except TypeError:
        raise TypeError(f"`key` must be hashable, not {type(key).__name__}") from None
    values, vpos = derive(parent._values, parent._vpos, key, value)
    ctx: Context = _new(Context, parent, "with_value", key, parent._canceller, values, vpos)
    return ctx


def without_cancel(parent: Context) -> Context:
    """Return a child of ``parent`` that keeps its values but is never cancelled and has no
    deadline (Go's ``WithoutCancel``): for work that must outlive the request, such as cleanup.

    Binding it, or any context derived from it (``cleanup()`` contexts are), *shields* the body
    from enclosing trio cancellation, like ``trio.CancelScope(shield=True)``: it runs even in a
    ``finally:`` inside a cancelled block. Give it a deadline (``with_timeout(without_cancel(ctx),
    s)`` or :func:`cleanup`) so the shield is bounded.

    Raises:
        TypeError: ``parent`` is not a context.
    """
    check_parent(parent)
    ctx: Context = _new(Context, parent, "without_cancel", None, None, parent._values, parent._vpos)
    ctx._shield = True
    return ctx
