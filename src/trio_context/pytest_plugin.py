"""pytest plugin: a ``ctx`` fixture bound to the test, its deadline, and a teardown leak check.

Installed with the package (entry point ``pytest11``, name ``trio_context``); it needs
pytest-trio for async tests. Rules for test authors:

- Request ``ctx`` in an async trio test (``trio_mode = true``, or ``@pytest.mark.trio``). It
  is a :class:`~trio_context.CancelContext`, a child of ``background()``, made inside the
  test's trio run (so its deadline is on the test's clock, ``autojump_clock`` included). The
  test body runs inside ``ctx.scope()``: ``tc.current()`` is ``ctx`` in the test and in every
  task it starts.
- Deadline: ``@pytest.mark.ctx_timeout(seconds)``, else ``--ctx-timeout``, else the ini
  option ``trio_context_timeout``; none by default (``0`` or ``None`` also mean none). When
  it passes, the test fails with ``ctx.explain()``, the stacks where the test and its tasks
  were waiting, and the tasks still running under ``ctx`` -- not a bare ``Cancelled``. The
  same happens if something cancels ``ctx`` and the test does not handle it.
- ``ctx`` is cancelled as soon as the test body returns, *before* fixture teardown (Go's
  ``testing.T.Context`` does the same): fixtures see it done in their teardown. Teardown work
  that needs a context uses ``tc.without_cancel(ctx)`` or ``tc.cleanup(ctx, seconds)``.
- Leak check, after a passing body, once ``ctx`` is cancelled and what it started had a moment
  to stop: tasks running under ``ctx`` (or a context derived from it), scopes bound to those
  contexts still open, threads started by the test still alive (idle trio worker threads are
  not leaks, busy ones are), processes started by the test still alive, with their process
  groups (Linux). Each report says what leaked, where it was created and where it is now. On
  by default for tests that use ``ctx``; ``@pytest.mark.ctx_leak_check`` or
  ``trio_context_leak_check = all`` (ini) / ``--ctx-leak-check=all`` turn it on for others;
  ``@pytest.mark.ctx_no_leak_check`` turns it off. Both markers take kinds to narrow them:
  ``ctx_no_leak_check("threads")``. A test with a ``ctx_timeout`` marker or a leak check runs
  bound to a test context even without requesting ``ctx``.
- Helpers: the ``ctx_cancel_from_thread`` fixture (``await ctx_cancel_from_thread(target=ctx,
  cause=None)`` cancels from a real foreign thread), :func:`advance_to_deadline` (jump the
  ``MockClock`` to a context's deadline and let tasks react) and :func:`cancel_from_thread`.

Example::

    import pytest
    import trio
    import trio_context as tc
    from trio_context.testing import advance_to_deadline

    @pytest.mark.ctx_timeout(10)
    async def test_fetch(ctx):
        assert tc.current() is ctx
        assert await fetch(ctx, "x") == 1

    async def test_step_times_out(ctx, autojump_clock):
        step = tc.with_timeout(ctx, 5)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_step, step)
            await advance_to_deadline(step)
        assert isinstance(step.err, tc.DeadlineExceeded)

The pytest-trio pitfalls (fixture scopes, autouse fixtures, teardown order, ``trio_mode``,
clocks, Hypothesis) and what this plugin does about each are in the documentation's how-to
guide "Test with the pytest plugin" (``docs/howto/testing.md``).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from typing import Any, Final, cast

import pytest
import trio

from ._core import (
    CancelContext,
    ContextError,
    background,
    with_cancel,
    with_timeout,
)
from .testing import (
    LEAK_KINDS,
    CancelFromThread,
    LeakWatch,
    advance_to_deadline,
    cancel_from_thread,
    interrupted_report,
    leak_report,
)

__all__ = [
    "CancelFromThread",
    "advance_to_deadline",
    "cancel_from_thread",
    "ctx",
    "ctx_cancel_from_thread",
]

_CTX_KEY: Final = pytest.StashKey[CancelContext]()
_LEAK_MODES: Final = {"auto": "auto", "all": "all", "true": "all", "off": "off", "false": "off"}


# -- options and markers ----------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trio_context", "trio-context")
    group.addoption(
        "--ctx-timeout",
        dest="ctx_timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="deadline of each test's context, on trio's clock (0: none); "
        "overrides the trio_context_timeout ini option",
    )
    group.addoption(
        "--ctx-leak-check",
        dest="ctx_leak_check",
        choices=sorted(_LEAK_MODES),
        default=None,
        help="which tests get the teardown leak check: auto (those using ctx), all, off; "
        "overrides the trio_context_leak_check ini option",
    )
    parser.addini(
        "trio_context_timeout",
        "deadline of each test's context in seconds, on trio's clock (empty or 0: none)",
        default="",
    )
    parser.addini(
        "trio_context_leak_check",
        "which tests get the teardown leak check: auto (those using ctx), all (true), off (false)",
        default="auto",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "ctx_timeout(seconds): deadline of the test's trio_context context, on trio's clock "
        "(None or 0: none); the test fails with ctx.explain() when it passes",
    )
    config.addinivalue_line(
        "markers",
        "ctx_leak_check(*kinds): check after the test for leaked tasks, scopes, threads and "
        "processes (only the kinds given, if any)",
    )
    config.addinivalue_line(
        "markers",
        "ctx_no_leak_check(*kinds): skip trio_context's leak check (only the kinds given, if any)",
    )
    _leak_mode(config)
    _default_timeout(config)


def _leak_mode(config: pytest.Config) -> str:
    raw = config.getoption("ctx_leak_check") or config.getini("trio_context_leak_check")
    mode = _LEAK_MODES.get(str(raw).strip().lower())
    if mode is None:
        raise pytest.UsageError(
            f"trio_context_leak_check must be one of {', '.join(sorted(_LEAK_MODES))}, not {raw!r}"
        )
    return mode


def _default_timeout(config: pytest.Config) -> tuple[float | None, str]:
    cli: float | None = config.getoption("ctx_timeout")
    if cli is not None:
        return _check_timeout(cli, "--ctx-timeout", pytest.UsageError), "--ctx-timeout"
    raw = str(config.getini("trio_context_timeout")).strip()
    if not raw:
        return None, ""
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(
            f"trio_context_timeout must be a number of seconds, not {raw!r}"
        ) from None
    source = f"trio_context_timeout = {raw}"
    return _check_timeout(value, "trio_context_timeout", pytest.UsageError), source


def _check_timeout(value: object, name: str, error: type[Exception]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{name} must be a number of seconds or None, not {value!r}")
    if math.isnan(value) or value < 0:
        raise error(f"{name} must be a non-negative number of seconds, not {value!r}")
    return None if value == 0 or value == math.inf else float(value)


def _timeout(item: pytest.Item) -> tuple[float | None, str]:
    """The test's deadline in seconds (None: none) and where it came from.

    Raises:
        ValueError: a malformed ``ctx_timeout`` marker.
    """
    marker = item.get_closest_marker("ctx_timeout")
    if marker is None:
        return _default_timeout(item.config)
    if len(marker.args) != 1 or marker.kwargs:
        raise ValueError("use @pytest.mark.ctx_timeout(seconds), with one number or None")
    value: object = marker.args[0]
    return (
        _check_timeout(value, "ctx_timeout", ValueError),
        f"@pytest.mark.ctx_timeout({value!r})",
    )


def _leak_kinds(item: pytest.Item, uses_ctx: bool) -> frozenset[str]:
    """Which leak kinds to check for this test.

    Raises:
        ValueError: a marker names an unknown kind.
    """
    on = item.get_closest_marker("ctx_leak_check")
    off = item.get_closest_marker("ctx_no_leak_check")
    mode = _leak_mode(item.config)
    if on is not None:
        kinds = _marker_kinds(on.args, on.name)
    elif mode == "all" or (mode == "auto" and uses_ctx):
        kinds = LEAK_KINDS
    else:
        kinds = frozenset[str]()
    if off is not None:
        kinds = kinds - _marker_kinds(off.args, off.name)
    return kinds


def _marker_kinds(args: tuple[object, ...], name: str) -> frozenset[str]:
    kinds = frozenset(str(a) for a in args)
    if kinds - LEAK_KINDS:
        raise ValueError(
            f"@pytest.mark.{name}() takes kinds among {', '.join(sorted(LEAK_KINDS))}; "
            f"got {', '.join(sorted(kinds - LEAK_KINDS))}"
        )
    return kinds or LEAK_KINDS


def _new_test_context(seconds: float | None) -> CancelContext:
    return with_cancel(background()) if seconds is None else with_timeout(background(), seconds)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
async def ctx(request: pytest.FixtureRequest) -> AsyncIterator[CancelContext]:
    """The test's context: a child of ``background()`` with the test's deadline (if any),
    cancelled when the test body returns; the body runs inside ``ctx.scope()``.

    Raises:
        ValueError: a malformed ``ctx_timeout`` marker (the test errors).
    """
    seconds, _ = _timeout(request.node)
    test_ctx = _new_test_context(seconds)
    request.node.stash[_CTX_KEY] = test_ctx
    try:
        yield test_ctx
    finally:
        test_ctx.cancel()
        del request.node.stash[_CTX_KEY]


@pytest.fixture
def ctx_cancel_from_thread(ctx: CancelContext) -> CancelFromThread:
    """``await ctx_cancel_from_thread(target=None, cause=None)`` cancels ``target`` (default:
    the test's ``ctx``) from a new, real thread and waits until that thread is done; see
    :func:`cancel_from_thread`. Cancelling the test's own ``ctx`` interrupts the test at its
    next checkpoint (and fails it, unless it runs that part under ``ctx.move_on()``)."""

    async def cancel(
        target: CancelContext | None = None, cause: BaseException | None = None
    ) -> None:
        await cancel_from_thread(ctx if target is None else target, cause)

    return cancel


# -- binding the test body ---------------------------------------------------------------------


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Check the markers before any fixture runs, so a bad one is a setup error (pytest-trio
    # would report an error raised in an async fixture as a test failure).
    _timeout(item)
    _leak_kinds(item, uses_ctx=False)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    # tryfirst: this wrapper replaces item.obj before pytest-trio's wrapper reads it, so
    # pytest-trio runs the bound test as the test task, after the async fixtures are set up.
    if not isinstance(item, pytest.Function):
        return (yield)
    testfunc: Callable[..., object] = item.obj
    if hasattr(testfunc, "hypothesis"):
        return (yield)
    if item.get_closest_marker("trio") is not None and inspect.iscoroutinefunction(testfunc):
        if not _wants_binding(item):
            return (yield)
        item.obj = _bind(item, testfunc)
        try:
            return (yield)
        except BaseExceptionGroup as group:
            ours = _our_failure(group)
            if ours is None:
                raise
            raise ours from None  # pytest-trio's nursery wrapped it; show the report alone
        finally:
            item.obj = testfunc
    kinds = _leak_kinds(item, uses_ctx=False) & {"threads", "processes"}
    if not kinds:
        return (yield)
    watch = LeakWatch(background(), kinds)
    try:
        result = yield
        leaks = watch.check_blocking()
    finally:
        watch.close()
    if leaks:
        pytest.fail(leak_report(leaks, opt_out=_OPT_OUT), pytrace=False)
    return result


_MARK: Final = "_trio_context_report"
_OPT_OUT: Final = "@pytest.mark.ctx_no_leak_check"


def _failure(report: str) -> BaseException:
    """A pytest failure showing ``report`` alone, marked as this plugin's (so it can be
    unwrapped from the exception group pytest-trio wraps it in)."""
    exc = pytest.fail.Exception(report, pytrace=False)
    setattr(exc, _MARK, True)
    return exc


def _our_failure(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    leaves: list[BaseException] = []
    todo: list[BaseException] = [group]
    while todo and len(leaves) < 2:
        node = todo.pop()
        if isinstance(node, BaseExceptionGroup):
            todo.extend(cast("BaseExceptionGroup[BaseException]", node).exceptions)
        else:
            leaves.append(node)
    if len(leaves) == 1 and not todo and getattr(leaves[0], _MARK, False):
        return leaves[0]
    return None


def _wants_binding(item: pytest.Function) -> bool:
    return (
        "ctx" in item.fixturenames
        or item.get_closest_marker("ctx_timeout") is not None
        or bool(_leak_kinds(item, uses_ctx=False))
    )


def _bind(
    item: pytest.Function, testfunc: Callable[..., object]
) -> Callable[..., Coroutine[Any, Any, None]]:
    @functools.wraps(testfunc)
    async def bound_test(**kwargs: object) -> None:
        __tracebackhide__ = True
        afn: Callable[..., Awaitable[object]] = testfunc  # type: ignore[assignment]
        await _run_bound(item, afn, kwargs)

    return bound_test


async def _run_bound(
    item: pytest.Function, testfunc: Callable[..., Awaitable[object]], kwargs: dict[str, object]
) -> None:
    __tracebackhide__ = True
    test_ctx = item.stash.get(_CTX_KEY, None)
    uses_ctx = test_ctx is not None
    seconds, source = _timeout(item)
    if test_ctx is None:
        test_ctx = _new_test_context(seconds)
    kinds = _leak_kinds(item, uses_ctx)
    watch = LeakWatch(test_ctx, kinds) if kinds else None
    raised: list[BaseException] = []
    scope: trio.CancelScope | None = None
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
                report = interrupted_report(test_ctx, source, raised)
                raise _failure(report) from None
            raise
        if watch is not None:
            leaks = await watch.check(test_ctx.cancel)
            if leaks:
                raise _failure(leak_report(leaks, opt_out=_OPT_OUT))
    finally:
        test_ctx.cancel()
        if watch is not None:
            watch.close()
