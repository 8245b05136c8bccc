"""Subprocesses that stop with their context: the whole process tree, no pipe deadlock, no orphans.

Rules for callers:

- ``await run_process(ctx, ["make", "test"])`` returns a :class:`ProcessResult` however the
  process ended; read ``result.outcome`` (``"exited"``, ``"cancelled"``, ``"timed_out"``,
  ``"killed"``) and ``result.returncode``. It raises only for bad input, for an error from your
  ``on_line``, for ``ctx`` already being done (nothing is started), or when you ask with
  ``check=True``.
- The process runs in a new session, so it leads its own process group and has no controlling
  terminal; stdin is ``/dev/null``. Every signal goes to the *whole group*, so a shell's
  children stop with the shell.
- When ``ctx`` is done, the group gets ``term_signal`` (SIGTERM); when the *hard* context is
  done, SIGKILL. The hard context defaults to ``with_grace(ctx, grace)``, so "please stop" turns
  into "stop now" after ``grace`` seconds, and a forced stop (the second Ctrl-C under
  ``open_signal_context``) kills at once.
- Cancelling the *calling task* (a trio scope around the call, including ``with ctx.scope():``)
  stops the group the same way, term signal first and SIGKILL after ``grace`` seconds (or when
  the hard context ends), then re-raises the cancellation, so there is no result. Call
  ``run_process`` outside ``ctx.scope()``: it watches ``ctx`` itself and returns a result.
- The call owns the process group. When the leader exits on its own but something in its group
  still holds stdout/stderr open, or is still alive, it gets ``drain_timeout`` seconds and is
  then SIGKILLed (``result.stragglers_killed``), like the GitHub runner's drain guard. When the
  call returns, the leader is reaped and no live member of its group is left.
- stdout and stderr are always read concurrently, so a child writing a lot to both never
  deadlocks; only the last ``max_output`` bytes of each are kept. ``on_line(stream, line)`` is
  called in the trio thread with each line (UTF-8, errors replaced, without ``\\n``/``\\r\\n``;
  longer than 64 KiB arrives in pieces). It must be quick and must not block.
- POSIX only (process groups). Real processes and ``MockClock(autojump_threshold=0)`` do not
  mix: waiting for a child looks idle to trio, so the fake clock jumps through ``grace`` and
  ``drain_timeout`` at once.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from signal import Signals
from typing import Final, Literal, NoReturn, final

import attrs
import trio

from ._context import CancelContext, Context
from ._errors import ContextError, DeadlineExceeded
from ._pgroup import (
    Tail,
    environment,
    group_alive,
    group_gone,
    is_count,
    number,
    signal_group,
    start_error,
)
from ._stops import check_context as _check_context
from ._stops import with_grace

__all__ = ["Outcome", "ProcessFailed", "ProcessResult", "run_process"]

Outcome = Literal["exited", "cancelled", "timed_out", "killed"]
"""How a process ended. A later release adds ``"idle"`` (idle deadlines)."""

_CHUNK: Final = 1 << 16


@final
@attrs.frozen(repr=False)
class ProcessResult:
    """What :func:`run_process` observed. Immutable; ``stdout``/``stderr`` are the kept tails.

    ``returncode`` follows :mod:`subprocess` (negative: killed by that signal, also given as
    ``signal``). ``outcome`` says why it ended: ``"exited"`` on its own (whatever the code),
    ``"cancelled"``/``"timed_out"`` after ``ctx`` asked it to stop, ``"killed"`` when SIGKILL
    was needed (grace expired, or the hard context ended). ``cause`` is the cause of the
    context that stopped it (None for ``"exited"``). ``duration`` runs from start to reaping,
    ``stop_duration`` from the first stop signal to reaping (None if never asked to stop),
    both in seconds on trio's clock. ``stdout_truncated`` says output was dropped (more than
    ``max_output``, or any output with ``capture=False``). ``stragglers_killed`` says members
    of the group outlived a leader that exited on its own and were killed.
    """

    args: str | tuple[str, ...]
    pid: int
    returncode: int
    signal: Signals | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    outcome: Outcome
    duration: float
    stop_duration: float | None
    cause: BaseException | None
    stragglers_killed: bool

    @property
    def ok(self) -> bool:
        """True when the process exited on its own with code 0."""
        return self.outcome == "exited" and self.returncode == 0

    def describe(self) -> str:
        """One line saying how it ended, e.g. ``"exited with code 2"``."""
        how = (
            f"was killed by {self.signal.name}"
            if self.signal is not None
            else f"exited with code {self.returncode}"
        )
        if self.outcome == "exited":
            return how
        return f"{how} ({self.outcome.replace('_', ' ')})"

    def __repr__(self) -> str:
        return (
            f"<trio_context.ProcessResult {self.args!r} pid {self.pid}: {self.describe()}, "
            f"{len(self.stdout)}+{len(self.stderr)} bytes of output>"
        )


@final
class ProcessFailed(Exception):
    """Raised by ``run_process(..., check=True)`` when the process did not exit with code 0.

    ``result`` is the full :class:`ProcessResult`::

        try:
            await tc.run_process(ctx, ["make"], check=True)
        except tc.ProcessFailed as exc:
            print(exc.result.stderr.decode()[-2000:])
    """

    def __init__(self, result: ProcessResult) -> None:
        super().__init__(f"command {result.args!r} {result.describe()}")
        self.result = result

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.result,))


class _Run:
    """The supervision of one started process. Runs shielded, in the trio thread: only ``ctx``,
    ``hard``, the kill timer and :meth:`abort` end it early."""

    def __init__(
        self,
        proc: trio.Process,
        ctx: Context,
        hard: Context,
        term_signal: int,
        grace: float,
        drain_timeout: float,
    ) -> None:
        self.proc = proc
        self.pgid = proc.pid  # start_new_session: the leader's pid is the group's id
        self.ctx = ctx
        self.hard = hard
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
        """The calling task was cancelled: stop, and SIGKILL after ``grace`` at the latest."""
        self.stop()
        self.kill_timer.deadline = min(self.kill_timer.deadline, trio.current_time() + self.grace)

    async def watch_soft(self) -> None:
        await self.ctx.done.wait()
        self.stop()

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
            return "timed_out" if isinstance(self.ctx.err, DeadlineExceeded) else "cancelled"
        return "exited"


def _raise_single(group: BaseExceptionGroup[BaseException]) -> NoReturn:
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


async def run_process(
    ctx: Context,
    command: str | Sequence[str | os.PathLike[str]],
    *,
    grace: float = 5.0,
    term_signal: int = signal.SIGTERM,
    capture: bool = True,
    max_output: int = 1 << 20,
    on_line: Callable[[str, str], object] | None = None,
    env: Mapping[str, str | None] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    shell: bool = False,
    check: bool = False,
    hard: Context | None = None,
    drain_timeout: float = 1.0,
) -> ProcessResult:
    """Run ``command`` in its own process group until it ends, stopping it when ``ctx`` is done.

    ``command`` is an argument list, or a string run by ``/bin/sh -c`` when ``shell=True``.
    ``env`` is merged over ``os.environ`` (a ``None`` value removes a variable); ``cwd`` is the
    working directory. ``capture=False`` keeps no output: without ``on_line`` the child then
    writes straight to this process's stdout/stderr. ``hard`` replaces the default
    ``with_grace(ctx, grace)`` as the context whose end means SIGKILL. ``drain_timeout`` bounds
    the wait for stragglers after the leader exits on its own. Not idempotent: each call starts
    a new process, in its own process group. Call it from trio (any number of tasks at once);
    only ``on_line`` runs synchronously in the trio thread::

        result = await tc.run_process(ctx, ["pytest", "-x"], grace=10, on_line=print_line)
        if result.outcome == "timed_out":
            ...

    Raises:
        ContextCancelled, DeadlineExceeded: ``ctx`` was done before the start (nothing is
            started), or ``check=True`` and ``ctx`` stopped the process (a fresh ``ctx.err``).
        ProcessFailed: ``check=True`` and the process did not exit with code 0 by itself.
        FileNotFoundError, PermissionError, NotADirectoryError: the executable or ``cwd`` is
            missing or unusable (the message names the argument; nothing is left running).
        TypeError, ValueError: a bad argument.
        trio.Cancelled: the calling task was cancelled (after the group was stopped).
        Exception: whatever ``on_line`` raised (the process group is killed first).
    """
    _check_context("ctx", ctx)
    args: str | tuple[str, ...]
    if shell:
        if not isinstance(command, str):
            raise TypeError("`command` must be a string when shell=True")
        args, program = command, "/bin/sh"
    else:
        if isinstance(command, str | bytes):
            raise TypeError(
                "`command` must be a sequence of arguments; pass shell=True to run "
                "a string through /bin/sh"
            )
        args = tuple(os.fspath(part) for part in command)
        if not args:
            raise ValueError("`command` must not be empty")
        program = args[0]
    grace = number("grace", grace)
    drain_timeout = number("drain_timeout", drain_timeout)
    term = Signals(term_signal)
    if not is_count(max_output):
        raise ValueError(f"`max_output` must be a non-negative int, got {max_output!r}")
    if on_line is not None and not callable(on_line):
        raise TypeError("`on_line` must be a callable (stream_name, line) or None")
    if hard is not None:
        _check_context("hard", hard)
    workdir = None if cwd is None else os.fspath(cwd)
    if workdir is not None and not await trio.Path(workdir).is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"`cwd` is not a directory: {workdir!r}")
    merged_env = environment(env)
    ctx.check()

    own_hard: CancelContext | None = None
    if hard is None:
        hard = own_hard = with_grace(ctx, grace)
    pipe = subprocess.PIPE if capture or on_line is not None else None
    out = Tail("stdout", max_output, capture, on_line)
    err = Tail("stderr", max_output, capture, on_line)
    started = trio.current_time()
    try:
        try:
            if isinstance(args, str):
                proc = await trio.lowlevel.open_process(
                    args,
                    shell=True,
                    stdin=subprocess.DEVNULL,
                    stdout=pipe,
                    stderr=pipe,
                    start_new_session=True,
                    cwd=workdir,
                    env=merged_env,
                )
            else:
                proc = await trio.lowlevel.open_process(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=pipe,
                    stderr=pipe,
                    start_new_session=True,
                    cwd=workdir,
                    env=merged_env,
                )
        except OSError as exc:
            raise start_error(exc, program, workdir) from exc
        run = _Run(proc, ctx, hard, term, grace, drain_timeout)
        finished = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    run.supervise, ((proc.stdout, out), (proc.stderr, err)), finished
                )
                try:
                    await finished.wait()
                except trio.Cancelled:
                    run.abort()  # the supervisor is shielded: it stops the group, then we go
                    raise
        except BaseExceptionGroup as group:
            _raise_single(group)
    finally:
        if own_hard is not None:
            own_hard.cancel()  # releases its watch on ctx
    if run.error is not None:
        raise run.error

    ended = trio.current_time()
    returncode = proc.returncode
    assert returncode is not None
    outcome = run.outcome()
    result = ProcessResult(
        args=args,
        pid=proc.pid,
        returncode=returncode,
        signal=_signal_of(returncode),
        stdout=out.tail(),
        stderr=err.tail(),
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        outcome=outcome,
        duration=ended - started,
        stop_duration=None if run.stop_at is None else ended - run.stop_at,
        cause=None if outcome == "exited" else (ctx.cause if ctx.err is not None else hard.cause),
        stragglers_killed=run.stragglers,
    )
    if check and not result.ok:
        if outcome != "exited" and ctx.err is not None:
            try:
                ctx.check()
            except ContextError as exc:
                exc.add_note(f"command {args!r} {result.describe()}")
                raise
        raise ProcessFailed(result)
    return result


def _signal_of(returncode: int) -> Signals | None:
    if returncode >= 0:
        return None
    try:
        return Signals(-returncode)
    except ValueError:
        return None


for _obj in (ProcessResult, ProcessFailed, run_process):
    _obj.__module__ = "trio_context"
