"""The executor: runs a checked pipeline, one task per step in a ``tc.open_group``, each step under
a context of the job.

The contexts, from the top::

    signal context    open_signal_context: first Ctrl-C/SIGTERM/SIGHUP cancels it, the second
      job             its twin; with_timeout(signal context, job timeout), or with_cancel
        step          with_timeout(job, step timeout)   for steps with if = "success()"
        cleanup step  cleanup(job, budget)              for always(), failure(), cancelled()
        steps group   open_group(with_cancel(without_cancel(job)), limit=--max-parallel)

The steps' tasks run in one :func:`trio_context.open_group`, whose context ignores a graceful stop
of the job (cleanup steps must still run and every step must still report how it ended). A forced
stop kills every step's processes at once through their own contexts; the group's context ends
``GRACE`` seconds later, interrupting any step task still running, and the group reports a task
still running ``GRACE`` seconds after that with its stack (the stuck-task report).
``--max-parallel N`` is the group's ``limit``: at most N steps run, the others wait in file
order. A step is started in the group only when every step it needs has finished, so waiting
steps hold no slot and a long chain costs one task at a time.

A started step evaluates its ``if`` (GitHub Actions semantics over the needs graph) and either is
skipped or runs ``/bin/sh -c RUN`` (``/bin/sh`` by its path: a step's own ``PATH`` cannot hide
the shell) with :func:`trio_context.run_process`: its own process group, both pipes drained line
by line into the display (and into ``--log-dir``), and when its context is done SIGTERM to the
whole group, ``GRACE`` seconds, then SIGKILL. A forced stop (the hard twin) kills at once. A step
with ``idle-timeout`` is stopped the same way after that many seconds without output
(``run_process(idle_timeout=...)``) and ends ``timed_out``. So a timeout, a
Ctrl-C or a job timeout each stop exactly the processes they should, and cleanup steps keep
running after a graceful stop because their context ignores it.

Every step gets the runner's environment, then the job's ``env``, then its own ``env``, plus
``CI_RUNNER_STEP`` (its name), ``CI_RUNNER_TEMP`` (a scratch folder shared by the job's steps,
removed when the job ends) and ``TRIO_CONTEXT_DEADLINE`` (the time its context has left, set by
``run_process``; absent when the step has no limit).

Each step's command runs under a ``with_value`` child of its context whose key names the step
(:class:`StepKey`), so ``tc.format_tree`` shows which context belongs to which step. Where the
system has ``SIGUSR1`` (and the runner is in the main thread), sending it prints
``tc.format_tree(job)`` to stderr: the job, its steps, cleanup steps and the steps' group, their
deadlines and open scopes; the run goes on undisturbed (``kill -USR1 <pid>``).

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
- ``cancelled()``: the job was cancelled (Ctrl-C, SIGTERM or SIGHUP);
- ``always()``: always.
"""

from __future__ import annotations

import signal
import tempfile
import threading
from pathlib import Path
from typing import Literal

import attrs
import trio

import trio_context as tc

from . import extras
from .command import CLEANUP_BUDGET, GRACE, SHELL, StepCommand, StepKey
from .extras import StepExtras
from .logs import StepLogs
from .pipeline import Pipeline, Step
from .results import (
    JobResult,
    JobStatus,
    JobTimedOut,
    Reporter,
    StepResult,
    StepStatus,
    StepTimedOut,
    is_forced,
    past,
    seconds,
    short_cause,
    signal_name,
    signal_words,
)

__all__ = [  # the results are re-exported for the front ends that import them from here
    "CLEANUP_BUDGET",
    "GRACE",
    "SHELL",
    "JobResult",
    "JobStatus",
    "Reporter",
    "StepKey",
    "StepResult",
    "StepStatus",
    "run_pipeline",
    "short_cause",
]

TREE_SIGNAL: signal.Signals | None = getattr(signal, "SIGUSR1", None)
"""The signal that prints the job's context tree to stderr (None where the system has none)."""


@attrs.frozen(repr=False)
class GroupKey:
    """The value key above the steps' group, so the context tree shows
    ``with_value(steps group, limit 4)`` over the group's context (its scopes: running steps)."""

    limit: str

    def __repr__(self) -> str:
        return f"steps group, {self.limit}"


async def run_pipeline(
    ctx: tc.Context,
    pipeline: Pipeline,
    reporter: Reporter,
    *,
    max_parallel: int | None = None,
    log_dir: Path | None = None,
) -> JobResult:
    """Run every step of ``pipeline`` under ``ctx`` and return how the job ended.

    Cancelling ``ctx`` is a graceful stop (the job ends ``cancelled``); cancelling its hard twin
    (``tc.hard_context(ctx)``) kills every step at once. At most ``max_parallel`` steps run at
    once (None: no bound); ``log_dir`` (an existing folder) gets one file per step with its whole
    output. Never raises for a step's failure.
    """
    logs = StepLogs(log_dir, pipeline) if log_dir is not None else None
    return await _JobRun(ctx, pipeline, reporter, max_parallel, logs).run()


class _JobRun:
    def __init__(
        self,
        ctx: tc.Context,
        pipeline: Pipeline,
        reporter: Reporter,
        max_parallel: int | None,
        logs: StepLogs | None,
    ) -> None:
        self.parent = ctx
        self.pipeline = pipeline
        self.reporter = reporter
        self.max_parallel = max_parallel
        self.logs = logs
        self.timeout_cause = JobTimedOut(f"job timeout ({seconds(pipeline.job.timeout)})")
        self.job = (
            tc.with_timeout(ctx, pipeline.job.timeout, cause=self.timeout_cause)
            if pipeline.job.timeout is not None
            else tc.with_cancel(ctx)
        )
        self.results: dict[str, StepResult] = {}
        self.all_succeeded: dict[str, bool] = {}  # the step and everything upstream succeeded
        self.any_failed: dict[str, bool] = {}  # the step or something upstream failed
        self.waiting = {step.name: len(step.waits_for) for step in pipeline.steps}
        self.dependents: dict[str, list[Step]] = {step.name: [] for step in pipeline.steps}
        for step in pipeline.steps:
            for need in step.waits_for:
                self.dependents[need].append(step)
        self.env = dict(pipeline.job.env)  # over the runner's (run_process starts from that)
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
                    await self.run_steps()
                    nursery.cancel_scope.cancel()  # every step is done: stop listening
        finally:
            stop_watch()
        return self.job_result(trio.current_time() - start)

    async def run_steps(self) -> None:
        """Run the steps in a group whose context ignores the job's graceful cancel and ends
        ``GRACE`` seconds after a forced stop (see the module)."""
        limit = f"limit {self.max_parallel}" if self.max_parallel else "no limit"
        steps_ctx = tc.with_cancel(tc.without_cancel(self.job))
        hard = tc.hard_context(self.job)
        stop_watch = None
        if hard is not None:
            # A forced stop kills every step's processes at once (their own contexts end); a step
            # task still running GRACE s later is interrupted, and reported GRACE s after that.
            stop_watch = tc.after_func(hard, lambda: steps_ctx.cancel_after(GRACE))
        try:
            async with tc.open_group(
                tc.with_value(steps_ctx, GroupKey(limit), None),
                limit=self.max_parallel,
                grace=GRACE,
            ) as group:
                for step in self.pipeline.steps:
                    if not step.waits_for:
                        group.start_soon(self.step_task, group, step, name=f"step {step.name}")
        except tc.ContextError:
            if not is_forced(self.job):
                raise  # pragma: no cover - only a forced stop ends the steps' context
        finally:
            if stop_watch is not None:
                stop_watch()
            steps_ctx.cancel()  # release it
        for step in self.pipeline.steps:  # a forced stop leaves the steps it never started
            if step.name not in self.results:
                cause = "forced stop before it started"
                self.record(StepResult(step.name, "cancelled", cause=cause))

    def job_result(self, duration: float) -> JobResult:
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
        return JobResult(self.pipeline.job.name, status, duration, steps, reason)

    async def show_tree_on(
        self, signum: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Show the job's context tree each time ``signum`` arrives, until cancelled."""
        with trio.open_signal_receiver(signum) as signals:
            task_status.started()
            async for _ in signals:
                self.reporter.context_tree(
                    f"[job] {self.pipeline.job.name}: context tree ({signal_name(signum)})\n"
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
                f"job timed out after {seconds(self.pipeline.job.timeout)}: stopping running "
                "steps, cleanup steps still run"
            )

    async def step_task(self, group: tc.TaskGroup, step: Step) -> None:
        """Run (or skip) ``step``, record how it ended, then start the steps now ready."""
        start = trio.current_time()
        result: StepResult | None = None
        try:
            ended = self.ends_without_running(step)
            if ended is not None:
                result = ended
            elif is_forced(self.job):
                result = StepResult(step.name, "cancelled", cause="forced stop before it started")
            else:
                result = await self.run_step(step)
        finally:
            if result is None:  # the task itself was interrupted, GRACE s after a forced stop
                result = self.forced(step, trio.current_time() - start)
            self.record(result, step)
        for later in self.dependents[step.name]:
            self.waiting[later.name] -= 1
            if self.waiting[later.name] == 0:
                group.start_soon(self.step_task, group, later, name=f"step {later.name}")

    def forced(self, step: Step, duration: float) -> StepResult:
        """Return the result of a step whose task was interrupted after a forced stop."""
        hard = tc.hard_context(self.job)
        who = signal_words(hard.cause if hard is not None else None)
        detail = f"{who} {duration:.1f} s after the step started: its processes were killed"
        return StepResult(step.name, "cancelled", None, duration, "forced stop", detail)

    def record(self, result: StepResult, step: Step | None = None) -> None:
        """Keep how a step ended, with what it means for the steps after it, and show it."""
        step = step or self.pipeline.step(result.name)
        needs = step.waits_for
        result.continue_on_error = extras.allowed(step, result)
        result.stage = step.extras.stage if step.extras is not None else None
        self.results[result.name] = result
        # Summaries of everything upstream, so that no step walks the whole graph before it.
        # (A need without a result yet: only after a forced stop, for steps never started.)
        self.all_succeeded[result.name] = result.succeeded and all(
            self.all_succeeded.get(n, False) for n in needs
        )
        self.any_failed[result.name] = result.failed or any(
            self.any_failed.get(n, False) for n in needs
        )
        self.reporter.step_finished(result)

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
        if step.condition == "always()":
            return None
        if step.condition == "cancelled()":
            return None if state == "cancelled" else "if cancelled(): the job was not cancelled"
        if step.condition == "failure()":
            if state == "cancelled":
                return "if failure(): the job was cancelled"
            if state == "timed_out" or any(self.any_failed[n] for n in step.needs):
                return None
            return "if failure(): nothing before it failed"
        if state != "running":
            return "job cancelled" if state == "cancelled" else "job timed out"
        if all(self.all_succeeded[n] for n in step.needs):
            return None
        for name in self.pipeline.upstream(step.name):  # the first one that did not succeed
            result = self.results[name]
            if not result.succeeded:
                return f"needs {result.name!r}, which {past(result.status)}"
        return None  # pragma: no cover - all_succeeded said one did not

    def step_context(self, step: Step) -> tc.CancelContext:
        if step.is_cleanup:
            return tc.cleanup(self.job, step.timeout or CLEANUP_BUDGET)
        if step.timeout is not None:
            cause = StepTimedOut(f"step timeout ({seconds(step.timeout)})")
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
                f"{past(result.status)}: retry {attempt} of {step.extras.retry}",
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
                [SHELL, "-c", extras.shell_script(job.after_script)],
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
        """Return what ``step`` adds to the runner's environment: the job's env, its own, and for
        a GitLab job the dotenv variables of the jobs it gets artifacts from."""
        env = {**self.env, **step.env, "CI_RUNNER_STEP": step.name}
        if step.extras is not None:
            for name in step.extras.dotenv_from:
                env.update(self.dotenv.get(name, {}))
            env["CI_JOB_STATUS"] = "running"
        return env

    async def run_attempt(self, step: Step) -> StepResult:
        """Run the step's command once, under a new context of the step."""
        ctx = self.step_context(step)
        command = StepCommand(
            step,
            ctx,
            self.reporter,
            self.logs,
            script=step.run if step.extras is None else extras.shell_script(step.extras.commands),
            env=self.step_env(step),
            where=self.pipeline.path.name,
            job_timeout=self.timeout_cause,
        )
        self.reporter.step_started(step)
        stop_watch = tc.after_func(ctx, command.on_stop)
        try:
            return await command.run()
        finally:
            stop_watch()
            ctx.cancel()  # release the context (its deadline and its links to the job)
