"""The three kinds of work a job can be, and what each one is given.

A work function is ``async def work(ctx, spec, steps) -> None``. It runs the spec's steps under
``ctx`` (the job's context: cancelled by ``cancel(mode="now")``, ends at the job's timeout, or
when no step finished for ``stall_timeout``), calls ``steps.report(output)`` after each finished
step, and checks ``steps.stop`` *between* steps: once it is done, a safe cancel asked the work to
stop at the next step boundary, keeping the steps it finished. When ``ctx`` stops the work, it
raises ``ctx``'s error (``tc.ContextCancelled`` / ``tc.DeadlineExceeded``); any other exception
fails the job.

- ``async_steps``: an async step loop (think: a remote generation API, step by step).
- ``thread_steps``: a CPU-bound step loop in a worker thread (think: a sampler). Python cannot
  interrupt a thread, so the loop polls ``tc.current().check()`` inside each step, which is what
  makes ``"now"`` immediate; ``tc.to_thread`` waits for the thread to notice, so no thread
  outlives the job.
- ``process_steps``: ``worker.py`` in a subprocess, one progress line per step on stdout. Its
  deadline travels in the environment (``run_process`` sets ``TRIO_CONTEXT_DEADLINE``, see
  ``tc.environ_for``), so the worker stops itself in time;
  ``tc.run_process`` stops its whole process group (SIGTERM, SIGKILL after ``steps.grace``) when
  the job's context ends. A safe stop waits for the next progress line, then stops it. With
  ``steps.memory_limit`` the worker's whole process tree is stopped once its resident memory
  passes it (``run_process(max_rss=...)``), and :class:`WorkerOutOfMemory` says so; the queue
  then retries the job once, in a fresh worker that starts at the first unfinished step.

Step ``k`` (1-based) of every kind produces ``output_for(spec.prompt, k)``, so results compare
across kinds.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, final

import trio

import trio_context as tc

from .model import JobSpec

WORKER: Final = Path(__file__).resolve().with_name("worker.py")


@final
class Steps:
    """What a job's work gets besides its context and spec.

    ``report(output)``: one more step finished (call it in the trio thread; from a worker
    thread, through ``trio.from_thread.run_sync``); ``finished`` counts them. ``stop``: a context
    that is done once a safe cancel asked the work to stop at the next step boundary; poll
    ``stop.done.is_set()`` (safe from any thread). ``grace``: seconds a worker process gets
    between SIGTERM and SIGKILL. ``memory_limit``: bytes a worker process tree may keep resident
    (None: no limit). ``started()``: the work is up (a worker process has started and said so);
    the job's stall clock runs from then on, so start-up time never counts as a stall (trio
    thread).
    """

    def __init__(
        self,
        report: Callable[[str], None],
        stop: tc.Context,
        grace: float,
        *,
        memory_limit: int | None = None,
        started: Callable[[], None] = lambda: None,
    ) -> None:
        self._report = report
        self.stop = stop
        self.grace = grace
        self.memory_limit = memory_limit
        self.started = started
        self.finished = 0

    def report(self, output: str) -> None:
        """One more step finished, with ``output``."""
        self.finished += 1
        self._report(output)


Work = Callable[[tc.Context, JobSpec, Steps], Awaitable[None]]


class StepFailed(RuntimeError):
    """What a broken step raises (``spec.fail_at``), or a worker process that failed."""


class WorkerOutOfMemory(StepFailed):
    """A worker process tree was stopped for passing the memory limit (``cause``: the
    :class:`trio_context.MemoryExceeded` with both figures)."""

    def __init__(self, message: str, cause: tc.MemoryExceeded) -> None:
        super().__init__(message)
        self.cause = cause


def output_for(prompt: str, step: int) -> str:
    """The output of step ``step`` (1-based): a short digest, the same for every kind."""
    digest = hashlib.sha256(f"{prompt}\0{step}".encode()).hexdigest()
    return f"{step}:{digest[:8]}"


# -- an async step loop -----------------------------------------------------------------------


async def async_steps(ctx: tc.Context, spec: JobSpec, steps: Steps) -> None:
    steps.started()
    with ctx.scope():  # ctx ending interrupts the sleep at once and raises ctx's error
        for k in range(1, spec.steps + 1):
            if steps.stop.done.is_set():
                return  # safe cancel: at a step boundary
            if k == spec.hang_at:
                await trio.sleep_forever()  # stuck: no progress, until a context ends it
            if k == spec.fail_at:
                raise StepFailed(f"step {k} failed")
            await trio.sleep(spec.step_seconds)
            steps.report(output_for(spec.prompt, k))


# -- a CPU-bound step loop in a worker thread -------------------------------------------------


async def thread_steps(ctx: tc.Context, spec: JobSpec, steps: Steps) -> None:
    def report(output: str) -> None:  # in the worker thread
        trio.from_thread.run_sync(steps.report, output)

    steps.started()
    await tc.to_thread(ctx, sample, spec, steps.stop, report)


def sample(spec: JobSpec, stop: tc.Context, report: Callable[[str], None]) -> None:
    """The step loop, in a worker thread: burns CPU for ``step_seconds`` per step."""
    ctx = tc.current()  # done when the job's context is, or when the awaiting task is cancelled
    state = spec.prompt.encode()
    for k in range(1, spec.steps + 1):
        if stop.done.is_set():
            return  # safe cancel: at a step boundary
        if k == spec.fail_at:
            raise StepFailed(f"step {k} failed")
        step_ends = time.monotonic() + spec.step_seconds
        while k == spec.hang_at or time.monotonic() < step_ends:
            ctx.check()  # "now", a timeout, a stall: raise here, in the middle of the step
            if k == spec.hang_at:
                time.sleep(0.005)  # stuck, but still polling its context
            for _ in range(200):
                state = hashlib.sha256(state).digest()
        report(output_for(spec.prompt, k))


# -- a worker subprocess ----------------------------------------------------------------------


async def process_steps(ctx: tc.Context, spec: JobSpec, steps: Steps) -> None:
    if steps.stop.done.is_set():
        return
    proc_ctx = tc.with_cancel(ctx)  # ends when ctx does, or at a safe stop's step boundary
    stopped_safely = CancelAtBoundary("stopped at a step boundary")

    def on_line(stream: str, line: str) -> None:  # in the trio thread, for every line
        if stream == "stdout" and line == READY_LINE:
            steps.started()
        elif stream == "stdout" and line.startswith("step "):
            steps.report(line.split()[2])  # "step 3/10 3:1f2e3d4c"
            if steps.stop.done.is_set():
                proc_ctx.cancel(stopped_safely)  # SIGTERM right after a finished step

    # run_process puts proc_ctx's deadline (the job's timeout; an idle deadline is not one) in
    # the worker's environment, for its tc.from_environ().
    try:
        result = await start_worker(proc_ctx, spec, steps, on_line=on_line)
    finally:
        proc_ctx.cancel()
    if result.ok or proc_ctx.cause is stopped_safely:
        return
    if isinstance(result.cause, tc.MemoryExceeded):  # outcome "memory"
        raise WorkerOutOfMemory(
            f"worker stopped after step {steps.finished}: {result.cause}", result.cause
        )
    if result.returncode == DEADLINE_EXIT_CODE and ctx.err is None:
        # The worker saw the shared deadline a moment before this process's clock did.
        with trio.move_on_after(1):
            await ctx.done.wait()
    ctx.check()  # stopped by the job's context: raise its error
    last = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    raise StepFailed(f"worker {result.describe()}: {last[0]}")


async def retrying(
    work: Work, ctx: tc.Context, spec: JobSpec, steps: Steps, *, stopping: Callable[[], bool]
) -> None:
    """Run ``work``; a worker stopped for memory is retried once, in a fresh worker that starts
    at the first unfinished step (Piscina's restart after ``resourceLimits``), unless the job
    is ``stopping()`` (a cancel) or its context ended."""
    try:
        await work(ctx, spec, steps)
    except WorkerOutOfMemory as first:
        if stopping() or ctx.err is not None or steps.stop.done.is_set():
            raise
        try:
            await work(ctx, spec, steps)
        except WorkerOutOfMemory as second:
            message = f"{second.cause}, in the first worker and in a fresh one"
            raise WorkerOutOfMemory(message, second.cause) from first


def worker_command(spec: JobSpec, *, first: int = 1) -> list[str]:
    """The worker's command line, starting at step ``first``. Values go as ``--name=value``: a
    value can never be taken for an option (the spec's checks refuse a prompt that starts with
    ``-`` anyway)."""
    command = [sys.executable, str(WORKER), f"--prompt={spec.prompt}", f"--steps={spec.steps}"]
    command += [f"--step-seconds={spec.step_seconds!r}", f"--first={first}"]
    options = (("--hang-at", spec.hang_at), ("--fail-at", spec.fail_at))
    for option, value in (*options, ("--leak-mib", spec.leak_mib)):
        if value is not None:
            command.append(f"{option}={value}")
    return command


async def start_worker(
    ctx: tc.Context, spec: JobSpec, steps: Steps, *, on_line: Callable[[str, str], None]
) -> tc.ProcessResult:
    """Run one worker process for ``spec`` until it ends or ``ctx`` stops it (SIGTERM to its
    process group, SIGKILL ``steps.grace`` seconds later, or once its tree keeps more than
    ``steps.memory_limit`` bytes resident). A fresh worker after one stopped for memory takes
    over at the first unfinished step. The one place a worker is started."""
    command = worker_command(spec, first=steps.finished + 1)
    return await tc.run_process(
        ctx, command, grace=steps.grace, on_line=on_line, max_rss=steps.memory_limit
    )


class CancelAtBoundary(Exception):
    """The cause ``process_steps`` stops a worker with on a safe cancel."""


DEADLINE_EXIT_CODE: Final = 124  # what worker.py exits with when its deadline passed
READY_LINE: Final = "ready"  # what worker.py prints once it is up (work.py's stall clock)

WORK: Final[dict[str, Work]] = {
    "async": async_steps,
    "thread": thread_steps,
    "process": process_steps,
}
