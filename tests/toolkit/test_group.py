"""Tests for task groups (``open_group``), ``race`` and stuck-task reports, on trio's fake clock."""

from __future__ import annotations

import gc
import logging
import math
import tracemalloc
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

import trio_context as tc

BG = tc.background()


class Boom(Exception):
    pass


class Fatal(BaseException):
    """A non-Exception error (like KeyboardInterrupt, without trio's special handling)."""


# -- basics ----------------------------------------------------------------------------------


async def test_tasks_run_with_the_group_context_as_current(ctx: tc.CancelContext) -> None:
    seen: list[tc.Context] = []

    async def task() -> None:
        seen.append(tc.current())

    async with tc.open_group(ctx) as group:
        assert tc.current() is group.context
        group.start_soon(task)
        group.start_soon(task, name="named")
    assert seen == [group.context, group.context]
    assert group.context.err is not None  # the group's work is over: its context is cancelled


async def test_group_context_is_a_child_of_ctx(ctx: tc.CancelContext) -> None:
    outer = tc.with_value(ctx, "k", "v")
    async with tc.open_group(outer) as group:
        assert group.context.value("k") == "v"
        assert group.context in outer.children()


async def test_task_started_from_outside_the_group_still_sees_its_context(
    ctx: tc.CancelContext,
) -> None:
    seen: list[tc.Context] = []

    async def task() -> None:
        seen.append(tc.current())

    async with trio.open_nursery() as nursery, tc.open_group(ctx) as group:

        async def elsewhere() -> None:
            group.start_soon(task)

        nursery.start_soon(elsewhere)
        await trio.testing.wait_all_tasks_blocked()
    assert seen == [group.context]


async def test_task_names_default_to_the_function_like_trio(ctx: tc.CancelContext) -> None:
    names: list[str] = []

    async def record() -> None:
        names.append(trio.lowlevel.current_task().name)

    async with tc.open_group(ctx) as group:
        group.start_soon(record)
        group.start_soon(record, name="custom")
    assert sorted(names) == sorted(["custom", f"{__name__}.{record.__qualname__}"])


# -- errors ----------------------------------------------------------------------------------


async def _blocked_in_sleep(started: trio.Event, finished: list[str]) -> None:
    try:
        started.set()
        await trio.sleep_forever()
    finally:
        finished.append("sleep")


async def _blocked_in_receive(started: trio.Event, finished: list[str]) -> None:
    _send, receive = trio.open_memory_channel[int](0)
    try:
        started.set()
        await receive.receive()
    finally:
        finished.append("receive")


async def _blocked_in_done_wait(started: trio.Event, finished: list[str]) -> None:
    try:
        started.set()
        await tc.current().done.wait()
        await trio.lowlevel.checkpoint()  # done: the next checkpoint is interrupted
    finally:
        finished.append("done")


@pytest.mark.parametrize("blocked", [_blocked_in_sleep, _blocked_in_receive, _blocked_in_done_wait])
async def test_an_error_cancels_siblings_wherever_they_wait(
    ctx: tc.CancelContext,
    blocked: Callable[[trio.Event, list[str]], Awaitable[None]],
) -> None:
    finished: list[str] = []
    started = trio.Event()
    boom = Boom("first")

    async def fail() -> None:
        await started.wait()
        raise boom

    with pytest.raises(ExceptionGroup) as info:
        async with tc.open_group(ctx) as group:
            group.start_soon(blocked, started, finished)
            group.start_soon(fail)
    assert info.value.exceptions == (boom,)  # the siblings' cancellations are not errors
    assert len(finished) == 1
    assert group.context.cause is boom
    assert isinstance(group.context.err, tc.ContextCancelled)


async def test_only_real_errors_are_reported_in_order(ctx: tc.CancelContext) -> None:
    a, b = Boom("a"), Boom("b")
    a_failing = trio.Event()

    async def fail_a() -> None:
        await trio.testing.wait_all_tasks_blocked()
        a_failing.set()
        raise a

    async def fail_b() -> None:
        with trio.CancelScope(shield=True):
            await a_failing.wait()
            await trio.lowlevel.checkpoint()
        raise b  # fails while the group is already cancelled: still a real error

    with pytest.raises(ExceptionGroup) as info:
        async with tc.open_group(ctx) as group:
            group.start_soon(fail_b)
            group.start_soon(fail_a)
    assert info.value.exceptions == (a, b)
    assert group.context.cause is a


async def test_a_tasks_own_deadline_is_a_real_error(
    ctx: tc.CancelContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def own_timeout() -> None:
        with tc.with_timeout(tc.current(), 1).scope():
            await trio.sleep(10)

    with pytest.raises(ExceptionGroup) as info:
        async with tc.open_group(ctx) as group:
            group.start_soon(own_timeout)
            group.start_soon(trio.sleep_forever)
    [err] = info.value.exceptions
    assert isinstance(err, tc.DeadlineExceeded)
    assert group.context.cause is err


async def test_a_context_error_from_elsewhere_is_a_real_error(ctx: tc.CancelContext) -> None:
    other = tc.with_cancel(ctx)
    other.cancel()

    async def polls_the_wrong_context() -> None:
        other.check()

    with pytest.raises(ExceptionGroup) as info:
        async with tc.open_group(ctx) as group:
            group.start_soon(polls_the_wrong_context)
    [err] = info.value.exceptions
    assert isinstance(err, tc.ContextCancelled)


async def test_polling_the_group_context_after_cancel_is_not_an_error(
    ctx: tc.CancelContext,
) -> None:
    polling = trio.Event()

    async def poller() -> None:
        while True:
            tc.current().check()  # the to_thread / step-loop pattern
            polling.set()
            with trio.CancelScope(shield=True):
                await trio.lowlevel.checkpoint()

    async with tc.open_group(ctx) as group:
        group.start_soon(poller)
        await polling.wait()
        group.cancel(Boom("stop"))
    assert group.statistics().failed == 0


async def test_an_error_in_the_body_cancels_the_group_and_is_reported(
    ctx: tc.CancelContext,
) -> None:
    finished: list[str] = []
    boom = Boom("body")
    with pytest.raises(ExceptionGroup) as info:
        async with tc.open_group(ctx) as group:
            group.start_soon(_blocked_in_sleep, trio.Event(), finished)
            await trio.testing.wait_all_tasks_blocked()
            raise boom
    assert info.value.exceptions == (boom,)
    assert finished == ["sleep"]
    assert group.context.cause is boom


async def test_a_base_exception_gives_a_base_exception_group(ctx: tc.CancelContext) -> None:
    async def fatal() -> None:
        raise Fatal

    with pytest.raises(BaseExceptionGroup) as info:
        async with tc.open_group(ctx) as group:
            group.start_soon(fatal)
    assert not isinstance(info.value, ExceptionGroup)
    assert [type(e) for e in info.value.exceptions] == [Fatal]


async def test_an_exception_group_from_a_task_keeps_its_real_part(ctx: tc.CancelContext) -> None:
    async def inner_nursery() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            raise Boom("inner")

    with pytest.raises(ExceptionGroup) as info:
        async with tc.open_group(ctx) as group:
            group.start_soon(inner_nursery)
    [inner] = info.value.exceptions
    assert isinstance(inner, ExceptionGroup)
    assert [type(e) for e in inner.exceptions] == [Boom]


# -- cancellation: group vs outer --------------------------------------------------------------


async def test_group_cancel_is_quiet_and_never_touches_the_outer_ctx(ctx: tc.CancelContext) -> None:
    outer = tc.with_cancel(ctx)
    finished: list[str] = []
    async with tc.open_group(outer) as group:
        group.start_soon(_blocked_in_sleep, trio.Event(), finished)
        await trio.testing.wait_all_tasks_blocked()
        group.cancel(Boom("enough"))
        await trio.sleep_forever()  # the body is interrupted too
    assert finished == ["sleep"]
    assert outer.err is None
    assert isinstance(group.context.cause, Boom)


async def test_the_outer_ctx_cancels_the_group_and_the_block_says_why(
    ctx: tc.CancelContext,
) -> None:
    outer = tc.with_cancel(ctx)
    why = Boom("user pressed stop")
    finished: list[str] = []
    with pytest.raises(tc.ContextCancelled) as info:
        async with tc.open_group(outer) as group:
            group.start_soon(_blocked_in_sleep, trio.Event(), finished)
            await trio.testing.wait_all_tasks_blocked()
            outer.cancel(why)
            await trio.sleep_forever()
    assert info.value.__cause__ is why
    assert finished == ["sleep"]
    assert group.context.err is outer.err


async def test_the_outer_ctx_interrupting_only_tasks_still_raises(ctx: tc.CancelContext) -> None:
    outer = tc.with_cancel(ctx)

    async def cancel_soon() -> None:
        await trio.testing.wait_all_tasks_blocked()
        outer.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(cancel_soon)
        with pytest.raises(tc.ContextCancelled):
            async with tc.open_group(outer) as group:
                group.start_soon(trio.sleep_forever)  # the body is done: the exit waits


async def test_the_outer_deadline_ends_the_group(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    with pytest.raises(tc.DeadlineExceeded):
        async with tc.open_group(tc.with_timeout(ctx, 5)) as group:
            group.start_soon(trio.sleep_forever)
    assert trio.current_time() - start == pytest.approx(5)


async def test_the_outer_ctx_ending_after_the_work_raises_nothing(ctx: tc.CancelContext) -> None:
    outer = tc.with_cancel(ctx)
    async with tc.open_group(outer) as group:
        group.start_soon(trio.lowlevel.checkpoint)
    outer.cancel()
    assert group.statistics().finished == 1


async def test_an_outer_trio_cancel_passes_through(ctx: tc.CancelContext) -> None:
    finished: list[str] = []
    with trio.CancelScope() as cs:
        async with tc.open_group(ctx) as group:
            group.start_soon(_blocked_in_sleep, trio.Event(), finished)
            await trio.testing.wait_all_tasks_blocked()
            cs.cancel()
            await trio.sleep_forever()
    assert cs.cancelled_caught
    assert finished == ["sleep"]


async def test_seed_scenario_a_worker_that_never_looks_at_done_still_stops(
    ctx: tc.CancelContext,
) -> None:
    # The Go bug: a goroutine blocked on a channel without selecting on ctx.Done() leaks.
    job = tc.with_cancel(ctx)
    send, receive = trio.open_memory_channel[int](0)
    got: list[int] = []
    stopped = False

    async def worker() -> None:
        nonlocal stopped
        try:
            while True:
                got.append(await receive.receive())
        finally:
            stopped = True

    with pytest.raises(tc.ContextCancelled):
        async with tc.open_group(job) as group:
            group.start_soon(worker)
            await send.send(1)
            await trio.testing.wait_all_tasks_blocked()
            job.cancel()
    assert got == [1]
    assert stopped


async def test_ten_thousand_tasks_cancelled_at_once_all_join(ctx: tc.CancelContext) -> None:
    n = 10_000
    joined = 0

    async def task() -> None:
        nonlocal joined
        try:
            await trio.sleep_forever()
        finally:
            joined += 1

    async with tc.open_group(ctx) as group:
        for _ in range(n):
            group.start_soon(task)
        await trio.testing.wait_all_tasks_blocked()
        assert group.statistics().running == n
        group.cancel()
    assert joined == n
    assert group.statistics() == tc.GroupStatistics(
        running=0, waiting=0, finished=n, failed=0, limit=None, cancelled=True
    )


# -- limit -----------------------------------------------------------------------------------


async def test_limit_two_never_runs_more_than_two(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    running = peak = done = 0

    async def task(i: int) -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        await trio.sleep(1 + i % 3)
        running -= 1
        done += 1

    async with tc.open_group(ctx, limit=2) as group:
        for i in range(100):
            group.start_soon(task, i)
        await trio.testing.wait_all_tasks_blocked()
        stats = group.statistics()
        assert (stats.running, stats.waiting, stats.limit) == (2, 98, 2)
    assert (peak, done) == (2, 100)


async def test_waiting_tasks_start_in_fifo_order(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    starts: dict[int, float] = {}

    async def task(i: int) -> None:
        starts[i] = trio.current_time()
        await trio.sleep(1 + i % 4)

    for limit in (1, 3):
        starts.clear()
        async with tc.open_group(ctx, limit=limit) as group:
            for i in range(30):
                group.start_soon(task, i)
        times = [starts[i] for i in range(30)]
        assert times == sorted(times)  # no task starts before one requested earlier
        if limit == 1:
            assert len(set(times)) == 30


async def test_a_queued_task_never_starts_once_the_group_is_cancelled(
    ctx: tc.CancelContext,
) -> None:
    started: list[str] = []

    async def task(name: str) -> None:
        started.append(name)
        await trio.sleep_forever()

    async with tc.open_group(ctx, limit=1) as group:
        group.start_soon(task, "first")
        group.start_soon(task, "queued")
        await trio.testing.wait_all_tasks_blocked()
        assert group.statistics().waiting == 1
        group.cancel()
    assert started == ["first"]


async def test_a_slot_freed_as_the_group_is_cancelled_is_not_used(ctx: tc.CancelContext) -> None:
    started: list[str] = []
    release = trio.Event()

    async def first() -> None:
        with trio.CancelScope(shield=True):
            await release.wait()

    async def queued() -> None:
        started.append("queued")

    async with tc.open_group(ctx, limit=1) as group:
        group.start_soon(first)
        group.start_soon(queued)
        await trio.testing.wait_all_tasks_blocked()
        release.set()  # first ends, handing its slot to "queued" ...
        group.cancel()  # ... which is woken, but finds the group cancelled
    assert started == []


async def test_start_waits_for_a_slot(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    async def serve(port: int, task_status: trio.TaskStatus[int]) -> None:
        task_status.started(port)
        await trio.sleep(5)

    async with tc.open_group(ctx, limit=1) as group:
        assert await group.start(serve, 1) == 1
        t0 = trio.current_time()
        assert await group.start(serve, 2) == 2
        assert trio.current_time() - t0 == pytest.approx(5)


# -- start() ---------------------------------------------------------------------------------


async def test_start_returns_the_started_value_and_runs_in_the_group(ctx: tc.CancelContext) -> None:
    async def serve(task_status: trio.TaskStatus[tc.Context]) -> None:
        task_status.started(tc.current())
        await trio.sleep_forever()

    async with tc.open_group(ctx) as group:
        assert await group.start(serve) is group.context
        group.cancel()


async def test_an_error_before_started_goes_to_the_caller(ctx: tc.CancelContext) -> None:
    async def broken(task_status: trio.TaskStatus[None]) -> None:
        raise Boom("bind failed")

    async with tc.open_group(ctx) as group:
        with pytest.raises(Boom):
            await group.start(broken)
    assert group.statistics().failed == 0


async def test_an_error_after_started_goes_to_the_group(ctx: tc.CancelContext) -> None:
    async def crashes(task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.lowlevel.checkpoint()
        raise Boom("later")

    with pytest.raises(ExceptionGroup) as info:
        async with tc.open_group(ctx) as group:
            await group.start(crashes)
    assert [type(e) for e in info.value.exceptions] == [Boom]


# -- bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"limit": 0}, ValueError, "`limit` must be a positive int"),
        ({"limit": -1}, ValueError, "`limit` must be a positive int"),
        ({"limit": 1.5}, TypeError, "`limit` must be a positive int or None, not float"),
        ({"limit": True}, TypeError, "`limit`"),
        ({"grace": -1}, ValueError, "`grace` must be non-negative"),
        ({"grace": math.nan}, ValueError, "`grace`"),
        ({"grace": "5"}, TypeError, "`grace` must be a number"),
        ({"strict": "yes"}, TypeError, "`strict` must be a bool"),
    ],
)
async def test_bad_options(kwargs: dict[str, Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        async with tc.open_group(BG, **kwargs):
            pass  # pragma: no cover


async def test_bad_ctx() -> None:
    with pytest.raises(TypeError, match=r"`ctx` must be a trio_context\.Context"):
        async with tc.open_group(None):  # type: ignore[arg-type]
            pass  # pragma: no cover


async def test_bad_task_functions(ctx: tc.CancelContext) -> None:
    def sync() -> None:
        pass

    async with tc.open_group(ctx) as group:
        coro = trio.sleep(1)  # noqa: ASYNC105 - the mistake under test
        with pytest.raises(TypeError, match=r"coroutine object.*start_soon\(fn, arg\)"):
            group.start_soon(coro)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="`afn` must be an async function, not int"):
            group.start_soon(3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="returned NoneType, not a coroutine"):
            group.start_soon(sync)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="coroutine object"):
            await group.start(trio.sleep(1))  # type: ignore[call-overload]  # noqa: ASYNC105
    assert group.statistics().finished == 0


async def test_starting_in_a_closed_group(ctx: tc.CancelContext) -> None:
    async with tc.open_group(ctx) as group:
        pass
    with pytest.raises(RuntimeError, match="group is closed"):
        group.start_soon(trio.sleep, 1)
    with pytest.raises(RuntimeError, match="group is closed"):
        await group.start(trio.sleep, 1)


async def test_repr_and_statistics(ctx: tc.CancelContext) -> None:
    async with tc.open_group(ctx, limit=1) as group:
        group.start_soon(trio.sleep_forever)
        group.start_soon(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        assert "active, 1 running, 1 waiting, limit 1" in repr(group)
        group.cancel()
    assert "closed" in repr(group)
    assert type(group).__module__ == "trio_context"


# -- stuck tasks ------------------------------------------------------------------------------


async def _stubborn(release: trio.Event) -> None:
    with trio.CancelScope(shield=True):  # ignores cancellation until released
        await release.wait()


async def test_a_stuck_task_is_logged_with_its_stack(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    release = trio.Event()
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            await trio.sleep(4.9)
            assert not caplog.records  # not before the grace period
            await trio.sleep(0.2)
            assert len(caplog.records) == 1
            release.set()

        async with tc.open_group(ctx, grace=5) as group:
            group.start_soon(_stubborn, release, name="stubborn")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(watch)
            group.cancel(Boom("stop"))
    [record] = caplog.records
    assert (record.name, record.levelno) == ("trio_context", logging.WARNING)
    message = record.getMessage()
    assert "task 'stubborn' is still running 5 s after its group's context was cancelled" in message
    assert "in _stubborn" in message and "await release.wait()" in message  # the stack
    assert "cancel() called by task" in message and "Boom('stop')" in message  # explain()


async def test_a_stuck_task_raises_with_strict(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    release = trio.Event()

    async def release_later() -> None:
        await trio.sleep(60)
        release.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(release_later)
        with pytest.raises(ExceptionGroup) as info:
            async with tc.open_group(ctx, grace=2, strict=True) as g:
                g.start_soon(_stubborn, release, name="stubborn")
                await trio.testing.wait_all_tasks_blocked()
                g.cancel()
    [err] = info.value.exceptions
    assert isinstance(err, tc.StuckTaskError)
    assert err.task_name == "stubborn"
    assert "_stubborn" in err.stack
    assert "cancel() called by task" in err.explanation


async def test_a_stuck_body_is_reported(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with tc.open_group(ctx, grace=1) as group:
        group.cancel()
        with trio.CancelScope(shield=True):
            await trio.sleep(3)
    [record] = caplog.records
    assert "test_a_stuck_body_is_reported" in record.getMessage()


@pytest.mark.parametrize("grace", [None, 5])
async def test_prompt_tasks_are_not_reported_nor_delayed(
    ctx: tc.CancelContext,
    grace: float | None,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = trio.current_time()
    async with tc.open_group(ctx, grace=grace) as group:
        group.start_soon(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        group.cancel()
    await trio.testing.wait_all_tasks_blocked()
    assert trio.current_time() == start  # the watchdog did not keep the group open
    assert not caplog.records


async def test_no_report_without_grace(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    release = trio.Event()

    async def release_later() -> None:
        await trio.sleep(100)
        release.set()

    async with trio.open_nursery() as nursery, tc.open_group(ctx, grace=None) as group:
        group.start_soon(_stubborn, release)
        nursery.start_soon(release_later)
        group.cancel()
    assert not caplog.records


# -- race ------------------------------------------------------------------------------------


async def _after(seconds: float, value: object, log: list[str]) -> object:
    try:
        await trio.sleep(seconds)
        return value
    finally:
        log.append(f"{value} ended")


async def test_race_returns_the_first_and_joins_the_rest(
    ctx: tc.CancelContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    start = trio.current_time()
    result = await tc.race(ctx, partial(_after, 3, "slow", log), partial(_after, 1, "fast", log))
    assert result == "fast"
    assert sorted(log) == ["fast ended", "slow ended"]  # the loser was joined before returning
    assert trio.current_time() - start == pytest.approx(1)


async def test_race_raises_the_first_error_and_joins_the_rest(
    ctx: tc.CancelContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []

    async def fail() -> object:
        await trio.sleep(1)
        raise Boom("first")

    with pytest.raises(Boom, match="first"):
        await tc.race(ctx, partial(_after, 3, "slow", log), fail)
    assert log == ["slow ended"]


async def test_race_a_losers_error_is_logged_not_raised(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def bad_loser() -> object:
        try:
            await trio.sleep(10)
        finally:
            raise Boom("while cancelled")

    log: list[str] = []
    assert await tc.race(ctx, bad_loser, partial(_after, 1, "winner", log)) == "winner"
    [record] = caplog.records
    assert "race(): a loser raised" in record.getMessage()


async def test_race_with_one_function(ctx: tc.CancelContext) -> None:
    async def one() -> int:
        return 1

    assert await tc.race(ctx, one) == 1


async def test_race_cancelled_by_ctx(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    log: list[str] = []
    with pytest.raises(tc.DeadlineExceeded):
        await tc.race(tc.with_timeout(ctx, 1), partial(_after, 5, "a", log))
    assert log == ["a ended"]


async def test_race_bad_inputs() -> None:
    with pytest.raises(ValueError, match="at least one"):
        await tc.race(BG)
    with pytest.raises(TypeError, match=r"`afns\[1\]` must be an async function, not a coroutine"):
        await tc.race(BG, trio.lowlevel.checkpoint, trio.sleep(1))  # type: ignore[arg-type]  # noqa: ASYNC105


# -- fixed costs (issue "Core performance at every scale") ------------------------------------


async def test_a_cancelled_group_spawns_no_watchdog_task() -> None:
    # The watchdog is a timer of the run's timer task: cancelling a group with a task still
    # running adds no task to the group's nursery (it used to spawn one per cancelled group).
    async with tc.open_group(tc.background()) as group:
        group.start_soon(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        nursery = trio.lowlevel.current_task().child_nurseries[-1]  # the group's
        assert len(nursery.child_tasks) == 1
        group.cancel()
        assert len(nursery.child_tasks) == 1


async def test_finished_races_leave_no_timers_behind() -> None:
    # Each race cancels its loser, which arms the stuck-task watchdog; a race that ends
    # disarms it, so a stream of races keeps nothing pending (tracemalloc, not timing).
    async def quick() -> int:
        await trio.lowlevel.checkpoint()
        return 1

    async def races(n: int) -> None:
        for _ in range(n):
            assert await tc.race(tc.background(), quick, trio.sleep_forever) == 1

    await races(200)  # warm-up: the timer task and its heap exist
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await races(5_000)
        gc.collect()  # trio's own exception groups (a cancelled loser) are cyclic garbage
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < 64 * 1024, retained


async def test_group_deadline_and_current_through_the_nursery_scope(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The group's context is tied to the nursery's own scope: its deadline is the scope's,
    # tasks see it as current(), and its end interrupts them and the body.
    ctx = tc.with_timeout(tc.background(), 3)
    seen: list[tc.Context] = []

    async def task() -> None:
        seen.append(tc.current())
        await trio.sleep_forever()

    with pytest.raises(tc.DeadlineExceeded):
        async with tc.open_group(ctx) as group:
            group.start_soon(task)
            assert tc.current() is group.context
            await trio.sleep_forever()
    assert seen == [group.context] and trio.current_time() == 3
    assert tc.current() is tc.background()
