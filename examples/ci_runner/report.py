"""Reports that do not change while the job runs: the plan (``--dry-run``), the final summary table
and the ``--json`` result.

The JSON result (the schema of the project's design notes)::

    {"status": "passed" | "failed" | "cancelled",
     "duration": seconds,
     "steps": [{"name": ..., "status": "passed" | "failed" | "timed_out" | "cancelled" | "skipped",
                "exit_code": int | null, "duration": seconds, "cause": text | null,
                "allowed_failure": bool, "stage": text (GitLab CI files only)}]}

``exit_code`` is null when the step's shell never exited on its own; a negative number ``-N`` means
it was killed by signal N (Python's convention). ``cause`` is null for a passed step, the reason for
a skipped or failed one, and when a timeout or a cancel stopped the step, what stopped it, where
that is set in the pipeline and how many seconds after the step started. Steps that never ran
have duration 0. ``allowed_failure`` is true for a step that failed or timed out but counts as
passed (``continue-on-error``, GitLab's ``allow_failure``).
"""

from __future__ import annotations

from typing import Any

from .display import describe
from .pipeline import Pipeline
from .results import JobResult


def format_plan(pipeline: Pipeline) -> str:
    """Return the ``--dry-run`` text: the job, then the steps stage by stage."""
    job = pipeline.job
    timeout = f"timeout {job.timeout:g}s" if job.timeout is not None else "no timeout"
    lines = [f"job {job.name} ({pipeline.path}): {len(pipeline.steps)} steps, {timeout}"]
    if job.env:
        lines.append("  env: " + ", ".join(f"{k}={v}" for k, v in job.env.items()))
    for number, stage in enumerate(pipeline.stages(), start=1):
        together = " (in parallel)" if len(stage) > 1 else ""
        lines.append(f"stage {number}{together}:")
        for step in stage:
            lines.append(f"  {step.name}")
            lines.append(f"    run: {step.run.strip()}".replace("\n", "\n         "))
            details = [f"if {step.condition}"]
            if step.needs:
                details.append("needs " + ", ".join(step.needs))
            if step.timeout is not None:
                details.append(f"timeout {step.timeout:g}s")
            if step.idle_timeout is not None:
                details.append(f"idle-timeout {step.idle_timeout:g}s")
            if step.is_cleanup:
                details.append("runs under a cleanup context")
            if step.continue_on_error:
                details.append("continue-on-error")
            if step.cwd_text != ".":
                details.append(f"cwd {step.cwd_text}")
            if step.env:
                details.append("env " + ", ".join(f"{k}={v}" for k, v in step.env.items()))
            lines.append("    " + "; ".join(details))
    lines.append("(dry run: nothing was run)")
    return "\n".join(lines)


def format_summary(result: JobResult) -> str:
    """Return the final table: one row per step with its status, exit code, duration and cause."""
    header = ("step", "status", "exit", "duration", "cause")
    rows: list[tuple[str, ...]] = [header]
    for step in result.steps:
        rows.append(
            (
                step.name,
                describe(step),
                "" if step.exit_code is None else str(step.exit_code),
                "" if step.status == "skipped" else f"{step.duration:.1f}s",
                step.cause or "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines: list[str] = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths) + "  -----")
    outcome = result.status if result.reason is None else f"{result.status} ({result.reason})"
    lines.append(f"job {result.name}: {outcome} in {result.duration:.1f}s")
    return "\n".join(lines)


def to_json(result: JobResult) -> dict[str, Any]:
    """Return the ``--json`` document of ``result`` (see the module docstring)."""
    return {
        "status": result.status,
        "duration": round(result.duration, 3),
        "steps": [
            {
                "name": step.name,
                "status": step.status,
                "exit_code": step.exit_code,
                "duration": round(step.duration, 3),
                "cause": step.detail or step.cause,
                "allowed_failure": step.allowed_failure,
                **({} if step.stage is None else {"stage": step.stage}),
            }
            for step in result.steps
        ],
    }
