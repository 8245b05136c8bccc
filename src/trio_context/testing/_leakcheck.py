"""Find what a test left behind: tasks, bound scopes, threads and processes.

The engine of the pytest plugin's teardown check (:mod:`trio_context.pytest_plugin`); it does
not import pytest. A :class:`LeakWatch` is opened when a checked test's body starts and
:meth:`LeakWatch.check` is awaited when it ends, in the test's task:

- *tasks*: trio tasks still running whose :func:`~trio_context.current` is the test's context
  or a descendant (found by walking trio's task tree from the root task). Their spawn site is
  recorded by a trio instrument that only listens to ``task_spawned``, only while the watch is
  open.
- *scopes*: descendants of the test's context (and the context itself) with a bound scope
  (``ctx.scope()``, ``with ctx:``) still open, with the task that holds it when trio says.
- *threads*: threads started during the test and still alive, plus trio worker threads that
  are still busy with a job; idle trio cache threads are not leaks (trio keeps them ~10 s for
  reuse). ``threading.Thread.start`` is wrapped while the watch is open to keep a cheap
  creation stack (frames only; source lines are read when a report is printed).
- *processes* (Linux only): processes started through :class:`subprocess.Popen` during the test
  (trio's and trio_context's ``run_process`` use it) still alive, and live members of the
  process groups they led (an orphaned grandchild of a ``sh -c``). ``Popen.__init__`` is wrapped
  while the watch is open to record pid, command line and creation stack. Where the kernel has
  ``/proc/<pid>/task/<tid>/children``, any other new direct child is reported too.

The process part lives in :mod:`trio_context._leakprocs`; :class:`~trio_context._leakreport.Leak`
and the stacks a report shows, in :mod:`trio_context._leakreport`.

Nothing here costs anything while no watch is open. A watch is meant for one trio thread at
a time (pytest runs tests one by one).
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

import trio

from .._core import Context, bound_scopes, canceller_of, current, label_of, parent_of
from .._trio_private import is_trio_worker, scope_owners, trio_worker_busy
from ._leakprocs import ProcessWatch, procfs
from ._leakreport import Leak, capture, task_stack, thread_stack

__all__ = ["LEAK_KINDS", "LeakWatch", "all_tasks", "marker_kinds", "tasks_under", "under"]

LEAK_KINDS: Final = frozenset({"tasks", "scopes", "threads", "processes"})

_FIRST_ROUNDS: Final = 3


def marker_kinds(args: tuple[object, ...], name: str) -> frozenset[str]:
    """The leak kinds a marker ``name(*args)`` names; all of them when it names none.

    Raises:
        ValueError: an unknown kind.
    """
    kinds = frozenset(str(a) for a in args)
    if kinds - LEAK_KINDS:
        raise ValueError(
            f"@pytest.mark.{name}() takes kinds among {', '.join(sorted(LEAK_KINDS))}; "
            f"got {', '.join(sorted(kinds - LEAK_KINDS))}"
        )
    return kinds or LEAK_KINDS


# -- the context tree ---------------------------------------------------------------------


def under(ctx: Context | None, root: Context) -> bool:
    """True when ``ctx`` is ``root`` or derived from it."""
    while ctx is not None:
        if ctx is root:
            return True
        ctx = parent_of(ctx)
    return False


def _bound_context(task: trio.lowlevel.Task) -> Context | None:
    """``tc.current()`` as ``task`` sees it. None for a task whose contextvars context is
    entered right now: the running task, and pytest-trio's fixture tasks, which share the
    test task's context object."""
    try:
        return task.context.run(current)
    except RuntimeError:
        return None


def _descendants(root: Context) -> list[Context]:
    out: list[Context] = []
    todo = [root]
    while todo:
        node = todo.pop()
        out.append(node)
        todo.extend(node.children())
    return out


def all_tasks(
    skip: Callable[[trio.Nursery], bool] | None = None,
) -> Iterator[trio.lowlevel.Task]:
    """Every task of the running trio run, from the root task down; the tasks of a nursery
    for which ``skip(nursery)`` is true are left out, with everything under them."""
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task is None:
            continue
        yield task
        for nursery in task.child_nurseries:
            if skip is None or not skip(nursery):
                todo.extend(nursery.child_tasks)


# -- the watch ----------------------------------------------------------------------------


class _SpawnRecorder(trio.abc.Instrument):
    """Keeps the spawn stack of tasks started under the watched context."""

    def __init__(self, root: Context) -> None:
        self.root = root
        self.stacks: weakref.WeakKeyDictionary[trio.lowlevel.Task, traceback.StackSummary] = (
            weakref.WeakKeyDictionary()
        )

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        # Runs in the spawning task, so current() is the spawner's context.
        if under(current(), self.root):
            self.stacks[task] = capture(sys._getframe(1))


class LeakWatch:
    """Watch one test for leaks: open it when the test body starts (in its trio task),
    ``await check()`` when the body ends, and ``close()`` in a ``finally``.

    ``kinds`` is a subset of ``{"tasks", "scopes", "threads", "processes"}``.
    """

    def __init__(self, root: Context, kinds: Iterable[str], *, settle: float = 0.5) -> None:
        self.root = root
        self.kinds = frozenset(kinds)
        unknown = self.kinds - LEAK_KINDS
        if unknown:
            raise ValueError(f"unknown leak kinds {sorted(unknown)}; use {sorted(LEAK_KINDS)}")
        self.settle = settle
        self._restore: list[Callable[[], None]] = []
        self._recorder: _SpawnRecorder | None = None
        self._thread_stacks: weakref.WeakKeyDictionary[threading.Thread, traceback.StackSummary] = (
            weakref.WeakKeyDictionary()
        )
        self._threads_before: set[threading.Thread] = set()
        self._busy_before: set[threading.Thread] = set()
        self._procs: ProcessWatch | None = None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- setup ---------------------------------------------------------------------------

    def _open(self) -> None:
        if "tasks" in self.kinds:
            recorder = _SpawnRecorder(self.root)
            trio.lowlevel.add_instrument(recorder)
            self._recorder = recorder
            self._restore.append(lambda: trio.lowlevel.remove_instrument(recorder))
        if "threads" in self.kinds:
            self._threads_before = set(threading.enumerate())
            self._busy_before = {t for t in self._threads_before if trio_worker_busy(t)}
            self._patch(threading.Thread, "start", self._wrap_thread_start)
        if "processes" in self.kinds and procfs():
            self._procs = procs = ProcessWatch()
            self._restore.append(procs.close)
            self._patch(subprocess.Popen, "__init__", procs.wrap_popen_init)

    def _patch(self, owner: type, name: str, wrap: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name]
        setattr(owner, name, wrap(original))
        self._restore.append(lambda: setattr(owner, name, original))

    def _wrap_thread_start(self, original: Callable[[threading.Thread], None]) -> Any:
        stacks = self._thread_stacks

        def start(thread: threading.Thread) -> None:
            stacks[thread] = capture(sys._getframe(1))
            original(thread)

        return start

    def close(self) -> None:
        """Undo the instrument and the wrappers. Idempotent."""
        while self._restore:
            self._restore.pop()()

    # -- the check -----------------------------------------------------------------------

    async def check(
        self,
        cancel: Callable[[], None],
        *,
        cancelled_at_teardown: Callable[[trio.Nursery], bool] | None = None,
    ) -> list[Leak]:
        """Call ``cancel()`` (which cancels the test's context), give what it started a
        moment to stop, and return what is still there. Must run in the trio thread, outside
        the test's bound scope. Waits up to ``settle`` seconds of real time, only when
        something is still running.

        ``cancelled_at_teardown(nursery)`` names the nurseries the test's teardown cancels
        anyway (pytest-trio's ``nursery`` fixture): tasks in them are not leaks. A scope bound
        to the test's context and still open in such a task still is: the task ignored that
        cancellation, and will ignore the teardown's too."""
        contexts = _descendants(self.root) if "scopes" in self.kinds else []
        cancel()
        end = -math.inf
        rounds = 0
        leaks: list[Leak] = []
        with trio.CancelScope(shield=True):
            if not _anything_under(self.root, contexts):
                return []  # most tests: nothing to wait for
            # Let tasks that were just started or just cancelled run first.
            for _ in range(_FIRST_ROUNDS):
                await trio.lowlevel.checkpoint()
            while True:
                leaks = self._leaks(contexts, cancelled_at_teardown)
                if not leaks:
                    break
                if rounds == 0:
                    end = time.monotonic() + self.settle
                elif time.monotonic() >= end:
                    break
                rounds += 1
                await trio.lowlevel.checkpoint()
                if rounds > 20:
                    # Threads and processes need real time; tasks only need checkpoints.
                    # A blocking sleep, not trio.sleep(): under a MockClock that would move
                    # virtual time (and fire deadlines) instead of letting threads run.
                    time.sleep(0.002)  # noqa: ASYNC251
        return leaks

    def check_blocking(self) -> list[Leak]:
        """The thread and process part of :meth:`check`, for a sync test: what is still
        there after waiting up to ``settle`` seconds (only while something is)."""
        end = time.monotonic() + self.settle
        while True:
            leaks = self._leaks([])
            if not leaks or time.monotonic() >= end:
                return leaks
            time.sleep(0.002)

    def _leaks(
        self,
        contexts: list[Context],
        skip: Callable[[trio.Nursery], bool] | None = None,
    ) -> list[Leak]:
        leaks: list[Leak] = []
        if "tasks" in self.kinds or "scopes" in self.kinds:
            tasks = list(all_tasks())
            if "tasks" in self.kinds:
                leaks += self._task_leaks(list(all_tasks(skip)) if skip is not None else tasks)
            if "scopes" in self.kinds:
                leaks += _scope_leaks(contexts, tasks)
        if "threads" in self.kinds:
            leaks += self._thread_leaks()
        if self._procs is not None:
            leaks += self._procs.leaks()
        return leaks

    def _task_leaks(self, tasks: list[trio.lowlevel.Task]) -> list[Leak]:
        stacks = self._recorder.stacks if self._recorder is not None else None
        return _task_leaks(self.root, tasks, stacks)

    def _thread_leaks(self) -> list[Leak]:
        out: list[Leak] = []
        for thread in threading.enumerate():
            if is_trio_worker(thread):
                if thread in self._busy_before or not trio_worker_busy(thread):
                    continue
                what = f"trio worker thread {thread.name!r} is still running its job"
            elif thread in self._threads_before:
                continue
            else:
                what = f"thread {thread.name!r} is still alive"
            out.append(Leak("threads", what, self._thread_stacks.get(thread), thread_stack(thread)))
        return out


def _task_leaks(
    root: Context,
    tasks: Iterable[trio.lowlevel.Task],
    spawned: Mapping[trio.lowlevel.Task, traceback.StackSummary] | None,
) -> list[Leak]:
    out: list[Leak] = []
    for task in tasks:
        bound = _bound_context(task)
        if bound is not None and under(bound, root):
            out.append(
                Leak(
                    "tasks",
                    f"task {task.name!r} is still running (its context: {bound._label()})",
                    spawned.get(task) if spawned is not None else None,
                    task_stack(task),
                )
            )
    return out


def _anything_under(root: Context, contexts: list[Context]) -> bool:
    """Whether any task (other than the running one) runs under ``root``, or a scope bound to
    one of ``contexts`` is open: the check's fast path, whatever kinds it checks."""
    for task in all_tasks():
        bound = _bound_context(task)
        if bound is not None and under(bound, root):
            return True
    return any(
        bound_scopes(c)
        for c in {id(c): c for c in map(canceller_of, contexts) if c is not None}.values()
    )


def tasks_under(root: Context) -> list[Leak]:
    """The trio tasks (other than the running one) whose ``tc.current()`` is ``root`` or
    derived from it, as :class:`Leak` reports. Must run in the trio thread."""
    return _task_leaks(root, all_tasks(), None)


def _scope_leaks(contexts: list[Context], tasks: list[trio.lowlevel.Task]) -> list[Leak]:
    out: list[Leak] = []
    owners: dict[int, trio.lowlevel.Task] | None = None
    seen: set[int] = set()
    for ctx in contexts:
        canceller = canceller_of(ctx)
        if canceller is None or id(canceller) in seen:
            continue
        seen.add(id(canceller))
        scopes = bound_scopes(canceller)
        if not scopes:
            continue
        if owners is None:
            owners = scope_owners(tasks)
        for cs in scopes:
            task = owners.get(id(cs))
            holder = f"in task {task.name!r}" if task is not None else "outside any live task"
            out.append(
                Leak(
                    "scopes",
                    f"a scope bound to {label_of(canceller)} is still open {holder}",
                    None,
                    task_stack(task) if task is not None else None,
                )
            )
    return out
