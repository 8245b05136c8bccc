"""Go's errgroup tests (golang.org/x/sync/errgroup, errgroup_test.go), ported to ``open_group``.

The mapping (docs/internals.md, "errgroup parity"): ``errgroup.WithContext`` is
``open_group(ctx)``; the zero ``Group`` (errors do not cancel the others) is
``open_group(ctx, cancel_on_error=False)``; ``SetLimit(n)`` is ``limit=n``; ``Go`` under a limit
(it blocks for a slot) is ``await group.go(...)``; ``TryGo`` is ``group.try_start(...)``;
``Wait`` is the end of the ``async with`` block (all errors, as an ``ExceptionGroup``).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trio_context as tc


async def test_zero_group_runs_every_task_and_reports_the_errors(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # TestZeroGroup: errors do not cancel the others; Wait returns them.
    err1, err2 = ValueError("err1"), ValueError("err2")
    for errs in ([], [None], [err1], [err1, None], [err1, None, err2]):
        ran: list[int] = []

        async def task(i: int, err: Exception | None, ran: list[int] = ran) -> None:
            await trio.sleep(0.01 * i)  # later tasks run after an earlier one failed
            ran.append(i)
            if err is not None:
                raise err

        want = [e for e in errs if e is not None]
        try:
            async with tc.open_group(tc.background(), cancel_on_error=False) as group:
                for i, err in enumerate(errs):
                    group.start_soon(task, i, err)
        except ExceptionGroup as eg:
            assert list(eg.exceptions) == want
        else:
            assert want == []
        assert sorted(ran) == list(range(len(errs)))


async def test_with_context_cancels_on_the_first_error() -> None:
    # TestWithContext: the first error cancels the derived context; Wait returns it.
    err1 = ValueError("err1")
    for errs in ([], [None], [err1], [err1, None]):
        with pytest.RaisesGroup(ValueError) if any(errs) else _nothing():
            async with tc.open_group(tc.background()) as group:
                for err in errs:

                    async def task(err: Exception | None = err) -> None:
                        if err is not None:
                            raise err

                    group.start_soon(task)
        if any(errs):
            assert isinstance(group.context.err, tc.ContextCancelled)
            assert group.context.cause is err1
        # after Wait the context is done either way (Go: "ctx.Err() != nil after Wait")
        assert group.context.err is not None


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


async def test_go_limit_blocks_the_producer(autojump_clock: trio.testing.MockClock) -> None:
    # TestGoLimit: with SetLimit(3), Go blocks once 3 run; never more than 3 at once.
    limit, active, peak = 3, 0, 0
    started_at: list[float] = []

    async def task() -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await trio.sleep(1)
        active -= 1

    async with tc.open_group(tc.background(), limit=limit) as group:
        for _ in range(10):
            await group.go(task)
            started_at.append(trio.current_time())
            assert group.statistics().waiting == 0  # the producer waited, nothing queued
    assert peak == limit
    assert started_at == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]


async def test_try_go() -> None:
    # TestTryGo: with SetLimit(n), n TryGo succeed, the next fails; once they finish, it works.
    n = 42
    release = trio.Event()

    async def fn() -> None:
        await release.wait()

    async with tc.open_group(tc.background(), limit=n) as group:
        for i in range(n):
            assert group.try_start(fn), f"TryGo should succeed at the {i}-th call"
        assert not group.try_start(fn), "TryGo is expected to fail when every slot is taken"
        release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert group.statistics().running == 0
        assert group.try_start(fn), "TryGo should succeed after all goroutines finished"
    async with tc.open_group(tc.background(), limit=1) as group:
        blocker = trio.Event()

        async def hold() -> None:
            await blocker.wait()

        assert group.try_start(hold)
        assert not group.try_start(hold)
        blocker.set()


async def test_try_start_does_not_jump_the_queue_nor_call_afn_when_refused() -> None:
    called: list[str] = []

    async def fn(name: str) -> None:
        called.append(name)
        await trio.sleep_forever()

    async with tc.open_group(tc.background(), limit=1) as group:
        group.start_soon(fn, "running")
        group.start_soon(fn, "queued")  # waits for the slot
        assert not group.try_start(fn, "refused")
        await trio.testing.wait_all_tasks_blocked()
        group.cancel()
        assert not group.try_start(fn, "done")
    assert called == ["running"]


async def test_go_raises_the_groups_err_when_it_ends_while_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def fail_later() -> None:
        await trio.sleep(1)
        raise ValueError("boom")

    produced = 0
    with pytest.RaisesGroup(ValueError):
        async with tc.open_group(tc.background(), limit=1) as group:
            await group.go(fail_later)
            for _ in range(5):
                await group.go(trio.sleep, 10)  # the failure ends the group while we wait
                produced += 1  # pragma: no cover
    assert produced == 0
    assert group.statistics().running == 0


async def test_go_without_a_limit_starts_at_once_and_checks_its_argument() -> None:
    ran: list[int] = []

    async def task(i: int) -> None:
        ran.append(i)

    async with tc.open_group(tc.background()) as group:
        await group.go(task, 1)
        assert group.try_start(task, 2)
        with pytest.raises(TypeError, match="`afn`"):
            await group.go(task(3))  # type: ignore[arg-type]
    assert sorted(ran) == [1, 2]
    with pytest.raises(TypeError, match="`cancel_on_error` must be a bool"):
        async with tc.open_group(tc.background(), cancel_on_error=1):  # type: ignore[arg-type]
            pass  # pragma: no cover


async def test_start_is_typed_from_task_status() -> None:
    from typing import assert_type

    async def serve(port: int, *, task_status: trio.TaskStatus[int]) -> None:
        task_status.started(port + 1)

    async def ready(*, task_status: trio.TaskStatus[str]) -> None:
        task_status.started("ready")

    async with tc.open_group(tc.background()) as group:
        assert assert_type(await group.start(serve, 8000), int) == 8001
        assert assert_type(await group.start(ready), str) == "ready"
