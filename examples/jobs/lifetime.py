"""The queue's lifetime: :func:`open_job_queue`, the block a :class:`JobQueue` belongs to.

Like a nursery: leaving the block stops taking jobs and waits for every submitted one (queued
ones included); an exception out of the block, or ``ctx`` being done, destroys the queue first.
The jobs run as tasks of one ``tc.open_group(ctx, limit=limit)``, held open by a task of this
block for as long as the queue takes jobs.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import asynccontextmanager

import trio

import trio_context as tc

from .jobqueue import JobQueue
from .model import QueueClosed
from .records import check_count, check_memory, check_timeout
from .work import WORK, Work


@asynccontextmanager
async def open_job_queue(
    ctx: tc.Context,
    *,
    limit: int,
    work: Mapping[str, Work] | None = None,
    cache_size: int = 32,
    keep_finished: int = 100,
    grace: float = 5.0,
    memory_limit: int | None = None,
    max_queued: int = 1000,
    escalate_after: float | None = None,
    new_id: Callable[[], str] | None = None,
) -> AsyncGenerator[JobQueue]:
    """Open a job queue that runs at most ``limit`` jobs at once, under ``ctx``.

    ``work`` maps a spec's ``kind`` to the function that runs it (default: ``work.WORK``, the
    async, thread and process kinds). ``cache_size`` results are kept (least recently used
    first out; 0 turns the cache off), and the ``keep_finished`` newest finished jobs. ``grace``
    is how long a worker process may take to stop after SIGTERM before it gets SIGKILL.
    ``memory_limit`` (bytes) bounds every ``"process"`` job's worker tree (a job may ask for
    less); one stopped for memory is retried once in a fresh worker, then the job fails.
    ``max_queued`` jobs may wait for a slot (``submit`` raises :class:`QueueFull` beyond).
    ``escalate_after``: a safe cancel that has not stopped the job after that many seconds
    becomes a cancel now (None: it waits for the next step boundary however long it takes).
    ``new_id()`` makes job ids (default ``job-1``, ``job-2``...; a server passes unguessable
    ones).

    Leaving the block takes no more jobs and waits for every submitted one; an exception, or
    ``ctx`` being done, destroys the queue first. Either way no task, thread or process of the
    queue is left when the block is over.

    Raises:
        ValueError: ``limit`` is not a positive int, or a bad ``cache_size``/``keep_finished``/
            ``memory_limit``/``max_queued``. SpecError: a bad ``escalate_after``.
    """
    check_count("limit", limit, 1)
    check_memory("memory_limit", memory_limit)
    check_count("cache_size", cache_size, 0)
    check_count("keep_finished", keep_finished, 0)
    check_count("max_queued", max_queued, 0)
    if escalate_after is not None:
        check_timeout("escalate_after", escalate_after)
    counter = itertools.count(1)
    intake = tc.with_cancel(ctx)
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        group: tc.TaskGroup = await nursery.start(_job_group, ctx, intake, limit, grace)
        queue = JobQueue(
            group,
            intake,
            work=WORK if work is None else work,
            cache_size=cache_size,
            keep_finished=keep_finished,
            grace=grace,
            memory_limit=memory_limit,
            max_queued=max_queued,
            escalate_after=escalate_after,
            new_id=new_id or (lambda: f"job-{next(counter)}"),
        )
        stop_watching = tc.after_func(ctx, queue.destroy)
        try:
            yield queue
        except BaseException as exc:
            queue.destroy()
            failure = exc  # raised below as it is, not wrapped in the nursery's ExceptionGroup
        intake.cancel(QueueClosed("the queue's block is over"))  # the group waits for the jobs
    stop_watching()
    queue.destroy()  # a no-op unless ctx ended and left jobs whose task never began
    if failure is not None:
        raise failure


async def _job_group(
    ctx: tc.Context,
    intake: tc.Context,
    limit: int,
    grace: float,
    *,
    task_status: trio.TaskStatus[tc.TaskGroup] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Hold the group the jobs run in: open while ``intake`` takes jobs, then wait for them.

    A job still running ``grace`` (plus a margin) after the group was cancelled is reported by
    the group's stuck-task watchdog."""
    try:
        async with tc.open_group(ctx, limit=limit, grace=2 * grace + 1) as group:
            task_status.started(group)
            await intake.done.wait()
    except tc.ContextError:
        if ctx.err is None:
            raise
        # ctx ended: after_func made that a destroy(); the group's tasks have all finished
