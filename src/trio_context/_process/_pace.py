"""Pacing of stop signals: at most :data:`PER_BATCH` per batch of trio's run loop.

Nothing here is public. Sending a signal wakes its target, which on a busy machine costs the
sender its CPU for a moment (a ``killpg`` takes 0.1-0.3 ms there); 300 of them in one batch of
trio's run loop would hold every other task for tens of milliseconds. A call awaits
:func:`turn` before it signals its tree, so a mass stop is spread over batches, with the rest
of the program running in between. Costs nothing when few processes stop at once.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import trio

__all__ = ["PER_BATCH", "turn"]

PER_BATCH: Final = 16


class _Pacer:
    def __init__(self) -> None:
        self.used = 0  # stops let through in this batch
        self.waiting: deque[trio.Event] = deque()  # first come, first served
        self.resetting = False

    def schedule_reset(self) -> None:
        if not self.resetting:
            self.resetting = True
            trio.lowlevel.spawn_system_task(self.reset, name="trio_context stop pacer")

    async def reset(self) -> None:
        await trio.lowlevel.cancel_shielded_checkpoint()  # runs in the next batch
        self.resetting = False
        self.used = 0
        while self.waiting and self.used < PER_BATCH:
            self.used += 1
            self.waiting.popleft().set()
        if self.used:
            self.schedule_reset()


_PACER: trio.lowlevel.RunVar[_Pacer] = trio.lowlevel.RunVar("trio_context_stop_pacer")


async def turn() -> None:
    """Return at once if this batch has let fewer than :data:`PER_BATCH` stops through, else
    in a later batch (first come, first served). Not a checkpoint when it returns at once.

    Raises:
        trio.Cancelled: the caller's scope was cancelled while it waited (its place in the
            line is given up).
    """
    try:
        pacer = _PACER.get()
    except LookupError:
        pacer = _Pacer()
        _PACER.set(pacer)
    if pacer.used < PER_BATCH and not pacer.waiting:
        pacer.used += 1
        pacer.schedule_reset()
        return
    ready = trio.Event()
    pacer.waiting.append(ready)
    pacer.schedule_reset()
    try:
        await ready.wait()
    except BaseException:
        if not ready.is_set():
            pacer.waiting.remove(ready)
        raise
