"""pytest plugin: a ``ctx`` fixture bound to the test, its deadline, wall-clock limits per phase,
and a leak check.

Installed with the package (entry point ``pytest11``, name ``trio_context``). It only wires
:mod:`trio_context.testing` into pytest: options, markers, fixtures and hooks. Async tests run
under pytest-trio (``trio_mode = true`` or ``@pytest.mark.trio``) or under anyio's plugin on
its trio backend (``@pytest.mark.anyio`` with ``anyio_backend`` = ``"trio"``); both get the
same binding, reports and checks. Rules for test authors:

- Request ``ctx`` in an async trio test. It is a :class:`~trio_context.CancelContext`, a child
  of ``background()``; the test body runs inside ``ctx.scope()``, so ``tc.current()`` is
  ``ctx`` in the test and in every task it starts. Requesting it elsewhere is an error that
  says what to do (anyio's asyncio backend, a sync test, a Hypothesis ``@given`` test).
- Deadline: ``@pytest.mark.ctx_timeout(seconds)`` gives ``ctx`` a deadline on *trio's clock*
  (``ctx.deadline``, ``remaining()``, what code under test sees and propagates), from the
  start of the body: the body's ``ctx`` is then a child, made in the trio run, of the one
  fixtures get. Under
  ``autojump_clock`` it is virtual: a stuck test fails at once, exactly, but a test that
  sleeps longer in virtual time fails too; under ``mock_clock`` it never fires on its own.
  When it passes, the test fails with ``ctx.explain()``, the stacks where the test and its
  tasks were waiting, and the tasks still running under ``ctx`` -- not a bare ``Cancelled``.
- Wall-clock limit, in *real* seconds (a watchdog thread), so it means the same under every
  clock: a long virtual sleep under ``autojump_clock`` passes, a real hang fails. Project-wide
  with the ini option ``trio_context_timeout`` or ``--ctx-timeout`` (``"30"``: each phase;
  ``"call=30 setup=5 teardown=5"``; ``"10 call=60"``), per test with
  ``@pytest.mark.ctx_limit(seconds, setup=, call=, teardown=)`` (phases not given keep the
  project-wide value; ``ctx_limit(None)``: none). Each phase is timed on its own. When the
  call's limit passes, ``ctx`` is cancelled with a
  :class:`~trio_context.testing.TimeLimitExceeded` cause and the test fails as for a deadline;
  a hanging async fixture of a pytest-trio run is cancelled and reported with where each task
  was stuck; other code has its stack written to
  stderr and fails when it ends. pytest-timeout stays the outer net: set it higher.
- ``ctx`` is cancelled as soon as the test body returns, *before* fixture teardown (Go's
  ``testing.T.Context`` does the same): fixtures see it done in their teardown. Teardown work
  that needs a context uses ``tc.without_cancel(ctx)`` or ``tc.cleanup(ctx, seconds)``.
- Leak check, after a passing body: tasks under ``ctx`` (or a context derived from it) and
  scopes bound to those still open, once ``ctx`` is cancelled, before fixture teardown (tasks
  in pytest-trio's ``nursery`` fixture are not leaks: its teardown cancels them); threads and
  processes the test started, *after* fixture teardown (what a fixture owns and closes is not
  a leak; idle trio worker threads never are; process groups too, Linux), failing the test's
  teardown. Each report says what leaked, where it was created and where it is now. On for
  tests that use ``ctx``; ``@pytest.mark.ctx_leak_check`` or ``trio_context_leak_check = all``
  (ini) / ``--ctx-leak-check=all`` for others; ``@pytest.mark.ctx_no_leak_check`` turns it
  off. Both markers take kinds: ``ctx_no_leak_check("threads")``. A trio test with a
  ``ctx_timeout`` marker, a limit or a task check is bound to a test context even without
  requesting ``ctx``.
- Hypothesis: ``@given`` tests cannot use ``ctx`` (Hypothesis refuses function-scoped
  fixtures: each example would share it). Use ``with fresh_context(timeout=...) as ctx:`` from
  :mod:`trio_context.testing` in the body: a new bound context per example.
- Helpers: the ``ctx_cancel_from_thread`` fixture (``await ctx_cancel_from_thread(target=ctx,
  cause=None)`` cancels from a real foreign thread), :func:`advance_to_deadline` (jump the
  ``MockClock`` to a context's deadline and let tasks react) and :func:`cancel_from_thread`.

Example::

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
import importlib
import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Final, NoReturn, TextIO, cast

import pytest
import trio

from ._core import CancelContext, background, with_cancel
from .testing import (
    LEAK_KINDS,
    CancelFromThread,
    LeakWatch,
    PhaseLimits,
    ReportedFailure,
    TestGuard,
    Watchdog,
    advance_to_deadline,
    cancel_from_thread,
    check_limit,
    leak_report,
    marker_kinds,
    marker_limits,
    new_test_context,
    parse_limits,
    run_bound,
)

__all__ = [
    "CancelFromThread",
    "advance_to_deadline",
    "cancel_from_thread",
    "ctx",
    "ctx_cancel_from_thread",
]

_CTX_KEY: Final = pytest.StashKey[CancelContext]()
_GUARD_KEY: Final = pytest.StashKey[TestGuard]()
_OS_WATCH_KEY: Final = pytest.StashKey[LeakWatch]()
_WATCHDOG_KEY: Final = pytest.StashKey[Watchdog]()
_LIMITS_KEY: Final = pytest.StashKey[PhaseLimits]()
_LEAK_MODE_KEY: Final = pytest.StashKey[str]()
_STDERR_KEY: Final = pytest.StashKey[TextIO | None]()
_LEAK_MODES: Final = {"auto": "auto", "all": "all", "true": "all", "off": "off", "false": "off"}
_OPT_OUT: Final = "@pytest.mark.ctx_no_leak_check"
_IN_RUN: Final = frozenset({"tasks", "scopes"})  # checked in the trio run, before teardown
_PYTEST_TRIO: Final = "pytest-trio"
_ANYIO_TRIO: Final = "anyio-trio"


# -- options and markers ----------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trio_context", "trio-context")
    group.addoption(
        "--ctx-timeout",
        dest="ctx_timeout",
        default=None,
        metavar="LIMIT",
        help="wall-clock limit of each test phase in real seconds, safe under MockClock "
        "('30', 'call=30 setup=5 teardown=5'; 0: none); overrides trio_context_timeout",
    )
    group.addoption(
        "--ctx-leak-check",
        dest="ctx_leak_check",
        choices=sorted(_LEAK_MODES),
        default=None,
        help="which tests get the leak check: auto (those using ctx), all, off; "
        "overrides the trio_context_leak_check ini option",
    )
    parser.addini(
        "trio_context_timeout",
        "wall-clock limit of each test phase in real seconds ('30' or "
        "'call=30 setup=5 teardown=5'; empty or 0: none)",
        default="",
    )
    parser.addini(
        "trio_context_leak_check",
        "which tests get the leak check: auto (those using ctx), all (true), off (false)",
        default="auto",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "ctx_timeout(seconds): deadline of the test's context on trio's clock (virtual under "
        "MockClock; None or 0: none); the test fails with ctx.explain() when it passes",
        "ctx_limit(seconds=None, *, setup=None, call=None, teardown=None): wall-clock limit "
        "of the test's phases in real seconds (None: none), safe under MockClock",
        "ctx_leak_check(*kinds): check the test for leaked tasks, scopes, threads and "
        "processes (only the kinds given, if any)",
        "ctx_no_leak_check(*kinds): skip trio_context's leak check (only the kinds given, if any)",
    ):
        config.addinivalue_line("markers", line)
    _leak_mode(config)
    config.stash[_LIMITS_KEY] = _default_limits(config)
    config.stash[_STDERR_KEY] = _real_stderr()


def pytest_unconfigure(config: pytest.Config) -> None:
    watchdog = config.stash.get(_WATCHDOG_KEY, None)
    if watchdog is not None:
        watchdog.close()
    stream = config.stash.get(_STDERR_KEY, None)
    if stream is not None:
        stream.close()


def _real_stderr() -> TextIO | None:
    """A copy of stderr that pytest's output capture does not swallow (capture is suspended
    while plugins are configured), for the stacks written when a limit passes; as pytest's
    faulthandler plugin does."""
    try:
        return os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
    except (AttributeError, OSError, ValueError):  # pragma: no cover - stderr is not a file
        return None


def _leak_mode(config: pytest.Config) -> str:
    mode = config.stash.get(_LEAK_MODE_KEY, None)
    if mode is None:
        mode = config.stash[_LEAK_MODE_KEY] = _read_leak_mode(config)
    return mode


def _read_leak_mode(config: pytest.Config) -> str:
    raw = config.getoption("ctx_leak_check") or config.getini("trio_context_leak_check")
    mode = _LEAK_MODES.get(str(raw).strip().lower())
    if mode is None:
        raise pytest.UsageError(
            f"trio_context_leak_check must be one of {', '.join(sorted(_LEAK_MODES))}, not {raw!r}"
        )
    return mode


def _default_limits(config: pytest.Config) -> PhaseLimits:
    cli: str | None = config.getoption("ctx_timeout")
    if cli is not None:
        name, raw, source = "--ctx-timeout", cli, f"--ctx-timeout {cli}"
    else:
        raw = str(config.getini("trio_context_timeout")).strip()
        name, source = "trio_context_timeout", f"trio_context_timeout = {raw}"
    try:
        return parse_limits(raw, name=name, source=source)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _timeout(item: pytest.Item) -> tuple[float | None, str]:
    """The deadline of the test's context in seconds on trio's clock (None: none) and the
    marker that set it.

    Raises:
        ValueError: a malformed ``ctx_timeout`` marker.
    """
    marker = item.get_closest_marker("ctx_timeout")
    if marker is None:
        return None, ""
    if len(marker.args) != 1 or marker.kwargs:
        raise ValueError("use @pytest.mark.ctx_timeout(seconds), with one number or None")
    value: object = marker.args[0]
    return check_limit(value, "ctx_timeout"), f"@pytest.mark.ctx_timeout({value!r})"


def _limits(item: pytest.Item) -> PhaseLimits:
    """The test's wall-clock limits: the ``ctx_limit`` marker over the project-wide ones.

    Raises:
        ValueError: a malformed ``ctx_limit`` marker.
    """
    default = item.config.stash[_LIMITS_KEY]
    marker = item.get_closest_marker("ctx_limit")
    if marker is None:
        return default
    return marker_limits(marker.args, marker.kwargs, default=default)


def _leak_kinds(item: pytest.Item) -> frozenset[str]:
    """Which leak kinds to check for this test.

    Raises:
        ValueError: a marker names an unknown kind.
    """
    on = item.get_closest_marker("ctx_leak_check")
    off = item.get_closest_marker("ctx_no_leak_check")
    mode = _leak_mode(item.config)
    if on is not None:
        kinds = marker_kinds(on.args, on.name)
    elif mode == "all" or (mode == "auto" and "ctx" in _fixturenames(item)):
        kinds = LEAK_KINDS
    else:
        kinds = frozenset[str]()
    if off is not None:
        kinds = kinds - marker_kinds(off.args, off.name)
    return kinds


def _fixturenames(item: pytest.Item) -> list[str]:
    names: list[str] = getattr(item, "fixturenames", [])
    return names


def _runner(item: pytest.Item) -> str | None:
    """Who runs this async test: pytest-trio, anyio on trio, anyio on another backend
    (``"anyio-<name>"``), or None (a sync test, or not ours to bind)."""
    if not isinstance(item, pytest.Function) or hasattr(item.obj, "hypothesis"):
        return None
    if not inspect.iscoroutinefunction(item.obj):
        return None
    if item.get_closest_marker("trio") is not None:
        return _PYTEST_TRIO
    backend: object = getattr(item, "funcargs", {}).get("anyio_backend")
    if backend is None:
        return None
    name = backend if isinstance(backend, str) else cast("tuple[str, object]", backend)[0]
    return f"anyio-{name}"


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def ctx(request: pytest.FixtureRequest) -> Iterator[CancelContext]:
    """The test's context: a child of ``background()``, cancelled when the test body returns;
    the body runs inside ``ctx.scope()``. A sync fixture (made before the trio run starts, so it
    costs no fixture task): with a ``ctx_timeout`` marker the body gets a child of it with the
    deadline, made inside the run, and fixtures that request ``ctx`` get this parent.

    Raises:
        RuntimeError: the test is not an async trio test (anyio's asyncio backend, a sync
            test, a Hypothesis ``@given`` test); the message says what to do instead.
    """
    _require_trio_test(request)
    test_ctx = with_cancel(background())
    guard = request.node.stash.get(_GUARD_KEY, None)
    if guard is not None:
        guard.attach_context(test_ctx)
    request.node.stash[_CTX_KEY] = test_ctx
    try:
        yield test_ctx
    finally:
        test_ctx.cancel()
        del request.node.stash[_CTX_KEY]


def _require_trio_test(request: pytest.FixtureRequest) -> None:
    backend: object = None
    if "anyio_backend" in request.fixturenames:
        backend = request.getfixturevalue("anyio_backend")
        name = backend if isinstance(backend, str) else cast("tuple[str]", backend)[0]
        if name == "trio":
            return
        raise RuntimeError(
            f"the ctx fixture needs trio, but this test runs on anyio's {name!r} backend; "
            "run it on trio only: define an `anyio_backend` fixture that returns 'trio' "
            "(in its module or conftest.py), or drop `ctx` from tests meant for other backends"
        )
    func: object = getattr(request.node, "obj", None)
    if hasattr(func, "hypothesis"):
        raise RuntimeError(
            "a Hypothesis @given test cannot use the ctx fixture (one value would serve every "
            "example): use `with trio_context.testing.fresh_context() as ctx:` in its body"
        )
    if request.node.get_closest_marker("trio") is None or not inspect.iscoroutinefunction(func):
        raise RuntimeError(
            "the ctx fixture is for async trio tests: pytest-trio's (trio_mode = true, or "
            "@pytest.mark.trio) or anyio's on its trio backend"
        )


def _fixture_scope() -> trio.CancelScope:
    """In a pytest-trio run: the scope around the test's fixture tasks and the test."""
    nursery = trio.lowlevel.current_task().parent_nursery
    assert nursery is not None
    return nursery.cancel_scope


@functools.cache
def _trio_fixture_code() -> object:
    try:
        plugin = importlib.import_module("pytest_trio.plugin")  # untyped
    except ImportError:  # pragma: no cover - pytest-trio is what runs these tests
        return None
    return getattr(getattr(plugin.TrioFixture, "run", None), "__code__", None)


def _pytest_trio_fixture_nursery(nursery: trio.Nursery) -> bool:
    """Whether ``nursery`` is the one pytest-trio gives a fixture or test as ``nursery`` (and
    cancels at its teardown): the first nursery of a task running ``TrioFixture.run``."""
    parent = nursery.parent_task
    code = getattr(parent.coro, "cr_code", None)
    return code is _trio_fixture_code() and parent.child_nurseries[:1] == [nursery]


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


# -- the phases -------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    # pytest-trio sets async fixtures up later, in the test's trio run, from the TrioFixture it
    # returns here: when the test has a limit, the first of them to start tells the guard
    # which run (and which scope) to cancel if the setup limit passes.
    result = yield
    guard = request.node.stash.get(_GUARD_KEY, None)
    func = getattr(result, "_func", None)
    if guard is not None and type(result).__name__ == "TrioFixture" and callable(func):

        def attach_then_call(**kwargs: object) -> object:
            guard.attach_run(_fixture_scope())
            return func(**kwargs)

        setattr(result, "_func", attach_then_call)  # noqa: B010 - pytest-trio's own attribute
    return result


@pytest.hookimpl(wrapper=True, trylast=True)  # innermost: other wrappers see our errors
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    # Check the markers before any fixture runs, so a bad one is a setup error (pytest-trio
    # would report an error raised in an async fixture as a test failure).
    _timeout(item)
    _leak_kinds(item)
    limits = _limits(item)
    guard = None
    if limits:
        watchdog = item.config.stash.get(_WATCHDOG_KEY, None)
        if watchdog is None:
            watchdog = item.config.stash[_WATCHDOG_KEY] = Watchdog()
        watchdog.start()  # before any leak watch opens: not the test's thread
        stream = item.config.stash.get(_STDERR_KEY, None)
        guard = item.stash[_GUARD_KEY] = TestGuard(watchdog, limits, stream=stream)
        guard.enter("setup")
    result = yield
    if guard is not None and guard.expired is not None:
        _fail(guard)
    return result


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    # tryfirst: this wrapper replaces item.obj before pytest-trio's wrapper reads it, so
    # pytest-trio runs the bound test as the test task, after the async fixtures are set up.
    # anyio's pytest_pyfunc_call runs item.obj too.
    guard = item.stash.get(_GUARD_KEY, None)
    runner = _runner(item)
    if guard is not None and runner != _PYTEST_TRIO:
        guard.enter("call")  # pytest-trio sets up async fixtures first: still "setup"
    kinds = _leak_kinds(item)
    if kinds - _IN_RUN:
        item.stash[_OS_WATCH_KEY] = LeakWatch(background(), kinds - _IN_RUN)
    bound = runner in (_PYTEST_TRIO, _ANYIO_TRIO) and (
        "ctx" in _fixturenames(item)
        or item.get_closest_marker("ctx_timeout") is not None
        or bool(kinds & _IN_RUN)
        or guard is not None
    )
    testfunc = cast("pytest.Function", item).obj if bound else None
    if testfunc is not None:
        cast("pytest.Function", item).obj = _bind(item, testfunc, runner, kinds & _IN_RUN)
    try:
        result = yield
    except BaseException as exc:
        _close_os_watch(item)  # a failed test is not leak checked
        ours = _reported(exc)
        if ours is not None:
            if guard is not None:
                guard.reported = True
            raise pytest.fail.Exception(str(ours), pytrace=False) from None
        if guard is not None and guard.expired is not None:
            _fail(guard)  # setup or teardown interrupted in the trio run
        raise
    finally:
        if testfunc is not None:
            cast("pytest.Function", item).obj = testfunc
        if guard is not None:
            guard.attach_run(None)
            guard.attach_context(None)
    if guard is not None and guard.expired is not None:
        _fail(guard)  # the phase outlived its limit, and ended anyway
    return result


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    guard = item.stash.get(_GUARD_KEY, None)
    if guard is not None:
        guard.enter("teardown")
    try:
        result = yield
    finally:
        if guard is not None:
            guard.finish()
            del item.stash[_GUARD_KEY]
    if guard is not None and guard.expired is not None and not guard.reported:
        _close_os_watch(item)
        _fail(guard)
    watch = item.stash.get(_OS_WATCH_KEY, None)
    if watch is not None:
        # After every fixture's teardown: what a fixture owns and closes is not a leak.
        try:
            leaks = watch.check_blocking()
        finally:
            _close_os_watch(item)
        if leaks:
            pytest.fail(leak_report(leaks, opt_out=_OPT_OUT), pytrace=False)
    return result


def _close_os_watch(item: pytest.Item) -> None:
    watch = item.stash.get(_OS_WATCH_KEY, None)
    if watch is not None:
        watch.close()
        del item.stash[_OS_WATCH_KEY]


def _fail(guard: TestGuard) -> NoReturn:
    guard.reported = True
    raise pytest.fail.Exception(guard.report(), pytrace=False) from None


def _reported(exc: BaseException) -> ReportedFailure | None:
    """The plugin's own failure report, alone in ``exc`` (pytest-trio may wrap it in an
    exception group)."""
    while isinstance(exc, BaseExceptionGroup):
        subs = cast("BaseExceptionGroup[BaseException]", exc).exceptions
        if len(subs) != 1:
            return None
        exc = subs[0]
    return exc if isinstance(exc, ReportedFailure) else None


def _bind(
    item: pytest.Item,
    testfunc: Callable[..., object],
    runner: str | None,
    kinds: frozenset[str],
) -> Callable[..., Awaitable[None]]:
    @functools.wraps(testfunc)
    async def bound_test(**kwargs: object) -> None:
        __tracebackhide__ = True
        seconds, source = _timeout(item)
        base = item.stash.get(_CTX_KEY, None)  # the ctx fixture's, if requested
        test_ctx = new_test_context(seconds, parent=base)
        if base is not None and test_ctx is not base and "ctx" in kwargs:
            kwargs["ctx"] = test_ctx  # the child with the deadline
        guard = item.stash.get(_GUARD_KEY, None)
        in_pytest_trio = runner == _PYTEST_TRIO
        if guard is not None and in_pytest_trio:
            guard.attach_run(_fixture_scope())
        watch = LeakWatch(test_ctx, kinds) if kinds else None
        try:
            await run_bound(
                cast("Callable[..., Awaitable[object]]", testfunc),
                kwargs,
                test_ctx=test_ctx,
                source=source,
                watch=watch,
                guard=guard,
                cancelled_at_teardown=_pytest_trio_fixture_nursery if in_pytest_trio else None,
                opt_out=_OPT_OUT,
            )
        finally:
            if base is not None:
                base.cancel()  # fixtures see it done in their teardown
            if watch is not None:
                watch.close()

    return bound_test
