"""Tests for ``open_signal_context`` (``_signals.py``).

The end-to-end tests run ``tests/programs/signal_child.py`` as a real child process and signal
it only after it printed the marker that says it is ready for that signal.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading

import pytest
import trio
import trio.testing

import trio_context as tc
from support import PROGRAMS
from trio_context import SignalReceived, hard_context, open_signal_context, run_process

CHILD = PROGRAMS / "signal_child.py"


async def run_child(*args: str, sends: dict[str, int]) -> tuple[list[str], int]:
    """Run the child; when it prints a line starting with a key of ``sends``, send it that
    signal. Returns its stdout lines and exit code."""
    lines: list[str] = []
    pid: list[int] = []

    def on_line(stream: str, line: str) -> None:
        if stream != "stdout":
            return
        lines.append(line)
        if line.startswith("ready"):
            pid.append(int(line.split()[1]))
        for marker, signum in sends.items():
            if line.startswith(marker):
                os.kill(pid[0], signum)

    ctx = tc.with_timeout(tc.background(), 60)  # a safety net, not a timing assumption
    result = await run_process(ctx, [sys.executable, str(CHILD), *args], on_line=on_line)
    assert result.outcome == "exited", (result, result.stderr.decode())
    return lines, result.returncode


async def test_two_sigints_give_graceful_then_forced_exit() -> None:
    lines, code = await run_child(sends={"ready": signal.SIGINT, "cleanup-start": signal.SIGINT})
    assert lines[1:] == [
        "graceful SIGINT forced=False",
        "cleanup-start",
        "forced SIGINT forced=True",
        "handlers-restored",
    ]
    assert code == 3


async def test_sigterm_then_sigint() -> None:
    lines, code = await run_child(sends={"ready": signal.SIGTERM, "cleanup-start": signal.SIGINT})
    assert lines[1:] == [
        "graceful SIGTERM forced=False",
        "cleanup-start",
        "forced SIGINT forced=True",
        "handlers-restored",
    ]
    assert code == 3


async def test_sighup_is_handled_like_sigterm_by_default() -> None:
    # The terminal closed: without a handler the program would die at once of SIGHUP.
    lines, code = await run_child(sends={"ready": signal.SIGHUP, "cleanup-start": signal.SIGHUP})
    assert lines[1:] == [
        "graceful SIGHUP forced=False",
        "cleanup-start",
        "forced SIGHUP forced=True",
        "handlers-restored",
    ]
    assert code == 3


async def test_third_signal_is_keyboard_interrupt() -> None:
    lines, code = await run_child(
        "third",
        sends={
            "ready": signal.SIGINT,
            "cleanup-start": signal.SIGINT,
            "waiting-third": signal.SIGINT,
        },
    )
    assert lines[-2:] == ["waiting-third", "keyboard-interrupt"]
    assert code == -signal.SIGINT  # Python dies of SIGINT after an uncaught KeyboardInterrupt


async def test_in_process_soft_hard_and_restore(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    before = signal.getsignal(signal.SIGUSR1)
    async with open_signal_context(ctx, signals=[signal.SIGUSR1]) as soft:
        hard = hard_context(soft)
        assert hard is not None and hard is not soft
        assert signal.getsignal(signal.SIGUSR1) is not before
        signal.raise_signal(signal.SIGUSR1)
        await soft.done.wait()
        assert isinstance(soft.err, tc.ContextCancelled)
        assert isinstance(soft.cause, SignalReceived)
        assert soft.cause.signum == signal.SIGUSR1 and not soft.cause.forced
        assert str(soft.cause) == "received SIGUSR1: stopping gracefully"
        assert not hard.done.is_set()
        signal.raise_signal(signal.SIGUSR1)
        await hard.done.wait()
        assert isinstance(hard.cause, SignalReceived) and hard.cause.forced
        assert soft.cause is not hard.cause  # soft keeps the first cause
    assert signal.getsignal(signal.SIGUSR1) is before


async def test_exit_cancels_both_contexts(ctx: tc.CancelContext) -> None:
    async with open_signal_context(ctx, signals=[signal.SIGUSR2]) as soft:
        hard = hard_context(soft)
        assert not soft.done.is_set()
    assert soft.done.is_set()
    assert hard is not None and hard.done.is_set()
    assert soft.cause is soft.err  # no signal: a plain cancel


async def test_parent_cancellation_flows_through(ctx: tc.CancelContext) -> None:
    parent = tc.with_cancel(ctx)
    async with open_signal_context(parent, signals=[signal.SIGUSR2]) as soft:
        parent.cancel()
        assert soft.done.is_set()


async def test_bad_signals() -> None:
    with pytest.raises(ValueError, match="at least one signal"):
        async with open_signal_context(tc.background(), signals=[]):
            pass  # pragma: no cover
    with pytest.raises(ValueError):
        async with open_signal_context(tc.background(), signals=[12345]):
            pass  # pragma: no cover


def test_needs_the_main_thread_and_trio() -> None:
    errors: list[BaseException] = []

    def in_thread() -> None:
        async def main() -> None:
            async with open_signal_context(tc.background()):
                pass  # pragma: no cover

        try:
            trio.run(main)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert isinstance(errors[0], RuntimeError)
    assert "main thread" in str(errors[0])

    async def outside() -> None:
        async with open_signal_context(tc.background()):
            pass  # pragma: no cover

    coro = outside()
    with pytest.raises(RuntimeError, match="running trio loop"):
        coro.send(None)
    coro.close()


def test_signal_received_pickles() -> None:
    exc = pickle.loads(pickle.dumps(SignalReceived(signal.SIGTERM, forced=True)))
    assert (exc.signum, exc.forced) == (signal.SIGTERM, True)
    assert str(SignalReceived(200)) == "received signal 200: stopping gracefully"
