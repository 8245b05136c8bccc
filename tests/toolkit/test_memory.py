"""Tests for memory budgets: ``run_process(..., max_rss=...)`` and ``tc.MemoryExceeded``.

A real child (or grandchild) allocates past the limit and says so; the test then checks that
the tree was stopped within one sampling period plus the grace period, with outcome
``"memory"``, and that nothing of it is left.
"""

from __future__ import annotations

import copy
import pickle
import sys

import pytest
import trio

import trio_context as tc
from support import alive, live_members
from trio_context import run_process

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="samples /proc")

MiB = 1 << 20
LIMIT = 64 * MiB
INTERVAL = 0.1
GRACE = 0.5
# Says it starts, writes every page (bytes * n does; ~0.1 s), then waits to be stopped.
ALLOCATE = (
    "import os, sys, time\n"
    "print('allocating', os.getpid(), flush=True)\n"
    "blob = b'x' * ({mib} << 20)\n"
    "time.sleep(1000)\n"
)


def allocate(mib: int) -> list[str]:
    return [sys.executable, "-c", ALLOCATE.format(mib=mib)]


class Seen:
    """An ``on_line`` that notes when (trio time) the child started allocating, and its pid."""

    def __init__(self) -> None:
        self.at: float | None = None
        self.pid = 0

    def __call__(self, stream: str, line: str) -> None:
        if line.startswith("allocating") and self.at is None:
            self.at = trio.current_time()
            self.pid = int(line.split()[1])


async def run_until_stopped(
    ctx: tc.Context, command: list[str], **kwargs: object
) -> tuple[tc.ProcessResult, Seen, float]:
    seen = Seen()
    with trio.fail_after(60):
        result = await run_process(
            ctx,
            command,
            on_line=seen,
            max_rss=LIMIT,
            rss_interval=INTERVAL,
            grace=GRACE,
            **kwargs,  # type: ignore[arg-type]
        )
    return result, seen, trio.current_time()


def assert_memory_stop(result: tc.ProcessResult, seen: Seen, ended: float) -> None:
    assert result.outcome == "memory", result
    assert isinstance(result.cause, tc.MemoryExceeded)
    assert result.cause.limit == LIMIT
    assert result.cause.rss > LIMIT
    assert seen.at is not None and result.stop_duration is not None
    stopped_at = ended - result.stop_duration
    # Detected within one sampling period of the allocation (generous slack for a busy
    # machine), ended within the grace period after that.
    assert stopped_at - seen.at <= INTERVAL + 1.0
    assert ended - seen.at <= INTERVAL + GRACE + 2.0
    assert live_members(result.pid) == []
    assert not alive(seen.pid)


async def test_child_past_the_limit_is_stopped(ctx: tc.CancelContext) -> None:
    result, seen, ended = await run_until_stopped(ctx, allocate(128))
    assert_memory_stop(result, seen, ended)
    assert not result.killed  # SIGTERM was enough
    assert "memory:" in result.describe() and "limit 64.0 MiB" in result.describe()


async def test_grandchild_past_the_limit_stops_the_tree(ctx: tc.CancelContext) -> None:
    # The leader is a small shell; its child allocates. The tree's total counts.
    script = f'{sys.executable} -c "{ALLOCATE.format(mib=128)}" & wait'
    result, seen, ended = await run_until_stopped(ctx, ["sh", "-c", script])
    assert_memory_stop(result, seen, ended)


async def test_escaped_grandchild_counts_under_the_subreaper(ctx: tc.CancelContext) -> None:
    # It leaves the session (setsid) and its parent exits: only the subreaper still finds it.
    script = f'setsid {sys.executable} -c "{ALLOCATE.format(mib=128)}" & exec sleep 1000'
    async with tc.open_subreaper():
        result, seen, ended = await run_until_stopped(ctx, ["sh", "-c", script])
    assert_memory_stop(result, seen, ended)
    assert result.contained


async def test_tree_ignoring_term_is_killed_after_grace(ctx: tc.CancelContext) -> None:
    code = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + ALLOCATE.format(
        mib=128
    )
    result, seen, ended = await run_until_stopped(ctx, [sys.executable, "-c", code])
    assert_memory_stop(result, seen, ended)
    assert result.killed and result.stop_duration is not None
    assert result.stop_duration >= GRACE


async def test_under_the_limit_runs_to_the_end(ctx: tc.CancelContext) -> None:
    result = await run_process(
        ctx, [sys.executable, "-c", "b = b'x' * (8 << 20)"], max_rss=LIMIT, rss_interval=0.05
    )
    assert result.outcome == "exited" and result.returncode == 0 and result.cause is None


async def test_check_raises_process_failed(ctx: tc.CancelContext) -> None:
    with pytest.raises(tc.ProcessFailed, match="memory") as info:
        await run_process(ctx, allocate(128), max_rss=LIMIT, rss_interval=INTERVAL, check=True)
    assert info.value.result.outcome == "memory"
    assert not ctx.done.is_set()  # a limit of the call, not the caller's context


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1G"])
async def test_bad_max_rss(ctx: tc.CancelContext, bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="`max_rss`"):
        await run_process(ctx, ["true"], max_rss=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
async def test_bad_rss_interval(ctx: tc.CancelContext, bad: float) -> None:
    with pytest.raises(ValueError, match="`rss_interval`"):
        await run_process(ctx, ["true"], max_rss=LIMIT, rss_interval=bad)


def test_memory_exceeded_copies_and_pickles() -> None:
    exc = tc.MemoryExceeded(700 * MiB, 512 * MiB)
    assert str(exc) == "the process tree's resident memory (700.0 MiB) passed max_rss (512.0 MiB)"
    for clone in (pickle.loads(pickle.dumps(exc)), copy.copy(exc), copy.deepcopy(exc)):
        assert isinstance(clone, tc.MemoryExceeded)
        assert (clone.rss, clone.limit, str(clone)) == (exc.rss, exc.limit, str(exc))


async def test_explain_says_what_was_exceeded() -> None:
    memory = tc.with_cancel(tc.background())
    memory.cancel(tc.MemoryExceeded(3 << 30, 2 << 30))
    text = memory.explain()
    assert "MemoryExceeded" in text and "(3.0 GiB) passed max_rss (2.0 GiB)" in text
