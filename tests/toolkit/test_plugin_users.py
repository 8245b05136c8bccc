"""The pytest plugin where users are: anyio tests, fixtures that own resources, pytest-trio's
``nursery`` fixture, wall-clock limits under mock clocks, and Hypothesis. Small test files run by
``pytester``; their outcomes and reports checked. Real-time waits are short (0.3 s limits)."""

from __future__ import annotations

import sys
import threading

import pytest
import trio
import trio.testing

import trio_context as tc
from plugin_harness import Run, make_run
from trio_context.testing import (
    PhaseLimits,
    TimeLimitExceeded,
    Watchdog,
    fresh_context,
    parse_limits,
)

pytest_plugins = ["pytester"]

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="process checks read /proc")


@pytest.fixture
def run(pytester: pytest.Pytester, request: pytest.FixtureRequest) -> Run:
    return make_run(pytester, request)


# -- anyio ------------------------------------------------------------------------------------


def test_anyio_marker_on_trio_gets_binding_deadline_report_and_leak_check(run: Run) -> None:
    result = run(
        """
        import threading
        import pytest
        import trio
        import trio_context as tc

        @pytest.fixture
        def anyio_backend():
            return "trio"

        @pytest.mark.anyio
        async def test_bound(ctx):
            assert tc.current() is ctx
            seen = []

            async def child():
                seen.append(tc.current())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(child)
            assert seen == [ctx]

        @pytest.mark.anyio
        @pytest.mark.ctx_timeout(0.2)
        async def test_runs_past_its_deadline(ctx):
            await trio.sleep(2)

        @pytest.mark.anyio
        async def test_leaks_a_thread(ctx, release):
            threading.Thread(target=release.wait, name="anyio-leak").start()
        """,
        ini=None,  # no trio_mode: anyio runs these tests
    )
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*the test's context reached its deadline (set by @pytest.mark.ctx_timeout(0.2))*",
            "*with_timeout(0.2) is done: DeadlineExceeded*",
            "*await trio.sleep(2)*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_leaks_a_thread*", "*thread 'anyio-leak' is still alive*"]
    )


def test_anyio_asyncio_backend_says_ctx_needs_trio(run: Run) -> None:
    result = run(
        """
        import pytest
        import trio_context as tc

        @pytest.mark.anyio  # anyio's own anyio_backend fixture: asyncio and trio
        async def test_both_backends(ctx):
            assert tc.current() is ctx
        """,
        ini=None,
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_both_backends[[]asyncio[]]*",
            "*the ctx fixture needs trio, but this test runs on anyio's 'asyncio' backend*"
            "`anyio_backend` fixture that returns 'trio'*",
        ]
    )


def test_ctx_outside_async_trio_tests_says_what_to_do(run: Run) -> None:
    result = run(
        """
        from hypothesis import given, strategies as st

        def test_sync(ctx):
            pass

        @given(st.integers())
        async def test_given(ctx, n):
            pass
        """
    )
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*the ctx fixture is for async trio tests*"])
    result.stdout.fnmatch_lines(["*use `with trio_context.testing.fresh_context() as ctx:`*"])


def test_with_a_deadline_the_body_gets_a_child_of_the_fixtures_ctx(run: Run) -> None:
    result = run(
        """
        import pytest
        import trio_context as tc

        @pytest.fixture
        async def seen(ctx):
            yield ctx
            assert ctx.done.is_set()  # cancelled when the body returned

        @pytest.mark.ctx_timeout(60)
        async def test_deadline(ctx, seen, autojump_clock):
            assert tc.current() is ctx
            assert ctx.remaining() == 60
            assert ctx in seen.children()
        """
    )
    result.assert_outcomes(passed=1)


# -- what fixtures own -------------------------------------------------------------------------


def test_tasks_in_pytest_trios_nursery_fixture_are_not_leaks(run: Run) -> None:
    result = run(
        """
        import pytest
        import trio
        import trio_context as tc

        async def serve(task_status=trio.TASK_STATUS_IGNORED):
            task_status.started()
            await trio.sleep_forever()

        @pytest.fixture
        async def server(nursery):
            await nursery.start(serve)

        async def test_started_in_the_test(ctx, nursery):
            await nursery.start(serve)
            nursery.start_soon(serve)

        async def test_started_by_a_fixture(ctx, server):
            pass

        async def test_a_real_leak_next_to_it(ctx, nursery, pool):
            await nursery.start(serve)
            pool.start_soon(trio.sleep_forever, name="real-leak")
        """
    )
    result.assert_outcomes(passed=2, failed=1)
    # One leak reported (pytest may repeat the failure message in its short summary).
    failures = result.stdout.str().split("short test summary info")[0]
    assert failures.count("is still running") == 1
    result.stdout.fnmatch_lines(
        ["*task 'real-leak' is still running*", "*created at:*", "*pool.start_soon(*"]
    )


@linux_only
def test_executor_and_processes_that_fixtures_own_are_not_leaks(run: Run) -> None:
    result = run(
        """
        import subprocess
        from concurrent.futures import ThreadPoolExecutor
        import pytest
        import trio

        @pytest.fixture
        def executor():
            with ThreadPoolExecutor(2) as pool:
                yield pool

        @pytest.fixture
        def start_process():
            procs = []
            yield lambda: procs.append(subprocess.Popen(["sleep", "30"]))
            for p in procs:
                p.kill()
                p.wait()

        @pytest.fixture
        async def trio_process():
            proc = await trio.lowlevel.open_process(["sleep", "30"])
            yield proc
            proc.kill()
            await proc.wait()

        async def test_uses_the_executor(ctx, executor):
            assert executor.submit(lambda: 1).result() == 1

        async def test_starts_a_process_the_fixture_owns(ctx, start_process):
            start_process()

        async def test_async_fixture_process(ctx, trio_process):
            assert trio_process.returncode is None

        @pytest.mark.ctx_leak_check
        def test_sync_test_and_executor(executor):
            assert executor.submit(lambda: 2).result() == 2

        async def test_a_real_leak(ctx, reaper):
            reaper.append(subprocess.Popen(["sleep", "30"]))
        """
    )
    result.assert_outcomes(passed=5, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_a_real_leak*",
            "*process * is still alive: sleep 30*",
            "*created at:*",
            "*reaper.append(subprocess.Popen(*",
        ]
    )


# -- wall-clock limits -------------------------------------------------------------------------


def test_ini_limit_under_autojump_passes_long_virtual_sleeps_and_fails_real_hangs(
    run: Run,
) -> None:
    result = run(
        """
        import trio

        async def test_long_virtual_sleep(autojump_clock):
            await trio.sleep(3600)

        async def test_long_virtual_sleep_with_ctx(ctx, autojump_clock):
            await trio.sleep(3600)
            assert trio.current_time() >= 3600

        async def test_real_hang(autojump_clock):
            await trio.Event().wait()  # nothing to jump to: hangs in real time
        """,
        ini="[pytest]\ntrio_mode = true\ntrio_context_timeout = 0.3\n",
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_real_hang*",
            "*the test's call ran past its wall-clock limit of 0.3 s "
            "(set by trio_context_timeout = 0.3)*",
            "*cancel() called by task 'thread trio_context wall-clock limit'*",
            "*cause: TimeLimitExceeded*",
            "*in test_real_hang*",
            "*await trio.Event().wait()*",
        ]
    )


def test_limits_per_phase(run: Run) -> None:
    result = run(
        """
        import pytest
        import trio

        @pytest.fixture
        async def slow_setup():
            await trio.Event().wait()
            yield

        @pytest.fixture
        async def slow_teardown():
            yield
            await trio.Event().wait()

        @pytest.mark.ctx_limit(setup=0.3)
        async def test_setup_hangs(ctx, slow_setup):
            pass

        @pytest.mark.ctx_limit(teardown=0.3)
        async def test_teardown_hangs(ctx, slow_teardown):
            pass

        @pytest.mark.ctx_limit(call=0.3)
        async def test_call_hangs():
            await trio.Event().wait()

        @pytest.mark.ctx_limit(0.3, call=None)
        async def test_call_without_limit(ctx, autojump_clock):
            await trio.sleep(3600)

        @pytest.mark.ctx_limit(setup=0.3)
        async def test_setup_hangs_without_ctx(slow_setup):
            pass
        """
    )
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*_ test_setup_hangs _*",
            "*the test's setup ran past its wall-clock limit of 0.3 s "
            "(set by @pytest.mark.ctx_limit(setup=0.3))*",
            "*where it was stuck when the limit passed:*",
            "*in slow_setup*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*_ test_setup_hangs_without_ctx _*", "*setup ran past*", "*in slow_setup*"]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_teardown_hangs _*",
            "*the test's teardown ran past its wall-clock limit of 0.3 s*",
            "*in slow_teardown*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_call_hangs _*",
            "*the test's call ran past its wall-clock limit of 0.3 s*",
            "*in test_call_hangs*",
        ]
    )


def test_sync_code_that_runs_past_its_limit_fails_when_it_ends(run: Run) -> None:
    result = run(
        """
        import time
        import pytest

        @pytest.mark.ctx_limit(call=0.3)
        def test_sleeps():
            time.sleep(0.6)
        """,
        subprocess=True,  # the stack dump goes to the inner session's stderr
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*the test's call ran past its wall-clock limit of 0.3 s*", "*in test_sleeps*"]
    )
    result.stderr.fnmatch_lines(["*it goes on until it ends*", "*time.sleep(0.6)*"])


def test_bad_limits_are_reported(run: Run) -> None:
    result = run(
        """
        import pytest

        @pytest.mark.ctx_limit(call="soon")
        async def test_bad_value(ctx):
            pass

        @pytest.mark.ctx_limit(1, 2)
        async def test_two_numbers(ctx):
            pass

        @pytest.mark.ctx_limit(collect=1)
        async def test_bad_phase(ctx):
            pass
        """
    )
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(["*ctx_limit(call=...) must be a number of seconds or None*"])
    result.stdout.fnmatch_lines(["*use @pytest.mark.ctx_limit(seconds, setup=*"])
    for ini_value in ("call=soon", "lunch=3", "-1"):
        result = run("def test_x(): pass", ini=f"[pytest]\ntrio_context_timeout = {ini_value}\n")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*trio_context_timeout*"])


def test_parse_limits() -> None:
    assert parse_limits("30", name="x") == PhaseLimits(30, 30, 30)
    assert parse_limits("10 call=60", name="x") == PhaseLimits(10, 60, 10)
    assert parse_limits("call=60, teardown=none", name="x") == PhaseLimits(call=60)
    assert not parse_limits("", name="x")
    assert not parse_limits("0", name="x")
    with pytest.raises(ValueError, match="x: unknown phase 'lunch'"):
        parse_limits("lunch=3", name="x")
    with pytest.raises(ValueError, match="x must be a non-negative number"):
        parse_limits("nan", name="x")


def test_watchdog_calls_back_in_its_thread_once_and_can_be_disarmed() -> None:
    watchdog = Watchdog()
    fired = threading.Event()
    names: list[str] = []

    def on_expiry() -> None:
        names.append(threading.current_thread().name)
        fired.set()

    try:
        watchdog.arm(3600, lambda: names.append("never"))
        watchdog.disarm()
        watchdog.arm(0, on_expiry)
        assert fired.wait(10)
    finally:
        watchdog.close()
    assert names == ["trio_context wall-clock limit"]
    watchdog.close()  # idempotent


def test_time_limit_exceeded_says_which_phase() -> None:
    exc = TimeLimitExceeded("teardown", 0.5, "--ctx-timeout 0.5")
    assert str(exc) == (
        "the test's teardown ran past its wall-clock limit of 0.5 s (set by --ctx-timeout 0.5)"
    )
    assert isinstance(exc, Exception) and not isinstance(exc, tc.ContextError)


# -- Hypothesis --------------------------------------------------------------------------------


def test_given_tests_get_a_fresh_context_per_example(run: Run) -> None:
    result = run(
        """
        from hypothesis import given, settings, strategies as st
        import trio
        import trio_context as tc
        from trio_context.testing import fresh_context

        seen = []

        @settings(max_examples=5, deadline=None, database=None)
        @given(st.integers(min_value=0, max_value=3))
        async def test_steps(n):
            with fresh_context(timeout=60) as ctx:
                assert tc.current() is ctx
                assert 0 < ctx.remaining() <= 60
                async with trio.open_nursery() as nursery:
                    for _ in range(n):
                        nursery.start_soon(trio.sleep, 0)
                seen.append(ctx)

        def test_each_example_had_its_own_context():
            assert len(seen) >= 2
            assert len(set(map(id, seen))) == len(seen)
            assert all(c.done.is_set() for c in seen)
        """,
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=2)


async def test_fresh_context_reports_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def stuck() -> None:
        await trio.sleep_forever()

    with pytest.raises(tc.DeadlineExceeded) as info:
        with fresh_context(timeout=5) as ctx:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stuck)
                await trio.sleep_forever()
    assert ctx.done.is_set()
    (note,) = info.value.__notes__
    assert "the test's context reached its deadline (set by fresh_context(timeout=5))" in note
    assert "in stuck" in note


async def test_fresh_context_misuse_and_other_errors() -> None:
    with pytest.raises(ValueError, match="`timeout` must be non-negative"):
        with fresh_context(timeout=-1):
            pass
    with pytest.raises(KeyError):
        with fresh_context() as ctx:
            raise KeyError("the body's own error passes through")
    assert ctx.done.is_set()
