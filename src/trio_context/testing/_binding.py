"""Running a test body bound to its own context, with its reports.

- :func:`run_bound` is what the pytest plugin runs as the test: the body inside
  ``test_ctx.scope()``, the deadline (or limit) report when the context interrupted it, then the
  task and scope leak check. Failures are :class:`ReportedFailure` (a complete report, no
  traceback needed), which the plugin turns into pytest failures.
- :func:`fresh_context` does the same binding for one block: for Hypothesis ``@given`` tests,
  where a function-scoped fixture would be shared by every example (Hypothesis refuses it).

Nothing here imports pytest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from contextlib import contextmanager

import trio

from .._core import (
    CancelContext,
    ContextError,
    background,
    check_seconds,
    with_cancel,
    with_timeout,
)
from ._guard import TestGuard
from ._leakcheck import LeakWatch
from ._reports import interrupted_report, leak_report

__all__ = ["ReportedFailure", "fresh_context", "new_test_context", "run_bound"]


class ReportedFailure(Exception):
    """A test failure whose message is the whole report (what leaked, why the test's context
    ended): show the message, not a traceback."""


def new_test_context(
    seconds: float | None, *, parent: CancelContext | None = None
) -> CancelContext:
    """A test's context with a deadline ``seconds`` from now on trio's clock: a child of
    ``parent`` (default: ``background()``). With no deadline (None), ``parent`` itself when
    given, else a new child of ``background()``; then no trio run is needed."""
    if seconds is None:
        return parent if parent is not None else with_cancel(background())
    return with_timeout(background() if parent is None else parent, seconds)


async def run_bound(
    testfunc: Callable[..., Awaitable[object]],
    kwargs: Mapping[str, object],
    *,
    test_ctx: CancelContext,
    source: str = "",
    watch: LeakWatch | None = None,
    guard: TestGuard | None = None,
    cancelled_at_teardown: Callable[[trio.Nursery], bool] | None = None,
    opt_out: str = "",
) -> None:
    """Run ``await testfunc(**kwargs)`` inside ``test_ctx.scope()``, then cancel ``test_ctx``.

    When ``test_ctx`` interrupted the body (its deadline, a cancel, a wall-clock limit of
    ``guard``), raise :class:`ReportedFailure` with ``explain()`` and the stacks where the test
    and its tasks were waiting (``source`` says who set the deadline). After a passing body,
    ``watch`` (if given) checks for tasks and scopes left behind; see
    :meth:`LeakWatch.check` for ``cancelled_at_teardown``; ``opt_out`` is shown in its report.
    ``guard`` is told when the body starts and ends.

    Raises:
        ReportedFailure: as above. Whatever the body raised otherwise, unchanged.
    """
    __tracebackhide__ = True
    raised: list[BaseException] = []
    scope: trio.CancelScope | None = None
    if guard is not None:
        guard.attach_context(test_ctx)
        guard.enter("call")
    try:
        try:
            with test_ctx.scope() as scope:
                try:
                    await testfunc(**kwargs)
                except BaseException as exc:
                    raised.append(exc)
                    raise
        except ContextError:
            if scope is not None and scope.cancelled_caught and test_ctx.err is not None:
                raise ReportedFailure(interrupted_report(test_ctx, source, raised)) from None
            raise
        finally:
            if guard is not None:
                guard.enter("teardown")
        if watch is not None:
            leaks = await watch.check(test_ctx.cancel, cancelled_at_teardown=cancelled_at_teardown)
            if leaks:
                raise ReportedFailure(leak_report(leaks, opt_out=opt_out))
    finally:
        test_ctx.cancel()


@contextmanager
def fresh_context(*, timeout: float | None = None) -> Generator[CancelContext]:
    """A new test context for one block, bound to it and cancelled when it ends: for the
    body of a Hypothesis ``@given`` test, which runs once per example (Hypothesis refuses
    function-scoped fixtures such as ``ctx``, whose one value every example would share)::

        from hypothesis import given, strategies as st
        from trio_context.testing import fresh_context

        @given(st.integers(min_value=0, max_value=10))
        async def test_steps(n):
            with fresh_context(timeout=5) as ctx:
                assert tc.current() is ctx
                assert await run_steps(ctx, n) == n

    ``timeout`` is a deadline on trio's clock (needs a running trio loop). Inside the block
    ``tc.current()`` is the new context. When the context interrupted the block (its
    deadline, or a ``cancel()``), the ``with`` raises ``ctx.err`` with a note holding
    ``ctx.explain()`` and the stacks where the block and its tasks waited. Not reentrant:
    each ``with`` makes a new context. Runs in the trio thread.

    Raises:
        TypeError, ValueError: ``timeout`` is not a number, or negative or NaN.
        DeadlineExceeded, ContextCancelled: the context interrupted the block (see above).
    """
    seconds = None if timeout is None else check_seconds(timeout, "timeout")
    ctx = new_test_context(seconds)
    raised: list[BaseException] = []
    scope: trio.CancelScope | None = None
    try:
        with ctx.scope() as scope:
            try:
                yield ctx
            except BaseException as exc:
                raised.append(exc)
                raise
    except ContextError as exc:
        if scope is not None and scope.cancelled_caught:
            exc.add_note(interrupted_report(ctx, f"fresh_context(timeout={timeout!r})", raised))
        raise
    finally:
        ctx.cancel()
