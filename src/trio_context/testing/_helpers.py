"""Helpers for tests of code that takes a context; re-exported by the pytest plugin.

- :func:`advance_to_deadline` jumps a ``trio.testing.MockClock`` to a context's deadline and
  lets every task react, so a timeout test is exact and instant.
- :func:`cancel_from_thread` cancels a context from a real thread that trio did not start
  (the "user pressed Stop in another thread" case) and waits until that call has returned.

Neither imports pytest.
"""

from __future__ import annotations

import math
import threading
from typing import Protocol, cast

import trio
import trio.testing

from .._core import CancelContext, Context

__all__ = ["CancelFromThread", "advance_to_deadline", "cancel_from_thread"]


class CancelFromThread(Protocol):
    """The type of the ``ctx_cancel_from_thread`` fixture."""

    async def __call__(
        self, target: CancelContext | None = None, cause: BaseException | None = None
    ) -> None: ...


async def advance_to_deadline(ctx: Context, clock: trio.testing.MockClock | None = None) -> None:
    """Jump the mock clock to ``ctx.deadline`` and wait until every other task is blocked.

    Afterwards ``ctx`` is done with :class:`~trio_context.DeadlineExceeded` (or earlier, if
    an ancestor's deadline is the same), every scope bound to it has been cancelled, and the
    tasks inside have run until they block again. A deadline already past only does the
    waiting. Deterministic: no real time passes. ``clock`` defaults to the running clock::

        async def test_gives_up(autojump_clock):
            job = tc.with_timeout(tc.background(), 30)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(worker, job)
                await advance_to_deadline(job)
            assert isinstance(job.err, tc.DeadlineExceeded)

    Advancing to the deadline of a context the caller itself runs under (the test's own
    ``ctx``) cancels the caller too, like any deadline.

    Raises:
        ValueError: ``ctx`` has no deadline.
        TypeError: the running clock is not a ``MockClock`` (pass ``mock_clock`` or
            ``autojump_clock`` to the test), or ``clock`` is not the running clock.
        RuntimeError: outside a trio run.
    """
    running = trio.lowlevel.current_clock()
    if clock is None:
        if not isinstance(running, trio.testing.MockClock):
            raise TypeError(
                "advance_to_deadline() needs trio's MockClock; request the mock_clock or "
                "autojump_clock fixture in the test"
            )
        clock = running
    elif clock is not running:
        raise TypeError("clock is not the clock of the running trio loop")
    deadline = ctx.deadline
    if deadline == math.inf:
        raise ValueError(f"ctx has no deadline: {ctx!r}")
    # a + (b - a) can land one ulp short of b in floating point: step until it is reached.
    while (now := clock.current_time()) < deadline:
        clock.jump(max(deadline - now, math.ulp(deadline)))
    await trio.testing.wait_all_tasks_blocked()


async def cancel_from_thread(ctx: CancelContext, cause: BaseException | None = None) -> None:
    """Call ``ctx.cancel(cause)`` from a new, real ``threading.Thread`` and wait until that
    call has returned (the thread is joined).

    The trio loop keeps running meanwhile, so work bound to ``ctx`` sees the cancellation at
    its next checkpoint; the wait for the thread is shielded, so this function returns even
    when it cancelled the caller's own scope (the caller is then cancelled at its next
    checkpoint)::

        async def test_stop_button(ctx):
            job = tc.with_cancel(ctx)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(generate, job)
                await cancel_from_thread(job, cause=StopPressed())
            assert isinstance(job.cause, StopPressed)

    Raises:
        TypeError: ``ctx`` is not a :class:`~trio_context.CancelContext`, or ``cause`` is not
            an exception (raised here, as ``cancel()`` raised it in the thread).
        RuntimeError: outside a trio run.
    """
    if not isinstance(cast("object", ctx), CancelContext):  # callers may not be type-checked
        raise TypeError(
            f"ctx must be a trio_context.CancelContext (e.g. from tc.with_cancel()), "
            f"not {type(ctx).__name__}"
        )
    token = trio.lowlevel.current_trio_token()
    finished = trio.Event()
    errors: list[BaseException] = []

    def cancel_in_thread() -> None:
        try:
            ctx.cancel(cause)
        except BaseException as exc:
            errors.append(exc)
        finally:
            try:
                token.run_sync_soon(finished.set)
            except trio.RunFinishedError:  # pragma: no cover - the run ended meanwhile
                pass

    thread = threading.Thread(
        target=cancel_in_thread, name="trio_context cancel_from_thread", daemon=True
    )
    thread.start()
    with trio.CancelScope(shield=True):
        await finished.wait()
    thread.join()
    if errors:
        raise errors[0]
