"""Tests for graceful/hard stops and cleanup contexts (``_stops.py``), on trio's fake clock."""

from __future__ import annotations

import math
import signal

import pytest
import trio
import trio.testing

import trio_context as tc
from trio_context import SignalReceived, cleanup, hard_context, open_signal_context, with_grace

KEY = object()


async def test_with_grace_ends_seconds_after_soft(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    soft = tc.with_cancel(ctx)
    hard = with_grace(soft, 5)
    await trio.sleep(100)
    assert not hard.done.is_set()
    start = trio.current_time()
    why = ValueError("user pressed stop")
    soft.cancel(why)
    assert not hard.done.is_set()
    await hard.done.wait()
    assert trio.current_time() - start == pytest.approx(5)
    assert isinstance(hard.err, tc.DeadlineExceeded)
    assert hard.cause is why


async def test_with_grace_after_a_soft_deadline(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    soft = tc.with_timeout(ctx, 3)
    hard = with_grace(soft, 2)
    with hard.move_on():
        await trio.sleep_forever()
    assert trio.current_time() - start == pytest.approx(5)
    assert isinstance(soft.err, tc.DeadlineExceeded)
    assert isinstance(hard.cause, tc.DeadlineExceeded)


async def test_with_grace_keeps_values_and_ignores_soft_until_grace(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    parent = tc.with_cancel(ctx)
    soft = tc.with_value(parent, KEY, "job-7")
    hard = with_grace(soft, 10)
    assert hard.value(KEY) == "job-7"
    assert hard.deadline == math.inf
    parent.cancel()
    await trio.sleep(9.5)
    assert not hard.done.is_set()
    await trio.sleep(1)
    assert hard.done.is_set()


async def test_with_grace_zero_follows_soft_at_once(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    soft = tc.with_cancel(ctx)
    hard = with_grace(soft, 0)
    start = trio.current_time()
    why = RuntimeError("stop")
    soft.cancel(why)
    await hard.done.wait()
    assert trio.current_time() == start
    assert hard.cause is why
    assert isinstance(hard.err, tc.DeadlineExceeded)  # like any other grace, not cancelled


async def test_with_grace_already_done_soft(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    soft = tc.with_cancel(ctx)
    soft.cancel()
    start = trio.current_time()
    hard = with_grace(soft, 4)
    await hard.done.wait()
    assert trio.current_time() - start == pytest.approx(4)


async def test_with_grace_infinite_waits_for_explicit_cancel(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    soft = tc.with_cancel(ctx)
    hard = with_grace(soft, math.inf)
    soft.cancel()
    await trio.sleep(80_000)
    assert not hard.done.is_set()
    hard.cancel()
    assert isinstance(hard.err, tc.ContextCancelled)


async def test_cancelling_hard_early_stops_the_grace_timer(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    soft = tc.with_cancel(ctx)
    hard = with_grace(soft, 1)
    hard.cancel()
    soft.cancel()
    await trio.sleep(5)
    assert isinstance(hard.err, tc.ContextCancelled)  # not turned into a DeadlineExceeded


@pytest.mark.parametrize(
    ("seconds", "error", "match"),
    [
        (-1, ValueError, "`seconds` must be non-negative"),
        (math.nan, ValueError, "`seconds`"),
        ("5", TypeError, "`seconds` must be a number"),
        (True, TypeError, "`seconds`"),
    ],
)
async def test_with_grace_rejects_bad_seconds(
    seconds: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        with_grace(tc.background(), seconds)  # type: ignore[arg-type]


def test_with_grace_and_cleanup_need_trio() -> None:
    with pytest.raises(RuntimeError, match="with_grace\\(\\) needs a running trio loop"):
        with_grace(tc.background(), 1)
    with pytest.raises(RuntimeError, match="cleanup\\(\\) needs a running trio loop"):
        cleanup(tc.background(), 1)


async def test_with_grace_and_cleanup_reject_non_contexts() -> None:
    with pytest.raises(TypeError, match=r"`soft` must be a trio_context\.Context"):
        with_grace(None, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`ctx` must be a trio_context\.Context"):
        cleanup("ctx", 1)  # type: ignore[arg-type]


async def test_cleanup_runs_after_cancel_and_is_cut_at_its_own_deadline(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    job = tc.with_cancel(ctx)
    jctx = tc.with_value(job, KEY, "job-1")
    steps: list[str] = []
    with pytest.raises(tc.ContextCancelled):
        try:
            with jctx.scope():
                job.cancel()
                await trio.sleep_forever()
        finally:
            start = trio.current_time()
            cctx = cleanup(jctx, 10)
            assert cctx.value(KEY) == "job-1"
            assert not cctx.done.is_set()
            with pytest.raises(tc.DeadlineExceeded):
                with cctx.scope():
                    steps.append("upload")
                    await trio.sleep(3)
                    steps.append("uploaded")
                    await trio.sleep(100)
                    steps.append("never")
            assert trio.current_time() - start == pytest.approx(10)
    assert steps == ["upload", "uploaded"]


async def test_cleanup_zero_and_infinite_budget(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    assert cleanup(ctx, 0).done.is_set()
    forever = cleanup(ctx, math.inf)
    assert forever.deadline == math.inf
    await trio.sleep(80_000)
    assert not forever.done.is_set()
    forever.cancel()


async def test_hard_context_outside_a_signal_context_is_none() -> None:
    assert hard_context(tc.background()) is None
    assert hard_context(tc.with_value(tc.with_cancel(tc.background()), KEY, 1)) is None


async def test_forced_stop_reaches_grace_and_cleanup_at_once(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_signal_context(ctx, signals=(signal.SIGUSR1,)) as soft:
        below = tc.with_value(soft, KEY, "below the twin")
        hard = hard_context(below)
        assert hard is not None
        assert hard_context(soft) is hard
        graced = with_grace(below, 100)
        cctx = cleanup(below, 100)
        # values set below the hard twin are kept (see _stops.py and
        # docs/explanation/internals.md)
        assert graced.value(KEY) == cctx.value(KEY) == "below the twin"

        signal.raise_signal(signal.SIGUSR1)
        await soft.done.wait()
        assert not graced.done.is_set() and not cctx.done.is_set()
        start = trio.current_time()
        signal.raise_signal(signal.SIGUSR1)
        await graced.done.wait()
        await cctx.done.wait()
        assert trio.current_time() == start
        assert isinstance(cctx.cause, SignalReceived) and cctx.cause.forced
        assert isinstance(graced.cause, SignalReceived) and graced.cause.forced
        # made after the forced stop: done at once
        assert cleanup(below, 100).done.is_set()
        assert with_grace(below, 100).done.is_set()
