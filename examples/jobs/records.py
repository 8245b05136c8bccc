"""The queue's bookkeeping: a job's mutable record, the queue's statistics, argument checks.

Everything here belongs to the trio thread of the queue (``jobqueue.py``).
"""

from __future__ import annotations

import attrs
import trio

import trio_context as tc

from .model import (
    MAX_SECONDS,
    CancelMode,
    JobInfo,
    JobSpec,
    JobStalled,
    JobTimedOut,
    SpecError,
    State,
    check_seconds,
)
from .work import WorkerOutOfMemory


@attrs.define(eq=False)
class JobRecord:
    """A job's mutable record, the queue's own; the outside world only sees ``info()``
    snapshots."""

    id: str
    spec: JobSpec
    timeout: float | None
    stall_timeout: float | None
    memory_limit: int | None = None  # bytes, for process workers (the server's limit applied)
    state: State = "queued"
    outputs: list[str] = attrs.field(factory=list[str])
    reason: str | None = None
    cached: bool = False
    mode: CancelMode | None = None  # how a cancel asked it to stop
    why: str = ""  # who cancelled it, for the reason
    ctx: tc.CancelContext | None = None  # its task's context in the group
    entered: bool = False  # its task has begun (it holds a slot from ``running`` on)
    stop: tc.CancelContext | None = None
    idle: tc.IdleContext | None = None  # the stall clock, from the moment the work started
    escalation: tc.CancelContext | None = None  # a safe cancel's "now" twin (with_grace)
    finished: trio.Event = attrs.Factory(trio.Event)

    def outcome(
        self, ctx: tc.Context, error: Exception | None, *, interrupted: bool
    ) -> tuple[State, str | None]:
        """The final state and reason once the work under ``ctx`` is over: an accepted cancel
        wins, then an error of the work, then all steps finished, then the context that ended
        the work (a stall or a timeout fails the job, anything else cancels it). A worker
        stopped for memory (twice: it is retried once) fails the job "out of memory"."""
        done, total = len(self.outputs), self.spec.steps
        if self.state == "cancelling":
            return "cancelled", f"{self.why}, stopped after step {done} of {total}"
        if isinstance(error, WorkerOutOfMemory):
            return "failed", f"out of memory: {error}, at step {done} of {total}"
        if error is not None:
            return "failed", f"error: {type(error).__name__}: {error}"
        if done >= total:
            return "done", None
        cause = ctx.cause
        if isinstance(cause, JobStalled | JobTimedOut):
            return "failed", f"{cause}, at step {done} of {total}"
        if cause is not None or interrupted:
            return "cancelled", f"{cause or 'interrupted'}, stopped after step {done} of {total}"
        return "failed", f"the work ended after {done} of {total} steps"

    def info(self) -> JobInfo:
        return JobInfo(
            id=self.id,
            spec=self.spec,
            state=self.state,
            step=len(self.outputs),
            outputs=tuple(self.outputs),
            reason=self.reason,
            cached=self.cached,
            timeout=self.timeout,
            stall_timeout=self.stall_timeout,
        )


@attrs.frozen
class QueueStatistics:
    """Counts at one moment (``queue.statistics()``)."""

    limit: int
    queued: int
    running: int  # running or cancelling: each holds one of the ``limit`` slots
    finished: int  # the finished jobs still remembered
    subscribers: int  # open event streams
    waiters: int  # tasks waiting for a final state (long polls)
    cached_results: int
    closed: bool

    def to_json(self) -> dict[str, int | bool]:
        return attrs.asdict(self)


def check_timeout(name: str, value: object) -> float | None:
    """None, or a positive number of seconds up to ``MAX_SECONDS`` (as a float)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value:
        raise SpecError(f"`{name}` must be a positive number of seconds, got {value!r}")
    return check_seconds(name, value, most=MAX_SECONDS, positive=True)


def check_memory(name: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise SpecError(f"`{name}` must be a positive number of bytes or None, got {value!r}")


def check_count(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"`{name}` must be an int >= {least}, got {value!r}")
