"""Supervision of one process started by :func:`~trio_context.run_process`.

Nothing here is public. A :class:`Supervisor` runs shielded in the trio thread: it drains both
pipes, watches the contexts (the soft one sends the term signal, the hard one SIGKILL), keeps the
drain guard after the leader exits, and reaps everything before it reports. Only ``ctx``, the
idle context, ``hard``, the kill timer and :meth:`Supervisor.abort` end it early.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from signal import Signals
from typing import Final, Literal, NoReturn

import trio

from .._core import Context, DeadlineExceeded
from ._pgroup import Tail, group_alive, group_gone, signal_group

__all__ = ["Outcome", "Supervisor", "raise_single", "signal_of"]

Outcome = Literal["exited", "cancelled", "timed_out", "idle", "killed"]
"""How a process ended (see :class:`~trio_context.ProcessResult`)."""

_CHUNK: Final = 1 << 16


class Supervisor:
    """The supervision of one started process. Runs shielded, in the trio thread: only ``ctx``,
    ``idle``, ``hard``, the kill timer and :meth:`abort` end it early.

    ``idle`` (a child of ``ctx``, or None) is touched by every chunk of output; when it ends by
    itself (its cause is ``idle_cause``) the group is stopped as by :meth:`abort`: the term
    signal, then SIGKILL after ``grace`` at the latest, whatever ``hard`` is.
    """

    def __init__(
        self,
        proc: trio.Process,
        ctx: Context,
        hard: Context,
        term_signal: int,
        grace: float,
        drain_timeout: float,
        idle: Context | None = None,
        touch: Callable[[], None] | None = None,
        idle_cause: BaseException | None = None,
    ) -> None:
        self.proc = proc
        self.pgid = proc.pid  # start_new_session: the leader's pid is the group's id
        self.ctx = ctx
        self.hard = hard
        self.idle = idle
        self.touch = touch
        self.idle_cause = idle_cause
        self.idle_fired = False  # the idle context ended by itself before ctx did
        self.term_signal = term_signal
        self.grace = grace
        self.drain_timeout = drain_timeout
        self.open_pipes = 0
        self.pipes_closed = trio.Event()
        self.leader_done = False
        self.reaped = False  # from then on the group id may be reused: send nothing
        self.term_sent = False
        self.kill_sent = False
        self.stopping = False  # asked to stop before the leader exited
        self.forced = False  # SIGKILL was needed to end it
        self.stragglers = False
        self.stop_at: float | None = None
        self.error: BaseException | None = None  # from on_line
        self.kill_timer = trio.CancelScope()  # its deadline is the grace period after abort()
        self.grace_scope: trio.CancelScope | None = None

    async def supervise(
        self, tails: Sequence[tuple[trio.abc.ReceiveStream | None, Tail]], finished: trio.Event
    ) -> None:
        with trio.CancelScope(shield=True):
            try:
                async with trio.open_nursery() as nursery:
                    for stream, tail in tails:
                        if stream is not None:
                            self.open_pipes += 1
                            nursery.start_soon(self.drain, stream, tail)
                    if self.open_pipes == 0:
                        self.pipes_closed.set()
                    nursery.start_soon(self.watch_soft)
                    nursery.start_soon(self.watch_hard)
                    await self.proc.wait()
                    self.leader_done = True
                    await self.after_leader()
                    nursery.cancel_scope.cancel()
            finally:
                await self.reap()
                finished.set()

    async def drain(self, stream: trio.abc.ReceiveStream, tail: Tail) -> None:
        try:
            while chunk := await stream.receive_some(_CHUNK):
                if self.touch is not None:
                    self.touch()
                self.feed(tail, bytes(chunk))
            self.feed(tail, b"", flush=True)
        except trio.ClosedResourceError:
            pass
        finally:
            self.open_pipes -= 1
            if self.open_pipes == 0:
                self.pipes_closed.set()

    def feed(self, tail: Tail, chunk: bytes, *, flush: bool = False) -> None:
        try:
            tail.flush() if flush else tail.feed(chunk)
        except Exception as exc:  # from on_line: stop calling it, kill the process
            tail.on_line = None
            if self.error is None:
                self.error = exc
                self.kill()

    def stop(self) -> None:
        """Send the term signal once; count it as a stop if the leader still runs."""
        if not self.leader_done and not self.stopping:
            self.stopping = True
            self.stop_at = trio.current_time()
        if not self.term_sent and not self.reaped:
            self.term_sent = True
            signal_group(self.pgid, self.term_signal)

    def abort(self) -> None:
        """The calling task was cancelled, or the idle limit passed: stop, and SIGKILL after
        ``grace`` at the latest."""
        self.stop()
        self.kill_timer.deadline = min(self.kill_timer.deadline, trio.current_time() + self.grace)

    async def watch_soft(self) -> None:
        soft = self.ctx if self.idle is None else self.idle
        await soft.done.wait()
        if self.idle is None or self.idle.cause is not self.idle_cause:
            self.stop()
        elif not self.leader_done:  # afterwards the drain guard owns what is left of the group
            self.idle_fired = True
            self.abort()  # no context of the caller's ends: the kill timer enforces the grace

    async def watch_hard(self) -> None:
        with self.kill_timer:
            await self.hard.done.wait()
        if not self.leader_done or self.stopping:
            self.forced = True
            if self.stop_at is None:
                self.stop_at = trio.current_time()
        self.kill()
        if self.grace_scope is not None:
            self.grace_scope.cancel()

    def kill(self) -> None:
        self.kill_sent = True
        if not self.reaped:
            signal_group(self.pgid, signal.SIGKILL)

    async def settled(self) -> None:
        """Wait until the pipes are closed and no live member is left in the group."""
        await self.pipes_closed.wait()
        await group_gone(self.pgid)

    async def after_leader(self) -> None:
        """The drain guard: let the rest of the group finish, within bounds, then kill it."""
        if self.stopping:  # the group keeps its grace period: until watch_hard kills
            with trio.CancelScope() as self.grace_scope:
                if self.kill_sent:
                    self.grace_scope.cancel()
                await self.settled()
                return
        else:
            with trio.move_on_after(self.drain_timeout):
                await self.settled()
                return
            self.stragglers = True
        self.kill()
        # After SIGKILL the pipes close, unless a process outside the group holds them.
        with trio.move_on_after(self.drain_timeout):
            await self.pipes_closed.wait()

    async def reap(self) -> None:
        """Leave nothing behind: leader reaped, no live group member, pipes closed."""
        if self.proc.returncode is None:
            self.kill()
            await self.proc.wait()
        if group_alive(self.pgid):
            self.stragglers = self.stragglers or not self.stopping
            self.kill()
            with trio.move_on_after(max(self.drain_timeout, 1.0)):
                await group_gone(self.pgid)
        self.reaped = True
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                await stream.aclose()

    def outcome(self) -> Outcome:
        if self.forced:
            return "killed"
        if self.stopping:
            if self.idle_fired:
                return "idle"
            return "timed_out" if isinstance(self.ctx.err, DeadlineExceeded) else "cancelled"
        return "exited"

    def cause(self, outcome: Outcome) -> BaseException | None:
        """The cause of whatever stopped the process (None when it exited by itself)."""
        if outcome == "exited":
            return None
        if self.idle_fired:
            return self.idle_cause
        return self.ctx.cause if self.ctx.err is not None else self.hard.cause


def raise_single(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Re-raise the one exception in ``group`` (usually the caller's ``Cancelled``) alone."""
    if len(group.exceptions) != 1:
        raise group
    exc = group.exceptions[0]
    context = exc.__context__  # raising it here would replace its context with the group
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context, group


def signal_of(returncode: int) -> Signals | None:
    if returncode >= 0:
        return None
    try:
        return Signals(-returncode)
    except ValueError:
        return None
