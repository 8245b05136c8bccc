"""``group.start_soon(..., context=)``: one task's own context, queued or running.

The job queue example runs each job as a task of one ``open_group(limit=n)`` and cancels a
queued job through its own context: it must leave the FIFO at once, never start, and never fail
the group.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trio_context as tc


async def test_a_cancelled_waiting_task_leaves_the_queue_and_never_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    started: list[str] = []

    async def work(name: str) -> None:
        started.append(name)
        await trio.sleep(1)

    async with tc.open_group(tc.background(), limit=1) as group:
        first = tc.with_cancel(group.context)
        second = tc.with_cancel(group.context)
        group.start_soon(work, "first", context=first)
        group.start_soon(work, "second", context=second)
        group.start_soon(work, "third")
        await trio.testing.wait_all_tasks_blocked()
        assert group.statistics().waiting == 2
        second.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert group.statistics().waiting == 1  # left the queue at once, not when a slot freed
    assert started == ["first", "third"]
    assert trio.current_time() == 2


async def test_cancelling_a_running_task_context_stops_only_that_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: dict[float, tc.Context] = {}

    async def work(seconds: float) -> None:
        seen[seconds] = tc.current()
        await trio.sleep(seconds)

    async with tc.open_group(tc.background()) as group:
        own = tc.with_cancel(group.context)
        group.start_soon(work, 100, context=own)
        group.start_soon(work, 3)
        await trio.sleep(1)
        own.cancel()  # no error out of the block: the task's own cancellation is quiet
    assert seen[100] is own and seen[3] is group.context
    assert trio.current_time() == 3
    assert group.context.err is not None  # cancelled after the block, as always


async def test_the_group_cancellation_still_reaches_a_task_with_its_own_context() -> None:
    async with tc.open_group(tc.background(), limit=1) as group:
        group.start_soon(trio.sleep_forever, context=tc.with_cancel(group.context))
        group.start_soon(trio.sleep_forever, context=tc.with_cancel(group.context))
        await trio.testing.wait_all_tasks_blocked()
        group.cancel()
    assert group.statistics().finished == 2


async def test_a_context_already_done_starts_nothing() -> None:
    ran = False

    async def work() -> None:
        nonlocal ran
        ran = True

    async with tc.open_group(tc.background()) as group:
        done = tc.with_cancel(group.context)
        done.cancel()
        group.start_soon(work, context=done)
    assert not ran and group.statistics().finished == 0


async def test_a_task_error_under_its_own_context_still_fails_the_group() -> None:
    async def fail() -> None:
        raise KeyError("x")

    with pytest.RaisesGroup(KeyError):
        async with tc.open_group(tc.background()) as group:
            group.start_soon(fail, context=tc.with_cancel(group.context))


async def test_bad_contexts_are_refused_before_anything_starts() -> None:
    async def work() -> None:
        raise AssertionError("never runs")

    async with tc.open_group(tc.background()) as group:
        with pytest.raises(ValueError, match=r"`context` must be group\.context or derived"):
            group.start_soon(work, context=tc.background())
        with pytest.raises(ValueError, match="`context`"):
            group.start_soon(work, context=tc.with_cancel(tc.background()))
        with pytest.raises(TypeError, match="`context`"):
            group.start_soon(work, context="ctx")  # type: ignore[arg-type]
    assert group.statistics().finished == 0
