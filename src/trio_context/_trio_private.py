"""Every read of trio's private state, in one place.

trio makes no promise about these, so each read has a fallback that degrades one feature
instead of breaking the package when trio changes:

- :func:`system_clock_offset`: ``touch()`` of idle contexts reads ``time.perf_counter``
  directly under trio's default clock (fallback: one more call through the clock).
- :func:`scope_owners`: which task runs inside which cancel scope, for the leak report's "held
  by task ..." (fallback: the owner is not named).
- :func:`run_clock_and_token`, :func:`run_token`: the running trio run's clock and token in one
  thread-local read, for the core's hot paths (fallback: trio's public calls, one per item).
- :func:`is_trio_worker`, :func:`trio_worker_busy`: whether a thread is one of trio's cached
  workers and whether it is running a job, so the leak check can tell an idle cached worker
  from a leaked busy one (fallback: no cache thread is reported busy, so a busy worker thread
  may go unreported).

Nothing else in the package reads an underscored attribute of a trio object.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import trio

_run_context: Any  # private: where trio keeps the run of this thread
try:
    from trio._core import _run as _trio_run

    _run_context = _trio_run.GLOBAL_RUN_CONTEXT
except (ImportError, AttributeError):  # pragma: no cover - trio internals moved
    _run_context = None


def run_clock_and_token() -> tuple[trio.abc.Clock, trio.lowlevel.TrioToken] | None:
    """The clock and token of the trio run this thread is in, or None outside a run. Same as
    ``trio.lowlevel.current_clock()`` and ``current_trio_token()``, at a third of the cost."""
    try:
        runner = _run_context.runner
        token = runner.trio_token
        if token is not None:
            return runner.clock, token
    except AttributeError:  # outside a run (or trio internals moved: the public calls)
        pass
    try:
        return trio.lowlevel.current_clock(), trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None


def run_token() -> trio.lowlevel.TrioToken | None:
    """The token of the trio run this thread is in, or None outside a run."""
    try:
        token = _run_context.runner.trio_token
        if token is not None:
            return token  # type: ignore[no-any-return]
    except AttributeError:
        pass
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None


def system_clock_offset(clock: trio.abc.Clock) -> float | None:
    """trio's default clock reads ``offset + time.perf_counter()``: return that offset, or
    None for any other clock (a ``MockClock``, a custom one) or if trio's clock changed."""
    offset = getattr(clock, "offset", None)
    if type(clock).__name__ == "SystemClock" and isinstance(offset, float):
        return offset
    return None


def scope_owners(tasks: Iterable[trio.lowlevel.Task]) -> dict[int, trio.lowlevel.Task]:
    """Map ``id(CancelScope)`` to the task running inside it, from trio's private cancel-status
    chain; returns what it could (an empty map if trio's internals changed)."""
    owners: dict[int, trio.lowlevel.Task] = {}
    try:
        for task in tasks:
            status: Any = task._cancel_status  # pyright: ignore[reportAttributeAccessIssue]
            while status is not None:
                owners.setdefault(id(status._scope), task)
                status = status._parent
    except AttributeError:  # pragma: no cover - trio internals moved
        pass
    return owners


def is_trio_worker(thread: threading.Thread) -> bool:
    """True when ``thread`` is one of trio's cached worker threads (False if trio changed)."""
    return _trio_worker(thread) is not None


def _trio_worker(thread: threading.Thread) -> object | None:
    """The trio ``WorkerThread`` that runs in ``thread`` (None: not a trio cache thread)."""
    target = getattr(thread, "_target", None)
    worker: object = getattr(target, "__self__", None)
    if worker is not None and type(worker).__name__ == "WorkerThread":
        return worker
    return None


def trio_worker_busy(thread: threading.Thread) -> bool:
    """True when ``thread`` is a trio cache thread that is running a job (not idle). trio puts
    a worker back in its idle set *before* delivering the job's result, so a thread whose
    ``to_thread`` call has returned is already idle. False when trio's cache can't be read."""
    worker = _trio_worker(thread)
    if worker is None:
        return False
    try:
        from trio._core import _thread_cache  # private: the only record of idle workers

        idle: Any = _thread_cache.THREAD_CACHE._idle_workers  # pyright: ignore
    except (ImportError, AttributeError):  # pragma: no cover - trio internals moved
        return False
    return worker not in idle
