"""Supervision of one process started by :func:`~trio_context.run_process`.

Nothing here is public. A :class:`Supervisor` runs shielded in the trio thread: it drains both
pipes, watches the contexts (the soft one sends the term signal, the hard one SIGKILL), samples
the tree's memory when there is a limit, keeps the drain guard after the leader exits, and
reaps everything before it reports. Only ``ctx``, the limit contexts (idle, memory), ``hard``,
the kill timer and :meth:`Supervisor.abort` end it early. Every signal goes to the whole
:class:`~._descendants.Tree` (the group and the descendants that left it).
"""

from __future__ import annotations

import math
import signal
from collections.abc import Awaitable, Callable, Sequence
from signal import Signals
from typing import Final, Literal, NoReturn

import trio

from .._core import CancelContext, Context, DeadlineExceeded, after_func, hard_context
from ..propagation import CancelChannel, RemoteCause
from ._descendants import Tree
from ._memory import MemoryExceeded
from ._pace import turn
from ._pgroup import Tail

__all__ = ["Limits", "Outcome", "Supervisor", "raise_single", "signal_of"]

Outcome = Literal["exited", "cancelled", "timed_out", "idle", "memory"]
"""Why a process ended (see :class:`~trio_context.ProcessResult`)."""

_CHUNK: Final = 1 << 16
_POLL_FIRST: Final = 0.005  # seconds between checks for live processes of the tree, doubling...
_POLL_MAX: Final = 0.1  # ...up to this


class Limits:
    """The limits of one call that are not the caller's contexts: no output for ``idle`` s,
    more than ``max_rss`` bytes resident. ``soft`` is the innermost context (a child of the
    caller's ``ctx``): it ends when ``ctx`` does or when a limit passes (then ``cause`` is the
    limit's own cause object)."""

    def __init__(
        self,
        soft: Context,
        *,
        idle_cause: BaseException | None = None,
        touch: Callable[[], None] | None = None,
        memory: CancelContext | None = None,
        max_rss: int | None = None,
        interval: float = 0.5,
        owned: Sequence[CancelContext] = (),
    ) -> None:
        self.soft = soft
        self.owned = owned
        self.idle_cause = idle_cause
        self.touch = touch
        self.memory = memory
        self.max_rss = max_rss
        self.interval = interval
        self.memory_cause: BaseException | None = None

    def close(self) -> None:
        """Release the limit contexts (the idle timer, the memory context). Idempotent."""
        for owned in self.owned:
            owned.cancel()

    def own(self, cause: BaseException | None) -> bool:
        return cause is not None and (cause is self.idle_cause or cause is self.memory_cause)


class Supervisor:
    """The supervision of one started process. Runs shielded, in the trio thread: only ``ctx``,
    the limits, ``hard``, the kill timer and :meth:`abort` end it early.

    When ``limits.soft`` ends by a limit of its own (idle, memory) before the leader exits, the
    tree is stopped as by :meth:`abort`: the term signal, then SIGKILL after ``grace`` at the
    latest, whatever ``hard`` is.

    ``hard=None`` means what ``with_grace(ctx, grace)`` would do, without making that context:
    once ``ctx`` is done the kill timer gets a deadline ``grace`` seconds later (capped by what
    the hard context recorded above ``ctx`` has left), and that hard context ending kills at
    once. A context per call (and its links) costs more than the rest of the bookkeeping, and
    made at the stop it would lengthen the run loop's batch when hundreds stop at once.
    """

    def __init__(
        self,
        proc: trio.Process,
        tree: Tree,
        ctx: Context,
        hard: Context | None,
        term_signal: int,
        grace: float,
        drain_timeout: float,
        limits: Limits,
        channel: CancelChannel | None = None,
    ) -> None:
        self.proc = proc
        self.channel = channel  # tells a listening child why it must stop, before any signal
        self.tree = tree
        self.pgid = proc.pid  # start_new_session: the leader's pid is the group's id
        self.ctx = ctx
        self.hard = hard
        self.twin = hard_context(ctx) if hard is None else None  # ends the default grace
        self.limits = limits
        self.limit_cause: BaseException | None = None  # a limit stopped it before the leader exited
        self.term_signal = term_signal
        self.grace = grace
        self.drain_timeout = drain_timeout
        self.open_pipes = 0
        self.pipes_closed = trio.Event()
        self.leader_done = False
        self.reaped = False  # from then on the group id may be reused: send nothing
        self.term_wanted = trio.Event()
        self.term_sent = False
        self.kill_sent = False
        self.stopping = False  # asked to stop before the leader exited
        self.forced = False  # SIGKILL was needed to end it
        self.stragglers = False
        self.stop_at: float | None = None
        self.error: BaseException | None = None  # from on_line
        self.kill_timer = trio.CancelScope()  # its deadline is the grace period after abort()
        self.grace_scope: trio.CancelScope | None = None
        # The stop tasks (send_term, watch_hard) start only when a stop is wanted: most calls
        # never stop anything, and two tasks per call are a good part of its fixed cost.
        self.nursery: trio.Nursery | None = None  # supervise's, while it takes new tasks
        self.hard_wanted = False  # hard is done, or the kill timer has a deadline
        self.started: set[Callable[[], Awaitable[None]]] = set()

    async def supervise(
        self, tails: Sequence[tuple[trio.abc.ReceiveStream | None, Tail]], finished: trio.Event
    ) -> None:
        watches: list[Callable[[], bool]] = []
        with trio.CancelScope(shield=True):
            try:
                async with trio.open_nursery() as nursery:
                    self.nursery = nursery
                    for stream, tail in tails:
                        if stream is not None:
                            self.open_pipes += 1
                            nursery.start_soon(self.drain, stream, tail)
                    if self.open_pipes == 0:
                        self.pipes_closed.set()
                    # Callbacks, not tasks waiting on ``done``: stopping hundreds of calls at
                    # once then wakes no task per call in the batch that cancels them.
                    watches.append(after_func(self.limits.soft, self.on_soft_done))
                    if self.hard is not None:
                        watches.append(after_func(self.hard, self.on_hard_done))
                    else:
                        watches.append(after_func(self.ctx, self.start_grace))
                        if self.twin is not None:  # a forced stop ends the grace at once
                            watches.append(after_func(self.twin, self.on_hard_done))
                    self.start_stop_tasks()  # the calling task may have aborted already
                    if self.limits.max_rss is not None:
                        nursery.start_soon(self.watch_memory, self.limits.max_rss)
                    await self.proc.wait()
                    self.leader_done = True
                    await self.after_leader()
                    nursery.cancel_scope.cancel()
            finally:
                self.nursery = None
                for unwatch in watches:
                    unwatch()
                await self.reap()
                finished.set()

    async def drain(self, stream: trio.abc.ReceiveStream, tail: Tail) -> None:
        touch = self.limits.touch
        try:
            while chunk := await stream.receive_some(_CHUNK):
                if touch is not None:
                    touch()
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

    def start_stop_tasks(self) -> None:
        """Start :meth:`send_term` once a stop is wanted and :meth:`watch_hard` once ``hard``
        is done or the kill timer has a deadline, each at most once, while the supervision's
        nursery takes tasks (it starts them itself if asked before it runs). Idempotent."""
        nursery = self.nursery
        if nursery is None:
            return
        for wanted, task in (
            (self.term_wanted.is_set(), self.send_term),
            (self.hard_wanted, self.watch_hard),
        ):
            if wanted and task not in self.started:
                self.started.add(task)
                nursery.start_soon(task)

    def stop(self) -> None:
        """Ask for the term signal (sent once, by :meth:`send_term`); count it as a stop if
        the leader still runs."""
        if not self.leader_done and not self.stopping:
            self.stopping = True
            self.stop_at = trio.current_time()
        self.term_wanted.set()
        self.start_stop_tasks()

    def start_grace(self) -> None:
        """``ctx`` is done (no ``hard`` given): SIGKILL ``grace`` seconds from now, or when
        the hard context recorded above ``ctx`` has no more time left, if that is sooner."""
        left = self.grace if self.twin is None else min(self.grace, self.twin.remaining())
        self.kill_timer.deadline = min(self.kill_timer.deadline, trio.current_time() + left)
        self.hard_wanted = True
        self.start_stop_tasks()

    def on_hard_done(self) -> None:
        self.hard_wanted = True
        self.kill_timer.cancel()
        self.start_stop_tasks()

    async def send_term(self) -> None:
        await self.term_wanted.wait()
        await turn()  # many stops at once: spread over batches of trio's run loop
        if await self.notify(graceful=True):
            return  # the child took the stop itself: no term signal; SIGKILL ends its grace
        if not self.term_sent and not self.kill_sent and not self.reaped:
            self.term_sent = True
            self.tree.signal(self.term_signal)

    async def notify(self, *, graceful: bool) -> bool:
        """Tell the child on its cancel channel why it must stop and the grace it has left;
        True when it acknowledged a graceful stop (wait: at most a second of its grace)."""
        if self.channel is None or self.leader_done or self.reaped:
            return False
        hard_left = math.inf if self.hard is None else self.hard.remaining()
        grace = min(self.grace, hard_left, self.kill_timer.deadline - trio.current_time())
        grace = max(0.0, grace) if graceful else 0.0
        hard = self.hard if self.hard is not None else self.twin
        ended = next(
            (c for c in (self.limits.soft, hard) if c is not None and c.err is not None), None
        )
        if ended is not None:
            cause = RemoteCause.of(ended.err, ended.cause, graceful=graceful, grace=grace)
        else:  # the calling task was cancelled: no context of ours says why
            cause = RemoteCause(
                "Cancelled", "the caller stopped waiting", graceful=graceful, grace=grace
            )
        return await self.channel.notify(cause, wait=min(1.0, grace) if graceful else 0)

    def abort(self) -> None:
        """The calling task was cancelled, or a limit passed: stop, and SIGKILL after
        ``grace`` at the latest."""
        self.kill_timer.deadline = min(self.kill_timer.deadline, trio.current_time() + self.grace)
        self.hard_wanted = True
        self.stop()

    def on_soft_done(self) -> None:
        soft = self.limits.soft
        if not self.limits.own(soft.cause):
            self.stop()
        elif not self.leader_done:  # afterwards the drain guard owns what is left of the tree
            self.limit_cause = soft.cause
            self.abort()  # no context of the caller's ends: the kill timer enforces the grace

    async def watch_memory(self, limit: int) -> None:
        """Sample the tree's resident memory every ``limits.interval`` s while the leader runs;
        past ``limit``, end the memory context with a :class:`MemoryExceeded` cause."""
        memory = self.limits.memory
        assert memory is not None
        while not self.leader_done and not memory.done.is_set():
            rss = self.tree.refresh()
            if rss > limit:
                self.limits.memory_cause = cause = MemoryExceeded(rss, limit)
                memory.cancel(cause)
                return
            await trio.sleep(self.limits.interval)

    async def watch_hard(self) -> None:
        with self.kill_timer:  # cancelled when ``hard`` ends, or by its deadline
            await trio.sleep_forever()
        await turn()
        if not self.leader_done:
            await self.notify(graceful=False)
        if not self.leader_done or self.stopping:
            # SIGKILL is needed if the leader runs, or a stopped tree still has a live process
            if not self.leader_done or self.tree.alive_now():
                self.forced = True
            if self.stop_at is None:
                self.stop_at = trio.current_time()
        self.kill()
        if self.grace_scope is not None:
            self.grace_scope.cancel()

    def kill(self) -> None:
        self.kill_sent = True
        if not self.reaped:
            self.tree.signal(signal.SIGKILL)

    async def tree_gone(self) -> None:
        # Polling: no kernel event tells a parent that its grandchildren are gone.
        pause = _POLL_FIRST
        while await self.tree.alive():
            await trio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX)

    async def settled(self) -> None:
        """Wait until the pipes are closed and no live process of the tree is left."""
        if not self.pipes_closed.is_set():  # mostly they are: spare the checkpoint
            await self.pipes_closed.wait()
        await self.tree_gone()

    async def after_leader(self) -> None:
        """The drain guard: let the rest of the tree finish, within bounds, then kill it."""
        if self.stopping:  # the tree keeps its grace period: until watch_hard kills
            with trio.CancelScope() as self.grace_scope:
                if self.kill_sent:
                    self.grace_scope.cancel()
                await self.settled()
                return
        else:
            if self.pipes_closed.is_set() and not await self.tree.alive():
                return  # the usual end: nothing to wait for, no timer to set
            with trio.move_on_after(self.drain_timeout):
                await self.settled()
                return
            # Only what is found is killed: a pipe held by a process that escaped unseen is
            # no straggler killed (without the subreaper it survives, and the result says so).
            self.stragglers = await self.tree.alive()
        self.kill()
        # After SIGKILL the pipes close, unless a process outside the tree holds them.
        with trio.move_on_after(self.drain_timeout):
            await self.pipes_closed.wait()

    async def reap(self) -> None:
        """Leave nothing behind: leader reaped, no live process of the tree, pipes closed."""
        if self.proc.returncode is None:
            self.kill()
            await self.proc.wait()
        # Look again even if the tree looked gone: a descendant that left the session may only
        # now have come back to the subreaper as an orphan.
        if await self.tree.alive():
            self.stragglers = self.stragglers or not self.stopping
            self.kill()
            with trio.move_on_after(max(self.drain_timeout, 1.0)):
                await self.tree_gone()
        self.reaped = True
        for stream in (self.proc.stdout, self.proc.stderr):
            if isinstance(stream, trio.lowlevel.FdStream):
                stream.close()  # what aclose() does, without its checkpoint
            elif stream is not None:
                await stream.aclose()

    def outcome(self) -> Outcome:
        if self.limit_cause is not None:
            return "idle" if self.limit_cause is self.limits.idle_cause else "memory"
        if self.stopping or self.forced:
            # Without ``hard``, a stop with ``ctx`` not done was forced: "cancelled".
            err = self.ctx.err if self.ctx.err is not None or self.hard is None else self.hard.err
            return "timed_out" if isinstance(err, DeadlineExceeded) else "cancelled"
        return "exited"

    def cause(self, outcome: Outcome) -> BaseException | None:
        """The cause of whatever stopped the process (None when it exited by itself)."""
        if outcome == "exited":
            return None
        if self.limit_cause is not None:
            return self.limit_cause
        hard = self.hard if self.hard is not None else self.twin
        if self.ctx.err is not None or hard is None:
            return self.ctx.cause
        return hard.cause


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
