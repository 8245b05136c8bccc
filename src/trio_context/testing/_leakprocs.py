"""The process part of the leak check: processes a test started and left running (Linux only).

Part of the pytest plugin's leak check (``testing/_leakcheck.py``). While a
:class:`ProcessWatch` is open, ``subprocess.Popen.__init__`` is wrapped (by the watch's owner,
with :meth:`ProcessWatch.wrap_popen_init`) to record the pid, command line and creation stack of
every process started through it (trio's and trio_context's ``run_process`` use it).
:meth:`ProcessWatch.leaks` reports those still alive, live members of the process groups they led
(an orphaned grandchild of a ``sh -c``) and, where the kernel has
``/proc/<pid>/task/<tid>/children``, any other new direct child. While the watch is open the
test process is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so a descendant that escaped
its group and session (``setsid``, a double fork) and lost its parent is re-parented to it and
reported as such a child; those that already exited are reaped (only pids no ``Popen`` of the
test started). Everything is read from ``/proc``; :func:`procfs` says whether it is there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, cast

from .._process._procfs import Stat
from .._process._procfs import stat as read_stat
from .._process._subreaper import set_subreaper
from ._leakreport import Leak, capture

__all__ = ["ProcessWatch", "procfs"]


def procfs() -> bool:
    """Whether this system has the ``/proc`` the process check reads (Linux)."""
    return sys.platform == "linux" and os.path.isdir("/proc/self")


def _proc_stat(pid: int) -> Stat | None:
    """The status of a live process, None if it is gone or a zombie."""
    found = read_stat(pid)
    return None if found is None or found.zombie else found


def _proc_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            parts = f.read().split(b"\0")
    except OSError:
        return "?"
    return " ".join(p.decode(errors="replace") for p in parts if p)


def _direct_children() -> set[int] | None:
    """Pids of this process's children from ``/proc/self/task/*/children`` (cheap), or None
    when the kernel does not provide that file."""
    out: set[int] = set()
    try:
        tids = os.listdir("/proc/self/task")
        for tid in tids:
            with open(f"/proc/self/task/{tid}/children") as f:
                out.update(int(p) for p in f.read().split())
    except OSError:
        return None
    return out


def _all_pids() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


class _Spawned:
    __slots__ = ("args", "leader", "pid", "stack")

    def __init__(self, pid: int, args: object, leader: bool, stack: traceback.StackSummary):
        self.pid = pid
        self.args = args
        self.leader = leader
        self.stack = stack


class ProcessWatch:
    """The processes started since it was made (through the wrapped ``Popen``), and the direct
    children that existed then. Meant for one test at a time."""

    def __init__(self) -> None:
        self._spawned: list[_Spawned] = []
        self._previous = set_subreaper(1)  # escaped descendants come back here
        self._children_before = _direct_children()
        self._no_new_child = False  # the last leaks() saw no new child: nothing to reap

    def close(self) -> None:
        """Reap the escaped descendants that exited; restore the subreaper flag. Idempotent."""
        if not self._no_new_child:
            self._reap_orphans()
        if self._previous is not None:
            set_subreaper(self._previous)
            self._previous = None

    def _reap_orphans(self, now: set[int] | None = None) -> None:
        """Reap zombie children that no recorded ``Popen`` started (re-parented orphans);
        ``now``: the direct children, if just read."""
        if self._children_before is None:
            return
        mine = {sp.pid for sp in self._spawned}
        if now is None:
            now = _direct_children() or set()
        for pid in now - self._children_before - mine:
            if _proc_stat(pid) is None:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def wrap_popen_init(self, original: Callable[..., None]) -> Any:
        """A ``Popen.__init__`` that calls ``original`` and records the process it started."""
        spawned = self._spawned

        def __init__(popen: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
            stack = capture(sys._getframe(1))
            original(popen, *args, **kwargs)
            leader = bool(kwargs.get("start_new_session")) or kwargs.get("process_group") == 0
            spawned.append(_Spawned(popen.pid, popen.args, leader, stack))

        return __init__

    def leaks(self) -> list[Leak]:
        """The recorded processes still alive, the live members of the groups they led, and
        any other new direct child still alive."""
        out: list[Leak] = []
        seen: set[int] = set()
        me = os.getpid()
        groups: dict[int, _Spawned] = {}
        for sp in self._spawned:
            if sp.leader:
                groups[sp.pid] = sp
            stat = _proc_stat(sp.pid)
            if stat is not None and stat.ppid == me:
                seen.add(sp.pid)
                out.append(
                    Leak(
                        "processes",
                        f"process {sp.pid} is still alive: {_proc_cmdline(sp.pid)}",
                        sp.stack,
                    )
                )
        if groups:
            for pid in _all_pids():
                if pid in seen:
                    continue
                stat = _proc_stat(pid)
                if stat is not None and stat.pgid in groups:
                    seen.add(pid)
                    leader = groups[stat.pgid]
                    out.append(
                        Leak(
                            "processes",
                            f"process {pid} of the process group of {leader.pid} "
                            f"({_args_text(leader.args)}) is still alive: {_proc_cmdline(pid)}",
                            leader.stack,
                        )
                    )
        if self._children_before is not None:
            now = _direct_children() or set()
            self._no_new_child = not (now - self._children_before)
            self._reap_orphans(now)
            mine = {sp.pid for sp in self._spawned}
            for pid in sorted(now - self._children_before - seen):
                if _proc_stat(pid) is not None:
                    what = (
                        "child process"
                        if pid in mine
                        else "process (escaped its parent, re-parented to the test process)"
                    )
                    out.append(
                        Leak("processes", f"{what} {pid} is still alive: {_proc_cmdline(pid)}")
                    )
        return out


def _args_text(args: object) -> str:
    if isinstance(args, str | bytes | os.PathLike):
        return os.fsdecode(cast("str | bytes | os.PathLike[str]", args))
    if isinstance(args, list | tuple):
        items = cast("list[object] | tuple[object, ...]", args)
        return " ".join(_args_text(a) for a in items)
    return repr(args)
