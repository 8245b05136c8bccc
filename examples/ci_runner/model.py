"""The pipeline model every front end compiles to: the job, its steps, and what can be wrong.

Rules for callers: a :class:`Pipeline` is checked, frozen data (the TOML format in
``pipeline.py``, GitLab CI files in ``gitlab/``); the executor only reads it. A front end that
finds problems raises :class:`PipelineError` with every :class:`Problem` and its line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal, TypeAlias

import attrs

from .extras import StepExtras

Condition: TypeAlias = Literal["success()", "always()", "failure()", "cancelled()"]
CONDITIONS: tuple[Condition, ...] = ("success()", "always()", "failure()", "cancelled()")


@attrs.frozen
class Problem:
    """One thing wrong with a pipeline file; ``line`` is 1-based, ``None`` when unknown."""

    line: int | None
    message: str


class PipelineError(Exception):
    """The pipeline file cannot be run; ``problems`` says why, each with its line."""

    def __init__(self, path: Path, problems: Iterable[Problem]) -> None:
        self.path = path
        self.problems = sorted(problems, key=lambda p: (p.line or 0, p.message))
        super().__init__(self.format())

    def format(self) -> str:
        """Return one ``file:line: message`` line per problem (compiler style)."""
        out: list[str] = []
        for problem in self.problems:
            where = f"{self.path}:{problem.line}" if problem.line else f"{self.path}"
            out.append(f"{where}: {problem.message}")
        return "\n".join(out)


@attrs.frozen
class Job:
    """The ``[job]`` table: a name, an optional overall timeout and an environment."""

    name: str
    timeout: float | None
    env: Mapping[str, str]


@attrs.frozen
class Step:
    """One ``[[steps]]`` table, checked; ``cwd`` is absolute, ``cwd_text`` as written.

    ``idle_timeout`` is the ``idle-timeout`` key: seconds without output before the step is
    stopped, ``None`` for no limit. ``memory_limit`` is the ``memory-limit`` key in bytes: the
    step's process tree is stopped once its resident memory passes it. ``extras`` is set for a
    job of a GitLab CI file.
    """

    name: str
    run: str
    timeout: float | None
    needs: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    cwd_text: str
    continue_on_error: bool
    condition: Condition
    line: int | None
    idle_timeout: float | None = None
    extras: StepExtras | None = None
    memory_limit: int | None = None

    @property
    def is_cleanup(self) -> bool:
        """Steps with an ``if`` other than ``success()`` run under a cleanup context (TOML only:
        a GitLab job is cancelled like any other; its ``after_script`` is its cleanup)."""
        return self.condition != "success()" and self.extras is None

    @property
    def waits_for(self) -> tuple[str, ...]:
        """The steps that must finish before this one starts: its needs, then its stage order."""
        return self.needs if self.extras is None else (*self.needs, *self.extras.after)


@attrs.frozen
class Pipeline:
    """A checked pipeline: the job, its steps in file order, and the file they came from."""

    path: Path
    job: Job
    steps: tuple[Step, ...]

    _by_name: dict[str, Step] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {step.name: step for step in self.steps})

    def step(self, name: str) -> Step:
        """Return the step called ``name`` (``KeyError`` if there is none)."""
        return self._by_name[name]

    def upstream(self, name: str) -> list[str]:
        """Return every step ``name`` needs, directly or not, in file order."""
        seen: set[str] = set()
        todo = list(self.step(name).waits_for)
        while todo:
            need = todo.pop()
            if need not in seen:
                seen.add(need)
                todo.extend(self.step(need).waits_for)
        return [s.name for s in self.steps if s.name in seen]

    def stages(self) -> list[list[Step]]:
        """Group the steps by depth in the needs graph: stage n needs only stages before it.

        This is for showing the plan; the runner itself starts each step as soon as its own needs
        are finished, without waiting for the rest of the stage before it.
        """
        depth: dict[str, int] = {}
        for step in self.steps:  # with its own stack: a chain may be longer than Python's
            todo = [step]
            while todo:
                current = todo[-1]
                if current.name in depth:
                    todo.pop()
                    continue
                missing = [self.step(n) for n in current.needs if n not in depth]
                if missing:
                    todo.extend(missing)
                else:
                    depth[current.name] = 1 + max((depth[n] for n in current.needs), default=-1)
                    todo.pop()

        stages: list[list[Step]] = []
        for step in self.steps:
            d = depth[step.name]
            while len(stages) <= d:
                stages.append([])
            stages[d].append(step)
        return stages
