"""Deadlines that must *act* without anyone looking: one timer task per trio run.

Bound scopes carry deadlines natively and ``err`` is computed lazily from the clock, so most
contexts never touch this; after_func callbacks on deadline contexts and idle contexts do.
"""

from __future__ import annotations

import heapq
import weakref
from typing import Final, Protocol

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
        self.heap: list[tuple[float, int, weakref.ref[Timed]]] = []
        self.seq = 0
        self.scope: trio.CancelScope | None = None

    def add(self, when: float, ctx: Timed) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (when, self.seq, weakref.ref(ctx)))
        if self.scope is not None and when < self.scope.deadline:
            self.scope.deadline = when

    async def run(self) -> None:
        while True:
            with trio.CancelScope(deadline=self.heap[0][0] if self.heap else _INF) as self.scope:
                await trio.sleep_forever()
            now = trio.current_time()
            while self.heap and self.heap[0][0] <= now:
                _, _, ref = heapq.heappop(self.heap)
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
