"""Tests for ``run_process`` (``_process.py``) with real subprocesses.

No sleep-and-hope: a child says "ready" (seen through ``on_line``) before the test acts on it,
and "nothing left behind" is checked in ``/proc`` (live members of the process group) and with
``waitpid`` (the leader was reaped).
"""

from __future__ import annotations

import math
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
import trio

import trio_context as tc
from support import live_members, needs_proc
from trio_context import ProcessFailed, ProcessResult, run_process

pytestmark = needs_proc


def assert_nothing_left(result: ProcessResult) -> None:
    assert live_members(result.pid) == []
    with pytest.raises(ChildProcessError):
        os.waitpid(result.pid, os.WNOHANG)  # already reaped: not our zombie


class Lines:
    """An ``on_line`` that records lines and lets a test wait for one."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._waiters: list[tuple[Callable[[str], bool], trio.Event]] = []

    def __call__(self, stream: str, line: str) -> None:
        self.lines.append((stream, line))
        for match, event in self._waiters:
            if match(line):
                event.set()

    async def wait_for(self, prefix: str) -> str:
        for _, line in self.lines:
            if line.startswith(prefix):
                return line
        event = trio.Event()
        self._waiters.append((lambda line: line.startswith(prefix), event))
        await event.wait()
        return next(line for _, line in self.lines if line.startswith(prefix))

    def text(self, stream: str = "stdout") -> list[str]:
        return [line for s, line in self.lines if s == stream]


async def test_exit_code_and_output(ctx: tc.CancelContext) -> None:
    result = await run_process(ctx, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert result.returncode == 3
    assert result.signal is None
    assert result.outcome == "exited"
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
    assert not result.stdout_truncated and not result.stderr_truncated
    assert not result.ok and result.cause is None and result.stop_duration is None
    assert result.args == ("sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.describe() == "exited with code 3"
    assert "exited with code 3" in repr(result)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.returncode = 0  # type: ignore[misc]
    assert_nothing_left(result)


async def test_check_raises_process_failed(ctx: tc.CancelContext) -> None:
    with pytest.raises(ProcessFailed, match="exited with code 1") as info:
        await run_process(ctx, ["false"], check=True)
    assert info.value.result.returncode == 1
    ok = await run_process(ctx, ["true"], check=True)
    assert ok.ok


async def test_shell_env_and_cwd(ctx: tc.CancelContext, tmp_path: Path) -> None:
    os.environ["TC_TEST_REMOVED"] = "present"
    try:
        result = await run_process(
            ctx,
            'echo "$GREETING ${TC_TEST_REMOVED:-gone} $(pwd)"; echo "$PATH" | head -c 1',
            shell=True,
            env={"GREETING": "hi", "TC_TEST_REMOVED": None},
            cwd=tmp_path,
        )
    finally:
        del os.environ["TC_TEST_REMOVED"]
    first, path_start = result.stdout.decode().splitlines()
    assert first == f"hi gone {tmp_path}"
    assert path_start == "/"  # merged over os.environ: PATH is inherited
    assert isinstance(result.args, str) and result.args.startswith('echo "$GREETING')


async def test_every_call_sees_os_environ_as_it_is_then(ctx: tc.CancelContext) -> None:
    # The base environment is cached between calls: a change to os.environ must still reach
    # the next child, with or without an ``env`` of the call's own.
    show = 'echo "${TC_TEST_CHANGING:-unset}"'
    assert (await run_process(ctx, show, shell=True)).stdout == b"unset\n"
    os.environ["TC_TEST_CHANGING"] = "one"
    try:
        assert (await run_process(ctx, show, shell=True)).stdout == b"one\n"
        os.environ["TC_TEST_CHANGING"] = "two"
        with_env = await run_process(ctx, show, shell=True, env={"OTHER": "x"})
        assert with_env.stdout == b"two\n"
        bare = await run_process(
            ctx, show, shell=True, propagate_deadline=False, propagate_cause=False
        )
        assert bare.stdout == b"two\n"  # nothing to change: the child inherits os.environ
    finally:
        del os.environ["TC_TEST_CHANGING"]
    assert (await run_process(ctx, show, shell=True, env={"OTHER": "x"})).stdout == b"unset\n"


async def test_missing_executable_names_the_argument(ctx: tc.CancelContext) -> None:
    with pytest.raises(FileNotFoundError, match=r"`command` not found.*no-such-program-xyz"):
        await run_process(ctx, ["no-such-program-xyz", "--help"])


async def test_bad_cwd_names_the_argument(ctx: tc.CancelContext, tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="`cwd` is not a directory"):
        await run_process(ctx, ["true"], cwd=tmp_path / "missing")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError, match="`cwd`"):
        await run_process(ctx, ["true"], cwd=a_file)


async def test_not_executable_names_the_argument(ctx: tc.CancelContext, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    with pytest.raises(PermissionError, match=r"`command`.*permission denied"):
        await run_process(ctx, [str(script)])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"command": "echo hi"}, TypeError, "pass shell=True"),
        ({"command": ["echo"], "shell": True}, TypeError, "must be a string when shell=True"),
        ({"command": []}, ValueError, "must not be empty"),
        ({"grace": -1}, ValueError, "`grace` must be non-negative"),
        ({"drain_timeout": "1"}, TypeError, "`drain_timeout` must be a number"),
        ({"max_output": -1}, ValueError, "`max_output`"),
        ({"on_line": 3}, TypeError, "`on_line` must be a callable"),
        ({"hard": "ctx"}, TypeError, r"`hard` must be a trio_context\.Context"),
        ({"env": {"A": 1}}, TypeError, "`env` must map str to str or None"),
        ({"term_signal": 12345}, ValueError, "12345"),
    ],
)
async def test_bad_arguments(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    kwargs.setdefault("command", ["true"])
    with pytest.raises(error, match=match):
        await run_process(tc.background(), **kwargs)  # type: ignore[arg-type]


async def test_done_context_starts_nothing(ctx: tc.CancelContext, tmp_path: Path) -> None:
    job = tc.with_cancel(ctx)
    job.cancel()
    marker = tmp_path / "ran"
    with pytest.raises(tc.ContextCancelled):
        await run_process(job, ["touch", str(marker)])
    assert not marker.exists()


async def test_cancel_sends_term_to_the_group_and_reports_the_cause(ctx: tc.CancelContext) -> None:
    job = tc.with_cancel(ctx)
    lines = Lines()
    why = RuntimeError("user pressed stop")
    script = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done"

    async def stop_when_ready() -> None:
        await lines.wait_for("ready")
        job.cancel(why)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_when_ready)
        result = await run_process(job, ["sh", "-c", script], on_line=lines, grace=30)
    assert result.outcome == "cancelled"
    assert result.cause is why
    assert result.returncode == 0
    assert result.stop_duration is not None and result.stop_duration < 30
    assert lines.text() == ["ready", "got-term"]
    assert_nothing_left(result)


async def test_check_raises_the_context_error_when_stopped(ctx: tc.CancelContext) -> None:
    job = tc.with_cancel(ctx)
    lines = Lines()

    async def stop_when_ready() -> None:
        await lines.wait_for("ready")
        job.cancel(KeyError("stop"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_when_ready)
        with pytest.raises(tc.ContextCancelled) as info:
            await run_process(
                job, ["sh", "-c", "echo ready; exec sleep 60"], on_line=lines, check=True
            )
    assert isinstance(info.value.__cause__, KeyError)
    assert any("was killed by SIGTERM (cancelled)" in note for note in info.value.__notes__)


async def test_timeout_gives_timed_out(ctx: tc.CancelContext) -> None:
    lines = Lines()
    step = tc.with_timeout(ctx, 0.5)
    result = await run_process(step, ["sh", "-c", "echo ready; exec sleep 60"], on_line=lines)
    assert result.outcome == "timed_out"
    assert result.signal == signal.SIGTERM and result.returncode == -signal.SIGTERM
    assert isinstance(result.cause, tc.DeadlineExceeded)
    assert_nothing_left(result)


async def test_grandchild_ignoring_term_is_killed_after_grace(ctx: tc.CancelContext) -> None:
    job = tc.with_cancel(ctx)
    lines = Lines()
    # The shell starts a grandchild that ignores SIGTERM (SIG_IGN survives exec) and holds
    # the pipes; the shell itself dies of SIGTERM.
    script = "sh -c 'trap \"\" TERM; echo grandchild $$; exec sleep 1000' & wait"

    async def stop_when_ready() -> None:
        await lines.wait_for("grandchild")
        job.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_when_ready)
        with trio.fail_after(20):
            result = await run_process(job, ["sh", "-c", script], on_line=lines, grace=0.3)
    grandchild = int((await lines.wait_for("grandchild")).split()[1])
    assert result.outcome == "cancelled" and result.killed
    assert result.signal == signal.SIGTERM  # the leader obeyed; the group needed SIGKILL
    assert not result.stragglers_killed  # it was a stop, not the drain guard
    assert result.stop_duration is not None and result.stop_duration >= 0.3
    assert_nothing_left(result)
    assert grandchild not in live_members(result.pid)


async def test_leader_exits_while_grandchild_holds_stdout(ctx: tc.CancelContext) -> None:
    with trio.fail_after(20):
        result = await run_process(
            ctx, ["sh", "-c", "sleep 1000 & echo leader-done"], drain_timeout=0.2
        )
    assert result.outcome == "exited" and result.returncode == 0
    assert result.stdout == b"leader-done\n"
    assert result.stragglers_killed
    assert_nothing_left(result)


async def test_background_member_that_closed_the_pipes_is_killed_too(
    ctx: tc.CancelContext,
) -> None:
    script = "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!"
    with trio.fail_after(20):
        result = await run_process(ctx, ["sh", "-c", script], drain_timeout=0.2)
    assert result.outcome == "exited"
    assert result.stragglers_killed
    assert_nothing_left(result)


async def test_flood_on_both_pipes_does_not_deadlock(ctx: tc.CancelContext) -> None:
    script = "head -c 100000000 /dev/zero & head -c 100000000 /dev/zero >&2; wait"
    with trio.fail_after(60):
        result = await run_process(ctx, ["sh", "-c", script], max_output=4096)
    assert result.outcome == "exited" and result.returncode == 0
    assert result.stdout == result.stderr == b"\0" * 4096
    assert result.stdout_truncated and result.stderr_truncated
    assert_nothing_left(result)


async def test_default_max_output_keeps_the_tail(ctx: tc.CancelContext) -> None:
    script = "seq 1 300000"  # about 1.9 MB
    result = await run_process(ctx, ["sh", "-c", script])
    assert len(result.stdout) == 1 << 20
    assert result.stdout.endswith(b"299999\n300000\n")
    assert result.stdout_truncated and not result.stderr_truncated


async def test_on_line_lines(ctx: tc.CancelContext) -> None:
    lines = Lines()
    script = r"printf 'a\r\nb\n\377x\n'; printf 'err\n' >&2; printf 'no newline'"
    result = await run_process(ctx, ["sh", "-c", script], on_line=lines)
    assert lines.text("stdout") == ["a", "b", "\ufffdx", "no newline"]
    assert lines.text("stderr") == ["err"]
    assert result.stdout == b"a\r\nb\n\377x\nno newline"


async def test_on_line_splits_very_long_lines(ctx: tc.CancelContext) -> None:
    lines = Lines()
    await run_process(
        ctx,
        ["sh", "-c", "head -c 200000 /dev/zero | tr '\\0' a"],
        on_line=lines,
        capture=False,
    )
    sizes = [len(line) for _, line in lines.lines]
    assert sizes == [65536, 65536, 65536, 200000 - 3 * 65536]


async def test_capture_false_keeps_nothing(ctx: tc.CancelContext) -> None:
    lines = Lines()
    result = await run_process(ctx, ["echo", "hi"], capture=False, on_line=lines)
    assert result.stdout == b""
    assert result.stdout_truncated  # output was produced but not kept
    assert lines.text() == ["hi"]


async def test_on_line_error_kills_the_group_and_propagates(ctx: tc.CancelContext) -> None:
    def explode(stream: str, line: str) -> None:
        raise LookupError(f"bad line {line!r}")

    with trio.fail_after(20), pytest.raises(LookupError, match="bad line 'ready'"):
        await run_process(ctx, ["sh", "-c", "echo ready; exec sleep 1000"], on_line=explode)


async def test_hard_context_kills_at_once(ctx: tc.CancelContext) -> None:
    hard = tc.with_cancel(tc.background())
    lines = Lines()
    why = RuntimeError("destroy()")

    async def destroy_when_ready() -> None:
        await lines.wait_for("ready")
        hard.cancel(why)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(destroy_when_ready)
        result = await run_process(
            ctx, ["sh", "-c", "echo ready; exec sleep 1000"], on_line=lines, hard=hard
        )
    assert result.outcome == "cancelled" and result.killed  # the hard context ended it
    assert result.signal == signal.SIGKILL
    assert result.cause is why
    assert_nothing_left(result)


async def test_a_forced_stop_recorded_above_ctx_kills_at_once(ctx: tc.CancelContext) -> None:
    # The default hard context is made only when needed: a forced stop (the hard context
    # recorded above ``ctx``, e.g. the second Ctrl-C) must still kill at once, even while
    # ``ctx`` itself is not done.
    job = tc.graceful(tc.with_cancel(ctx), 1000)
    twin = tc.hard_context(job)
    assert isinstance(twin, tc.CancelContext)
    lines = Lines()
    why = RuntimeError("second Ctrl-C")

    async def force_when_ready() -> None:
        await lines.wait_for("ready")
        twin.cancel(why)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(force_when_ready)
            result = await run_process(
                job, ["sh", "-c", "echo ready; exec sleep 1000"], on_line=lines, grace=1000
            )
    assert job.err is None
    assert result.outcome == "cancelled" and result.killed
    assert result.signal == signal.SIGKILL and result.cause is why
    assert_nothing_left(result)


async def test_an_outer_budget_caps_the_default_grace(ctx: tc.CancelContext) -> None:
    # No hard context is made per call: the kill timer takes the grace, capped by what the
    # hard stop recorded above ``ctx`` leaves (here 0.2 s of the job's budget, not 1000 s).
    root = tc.with_cancel(ctx)
    job = tc.graceful(root, 0.2)
    lines = Lines()

    async def stop_when_ready() -> None:
        await lines.wait_for("ready")
        root.cancel()

    command = ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"]
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_when_ready)
            result = await run_process(job, command, on_line=lines, grace=1000)
    assert result.outcome == "cancelled" and result.killed
    assert result.stop_duration is not None and result.stop_duration < 10
    assert_nothing_left(result)


async def test_custom_term_signal(ctx: tc.CancelContext) -> None:
    job = tc.with_cancel(ctx)
    lines = Lines()
    script = "trap 'echo got-int; exit 5' INT; echo ready; while :; do sleep 0.05; done"

    async def stop_when_ready() -> None:
        await lines.wait_for("ready")
        job.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_when_ready)
        result = await run_process(
            job, ["sh", "-c", script], on_line=lines, term_signal=signal.SIGINT
        )
    assert (result.outcome, result.returncode) == ("cancelled", 5)
    assert lines.text()[-1] == "got-int"


async def test_outer_cancellation_stops_the_group_and_reraises(ctx: tc.CancelContext) -> None:
    lines = Lines()
    script = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done"
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:

            async def cancel_when_ready() -> None:
                await lines.wait_for("ready")
                scope.cancel()

            nursery.start_soon(cancel_when_ready)
            await run_process(ctx, ["sh", "-c", script], on_line=lines)
    assert scope.cancelled_caught
    assert lines.text() == ["ready", "got-term"]  # asked politely, output still drained


async def test_inside_ctx_scope_raises_ctx_err_after_stopping(ctx: tc.CancelContext) -> None:
    step = tc.with_timeout(ctx, 0.3)
    lines = Lines()
    script = "trap '' TERM; echo ready $$; exec sleep 1000"
    with trio.fail_after(20), pytest.raises(tc.DeadlineExceeded):
        with step.scope():
            await run_process(step, ["sh", "-c", script], on_line=lines, grace=0.2)
    pid = int(lines.text()[0].split()[1])
    # the group was killed and the leader reaped before the exception left run_process
    assert live_members(pid) == []
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG: does not block)


async def test_python_child_uses_sys_executable(ctx: tc.CancelContext) -> None:
    result = await run_process(ctx, [sys.executable, "-c", "print('py ok')"])
    assert result.stdout.strip() == b"py ok"


# -- idle_timeout --------------------------------------------------------------------------------
# Real processes cannot run on MockClock (waiting for a child looks idle to trio, so the fake clock
# would jump), so these tests use trio's clock with short limits and bounds that only check that
# the stop came no earlier than the limit and not much later.

PRINT_THEN_HANG = "for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done; exec sleep 60"


class TimedLines(Lines):
    """``Lines`` that also records when each line arrived (trio time)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def __call__(self, stream: str, line: str) -> None:
        self.times.append(trio.current_time())
        super().__call__(stream, line)


async def test_idle_stops_idle_limit_after_the_last_line(ctx: tc.CancelContext) -> None:
    lines = TimedLines()
    limit = 0.5
    with trio.fail_after(20):
        result = await run_process(
            ctx, ["sh", "-c", PRINT_THEN_HANG], on_line=lines, idle_timeout=limit
        )
    ended = trio.current_time()
    assert lines.text() == [f"line {i}" for i in range(1, 6)]
    assert result.outcome == "idle"
    assert result.signal == signal.SIGTERM
    assert isinstance(result.cause, tc.IdleTimeout) and result.cause.seconds == limit
    assert result.describe() == "was killed by SIGTERM (idle: no output for 0.5 s)"
    assert result.stop_duration is not None
    stopped_at = ended - result.stop_duration  # a little late at most: `ended` is read after
    silence = stopped_at - lines.times[-1]
    # The line is timed a few microseconds after the chunk that carried it touched the context.
    assert limit - 0.005 <= silence < limit + 1.0
    assert lines.times[-1] - lines.times[0] >= 0.3  # printing kept it alive for a while
    assert_nothing_left(result)


async def test_idle_output_on_stderr_counts_as_progress(ctx: tc.CancelContext) -> None:
    lines = TimedLines()
    script = (
        "echo start; for i in 1 2 3 4 5 6 7 8; do echo tick >&2; sleep 0.1; done; exec sleep 60"
    )
    with trio.fail_after(20):
        result = await run_process(ctx, ["sh", "-c", script], on_line=lines, idle_timeout=0.4)
    assert result.outcome == "idle"
    assert lines.text("stderr") == ["tick"] * 8  # stdout was silent for longer than 0.4 s
    assert result.stop_duration is not None
    assert trio.current_time() - result.stop_duration - lines.times[-1] >= 0.4 - 0.005
    assert_nothing_left(result)


async def test_idle_limit_not_reached_exits_normally(ctx: tc.CancelContext) -> None:
    script = "for i in 1 2 3 4 5 6; do echo $i; sleep 0.1; done"
    result = await run_process(ctx, ["sh", "-c", script], idle_timeout=1.0)
    assert result.outcome == "exited" and result.ok and result.cause is None
    assert result.stop_duration is None


@pytest.mark.parametrize("hard", [None, tc.background()], ids=["default-hard", "hard-never-ends"])
async def test_idle_ignoring_term_is_killed_after_grace(
    ctx: tc.CancelContext, hard: tc.Context | None
) -> None:
    lines = Lines()
    with trio.fail_after(20):
        result = await run_process(
            ctx,
            ["sh", "-c", "trap '' TERM; echo ready; exec sleep 60"],
            on_line=lines,
            idle_timeout=0.3,
            grace=0.3,
            hard=hard,
        )
    assert result.outcome == "idle"  # why it ended; SIGKILL was needed to end it
    assert result.killed
    assert result.signal == signal.SIGKILL
    assert isinstance(result.cause, tc.IdleTimeout)
    assert result.stop_duration is not None and result.stop_duration >= 0.3
    assert_nothing_left(result)


async def test_earlier_ctx_deadline_wins_over_idle(ctx: tc.CancelContext) -> None:
    step = tc.with_timeout(ctx, 0.3)
    result = await run_process(step, ["sh", "-c", "exec sleep 60"], idle_timeout=30)
    assert result.outcome == "timed_out"
    assert isinstance(result.cause, tc.DeadlineExceeded)
    assert not isinstance(result.cause, tc.IdleTimeout)
    assert_nothing_left(result)


async def test_idle_with_check_raises_process_failed(ctx: tc.CancelContext) -> None:
    with trio.fail_after(20), pytest.raises(ProcessFailed, match="idle: no output") as info:
        await run_process(ctx, ["sh", "-c", "echo hi; exec sleep 60"], idle_timeout=0.2, check=True)
    assert info.value.result.outcome == "idle"


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0, ValueError, "`idle_timeout` must be positive"),
        (-1, ValueError, "`idle_timeout` must be non-negative"),
        ("1", TypeError, "`idle_timeout` must be a number"),
    ],
)
async def test_bad_idle_timeout(value: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        await run_process(tc.background(), ["true"], idle_timeout=value)  # type: ignore[arg-type]


# -- the deadline in the child's environment ------------------------------------------------------

PRINT_REMAINING = (
    "import os, trio, trio_context as tc\n"
    "async def main():\n"
    "    ctx = tc.from_environ(tc.background())\n"
    "    print(ctx.remaining(), os.environ.get(tc.DEADLINE_ENV_VAR, '-'), flush=True)\n"
    "trio.run(main)\n"
)


async def test_child_sees_the_remaining_time(ctx: tc.CancelContext) -> None:
    step = tc.with_timeout(ctx, 30)
    seen: list[float] = []

    def on_line(stream: str, line: str) -> None:
        seen.append(step.remaining())  # the parent's remaining time when the child spoke

    result = await run_process(step, [sys.executable, "-c", PRINT_REMAINING], on_line=on_line)
    assert result.ok, result.stderr.decode()
    child_remaining = float(result.stdout.split()[0])
    assert abs(child_remaining - seen[0]) < 0.5
    assert child_remaining < 30


@pytest.mark.ctx_timeout(None)  # the point: a context without a deadline, whatever the default
async def test_no_deadline_removes_an_inherited_variable(
    ctx: tc.CancelContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(tc.DEADLINE_ENV_VAR, "1700000004.5;4.5")
    assert ctx.deadline == math.inf
    result = await run_process(ctx, ["sh", "-c", 'echo "${TRIO_CONTEXT_DEADLINE:-}"'])
    assert result.stdout == b"\n"


async def test_deadline_overrides_env_and_opt_out_keeps_it(ctx: tc.CancelContext) -> None:
    step = tc.with_timeout(ctx, 30)
    cmd = ["sh", "-c", 'echo "$TRIO_CONTEXT_DEADLINE"']
    given = {tc.DEADLINE_ENV_VAR: "1700000004.5;4.5"}
    propagated = await run_process(step, cmd, env=given)
    _, remaining = propagated.stdout.decode().strip().split(";")
    assert 29 < float(remaining) <= 30
    kept = await run_process(step, cmd, env=given, propagate_deadline=False)
    assert kept.stdout == b"1700000004.5;4.5\n"


NESTED = (
    "import sys, trio, trio_context as tc\n"
    "async def main():\n"
    "    ctx = tc.with_timeout(tc.from_environ(tc.background()), float(sys.argv[1]))\n"
    "    result = await tc.run_process(ctx, [sys.executable, '-c', sys.argv[2]])\n"
    "    sys.stdout.buffer.write(result.stdout)\n"
    "trio.run(main)\n"
)


@pytest.mark.parametrize(("own", "low", "high"), [(100.0, 15.0, 20.0), (3.0, 1.0, 3.0)])
async def test_grandchild_sees_the_min(
    ctx: tc.CancelContext, own: float, low: float, high: float
) -> None:
    step = tc.with_timeout(ctx, 20)
    result = await run_process(step, [sys.executable, "-c", NESTED, str(own), PRINT_REMAINING])
    assert result.ok, result.stderr.decode()
    assert low < float(result.stdout.split()[0]) <= high


# -- nursery.start: the pid while it runs --------------------------------------------------------


async def test_nursery_start_gives_a_handle_while_it_runs(ctx: tc.CancelContext) -> None:
    job = tc.with_cancel(ctx)
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(run_process, job, ["sh", "-c", "exec sleep 60"])
        assert isinstance(handle, tc.ProcessHandle)
        assert handle.args == ("sh", "-c", "exec sleep 60")
        assert handle.running and handle.returncode is None
        assert os.getpgid(handle.pid) == handle.pid  # it leads its own group
        assert live_members(handle.pid) == [handle.pid]
        assert f"pid {handle.pid}, running" in repr(handle)
        job.cancel()
    assert not handle.running
    assert handle.returncode == -signal.SIGTERM
    handle.send_signal(signal.SIGTERM)  # reaped: ignored, never sent to a reused id


async def test_task_status_passed_on_gives_handle_and_result(ctx: tc.CancelContext) -> None:
    lines = Lines()
    script = "trap 'echo got-usr1; exit 0' USR1; echo ready; while :; do sleep 0.05; done"
    results: list[ProcessResult] = []

    async def job(*, task_status: trio.TaskStatus[tc.ProcessHandle]) -> None:
        results.append(
            await run_process(ctx, ["sh", "-c", script], on_line=lines, task_status=task_status)
        )

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(job)
            await lines.wait_for("ready")
            handle.send_signal(signal.SIGUSR1)
    (result,) = results
    assert result.pid == handle.pid
    assert (result.outcome, result.returncode) == ("exited", 0)  # a signal is not a stop
    assert lines.text() == ["ready", "got-usr1"]
    with pytest.raises(ValueError, match="12345"):
        handle.send_signal(12345)
    assert_nothing_left(result)


async def test_nursery_start_raises_when_nothing_starts(ctx: tc.CancelContext) -> None:
    job = tc.with_cancel(ctx)
    job.cancel()
    async with trio.open_nursery() as nursery:
        with pytest.raises(tc.ContextCancelled):
            await nursery.start(run_process, job, ["true"])
        with pytest.raises(FileNotFoundError):
            await nursery.start(run_process, ctx, ["no-such-program-xyz"])
