"""The core keeps its promises at the edges (DESIGN.md, "Edges the core guarantees").

Shapes ported from trio's own suite where it has one: the cyclic-garbage tests (trio #1770,
#2063) and the prompt freeing of a cancelled task's locals.
"""

from __future__ import annotations

import _thread
import gc
import signal
import subprocess
import sys
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import trio
import trio.testing

import trio_context as tc
from trio_context import open_signal_context, with_grace

# -- a cleanup context really runs in a finally: ----------------------------------------------


async def test_cleanup_in_finally_inside_the_cancelled_block_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ran: list[float] = []
    with pytest.raises(tc.DeadlineExceeded):
        with tc.with_timeout(tc.background(), 1) as outer:
            try:
                await trio.sleep(10)
            finally:
                with tc.cleanup(outer, 5):
                    await trio.sleep(2)
                    ran.append(trio.current_time())
    assert ran == [3.0]


async def test_cleanup_scope_is_cut_at_its_own_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outer = tc.with_timeout(tc.background(), 1)
    with pytest.raises(tc.DeadlineExceeded):
        with outer.scope():
            try:
                await trio.sleep(10)
            finally:
                with tc.cleanup(outer, 2).move_on() as cs:
                    await trio.sleep(100)
                assert cs.cancelled_caught
                assert trio.current_time() == 3.0


async def test_without_cancel_scope_shields_its_body(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outer = tc.with_cancel(tc.background())
    ran = False
    with pytest.raises(tc.ContextCancelled):
        with outer.scope():
            try:
                outer.cancel()
                await trio.sleep(1)
            finally:
                with tc.without_cancel(outer).scope():
                    await trio.sleep(1)
                    ran = True
    assert ran


async def test_cleanup_shields_from_an_unrelated_trio_cancellation_for_its_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The choice (docs/internals.md): like trio.move_on_after(t, shield=True), the cleanup
    # runs for its budget whichever cancellation is under way; the outer one is delivered
    # again at the first checkpoint after it.
    ran: list[float] = []
    with trio.move_on_after(1) as outer:
        try:
            await trio.sleep(10)
        finally:
            with tc.cleanup(tc.background(), 5):
                await trio.sleep(2)
                ran.append(trio.current_time())
            await trio.lowlevel.checkpoint()
            ran.append(-1.0)  # never: the outer cancellation is still in force
    assert outer.cancelled_caught
    assert ran == [3.0]


async def test_forced_stop_still_cuts_cleanup_short(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_signal_context(ctx, signals=(signal.SIGUSR1,)) as soft:
        signal.raise_signal(signal.SIGUSR1)  # soft stop: the body is cancelled
        with pytest.raises(tc.ContextCancelled):
            with soft.scope():
                try:
                    await trio.sleep(10)
                finally:
                    start = trio.current_time()
                    with tc.cleanup(soft, 100).move_on():
                        signal.raise_signal(signal.SIGUSR1)  # forced: cleanup ends at once
                        await trio.sleep(50)
                    assert trio.current_time() == start


async def test_a_hard_twin_does_not_shield(autojump_clock: trio.testing.MockClock) -> None:
    # It has no budget until soft ends: a shield could hold off every other cancel forever.
    soft = tc.with_cancel(tc.background())
    hard = with_grace(soft, 10)
    with soft.move_on():
        try:
            soft.cancel()
            await trio.sleep(1)
        finally:
            with pytest.raises(trio.Cancelled), hard.scope():
                await trio.sleep(1)
    assert trio.current_time() == 0
    assert not hard.done.is_set()


async def test_done_wait_of_a_without_cancel_context_is_not_shielded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.move_on_after(1):
        await tc.without_cancel(tc.background()).done.wait()
    assert trio.current_time() == 1


# -- no reference cycles ----------------------------------------------------------------------


@contextmanager
def no_cyclic_garbage() -> Iterator[None]:
    """trio's shape: everything the block made must be freed by reference counting alone."""
    gc.collect()
    old = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield
        gc.collect()
        assert gc.garbage == []
    finally:
        gc.set_debug(old)
        gc.garbage.clear()


async def test_raising_a_cancellation_makes_no_cyclic_garbage() -> None:
    ctx = tc.with_cancel(tc.background())
    with no_cyclic_garbage():
        try:
            with ctx.scope():
                ctx.cancel(KeyError("why"))
                await trio.lowlevel.checkpoint()
        except tc.ContextCancelled:
            pass
        try:
            ctx.check()
        except tc.ContextCancelled:
            pass
        try:
            await ctx.run(trio.sleep, 1)
        except tc.ContextCancelled:
            pass


async def test_deadline_and_with_form_make_no_cyclic_garbage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with no_cyclic_garbage():
        try:
            with tc.with_timeout(tc.background(), 1):
                await trio.sleep(2)
        except tc.DeadlineExceeded:
            pass


async def test_swallowing_a_cancellation_makes_no_cyclic_garbage() -> None:
    ctx = tc.with_cancel(tc.background())
    with no_cyclic_garbage():
        with ctx.move_on():
            ctx.cancel()
            await trio.lowlevel.checkpoint()
        await ctx.done.wait()


async def test_a_group_cancelled_from_outside_makes_no_cyclic_garbage() -> None:
    async def cancelled_from_outside() -> None:
        outer = tc.with_cancel(tc.background())
        try:
            async with tc.open_group(outer) as group:
                group.start_soon(trio.sleep_forever)
                await trio.lowlevel.checkpoint()
                outer.cancel()
        except tc.ContextCancelled:
            pass

    await cancelled_from_outside()  # once first: lazy imports build classes (one-off garbage)
    with no_cyclic_garbage():
        await cancelled_from_outside()


async def test_a_cancelled_tasks_locals_are_freed_promptly() -> None:
    # trio's test_locals_destroyed_promptly_on_cancel, through a context: with the collector
    # off, the locals of a task the context interrupted are freed by reference counting.
    destroyed: list[str] = []

    class Local:
        pass

    async def raising(ctx: tc.Context) -> None:
        local = Local()
        weakref.finalize(local, destroyed.append, "raising")
        try:
            with ctx.scope():
                await trio.sleep_forever()
        except tc.ContextCancelled:
            pass

    async def swallowing(ctx: tc.Context) -> None:
        local = Local()
        weakref.finalize(local, destroyed.append, "swallowing")
        with ctx.move_on():
            await trio.sleep_forever()

    async def in_a_group(ctx: tc.Context) -> None:
        local = Local()
        weakref.finalize(local, destroyed.append, "group")
        await trio.sleep_forever()

    ctx = tc.with_cancel(tc.background())
    gc.collect()
    gc.disable()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(raising, ctx)
            nursery.start_soon(swallowing, ctx)
            async with tc.open_group(ctx) as group:
                group.start_soon(in_a_group, ctx)
                await trio.testing.wait_all_tasks_blocked()
                group.cancel()
            ctx.cancel()
    finally:
        gc.enable()
    assert sorted(destroyed) == ["group", "raising", "swallowing"]


# -- the body's exception stays visible ------------------------------------------------------


def _printed(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


async def test_the_interrupted_body_is_in_the_printed_traceback() -> None:
    ctx = tc.with_cancel(tc.background())

    async def interrupted_body() -> None:
        ctx.cancel()
        await trio.sleep(1)

    try:
        with ctx.scope():
            await interrupted_body()
    except tc.ContextCancelled as exc:
        text = _printed(exc)
    assert "interrupted_body" in text
    assert "During handling of the above exception" in text
    assert text.rstrip().endswith("ContextCancelled: context cancelled")


async def test_with_a_cause_the_body_location_is_a_note(
    autojump_clock: trio.testing.MockClock,
) -> None:
    why = KeyError("the reason")
    ctx = tc.with_timeout(tc.background(), 1, cause=why)

    async def slow_body() -> None:
        await trio.sleep(5)

    try:
        await ctx.run(slow_body)
    except tc.DeadlineExceeded as exc:
        assert exc.__cause__ is why
        text = _printed(exc)
    assert "KeyError: 'the reason'" in text
    assert "in slow_body" in text  # the note names the interrupted frame
    assert "The above exception was the direct cause" in text


# -- any trio run -----------------------------------------------------------------------------


def _made_in_a_run(make: Callable[[], tc.CancelContext], **kwargs: object) -> tc.CancelContext:
    async def main() -> tc.CancelContext:
        return make()

    return trio.run(main, **kwargs)  # type: ignore[arg-type]


def test_a_deadline_is_honoured_in_a_second_run() -> None:
    ctx = _made_in_a_run(lambda: tc.with_timeout(tc.background(), 0.3))

    async def main() -> None:
        entered = trio.current_time()
        # read in this run, the deadline is on this run's clock
        assert 0 < ctx.deadline - entered <= 0.3
        with pytest.raises(tc.DeadlineExceeded):
            with ctx.scope():
                await trio.sleep(30)  # not skipped: interrupted by the deadline
        assert 0.2 < trio.current_time() - entered < 10
        await ctx.done.wait()
        assert ctx.done.is_set()

    trio.run(main)


def test_a_live_context_from_another_run_runs_its_body_and_derives() -> None:
    ctx = _made_in_a_run(lambda: tc.with_timeout(tc.background(), 60))

    async def main() -> None:
        ran: list[bool] = []

        async def body() -> None:
            await trio.lowlevel.checkpoint()
            ran.append(True)

        await ctx.run(body)
        assert ran == [True]  # the body ran (no silently skipped body)
        child = tc.with_timeout(ctx, 30)  # earlier: its own deadline, on this clock
        assert 29 < child.deadline - trio.current_time() <= 30
        later = tc.with_timeout(ctx, 600)  # later: keeps the parent's
        assert 59 < later.deadline - trio.current_time() <= 60.001
        ctx.cancel_after(100)  # later on either clock: ignored
        assert 59 < ctx.deadline - trio.current_time() <= 60.001
        with pytest.raises(tc.ContextCancelled):
            with later.scope():
                ctx.cancel()
                await trio.sleep(1)

    trio.run(main)


def test_a_mock_clock_run_cannot_translate_and_says_so() -> None:
    ctx = _made_in_a_run(lambda: tc.with_timeout(tc.background(), 60))

    async def main() -> None:
        with pytest.raises(RuntimeError, match="MockClock"):
            with ctx.scope():
                pytest.fail("the body must not run")  # pragma: no cover
        with pytest.raises(RuntimeError, match="MockClock"):
            await ctx.run(trio.sleep, 0)
        with pytest.raises(RuntimeError, match="MockClock"):
            await ctx.done.wait()
        assert not ctx.done.is_set()

    trio.run(main, clock=trio.testing.MockClock())
    mocked = _made_in_a_run(
        lambda: tc.with_timeout(tc.background(), 60), clock=trio.testing.MockClock()
    )
    with pytest.raises(RuntimeError, match="MockClock"):
        trio.run(mocked.run, trio.sleep, 0)


def test_a_done_context_from_another_run_raises_its_err() -> None:
    ctx = _made_in_a_run(
        lambda: tc.with_timeout(tc.background(), 0), clock=trio.testing.MockClock()
    )
    assert isinstance(ctx.err, tc.DeadlineExceeded)

    async def main() -> None:
        with pytest.raises(tc.DeadlineExceeded):
            await ctx.run(trio.sleep, 0)
        await ctx.done.wait()

    trio.run(main)


# -- cancel() from anywhere -------------------------------------------------------------------


def test_cancel_with_no_python_caller_from_a_raw_thread() -> None:
    ctx = tc.with_cancel(tc.background())
    _thread.start_new_thread(ctx.cancel, ())
    assert _wait_until(lambda: ctx.done.is_set())
    assert "unknown origin" in ctx.explain()


def _wait_until(cond: Callable[[], bool]) -> bool:
    for _ in range(2000):
        if cond():
            return True
        threading.Event().wait(0.005)
    return False  # pragma: no cover


def test_cancel_from_an_atexit_hook() -> None:
    program = (
        "import atexit, trio_context as tc\n"
        "ctx = tc.with_cancel(tc.background())\n"
        "atexit.register(lambda: print(ctx.explain()))\n"  # runs last (LIFO)
        "atexit.register(ctx.cancel)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert "is done: ContextCancelled" in out.stdout
    assert "unknown origin" in out.stdout
    assert out.stderr == ""


async def test_cancel_from_a_signal_handler() -> None:
    ctx = tc.with_cancel(tc.background())
    old = signal.signal(signal.SIGUSR2, lambda *_: ctx.cancel())
    try:
        signal.raise_signal(signal.SIGUSR2)
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert ctx.done.is_set()
    assert "test_edges.py" in ctx.explain()


# -- with ctx: once ---------------------------------------------------------------------------


async def test_with_ctx_may_be_entered_once() -> None:
    ctx = tc.with_cancel(tc.background())
    with ctx:
        with pytest.raises(RuntimeError, match="entered once"):
            with ctx:
                pass  # pragma: no cover
    with pytest.raises(RuntimeError, match="entered once"):
        with ctx:
            pass  # pragma: no cover
    with ctx.scope():  # scope() stays reusable (and the context is done now)
        pass


# -- no work on a done context ----------------------------------------------------------------


async def test_no_work_is_started_on_a_done_context(tmp_path: object) -> None:
    ctx = tc.with_cancel(tc.background())
    ctx.cancel()
    called: list[str] = []

    async def work(name: str) -> str:
        called.append(name)
        return name

    with pytest.raises(tc.ContextCancelled):
        await ctx.run(work, "run")
    with pytest.raises(tc.ContextCancelled):
        await tc.race(ctx, lambda: work("race"))
    with pytest.raises(tc.ContextCancelled):
        await tc.to_thread(ctx, called.append, "thread")
    with pytest.raises(tc.ContextCancelled):
        await tc.run_process(ctx, [sys.executable, "-c", "open('never', 'w')"])

    live = tc.with_cancel(tc.background())
    async with tc.open_group(live) as group:
        group.cancel()
        group.start_soon(work, "start_soon")
        with pytest.raises(tc.ContextCancelled):
            await group.start(_started_work, called)
    assert called == []


async def _started_work(
    called: list[str], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    called.append("start")  # pragma: no cover
    task_status.started()  # pragma: no cover


async def test_a_task_queued_before_the_cancel_does_not_start() -> None:
    started: list[int] = []

    async def work(i: int) -> None:
        started.append(i)

    async with tc.open_group(tc.background()) as group:
        group.start_soon(work, 1)
        group.cancel()  # before trio ran the task
    assert started == []


# -- children of an idle context --------------------------------------------------------------


async def test_children_of_an_idle_context_see_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    idle = tc.with_idle_timeout(tc.background(), 10)
    child = tc.with_cancel(idle)
    value = tc.with_value(child, "k", "v")
    grandchild = tc.with_timeout(value, 100)
    for ctx in (child, value, grandchild):
        assert ctx.deadline == idle.deadline == 10
        assert ctx.remaining() == 10
    assert tc.propagation.environ_for(grandchild)[tc.propagation.DEADLINE_ENV_VAR]
    await trio.sleep(5)
    idle.touch()
    assert grandchild.deadline == 15
    autojump_clock.jump(10)  # nobody looks: err is still computed from the idle deadline
    assert isinstance(grandchild.err, tc.DeadlineExceeded)
    assert isinstance(grandchild.cause, tc.IdleTimeout)
    assert isinstance(idle.err, tc.DeadlineExceeded)


async def test_a_context_with_an_idle_deadline_from_another_run_refuses_to_bind() -> None:
    async def make() -> tc.Context:
        return tc.with_cancel(tc.with_idle_timeout(tc.background(), 60))

    ctx = await trio.to_thread.run_sync(trio.run, make)
    with pytest.raises(RuntimeError, match="idle"):
        with ctx.scope():
            pass  # pragma: no cover


# -- after_func, with_grace, race: the small promises -----------------------------------------


def test_an_after_func_raising_keyboardinterrupt_ends_the_run_like_ctrl_c(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        ctx = tc.with_cancel(tc.background())

        def interrupt() -> None:
            raise KeyboardInterrupt

        tc.after_func(ctx, interrupt)
        ctx.cancel()
        await trio.sleep_forever()

    with pytest.raises(KeyboardInterrupt):
        trio.run(main)  # not TrioInternalError
    assert "raised KeyboardInterrupt" in caplog.text


async def test_an_after_func_raising_systemexit_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx = tc.with_cancel(tc.background())

    def leave() -> None:
        raise SystemExit(3)

    tc.after_func(ctx, leave)
    ctx.cancel()
    await trio.testing.wait_all_tasks_blocked()
    assert "raised SystemExit" in caplog.text


async def test_race_names_a_function_that_is_not_async() -> None:
    with pytest.raises(TypeError, match=r"`afns\[1\]` must be an async function.*returned int"):
        await tc.race(tc.background(), trio.lowlevel.checkpoint, lambda: 1)  # type: ignore[arg-type, return-value]


def test_from_environ_does_not_log_a_whole_malformed_variable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from trio_context.propagation import DEADLINE_ENV_VAR, from_environ

    huge = "x" * 1_000_000
    parent = tc.background()
    assert from_environ(parent, {DEADLINE_ENV_VAR: huge}) is parent
    assert "malformed" in caplog.text
    assert len(caplog.text) < 1000


def test_outcome_is_exported() -> None:
    from typing import get_args

    assert set(get_args(tc.Outcome)) == {"exited", "cancelled", "timed_out", "idle", "memory"}
    assert tc.ProcessResult.__annotations__["outcome"] in ("Outcome", tc.Outcome)
