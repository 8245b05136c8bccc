"""Deadlines that must *act* without anyone looking: one timer task per trio run.

Bound scopes carry deadlines natively and ``err`` is computed lazily from the clock, so most
contexts never touch this; after_func callbacks on deadline contexts and idle contexts do.
"""

from __future__ import annotations

import heapq
import weakref
from typing import Any, Final, Protocol

import trio

from ._common import _INF


class Timed(Protocol):
    """What the timer task calls at a due time (``CancelContext`` and ``IdleContext``)."""

    def _on_timer(self, now: float) -> float | None:
        """Act on a due time; return the next time to be called, if any."""
        ...


class _Timers:
    """A heap of (due time, context) served by one system task per trio run. Entries hold
    contexts weakly; at its time an entry calls ``ctx._on_timer(now)``, which may ask for a
    later call (idle contexts do)."""

    def __init__(self) -> None:
        # Entries are [due time, sequence number, weak target or None once disarmed]: lists,
        # compared in C (the unique sequence number settles every tie before the target).
        self.heap: list[list[Any]] = []
        self.seq = 0
        self.disarmed = 0
        self.scope: trio.CancelScope | None = None

    def add(self, when: float, ctx: Timed) -> list[Any]:
        self.seq += 1
        entry = [when, self.seq, weakref.ref(ctx)]
        heapq.heappush(self.heap, entry)
        if self.scope is not None and when < self.scope.deadline:
            self.scope.deadline = when
        return entry

    def disarm(self, entry: list[Any]) -> None:
        """Forget an entry before its time; the heap is rebuilt once most of it is disarmed
        entries, so a stream of armed-then-disarmed timers keeps it small."""
        if entry[2] is None:
            return
        entry[2] = None
        self.disarmed += 1
        if self.disarmed > 64 and self.disarmed * 2 > len(self.heap):
            self.heap = [e for e in self.heap if e[2] is not None]
            heapq.heapify(self.heap)
            self.disarmed = 0

    async def run(self) -> None:
        while True:
            with trio.CancelScope(deadline=self.heap[0][0] if self.heap else _INF) as self.scope:
                await trio.sleep_forever()
            now = trio.current_time()
            while self.heap and self.heap[0][0] <= now:
                entry = heapq.heappop(self.heap)
                ref, entry[2] = entry[2], None  # served: a later disarm() is a no-op
                if ref is None:
                    self.disarmed -= 1
                    continue
                ctx = ref()
                if ctx is not None:
                    again = ctx._on_timer(now)
                    if again is not None:
                        self.add(again, ctx)


_TIMERS: Final = trio.lowlevel.RunVar[_Timers]("trio_context_timers")


def timers() -> _Timers:
    try:
        return _TIMERS.get()
    except LookupError:
        timers = _Timers()
        trio.lowlevel.spawn_system_task(timers.run, name="trio_context.timers")
        _TIMERS.set(timers)
        return timers
