"""One run of a step's command: ``/bin/sh -c RUN`` under the step's context, and how it ended.

Rules for callers: make one :class:`StepCommand` per run of a step with the step's context;
register :meth:`StepCommand.on_stop` with ``tc.after_func`` on that context; await
:meth:`StepCommand.run` once, in the trio thread. It never raises for the step's failure: a
command that cannot start, fails, times out or is cancelled gives a :class:`StepResult`.

``/bin/sh`` runs by its path, so a step's own ``PATH`` cannot hide the shell. The command runs
under a ``with_value`` child of the step's context whose key names the step (:class:`StepKey`),
so ``tc.format_tree`` shows which context belongs to which step. An ``idle-timeout`` is
``run_process(idle_timeout=...)``: any output, even a progress bar that never ends its line,
starts it again; the moment it stops the step is shown ("no output for 2 s: stopping").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial

import attrs
import trio

import trio_context as tc

from .logs import StepLogs
from .pipeline import Step
from .results import (
    Reporter,
    StepResult,
    StepTimedOut,
    is_forced,
    seconds,
    short_cause,
    signal_words,
)

GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL when a step's context is done."""
CLEANUP_BUDGET = 30.0
"""Time limit of a cleanup step (``if`` other than ``success()``) that sets no ``timeout``."""
SHELL = "/bin/sh"
"""The shell that runs a step's ``run``, by its path (never looked up on the step's PATH)."""


@attrs.frozen(repr=False)
class StepKey:
    """The value key of a step's context, one per step, its value the :class:`Step`. Its repr
    names the step, so the context tree shows ``with_value(step 'build')``."""

    name: str

    def __repr__(self) -> str:
        return f"step {self.name!r}"


class StepCommand:
    """One run of ``step``'s command under ``ctx`` (see the module rules)."""

    def __init__(
        self,
        step: Step,
        ctx: tc.Context,
        reporter: Reporter,
        logs: StepLogs | None,
        *,
        script: str,
        env: Mapping[str, str],
        where: str,
        job_timeout: BaseException,
    ) -> None:
        self.step = step
        self.ctx = ctx
        self.reporter = reporter
        self.logs = logs
        self.script = script
        self.env = env
        self.where = where if step.line is None else f"{where}:{step.line}"
        self.job_timeout = job_timeout
        self.start = trio.current_time()
        self.stopped_at: float | None = None

    def on_stop(self) -> None:
        """The step's context is done: note when, and say how the step is being stopped."""
        self.stopped_at = trio.current_time()
        if is_forced(self.ctx):
            how = "forced stop: killing its process group now"
        else:
            how = "stopping (SIGTERM to its process group)"
        self.reporter.step_stopping(self.step.name, how)

    def on_idle(self, idle: tc.Context) -> None:
        """``run_process``'s idle context is done: say so if silence (not the step's own
        context) ended it."""
        if isinstance(idle.cause, tc.IdleTimeout) and not self.ctx.done.is_set():
            self.stopped_at = trio.current_time()
            how = f"no output for {seconds(self.step.idle_timeout)}: stopping (SIGTERM to its "
            self.reporter.step_stopping(self.step.name, how + "process group)")

    def on_line(self, stream: str, line: str) -> None:
        if self.logs is not None:
            self.logs.write(self.step.name, stream, line)
        self.reporter.step_output(self.step.name, stream, line)

    async def run(self) -> StepResult:
        """Run the step's command and say how it ended."""
        step = self.step
        if self.logs is not None:
            self.logs.open(step)
        try:
            result = await self.run_process(tc.with_value(self.ctx, StepKey(step.name), step))
        except tc.ContextError:  # ctx ended between the `if` and the start: nothing was started
            return self.stopped(None, 0.0)
        except (OSError, ValueError) as exc:  # ValueError: a NUL from a dotenv report
            errno = exc.errno if isinstance(exc, OSError) else None
            why = os.strerror(errno) if errno else str(exc)
            cause = f"could not start {SHELL} in {step.cwd_text!r}: {why}"
            return StepResult(step.name, "failed", cause=cause)
        finally:
            if self.logs is not None:
                self.logs.close(step.name)
        duration = trio.current_time() - self.start
        if result.outcome == "idle":  # stopped for silence (result.killed: it needed SIGKILL)
            return self.idle(result.returncode, duration)
        if isinstance(result.cause, tc.MemoryExceeded):  # outcome "memory": a failure
            used, limit = _mib(result.cause.rss), _mib(result.cause.limit)
            detail = (
                f"memory limit: the process tree's resident memory ({used}) passed the "
                f"memory-limit ({limit}) of step {step.name!r} ({self.where}), "
                f"{trio.current_time() - self.start:.1f} s after the step started"
            )
            cause = f"memory limit ({limit}; it used {used})"
            return StepResult(step.name, "failed", result.returncode, duration, cause, detail)
        if result.outcome == "exited":
            if result.returncode == 0:
                return StepResult(step.name, "passed", 0, duration)
            if result.signal is not None:
                cause = f"killed by {result.signal.name}"
            else:
                cause = f"exit code {result.returncode}"
            return StepResult(step.name, "failed", result.returncode, duration, cause)
        return self.stopped(result.returncode, duration)

    async def run_process(self, ctx: tc.Context) -> tc.ProcessResult:
        """``tc.run_process`` the command under ``ctx``; with an ``idle-timeout``, watch the
        idle context it makes under ``ctx`` once the process has started."""
        # The hard context (SIGKILL) is run_process's default: with_grace(ctx, GRACE), which a
        # forced stop (the second Ctrl-C) also ends at once.
        step = self.step
        if step.idle_timeout is None:
            return await tc.run_process(
                ctx,
                [SHELL, "-c", self.script],
                grace=GRACE,
                capture=False,
                on_line=self.on_line,
                env=self.env,
                cwd=step.cwd,
                max_rss=step.memory_limit,
            )
        results: list[tc.ProcessResult] = []
        failed: list[Exception] = []  # raised before the process started

        async def run(*, task_status: trio.TaskStatus[tc.ProcessHandle | None]) -> None:
            try:
                result = await tc.run_process(
                    ctx,
                    [SHELL, "-c", self.script],
                    grace=GRACE,
                    capture=False,
                    on_line=self.on_line,
                    env=self.env,
                    cwd=step.cwd,
                    idle_timeout=step.idle_timeout,
                    max_rss=step.memory_limit,
                    task_status=task_status,
                )
            except (tc.ContextError, OSError, ValueError) as exc:
                failed.append(exc)
                task_status.started(None)  # run_process raises these only before it starts
            else:
                results.append(result)

        watches: list[Callable[[], bool]] = []
        async with trio.open_nursery() as nursery:
            if await nursery.start(run) is not None:
                for child in ctx.children():
                    if isinstance(child, tc.IdleContext):
                        watches.append(tc.after_func(child, partial(self.on_idle, child)))
        for stop in watches:
            stop()
        if failed:
            raise failed[0]
        return results[0]

    def idle(self, exit_code: int | None, duration: float) -> StepResult:
        """Return the result of a step that its ``idle-timeout`` stopped."""
        cause = f"no output for {seconds(self.step.idle_timeout)}"
        detail = (
            f"{cause} (idle-timeout of step {self.step.name!r}, {self.where}); stopped "
            f"{self.since_start()}"
        )
        return StepResult(self.step.name, "timed_out", exit_code, duration, cause, detail)

    def since_start(self) -> str:
        after = (self.stopped_at or trio.current_time()) - self.start
        return f"{after:.1f} s after the step started"

    def stopped(self, exit_code: int | None, duration: float) -> StepResult:
        """Return the result of a step that its context stopped: timed out or cancelled."""
        step, ctx, when = self.step, self.ctx, self.since_start()
        if isinstance(ctx.err, tc.DeadlineExceeded):
            if ctx.cause is self.job_timeout:
                cause = short_cause(ctx.cause)
                detail = f"{cause} passed {when} (the [job] timeout of {self.where.split(':')[0]})"
            elif isinstance(ctx.cause, StepTimedOut):
                cause = short_cause(ctx.cause)
                detail = f"{cause} passed {when} (step {step.name!r} at {self.where})"
            else:
                cause = f"cleanup budget ({seconds(step.timeout or CLEANUP_BUDGET)})"
                detail = f"{cause} passed {when} (step {step.name!r} at {self.where})"
            return StepResult(step.name, "timed_out", exit_code, duration, cause, detail)
        hard = tc.hard_context(ctx)
        if hard is not None and hard.done.is_set():  # killed at once: that was just now
            cause = "forced stop"
            now = f"{trio.current_time() - self.start:.1f} s after the step started"
            detail = f"{signal_words(hard.cause)} {now}: its processes were killed"
        else:
            cause = short_cause(ctx.cause)
            detail = f"{signal_words(ctx.cause)} {when}: the job was cancelled"
        return StepResult(step.name, "cancelled", exit_code, duration, cause, detail)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"
