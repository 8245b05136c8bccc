"""``--dry-run`` for a GitLab CI file: the stages and their jobs, what rules left out, and every
key that was accepted but is ignored here (it needs a GitLab server or containers)."""

from __future__ import annotations

from .compile import Compiled


def format_gitlab_plan(compiled: Compiled) -> str:
    """Return the plan: one block per stage, then left-out jobs and ignored keys."""
    pipeline = compiled.pipeline
    lines = [f"pipeline {pipeline.job.name} ({pipeline.path}): {len(pipeline.steps)} jobs"]
    if compiled.stopped:
        lines.append(f"workflow: nothing would run: {compiled.stopped}")
    for stage in compiled.stages:
        steps = [s for s in pipeline.steps if s.extras is not None and s.extras.stage == stage]
        if not steps:
            continue
        lines.append(f"stage {stage}:")
        for step in steps:
            extras = step.extras
            assert extras is not None
            details = [f"when {extras.when}"]
            if step.needs or not extras.after:
                details.append("needs " + (", ".join(step.needs) or "nothing (starts at once)"))
            if step.continue_on_error:
                details.append("allow_failure")
            elif extras.allow_exit_codes:
                codes = ", ".join(str(c) for c in sorted(extras.allow_exit_codes))
                details.append(f"allow_failure exit_codes {codes}")
            if step.timeout is not None:
                details.append(f"timeout {step.timeout:g}s")
            if extras.retry:
                details.append(f"retry {extras.retry}")
            if extras.dotenv:
                details.append("dotenv " + ", ".join(extras.dotenv))
            lines.append(f"  {step.name}  ({'; '.join(details)})")
            for command in extras.commands:
                lines.append("    $ " + command.strip().replace("\n", "\n      "))
            for command in extras.after_script:
                lines.append("    after_script $ " + command.strip().replace("\n", "\n      "))
    for name, why in compiled.left_out:
        lines.append(f"left out: {name}: {why}")
    if compiled.ignored:
        lines.append(
            "ignored here (accepted, not applied: they need a GitLab server or containers):"
        )
        lines.extend(f"  {where}: {what}" for where, what in compiled.ignored)
    lines.append("(dry run: nothing was run)")
    return "\n".join(lines)
