"""The engine's GitLab CI semantics: what a step with :class:`StepExtras` adds to a TOML step.

Rules for callers: :class:`StepExtras` is frozen data made by the GitLab front end; the functions
are pure, called by ``runner.py`` in the trio thread, and none raises.

- :func:`decide`: run the job, or how it ends without running (GitLab's rules, not GitHub's: a
  cancelled pipeline marks every job not started ``cancelled``, ``when: always`` ones too; a job
  of a later stage ignores skipped jobs before it but not failed ones; a skipped ``needs`` skips
  the job unless it is optional).
- :func:`allowed`: whether a failure counts as allowed (``allow_failure``, ``exit_codes``).
- :func:`should_retry`: whether ``retry`` runs the job again after this result.
- :func:`read_dotenv`: the variables of a ``reports: dotenv`` file.
- :func:`shell_script`: the text ``sh -c`` runs for a list of commands.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import attrs

if TYPE_CHECKING:
    from .pipeline import Step
    from .runner import StepResult


@attrs.frozen
class StepExtras:
    """What a GitLab CI job adds to a step (``Step.extras``, ``None`` for TOML steps).

    ``after``: jobs of earlier stages; the step waits for them and a failure among them (or
    before them) skips an ``on_success`` job, but a skipped one does not. ``needs`` of the step are
    GitLab's ``needs`` (a skipped need skips the job unless it is in ``optional``). ``when`` is
    GitLab's; ``skip`` a reason never to run (``when: manual``). ``commands`` are
    ``before_script`` then ``script``, run in one shell that stops at the first failing one (the
    step's ``run`` shows them). ``after_script`` runs in its own
    shell under ``tc.cleanup`` with ``after_script_timeout``, whatever the job's end.
    ``allow_exit_codes``: exit codes that count as an allowed failure. ``retry`` attempts more
    when the failure is one of ``retry_when``. ``dotenv``: files the job writes (read when it
    passed); ``dotenv_from``: the jobs whose dotenv variables it gets.
    """

    stage: str
    when: Literal["on_success", "on_failure", "always", "manual"] = "on_success"
    after: tuple[str, ...] = ()
    optional: frozenset[str] = frozenset()
    skip: str | None = None
    commands: tuple[str, ...] = ()
    after_script: tuple[str, ...] = ()
    after_script_timeout: float = 300.0
    allow_exit_codes: frozenset[int] = frozenset()
    retry: int = 0
    retry_when: frozenset[str] = frozenset({"always"})
    retry_exit_codes: frozenset[int] = frozenset()
    dotenv: tuple[str, ...] = ()
    dotenv_from: tuple[str, ...] = ()


JobState = Literal["running", "timed_out", "cancelled"]
Decision = tuple[Literal["skipped", "cancelled"], str]
JOB_STATUS = {
    "passed": "success",
    "failed": "failed",
    "timed_out": "timedout",
    "cancelled": "canceled",
}
"""``CI_JOB_STATUS`` in ``after_script`` for each way a job ends (GitLab runner's words)."""


def decide(
    step: Step,
    extras: StepExtras,
    state: JobState,
    results: Mapping[str, StepResult],
    upstream: list[str],
) -> Decision | None:
    """Return how ``step`` ends without running (status and cause), or ``None`` to run it.

    ``upstream`` names every job before it (needs and earlier stages, directly or not).
    """
    if state != "running":
        return ("cancelled", "pipeline cancelled before it started")
    if extras.skip is not None:
        return ("skipped", extras.skip)
    for need in step.needs:
        result = results[need]
        if result.status in ("skipped", "cancelled") and need not in extras.optional:
            return ("skipped", f"needs {need!r}, which was {result.status}")
    failed = [name for name in upstream if results[name].failed]
    if extras.when == "always":
        return None
    if extras.when == "on_failure":
        if failed:
            return None
        return ("skipped", "when: on_failure, and nothing before it failed")
    if failed:
        return ("skipped", f"{failed[0]!r} failed before it")
    return None


def allowed(step: Step, result: StepResult) -> bool:
    """Whether ``result`` is a failure that ``allow_failure`` (or its ``exit_codes``) allows."""
    if step.continue_on_error:
        return True
    extras = step.extras
    return (
        extras is not None
        and result.status == "failed"
        and result.exit_code is not None
        and result.exit_code in extras.allow_exit_codes
    )


def should_retry(extras: StepExtras, result: StepResult, attempt: int) -> bool:
    """Whether a job that ended with ``result`` runs again; ``attempt`` is 0 after its first run."""
    if attempt >= extras.retry or result.status not in ("failed", "timed_out"):
        return False
    if extras.retry_exit_codes and result.exit_code in extras.retry_exit_codes:
        return True
    when = extras.retry_when
    if "always" in when:
        return True
    if result.status == "timed_out":
        return "job_execution_timeout" in when
    return "script_failure" in when


def read_dotenv(path: Path) -> dict[str, str]:
    """Return the ``NAME=value`` lines of a dotenv report (blank lines and ``#`` comments skipped).

    A missing or unreadable file gives no variables (GitLab fails the upload, not the job).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    variables: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        name = name.strip()
        if name.startswith("export "):
            name = name[len("export ") :].strip()
        if name.isidentifier():
            variables[name] = value
    return variables


def shell_script(commands: Sequence[str]) -> str:
    """Return one ``sh`` script that shows each command (``$ make``) and runs it, stopping at the
    first one that fails with its exit code (``set -e``), as GitLab's shell executor does."""
    lines = ["set -e"]
    for command in commands:
        lines.append(f"printf '%s\\n' {shlex.quote('$ ' + command.strip())}")
        lines.append(command)
    return "\n".join(lines) + "\n"
