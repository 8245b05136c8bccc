"""Core benchmarks: each figure is a ratio against bare trio measured in the same run.

Run: ``python benchmarks/core.py`` (about 30 s). Ratios, not absolute timings, are the point:
the targets are in the issue that introduced each figure (lower is better).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable

import trio
import trio.testing

import trio_context as tc

REPEATS = 5


def best(fn: Callable[[], float]) -> float:
    """Best of REPEATS runs of ``fn`` (which returns seconds)."""
    return min(fn() for _ in range(REPEATS))


def run(afn: Callable[[], Awaitable[float]]) -> float:
    return trio.run(afn, clock=trio.testing.MockClock(autojump_threshold=0))


def report(name: str, ours: float, theirs: float, target: float) -> None:
    ratio = ours / theirs
    verdict = "ok" if ratio <= target else "OVER TARGET"
    print(f"{name:<58} {ratio:6.2f}x  (target <= {target}x)  {verdict}")


# -- 1. scope enter/exit --------------------------------------------------------------------

N_SCOPE = 50_000


async def scope_trio() -> float:
    t0 = time.perf_counter()
    for _ in range(N_SCOPE):
        with trio.CancelScope():  # noqa: ASYNC100 - the cost of the scope is the point
            pass
    return time.perf_counter() - t0


async def scope_ours() -> float:
    ctx = tc.with_cancel(tc.background())
    t0 = time.perf_counter()
    for _ in range(N_SCOPE):
        with ctx.scope():
            pass
    return time.perf_counter() - t0


# -- 2. creation ----------------------------------------------------------------------------

N_CREATE = 100_000


def create_trio() -> float:
    t0 = time.perf_counter()
    for _ in range(N_CREATE):
        trio.CancelScope()
    return time.perf_counter() - t0


def create_ours() -> float:
    parent = tc.with_cancel(tc.background())
    t0 = time.perf_counter()
    for _ in range(N_CREATE):
        tc.with_cancel(parent)
    return time.perf_counter() - t0


# -- 3. value lookup at depth ---------------------------------------------------------------

N_LOOKUP = 200_000


def value_chain(depth: int) -> tc.Context:
    """A chain of ``depth`` contexts alternating with_value and with_cancel; the key looked
    up is stored at the root end."""
    ctx = tc.with_value(tc.background(), "request-id", 42)
    for i in range(depth - 1):
        ctx = tc.with_value(ctx, i % 8, i) if i % 2 else tc.with_cancel(ctx)
    return ctx


def lookup(ctx: tc.Context) -> float:
    t0 = time.perf_counter()
    for _ in range(N_LOOKUP):
        ctx.value("request-id")
    return time.perf_counter() - t0


# -- 4. cancel fan-out ----------------------------------------------------------------------

N_TASKS = 10_000


async def fanout_trio() -> float:
    async with trio.open_nursery() as nursery:
        for _ in range(N_TASKS):
            nursery.start_soon(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        t0 = time.perf_counter()
        nursery.cancel_scope.cancel()
    return time.perf_counter() - t0


async def fanout_trio_scopes() -> float:
    """The floor for one scope per task: bare trio scopes cancelled one by one."""
    scopes: list[trio.CancelScope] = []

    async def task() -> None:
        with trio.CancelScope() as cs:
            scopes.append(cs)
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        for _ in range(N_TASKS):
            nursery.start_soon(task)
        await trio.testing.wait_all_tasks_blocked()
        t0 = time.perf_counter()
        for cs in scopes:
            cs.cancel()
    return time.perf_counter() - t0


async def fanout_ours() -> float:
    root = tc.with_cancel(tc.background())

    async def task() -> None:
        with tc.with_cancel(root).move_on():
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        for _ in range(N_TASKS):
            nursery.start_soon(task)
        await trio.testing.wait_all_tasks_blocked()
        t0 = time.perf_counter()
        root.cancel()
    return time.perf_counter() - t0


async def fanout_group() -> float:
    """The structured path: tasks of one group share the group's bound scope."""
    root = tc.with_cancel(tc.background())
    async with tc.open_group(root) as group:
        for _ in range(N_TASKS):
            group.start_soon(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        t0 = time.perf_counter()
        group.cancel()
    return time.perf_counter() - t0


# -- 5. memory per idle child ---------------------------------------------------------------

N_MEM = 20_000


def bytes_per_child() -> float:
    parent = tc.with_cancel(tc.background())
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kids = [tc.with_cancel(parent) for _ in range(N_MEM)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    list_bytes = kids.__sizeof__()
    return (after - before - list_bytes) / N_MEM


# -- 6. many pending deadlines --------------------------------------------------------------

N_DEADLINES = 100_000


async def deadlines_trio() -> float:
    t0 = time.perf_counter()
    now = trio.current_time()

    async def task(i: int) -> None:
        with trio.move_on_at(now + 1 + i * 1e-3):
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        for i in range(N_DEADLINES):
            nursery.start_soon(task, i)
    return time.perf_counter() - t0


async def deadlines_ours() -> float:
    t0 = time.perf_counter()
    now = trio.current_time()
    root = tc.background()

    async def task(i: int) -> None:
        await tc.with_deadline(root, now + 1 + i * 1e-3).done.wait()

    async with trio.open_nursery() as nursery:
        for i in range(N_DEADLINES):
            nursery.start_soon(task, i)
    return time.perf_counter() - t0


def main() -> None:
    print(f"trio {trio.__version__}; best of {REPEATS} runs each; ratio = trio_context / bare trio")
    report(
        "with ctx.scope() vs with trio.CancelScope()",
        best(lambda: run(scope_ours)),
        best(lambda: run(scope_trio)),
        1.3,
    )
    report(
        "with_cancel(parent) vs trio.CancelScope() creation",
        best(create_ours),
        best(create_trio),
        3.0,
    )
    shallow, deep = value_chain(1), value_chain(10_000)
    report(
        "ctx.value(key) at depth 10,000 vs depth 1",
        best(lambda: lookup(deep)),
        best(lambda: lookup(shallow)),
        2.0,
    )
    fanout, nursery = best(lambda: run(fanout_ours)), best(lambda: run(fanout_trio))
    report("cancel 10,000 bound child scopes vs a 10,000-task nursery", fanout, nursery, 1.2)
    report(
        "  (vs 10,000 bare trio scopes cancelled one by one)",
        fanout,
        best(lambda: run(fanout_trio_scopes)),
        1.2,
    )
    report(
        "cancel a 10,000-task open_group vs a 10,000-task nursery",
        best(lambda: run(fanout_group)),
        nursery,
        1.2,
    )
    report(
        "100,000 waited deadlines vs 100,000 trio.move_on_at",
        min(run(deadlines_ours) for _ in range(2)),
        min(run(deadlines_trio) for _ in range(2)),
        1.5,
    )
    per_child = bytes_per_child()
    verdict = "ok" if per_child <= 400 else "OVER TARGET"
    name = "bytes per idle child context (tracemalloc)"
    print(f"{name:<58} {per_child:6.0f} B  (target <= 400 B)  {verdict}")


if __name__ == "__main__":
    main()
