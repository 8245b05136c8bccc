"""How steps and jobs end, in words a user can read: results, statuses and causes.

Rules for callers: the executor (``runner.py``) builds one :class:`StepResult` per step and one
:class:`JobResult` per run; the displays and the reports only read them. A cause says what
stopped a step in the pipeline's terms ("step timeout (3 s, set at ci.toml:12)", "SIGINT
(Ctrl-C)") and when, in seconds since the step started; never a trio-internal file or a clock
reading.
"""

from __future__ import annotations

import math
import signal
from typing import Literal, Protocol, TypeAlias

import attrs

import trio_context as tc

from .pipeline import Step

StepStatus: TypeAlias = Literal["passed", "failed", "timed_out", "cancelled", "skipped"]
JobStatus: TypeAlias = Literal["passed", "failed", "cancelled"]


class JobTimedOut(TimeoutError):
    """The cause of a job's deadline: the job's own ``timeout`` passed."""


class StepTimedOut(TimeoutError):
    """The cause of a step's deadline: the step's own ``timeout`` passed."""


@attrs.define
class StepResult:
    """How one step ended.

    ``cause`` is a short reason for the summary ("exit code 2", "step timeout (3 s)"); ``detail``
    the readable long one for ``--json`` (what stopped it, where that is set in the pipeline, and
    how many seconds after the step started). ``continue_on_error`` is whether a failure is
    allowed (``continue-on-error``, GitLab's ``allow_failure``); ``stage`` a GitLab job's stage.
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
        return self.status == "passed" or self.allowed_failure

    @property
    def failed(self) -> bool:
        """Whether the step counts as a failure (``failure()`` steps run, the job fails)."""
        return self.status in ("failed", "timed_out") and not self.continue_on_error

    @property
    def allowed_failure(self) -> bool:
        """Whether the step failed or timed out but ``continue-on-error`` lets the job pass."""
        return self.continue_on_error and self.status in ("failed", "timed_out")


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
    def step_stopping(self, name: str, how: str) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...
    def job_stopping(self, message: str) -> None: ...
    def context_tree(self, text: str) -> None: ...


def short_cause(cause: BaseException | None) -> str:
    """Return a few words for a context's cause: ``SIGINT``, ``job timeout (20 s)``, ..."""
    signum = getattr(cause, "signum", None)
    if isinstance(signum, int):
        return signal_name(signum)
    if cause is None:
        return "cancelled"
    return str(cause) or type(cause).__name__


def signal_words(cause: BaseException | None) -> str:
    """Return who stopped the job, for people: ``SIGINT (Ctrl-C)``, ``SIGHUP (terminal
    closed)``, ``second SIGINT (forced stop)``; the cause's own words otherwise."""
    signum = getattr(cause, "signum", None)
    if not isinstance(signum, int):
        return short_cause(cause)
    name = signal_name(signum)
    if getattr(cause, "forced", False):
        return f"second {name} (forced stop)"
    why = {"SIGINT": "Ctrl-C", "SIGHUP": "terminal closed", "SIGTERM": "asked to stop"}.get(name)
    return f"{name} ({why})" if why else name


def signal_name(signum: int) -> str:
    """Return ``SIGINT`` for 2 (a negative number means the same signal)."""
    try:
        return signal.Signals(abs(signum)).name
    except ValueError:
        return f"signal {signum}"


def seconds(value: float | None) -> str:
    """Return ``3 s``, ``0.5 s`` or ``no limit``."""
    if value is None or math.isinf(value):
        return "no limit"
    return f"{value:g} s"


def past(status: str) -> str:
    """Return the status as a verb: ``failed``, ``timed out``, ``was skipped``."""
    return {
        "failed": "failed",
        "timed_out": "timed out",
        "cancelled": "was cancelled",
        "skipped": "was skipped",
    }.get(status, status)


def is_forced(ctx: tc.Context) -> bool:
    """Whether ``ctx`` sits under a forced stop (the hard twin of the signal context is done)."""
    hard = tc.hard_context(ctx)
    return hard is not None and hard.done.is_set()
