"""``open_subreaper``: orphaned descendants of ``run_process`` calls come back to this process.

Rules for callers:

- A program that owns its process (a CI runner, a job server) opens it once, near the top::

      async with tc.open_subreaper():
          async with tc.open_signal_context(tc.background()) as ctx:
              await main(ctx)

- Inside it (Linux, ``PR_SET_CHILD_SUBREAPER``), a descendant of a ``run_process`` call whose
  parent exits is re-parented to this process instead of init, so the call still finds it, even
  after it left the process group or the session (``setsid``, a double fork), stops it with
  the group and reaps it. Only pids attributed to a call are ever waited for: trio's own waits
  for the processes it started are left alone.
- Attribution, cheapest first: a pid seen below the call's leader; the call's process group or
  session (or that of a pid seen below it); the environment entry ``TRIO_CONTEXT_PROCESS_TREE``
  that every process of the call inherits. An orphan that matches none (it cleared its
  environment and left the session before it was ever seen) is left alone, and one that exits
  before it was attributed stays a zombie until the program exits.
- Elsewhere (not Linux, or ``prctl`` refused) it does nothing and yields False; results then
  say ``contained=False``.
- Nestable; the previous subreaper setting is restored when the outermost block exits. The
  setting is process-wide: orphans of processes started some other way (``subprocess``,
  ``trio.run_process``) come to this process too, and are neither stopped nor reaped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import itertools
import math
import os
import secrets
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Final, Protocol

from ._procfs import HAVE_PROCFS, Stat, environ_entry, own_children, stat

__all__ = ["MARK_VAR", "Owner", "Reaper", "active", "open_subreaper", "set_subreaper"]

MARK_VAR: Final = "TRIO_CONTEXT_PROCESS_TREE"
_MARK_PREFIX: Final = f"{MARK_VAR}=".encode()
_PR_SET_CHILD_SUBREAPER: Final = 36
_PR_GET_CHILD_SUBREAPER: Final = 37
_CLAIM_EVERY: Final = 0.002  # seconds: stopping many calls at once claims once, not per call


class Owner(Protocol):
    """What the reaper needs of a call's process tree (``_descendants.Tree``)."""

    def adopt(self, pid: int, st: Stat) -> None: ...


class Reaper:
    """The process-wide subreaper state while :func:`open_subreaper` is open. Trio thread only."""

    def __init__(self, previous: int) -> None:
        self.previous = previous
        self.depth = 0
        self.closed = False
        self.pid = os.getpid()
        self.token = secrets.token_hex(6)
        self.counter = itertools.count(1)
        self.leaders: set[int] = set()  # trio's own children: never claimed, never waited for
        self.by_id: dict[int, Owner] = {}  # pid, pgid or sid -> the call it belongs to
        self.by_mark: dict[bytes, Owner] = {}
        self.owned: dict[int, Owner] = {}
        self.rejected: set[int] = set()  # children attributed to no call
        self.claimed_at = -math.inf

    def new_mark(self) -> bytes:
        """A fresh ``NAME=value`` environment entry for one call."""
        return f"{MARK_VAR}={self.token}.{next(self.counter)}".encode()

    def register(self, owner: Owner, leader: int, mark: bytes) -> None:
        self.leaders.add(leader)
        self.by_id[leader] = owner
        self.by_mark[mark] = owner

    def unregister(self, owner: Owner, leader: int, mark: bytes, ids: set[int]) -> None:
        self.leaders.discard(leader)
        self.by_mark.pop(mark, None)
        for i in (leader, *ids):
            if self.by_id.get(i) is owner:
                del self.by_id[i]
            if self.owned.get(i) is owner:
                del self.owned[i]

    def index(self, owner: Owner, pid: int) -> None:
        """``pid`` belongs to ``owner``: so do orphans in its group or session."""
        self.by_id.setdefault(pid, owner)
        self.owned.setdefault(pid, owner)

    def claim(self, *, fresh: bool = False) -> None:
        """Hand every new child of this process that a call owns over to that call. Reads
        this process's children list, and one ``stat`` (maybe ``environ``) per new child.
        Skipped when the last claim is less than ``_CLAIM_EVERY`` s old, unless ``fresh``."""
        now = time.perf_counter()
        if not fresh and now - self.claimed_at < _CLAIM_EVERY:
            return
        self.claimed_at = now
        # The kernel re-parents orphans to the first live thread, the main one: read its list.
        kids = own_children(self.pid)
        self.rejected.intersection_update(kids)
        for pid in kids:
            if pid in self.leaders or pid in self.rejected or pid in self.owned:
                continue
            st = stat(pid)
            if st is None:
                continue
            owner = self.by_id.get(st.pgid) or self.by_id.get(st.sid)
            if owner is None and not st.zombie and self.by_mark:
                entry = environ_entry(pid, _MARK_PREFIX)
                owner = None if entry is None else self.by_mark.get(entry)
            if owner is None:
                self.rejected.add(pid)
            else:
                owner.adopt(pid, st)


_active: Reaper | None = None


def active() -> Reaper | None:
    """The open subreaper, or None."""
    return _active


@functools.cache  # find_library runs `ldconfig -p` in a subprocess: once per process is enough
def _prctl() -> ctypes.CDLL | None:
    if not HAVE_PROCFS:
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to load
        return None


def _get(libc: ctypes.CDLL) -> int | None:
    value = ctypes.c_int(0)
    if libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) != 0:
        return None
    return value.value


def set_subreaper(value: int) -> int | None:
    """Set this process's subreaper flag; return the previous value, or None (nothing done)
    where there is no such flag. For the leak check, which has no trio loop to use
    :func:`open_subreaper` with."""
    libc = _prctl()
    previous = None if libc is None else _get(libc)
    if libc is None or previous is None:
        return None
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, value, 0, 0, 0) != 0:
        return None
    return previous


@asynccontextmanager
async def open_subreaper() -> AsyncGenerator[bool]:
    """Make this process the subreaper of its descendants while the block runs (Linux).

    Yields True when descendants of ``run_process`` calls are now contained (see the module
    rules), False where the OS offers no subreaper (then it does nothing). Nestable; on exit of
    the outermost block the previous setting is restored. Call it in trio, before the
    ``run_process`` calls it should cover; a call that outlives the block reports
    ``contained=False``::

        async with tc.open_subreaper():
            result = await tc.run_process(ctx, ["sh", "-c", "setsid daemon &"])
            assert result.contained

    Raises nothing: a refused ``prctl`` counts as "no subreaper".
    """
    global _active
    if _active is not None and not _active.closed:
        _active.depth += 1
        try:
            yield True
        finally:
            _active.depth -= 1
        return
    libc = _prctl()
    previous = None if libc is None else _get(libc)
    if libc is None or previous is None or libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        yield False
        return
    reaper = _active = Reaper(previous)
    reaper.depth = 1
    try:
        yield True
    finally:
        reaper.closed = True
        _active = None
        libc.prctl(_PR_SET_CHILD_SUBREAPER, previous, 0, 0, 0)
