"""Idle deadlines: with_idle_timeout() and touch()."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

import trio_context as tc


async def test_touch_keeps_it_alive_indefinitely(autojump_clock: trio.testing.MockClock) -> None:
    ctx = tc.with_idle_timeout(tc.background(), 10)
    for _ in range(1_000):
        await trio.sleep(9)
        assert not ctx.done.is_set()
        ctx.touch()
    assert trio.current_time() == 9_000
    assert ctx.deadline == 9_010


async def test_silence_ends_it_at_exactly_the_idle_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ctx = tc.with_idle_timeout(tc.background(), 10)
    await trio.sleep(4)
    ctx.touch()
    await ctx.done.wait()
    assert trio.current_time() == 14
    assert isinstance(ctx.err, tc.DeadlineExceeded)
    assert isinstance(ctx.cause, tc.IdleTimeout)
    assert str(ctx.cause) == "no progress for 10 s"
    assert ctx.cause.seconds == 10


async def test_bound_scope_is_interrupted_at_the_moved_idle_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ctx = tc.with_idle_timeout(tc.background(), 5)

    async def progress() -> None:
        for _ in range(3):
            await trio.sleep(4)
            ctx.touch()

    with pytest.RaisesGroup(tc.DeadlineExceeded):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress)
            with ctx.scope():  # a scope entered before the touches must not fire at t=5
                await trio.sleep_forever()
    assert trio.current_time() == 17


async def test_parent_deadline_still_wins_when_earlier(
    autojump_clock: trio.testing.MockClock,
) -> None:
    parent = tc.with_timeout(tc.background(), 3, cause=ValueError("job timeout"))
    ctx = tc.with_idle_timeout(parent, 10)
    assert ctx.deadline == 3
    await ctx.done.wait()
    assert trio.current_time() == 3
    assert ctx.err is parent.err and str(ctx.cause) == "job timeout"


async def test_parent_cancel_ends_it(autojump_clock: trio.testing.MockClock) -> None:
    parent = tc.with_cancel(tc.background())
    ctx = tc.with_idle_timeout(parent, 10)
    parent.cancel()
    assert isinstance(ctx.err, tc.ContextCancelled)


async def test_touch_from_a_worker_thread() -> None:  # real clock: autojump would jump
    ctx = tc.with_idle_timeout(tc.background(), 10)

    def step_loop() -> None:
        for _ in range(5):
            tc.current().check()
            ctx.touch()

    with ctx.scope():
        await trio.to_thread.run_sync(step_loop)
    assert ctx.err is None


async def test_given_cause_and_children(autojump_clock: trio.testing.MockClock) -> None:
    ctx = tc.with_idle_timeout(tc.background(), 2, cause=RuntimeError("stalled"))
    child = tc.with_cancel(ctx)
    calls: list[float] = []
    tc.after_func(child, lambda: calls.append(trio.current_time()))
    await child.done.wait()
    assert child.err is ctx.err and str(child.cause) == "stalled"
    await trio.testing.wait_all_tasks_blocked()
    assert calls == [2.0]


async def test_zero_is_done_at_once_and_bad_input() -> None:
    assert tc.with_idle_timeout(tc.background(), 0).done.is_set()
    with pytest.raises(ValueError, match="`seconds` must be non-negative"):
        tc.with_idle_timeout(tc.background(), -1)
    with pytest.raises(ValueError, match="NaN"):
        tc.with_idle_timeout(tc.background(), math.nan)
    with pytest.raises(TypeError, match="`parent` must be"):
        tc.with_idle_timeout("nope", 1)  # type: ignore[arg-type]


def test_needs_trio() -> None:
    with pytest.raises(RuntimeError, match="needs a running trio loop"):
        tc.with_idle_timeout(tc.background(), 1)


async def test_real_clock_touch_moves_deadline() -> None:
    ctx = tc.with_idle_timeout(tc.background(), 30)
    first = ctx.deadline
    assert abs(first - (trio.current_time() + 30)) < 1
    ctx.touch()
    assert ctx.deadline >= first
    assert ctx.remaining() <= 30


def test_idle_timeout_error_copies_and_pickles() -> None:
    import copy
    import pickle

    err = tc.IdleTimeout(0.5)
    for clone in (copy.copy(err), pickle.loads(pickle.dumps(err))):
        assert isinstance(clone, tc.IdleTimeout)
        assert clone.seconds == 0.5 and str(clone) == "no progress for 0.5 s"
