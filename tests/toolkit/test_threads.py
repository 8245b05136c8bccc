"""Tests for ``to_thread`` (``_threads.py``): cooperative cancellation of worker threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import trio
import trio.testing

import trio_context as tc
from trio_context import to_thread

KEY = object()


def step_loop(steps: list[int], on_step: Callable[[int], object]) -> None:
    """A worker that polls its context between steps and reports each step to trio (which
    blocks the thread until trio ran ``on_step``)."""
    i = 0
    while True:
        tc.current().check()
        steps.append(i)
        trio.from_thread.run_sync(on_step, i)
        i += 1


async def test_returns_the_result_with_current_bound_to_a_child(ctx: tc.CancelContext) -> None:
    req = tc.with_value(ctx, KEY, "req-1")
    seen: list[tc.Context] = []

    def work(a: int, b: int) -> int:
        here = tc.current()
        seen.append(here)
        assert here.value(KEY) == "req-1"
        assert not here.done.is_set()
        return a + b

    assert await to_thread(req, work, 2, 3) == 5
    (child,) = seen
    assert child is not req
    assert child.done.is_set()  # released once the call returned
    assert not req.done.is_set()
    assert req.children() == []


async def test_step_loop_stops_within_one_step_after_cancel_from_another_task(
    ctx: tc.CancelContext,
) -> None:
    job = tc.with_cancel(ctx)
    steps: list[int] = []
    cancelled_at: list[int] = []
    reached = trio.Event()

    def on_step(i: int) -> None:
        if i == 3:
            reached.set()

    async def canceller() -> None:
        await reached.wait()
        cancelled_at.append(len(steps))
        job.cancel(KeyError("stop"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(canceller)
        with pytest.raises(tc.ContextCancelled) as info:
            await to_thread(job, step_loop, steps, on_step)
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value is not job.err  # a fresh copy
    assert len(steps) <= cancelled_at[0] + 1


async def test_cancel_from_a_foreign_thread(ctx: tc.CancelContext) -> None:
    job = tc.with_cancel(ctx)
    steps: list[int] = []
    foreign: list[threading.Thread] = []

    def on_step(i: int) -> None:
        if i == 3:
            t = threading.Thread(target=job.cancel, name="foreign canceller")
            foreign.append(t)
            t.start()
            t.join()  # cancelled before the worker takes its next step

    with pytest.raises(tc.ContextCancelled):
        await to_thread(job, step_loop, steps, on_step)
    assert steps == [0, 1, 2, 3]
    assert not foreign[0].is_alive()


async def test_deadline_reaches_the_thread(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    step = tc.with_timeout(ctx, 30)
    steps: list[int] = []
    with pytest.raises(tc.DeadlineExceeded):
        await to_thread(step, step_loop, steps, lambda i: None)
    assert trio.current_time() >= 30


async def test_outer_cancellation_reaches_the_thread_and_is_reraised(
    ctx: tc.CancelContext,
) -> None:
    finished = threading.Event()
    seen: list[tc.Context] = []
    started = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def work() -> None:
        here = tc.current()
        seen.append(here)
        token.run_sync_soon(started.set)
        try:
            while not here.done.is_set():
                time.sleep(0.001)
        finally:
            finished.set()

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:

            async def cancel_when_started() -> None:
                await started.wait()
                scope.cancel()

            nursery.start_soon(cancel_when_started)
            await to_thread(ctx, work)
    assert scope.cancelled_caught
    assert finished.is_set()  # waited for the thread before re-raising Cancelled
    assert isinstance(seen[0].err, tc.ContextCancelled)


async def test_waits_for_a_function_that_never_checks(ctx: tc.CancelContext) -> None:
    job = tc.with_cancel(ctx)
    release = threading.Event()
    returned: list[str] = []
    entered = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def stubborn() -> str:
        token.run_sync_soon(entered.set)
        release.wait()
        return "late"

    async def call() -> None:
        with pytest.raises(tc.ContextCancelled):
            await to_thread(job, stubborn)
        returned.append("raised")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await entered.wait()
        job.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert returned == []  # still waiting for the thread
        release.set()
    assert returned == ["raised"]


async def test_abandon_on_cancel_returns_at_once_and_leaves_the_thread(
    ctx: tc.CancelContext,
) -> None:
    job = tc.with_cancel(ctx)
    release = threading.Event()
    finished = threading.Event()
    seen: list[tc.Context] = []
    entered = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def never_checks() -> None:
        seen.append(tc.current())
        token.run_sync_soon(entered.set)
        release.wait()
        finished.set()

    async def cancel_when_entered() -> None:
        await entered.wait()
        job.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(cancel_when_entered)
        with pytest.raises(tc.ContextCancelled):
            await to_thread(job, never_checks, abandon_on_cancel=True)
    assert not finished.is_set()  # abandoned, still running
    assert seen[0].done.is_set()  # but it can see that it should stop
    release.set()
    await trio.to_thread.run_sync(finished.wait)


async def test_already_done_context_does_not_start_the_function(ctx: tc.CancelContext) -> None:
    job = tc.with_cancel(ctx)
    job.cancel()
    called: list[int] = []
    with pytest.raises(tc.ContextCancelled):
        await to_thread(job, called.append, 1)
    assert called == []


async def test_errors_from_the_function_propagate(ctx: tc.CancelContext) -> None:
    def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await to_thread(ctx, boom)


async def test_a_real_error_raised_while_cancelling_is_not_hidden(ctx: tc.CancelContext) -> None:
    job = tc.with_cancel(ctx)
    entered = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def fails_on_cancel() -> None:
        token.run_sync_soon(entered.set)
        while not tc.current().done.is_set():
            time.sleep(0.001)
        raise OSError("disk full while saving partial results")

    async def cancel_when_entered() -> None:
        await entered.wait()
        job.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(cancel_when_entered)
        with pytest.raises(OSError, match="disk full"):
            await to_thread(job, fails_on_cancel)


async def test_from_thread_works_inside_the_function(ctx: tc.CancelContext) -> None:
    async def double(x: int) -> int:
        await trio.lowlevel.checkpoint()
        return 2 * x

    def work() -> int:
        return trio.from_thread.run(double, 21)

    assert await to_thread(ctx, work) == 42
