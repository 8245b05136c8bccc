"""The job queue: a concurrency limit, states, progress, safe and immediate cancel, close, destroy.

Rules for callers:

- Open it with ``async with open_job_queue(ctx, limit=2) as queue:`` (``lifetime.py``). The
  queue belongs to that block, like a nursery: leaving the block stops taking jobs and waits for
  every submitted one (queued ones included). An exception out of the block, or ``ctx`` being
  done, destroys it.
- ``submit(spec)`` returns a job id at once; ``get``/``jobs`` give snapshots; ``subscribe``
  gives an event stream (``events.py``); ``wait(job_id)`` waits for a final state.
- ``cancel(job_id, mode="safe")``: a queued job is removed and never starts; a running one stops
  at its next step boundary, keeping the steps it finished. ``mode="now"`` interrupts it at once.
- ``close(timeout=None)``: take no more jobs, cancel the queued ones, let the running ones finish;
  those still running ``timeout`` seconds later are cancelled now. ``destroy()``: cancel every
  job now. Both are idempotent. (Piscina's ``close()`` also runs the queued tasks; here that is
  what leaving the block does, and ``close()`` is the shutdown that ends in bounded time.)
- Every method belongs to the trio thread the queue runs in.

A job's context derives from the queue's, never from the code that submitted it: a job outlives
the HTTP request that created it. The contexts of one running job::

    ctx                                   the parent given to open_job_queue
    ├── intake = with_cancel(ctx)         done: the queue takes no new jobs (close, destroy,
    │                                     the block left); with_grace(intake, t): close(t)'s
    │                                     deadline for the running jobs
    └── group.context                     tc.open_group(ctx, limit=limit): destroy() cancels it
        └── job context                   the job's task runs under it (start_soon(context=));
            │                             cancel() of a queued job or mode="now" cancels it
            └── with_idle_timeout(...)    stall_timeout: each finished step touches it
                └── with_timeout(...)     timeout: the context the work runs under
    stop = with_cancel(background())      cancel(mode="safe"): the work checks it between steps

The limit is ``tc.open_group``'s: every job is a task of one group with ``limit`` slots, the
rest wait in FIFO order, and a queued job whose context is cancelled leaves the line at once and
never starts. The first context to end decides the final state (``model.py`` has the
diagram): a cancel that was accepted ends in ``cancelled`` even if the work then finishes its
last step; otherwise an error from the work means ``failed``, all steps finished means ``done``,
and a context that ended the work says why: "stalled", "timed out", or the queue was destroyed.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Literal

import trio

import trio_context as tc

from .events import Subscription
from .model import (
    CANCEL_MODES,
    FINAL_STATES,
    CancelMode,
    CancelRequested,
    JobEvent,
    JobInfo,
    JobSpec,
    JobStalled,
    JobTimedOut,
    QueueClosed,
    QueueFull,
    SpecError,
    State,
    UnknownJob,
)
from .records import JobRecord, QueueStatistics, check_memory, check_timeout
from .work import Steps, Work, retrying


class JobQueue:
    """Jobs with a concurrency limit. Made by :func:`open_job_queue`, never directly."""

    def __init__(
        self,
        group: tc.TaskGroup,
        intake: tc.CancelContext,
        *,
        work: Mapping[str, Work],
        cache_size: int,
        keep_finished: int,
        grace: float,
        memory_limit: int | None,
        max_queued: int,
        escalate_after: float | None,
        new_id: Callable[[], str],
    ) -> None:
        self._group = group  # every job is one of its tasks; its limit is the queue's
        self._intake = intake  # done: the queue takes no new jobs
        self._memory_limit = memory_limit
        self._work = work
        self._cache_size = cache_size
        self._keep_finished = keep_finished
        self._grace = grace
        self._max_queued = max_queued
        self._escalate_after = escalate_after
        self._new_id = new_id
        self._jobs: dict[str, JobRecord] = {}  # every job remembered, in submission order
        self._queued: dict[str, JobRecord] = {}  # waiting for a slot of the group, oldest first
        self._running = 0  # running or cancelling: each holds one of the group's slots
        self._finished_ids: deque[str] = deque()  # oldest first, for forgetting
        self._cache: OrderedDict[JobSpec, tuple[str, ...]] = OrderedDict()  # least recent first
        self._subscribers: set[Subscription] = set()
        self._waiters = 0  # tasks in wait(): long polls
        self._drained = trio.Event()  # set while no job is queued or running
        self._drained.set()
        self._deadlines: list[tuple[tc.CancelContext, Callable[[], bool]]] = []  # close(timeout)
        tc.after_func(intake, self._check_drained)  # all-jobs streams end once closed and idle

    # -- submitting -----------------------------------------------------------------------------

    def submit(
        self,
        spec: JobSpec,
        *,
        timeout: float | None = None,
        stall_timeout: float | None = None,
        memory_limit: int | None = None,
    ) -> str:
        """Queue a job and return its id (``"job-1"``, ``"job-2"``, ... unless ``new_id``).

        ``timeout``: seconds the job may run (from its start, not from submission) before it
        fails "timed out". ``stall_timeout``: seconds without a finished step before it fails
        "stalled". ``memory_limit``: bytes a ``"process"`` job's worker (its whole process tree)
        may keep resident, at most the queue's own limit; a worker stopped for memory is
        retried once in a fresh worker, then the job fails "out of memory". A spec whose result
        is in the cache gives a job that is ``done`` at once.

        Raises:
            QueueClosed: after ``close()``/``destroy()``, or once the queue's block is left.
            QueueFull: ``max_queued`` jobs are waiting already.
            SpecError: the queue has no work of ``spec.kind``, or a bad timeout.
        """
        if self._intake.done.is_set():
            raise QueueClosed("the queue is closed: it takes no new jobs")
        if spec.kind not in self._work:
            raise SpecError(f"this queue runs no {spec.kind!r} jobs")
        timeout = check_timeout("timeout", timeout)
        stall_timeout = check_timeout("stall_timeout", stall_timeout)
        check_memory("memory_limit", memory_limit)
        if len(self._queued) >= self._max_queued and spec not in self._cache:
            raise QueueFull(f"the queue is full: {len(self._queued)} jobs are waiting")
        limits = [m for m in (memory_limit, self._memory_limit) if m is not None]
        job = JobRecord(self._new_id(), spec, timeout, stall_timeout, min(limits, default=None))
        self._jobs[job.id] = job
        cached = self._cache.get(spec)
        if cached is not None:
            self._cache.move_to_end(spec)
            job.outputs = list(cached)
            job.cached = True
            self._finish(job, "done", "from the result cache")
            return job.id
        self._queued[job.id] = job
        if self._drained.is_set():
            self._drained = trio.Event()
        self._publish(job, "state")
        # The job's task runs under its own context: cancelling it takes a queued job out of
        # the group's line at once (it never starts) and stops a running one alone.
        job.ctx = tc.with_cancel(self._group.context)
        waiting = self._group.statistics().waiting
        self._group.start_soon(self._run, job, context=job.ctx, name=f"jobs: {job.id}")
        if self._group.statistics().waiting == waiting:
            self._start(job)  # the group had a free slot: it holds it from now on
        return job.id

    def _start(self, job: JobRecord) -> None:
        """The job holds one of the group's slots: it is running from now on."""
        del self._queued[job.id]
        self._running += 1
        job.state = "running"
        job.stop = tc.with_cancel(tc.background())
        self._publish(job, "state")

    async def _run(self, job: JobRecord) -> None:
        if job.state == "queued":
            self._start(job)  # a slot came free; the group runs queued jobs oldest first
        if job.state in FINAL_STATES:
            return  # finished by a cancel before its task began (see _cancel)
        job.entered = True
        assert job.ctx is not None and job.stop is not None
        ctx: tc.Context = job.ctx
        if job.timeout is not None:
            ctx = tc.with_timeout(ctx, job.timeout, cause=JobTimedOut(job.timeout))
        steps = Steps(
            lambda output: self._report(job, output),
            job.stop,
            self._grace,
            memory_limit=job.memory_limit,
            started=lambda: self._start_stall_clock(job),
        )
        error: Exception | None = None
        interrupted = True  # until the work returns or raises an Exception
        try:
            work = self._work[job.spec.kind]
            await retrying(work, ctx, job.spec, steps, stopping=lambda: job.state == "cancelling")
            interrupted = False
        except tc.ContextError:
            interrupted = False  # a context stopped the work: job.outcome() says which one
        except Exception as exc:
            error = exc
            interrupted = False
        finally:
            state, reason = job.outcome(ctx, error, interrupted=interrupted)
            for owned in (ctx, job.idle, job.ctx, job.stop, job.escalation):
                if isinstance(owned, tc.CancelContext):
                    owned.cancel()  # their work is over
            self._running -= 1
            self._finish(job, state, reason)

    def _start_stall_clock(self, job: JobRecord) -> None:
        """The work has started (a worker process is up): from now on, ``stall_timeout``
        seconds without a finished step stall the job. Idempotent."""
        if job.stall_timeout is None or job.idle is not None or job.ctx is None:
            return
        stalled = JobStalled(job.stall_timeout)
        job.idle = idle = tc.with_idle_timeout(job.ctx, job.stall_timeout, cause=stalled)
        job_ctx = job.ctx
        tc.after_func(idle, lambda: job_ctx.cancel(idle.cause))  # a no-op once job_ctx is done

    def _report(self, job: JobRecord, output: str) -> None:
        """One more step finished (the work calls this through ``Steps.report``)."""
        if job.state in FINAL_STATES or len(job.outputs) >= job.spec.steps:
            return
        job.outputs.append(output)
        if job.idle is not None:
            job.idle.touch()
        self._publish(job, "progress", (output,))

    def _finish(self, job: JobRecord, state: State, reason: str | None) -> None:
        assert job.state not in FINAL_STATES, f"{job.id} finished twice"
        job.state = state
        job.reason = reason
        if state == "done" and not job.cached and self._cache_size > 0:
            self._cache[job.spec] = tuple(job.outputs)
            self._cache.move_to_end(job.spec)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        job.finished.set()
        self._publish(job, "state")
        self._finished_ids.append(job.id)
        while len(self._finished_ids) > self._keep_finished:
            self._jobs.pop(self._finished_ids.popleft(), None)
        self._check_drained()

    # -- cancelling, closing --------------------------------------------------------------------

    def cancel(self, job_id: str, mode: CancelMode = "safe") -> bool:
        """Cancel a job; return True if this changed anything.

        A queued job becomes ``cancelled`` at once and never starts. A running one becomes
        ``cancelling``: with ``mode="safe"`` its work stops at the next step boundary, with
        ``"now"`` its context is cancelled (a worker process gets SIGTERM, then SIGKILL after the
        queue's ``grace``). A ``"now"`` upgrades an earlier ``"safe"``. Returns False for a job
        already final, or already cancelling at least as hard.

        Raises:
            UnknownJob: no such job.
            ValueError: ``mode`` is not ``"safe"`` or ``"now"``.
        """
        if mode not in CANCEL_MODES:
            raise ValueError(f"`mode` must be 'safe' or 'now', got {mode!r}")
        why = "safe cancel" if mode == "safe" else "cancel now"
        return self._cancel(self._get(job_id), mode, why)

    def _cancel(self, job: JobRecord, mode: CancelMode, why: str) -> bool:
        if job.state == "queued":
            assert job.ctx is not None
            job.ctx.cancel(CancelRequested(why))  # its task leaves the group's line
            del self._queued[job.id]
            self._finish(job, "cancelled", f"{why}, before it started")
            return True
        upgrade = job.state == "cancelling" and job.mode == "safe" and mode == "now"
        if job.state != "running" and not upgrade:
            return False
        assert job.ctx is not None and job.stop is not None
        job.state, job.mode, job.why = "cancelling", mode, why
        job.reason = f"{why}: stopping" + (" at the next step boundary" if mode == "safe" else "")
        cause = CancelRequested(why)
        (job.stop if mode == "safe" else job.ctx).cancel(cause)
        if mode == "safe" and self._escalate_after is not None and job.escalation is None:
            # The "stop now" twin of the safe stop: a hung worker never reaches a step boundary.
            job.escalation = tc.with_grace(job.stop, self._escalate_after)
            late = f"safe cancel unfinished after {self._escalate_after:g} s"
            tc.after_func(job.escalation, lambda: self._cancel(job, "now", late))
        self._publish(job, "state")
        if mode == "now" and not job.entered:
            # It held a slot but its task had not begun: with its context done, the group
            # never starts that task, so the job ends here, as it would at its first step.
            job.stop.cancel()
            self._running -= 1
            self._finish(job, "cancelled", f"{why}, stopped after step 0 of {job.spec.steps}")
        return True

    def close(self, timeout: float | None = None) -> None:
        """Take no more jobs, cancel the queued ones, let the running ones finish. With
        ``timeout``, the jobs still running that many seconds later are cancelled now (a later
        call can only add an earlier deadline). Idempotent.

        Raises:
            ValueError: ``timeout`` is negative or NaN.
        """
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"`timeout` must be a non-negative number of seconds, got {timeout!r}")
        self._intake.cancel(QueueClosed("queue closed"))
        for job in list(self._queued.values()):
            self._cancel(job, "now", "queue closed")
        if timeout is not None and self._running:
            # The "stop now" twin of the closed intake: done `timeout` seconds after it.
            hard = tc.with_grace(self._intake, timeout)
            stop = tc.after_func(hard, self._close_deadline_passed)
            self._deadlines.append((hard, stop))
        self._check_drained()

    def _close_deadline_passed(self) -> None:
        for job in list(self._jobs.values()):
            self._cancel(job, "now", "close deadline passed")

    def destroy(self) -> None:
        """Take no more jobs and cancel every queued and running one now (a ``"now"`` cancel;
        the group of the jobs too). Idempotent."""
        self._intake.cancel(QueueClosed("queue destroyed"))
        for job in list(self._jobs.values()):
            self._cancel(job, "now", "queue destroyed")
        self._group.cancel(CancelRequested("queue destroyed"))
        self._check_drained()

    def _check_drained(self) -> None:
        if not self._queued and not self._running:
            self._drained.set()
            for hard, stop in self._deadlines:  # nothing left to stop: release the deadlines
                stop()
                hard.cancel()
            self._deadlines.clear()
            if self._intake.done.is_set():
                for subscription in list(self._subscribers):
                    if subscription.job_id is None:
                        subscription.end()

    # -- looking ------------------------------------------------------------------------------

    def _get(self, job_id: str) -> JobRecord:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise UnknownJob(f"no job {job_id!r}") from None

    def get(self, job_id: str) -> JobInfo:
        """A snapshot of one job. Raises :class:`UnknownJob`."""
        return self._get(job_id).info()

    def jobs(self) -> list[JobInfo]:
        """Snapshots of every remembered job, oldest first."""
        return [job.info() for job in self._jobs.values()]

    async def wait(self, job_id: str) -> JobInfo:
        """Wait until the job is final and return its snapshot. Raises :class:`UnknownJob`."""
        job = self._get(job_id)
        self._waiters += 1
        try:
            await job.finished.wait()
        finally:
            self._waiters -= 1
        return job.info()

    async def join(self) -> None:
        """Wait until no job is queued or running."""
        while not self._drained.is_set():
            await self._drained.wait()
        await trio.lowlevel.checkpoint()

    def subscribe(self, job_id: str | None = None) -> Subscription:
        """An event stream of one job, or of all (see ``events.py``); use it in a ``with``.

        Raises:
            UnknownJob: no such job.
        """
        jobs = [self._get(job_id)] if job_id is not None else list(self._jobs.values())
        subscription = Subscription(job_id, self._subscribers.discard)
        for job in jobs:
            subscription.put(JobEvent("state", job.info()))
        if job_id is None and self._intake.done.is_set() and self._drained.is_set():
            subscription.end()
        self._subscribers.add(subscription)
        return subscription

    def statistics(self) -> QueueStatistics:
        return QueueStatistics(
            limit=self._group.statistics().limit or 0,
            queued=len(self._queued),
            running=self._running,
            finished=len(self._finished_ids),
            subscribers=len(self._subscribers),
            waiters=self._waiters,
            cached_results=len(self._cache),
            closed=self._intake.done.is_set(),
        )

    def _publish(
        self, job: JobRecord, kind: Literal["state", "progress"], new: tuple[str, ...] = ()
    ) -> None:
        event = JobEvent(kind, job.info(), new)
        for subscription in list(self._subscribers):
            subscription.put(event)

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<JobQueue limit {s.limit}: {s.queued} queued, {s.running} running, "
            f"{s.finished} finished{', closed' if s.closed else ''}>"
        )
