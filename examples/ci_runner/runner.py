"""The executor: runs a checked pipeline, one trio task per step, each under a context of the job.

The contexts, from the top::

    signal context    open_signal_context: first Ctrl-C/SIGTERM cancels it, the second its twin
      job             with_timeout(signal context, job timeout), with_cancel when no timeout
        step          with_timeout(job, step timeout)   for steps with if = "success()"
        cleanup step  cleanup(job, budget)              for always(), failure(), cancelled()

A step whose needs are all finished evaluates its ``if`` (GitHub Actions semantics over the needs
graph) and either is skipped or runs ``sh -c RUN`` with :func:`trio_context.run_process`: its own
process group, both pipes drained line by line into the display, and when its context is done
SIGTERM to the whole group, ``GRACE`` seconds, then SIGKILL. A forced stop (the hard twin) kills at
once. A step with ``idle-timeout`` is stopped the same way after that many seconds without a line
of output (``run_process(idle_timeout=...)``), and ends ``timed_out`` with the cause "no output for
N s". So a timeout, a Ctrl-C or a job timeout each stop exactly the processes they should, and
cleanup steps keep running after a graceful stop because their context ignores it.

Every step gets the runner's environment, then the job's ``env``, then its own ``env``, plus
``CI_RUNNER_STEP`` (its name), ``CI_RUNNER_TEMP`` (a scratch folder shared by the job's steps,
removed when the job ends) and ``TRIO_CONTEXT_DEADLINE`` (the time its context has left, set by
``run_process``; absent when the step has no limit).

Each step's command runs under a ``with_value`` child of its context whose key names the step
(:class:`StepKey`), so ``tc.format_tree`` shows which context belongs to which step. Where the
system has ``SIGUSR1`` (and the runner is in the main thread), sending it prints
``tc.format_tree(job)`` to stderr: the job, its steps and cleanup steps, their deadlines and open
scopes; the run goes on undisturbed (``kill -USR1 <pid>`` while a step looks stuck).

A job of a GitLab CI file (a step with ``extras``, see ``extras.py``) also waits for the jobs of
earlier stages, follows GitLab's ``when`` instead of ``if`` (a cancel marks the jobs not started
``cancelled``), runs ``before_script`` and ``script`` as one shell script, then its
``after_script`` under ``tc.cleanup`` with its own budget whatever the end, is run again by
``retry``, and passes its dotenv report's variables to the jobs after it.

``if`` conditions, evaluated when every step in ``needs`` has finished ("upstream" = every step
needed directly or not; a failure with ``continue-on-error`` counts as a success):

- ``success()`` (default): the job is neither cancelled nor timed out and every upstream step
  succeeded (a skipped upstream step also skips it, as in GitHub Actions);
- ``failure()``: the job is not cancelled, and an upstream step failed or the job timed out;
- ``cancelled()``: the job was cancelled (Ctrl-C or SIGTERM);
- ``always()``: always.
"""

from __future__ import annotations

import math
import os
import signal
import tempfile
import threading
from typing import Literal, Protocol, TypeAlias

import attrs
import trio

import trio_context as tc

from . import extras
from .extras import StepExtras
from .pipeline import Pipeline, Step

StepStatus: TypeAlias = Literal["passed", "failed", "timed_out", "cancelled", "skipped"]
JobStatus: TypeAlias = Literal["passed", "failed", "cancelled"]

GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL when a step's context is done."""
CLEANUP_BUDGET = 30.0
"""Time limit of a cleanup step (``if`` other than ``success()``) that sets no ``timeout``."""
TREE_SIGNAL: signal.Signals | None = getattr(signal, "SIGUSR1", None)
"""The signal that prints the job's context tree to stderr (None where the system has none)."""


class JobTimedOut(TimeoutError):
    """The cause of a job's deadline: the job's own ``timeout`` passed."""


class StepTimedOut(TimeoutError):
    """The cause of a step's deadline: the step's own ``timeout`` passed."""


@attrs.frozen(repr=False)
class StepKey:
    """The value key of a step's context, one per step, its value the :class:`Step`. Its repr
    names the step, so the context tree shows ``with_value(step 'build')``."""

    name: str

    def __repr__(self) -> str:
        return f"step {self.name!r}"


@attrs.define
class StepResult:
    """How one step ended.

    ``cause`` is a short reason for the summary ("exit code 2", "step timeout (3 s)"); ``detail``
    the long one (``explain()`` of the step's context when the context stopped it).
    """

    name: str
    status: StepStatus
    exit_code: int | None = None
    duration: float = 0.0
    cause: str | None = None
    detail: str | None = None
    continue_on_error: bool = False
    stage: str | None = None

    @property
    def succeeded(self) -> bool:
        """Whether the step counts as a success for the steps after it and for the job."""
        if self.status == "passed":
            return True
        return self.continue_on_error and self.status in ("failed", "timed_out")

    @property
    def failed(self) -> bool:
        """Whether the step counts as a failure (``failure()`` steps run, the job fails)."""
        return self.status in ("failed", "timed_out") and not self.continue_on_error


@attrs.define
class JobResult:
    """How the job ended; ``reason`` says why when it did not pass ("timed out", "SIGINT")."""

    name: str
    status: JobStatus
    duration: float
    steps: list[StepResult]
    reason: str | None = None

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed, 130 cancelled."""
        return {"passed": 0, "failed": 1, "cancelled": 130}[self.status]


class Reporter(Protocol):
    """What the runner tells the display. Every method is called in the trio thread."""

    def step_started(self, step: Step) -> None: ...
    def step_output(self, name: str, stream: str, line: str) -> None: ...
    def step_stopping(self, name: str) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...
    def job_stopping(self, message: str) -> None: ...
    def context_tree(self, text: str) -> None: ...


async def run_pipeline(ctx: tc.Context, pipeline: Pipeline, reporter: Reporter) -> JobResult:
    """Run every step of ``pipeline`` under ``ctx`` and return how the job ended.

    Cancelling ``ctx`` is a graceful stop (the job ends ``cancelled``); cancelling its hard twin
    (``tc.hard_context(ctx)``) kills every step at once. Never raises for a step's failure.
    """
    return await _JobRun(ctx, pipeline, reporter).run()


class _JobRun:
    def __init__(self, ctx: tc.Context, pipeline: Pipeline, reporter: Reporter) -> None:
        self.parent = ctx
        self.pipeline = pipeline
        self.reporter = reporter
        self.hard = tc.hard_context(ctx)
        self.timeout_cause = JobTimedOut(f"job timeout ({_seconds(pipeline.job.timeout)})")
        self.job = (
            tc.with_timeout(ctx, pipeline.job.timeout, cause=self.timeout_cause)
            if pipeline.job.timeout is not None
            else tc.with_cancel(ctx)
        )
        self.finished = {step.name: trio.Event() for step in pipeline.steps}
        self.results: dict[str, StepResult] = {}
        self.env = {**os.environ, **pipeline.job.env}
        self.dotenv: dict[str, dict[str, str]] = {}  # GitLab dotenv reports, by job

    async def run(self) -> JobResult:
        start = trio.current_time()
        stop_watch = tc.after_func(self.job, self.on_job_done)
        try:
            with tempfile.TemporaryDirectory(
                prefix="ci_runner-", ignore_cleanup_errors=True
            ) as scratch:
                self.env["CI_RUNNER_TEMP"] = scratch
                async with trio.open_nursery() as nursery:
                    if (
                        TREE_SIGNAL is not None
                        and threading.current_thread() is threading.main_thread()
                    ):
                        await nursery.start(self.show_tree_on, TREE_SIGNAL, name="context tree")
                    async with trio.open_nursery() as step_tasks:
                        for step in self.pipeline.steps:
                            step_tasks.start_soon(self.step_task, step, name=f"step {step.name}")
                    nursery.cancel_scope.cancel()  # every step is done: stop listening
        finally:
            stop_watch()
        state = self.job_state()
        self.job.cancel()  # release it (and its deadline) now that every step is done
        steps = [self.results[step.name] for step in self.pipeline.steps]
        if state == "cancelled":
            status: JobStatus = "cancelled"
            reason = short_cause(self.parent.cause)
        elif state == "timed_out":
            status, reason = "failed", "timed out"
        elif any(result.failed for result in steps):
            status, reason = "failed", None
        else:
            status, reason = "passed", None
        return JobResult(self.pipeline.job.name, status, trio.current_time() - start, steps, reason)

    async def show_tree_on(
        self, signum: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Show the job's context tree each time ``signum`` arrives, until cancelled."""
        with trio.open_signal_receiver(signum) as signals:
            task_status.started()
            async for _ in signals:
                self.reporter.context_tree(
                    f"[job] {self.pipeline.job.name}: context tree ({_signal_name(signum)})\n"
                    + tc.format_tree(self.job)
                )

    def job_state(self) -> Literal["running", "timed_out", "cancelled"]:
        if not self.job.done.is_set():
            return "running"
        if self.parent.done.is_set() or self.job.cause is not self.timeout_cause:
            return "cancelled"
        return "timed_out"

    def on_job_done(self) -> None:
        if self.job_state() == "timed_out":
            self.reporter.job_stopping(
                f"job timed out after {_seconds(self.pipeline.job.timeout)}: stopping running "
                "steps, cleanup steps still run"
            )

    async def step_task(self, step: Step) -> None:
        for need in step.waits_for:
            await self.finished[need].wait()
        ended = self.ends_without_running(step)
        if ended is not None:
            result = ended
        elif self.hard is not None and self.hard.done.is_set():
            result = StepResult(step.name, "cancelled", cause="forced stop before it started")
        else:
            result = await self.run_step(step)
        result.continue_on_error = extras.allowed(step, result)
        result.stage = step.extras.stage if step.extras is not None else None
        self.results[step.name] = result
        self.reporter.step_finished(result)
        self.finished[step.name].set()

    def ends_without_running(self, step: Step) -> StepResult | None:
        """Return how ``step`` ends without running (GitLab's rules or its ``if``), or ``None``."""
        if step.extras is not None:
            upstream = self.pipeline.upstream(step.name)
            decision = extras.decide(step, step.extras, self.job_state(), self.results, upstream)
            return (
                None if decision is None else StepResult(step.name, decision[0], cause=decision[1])
            )
        reason = self.skip_reason(step)
        return None if reason is None else StepResult(step.name, "skipped", cause=reason)

    def skip_reason(self, step: Step) -> str | None:
        """Return why ``step`` must not run (its ``if`` is false), or ``None`` to run it."""
        state = self.job_state()
        upstream = [self.results[name] for name in self.pipeline.upstream(step.name)]
        if step.condition == "always()":
            return None
        if step.condition == "cancelled()":
            return None if state == "cancelled" else "if cancelled(): the job was not cancelled"
        if step.condition == "failure()":
            if state == "cancelled":
                return "if failure(): the job was cancelled"
            if state == "timed_out" or any(result.failed for result in upstream):
                return None
            return "if failure(): nothing before it failed"
        if state != "running":
            return "job cancelled" if state == "cancelled" else "job timed out"
        for result in upstream:
            if not result.succeeded:
                return f"needs {result.name!r}, which {_past(result.status)}"
        return None

    def step_context(self, step: Step) -> tc.CancelContext:
        if step.is_cleanup:
            return tc.cleanup(self.job, step.timeout or CLEANUP_BUDGET)
        if step.timeout is not None:
            cause = StepTimedOut(f"step timeout ({_seconds(step.timeout)})")
            return tc.with_timeout(self.job, step.timeout, cause=cause)
        return tc.with_cancel(self.job)

    async def run_step(self, step: Step) -> StepResult:
        """Run ``step``; a GitLab job also gets its ``after_script``, ``retry`` and dotenv."""
        if step.extras is None:
            return await self.run_attempt(step)
        attempt = 0
        while True:
            result = await self.run_attempt(step)
            await self.after_script(step, step.extras, result)
            if not extras.should_retry(step.extras, result, attempt):
                break
            attempt += 1
            self.reporter.step_output(
                step.name,
                "stderr",
                f"{_past(result.status)}: retry {attempt} of {step.extras.retry}",
            )
        if result.status == "passed":
            found: dict[str, str] = {}
            for name in step.extras.dotenv:
                found.update(extras.read_dotenv(step.cwd / name))
            self.dotenv[step.name] = found
        return result

    async def after_script(self, step: Step, job: StepExtras, result: StepResult) -> None:
        """Run the job's ``after_script`` in its own shell, under a cleanup context with its own
        budget (a cancel or a timeout of the job does not stop it; a forced stop does). Its
        failure is shown and changes nothing."""
        if not job.after_script:
            return
        status = extras.JOB_STATUS[result.status]
        self.reporter.step_output(step.name, "stdout", f"after_script (CI_JOB_STATUS={status})")
        ctx = tc.cleanup(self.job, job.after_script_timeout)
        try:
            done = await tc.run_process(
                tc.with_value(ctx, StepKey(step.name), step),
                ["sh", "-c", extras.shell_script(job.after_script)],
                grace=GRACE,
                capture=False,
                on_line=lambda stream, line: self.reporter.step_output(step.name, stream, line),
                env={**self.step_env(step), "CI_JOB_STATUS": status},
                cwd=step.cwd,
            )
        except (tc.ContextError, OSError) as exc:
            problem: str | None = f"did not run ({exc})"
        else:
            problem = None
            if done.outcome != "exited":
                problem = f"stopped ({short_cause(ctx.cause)})"
            elif done.returncode != 0:
                problem = f"exit code {done.returncode} (ignored)"
        finally:
            ctx.cancel()
        if problem is not None:
            self.reporter.step_output(step.name, "stderr", f"after_script {problem}")

    def step_env(self, step: Step) -> dict[str, str]:
        """Return the environment of ``step``: the runner's, the job's, its own, and for a GitLab
        job the dotenv variables of the jobs it gets artifacts from."""
        env = {**self.env, **step.env, "CI_RUNNER_STEP": step.name}
        if step.extras is not None:
            for name in step.extras.dotenv_from:
                env.update(self.dotenv.get(name, {}))
            env["CI_JOB_STATUS"] = "running"
        return env

    async def run_attempt(self, step: Step) -> StepResult:
        ctx = self.step_context(step)
        self.reporter.step_started(step)
        stop_watch = tc.after_func(ctx, lambda: self.reporter.step_stopping(step.name))
        try:
            return await self.run_in(step, ctx)
        finally:
            stop_watch()
            ctx.cancel()  # release the context (its deadline and its links to the job)

    async def run_in(self, step: Step, ctx: tc.Context) -> StepResult:
        """Run the step's command under ``ctx`` and say how it ended."""
        start = trio.current_time()

        def on_line(stream: str, line: str) -> None:
            self.reporter.step_output(step.name, stream, line)

        try:
            # The hard context (SIGKILL) is run_process's default: with_grace(ctx, GRACE), which
            # a forced stop (the second Ctrl-C) also ends at once.
            result = await tc.run_process(
                tc.with_value(ctx, StepKey(step.name), step),  # names the step in format_tree
                [
                    "sh",
                    "-c",
                    step.run if step.extras is None else extras.shell_script(step.extras.commands),
                ],
                grace=GRACE,
                capture=False,
                on_line=on_line,
                env=self.step_env(step),
                cwd=step.cwd,
                idle_timeout=step.idle_timeout,
                max_rss=step.memory_limit,
            )
        except tc.ContextError:  # ctx ended between the `if` and the start: nothing was started
            return self.stopped(step, ctx, None, 0.0)
        except OSError as exc:
            return StepResult(step.name, "failed", cause=f"could not start: {exc}")
        duration = trio.current_time() - start
        if result.outcome == "idle":  # stopped for silence (result.killed: it needed SIGKILL)
            cause = f"no output for {_seconds(step.idle_timeout)}"
            return StepResult(step.name, "timed_out", result.returncode, duration, cause)
        if isinstance(result.cause, tc.MemoryExceeded):  # outcome "memory": a failure
            cause = f"memory limit: {result.cause}"
            return StepResult(step.name, "failed", result.returncode, duration, cause)
        if result.outcome == "exited":
            if result.returncode == 0:
                return StepResult(step.name, "passed", 0, duration)
            if result.signal is not None:
                cause = f"killed by {result.signal.name}"
            else:
                cause = f"exit code {result.returncode}"
            return StepResult(step.name, "failed", result.returncode, duration, cause)
        return self.stopped(step, ctx, result.returncode, duration)

    def stopped(
        self, step: Step, ctx: tc.Context, exit_code: int | None, duration: float
    ) -> StepResult:
        """Return the result of a step that its context stopped: timed out or cancelled."""
        detail = ctx.explain() or None
        if isinstance(ctx.err, tc.DeadlineExceeded):
            if ctx.cause is self.timeout_cause or isinstance(ctx.cause, StepTimedOut):
                cause = short_cause(ctx.cause)
            else:
                cause = f"cleanup budget ({_seconds(step.timeout or CLEANUP_BUDGET)})"
            return StepResult(step.name, "timed_out", exit_code, duration, cause, detail)
        if self.hard is not None and self.hard.done.is_set():
            cause = "forced stop"
        else:
            cause = short_cause(ctx.cause)
        return StepResult(step.name, "cancelled", exit_code, duration, cause, detail)


def short_cause(cause: BaseException | None) -> str:
    """Return a few words for a context's cause: ``SIGINT``, ``job timeout (20 s)``, ..."""
    signum = getattr(cause, "signum", None)
    if isinstance(signum, int):
        return _signal_name(signum)
    if cause is None:
        return "cancelled"
    return str(cause) or type(cause).__name__


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(abs(signum)).name
    except ValueError:
        return f"signal {signum}"


def _seconds(value: float | None) -> str:
    if value is None or math.isinf(value):
        return "no limit"
    return f"{value:g} s"


def _past(status: str) -> str:
    return {
        "failed": "failed",
        "timed_out": "timed out",
        "cancelled": "was cancelled",
        "skipped": "was skipped",
    }.get(status, status)
