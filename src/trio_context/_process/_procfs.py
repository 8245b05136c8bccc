"""Reading ``/proc`` for :mod:`._process`: one process's status, its children, a group scan.

Nothing here is public. Every read is about one known pid (``/proc/<pid>/stat``,
``/proc/<pid>/task/*/children``, ``/proc/<pid>/environ``), so its cost grows with the processes
asked about, never with the processes on the host; the one host-wide scan, :func:`scan_group`,
is only ever run in a worker thread. Without ``/proc`` (not Linux) the reads return None or
empty results and callers fall back to process-group signals.
"""

from __future__ import annotations

import os
import sys
from typing import Final, NamedTuple

__all__ = [
    "HAVE_PROCFS",
    "PAGE_SIZE",
    "Stat",
    "children",
    "environ_entry",
    "own_children",
    "scan_group",
    "stat",
]

HAVE_PROCFS: Final = sys.platform == "linux" and os.path.isdir("/proc/self/task")
PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Stat(NamedTuple):
    """The fields of ``/proc/<pid>/stat`` that the process code uses."""

    state: str  # "Z" for a zombie, "X" for a dead task
    ppid: int
    pgid: int
    sid: int
    start: int  # start time in clock ticks since boot: tells a reused pid apart
    rss: int  # resident set size in bytes

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


def stat(pid: int) -> Stat | None:
    """The status of ``pid``, None when it does not exist (or there is no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name in parentheses may contain anything: cut after the last ")".
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return Stat(
            fields[0].decode(),
            int(fields[1]),
            int(fields[2]),
            int(fields[3]),
            int(fields[19]),
            int(fields[21]) * PAGE_SIZE,
        )
    except (IndexError, ValueError):  # pragma: no cover - a kernel with another format
        return None


def children(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (empty when gone, or without the kernel's
    ``/proc/<pid>/task/<tid>/children``, which Linux has had since 3.5 with
    ``CONFIG_PROC_CHILDREN``)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return out


def own_children(pid: int) -> list[int]:
    """The children of process ``pid`` (this one) that are listed under its main thread:
    those it forked there and the orphans the kernel re-parented to it (always to the first
    live thread). Falls back to every thread when the main thread is gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return children(pid)


def environ_entry(pid: int, name: bytes) -> bytes | None:
    """The ``NAME=value`` entry of ``pid``'s initial environment for ``name`` (``b"NAME="``),
    None when it has none or it cannot be read (gone, a zombie, another user's process)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return None
    for entry in data.split(b"\0"):
        if entry.startswith(name):
            return entry
    return None


def scan_group(pgid: int) -> dict[int, Stat]:
    """Every live (not zombie) member of process group ``pgid``, by scanning all of ``/proc``.

    Costs one read per process on the host: call it in a worker thread only, as the last resort
    when a group has a member that no cheaper check found.
    """
    found: dict[int, Stat] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if name.isdigit():
            st = stat(int(name))
            if st is not None and st.pgid == pgid and not st.zombie:
                found[int(name)] = st
    return found
