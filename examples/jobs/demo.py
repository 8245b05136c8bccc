"""The terminal demo: seven jobs of all three kinds through a queue with a limit of 2.

What happens, and the final states it prints (the same on every run):

- job-1 ``async``: runs to the end, ``done``.
- job-2 ``thread``: once it reports step 3, a *safe* cancel; it finishes the step it is in and
  stops at the boundary, ``cancelled`` with its partial result.
- job-3 ``process``: a worker subprocess, ``done``.
- job-4 ``async``: cancelled while still queued, so it never starts: ``cancelled``.
- job-5 ``process``: once it reports step 2, a cancel *now*: its worker gets SIGTERM at once.
- job-6 ``async``: hangs at step 3 and makes no progress for its ``stall_timeout``: ``failed``,
  "stalled".
- job-7 ``thread``: slower than its ``timeout``: ``failed``, "timed out".
- Then job-1's spec again: ``done`` at once, from the result cache (job-8).

The cancels are driven by the jobs' own progress events, not by timers, so the final states do
not depend on the machine's speed (the step at which job-2 and job-5 stop may differ by one).
On a terminal the jobs show as live progress bars; otherwise every change is one plain line.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import TextIO

from .jobqueue import JobQueue
from .model import JobInfo, JobSpec, QueueClosed

DEMO_JOBS: tuple[tuple[JobSpec, dict[str, float]], ...] = (
    (JobSpec(kind="async", prompt="a lighthouse at dusk", steps=8, step_seconds=0.15), {}),
    (JobSpec(kind="thread", prompt="a mountain lake", steps=12, step_seconds=0.1), {}),
    (JobSpec(kind="process", prompt="a river delta", steps=6, step_seconds=0.15), {}),
    (JobSpec(kind="async", prompt="a pine forest", steps=8, step_seconds=0.1), {}),
    (JobSpec(kind="process", prompt="a busy harbour", steps=20, step_seconds=0.1), {}),
    (
        JobSpec(kind="async", prompt="a stuck sampler", steps=8, step_seconds=0.1, hang_at=3),
        {"stall_timeout": 0.5},
    ),
    (JobSpec(kind="thread", prompt="a slow desert", steps=10, step_seconds=0.1), {"timeout": 0.35}),
)
SAFE_CANCEL_AT = ("job-2", 3)  # (job, step): cancel it safely once it reports that step
NOW_CANCEL_AT = ("job-5", 2)
QUEUED_CANCEL = "job-4"


async def run_demo(queue: JobQueue, out: TextIO = sys.stdout) -> list[JobInfo]:
    """Submit the demo jobs, show them until they are final, return the final snapshots."""
    view = LiveView(out) if out.isatty() else PlainView(out)
    ids = [
        queue.submit(
            spec, timeout=options.get("timeout"), stall_timeout=options.get("stall_timeout")
        )
        for spec, options in DEMO_JOBS
    ]
    with queue.subscribe() as events:
        queue.cancel(QUEUED_CANCEL)  # still queued (limit 2): it never starts
        async for event in events:
            job = event.job
            view.show(job)
            if reached(job, SAFE_CANCEL_AT):
                queue.cancel(job.id, "safe")
            if reached(job, NOW_CANCEL_AT):
                queue.cancel(job.id, "now")
            if all(queue.get(job_id).final for job_id in ids):
                break
        try:
            ids.append(queue.submit(DEMO_JOBS[0][0]))  # the same spec as job-1: from the cache
        except QueueClosed:
            view.note("the queue was closed (Ctrl-C): no cached resubmission")
        else:
            view.show(await queue.wait(ids[-1]))
    view.close()
    return [queue.get(job_id) for job_id in ids]


def reached(job: JobInfo, where: tuple[str, int]) -> bool:
    """Is ``job`` the job of ``where``, running, at or past its step? (At *or past*: a reader
    that falls behind may not see every step, see events.py.)"""
    job_id, step = where
    return job.id == job_id and job.state == "running" and job.step >= step


def format_final(jobs: Sequence[JobInfo]) -> str:
    lines = ["final states:"]
    for job in jobs:
        progress = f"{job.step}/{job.steps}"
        lines.append(
            f"  {job.id:<6} {job.spec.kind:<8} {job.state:<10} {progress:>6} "
            f"{job.percent:>4}%  {job.reason or ''}".rstrip()
        )
    return "\n".join(lines)


def bar(job: JobInfo, width: int = 24) -> str:
    filled = job.step * width // job.steps
    return "#" * filled + "-" * (width - filled)


class PlainView:
    """Not a terminal: one line per change (the reader may be a log file or a test)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def show(self, job: JobInfo) -> None:
        detail = f" ({job.reason})" if job.reason else ""
        print(
            f"{job.id} {job.spec.kind:<7} {job.state:<10} [{bar(job)}] {job.percent:3}% "
            f"{job.step}/{job.steps}{detail}",
            file=self.out,
            flush=True,
        )

    def note(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def close(self) -> None:
        pass


class LiveView:
    """A terminal: one live line per job, redrawn in place."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.jobs: dict[str, JobInfo] = {}
        self.drawn = 0  # lines of the block on screen

    def show(self, job: JobInfo) -> None:
        self.jobs[job.id] = job
        lines = [self.line(j) for j in self.jobs.values()]
        up = f"\x1b[{self.drawn}F" if self.drawn else ""
        self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self.drawn = len(lines)

    def line(self, job: JobInfo) -> str:
        reason = f"  {job.reason}" if job.reason else ""
        plain = (
            f"{job.id:<6} {job.spec.kind:<7} {job.state:<10} [{bar(job)}] {job.percent:3}% "
            f"{job.step:>2}/{job.steps:<2}{reason}"
        )
        plain = plain[: shutil.get_terminal_size().columns - 1]  # a wrapped line breaks redraws
        colour = {
            "done": "32",
            "failed": "31",
            "cancelled": "35",
            "cancelling": "33",
            "running": "36",
        }.get(job.state, "2")
        start = len(f"{job.id:<6} {job.spec.kind:<7} ")
        end = start + len(job.state)
        return f"{plain[:start]}\x1b[{colour}m{plain[start:end]}\x1b[0m{plain[end:]}"

    def note(self, text: str) -> None:
        self.out.write(text + "\n")
        self.drawn = 0

    def close(self) -> None:
        self.out.flush()
