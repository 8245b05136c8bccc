"""The process tree of one ``run_process`` call: finding, signalling, measuring and reaping it.

Nothing here is public; trio thread only. A :class:`Tree` knows the leader (whose pid is the
process group's id) and every other descendant it has seen, with its start time so that a
reused pid is never signalled. Its cost grows with the tree, never with the host:

- :meth:`Tree.refresh` walks ``/proc/<pid>/task/*/children`` from the leader (while trio has
  not reaped it) and from every known descendant, and, under :func:`open_subreaper`, claims the
  orphans re-parented to this process. Known descendants that became zombies and are children
  of this process are reaped here (``waitpid`` on that pid only, never on the leader, whose
  wait belongs to trio).
- :meth:`Tree.signal` sends to the group (``killpg``) and to each known descendant that left it.
- :meth:`Tree.alive` answers from the known pids and one ``killpg(pgid, 0)``; only when the
  group has a member nothing else found (a process re-parented to init, or a zombie) does it
  scan ``/proc``, in a worker thread.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import trio

from ._procfs import HAVE_PROCFS, Stat, children, scan_group, stat
from ._subreaper import Reaper, active

__all__ = ["Tree"]


class Tree:
    """One call's process tree. ``leader_running`` says trio has not reaped the leader yet."""

    def __init__(self, leader: int, leader_running: Callable[[], bool], mark: bytes | None) -> None:
        self.leader = self.pgid = leader
        self.leader_running = leader_running
        self.known: dict[int, Stat] = {}  # descendants other than the leader
        self.ids: set[int] = set()  # every pid ever known (their groups and sessions are ours)
        self.sent: int | None = None  # the last stop signal: sent to whatever is found later
        reaper = active()
        self.reaper: Reaper | None = reaper if mark is not None else None
        self.mark = mark or b""
        if self.reaper is not None:
            self.reaper.register(self, leader, self.mark)

    @property
    def contained(self) -> bool:
        """Whether every descendant is found: the subreaper was open all along and still is."""
        return self.reaper is not None and not self.reaper.closed

    def close(self) -> None:
        """Stop claiming orphans for this call (it has reaped everything). Idempotent."""
        if self.reaper is not None:
            self.reaper.unregister(self, self.leader, self.mark, self.ids)
            self.reaper = None

    def adopt(self, pid: int, st: Stat) -> None:
        """Record ``pid`` as a descendant (called by the walk and by the reaper's claims)."""
        if pid == self.leader or pid in self.known:
            return
        self.known[pid] = st
        self.ids.add(pid)
        if self.reaper is not None:
            self.reaper.index(self, pid)
        if self.sent is not None and not st.zombie and st.pgid != self.pgid:
            _kill(pid, self.sent)

    def _drop(self, pid: int) -> None:
        del self.known[pid]
        if self.reaper is not None and self.reaper.owned.get(pid) is self:
            del self.reaper.owned[pid]

    def refresh(self, *, fresh: bool = False) -> int:
        """Update the known descendants (reaping zombie orphans); return the resident memory
        of the live ones plus the leader, in bytes. ``fresh``: claim orphans now, even if
        another call just did."""
        if self.reaper is not None:
            self.reaper.claim(fresh=fresh)
        rss = 0
        me = os.getpid()
        todo: list[int] = list(self.known)
        if self.leader_running():
            lead = stat(self.leader)
            if lead is not None and not lead.zombie:
                rss += lead.rss
            todo.append(self.leader)
        visited: set[int] = set()
        while todo:
            pid = todo.pop()
            if pid in visited:
                continue
            visited.add(pid)
            if pid != self.leader:
                old = self.known.get(pid)
                st = stat(pid)
                if old is None:
                    if st is None:
                        continue
                    self.adopt(pid, st)
                elif st is None or st.start != old.start:
                    self._drop(pid)  # gone (and maybe its pid reused)
                    continue
                else:
                    self.known[pid] = st
                if st.zombie:
                    if st.ppid == me:
                        _reap(pid)
                    self._drop(pid)
                    continue
                rss += st.rss
            todo.extend(c for c in children(pid) if c not in visited)
        return rss

    def signal(self, sig: int) -> None:
        """Send ``sig`` once to the group and to every known descendant outside it; those
        found later get it when found (one signal each: a second SIGTERM often means "force")."""
        _killpg(self.pgid, sig)
        self.refresh()
        for pid, st in self.known.items():
            if st.pgid != self.pgid and not st.zombie:
                _kill(pid, sig)
        if self.sent != signal.SIGKILL:
            self.sent = sig

    def alive_now(self) -> bool:
        """Whether the tree may have a live process, without waiting (a zombie left in the
        group counts as live here)."""
        self.refresh()
        if self.known or self.leader_running():
            return True
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            # The deciding look: claim the orphans re-parented until now.
            self.refresh(fresh=True)
            return bool(self.known)
        except PermissionError:
            pass
        return True

    async def alive(self) -> bool:
        """Whether a live (not zombie) process of the tree is left."""
        if not self.alive_now():
            return False
        if self.known or self.leader_running() or not HAVE_PROCFS:
            return True  # kill() cannot tell a zombie from a live member
        found = await trio.to_thread.run_sync(scan_group, self.pgid)
        for pid, st in found.items():
            self.adopt(pid, st)
        if found:
            return True
        # Only zombies were left in the group (kill() counts them): the deciding look, as in
        # alive_now(), claims the orphans re-parented until now, e.g. a daemon of the tree.
        self.refresh(fresh=True)
        return bool(self.known)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
