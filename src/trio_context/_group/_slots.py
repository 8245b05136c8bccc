"""FIFO run slots for ``open_group(limit=n)``: at most ``n`` holders, the others queue in order.

Rules for callers (the group, internally): take a ticket with :meth:`Slots.acquire` when the
task is *requested* (``start_soon``), not when it first runs, so the queue keeps the order of
the requests whatever order trio schedules the tasks in; then ``await wait(ticket)``, and call
``release()`` once if ``holds(ticket)``. A waiter that is cancelled leaves the queue and never
holds a slot. Trio thread only; the counters may be read from any thread.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import trio

__all__ = ["Slots", "Ticket"]

_WAITING: Final = 0
_GRANTED: Final = 1
_ABANDONED: Final = 2


class Ticket:
    """A task's place in the queue."""

    __slots__ = ("event", "state")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.state = _WAITING


class Slots:
    """``limit`` slots; ``running`` are taken, ``waiting`` tickets are queued."""

    __slots__ = ("_queue", "limit", "running", "waiting")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.waiting = 0
        self._queue: deque[Ticket] = deque()

    def acquire(self) -> Ticket | None:
        """Take a slot now (return None) or queue (return the ticket to wait on). Nobody jumps
        the queue: a free slot is taken only when nobody is waiting."""
        if self.running < self.limit and not self.waiting:
            self.running += 1
            return None
        ticket = Ticket()
        self._queue.append(ticket)
        self.waiting += 1
        return ticket

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is waiting (True), else take nothing."""
        if self.running < self.limit and not self.waiting:
            self.running += 1
            return True
        return False

    async def wait(self, ticket: Ticket | None) -> None:
        """Wait until ``ticket`` holds a slot (at once for None).

        Raises:
            trio.Cancelled: the waiter was cancelled; it left the queue (unless the slot was
                handed over just before: then ``holds(ticket)`` is True and it must release).
        """
        if ticket is None:
            return
        try:
            await ticket.event.wait()
        except BaseException:
            if ticket.state == _WAITING:
                ticket.state = _ABANDONED
                self.waiting -= 1
            raise

    @staticmethod
    def holds(ticket: Ticket | None) -> bool:
        """Whether the owner of ``ticket`` holds a slot (and must release it)."""
        return ticket is None or ticket.state == _GRANTED

    def release(self) -> None:
        """Hand the caller's slot to the first ticket still waiting, else free it."""
        while self._queue:
            ticket = self._queue.popleft()
            if ticket.state == _WAITING:
                ticket.state = _GRANTED
                self.waiting -= 1
                ticket.event.set()
                return
        self.running -= 1
