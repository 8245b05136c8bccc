"""What a :func:`~trio_context.run_process` call reports: its result, its failure, its handle,
and the cause of a memory stop.

Rules for callers: read ``result.outcome`` for *why* the process ended and ``result.killed``
for *how* (SIGKILL was needed); ``result.contained`` says whether every descendant was tracked
(the call ran under :func:`~trio_context.open_subreaper`).
"""

from __future__ import annotations

from signal import Signals
from typing import final

import attrs

from .._core import IdleTimeout
from ._memory import MemoryExceeded, size_text
from ._pgroup import signal_group
from ._supervisor import Outcome, Supervisor

__all__ = ["MemoryExceeded", "Outcome", "ProcessFailed", "ProcessHandle", "ProcessResult"]


@final
@attrs.frozen(repr=False)
class ProcessResult:
    """What :func:`run_process` observed. Immutable; ``stdout``/``stderr`` are the kept tails.

    ``returncode`` follows :mod:`subprocess` (negative: killed by that signal, also given as
    ``signal``). ``outcome`` says why it ended: ``"exited"`` on its own (whatever the code),
    ``"cancelled"``/``"timed_out"`` after ``ctx`` (or the hard context) asked it to stop,
    ``"idle"`` after ``idle_timeout`` seconds without output, ``"memory"`` after the tree's
    resident memory passed ``max_rss``. ``killed`` says SIGKILL was needed to end it (the grace
    period expired, or the hard context ended), whatever the reason. ``cause`` is the cause of
    the context that stopped it, an :class:`~trio_context.IdleTimeout` for an idle stop, a
    :class:`~trio_context.MemoryExceeded` for a memory stop, None for ``"exited"``.
    ``duration`` runs from start to reaping, ``stop_duration`` from the first stop signal to
    reaping (None if never asked to stop), both in seconds on trio's clock.
    ``stdout_truncated`` says output was dropped (more than ``max_output``, or any output with
    ``capture=False``). ``stragglers_killed`` says processes of the tree outlived a leader that
    exited on its own and were killed. ``contained`` says every descendant was tracked (the
    call ran under :func:`~trio_context.open_subreaper` on Linux), so none outlives the call;
    when False only the process group and the descendants seen while it ran were stopped.
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
    killed: bool = False
    contained: bool = False

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
        if self.outcome == "idle" and isinstance(self.cause, IdleTimeout):
            why = f"idle: no output for {self.cause.seconds:g} s"
        elif self.outcome == "memory" and isinstance(self.cause, MemoryExceeded):
            used, allowed = size_text(self.cause.rss), size_text(self.cause.limit)
            why = f"memory: {used} resident, limit {allowed}"
        else:
            why = self.outcome.replace("_", " ")
        return f"{how} ({why}{', SIGKILL needed' if self.killed else ''})"

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


@final
class ProcessHandle:
    """The process of a running :func:`run_process` call, as ``nursery.start`` reports it.

    ``pid`` is the leader's pid, which is also its process group's id; ``args`` the command as
    run. Made by ``run_process`` only::

        handle = await nursery.start(tc.run_process, ctx, ["server", "--port", "0"])
        handle.send_signal(signal.SIGHUP)  # reload

    To get the result too, start a task of your own that passes ``task_status`` on::

        async def build(task_status: trio.TaskStatus[tc.ProcessHandle]) -> None:
            result = await tc.run_process(ctx, ["make"], task_status=task_status)
            ...

        handle = await nursery.start(build)
    """

    __slots__ = ("_run", "args", "pid")

    def __init__(self, run: Supervisor, args: str | tuple[str, ...]) -> None:
        self._run = run
        self.pid = run.pgid
        self.args = args

    @property
    def returncode(self) -> int | None:
        """The leader's exit status (as in :mod:`subprocess`), None while it runs."""
        return self._run.proc.returncode

    @property
    def running(self) -> bool:
        """False once ``run_process`` has reaped the group: signals are then ignored."""
        return not self._run.reaped

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group; nothing once the call has reaped it (the
        group's id may then belong to another process). Call it in the trio thread.

        This does not count as a stop: the result says ``"exited"`` however the group then
        ends. To stop the process, cancel its context.

        Raises:
            ValueError: ``sig`` is not a signal number.
        """
        signum = Signals(sig)
        if not self._run.reaped:
            signal_group(self._run.pgid, signum)

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited ({self.returncode})"
        return f"<trio_context.ProcessHandle {self.args!r} pid {self.pid}, {state}>"
