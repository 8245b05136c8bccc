"""Task groups on contexts: :func:`open_group` (Go's errgroup), :func:`race`, stuck-task reports.

Rules for callers:

- Start the concurrent parts of one job in ``async with tc.open_group(ctx) as group:``; nothing
  started there outlives the block. Tasks run with ``tc.current()`` being ``group.context`` and
  are interrupted at their next checkpoint when it is done, even if they never look at ``done``.
- The first task that fails cancels ``group.context`` with its exception as cause. Once every
  task has finished, the block raises an ``ExceptionGroup`` (a ``BaseExceptionGroup`` if one is
  a ``KeyboardInterrupt``...) of the *real* errors. The cancellations the group itself caused
  are not errors: a sibling's ``trio.Cancelled`` or ``ContextCancelled`` (``DeadlineExceeded``)
  that is ``group.context.err`` is dropped. Any other exception is kept, a ``ContextError``
  included (a task's own ``with_timeout`` expiring is a real error).
- The body of the ``async with`` counts as a task: its exception cancels the group and is
  reported with the others.
- ``group.cancel()`` stops the group quietly: the block ends without raising, as trio's
  ``nursery.cancel_scope.cancel()`` does. When the *outer* ``ctx`` ends the group and that
  interrupted the body or a task, the block raises a fresh ``ctx.err`` (chained from its cause),
  as ``ctx.scope()`` does, so callers see why the work is incomplete. Cancelling the group never
  touches ``ctx``. After the block, ``group.context`` is cancelled (its work is over).
- A task must finish soon after its context is done. One still running ``grace`` seconds after
  the group's context was cancelled is reported on the ``trio_context`` logger with its name,
  stack and the context's ``explain()``; with ``strict=True`` it becomes a
  :class:`StuckTaskError` in the group's exceptions instead (raised once the task ends).

``group.cancel()``, ``group.context`` and ``group.statistics()`` are safe from any thread; the
rest belongs in the trio thread.

(Implementation: ``open_group`` returns a class-based async context manager, not an
``@asynccontextmanager`` generator, and the nursery's own cancel scope is the group's, tied to
``group.context``: one trio scope per group, not two. A group is opened per request, ``race``
is one.)
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import final

import trio

from .._core import (
    CancelContext,
    Context,
    ContextError,
    ScopeTie,
    check_parent,
    on_done,
    with_cancel,
)
from ._errors import exception_group
from ._group import DEFAULT_GRACE, TaskGroup
from ._spawn import check_options

__all__ = ["open_group"]


def open_group(
    ctx: Context,
    *,
    limit: int | None = None,
    grace: float | None = DEFAULT_GRACE,
    strict: bool = False,
    cancel_on_error: bool = True,
) -> GroupManager:
    """Open a task group bound to a ``with_cancel`` child of ``ctx`` (Go's errgroup on a
    trio nursery; see the module rules). At most ``limit`` tasks run at once, the
    rest wait in FIFO order. A task still running ``grace`` seconds after the group's context
    was cancelled is reported (None: never); ``strict=True`` raises :class:`StuckTaskError`.
    ``cancel_on_error=False`` is Go's zero ``Group``: a failing task does not cancel the
    others; every task runs to its end and the real errors are raised together at exit::

        async with tc.open_group(ctx, limit=4) as group:
            for url in urls:
                group.start_soon(fetch, url)

    Each ``async with`` opens a new group; use it in the trio thread.

    Raises:
        TypeError: ``ctx`` is not a context, or an option has the wrong type.
        ValueError: ``limit`` is below 1, ``grace`` negative or NaN.
        ExceptionGroup, BaseExceptionGroup: the real errors of the tasks and the body.
        ContextCancelled, DeadlineExceeded: the outer ``ctx`` ended and interrupted the work.
    """
    return GroupManager(ctx, limit, grace, strict, cancel_on_error)


@final
class GroupManager:
    """What :func:`open_group` returns: enter it once with ``async with``."""

    __slots__ = (
        "_cancel_on_error",
        "_ctx",
        "_grace",
        "_group",
        "_limit",
        "_nursery_cm",
        "_strict",
        "_tie",
    )

    def __init__(
        self,
        ctx: Context,
        limit: int | None,
        grace: float | None,
        strict: bool,
        cancel_on_error: bool,
    ) -> None:
        self._cancel_on_error = cancel_on_error
        self._ctx = ctx
        self._limit = limit
        self._grace = grace
        self._strict = strict
        self._group: TaskGroup | None = None

    async def __aenter__(self) -> TaskGroup:
        if self._group is not None:
            raise RuntimeError("this open_group() was already entered; call open_group() again")
        check_parent(self._ctx, "ctx")
        check_options(self._limit, self._grace, self._strict, self._cancel_on_error)
        gctx = with_cancel(self._ctx)
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        self._tie = ScopeTie(gctx, nursery.cancel_scope)
        group = self._group = TaskGroup(
            context=gctx,
            nursery=nursery,
            limit=self._limit,
            grace=self._grace,
            strict=self._strict,
        )
        group._outcome.cancel_on_error = self._cancel_on_error
        if self._grace is not None and self._grace != math.inf:
            on_done(gctx, group._on_cancelled)
        return group

    async def __aexit__(
        self,
        etype: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:  # not `bool`: type checkers would take every block for one that may
        # swallow exceptions (it swallows only the group's own cancellation)
        try:
            await self._exit(exc)
        except BaseException as raised:
            if raised is exc:
                return False  # the body's own exception: let Python re-raise it as it was
            raise
        return True  # the body's exception, if any, was the group's own cancellation

    async def _exit(self, exc: BaseException | None) -> None:
        """Apply the exit rules (``_group.py``): raise what the block raises, if anything."""
        group = self._group
        assert group is not None, "open_group() exited without being entered"
        gctx: CancelContext = group.context
        caught: ContextError | None = None
        try:
            try:
                try:
                    pending = _sort_body_error(group, exc)
                    if pending is None:
                        await self._nursery_cm.__aexit__(None, None, None)
                    else:
                        await self._nursery_cm.__aexit__(
                            type(pending), pending, pending.__traceback__
                        )
                        raise pending  # pragma: no cover - a nursery never swallows it
                finally:
                    interrupted = self._tie.untie()
                if interrupted:  # gctx's end interrupted the nursery: raise it, as scope() does
                    try:
                        gctx.check()
                    except ContextError as err:
                        caught = err
            except BaseException as error:  # trio's cancellation from outside, passing through
                if group._outcome.errors:
                    raise exception_group([*group._outcome.errors, error]) from None
                raise
        finally:
            group._close()
            outer = self._ctx.err is not None and gctx.err is self._ctx.err
            gctx.cancel()
        # ``caught`` is dropped before leaving: its traceback holds this frame (no cycle).
        try:
            if group._outcome.errors:
                raise exception_group(group._outcome.errors) from None
            if outer and (caught is not None or group._outcome.interrupted):
                if caught is not None:
                    raise caught
                gctx.check()
        finally:
            del caught


def _sort_body_error(group: TaskGroup, exc: BaseException | None) -> BaseException | None:
    """The body's exception, sorted as a task's is (see ``GroupErrors.sort``): the one that
    goes on into the nursery (None: none)."""
    try:
        if exc is None:
            return None
        rest = group._outcome.sort(exc)
        if rest is not None and rest is not exc:
            rest.__cause__ = None  # as ``raise rest from None`` in an ``except exc`` block
            rest.__context__ = exc
            rest.__suppress_context__ = True
        return rest
    finally:
        group._body_finished()
