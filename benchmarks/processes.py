"""Stopping N processes at once: cost per process must stay flat in N.

Run: ``python benchmarks/processes.py`` (20-30 seconds; ``--fixed``: the first part alone).
For N = 10, 100, 300 it starts N ``run_process`` calls (each
``sh -c 'echo r; exec sleep 1000'``), waits until all of them run, cancels their context, and
measures the time until every call returned (wall clock), and the longest stall of the event
loop meanwhile (a ticker task). The same is measured for bare trio (``trio.run_process`` in
tasks cancelled by one scope). Reported: the stop time per process, its ratio to N = 10
(target: flat, ~1x) and to bare trio in the same run, and the longest stall (target: at most
50 ms for N = 300 on a quiet machine). Inside ``open_subreaper`` (Linux), as the CI runner and
the job server run. Then the cost of ``max_rss`` sampling (CPU per sampled process, from this
process's CPU time with and without sampling a tree of 21 processes every 10 ms) and its
detection latency (a child allocating 128 MiB under a 64 MiB limit).

First, the fixed cost of one call: CPU time of this process (all its threads, ``getrusage``)
per call of ``true`` (one after the other, 200 at a time, interleaved rounds, best and median
of 7) for ``tc.run_process`` (defaults: cancel channel, deadline propagation), bare
``trio.run_process`` (pipes captured, new session, as ``run_process`` starts a process) and
``subprocess.run`` (the same, blocking). The child's own CPU is not counted (``RUSAGE_SELF``).
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import trio

import trio_context as tc

COMMAND = ["sh", "-c", "echo r; exec sleep 1000"]
SIZES = (10, 100, 300)
REPEATS = 3


class Ticker:
    """Longest gap between wake-ups of a task that sleeps 1 ms at a time."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.running = True

    async def run(self) -> None:
        last = time.perf_counter()
        while self.running:
            await trio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now


async def stop_ours(n: int) -> tuple[float, float]:
    job = tc.with_cancel(tc.background())
    started = 0
    all_started = trio.Event()

    def on_line(stream: str, line: str) -> None:
        nonlocal started
        started += 1
        if started == n:
            all_started.set()

    return await measure(n, all_started, job.cancel, lambda: one_ours(job, on_line))


async def one_ours(job: tc.Context, on_line: Callable[[str, str], object]) -> None:
    await tc.run_process(job, COMMAND, on_line=on_line)


async def stop_trio(n: int) -> tuple[float, float]:
    scopes: list[trio.CancelScope] = []
    all_started = trio.Event()
    procs: list[trio.Process] = []

    def stop() -> None:
        for scope in scopes:
            scope.cancel()

    async def one() -> None:
        with trio.CancelScope() as scope:
            scopes.append(scope)
            proc = await trio.lowlevel.open_process(COMMAND, stdout=-1, start_new_session=True)
            procs.append(proc)
            assert proc.stdout is not None
            try:  # the stop may come while this one's "r" is still on its way: stop it too
                await proc.stdout.receive_some(16)
                if len(procs) == n:
                    all_started.set()
                await proc.wait()
            finally:
                with trio.CancelScope(shield=True):
                    proc.terminate()
                    await proc.wait()
                    await proc.stdout.aclose()

    return await measure(n, all_started, stop, one)


async def measure(
    n: int, all_started: trio.Event, stop: Callable[[], None], one: Callable[[], Awaitable[None]]
) -> tuple[float, float]:
    """Seconds from ``stop()`` until all ``n`` calls returned, and the longest loop stall."""
    ticker = Ticker()
    async with trio.open_nursery() as outer:
        outer.start_soon(ticker.run)
        async with trio.open_nursery() as calls:
            for _ in range(n):
                calls.start_soon(one)
            await all_started.wait()
            ticker.longest = 0.0
            t0 = time.perf_counter()
            stop()
        elapsed = time.perf_counter() - t0
        ticker.running = False
    return elapsed, ticker.longest


FIXED_CALLS = 200
FIXED_ROUNDS = 7


def self_cpu() -> float:
    """CPU seconds of this process so far (every thread: trio's spawning threads too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def fixed_ours() -> None:
    ctx = tc.background()
    for _ in range(FIXED_CALLS):
        await tc.run_process(ctx, ["true"])


async def fixed_trio() -> None:
    for _ in range(FIXED_CALLS):
        await trio.run_process(
            ["true"],
            capture_stdout=True,
            capture_stderr=True,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def fixed_subprocess() -> None:
    for _ in range(FIXED_CALLS):
        subprocess.run(
            ["true"], capture_output=True, stdin=subprocess.DEVNULL, start_new_session=True
        )


async def fixed_costs() -> None:
    """Print the CPU per call of each way to run ``true``, and the ratios."""
    ways: dict[str, Callable[[], Awaitable[None] | None]] = {
        "tc.run_process": fixed_ours,
        "trio.run_process": fixed_trio,
        "subprocess.run": fixed_subprocess,  # blocks the loop: nothing else runs meanwhile
    }
    per_call: dict[str, list[float]] = {name: [] for name in ways}
    await fixed_ours()  # warm-up: imports, caches, the thread pool
    for _ in range(FIXED_ROUNDS):
        for name, way in ways.items():
            t0 = self_cpu()
            pending = way()
            if pending is not None:
                await pending
            per_call[name].append((self_cpu() - t0) / FIXED_CALLS)
    best = {name: min(v) for name, v in per_call.items()}
    median = {name: statistics.median(v) for name, v in per_call.items()}
    print(
        f"fixed cost of one call of `true` (this process's CPU per call, {FIXED_CALLS} calls "
        f"in a row, best / median of {FIXED_ROUNDS} interleaved rounds):"
    )
    for name in ways:
        print(
            f"  {name:17}{best[name] * 1e6:6.0f} / {median[name] * 1e6:4.0f} us"
            f"  = {best[name] / best['trio.run_process']:.2f}x trio.run_process, "
            f"{best[name] / best['subprocess.run']:.2f}x subprocess.run (best)"
        )


TREE = "for i in $(seq {n}); do sleep 1000 & done; echo r; wait"
ALLOCATE = "import time; print('allocating', flush=True); b = b'x' * (128 << 20); time.sleep(99)"


async def sampling_cpu(processes: int, interval: float, seconds: float) -> float:
    """CPU seconds this process spends in ``seconds`` of running a tree of ``processes``."""
    job = tc.with_timeout(tc.background(), seconds)
    kwargs = {} if interval <= 0 else {"max_rss": 1 << 40, "rss_interval": interval}
    t0 = time.process_time()
    await tc.run_process(job, ["sh", "-c", TREE.format(n=processes - 1)], **kwargs)  # type: ignore[arg-type]
    return time.process_time() - t0


async def detection_latency(interval: float) -> float:
    """Seconds from a child's start of a 128 MiB allocation to its stop for a 64 MiB limit."""
    seen: list[float] = []

    def on_line(stream: str, line: str) -> None:
        seen.append(trio.current_time())

    result = await tc.run_process(
        tc.background(),
        [sys.executable, "-c", ALLOCATE],
        on_line=on_line,
        max_rss=64 << 20,
        rss_interval=interval,
    )
    assert result.outcome == "memory" and result.stop_duration is not None
    return trio.current_time() - result.stop_duration - seen[0]


async def memory_budgets() -> None:
    n, interval, seconds = 21, 0.01, 2.0
    base = min([await sampling_cpu(n, 0, seconds) for _ in range(2)])
    sampled = min([await sampling_cpu(n, interval, seconds) for _ in range(2)])
    per_sample = (sampled - base) / (seconds / interval) / n
    print(
        f"memory sampling: {per_sample * 1e6:.1f} us CPU per process per sample "
        f"(tree of {n}), i.e. {per_sample / 0.5 * 1e6:.1f} us per process per second "
        "at the default rss_interval=0.5"
    )
    for every in (0.1, 0.5):
        lat = [await detection_latency(every) for _ in range(3)]
        print(
            f"detection latency at rss_interval={every}: "
            + ", ".join(f"{x * 1e3:.0f}" for x in lat)
            + " ms (allocation start to stop; includes the ~0.1 s allocation)"
        )


async def main() -> None:
    await fixed_costs()
    if "--fixed" in sys.argv[1:]:
        return
    async with AsyncExitStack() as stack:
        contained = await stack.enter_async_context(tc.open_subreaper())
        print(f"stopping N processes at once (subreaper: {contained}); best of {REPEATS}")
        heads = ("N", "ours/proc", "vs N=10", "trio/proc", "vs trio", "stall")
        print("".join(f"{h:>{w}}" for h, w in zip(heads, (4, 11, 9, 11, 9, 10), strict=True)))
        base: float | None = None
        for n in SIZES:
            ours = [await stop_ours(n) for _ in range(REPEATS)]
            bare = [await stop_trio(n) for _ in range(REPEATS)]
            per = min(t for t, _ in ours) / n
            per_trio = min(t for t, _ in bare) / n
            stall = min(s for _, s in ours)
            base = per if base is None else base
            print(
                f"{n:>4} {per * 1e3:>8.2f}ms {per / base:>7.2f}x {per_trio * 1e3:>8.2f}ms "
                f"{per / per_trio:>7.2f}x {stall * 1e3:>7.1f}ms"
            )
        await memory_budgets()


if __name__ == "__main__":
    if sys.platform == "win32":  # pragma: no cover
        sys.exit("POSIX only")
    trio.run(main)
