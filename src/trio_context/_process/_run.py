"""Subprocesses that stop with their context: the whole process tree, no pipe deadlock, no orphans.

Rules for callers:

- ``await run_process(ctx, ["make", "test"])`` returns a :class:`ProcessResult` however the
  process ended; read ``result.outcome`` (why: ``"exited"``, ``"cancelled"``, ``"timed_out"``,
  ``"idle"``, ``"memory"``), ``result.killed`` (SIGKILL was needed) and ``result.returncode``.
  It raises only for bad input, for an error from your ``on_line``, for ``ctx`` already being
  done (nothing is started), or when you ask with ``check=True``.
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
- ``idle_timeout=seconds`` stops a process that is stuck rather than slow: every chunk of
  output on stdout or stderr counts as progress, and after ``seconds`` without any the group is
  stopped the same way (term signal, then SIGKILL after ``grace``), with outcome ``"idle"`` and
  an :class:`~trio_context.IdleTimeout` as ``cause``. A process that never writes is stopped
  ``seconds`` after the start, so give it output or no idle limit.
- The child gets ``ctx``'s remaining time in ``TRIO_CONTEXT_DEADLINE`` (see
  :func:`~trio_context.environ_for`), so a Python child that starts from
  ``tc.from_environ(tc.background())`` stops itself in time, and its own children see the
  minimum of every deadline above them. Without a deadline on ``ctx``, an inherited variable is
  removed. ``propagate_deadline=False`` leaves the environment as you give it.
- ``await nursery.start(run_process, ctx, command)`` returns a :class:`ProcessHandle` (the
  pid, a way to signal the group) as soon as the process runs; the call itself goes on in the
  nursery. For both, pass ``task_status`` on from a task of your own (see :class:`ProcessHandle`).
- The call owns the process tree: its group and every descendant it has seen. When the leader
  exits on its own but something of the tree still holds stdout/stderr open, or is still alive,
  it gets ``drain_timeout`` seconds and is then SIGKILLed (``result.stragglers_killed``), like the
  GitHub runner's drain guard. When the call returns, the leader is reaped and no live member of
  its group is left. Under :func:`~trio_context.open_subreaper` (Linux) that holds for every
  descendant, also one that left the group or the session (``result.contained``); without it, a
  descendant that did so and lost its parent unseen may survive.
- ``max_rss=bytes`` stops the tree (like a timeout: term signal, SIGKILL after ``grace``) once
  the resident memory of the leader and its tracked descendants, sampled every ``rss_interval``
  seconds, passes ``bytes``: outcome ``"memory"``, cause :class:`~trio_context.MemoryExceeded`.
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

import trio

from .._core import (
    CancelContext,
    Context,
    ContextError,
    IdleContext,
    IdleTimeout,
    check_parent,
    check_seconds,
    with_cancel,
    with_idle_timeout,
)
from ..propagation import (
    CANCEL_ACK_FD_ENV_VAR,
    CANCEL_FD_ENV_VAR,
    DEADLINE_ENV_VAR,
    CancelChannel,
    environ_for,
)
from ._descendants import Tree
from ._pgroup import Tail, check_env, child_environ, is_count, start_error
from ._results import ProcessFailed, ProcessHandle, ProcessResult
from ._subreaper import MARK_VAR, active
from ._supervisor import Limits, Supervisor, raise_single, signal_of

__all__ = ["run_process"]

# What a parent sets for one child only: never passed on from this process's environment.
_PER_CHILD = (DEADLINE_ENV_VAR, CANCEL_FD_ENV_VAR, CANCEL_ACK_FD_ENV_VAR)


def _command(
    command: str | Sequence[str | os.PathLike[str]], shell: bool
) -> tuple[str | tuple[str, ...], str]:
    """The command as run (a string for the shell, else a tuple) and the program's name."""
    if shell:
        if not isinstance(command, str):
            raise TypeError("`command` must be a string when shell=True")
        return command, "/bin/sh"
    if isinstance(command, str | bytes):
        raise TypeError(
            "`command` must be a sequence of arguments; pass shell=True to run "
            "a string through /bin/sh"
        )
    args = tuple(os.fspath(part) for part in command)
    if not args:
        raise ValueError("`command` must not be empty")
    return args, args[0]


def _positive(value: float | None, name: str, what: str) -> float | None:
    if value is None:
        return None
    value = check_seconds(value, name)
    if value == 0:
        raise ValueError(f"`{name}` must be positive ({what})")
    return value


def _limits(
    ctx: Context, idle_timeout: float | None, max_rss: int | None, rss_interval: float
) -> Limits:
    """The contexts for the call's own limits, children of ``ctx`` (cancel ``limits.soft``
    and its parents when done)."""
    soft: Context = ctx
    idle_cause: IdleTimeout | None = None
    idle: IdleContext | None = None
    if idle_timeout is not None:
        idle_cause = IdleTimeout(idle_timeout)
        soft = idle = with_idle_timeout(ctx, idle_timeout, cause=idle_cause)
    memory: CancelContext | None = None
    if max_rss is not None:
        soft = memory = with_cancel(soft)
    return Limits(
        soft,
        idle_cause=idle_cause,
        touch=None if idle is None else idle.touch,
        memory=memory,
        max_rss=max_rss,
        interval=rss_interval,
        owned=[c for c in (memory, idle) if c is not None],
    )


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
    idle_timeout: float | None = None,
    max_rss: int | None = None,
    rss_interval: float = 0.5,
    propagate_deadline: bool = True,
    propagate_cause: bool = True,
    task_status: trio.TaskStatus[ProcessHandle] = trio.TASK_STATUS_IGNORED,
) -> ProcessResult:
    """Run ``command`` in its own process group until it ends, stopping it when ``ctx`` is done.

    ``command`` is an argument list, or a string run by ``/bin/sh -c`` when ``shell=True``.
    ``env`` is merged over ``os.environ`` (a ``None`` value removes a variable); ``cwd`` is the
    working directory. ``capture=False`` keeps no output: without ``on_line`` the child then
    writes straight to this process's stdout/stderr. ``hard`` replaces the default
    ``with_grace(ctx, grace)`` as the context whose end means SIGKILL. ``drain_timeout`` bounds
    the wait for stragglers after the leader exits on its own. ``idle_timeout`` stops the group
    after that many seconds without output (outcome ``"idle"``). ``max_rss`` stops it once the
    resident memory of the whole tree (leader and tracked descendants, sampled every
    ``rss_interval`` seconds from ``/proc``; Linux only) passes that many bytes (outcome
    ``"memory"``, cause :class:`~trio_context.MemoryExceeded`). ``propagate_deadline`` (on by
    default) sets ``TRIO_CONTEXT_DEADLINE`` in the child's environment from ``ctx``, over
    anything ``env`` says. ``propagate_cause`` (on by default) opens a cancel channel to the child
    (see :func:`~trio_context.from_environ`): when ``ctx`` is done the child is told why, and
    how much grace it has, before any signal; a child that acknowledges gets no term signal
    (SIGKILL still ends the grace period). ``task_status`` is for ``nursery.start``, which
    then returns a :class:`ProcessHandle` once the process runs. Not idempotent: each call
    starts a new process, in its own process group. Call it from trio (any number of tasks at once);
    only ``on_line`` runs synchronously in the trio thread::

        result = await tc.run_process(ctx, ["pytest", "-x"], grace=10, on_line=print_line)
        if result.outcome == "timed_out":
            ...

    Raises:
        ContextCancelled, DeadlineExceeded: ``ctx`` was done before the start (nothing is
            started), or ``check=True`` and ``ctx`` stopped the process (a fresh ``ctx.err``).
        ProcessFailed: ``check=True`` and the process did not exit with code 0 by itself
            (this includes an ``"idle"`` stop: ``ctx`` itself is not done).
        FileNotFoundError, PermissionError, NotADirectoryError: the executable or ``cwd`` is
            missing or unusable (the message names the argument; nothing is left running).
        TypeError, ValueError: a bad argument (``idle_timeout``, ``max_rss`` and
            ``rss_interval`` must be positive).
        trio.Cancelled: the calling task was cancelled (after the group was stopped).
        Exception: whatever ``on_line`` raised (the process group is killed first).
    """
    check_parent(ctx, "ctx")
    args, program = _command(command, shell)
    grace = check_seconds(grace, "grace")
    drain_timeout = check_seconds(drain_timeout, "drain_timeout")
    term = Signals(term_signal)
    if not is_count(max_output):
        raise ValueError(f"`max_output` must be a non-negative int, got {max_output!r}")
    if on_line is not None and not callable(on_line):
        raise TypeError("`on_line` must be a callable (stream_name, line) or None")
    if hard is not None:
        check_parent(hard, "hard")
    idle_timeout = _positive(idle_timeout, "idle_timeout", "or None for no idle limit")
    if max_rss is not None and (not is_count(max_rss) or max_rss == 0):
        raise ValueError(f"`max_rss` must be a positive int (bytes) or None, got {max_rss!r}")
    rss_interval = _positive(rss_interval, "rss_interval", "seconds between samples") or 0.5
    workdir = None if cwd is None else os.fspath(cwd)
    # A stat is cheaper than a hop to a worker thread (and the spawn itself chdirs there).
    if workdir is not None and not os.path.isdir(workdir):  # noqa: ASYNC240
        raise NotADirectoryError(errno.ENOTDIR, f"`cwd` is not a directory: {workdir!r}")
    check_env(env)
    ctx.check()

    pipe = subprocess.PIPE if capture or on_line is not None else None
    out = Tail("stdout", max_output, capture, on_line)
    err = Tail("stderr", max_output, capture, on_line)
    started = trio.current_time()
    limits: Limits | None = None
    tree: Tree | None = None
    run: Supervisor | None = None
    channel: CancelChannel | None = None
    try:
        # One copy of the environment, whatever changes: the deadline (and no inherited
        # per-child variable), the subreaper's mark, the cancel channel.
        add: dict[str, str] = environ_for(ctx) if propagate_deadline else {}
        mark = _mark(add)
        if propagate_cause:
            channel = CancelChannel()
            add.update(channel.environ())
        merged_env = child_environ(env, drop=_PER_CHILD if propagate_deadline else (), add=add)
        limits = _limits(ctx, idle_timeout, max_rss, rss_interval)
        try:
            proc = await trio.lowlevel.open_process(
                args,
                shell=isinstance(args, str),
                stdin=subprocess.DEVNULL,
                stdout=pipe,
                stderr=pipe,
                start_new_session=True,
                cwd=workdir,
                env=merged_env,
                pass_fds=channel.child_fds if channel is not None else (),
            )
        except OSError as exc:
            raise start_error(exc, program, workdir) from exc
        finally:
            if channel is not None:
                channel.spawned()
        tree = Tree(proc.pid, lambda: proc.returncode is None, mark)
        run = Supervisor(proc, tree, ctx, hard, term, grace, drain_timeout, limits, channel)
        finished = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    run.supervise, ((proc.stdout, out), (proc.stderr, err)), finished
                )
                try:
                    task_status.started(ProcessHandle(run, args))
                    await finished.wait()
                except BaseException:  # trio.Cancelled, mostly
                    run.abort()  # the supervisor is shielded: it stops the tree, then we go
                    raise
        except BaseExceptionGroup as group:
            raise_single(group)
        contained = tree.contained
    finally:
        if channel is not None:
            channel.close()
        if tree is not None:
            tree.close()
        if limits is not None:
            limits.close()  # releases the limit contexts (and the idle timer)
    assert run is not None  # set, or the try block raised
    if run.error is not None:
        raise run.error

    result = _result(run, args, out, err, started, contained=contained)
    if check and not result.ok:
        if result.outcome != "exited" and run.limit_cause is None and ctx.err is not None:
            try:
                ctx.check()
            except ContextError as exc:
                exc.add_note(f"command {args!r} {result.describe()}")
                raise
        raise ProcessFailed(result)
    return result


def _result(
    run: Supervisor,
    args: str | tuple[str, ...],
    out: Tail,
    err: Tail,
    started: float,
    *,
    contained: bool,
) -> ProcessResult:
    """The result of a finished call (its leader reaped)."""
    ended = trio.current_time()
    returncode = run.proc.returncode
    assert returncode is not None
    outcome = run.outcome()
    return ProcessResult(
        args=args,
        pid=run.proc.pid,
        returncode=returncode,
        signal=signal_of(returncode),
        stdout=out.tail(),
        stderr=err.tail(),
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        outcome=outcome,
        duration=ended - started,
        stop_duration=None if run.stop_at is None else ended - run.stop_at,
        cause=run.cause(outcome),
        stragglers_killed=run.stragglers,
        killed=run.forced,
        contained=contained,
    )


def _mark(add: dict[str, str]) -> bytes | None:
    """Under :func:`open_subreaper`, a new mark for the call, which every descendant inherits
    (put into ``add``), so the subreaper can tell whose orphan it gets; else None."""
    reaper = active()
    if reaper is None:
        return None
    mark = reaper.new_mark()
    add[MARK_VAR] = mark.decode().partition("=")[2]
    return mark
