"""Event streams: every subscriber gets its own mailbox, and the queue never waits for one.

Rules for callers::

    with queue.subscribe() as events:          # or queue.subscribe(job_id)
        async for event in events:
            show(event.job)

- Publishing is synchronous and never blocks: the queue drops the event into each matching
  mailbox and wakes the reader. A slow reader does not slow the queue down or make it buffer
  without bound: a mailbox holds **at most one unread event per job**. A newer event for a job
  replaces the unread older one (it moves to the back of the line), so a reader that falls
  behind skips intermediate progress but always sees each job's newest snapshot, and therefore
  its final state (the last event of every job). The replacement is typed ``"state"`` if any
  event it coalesced was a state change, and keeps the ``new_outputs`` of the events it
  replaced: a progress event says what changed since the reader's previous one. Memory per
  subscriber is bounded by the number of jobs the queue remembers (``keep_finished`` plus the
  live ones).
- A new subscription starts with the current snapshot of each matching job (as ``"state"``).
- A stream for one job ends after that job's final event; a stream of all jobs ends once the
  queue has been closed and every job has finished. Leaving the ``with`` unsubscribes.
- Everything here belongs to the trio thread of the queue.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import trio

from .model import JobEvent


class Subscription:
    """One subscriber's mailbox and async iterator. Made by ``JobQueue.subscribe()``."""

    def __init__(self, job_id: str | None, unsubscribe: Callable[[Subscription], None]) -> None:
        self.job_id = job_id
        self._unsubscribe = unsubscribe
        self._pending: dict[str, JobEvent] = {}  # job id -> newest unread event, oldest first
        self._wakeup = trio.Event()
        self._ended = False  # no event will come any more
        self._closed = False

    # -- the queue's side ---------------------------------------------------------------------

    def put(self, event: JobEvent) -> None:
        """Drop ``event`` into the mailbox (coalescing), and end a one-job stream after the
        job's final event. Never blocks."""
        job = event.job
        if self._ended or (self.job_id is not None and job.id != self.job_id):
            return
        old = self._pending.pop(job.id, None)
        if old is not None:  # coalesce: the newest snapshot, every output not yet read
            new = old.new_outputs + event.new_outputs
            if "state" in (old.type, event.type):
                event = JobEvent("state", job, new)
            else:
                event = JobEvent("progress", job, new)
        self._pending[job.id] = event
        if self.job_id is not None and job.final:
            self._ended = True
        self._wakeup.set()

    def end(self) -> None:
        """No more events: the reader gets what is pending, then the stream ends."""
        self._ended = True
        self._wakeup.set()

    @property
    def unread(self) -> int:
        return len(self._pending)

    # -- the reader's side --------------------------------------------------------------------

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        etype: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Unsubscribe. Idempotent."""
        if not self._closed:
            self._closed = True
            self._ended = True
            self._pending.clear()
            self._unsubscribe(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> JobEvent:
        await trio.lowlevel.checkpoint()
        while not self._pending:
            if self._ended:
                raise StopAsyncIteration
            self._wakeup = trio.Event()
            await self._wakeup.wait()
        job_id = next(iter(self._pending))
        return self._pending.pop(job_id)
