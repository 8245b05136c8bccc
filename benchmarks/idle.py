"""Idle-deadline benchmark: ``ctx.touch()`` against a plain attribute store of a time reading.

Run: ``python benchmarks/idle.py`` (a few seconds). Target (issue "Idle deadlines"): touch() costs
at most 2x ``obj.last = time.perf_counter()``, i.e. well under a microsecond.
"""

from __future__ import annotations

import time

import trio

import trio_context as tc

N = 1_000_000
REPEATS = 5


class Plain:
    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = 0.0


def plain_store() -> float:
    obj = Plain()
    perf_counter = time.perf_counter
    t0 = time.perf_counter()
    for _ in range(N):
        obj.last = perf_counter()
    return time.perf_counter() - t0


async def touches() -> float:
    ctx = tc.with_idle_timeout(tc.background(), 60)
    touch = ctx.touch
    t0 = time.perf_counter()
    for _ in range(N):
        touch()
    return time.perf_counter() - t0


def main() -> None:
    ours = min(trio.run(touches) for _ in range(REPEATS))
    base = min(plain_store() for _ in range(REPEATS))
    ratio = ours / base
    print(
        f"touch(): {ours / N * 1e9:.0f} ns per call; {ratio:.2f}x a plain attribute store of "
        f"perf_counter() (target <= 2x) {'ok' if ratio <= 2 else 'OVER TARGET'}"
    )


if __name__ == "__main__":
    main()
