"""Core semantics that Go's tests do not cover: trio scopes, current(), bad input, explain()."""

from __future__ import annotations

import gc
import math
import threading
import tracemalloc
import weakref
from collections.abc import Callable

import pytest
import trio
import trio.testing

import trio_context as tc


def cancelled_root() -> tc.CancelContext:
    ctx = tc.with_cancel(tc.background())
    ctx.cancel()
    return ctx


# -- scope() ---------------------------------------------------------------------------------


async def test_scope_raises_err_chained_from_cause_when_ctx_interrupts() -> None:
    ctx = tc.with_cancel(tc.background())
    boom = KeyError("boom")
    with pytest.raises(tc.ContextCancelled) as info:
        with ctx.scope():
            ctx.cancel(boom)
            await trio.lowlevel.checkpoint()
            pytest.fail("the checkpoint after cancel() must raise")
    assert info.value.__cause__ is boom
    assert info.value is not ctx.err  # a fresh copy, so tracebacks don't pile up on ctx.err
    assert type(info.value) is type(ctx.err)


async def test_scope_without_cause_keeps_the_interrupted_body_as_context() -> None:
    # As trio.fail_after and asyncio.timeout: the body's trio.Cancelled (with the line where
    # the body was interrupted) is printed above the error.
    ctx = tc.with_cancel(tc.background())
    with pytest.raises(tc.ContextCancelled) as info:
        with ctx.scope():
            ctx.cancel()
            await trio.sleep_forever()
    assert info.value.__cause__ is None
    assert not info.value.__suppress_context__
    assert isinstance(info.value.__context__, trio.Cancelled)


async def test_scope_deadline_raises_deadline_exceeded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ctx = tc.with_timeout(tc.background(), 3)
    with pytest.raises(tc.DeadlineExceeded):
        with ctx.scope():
            await trio.sleep(10)
    assert trio.current_time() == 3
    assert isinstance(ctx.err, TimeoutError)


async def test_outer_cancellation_passes_through_untouched() -> None:
    ctx = tc.with_cancel(tc.background())
    with trio.CancelScope() as outer:
        with ctx.scope():
            outer.cancel()
            await trio.sleep_forever()
    assert outer.cancelled_caught
    assert ctx.err is None


async def test_outer_and_ctx_both_cancelled_outer_wins() -> None:
    ctx = tc.with_cancel(tc.background())
    with trio.CancelScope() as outer:
        with ctx.scope():
            outer.cancel()
            ctx.cancel()
            await trio.sleep_forever()
    assert outer.cancelled_caught


async def test_body_exception_passes_through_even_if_ctx_done() -> None:
    ctx = tc.with_cancel(tc.background())
    with pytest.raises(ValueError, match="mine"):
        with ctx.scope():
            ctx.cancel()
            raise ValueError("mine")


async def test_body_that_finished_is_untouched_even_if_ctx_done() -> None:
    ctx = tc.with_cancel(tc.background())
    with ctx.scope() as cs:
        ctx.cancel()
    assert cs.cancel_called and not cs.cancelled_caught


async def test_scope_of_done_ctx_interrupts_at_first_checkpoint() -> None:
    with pytest.raises(tc.ContextCancelled):
        with cancelled_root().scope():
            await trio.lowlevel.checkpoint()


async def test_user_cancelling_the_yielded_trio_scope_is_plain_trio() -> None:
    ctx = tc.with_cancel(tc.background())
    with ctx.scope() as cs:
        cs.cancel()
        await trio.sleep_forever()
    assert cs.cancelled_caught and ctx.err is None


async def test_move_on_swallows_only_its_own_cancellation() -> None:
    ctx = tc.with_cancel(tc.background())
    with ctx.move_on() as cs:
        ctx.cancel()
        await trio.sleep_forever()
    assert cs.cancelled_caught
    with pytest.raises(RuntimeError):
        with ctx.move_on():
            raise RuntimeError


async def test_scope_is_reenterable_nested_and_concurrent() -> None:
    ctx = tc.with_cancel(tc.background())
    hits: list[str] = []

    async def waiter(name: str) -> None:
        with ctx.move_on():
            with ctx.move_on():
                await trio.sleep_forever()
            hits.append(f"{name} inner")
        hits.append(name)

    async with trio.open_nursery() as nursery:
        for name in "abc":
            nursery.start_soon(waiter, name)
        await trio.testing.wait_all_tasks_blocked()
        ctx.cancel()
    # As with trio scopes, the outermost cancelled scope catches the cancellation.
    assert sorted(hits) == ["a", "b", "c"]
    for _ in range(3):
        with pytest.raises(tc.ContextCancelled):
            with ctx.scope():
                await trio.lowlevel.checkpoint()


async def test_a_scope_object_cannot_be_entered_twice() -> None:
    binding = tc.background().scope()
    with binding:
        pass
    with pytest.raises(RuntimeError, match="already entered"):
        with binding:
            pass


def test_scope_outside_trio_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="inside a running trio loop"):
        with tc.with_cancel(tc.background()).scope():
            pass


async def test_cancel_from_foreign_thread_interrupts_scope() -> None:
    ctx = tc.with_cancel(tc.background())
    entered = trio.Event()

    async def body() -> None:
        with ctx.scope():
            entered.set()
            await trio.sleep_forever()

    with pytest.RaisesGroup(tc.ContextCancelled):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(body)
            await entered.wait()
            thread = threading.Thread(target=ctx.cancel, args=(OSError("from thread"),))
            thread.start()
            await trio.to_thread.run_sync(thread.join)
    assert isinstance(ctx.cause, OSError)


def test_contexts_make_no_reference_cycles() -> None:
    gc.collect()
    gc.disable()
    try:
        root = tc.with_cancel(tc.background())
        refs: list[weakref.ref[tc.Context]] = [weakref.ref(root)]
        ctx: tc.Context = root
        makers: list[Callable[[tc.Context], tc.Context]] = [
            tc.with_cancel,
            lambda p: tc.with_value(p, "k", 1),
            tc.without_cancel,
        ]
        for make in makers:
            ctx = make(ctx)
            assert ctx.done is ctx.done
            refs.append(weakref.ref(ctx))
        root.cancel(ValueError("x"))
        assert ctx.explain() == ""  # without_cancel: never done
        del root, ctx
        assert [r() for r in refs] == [None] * len(refs)  # freed by refcount alone
    finally:
        gc.enable()


# -- with ctx / run ---------------------------------------------------------------------------


async def test_with_ctx_cancels_on_exit_and_binds_current() -> None:
    with tc.with_cancel(tc.background()) as ctx:
        assert tc.current() is ctx
        child = tc.with_cancel(ctx)
    assert isinstance(ctx.err, tc.ContextCancelled)
    assert child.err is ctx.err
    assert tc.current() is tc.background()


async def test_with_ctx_fail_after_shape(autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(tc.DeadlineExceeded):
        with tc.with_timeout(tc.background(), 1):
            await trio.sleep(5)


async def test_with_ctx_cannot_be_entered_twice_at_once() -> None:
    ctx = tc.with_cancel(tc.background())
    with ctx:
        with pytest.raises(RuntimeError, match=r"use ctx\.scope"):
            with ctx:
                pass


async def test_run_returns_result_or_raises_err(autojump_clock: trio.testing.MockClock) -> None:
    async def slow(x: int) -> int:
        await trio.sleep(x)
        return x * 2

    ctx = tc.with_timeout(tc.background(), 5)
    assert await ctx.run(slow, 2) == 4
    with pytest.raises(tc.DeadlineExceeded):
        await ctx.run(slow, 10)
    assert trio.current_time() == 5


# -- current() -------------------------------------------------------------------------------


async def test_current_is_innermost_per_task_and_inherited() -> None:
    a = tc.with_value(tc.background(), "k", "a")
    b = tc.with_value(a, "k", "b")
    seen: dict[str, tc.Context] = {}

    async def child(name: str) -> None:
        seen[name] = tc.current()

    assert tc.current() is tc.background()
    async with trio.open_nursery() as nursery:
        with a.scope():
            nursery.start_soon(child, "in a")
            with b.scope():
                assert tc.current() is b
                nursery.start_soon(child, "in b")
                seen["thread"] = await trio.to_thread.run_sync(tc.current)
            assert tc.current() is a
        nursery.start_soon(child, "outside")
    assert seen == {"in a": a, "in b": b, "thread": b, "outside": tc.background()}


# -- done / wait -----------------------------------------------------------------------------


async def test_done_is_the_same_object_and_read_only() -> None:
    ctx = tc.with_cancel(tc.background())
    assert ctx.done is ctx.done
    assert not hasattr(ctx.done, "set")
    ctx.cancel()
    assert ctx.done.is_set()
    await ctx.done.wait()  # returns at once


async def test_done_wait_of_background_is_cancellable() -> None:
    with trio.move_on_after(0) as cs:
        await tc.background().done.wait()
    assert cs.cancelled_caught


async def test_deadline_fires_without_anyone_in_a_scope(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ctx = tc.with_timeout(tc.background(), 7)
    child = tc.with_value(tc.with_cancel(ctx), "k", 1)
    await child.done.wait()
    assert trio.current_time() == 7
    assert isinstance(child.err, tc.DeadlineExceeded) and child.err is ctx.err


async def test_expiry_observed_lazily_from_a_thread(autojump_clock: trio.testing.MockClock) -> None:
    ctx = tc.with_timeout(tc.background(), 2)
    await trio.sleep(3)
    err = await trio.to_thread.run_sync(lambda: ctx.err)
    assert isinstance(err, tc.DeadlineExceeded)


# -- deadlines ------------------------------------------------------------------------------


async def test_child_deadline_is_min_and_inherits_parent_err_and_cause(
    autojump_clock: trio.testing.MockClock,
) -> None:
    parent = tc.with_timeout(tc.background(), 2, cause=ValueError("parent slow"))
    child = tc.with_timeout(parent, 10, cause=ValueError("child slow"))
    assert child.deadline == parent.deadline == 2
    await child.done.wait()
    assert child.err is parent.err
    assert child.cause is parent.cause
    assert str(child.cause) == "parent slow"


async def test_past_deadline_is_born_done() -> None:
    ctx = tc.with_deadline(tc.background(), trio.current_time() - 1)
    assert isinstance(ctx.err, tc.DeadlineExceeded)
    assert ctx.remaining() == 0
    zero = tc.with_timeout(tc.background(), 0)
    assert zero.done.is_set()


async def test_remaining_and_deadline(autojump_clock: trio.testing.MockClock) -> None:
    ctx = tc.with_timeout(tc.background(), 4)
    assert ctx.remaining() == 4
    await trio.sleep(1.5)
    assert ctx.remaining() == 2.5
    assert tc.background().deadline == math.inf and tc.background().remaining() == math.inf
    assert tc.without_cancel(ctx).deadline == math.inf


async def test_cancel_after_only_moves_earlier(autojump_clock: trio.testing.MockClock) -> None:
    ctx = tc.with_timeout(tc.background(), 10)
    child = tc.with_cancel(ctx)
    ctx.cancel_after(20)
    assert ctx.deadline == 10
    async with trio.open_nursery() as nursery:
        nursery.start_soon(child.done.wait)
        await trio.testing.wait_all_tasks_blocked()
        ctx.cancel_after(3, cause=ValueError("moved"))
    assert trio.current_time() == 3
    assert child.deadline == 3
    assert isinstance(child.err, tc.DeadlineExceeded)
    assert str(child.cause) == "moved"


async def test_cancel_after_wakes_an_existing_bound_scope(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ctx = tc.with_cancel(tc.background())
    with ctx.move_on():
        ctx.cancel_after(2)
        await trio.sleep(100)
    assert trio.current_time() == 2


# -- after_func ------------------------------------------------------------------------------


async def test_after_func_runs_once_in_trio_thread_after_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ctx = tc.with_timeout(tc.background(), 5)
    calls: list[tuple[float, int]] = []
    tc.after_func(ctx, lambda: calls.append((trio.current_time(), threading.get_ident())))
    await trio.sleep(6)
    assert calls == [(5.0, threading.get_ident())]


async def test_after_func_on_done_ctx_runs_soon_and_stop_is_false() -> None:
    calls: list[int] = []
    stop = tc.after_func(cancelled_root(), lambda: calls.append(1))
    await trio.testing.wait_all_tasks_blocked()
    assert calls == [1]
    assert stop() is False


async def test_after_func_stop_prevents_call() -> None:
    ctx = tc.with_cancel(tc.background())
    calls: list[int] = []
    stop = tc.after_func(ctx, lambda: calls.append(1))
    assert stop() is True
    assert stop() is False
    ctx.cancel()
    await trio.testing.wait_all_tasks_blocked()
    assert calls == []


async def test_after_func_cancelled_from_foreign_thread_runs_in_trio_thread() -> None:
    ctx = tc.with_cancel(tc.background())
    ran = trio.Event()
    where: list[int] = []

    def fn() -> None:
        where.append(threading.get_ident())
        ran.set()  # a trio object: only legal in the trio thread

    tc.after_func(ctx, fn)
    await trio.to_thread.run_sync(ctx.cancel)
    await ran.wait()
    assert where == [threading.get_ident()]


async def test_after_func_exception_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    ctx = tc.with_cancel(tc.background())

    def bad() -> None:
        raise ZeroDivisionError("oops")

    tc.after_func(ctx, bad)
    ctx.cancel()
    await trio.testing.wait_all_tasks_blocked()
    assert "after_func callback" in caplog.text and "oops" in caplog.text


def test_after_func_outside_trio_runs_in_cancelling_thread() -> None:
    ctx = tc.with_cancel(tc.background())
    calls: list[str] = []
    tc.after_func(ctx, lambda: calls.append(threading.current_thread().name))
    thread = threading.Thread(target=ctx.cancel, name="canceller")
    thread.start()
    thread.join()
    assert calls == ["canceller"]


# -- values ----------------------------------------------------------------------------------


def test_values_nearest_wins_and_none_is_a_value() -> None:
    a = tc.with_value(tc.background(), "k", 1)
    b = tc.with_value(tc.with_cancel(a), "k", None)
    assert a.value("k") == 1
    assert b.value("k", "default") is None
    assert b.value("missing", "default") == "default"
    assert tc.without_cancel(b).value("k", 5) is None


def test_deep_value_chain_has_no_recursion_limit() -> None:
    ctx: tc.Context = tc.with_value(tc.background(), "root", "r")
    for i in range(5_000):
        ctx = tc.with_cancel(ctx) if i % 2 else tc.with_value(ctx, "depth", i)
    assert ctx.value("root") == "r"
    assert ctx.value("depth") == 4_998


def test_cancelling_a_deep_chain_does_not_recurse() -> None:
    root = tc.with_cancel(tc.background())
    ctx: tc.Context = root
    for _ in range(20_000):
        ctx = tc.with_cancel(ctx)
    root.cancel()
    assert ctx.err is root.err


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: tc.with_cancel(None), TypeError, r"`parent` must be a trio_context\.Context"),  # type: ignore[arg-type]
        (lambda: tc.with_value("ctx", "k", 1), TypeError, "`parent` must be"),  # type: ignore[arg-type]
        (lambda: tc.without_cancel(42), TypeError, "not int"),  # type: ignore[arg-type]
        (lambda: tc.with_value(tc.background(), None, 1), TypeError, "`key` must not be None"),
        (lambda: tc.with_value(tc.background(), [], 1), TypeError, "`key` must be hashable"),  # type: ignore[arg-type]
        (lambda: tc.after_func(object(), print), TypeError, "`ctx` must be"),  # type: ignore[arg-type]
        (lambda: tc.after_func(tc.background(), 3), TypeError, "`fn` must be callable"),  # type: ignore[arg-type]
        (
            lambda: tc.with_cancel(tc.background()).cancel("why"),  # type: ignore[arg-type]
            TypeError,
            "`cause` must be an exception",
        ),
        (lambda: tc.Context(), TypeError, "not constructed directly"),
        (lambda: tc.with_timeout(tc.background(), 1), RuntimeError, "needs a running trio loop"),
        (lambda: tc.with_deadline(tc.background(), 1), RuntimeError, "needs a running trio loop"),
    ],
)
def test_bad_input_sync(call: object, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("seconds", "exc", "match"),
    [
        (-1, ValueError, "`seconds` must be non-negative"),
        (math.nan, ValueError, "`seconds` must not be NaN"),
        ("5", TypeError, "`seconds` must be a number"),
        (True, TypeError, "`seconds` must be a number"),
    ],
)
async def test_bad_timeouts(seconds: object, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        tc.with_timeout(tc.background(), seconds)  # type: ignore[arg-type]
    with pytest.raises(exc, match=match):
        tc.with_cancel(tc.background()).cancel_after(seconds)  # type: ignore[arg-type]


async def test_bad_deadline() -> None:
    with pytest.raises(ValueError, match="`deadline` must not be NaN"):
        tc.with_deadline(tc.background(), math.nan)
    with pytest.raises(TypeError, match="`deadline` must be a number"):
        tc.with_deadline(tc.background(), None)  # type: ignore[arg-type]


# -- children and memory ----------------------------------------------------------------------


def test_children_are_live_only_and_cancel_unregisters() -> None:
    root = tc.with_cancel(tc.background())
    a, b = tc.with_cancel(root), tc.with_value(root, "k", 1)
    assert set(map(id, root.children())) == {id(a), id(b)}
    a.cancel()
    assert root.children() == [b]
    del b
    gc.collect()
    assert root.children() == []


def retained(make: Callable[[], object]) -> int:
    """Bytes still allocated after ``make()`` ran and its result was dropped (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        make()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_dropped_children_cost_nothing() -> None:
    parent = tc.with_cancel(tc.background())
    probe = tc.with_cancel(parent)
    ref = weakref.ref(probe)
    del probe
    assert ref() is None  # nothing but the caller held it

    def one_at_a_time() -> None:
        for _ in range(1_000_000):
            tc.with_cancel(parent)

    assert retained(one_at_a_time) < 64 * 1024
    assert parent.children() == []


@pytest.mark.parametrize("kind", ["with_cancel", "with_timeout"])
async def test_children_dropped_at_once_leave_nothing_behind(kind: str) -> None:
    # 100k children alive at the same time, then dropped without cancel(): the parent keeps
    # no dead entries (and no oversized table), and a million more made one at a time after
    # that (which reuse the dead children's addresses) keep it that way.
    parent = tc.with_cancel(tc.background())
    make = tc.with_cancel if kind == "with_cancel" else lambda p: tc.with_timeout(p, 60)

    def at_once() -> None:
        kids = [make(parent) for _ in range(100_000)]
        assert len(parent.children()) == 100_000
        del kids

    assert retained(at_once) < 100 * 1024
    for _ in range(3):
        assert retained(at_once) < 100 * 1024

    def one_at_a_time() -> None:
        for _ in range(200_000):
            make(parent)

    assert retained(one_at_a_time) < 64 * 1024
    assert parent.children() == []
    parent.cancel()  # the walk still works on what is left
    assert parent.children() == []


async def test_no_context_waits_for_the_cycle_collector() -> None:
    # The README promises contexts make no reference cycles: every kind of context, done or
    # not, with its done event read, is freed as soon as the last reference goes.
    def variants() -> list[Callable[[tc.Context], tc.Context]]:
        def after(p: tc.Context) -> tc.Context:
            ctx = tc.with_timeout(p, 5)
            tc.after_func(ctx, lambda: None)
            return ctx

        def read_done(p: tc.Context) -> tc.Context:
            ctx = tc.with_deadline(p, trio.current_time() + 5)
            assert not ctx.done.is_set()
            return ctx

        def expired(p: tc.Context) -> tc.Context:
            ctx = tc.with_timeout(p, 0)
            assert ctx.err is not None
            return ctx

        def cancelled(p: tc.Context) -> tc.Context:
            ctx = tc.with_timeout(tc.with_value(p, "k", 1), 5)
            ctx.cancel(ValueError("x"))
            return ctx

        return [
            tc.with_cancel,
            lambda p: tc.with_timeout(p, 5),
            lambda p: tc.with_deadline(p, trio.current_time() + 5),
            lambda p: tc.with_value(p, "k", 1),
            tc.without_cancel,
            lambda p: tc.with_idle_timeout(p, 5),
            after,
            read_done,
            expired,
            cancelled,
        ]

    parent = tc.with_timeout(tc.background(), 10)
    gc.collect()
    gc.disable()
    try:
        for make in variants():
            for p in (tc.background(), parent):
                ctx = make(p)
                child = tc.with_timeout(ctx, 1)  # a deadline below it, inherited or not
                refs: list[weakref.ref[tc.Context]] = [weakref.ref(ctx), weakref.ref(child)]
                del ctx, child
                assert [r() for r in refs] == [None, None], make
    finally:
        gc.enable()


# -- repr and explain ------------------------------------------------------------------------


async def test_repr_tells_kind_state_remaining_and_parent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    parent = tc.with_value(tc.background(), "user", "ann")
    ctx = tc.with_timeout(parent, 2)
    text = repr(ctx)
    assert text.startswith("<trio_context.CancelContext with_timeout(2.0) at 0x")
    assert "active" in text and "2.00 s left" in text and "parent with_value('user')" in text
    await ctx.done.wait()
    assert "deadline exceeded" in repr(ctx)
    assert repr(tc.background()).startswith("<trio_context.Context background")


async def test_explain_says_who_where_when_why_and_path() -> None:
    root = tc.with_cancel(tc.background())
    mid = tc.with_value(root, "job", 7)
    leaf = tc.with_cancel(mid)
    assert leaf.explain() == ""
    root.cancel(ValueError("user pressed stop"))  # the line explain() must point at
    text = leaf.explain()
    assert "ContextCancelled" in text
    assert "test_explain_says_who_where_when_why_and_path" in text  # the task's name
    assert f"{__file__}:" in text
    assert "at trio time" in text
    assert "cause: ValueError('user pressed stop')" in text
    assert "path: with_cancel -> with_value('job') -> with_cancel" in text


async def test_explain_deadline(autojump_clock: trio.testing.MockClock) -> None:
    ctx = tc.with_timeout(tc.background(), 3)
    await ctx.done.wait()
    assert "deadline 3.000 passed" in ctx.explain()


def test_cause_function_matches_property() -> None:
    ctx = tc.with_cancel(tc.background())
    assert tc.cause(ctx) is None
    ctx.cancel()
    assert tc.cause(ctx) is ctx.err is ctx.cause


def test_done_context_still_lists_its_without_cancel_children() -> None:
    root = tc.with_cancel(tc.background())
    before = tc.without_cancel(root)
    cancelled_child = tc.with_cancel(root)
    root.cancel()
    after = tc.without_cancel(root)
    assert cancelled_child.err is root.err
    assert {id(c) for c in root.children()} == {id(before), id(after)}


async def test_cancel_at_checks_cause() -> None:
    with pytest.raises(TypeError, match="`cause` must be an exception"):
        tc.with_cancel(tc.background()).cancel_at(1.0, cause="late")  # type: ignore[arg-type]


def test_roots_keep_no_list_of_children() -> None:
    top = tc.with_cancel(tc.background())
    assert tc.background().children() == [] and tc.todo().children() == []
    assert tc.with_cancel(top) in top.children()
