"""The task group: :class:`TaskGroup` (its tasks, its statistics, the stuck-task watchdog) and
:class:`GroupStatistics`. ``open_group`` (``_open.py``) opens one; its docstring has the rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from contextlib import nullcontext
from typing import Any, Final, TypeVarTuple, final, overload

import attrs
import trio

from .._core import (
    CancelContext,
    Context,
    call_at,
    check_parent,
    current,
    logger,
    parent_of,
)
from ._errors import GroupErrors, Triage
from ._slots import Slots, Ticket
from ._spawn import (
    A1,
    A2,
    Startable0,
    Startable1,
    Startable2,
    Status,
    StatusT,
    check_afn,
    coroutine_of,
)
from ._stuck import stuck_report

__all__ = ["DEFAULT_GRACE", "GroupStatistics", "TaskGroup"]

PosArgsT = TypeVarTuple("PosArgsT")

DEFAULT_GRACE: Final = 5.0


@final
@attrs.frozen
class GroupStatistics:
    """A snapshot of a group: ``running`` tasks (started, not finished), ``waiting`` ones (queued
    for a slot under ``limit``), ``finished`` ones, ``failed`` (real errors recorded so far),
    the ``limit`` and whether the group's context is ``cancelled``."""

    running: int
    waiting: int
    finished: int
    failed: int
    limit: int | None
    cancelled: bool


@final
@attrs.define(eq=False, repr=False)
class TaskGroup:
    """A group of tasks bound to ``group.context``; made by :func:`open_group` only."""

    _context: CancelContext = attrs.field(alias="context")
    _nursery: trio.Nursery = attrs.field(alias="nursery")
    _limit: int | None = attrs.field(alias="limit")
    _grace: float | None = attrs.field(alias="grace")
    _strict: bool = attrs.field(alias="strict")
    _live: int = attrs.field(default=0, init=False)  # spawned tasks not finished (waiting too)
    _slots: Slots | None = attrs.field(init=False)
    _finished: int = attrs.field(default=0, init=False)
    _outcome: GroupErrors = attrs.field(init=False)  # real errors; own cancellation dropped
    _triage: Triage = attrs.field(init=False)  # sorts what each task raises
    _body_done: bool = attrs.field(default=False, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    _watching: bool = attrs.field(default=False, init=False)
    _disarm: Callable[[], None] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._slots = None if self._limit is None else Slots(self._limit)
        self._outcome = GroupErrors(context=self._context)
        self._triage = Triage(self._outcome)

    @property
    def context(self) -> CancelContext:
        """The group's context, a ``with_cancel`` child of the ``ctx`` given to ``open_group``
        (the same object every time; safe from any thread)."""
        return self._context

    def start_soon(
        self,
        afn: Callable[[*PosArgsT], Awaitable[object]],
        *args: *PosArgsT,
        name: object = None,
        context: Context | None = None,
    ) -> None:
        """Start ``afn(*args)`` in the group (under ``limit``: queue it, FIFO). ``name`` names
        the trio task (default: from ``afn``, as trio does). Each call starts one more task;
        call it in the trio thread (from the body, a task, or any task while the group is open)::

            group.start_soon(fetch, url, name=f"fetch {url}")

        ``context``: the task's own context, a descendant of ``group.context`` (``with_cancel``
        of it, say), to stop this one task without touching the others. The task runs under it
        (``tc.current()`` is ``context``) and ends quietly when it is done: cancelling it is not
        a task error. While the task waits for a slot, ``context`` ending takes it out of the
        queue at once, and it never starts; a ``context`` already done starts nothing::

            job = tc.with_cancel(group.context)
            group.start_soon(render, spec, context=job)
            job.cancel()  # only this task stops, queued or running

        Raises:
            TypeError: ``afn`` is not an async function (or is a coroutine object), or
                ``context`` is not a context.
            ValueError: ``context`` does not descend from ``group.context``.
            RuntimeError: the group is closed.
        """
        self._check_open()
        if context is not None:
            self._check_task_context(context)
        coro = coroutine_of(afn, args)
        if name is None:
            name = afn
        if self._context.err is not None or (context is not None and context.err is not None):
            coro.close()  # work is not started on a context that is already done
            return
        self._live += 1
        try:
            if self._limit is None and context is None and current() is self._context:
                self._nursery.start_soon(self._run, coro, name=name)
            else:
                ticket = self._slots.acquire() if self._slots is not None else None
                self._nursery.start_soon(self._run_slow, coro, ticket, context, name=name)
        except RuntimeError:
            self._live -= 1
            coro.close()
            raise RuntimeError("this group is closed: its tasks have all finished") from None

    @overload
    async def start(self, afn: Startable0[StatusT], /, *, name: object = None) -> StatusT: ...
    @overload
    async def start(
        self, afn: Startable1[A1, StatusT], a1: A1, /, *, name: object = None
    ) -> StatusT: ...
    @overload
    async def start(
        self, afn: Startable2[A1, A2, StatusT], a1: A1, a2: A2, /, *, name: object = None
    ) -> StatusT: ...
    @overload
    async def start(
        self, afn: Callable[..., Awaitable[object]], *args: object, name: object = None
    ) -> Any: ...
    async def start(
        self, afn: Callable[..., Awaitable[object]], *args: object, name: object = None
    ) -> Any:
        """Start ``afn(*args, task_status=...)`` in the group and return the value it passes to
        ``task_status.started()`` (trio's ``nursery.start``). Under ``limit`` it waits for a
        slot first. An exception before ``started()`` propagates here instead of to the group.
        Each call starts one more task; trio thread only. The result is typed from the
        function's ``task_status: trio.TaskStatus[T]`` (up to two positional arguments)::

            port = await group.start(serve, 0)

        Raises:
            TypeError: ``afn`` is not an async function.
            RuntimeError: the group is closed.
            ContextCancelled, DeadlineExceeded: the group's context ended before the task was
                ready. Anything ``afn`` raised before ``started()``.
        """
        self._check_open()
        check_afn(afn)
        if self._context.err is not None:
            await trio.lowlevel.checkpoint()
            self._context.check()
        return await self._nursery.start(
            self._run_started, afn, args, name=afn if name is None else name
        )

    async def go(
        self,
        afn: Callable[[*PosArgsT], Awaitable[object]],
        *args: *PosArgsT,
        name: object = None,
    ) -> None:
        """Start ``afn(*args)`` like :meth:`start_soon`, but under ``limit`` wait for a free
        slot first (FIFO with the queued tasks), as Go's ``errgroup.Go`` blocks: a producer
        that calls it in a loop never queues more than it can run. Without a limit it starts
        the task at once (a checkpoint). Trio thread only::

            for url in urls:
                await group.go(fetch, url)

        Raises:
            TypeError: ``afn`` is not an async function.
            RuntimeError: the group is closed.
            ContextCancelled, DeadlineExceeded: the group's context ended while waiting (a
                fresh copy of its err: raised from the body, the group drops it as its own).
        """
        self._check_open()
        check_afn(afn)
        slots = self._slots
        ticket = slots.acquire() if slots is not None else None
        try:
            with self._context.scope():  # the group ending interrupts the wait
                await trio.lowlevel.checkpoint()
                if slots is not None:
                    await slots.wait(ticket)
        except BaseException as exc:
            if slots is not None and slots.holds(ticket):
                slots.release()
            if isinstance(exc, trio.Cancelled) and self._context.err is not None:
                # The group's scope (its nursery's) caught the end, not this binding: say so.
                self._context.check()
            raise
        self._start_holding(afn, args, name)

    def try_start(
        self,
        afn: Callable[[*PosArgsT], Awaitable[object]],
        *args: *PosArgsT,
        name: object = None,
    ) -> bool:
        """Start ``afn(*args)`` only if it can run now (Go's ``TryGo``): return False, without
        calling ``afn``, when every slot under ``limit`` is taken (or tasks are queued) or the
        group's context is done. Trio thread only::

            if not group.try_start(fetch, url):
                backlog.append(url)

        Raises:
            TypeError: ``afn`` is not an async function.
            RuntimeError: the group is closed.
        """
        self._check_open()
        check_afn(afn)
        if self._context.err is not None:
            return False
        if self._slots is not None and not self._slots.try_acquire():
            return False
        self._start_holding(afn, args, name)
        return True

    def _start_holding(
        self, afn: Callable[..., Awaitable[object]], args: tuple[object, ...], name: object
    ) -> None:
        """Spawn a task that already holds a slot (if there is a limit)."""
        try:
            coro = coroutine_of(afn, args)
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise
        self._live += 1
        try:
            self._nursery.start_soon(
                self._run_slow, coro, None, None, name=afn if name is None else name
            )
        except RuntimeError:
            self._live -= 1
            coro.close()
            if self._slots is not None:
                self._slots.release()
            raise RuntimeError("this group is closed: its tasks have all finished") from None

    def cancel(self, cause: BaseException | None = None) -> None:
        """Cancel ``group.context`` (with ``cause``): every task is interrupted at its next
        checkpoint, waiting ones never start, and the block ends without raising (unless a task
        failed). Never touches the outer context. Idempotent (first call wins), safe from any
        thread::

            group.cancel()

        Raises:
            TypeError: ``cause`` is not an exception.
        """
        self._context.cancel(cause)

    def statistics(self) -> GroupStatistics:
        """A :class:`GroupStatistics` snapshot. Safe from any thread (values may be a step
        apart when read from another thread)::

            print(group.statistics().running)
        """
        waiting = 0 if self._slots is None else self._slots.waiting
        return GroupStatistics(
            running=self._live - waiting,
            waiting=waiting,
            finished=self._finished,
            failed=len(self._outcome.errors),
            limit=self._limit,
            cancelled=self._context.done.is_set(),
        )

    def __repr__(self) -> str:
        stats = self.statistics()
        parts = [
            f"<trio_context.TaskGroup at {id(self):#x}",
            "closed" if self._closed else "cancelled" if stats.cancelled else "active",
            f"{stats.running} running",
        ]
        if self._limit is not None:
            parts.append(f"{stats.waiting} waiting, limit {self._limit}")
        if stats.failed:
            parts.append(f"{stats.failed} failed")
        return ", ".join(parts) + ">"

    # -- tasks --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                "this group is closed: start tasks inside its 'async with' block or from its tasks"
            )

    async def _run(self, coro: Coroutine[Any, Any, object]) -> None:
        # The hot path: the task inherits the group's scope and current() from the caller.
        try:
            with self._triage:
                if self._context.err is not None:
                    coro.close()  # cancelled before trio ran it: it never starts
                    return
                await coro
        finally:
            self._task_done()

    def _check_task_context(self, context: object) -> None:
        check_parent(context, "context")
        assert isinstance(context, Context)
        ancestor: Context | None = context
        while ancestor is not None and ancestor is not self._context:
            ancestor = parent_of(ancestor)
        if ancestor is None:
            raise ValueError("`context` must be group.context or derived from it")

    async def _run_slow(
        self, coro: Coroutine[Any, Any, object], ticket: Ticket | None, own: Context | None
    ) -> None:
        slots = self._slots
        try:
            with self._triage:
                if slots is not None:
                    with own.move_on() if own is not None else nullcontext():
                        await slots.wait(ticket)  # its own context ending: it leaves the queue
                if self._context.done.is_set():
                    return  # done before it could run (or a slot came free too late)
                if own is not None:
                    if own.err is None:
                        with own.move_on():  # the task's own cancellation ends it quietly
                            await coro
                    if own.err is not None and own.err is self._context.err:
                        self._outcome.interrupted = True
                    return
                bound = current() is not self._context
                with self._context.scope() if bound else nullcontext():
                    await coro
        finally:
            coro.close()  # a task that never started must not warn "never awaited"
            if slots is not None and slots.holds(ticket):
                slots.release()
            self._task_done()

    async def _run_started(
        self,
        afn: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        status = Status(task_status)
        slots = self._slots
        ticket = slots.acquire() if slots is not None else None
        self._live += 1
        try:
            with self._context.scope():
                if slots is not None:
                    await slots.wait(ticket)
                    self._context.check()  # a slot came free but the group is cancelled
                await coroutine_of(afn, args, task_status=status)
        except BaseException:
            if not status.called:
                raise  # to the caller of start(), as trio does
            with self._triage:
                raise
        finally:
            if slots is not None and slots.holds(ticket):
                slots.release()
            self._task_done()

    def _task_done(self) -> None:
        self._live -= 1
        self._finished += 1

    def _body_finished(self) -> None:
        self._body_done = True

    # -- stuck-task watchdog --------------------------------------------------------------------

    def _on_cancelled(self) -> None:
        """Called at once (trio thread) when the group's context is done: arm the watchdog, a
        timer of the run's timer task (no task of its own), ``grace`` seconds from now."""
        if self._closed or self._watching or (self._live == 0 and self._body_done):
            return
        assert self._grace is not None
        self._watching = True
        self._disarm = call_at(trio.current_time() + self._grace, self)

    def _close(self) -> None:
        """The block is over: no more tasks, no watchdog."""
        self._closed = True
        if self._disarm is not None:
            self._disarm()

    def _on_timer(self, now: float) -> None:
        """The watchdog: report every task of the group still running (and the body)."""
        if self._closed or (self._live == 0 and self._body_done):
            return
        stuck = list(self._nursery.child_tasks)
        if not self._body_done:
            stuck.insert(0, self._nursery.parent_task)
        for task in stuck:
            self._report(task)

    def _report(self, task: trio.lowlevel.Task) -> None:
        assert self._grace is not None
        report = stuck_report(task, self._grace, self._context)
        if self._strict:
            self._outcome.errors.append(report)
        else:
            logger.warning("%s", report)
