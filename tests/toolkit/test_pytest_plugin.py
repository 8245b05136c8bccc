"""Tests for the pytest plugin (``trio_context.pytest_plugin``): small test files run by
``pytester`` in this process, their outcomes and reports checked."""

from __future__ import annotations

import math
import sys

import pytest
import trio
import trio.testing

import trio_context as tc
from plugin_harness import TRIO_MODE, Run, make_run
from support import child_pids
from trio_context.testing import advance_to_deadline, cancel_from_thread

pytest_plugins = ["pytester"]


@pytest.fixture
def run(pytester: pytest.Pytester, request: pytest.FixtureRequest) -> Run:
    return make_run(pytester, request)


def test_passing_test_gets_a_bound_context(run: Run) -> None:
    result = run(
        """
        import math
        import trio
        import trio_context as tc

        async def test_bound(ctx):
            assert isinstance(ctx, tc.CancelContext)
            assert tc.current() is ctx
            assert ctx.deadline == math.inf
            seen = []

            async def child():
                seen.append(tc.current())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(child)
            assert seen == [ctx]
        """
    )
    result.assert_outcomes(passed=1)


def test_timeout_fails_with_explain_and_stacks(run: Run) -> None:
    result = run(
        """
        import pytest
        import trio

        async def stuck_child():
            await trio.sleep_forever()

        @pytest.mark.ctx_timeout(5)
        async def test_hangs(ctx, autojump_clock):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stuck_child, name="stuck-child")
                await trio.Event().wait()
        """
    )
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "the test's context reached its deadline (set by @pytest.mark.ctx_timeout(5))" in out
    assert "with_timeout(5.0) is done: DeadlineExceeded: context deadline exceeded" in out
    assert "deadline 5.000 passed" in out
    assert "in stuck_child" in out
    assert "await trio.sleep_forever()" in out
    assert "await trio.Event().wait()" in out
    assert "Cancelled" not in out.replace("ContextCancelled", "")


def test_wall_clock_limit_from_ini_and_cli(run: Run) -> None:
    source = """
        import trio

        async def test_hangs(ctx):
            await trio.sleep_forever()
        """
    result = run(source, ini=TRIO_MODE + "trio_context_timeout = 0.3\n")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the test's call ran past its wall-clock limit of 0.3 s "
            "(set by trio_context_timeout = 0.3)*",
            "*cause: TimeLimitExceeded*",
            "*in test_hangs*",
        ]
    )
    ini = TRIO_MODE + "trio_context_timeout = 100\n"
    result = run(source, "--ctx-timeout", "call=0.3", ini=ini)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*wall-clock limit of 0.3 s (set by --ctx-timeout call=0.3)*"])


def test_marker_overrides_the_default_and_none_disables(run: Run) -> None:
    result = run(
        """
        import math
        import pytest
        import trio

        @pytest.mark.ctx_timeout(None)
        async def test_none(ctx):
            assert ctx.deadline == math.inf

        @pytest.mark.ctx_timeout(60)
        async def test_longer(ctx, autojump_clock):
            assert ctx.remaining() == 60
            await trio.sleep(30)  # virtual time

        async def test_default(ctx):
            # the project-wide limit is on the wall clock: it is not a deadline of ctx
            assert ctx.deadline == math.inf
        """,
        ini=TRIO_MODE + "trio_context_timeout = 20\n",
    )
    result.assert_outcomes(passed=3)


def test_explicit_trio_marker_without_trio_mode(run: Run) -> None:
    result = run(
        """
        import pytest
        import trio
        import trio_context as tc

        @pytest.mark.trio
        async def test_marked(ctx):
            assert tc.current() is ctx

        @pytest.mark.trio
        @pytest.mark.ctx_timeout(1)
        async def test_marked_times_out(ctx, autojump_clock):
            await trio.sleep_forever()
        """,
        ini=None,
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the test's context reached its deadline*"])


def test_cancel_from_thread_reports_who_cancelled(run: Run) -> None:
    result = run(
        """
        import trio
        import trio_context as tc

        class Stop(Exception):
            pass

        async def test_child_cancelled(ctx, ctx_cancel_from_thread):
            job = tc.with_cancel(ctx)
            await ctx_cancel_from_thread(job, Stop("pressed"))
            assert isinstance(job.cause, Stop)
            assert not ctx.done.is_set()

        async def test_own_context_cancelled(ctx, ctx_cancel_from_thread):
            await ctx_cancel_from_thread()
            await trio.sleep(1)
        """
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the test's context was cancelled while the test ran*",
            "*cancel() called by task 'thread trio_context cancel_from_thread'*",
            "*in test_own_context_cancelled*",
        ]
    )


def test_task_leak(run: Run) -> None:
    result = run(
        """
        import trio
        import trio_context as tc

        async def test_leaks_a_task(ctx, pool):
            pool.start_soon(trio.sleep_forever, name="leaky")

        async def test_bound_task_is_not_a_leak(ctx, nursery):
            async def serve():
                with tc.current().move_on():
                    await trio.sleep_forever()
            nursery.start_soon(serve)
        """
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*trio_context leak check: the test left 1 thing(s)*(tasks)*",
            "*task 'leaky' is still running (its context: with_cancel)*",
            "*created at:*",
            '*pool.start_soon(trio.sleep_forever, name="leaky")*',
        ]
    )


def test_scope_leak(run: Run) -> None:
    result = run(
        """
        import pytest
        import trio
        import trio_context as tc

        async def hold(ctx):
            with ctx.scope():
                with trio.CancelScope(shield=True):
                    await trio.sleep(10)  # virtual time: over at once after the check

        @pytest.mark.ctx_leak_check("scopes")
        async def test_leaves_a_scope_open(ctx, nursery, autojump_clock):
            child = tc.with_cancel(ctx)
            nursery.start_soon(hold, child, name="holder")
        """
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the test left 1 thing(s)*(scopes)*",
            "*a scope bound to with_cancel is still open in task 'holder'*",
            "*await trio.sleep(10)*",
        ]
    )


def test_thread_leak(run: Run) -> None:
    result = run(
        """
        import functools
        import threading
        import trio
        import trio_context as tc

        async def test_leaks_a_thread(ctx, release):
            threading.Thread(target=release.wait, name="left-behind").start()

        async def test_joined_thread_and_idle_trio_workers_are_fine(ctx):
            t = threading.Thread(target=lambda: None)
            t.start()
            t.join()
            assert await tc.to_thread(ctx, lambda: 42) == 42
            assert await trio.to_thread.run_sync(lambda: 1) == 1

        async def test_busy_trio_worker(ctx, nursery, release):
            wait = functools.partial(trio.to_thread.run_sync, abandon_on_cancel=True)
            nursery.start_soon(wait, release.wait)
            await trio.sleep(0.01)
        """
    )
    result.assert_outcomes(passed=3, errors=2)  # reported after the fixtures' teardown
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks_a_thread*",
            "*thread 'left-behind' is still alive*",
            "*created at:*",
            '*threading.Thread(target=release.wait, name="left-behind").start()*',
        ]
    )
    result.stdout.fnmatch_lines(["*trio worker thread 'wait from *' is still running its job*"])


@pytest.mark.skipif(sys.platform != "linux", reason="process checks read /proc")
def test_process_leak(run: Run) -> None:
    result = run(
        """
        import subprocess
        import trio_context as tc

        async def test_leaks_a_process(ctx, reaper):
            reaper.append(subprocess.Popen(["sleep", "30"]))

        async def test_leaks_a_grandchild(ctx, reaper):
            sh = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!"], stdout=subprocess.PIPE,
                                  start_new_session=True)
            grandchild = int(sh.stdout.readline())
            sh.wait()
            sh.stdout.close()
            reaper.append(Orphan(grandchild))

        async def test_run_process_cleans_up(ctx):
            result = await tc.run_process(ctx, ["true"])
            assert result.returncode == 0

        class Orphan:
            def __init__(self, pid):
                self.pid = pid
            def kill(self):
                import os, signal
                os.kill(self.pid, signal.SIGKILL)
            def wait(self):  # re-parented to this process: reap it, leave no zombie
                import os
                try:
                    os.waitpid(self.pid, 0)
                except ChildProcessError:
                    pass
        """
    )
    result.assert_outcomes(passed=3, errors=2)  # reported after the fixtures' teardown
    result.stdout.fnmatch_lines(
        [
            "*process * is still alive: sleep 30*",
            "*created at:*",
            "*reaper.append(subprocess.Popen(*sleep*30*))*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*of the process group of * (sh -c sleep 30 & echo $!) is still alive: sleep 30*"]
    )


@pytest.mark.skipif(sys.platform != "linux", reason="process checks read /proc")
def test_escaped_descendant_is_reported(run: Run) -> None:
    # setsid and a double fork: outside the group and the session, its parent gone. The
    # watch makes the test process a subreaper, so the orphan comes back to it and is seen.
    result = run(
        """
        import sys
        import trio_context as tc

        CODE = (
            "import os, time\\n"
            "r, w = os.pipe()\\n"
            "if os.fork() == 0:\\n"
            "    os.setsid()\\n"
            "    if os.fork() == 0:\\n"
            "        print(os.getpid(), flush=True)\\n"
            "        os.close(1); os.close(2)\\n"
            "        os.write(w, b'x')\\n"
            "        time.sleep(30)\\n"
            "    os._exit(0)\\n"
            "os.wait()\\n"
            "os.read(r, 1)\\n"
        )

        async def test_leaks_an_escaped_grandchild(ctx, reaper):
            result = await tc.run_process(ctx, [sys.executable, "-c", CODE], drain_timeout=0.2)
            reaper.append(Orphan(int(result.stdout)))
            assert not result.contained and not result.stragglers_killed

        class Orphan:
            def __init__(self, pid):
                self.pid = pid
            def kill(self):
                import os, signal
                os.kill(self.pid, signal.SIGKILL)
            def wait(self):  # re-parented to this process: reap it, leave no zombie
                import os
                try:
                    os.waitpid(self.pid, 0)
                except ChildProcessError:
                    pass
        """
    )
    result.assert_outcomes(passed=1, errors=1)  # reported after the fixtures' teardown
    result.stdout.fnmatch_lines(
        ["*process (escaped its parent, re-parented to the test process) * is still alive*"]
    )


def test_opt_out_and_opt_in(run: Run) -> None:
    result = run(
        """
        import threading
        import pytest
        import trio

        @pytest.mark.ctx_no_leak_check
        async def test_opted_out(ctx, pool):
            pool.start_soon(trio.sleep_forever)

        @pytest.mark.ctx_no_leak_check("tasks")
        async def test_kind_opted_out(ctx, pool):
            pool.start_soon(trio.sleep_forever)

        async def test_no_ctx_no_check(pool):
            pool.start_soon(trio.sleep_forever)

        @pytest.mark.ctx_leak_check
        async def test_opted_in_without_ctx(pool):
            pool.start_soon(trio.sleep_forever, name="opted-in-leak")

        @pytest.mark.ctx_leak_check("threads")
        def test_sync_opted_in(release):
            threading.Thread(target=release.wait, name="sync-leak").start()
        """
    )
    result.assert_outcomes(passed=4, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*task 'opted-in-leak' is still running*"])
    result.stdout.fnmatch_lines(["*thread 'sync-leak' is still alive*"])


def test_ini_and_cli_leak_modes(run: Run) -> None:
    source = """
        import trio

        async def test_with_ctx(ctx, pool):
            pool.start_soon(trio.sleep_forever)

        async def test_without_ctx(pool):
            pool.start_soon(trio.sleep_forever)
        """
    run(source, ini=TRIO_MODE + "trio_context_leak_check = all\n").assert_outcomes(failed=2)
    run(source, ini=TRIO_MODE + "trio_context_leak_check = false\n").assert_outcomes(passed=2)
    run(source, "--ctx-leak-check=off").assert_outcomes(passed=2)


def test_failed_test_is_not_leak_checked_and_ctx_is_cancelled_before_teardown(run: Run) -> None:
    result = run(
        """
        import pytest
        import trio

        seen = []

        @pytest.fixture
        async def watcher(ctx):
            yield
            seen.append(ctx.done.is_set())

        async def test_fails(ctx, nursery):
            nursery.start_soon(trio.sleep_forever)
            assert False, "the real failure"

        async def test_ctx_done_in_teardown(ctx, watcher):
            pass

        def test_teardown_saw_it():
            assert seen == [True]
        """,
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "the real failure" in out
    assert "leak check" not in out


def test_bad_configuration_is_reported(run: Run) -> None:
    result = run(
        """
        import pytest

        @pytest.mark.ctx_timeout("soon")
        async def test_bad_marker(ctx):
            pass

        @pytest.mark.ctx_leak_check("sockets")
        async def test_bad_kind(ctx):
            pass
        """
    )
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*ctx_timeout must be a number of seconds or None*"])
    result.stdout.fnmatch_lines(["*takes kinds among processes, scopes, tasks, threads*"])
    result = run("def test_x(): pass", ini=TRIO_MODE + "trio_context_timeout = soon\n")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*trio_context_timeout must be a number of seconds*"])


def test_markers_are_registered(run: Run) -> None:
    result = run("def test_x(): pass", "--markers")
    result.stdout.fnmatch_lines(["*ctx_timeout(seconds)*", "*ctx_leak_check(*kinds)*"])
    result.stdout.fnmatch_lines(["*ctx_no_leak_check(*kinds)*"])


# -- the helpers, used directly ------------------------------------------------------------


async def test_advance_to_deadline_with_the_mock_clock(mock_clock: trio.testing.MockClock) -> None:
    job = tc.with_timeout(tc.background(), 30)
    woke: list[float] = []

    async def worker() -> None:
        with job.move_on():
            await trio.sleep_forever()
        woke.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        await trio.testing.wait_all_tasks_blocked()
        assert woke == []
        await advance_to_deadline(job)
        assert woke == [job.deadline]
        assert isinstance(job.err, tc.DeadlineExceeded)
        assert trio.current_time() == job.deadline


async def test_advance_to_deadline_lands_exactly_on_awkward_floats(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.jump(0.1)
    job = tc.with_deadline(tc.background(), 0.3)
    await advance_to_deadline(job, mock_clock)
    assert job.err is not None
    assert trio.current_time() - 0.3 <= math.ulp(0.3) * 2


async def test_advance_to_deadline_misuse(mock_clock: trio.testing.MockClock) -> None:
    with pytest.raises(ValueError, match="no deadline"):
        await advance_to_deadline(tc.with_cancel(tc.background()))
    with pytest.raises(TypeError, match="not the clock of the running trio loop"):
        await advance_to_deadline(tc.with_timeout(tc.background(), 1), trio.testing.MockClock())


async def test_advance_to_deadline_needs_a_mock_clock() -> None:
    with pytest.raises(TypeError, match="autojump_clock"):
        await advance_to_deadline(tc.with_timeout(tc.background(), 1))


async def test_cancel_from_thread_cancels_in_a_foreign_thread() -> None:
    ctx = tc.with_cancel(tc.background())
    names: list[str] = []
    tc.after_func(ctx, lambda: None)
    await cancel_from_thread(ctx, KeyError("x"))
    assert isinstance(ctx.cause, KeyError)
    assert "'thread trio_context cancel_from_thread'" in ctx.explain()
    assert names == []
    with pytest.raises(TypeError, match="CancelContext"):
        await cancel_from_thread(tc.with_value(ctx, "k", 1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cause"):
        await cancel_from_thread(tc.with_cancel(tc.background()), "nope")  # type: ignore[arg-type]


def test_no_process_is_left_by_these_tests() -> None:
    # The inner sessions' reaper fixtures killed what they leaked.
    if sys.platform == "linux":
        assert child_pids() == set(), "children left running"
