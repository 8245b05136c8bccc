"""What the operating system would refuse when a step starts, checked before anything runs.

Rules for callers: call :func:`unstartable` on every pipeline, whatever its front end (TOML or
GitLab CI), before running it; a non-empty list means the file is bad (exit 2). A step cannot
start when its environment has a name that is empty or holds ``=`` or a NUL, or a value that holds
a NUL, or when its command or folder holds a NUL (``execve`` takes C strings). A step's name goes
into its environment (``CI_RUNNER_STEP``) and onto the terminal, so it may hold no control
character. The TOML checks report these with their exact line already; this is the net under
every front end. Pure, idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from .pipeline import Pipeline, Problem, Step

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def unstartable(pipeline: Pipeline) -> list[Problem]:
    """Return one problem per thing the OS would refuse at a step's start (see the module)."""
    problems = [Problem(None, f"[job]: {text}") for text in _env_problems(pipeline.job.env)]
    for step in pipeline.steps:
        problems.extend(Problem(step.line, f"step {step.name!r}: {t}") for t in _step(step))
    return problems


def _step(step: Step) -> Iterator[str]:
    if _CONTROL.search(step.name):
        yield "name must not contain control characters"
    scripts = [step.run]
    if step.extras is not None:
        scripts.extend((*step.extras.commands, *step.extras.after_script))
    if any("\0" in script for script in scripts):
        yield "its commands contain a NUL character, which no shell accepts"
    if "\0" in str(step.cwd):
        yield "cwd contains a NUL character"
    yield from _env_problems(step.env)


def _env_problems(env: Mapping[str, str]) -> Iterator[str]:
    for name, value in env.items():
        if not name or "=" in name or "\0" in name:
            yield (
                f"env name {name!r} cannot be used: a variable name must be non-empty, "
                "without '=' or NUL"
            )
        if "\0" in value:
            yield f"env value {name!r} contains a NUL character"
