"""Core benchmarks: each figure is a ratio against bare trio measured in the same run.

Run: ``python benchmarks/core.py`` (about a minute). Ratios, not absolute timings, are the
point: the targets are in the issue that introduced each figure (lower is better). Both sides of
a ratio are measured alternately, best of REPEATS each, so drift in machine load hits both.
"""

from __future__ import annotations

import gc
import subprocess
import sys
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


def best_pair(ours: Callable[[], float], theirs: Callable[[], float]) -> tuple[float, float]:
    """Best of REPEATS runs of each, alternating."""
    a = b = float("inf")
    for _ in range(REPEATS):
        a = min(a, ours())
        b = min(b, theirs())
    return a, b


def run(afn: Callable[[], Awaitable[float]]) -> float:
    return trio.run(afn, clock=trio.testing.MockClock(autojump_threshold=0))


def report(name: str, ours: float, theirs: float, target: float) -> None:
    ratio = ours / theirs
    verdict = "ok" if ratio <= target else "OVER TARGET"
    print(f"{name:<58} {ratio:6.2f}x  (target <= {target}x)  {verdict}", flush=True)


def report_bytes(name: str, value: float, target: float) -> None:
    verdict = "ok" if value <= target else "OVER TARGET"
    print(f"{name:<58} {value:6.0f} B  (target <= {target:.0f} B)  {verdict}", flush=True)


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


# -- 7. the fixed costs of a request: a timeout block ---------------------------------------

N_BLOCK = 20_000


async def block_trio() -> float:
    t0 = time.perf_counter()
    for _ in range(N_BLOCK):
        with trio.move_on_after(5):  # noqa: ASYNC100 - the cost of the scope is the point
            pass
    return time.perf_counter() - t0


async def block_ours() -> float:
    parent = tc.with_cancel(tc.background())
    t0 = time.perf_counter()
    for _ in range(N_BLOCK):
        with tc.with_timeout(parent, 5):
            pass
    return time.perf_counter() - t0


# -- 8. race and an empty group ---------------------------------------------------------------

N_RACE = 2_000


async def quick() -> int:
    await trio.lowlevel.checkpoint()
    return 1


async def slow() -> int:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


async def race_trio() -> float:
    """The hand-written race: a nursery, the first result cancels it."""

    async def race2() -> int:
        result: list[int] = []

        async def racer(afn: Callable[[], Awaitable[int]], cs: trio.CancelScope) -> None:
            value = await afn()
            if not result:
                result.append(value)
                cs.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(racer, quick, nursery.cancel_scope)
            nursery.start_soon(racer, slow, nursery.cancel_scope)
        return result[0]

    t0 = time.perf_counter()
    for _ in range(N_RACE):
        await race2()
    return time.perf_counter() - t0


async def race_ours() -> float:
    root = tc.background()
    t0 = time.perf_counter()
    for _ in range(N_RACE):
        await tc.race(root, quick, slow)
    return time.perf_counter() - t0


async def empty_nursery() -> float:
    t0 = time.perf_counter()
    for _ in range(N_RACE):
        async with trio.open_nursery():
            pass
    return time.perf_counter() - t0


async def empty_group() -> float:
    root = tc.background()
    t0 = time.perf_counter()
    for _ in range(N_RACE):
        async with tc.open_group(root):
            pass
    return time.perf_counter() - t0


# -- 9. import ----------------------------------------------------------------------------------


def import_time(module: str) -> Callable[[], float]:
    def run_python() -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        return time.perf_counter() - t0

    return run_python


# -- 10. memory left behind, and value chains ---------------------------------------------------

N_DROPPED = 100_000


def retained_after_dropping(kind: str) -> float:
    """Bytes still allocated after 100,000 children, alive at once, were dropped (no cancel)."""

    async def go() -> float:
        parent = tc.with_cancel(tc.background())

        def make(p: tc.Context) -> tc.CancelContext:
            return tc.with_cancel(p) if kind == "with_cancel" else tc.with_timeout(p, 60)

        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kids = [make(parent) for _ in range(N_DROPPED)]
        del kids
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return after - before

    return trio.run(go)


def bytes_per_value_level(depth: int = 2_000) -> float:
    """A chain of ``depth`` distinct with_value keys (the keys are made beforehand: they are
    the caller's objects)."""
    keys = [("key", i) for i in range(depth)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    ctx = tc.background()
    for key in keys:
        ctx = tc.with_value(ctx, key, None)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / depth


def distinct_chain(depth: int) -> tc.Context:
    """``depth`` distinct keys below the one looked up."""
    ctx = tc.with_value(tc.background(), "request-id", 42)
    for i in range(depth - 1):
        ctx = tc.with_value(ctx, ("key", i), i)
    return ctx


def main() -> None:
    print(f"trio {trio.__version__}; best of {REPEATS} runs each; ratio = trio_context / bare trio")
    report(
        "with ctx.scope() vs with trio.CancelScope()",
        *best_pair(lambda: run(scope_ours), lambda: run(scope_trio)),
        1.15,
    )
    report(
        "with_cancel(parent) vs trio.CancelScope() creation",
        *best_pair(create_ours, create_trio),
        1.3,
    )
    report(
        "with tc.with_timeout(p, 5): vs with trio.move_on_after(5):",
        *best_pair(lambda: run(block_ours), lambda: run(block_trio)),
        1.5,
    )
    shallow, deep = value_chain(1), value_chain(10_000)
    report(
        "ctx.value(key) at depth 10,000 vs depth 1",
        *best_pair(lambda: lookup(deep), lambda: lookup(shallow)),
        1.2,
    )
    report(
        "  (10,000 distinct keys deep vs depth 1)",
        *best_pair(lambda: lookup(distinct_chain(10_000)), lambda: lookup(shallow)),
        1.2,
    )
    fanout, nursery = best_pair(lambda: run(fanout_ours), lambda: run(fanout_trio))
    report("cancel 10,000 bound child scopes vs a 10,000-task nursery", fanout, nursery, 1.2)
    report(
        "  (vs 10,000 bare trio scopes cancelled one by one)",
        *best_pair(lambda: run(fanout_ours), lambda: run(fanout_trio_scopes)),
        1.2,
    )
    report(
        "cancel a 10,000-task open_group vs a 10,000-task nursery",
        *best_pair(lambda: run(fanout_group), lambda: run(fanout_trio)),
        1.15,
    )
    report(
        "100,000 waited deadlines vs 100,000 trio.move_on_at",
        min(run(deadlines_ours) for _ in range(2)),
        min(run(deadlines_trio) for _ in range(2)),
        1.5,
    )
    report(
        "race() of 2 vs a hand-written nursery race",
        *best_pair(lambda: run(race_ours), lambda: run(race_trio)),
        1.5,
    )
    report(
        "empty open_group vs empty nursery",
        *best_pair(lambda: run(empty_group), lambda: run(empty_nursery)),
        1.5,
    )
    report(
        'python -c "import trio_context" vs "import trio"',
        *best_pair(import_time("trio_context"), import_time("trio")),
        1.15,
    )
    report_bytes("bytes per idle child context (tracemalloc)", bytes_per_child(), 300)
    report_bytes("bytes per level, 2,000 distinct with_value keys", bytes_per_value_level(), 300)
    for kind in ("with_cancel", "with_timeout"):
        report_bytes(
            f"bytes left after 100,000 {kind} children dropped",
            retained_after_dropping(kind),
            500_000,
        )


if __name__ == "__main__":
    main()
