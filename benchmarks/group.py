"""Task-group benchmark: ``open_group`` with 10,000 trivial tasks against a bare trio nursery.

Run: ``python benchmarks/group.py`` (a few seconds). Target (issue "Structured tasks"): the group
costs at most 1.5x the nursery. Both sides run in the same process, best of several runs.
"""

from __future__ import annotations

import time

import trio

import trio_context as tc

N = 10_000
REPEATS = 7


async def trivial() -> None:
    await trio.lowlevel.checkpoint()


async def bare_nursery() -> float:
    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(N):
            nursery.start_soon(trivial)
    return time.perf_counter() - t0


async def group() -> float:
    t0 = time.perf_counter()
    async with tc.open_group(tc.background()) as g:
        for _ in range(N):
            g.start_soon(trivial)
    return time.perf_counter() - t0


async def limited_group() -> float:
    t0 = time.perf_counter()
    async with tc.open_group(tc.background(), limit=100) as g:
        for _ in range(N):
            g.start_soon(trivial)
    return time.perf_counter() - t0


async def best_of() -> tuple[float, float, float]:
    base = ours = limited = float("inf")
    for _ in range(REPEATS):  # interleaved, so drift in machine load hits both sides
        base = min(base, await bare_nursery())
        ours = min(ours, await group())
        limited = min(limited, await limited_group())
    return base, ours, limited


def main() -> None:
    base, ours, limited = trio.run(best_of)
    ratio = ours / base
    print(
        f"{N} trivial tasks: bare nursery {base * 1e3:.1f} ms, open_group {ours * 1e3:.1f} ms: "
        f"{ratio:.2f}x (target <= 1.5x) {'ok' if ratio <= 1.5 else 'OVER TARGET'}"
    )
    print(f"open_group(limit=100): {limited * 1e3:.1f} ms ({limited / base:.2f}x the nursery)")


if __name__ == "__main__":
    main()
