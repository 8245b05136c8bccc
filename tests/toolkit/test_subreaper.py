"""Tests for process containment: ``open_subreaper`` and the tree that ``run_process`` tracks.

Descendants that leave the process group and the session (``setsid``, a double fork) must be
dead, and reaped, when ``run_process`` returns under ``open_subreaper``; without it, the
result must not claim they were killed. Children print their pids before the test acts.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import signal
import sys
import time

import pytest
import trio

import trio_context as tc
from support import proc_stat
from trio_context import run_process

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_CHILD_SUBREAPER is Linux")

# A double fork with setsid, in Python so that no shell decides anything: the grandchild prints
# its pid, then sleeps; its parent exits at once, so it is re-parented. The leader goes on
# only once the grandchild said it runs (through a pipe, not a sleep).
DOUBLE_FORK = """
import os, sys, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        {redirect}
        print("escaped", os.getpid(), flush=True)
        os.write(w, b"x")
        time.sleep(1000)
    os._exit(0)
os.wait()
os.read(r, 1)
print("parent done", flush=True)
{after}
"""


def double_fork(*, hold_stdout: bool, after: str = "") -> list[str]:
    redirect = (
        ""
        if hold_stdout
        else "fd = os.open(os.devnull, os.O_RDWR); os.dup2(fd, 2); "
        "print('escaped', os.getpid(), flush=True); os.dup2(fd, 1)"
    )
    code = DOUBLE_FORK.format(redirect=redirect, after=after)
    return [sys.executable, "-c", code]


def state(pid: int) -> str | None:
    """The process state letter of ``pid`` ("Z" zombie), None if there is no such process."""
    stat = proc_stat(pid)
    return None if stat is None else stat.state


def _zombie_children() -> set[int]:
    kids: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            kids += [int(p) for p in f.read().split()]
    return {p for p in kids if state(p) == "Z"}


_ZOMBIES_BEFORE: set[int] = set()


@pytest.fixture(autouse=True)
def _zombies_before() -> None:
    _ZOMBIES_BEFORE.clear()
    _ZOMBIES_BEFORE.update(_zombie_children())


def zombie_children() -> list[int]:
    """Zombie children of this process that appeared during the test."""
    return sorted(_zombie_children() - _ZOMBIES_BEFORE)


def subreaper_flag() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    value = ctypes.c_int()
    assert libc.prctl(37, ctypes.byref(value), 0, 0, 0) == 0
    return value.value


def escaped_pid(lines: list[str]) -> int:
    return int(next(line for line in lines if line.startswith("escaped")).split()[1])


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.escaped = trio.Event()

    def __call__(self, stream: str, line: str) -> None:
        self.lines.append(line)
        if line.startswith("escaped"):
            self.escaped.set()


@pytest.mark.parametrize("hold_stdout", [True, False], ids=["holds-stdout", "detached"])
async def test_escaped_grandchild_is_dead_after_normal_exit(
    ctx: tc.CancelContext, hold_stdout: bool
) -> None:
    lines = Lines()
    async with tc.open_subreaper() as contained:
        assert contained
        with trio.fail_after(30):
            result = await run_process(
                ctx, double_fork(hold_stdout=hold_stdout), on_line=lines, drain_timeout=0.3
            )
    pid = escaped_pid(lines.lines)
    assert result.outcome == "exited" and result.returncode == 0
    assert result.contained
    assert result.stragglers_killed  # it outlived the leader and was killed by the drain guard
    assert state(pid) is None  # dead and reaped: not even a zombie
    assert zombie_children() == []


@pytest.mark.parametrize("hold_stdout", [True, False], ids=["holds-stdout", "detached"])
async def test_escaped_grandchild_is_dead_after_cancel(
    ctx: tc.CancelContext, hold_stdout: bool
) -> None:
    lines = Lines()
    job = tc.with_cancel(ctx)

    async def cancel_when_escaped() -> None:
        await lines.escaped.wait()
        job.cancel()

    async with tc.open_subreaper(), trio.open_nursery() as nursery:
        nursery.start_soon(cancel_when_escaped)
        with trio.fail_after(30):
            result = await run_process(
                job,
                double_fork(hold_stdout=hold_stdout, after="time.sleep(1000)"),
                on_line=lines,
                grace=1,
            )
    pid = escaped_pid(lines.lines)
    assert result.outcome == "cancelled"
    assert not result.killed  # SIGTERM was enough, for the escaped one too
    assert result.contained
    assert state(pid) is None
    assert zombie_children() == []


async def test_escaped_grandchild_ignoring_term_is_killed(ctx: tc.CancelContext) -> None:
    lines = Lines()
    job = tc.with_cancel(ctx)
    code = double_fork(hold_stdout=False, after="time.sleep(1000)")
    code[-1] = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + code[-1]

    async def cancel_when_escaped() -> None:
        await lines.escaped.wait()
        job.cancel()

    async with tc.open_subreaper(), trio.open_nursery() as nursery:
        nursery.start_soon(cancel_when_escaped)
        with trio.fail_after(30):
            result = await run_process(job, code, on_line=lines, grace=0.3)
    assert result.outcome == "cancelled" and result.killed
    assert state(escaped_pid(lines.lines)) is None
    assert zombie_children() == []


async def test_shell_setsid_background_job_is_contained(ctx: tc.CancelContext) -> None:
    # `setsid` run by a shell: the usual way to detach a daemon.
    lines = Lines()
    script = "setsid sh -c 'echo escaped $$; exec sleep 1000' >/dev/null 2>&1 & sleep 0.2; echo x"
    script = "setsid sh -c 'echo escaped $$ >&3; exec sleep 1000' 3>&1 >/dev/null 2>&1 & wait"
    job = tc.with_cancel(ctx)

    async def cancel_when_escaped() -> None:
        await lines.escaped.wait()
        job.cancel()

    async with tc.open_subreaper(), trio.open_nursery() as nursery:
        nursery.start_soon(cancel_when_escaped)
        with trio.fail_after(30):
            result = await run_process(job, ["sh", "-c", script], on_line=lines, grace=1)
    assert result.outcome == "cancelled"
    assert state(escaped_pid(lines.lines)) is None
    assert zombie_children() == []


@pytest.mark.ctx_no_leak_check("processes")  # the escape is the point: the test kills it
@pytest.mark.parametrize("hold_stdout", [True, False], ids=["holds-stdout", "detached"])
async def test_without_subreaper_the_result_is_honest(
    ctx: tc.CancelContext, hold_stdout: bool
) -> None:
    lines = Lines()
    with trio.fail_after(30):
        result = await run_process(
            ctx, double_fork(hold_stdout=hold_stdout), on_line=lines, drain_timeout=0.3
        )
    pid = escaped_pid(lines.lines)
    try:
        assert not result.contained
        assert not result.stragglers_killed  # it never saw the escaped one: it says nothing
        assert result.outcome == "exited"
    finally:
        os.kill(pid, signal.SIGKILL)


async def test_trio_own_child_waits_are_not_stolen(ctx: tc.CancelContext) -> None:
    # While orphans are claimed and reaped, a process trio started itself keeps its status.
    async with tc.open_subreaper(), trio.open_nursery() as nursery:
        codes: list[int] = []

        async def plain() -> None:
            done = await trio.run_process(["sh", "-c", "sleep 0.3; exit 7"], check=False)
            codes.append(done.returncode)

        nursery.start_soon(plain)
        for _ in range(3):
            await run_process(ctx, double_fork(hold_stdout=False), drain_timeout=0.1)
    assert codes == [7]


async def test_open_subreaper_restores_the_flag_and_nests() -> None:
    before = subreaper_flag()
    async with tc.open_subreaper() as outer:
        assert outer and subreaper_flag() == 1
        async with tc.open_subreaper() as inner:
            assert inner and subreaper_flag() == 1
        assert subreaper_flag() == 1
    assert subreaper_flag() == before


async def test_call_outliving_the_subreaper_is_not_contained(ctx: tc.CancelContext) -> None:
    result: list[tc.ProcessResult] = []
    started = trio.Event()

    async def run() -> None:
        started.set()
        result.append(await run_process(ctx, ["sh", "-c", "sleep 0.3"]))

    async with trio.open_nursery() as nursery:
        async with tc.open_subreaper():
            nursery.start_soon(run)
            await started.wait()
    assert result[0].outcome == "exited"
    assert not result[0].contained


@pytest.mark.ctx_timeout(120)
async def test_300_concurrent_cancels_do_not_stall_the_loop(ctx: tc.CancelContext) -> None:
    n = 300
    job = tc.with_cancel(ctx)
    ready = 0
    all_ready = trio.Event()
    results: list[tc.ProcessResult] = []

    def on_line(stream: str, line: str) -> None:
        nonlocal ready
        ready += 1
        if ready == n:
            all_ready.set()

    async def one() -> None:
        results.append(
            await run_process(job, ["sh", "-c", "echo r; exec sleep 1000"], on_line=on_line)
        )

    longest = 0.0
    ticking = True

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while ticking:
            await trio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    async with tc.open_subreaper(), trio.open_nursery() as outer:
        outer.start_soon(ticker)
        async with trio.open_nursery() as calls:
            for _ in range(n):
                calls.start_soon(one)
            with trio.fail_after(60):
                await all_ready.wait()
            longest = 0.0  # from here on: the stop of all of them
            job.cancel()
        ticking = False
    assert all(r.outcome == "cancelled" and not r.killed for r in results)
    assert zombie_children() == []
    # Generous: the target is 50 ms on a quiet machine; this only catches the old O(n * host).
    assert longest < 1.0, f"the loop stalled for {longest * 1000:.0f} ms"
    print(f"longest loop stall while stopping {n} processes: {longest * 1000:.1f} ms")


@pytest.mark.ctx_no_leak_check("processes")  # the orphan is not the library's: the test kills it
async def test_orphans_of_other_spawns_are_left_alone(ctx: tc.CancelContext) -> None:
    # A process started some other way leaves an orphan, which comes back to this process too:
    # no run_process call claims, signals or reaps it.
    async with tc.open_subreaper():
        done = await trio.run_process(
            ["sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 & echo $!"], capture_stdout=True
        )
        other = int(done.stdout)
        try:
            result = await run_process(ctx, double_fork(hold_stdout=False), drain_timeout=0.2)
            assert result.contained and result.stragglers_killed  # its own orphan: killed
            assert state(other) not in (None, "Z")  # the other one: untouched
        finally:
            os.kill(other, signal.SIGKILL)
            await trio.to_thread.run_sync(os.waitpid, other, 0)  # our child now: reap it


async def test_without_a_usable_prctl_it_does_nothing(
    ctx: tc.CancelContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trio_context._process import _subreaper

    monkeypatch.setattr(_subreaper, "_prctl", lambda: None)
    before = subreaper_flag()
    async with tc.open_subreaper() as contained:
        assert not contained
        assert subreaper_flag() == before
        result = await run_process(ctx, ["true"])
    assert not result.contained


COUNT_TERMS = """
import os, signal, sys, time
log = sys.argv[1]
terms = []
def on_term(*_):
    terms.append(time.monotonic())
    with open(log, "a") as f:
        f.write(f"term {os.getpid()}\\n")
signal.signal(signal.SIGTERM, on_term)
def wait_then_exit():  # a while after the first SIGTERM, so that a second one would be seen
    while not terms or time.monotonic() < terms[0] + 0.5:
        time.sleep(0.02)
    os._exit(0)
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        fd = os.open(os.devnull, os.O_RDWR)
        os.dup2(fd, 2)
        print("escaped", os.getpid(), flush=True)
        os.dup2(fd, 1)
        os.write(w, b"x")
        wait_then_exit()
    os._exit(0)
os.wait()
os.read(r, 1)
wait_then_exit()
"""


async def test_an_escaped_descendant_gets_one_sigterm(
    ctx: tc.CancelContext, tmp_path: pathlib.Path
) -> None:
    # A second SIGTERM often means "force" (trio_context's own signal context does so): a stop
    # sends one to each process, however it was found.
    log = tmp_path / "terms"
    lines = Lines()
    job = tc.with_cancel(ctx)

    async def cancel_when_escaped() -> None:
        await lines.escaped.wait()
        job.cancel()

    async with tc.open_subreaper(), trio.open_nursery() as nursery:
        nursery.start_soon(cancel_when_escaped)
        with trio.fail_after(30):
            result = await run_process(
                job, [sys.executable, "-c", COUNT_TERMS, str(log)], on_line=lines, grace=5
            )
    grandchild = escaped_pid(lines.lines)
    assert result.outcome == "cancelled" and not result.killed
    assert sorted(log.read_text().split("\n")) == sorted(
        ["", f"term {result.pid}", f"term {grandchild}"]
    )
    assert state(grandchild) is None
