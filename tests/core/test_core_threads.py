"""Thread safety of the core: ``cancel()``, ``check()``, ``err``, ``cause`` and ``done.is_set()``
from threads that trio did not start, alone and many at once, with and without a running trio
loop; and a foreign thread's ``cancel()`` waking trio code (``await ctx.done.wait()``, a task in
``with ctx.scope():``, ``after_func``).

Threads are released together by ``threading.Barrier`` and joined; no test relies on a sleep.
Every blocking wait has a generous real-time limit that is only reached if the library hangs.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import trio
import trio.testing

import trio_context as tc

HANG_GUARD = 10.0  # real seconds; reached only if something hangs


def run_threads(targets: list[Callable[[], None]]) -> list[BaseException]:
    """Start one plain thread per target, released together; join; return their exceptions."""
    barrier = threading.Barrier(len(targets), timeout=HANG_GUARD)
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def body() -> None:
            try:
                barrier.wait()
                fn()
            except BaseException as exc:
                errors.append(exc)

        return body

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_GUARD)
        assert not t.is_alive(), "a thread hung"
    return errors


async def run_threads_from_trio(targets: list[Callable[[], None]]) -> list[BaseException]:
    """``run_threads`` while the trio loop keeps running (the threads are not trio's)."""
    return await trio.to_thread.run_sync(run_threads, targets)


@contextmanager
def fast_thread_switching() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can, to widen races."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def build_tree(
    root: tc.CancelContext, n: int, rng: random.Random, parents: dict[int, tc.Context] | None = None
) -> list[tc.Context]:
    """A random tree of n contexts below root: cancel, value and cancel-below-value nodes.
    Records each node's parent in ``parents`` (by id) when given."""
    nodes: list[tc.Context] = [root]
    while len(nodes) < n:
        parent = nodes[rng.randrange(len(nodes))]
        if rng.random() < 0.25:
            child = tc.with_value(parent, f"k{len(nodes)}", len(nodes))
        else:
            child = tc.with_cancel(parent)
        nodes.append(child)
        if parents is not None:
            parents[id(child)] = parent
    return nodes


# --------------------------------------------------------------------------------------------
# Without trio


def test_cancel_from_foreign_thread_without_trio() -> None:
    # No trio loop anywhere: cancel-only contexts work from plain threads.
    root = tc.with_cancel(tc.background())
    nodes = build_tree(root, 50, random.Random(0))
    cause = RuntimeError("from a thread")
    errors = run_threads([lambda: root.cancel(cause)])
    assert errors == []
    for node in nodes:
        assert node.done.is_set()
        assert isinstance(node.err, tc.ContextCancelled)
        assert node.err is root.err
        assert node.cause is cause
        with pytest.raises(tc.ContextCancelled) as info:
            node.check()
        assert info.value.__cause__ is cause
    assert root.children() == []


@pytest.mark.parametrize("round_", range(10))
def test_many_threads_cancel_at_once_one_cause_wins(round_: int) -> None:
    # 32 threads cancel the same context with 32 different causes at the same moment, while
    # 8 more threads poll check()/err/cause/done.is_set(): exactly one cause wins, everywhere
    # and for good; no thread sees a half-done state or an exception other than check()'s.
    rng = random.Random(round_)
    root = tc.with_cancel(tc.background())
    nodes = build_tree(root, 60, rng)
    causes = [RuntimeError(f"cause {i}") for i in range(32)]
    seen: list[tuple[BaseException, BaseException]] = []
    lock = threading.Lock()

    def canceller(cause: BaseException) -> Callable[[], None]:
        return lambda: root.cancel(cause)

    def reader(node: tc.Context) -> Callable[[], None]:
        def body() -> None:
            give_up = time.monotonic() + HANG_GUARD
            while True:
                done = node.done.is_set()
                err = node.err
                cause = node.cause
                if done:
                    # done => err and cause are already published
                    assert err is not None and cause is not None
                if err is not None:
                    assert cause is not None
                    try:
                        node.check()
                    except tc.ContextCancelled as exc:
                        assert exc.__cause__ is cause
                    else:
                        raise AssertionError("check() did not raise on a done context")
                    assert node.err is err  # never changes once set
                    with lock:
                        seen.append((err, cause))
                    return
                try:
                    node.check()  # may raise: cancelled since err was read
                except tc.ContextCancelled as exc:
                    assert exc.__cause__ is node.cause is not None
                assert time.monotonic() < give_up, "cancel never became visible"
                time.sleep(0)

        return body

    readers = [reader(nodes[rng.randrange(len(nodes))]) for _ in range(8)]
    with fast_thread_switching():
        errors = run_threads([canceller(c) for c in causes] + readers)
    assert errors == []
    assert root.cause in causes
    winner = root.cause
    for node in nodes:
        assert node.err is root.err
        assert node.cause is winner
    assert len(seen) == len(readers)
    assert all(err is root.err and cause is winner for err, cause in seen)


def test_threads_cancel_different_nodes_of_one_tree() -> None:
    # Every node of a tree is cancelled at once from its own thread, each with its own cause.
    # Whatever the interleaving: every node ends done; a node's err is either its own or its
    # parent's (the same instance, with the same cause) - a child is never left alive, never
    # gets a cause from outside its ancestry, and is done no later than its parent.
    for seed in range(5):
        rng = random.Random(seed)
        root = tc.with_cancel(tc.background())
        parents: dict[int, tc.Context] = {}
        nodes = build_tree(root, 80, rng, parents)
        cancellable = [n for n in nodes if isinstance(n, tc.CancelContext)]
        own_cause = {id(n): RuntimeError(f"cause of {i}") for i, n in enumerate(cancellable)}

        def canceller(node: tc.CancelContext, cause: BaseException) -> Callable[[], None]:
            return lambda: node.cancel(cause)

        with fast_thread_switching():
            errors = run_threads([canceller(n, own_cause[id(n)]) for n in cancellable])
        assert errors == []
        for node in nodes:
            assert isinstance(node.err, tc.ContextCancelled)
            if isinstance(node, tc.CancelContext):
                parent = parents.get(id(node))
                if node.cause is own_cause[id(node)]:
                    assert node.err is not (parent.err if parent is not None else None)
                else:
                    assert parent is not None
                    assert node.err is parent.err
                    assert node.cause is parent.cause
            assert node.children() == []


def test_create_children_while_another_thread_cancels() -> None:
    # Go's TestWithCancelSimultaneouslyCanceledParent, widened: one thread keeps deriving
    # children (cancel, value, value-then-cancel) of a parent while another cancels the parent.
    # Every child - registered before, during or after the cancel - ends done with the
    # parent's err and cause; the cancelling thread never raises.
    for _ in range(30):
        parent = tc.with_cancel(tc.background())
        cause = RuntimeError("parent cancelled")
        kids: list[tc.Context] = []

        def derive(p: tc.CancelContext = parent, out: list[tc.Context] = kids) -> None:
            for i in range(300):
                if i % 3 == 0:
                    out.append(tc.with_cancel(p))
                elif i % 3 == 1:
                    out.append(tc.with_value(p, "k", i))
                else:
                    out.append(tc.with_cancel(tc.with_value(p, "k", i)))

        def cancel(p: tc.CancelContext = parent, c: BaseException = cause) -> None:
            p.cancel(c)

        with fast_thread_switching():
            errors = run_threads([derive, cancel])
        assert errors == []
        for kid in kids:
            assert kid.done.is_set()
            assert kid.err is parent.err
            assert kid.cause is cause
        assert parent.children() == []


# --------------------------------------------------------------------------------------------
# With a running trio loop


async def test_foreign_thread_cancel_wakes_trio_code() -> None:
    # A plain thread cancels the root of a tree while trio tasks wait on it at every depth:
    # `await ctx.done.wait()` wakes, `with ctx.scope():` raises ContextCancelled chained from the
    # cause, `with ctx.move_on():` just ends, `await ctx.run(...)` raises, and an after_func
    # runs once in the trio thread.
    root = tc.with_cancel(tc.background())
    mid = tc.with_value(root, "k", "v")
    leaf = tc.with_cancel(tc.with_cancel(mid))
    contexts: list[tc.Context] = [root, mid, leaf]
    cause = RuntimeError("stop from a thread")
    trio_thread = threading.get_ident()
    woke: list[str] = []
    raised: list[BaseException] = []
    after_calls: list[int] = []
    after_called = trio.Event()

    def after() -> None:
        after_calls.append(threading.get_ident())
        after_called.set()

    tc.after_func(leaf, after)

    async def waiter(ctx: tc.Context) -> None:
        await ctx.done.wait()
        woke.append("wait")

    async def in_scope(ctx: tc.Context) -> None:
        try:
            with ctx.scope():
                await trio.sleep_forever()
        except tc.ContextCancelled as exc:
            raised.append(exc)

    async def in_move_on(ctx: tc.Context) -> None:
        with ctx.move_on() as cs:
            await trio.sleep_forever()
        assert cs.cancelled_caught
        woke.append("move_on")

    async def via_run(ctx: tc.Context) -> None:
        with pytest.raises(tc.ContextCancelled):
            await ctx.run(trio.sleep_forever)
        woke.append("run")

    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            for ctx in contexts:
                for _ in range(5):
                    nursery.start_soon(waiter, ctx)
                    nursery.start_soon(in_scope, ctx)
                nursery.start_soon(in_move_on, ctx)
                nursery.start_soon(via_run, ctx)
            await trio.testing.wait_all_tasks_blocked()
            assert woke == [] and raised == []
            errors = await run_threads_from_trio([lambda: root.cancel(cause)])
            assert errors == []
        await after_called.wait()

    assert sorted(woke) == sorted(["wait"] * 15 + ["move_on"] * 3 + ["run"] * 3)
    assert len(raised) == 15
    for exc in raised:
        assert type(exc) is tc.ContextCancelled
        assert exc is not root.err  # a fresh copy
        assert exc.__cause__ is cause
    await trio.testing.wait_all_tasks_blocked()
    assert after_calls == [trio_thread]


async def test_many_foreign_threads_cancel_while_trio_waits() -> None:
    # 16 plain threads cancel one context at once (16 causes) while 100 trio tasks wait on it
    # and its children: every waiter wakes, and every scope reports the single winning cause.
    root = tc.with_cancel(tc.background())
    children = [tc.with_cancel(root) for _ in range(10)]
    causes = [RuntimeError(f"cause {i}") for i in range(16)]
    chained: list[BaseException | None] = []
    woke = 0

    async def in_scope(ctx: tc.Context) -> None:
        nonlocal woke
        try:
            with ctx.scope():
                await trio.sleep_forever()
        except tc.ContextCancelled as exc:
            chained.append(exc.__cause__)
        woke += 1

    async def waiter(ctx: tc.Context) -> None:
        nonlocal woke
        await ctx.done.wait()
        woke += 1

    def canceller(c: BaseException) -> Callable[[], None]:
        return lambda: root.cancel(c)

    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            for ctx in [root, *children]:
                for _ in range(5):
                    nursery.start_soon(in_scope, ctx)
                    nursery.start_soon(waiter, ctx)
            await trio.testing.wait_all_tasks_blocked()
            errors = await run_threads_from_trio([canceller(c) for c in causes])
            assert errors == []
    assert woke == 110
    assert root.cause in causes
    assert len(chained) == 55
    assert all(c is root.cause for c in chained)
    assert all(child.cause is root.cause for child in children)


async def test_worker_threads_poll_check_until_cancelled() -> None:
    # The worker-thread pattern: plain threads loop on ctx.check() until it raises; the trio
    # side cancels once they are all running. Each worker sees ContextCancelled chained from the
    # cause, and reading err/done/cause from them never raises anything else.
    ctx = tc.with_cancel(tc.background())
    cause = RuntimeError("enough")
    n = 8
    started = threading.Barrier(n + 1, timeout=HANG_GUARD)
    results: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        started.wait()
        give_up = time.monotonic() + HANG_GUARD
        try:
            while True:
                ctx.check()
                assert ctx.err is None or ctx.done.is_set()
                assert time.monotonic() < give_up
                time.sleep(0)
        except BaseException as exc:
            with lock:
                results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    await trio.to_thread.run_sync(started.wait)
    ctx.cancel(cause)
    for t in threads:
        await trio.to_thread.run_sync(t.join, HANG_GUARD)
    assert len(results) == n
    for exc in results:
        assert type(exc) is tc.ContextCancelled
        assert exc.__cause__ is cause


async def test_deadline_seen_from_foreign_thread(mock_clock: trio.testing.MockClock) -> None:
    # A deadline that passed is seen from a thread that is not trio's, even though the trio loop
    # has not run since (expiry is observed lazily, from any thread).
    ctx = tc.with_timeout(tc.background(), 5.0)
    child = tc.with_cancel(tc.with_value(ctx, "k", "v"))
    seen: list[object] = []

    def look() -> None:
        seen.append(ctx.done.is_set())
        seen.append(child.err)
        try:
            child.check()
        except tc.DeadlineExceeded as exc:
            seen.append(exc)

    errors = run_threads([look])  # blocks the trio thread on purpose: no checkpoint between
    assert errors == [] and seen == [False, None]
    seen.clear()
    mock_clock.jump(6.0)
    errors = run_threads([look])
    assert errors == []
    assert seen[0] is True
    assert isinstance(seen[1], tc.DeadlineExceeded)
    assert isinstance(seen[2], tc.DeadlineExceeded)
    assert child.err is ctx.err


async def test_cancel_from_thread_with_bound_scope_and_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A context with a pending deadline and a bound scope is cancelled from a plain thread before
    # the deadline: it ends ContextCancelled (not DeadlineExceeded) with the thread's cause, and
    # the bound task is interrupted at once, not at the deadline.
    ctx = tc.with_timeout(tc.background(), 1000.0)
    cause = RuntimeError("thread says stop")
    interrupted_at: list[float] = []

    async def bound() -> None:
        with pytest.raises(tc.ContextCancelled) as info:
            with ctx.scope():
                await trio.sleep_forever()
        assert info.value.__cause__ is cause
        interrupted_at.append(trio.current_time())

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bound)
        await trio.testing.wait_all_tasks_blocked()
        assert run_threads([lambda: ctx.cancel(cause)]) == []
    assert isinstance(ctx.err, tc.ContextCancelled)
    assert interrupted_at == [start]


def test_cancel_from_thread_after_trio_run_finished() -> None:
    # Contexts outlive the trio run that made them (deadline, after_func registered in trio):
    # cancelling one later from a plain thread must not raise (the run's token is dead).
    holder: list[tc.CancelContext] = []
    calls: list[None] = []

    async def main() -> None:
        ctx = tc.with_timeout(tc.background(), 1000.0)
        child = tc.with_cancel(ctx)
        tc.after_func(child, lambda: calls.append(None))
        with child.move_on():
            await trio.lowlevel.checkpoint()
        holder.append(ctx)

    trio.run(main)
    ctx = holder[0]
    errors = run_threads([lambda: ctx.cancel(RuntimeError("late"))])
    assert errors == []
    assert isinstance(ctx.err, tc.ContextCancelled)
    assert len(calls) <= 1  # run once, or not at all: there is no trio thread any more


async def test_with_block_is_interrupted_by_a_cancel_from_a_thread() -> None:
    # `with ctx:` holds its trio scope itself (not in the scope registry): a cancel from a
    # worker thread still reaches it, and the tree dump counts it while it is open.
    ctx = tc.with_cancel(tc.background())
    with pytest.raises(tc.ContextCancelled):
        with ctx:
            assert tc.dump(ctx)["scopes"] == 1
            await trio.to_thread.run_sync(ctx.cancel)
            await trio.sleep_forever()
    assert tc.dump(ctx)["scopes"] == 0
    assert 'called by task "thread ' in ctx.explain()  # cancel() came from a worker thread


def test_children_made_and_dropped_by_many_threads_are_all_listed_and_cancelled() -> None:
    # Adding a child takes no lock while dead children's entries are deleted (and the table
    # compacted) by whichever thread drops them: no live child may be lost on the way.
    parent = tc.with_cancel(tc.background())
    kept: list[list[tc.CancelContext]] = [[] for _ in range(4)]

    def work(i: int) -> None:
        for _ in range(10):  # batches that die at once: the table empties out and is compacted
            batch = [tc.with_cancel(parent) for _ in range(2_000)]
            kept[i].extend(batch[::50])
            del batch

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    alive = [c for part in kept for c in part]
    assert {id(c) for c in parent.children()} == {id(c) for c in alive}
    parent.cancel()
    assert all(c.err is parent.err for c in alive)
