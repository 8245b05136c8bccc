"""The project's own tests using its pytest plugin: a few ``to_thread`` and ``run_process``
tests rewritten with the ``ctx`` fixture, so the teardown leak check also proves that no
thread, task or process outlives them.

Skipped while the plugin is not loaded (before the ``pytest11`` entry point is installed, run
them with ``pytest -p trio_context.pytest_plugin``)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trio_context as tc
from trio_context.testing import CancelFromThread

pytestmark = pytest.mark.skipif(
    "not (config.pluginmanager.has_plugin('trio_context') "
    "or config.pluginmanager.has_plugin('trio_context.pytest_plugin'))",
    reason="the trio_context pytest plugin is not loaded",
)

KEY = object()


async def test_to_thread_returns_with_current_bound_to_a_child(ctx: tc.CancelContext) -> None:
    req = tc.with_value(ctx, KEY, "req-1")
    seen: list[tc.Context] = []

    def work(a: int, b: int) -> int:
        here = tc.current()
        seen.append(here)
        assert here.value(KEY) == "req-1"
        return a + b

    assert await tc.to_thread(req, work, 2, 3) == 5
    (child,) = seen
    assert child is not req
    assert child.done.is_set()  # released once the call returned
    assert tc.current() is ctx  # the test body is bound to its context


async def test_to_thread_deadline_reaches_the_thread(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    step = tc.with_timeout(ctx, 30)

    def poll() -> None:
        while True:
            tc.current().check()
            trio.from_thread.run_sync(lambda: None)

    with pytest.raises(tc.DeadlineExceeded):
        await tc.to_thread(step, poll)
    assert trio.current_time() >= 30
    assert not ctx.done.is_set()


async def test_to_thread_cancel_from_a_foreign_thread(
    ctx: tc.CancelContext, ctx_cancel_from_thread: CancelFromThread
) -> None:
    job = tc.with_cancel(ctx)
    reached = trio.Event()
    steps: list[int] = []

    def step_loop() -> None:
        while True:
            tc.current().check()
            steps.append(len(steps))
            if len(steps) == 3:
                trio.from_thread.run_sync(reached.set)

    async def run_job() -> None:
        with pytest.raises(tc.ContextCancelled):
            await tc.to_thread(job, step_loop)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_job)
        await reached.wait()
        await ctx_cancel_from_thread(job, KeyError("stop"))
    assert len(steps) >= 3
    assert isinstance(job.cause, KeyError)
    assert "thread trio_context cancel_from_thread" in job.explain()


async def test_run_process_timeout_leaves_no_process(ctx: tc.CancelContext) -> None:
    step = tc.with_timeout(ctx, 0.2)
    result = await tc.run_process(step, ["sh", "-c", "sleep 30 & sleep 30"], grace=1)
    assert result.outcome == "timed_out"
    # The leak check then verifies that neither sleep (nor the group) is still alive.
