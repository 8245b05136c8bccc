"""Pipeline files: the TOML format, its validation and the execution plan.

Rules for callers: :func:`load_pipeline` either returns a fully checked :class:`Pipeline` or
raises :class:`PipelineError` listing *every* problem found, each with the line of the pipeline
file it comes from. Nothing here runs anything, so a bad file never starts a step.

The format (see the README of this example for the full reference)::

    [job]
    name = "demo"           # default: the file's name without ".toml"
    timeout = 60            # seconds for the whole job; default: no limit
    env = { GREETING = "hi" }

    [[steps]]
    name = "build"          # required, unique
    run = "make build"      # required, run by `sh -c`
    timeout = 30            # seconds; default: no limit of its own
    idle-timeout = 600      # seconds without output; default: no limit
    memory-limit = "512M"   # resident memory of the step's whole process tree: bytes, or a
                            # number with K, M or G (powers of 1024); default: no limit
    needs = []              # names of steps that must finish first
    env = {}                # merged over the job's env, which is merged over the runner's
    cwd = "."               # relative to the folder of the pipeline file
    continue-on-error = false
    if = "success()"        # or "always()", "failure()", "cancelled()"

TOML itself keeps no line numbers, so :class:`SourceMap` finds the lines in the text: the
``[[steps]]`` headers split the file into one region per step, and a key's line is the first line of
its region that assigns it.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeAlias

import attrs

from .extras import StepExtras
from .source_map import SourceMap

Condition: TypeAlias = Literal["success()", "always()", "failure()", "cancelled()"]
CONDITIONS: tuple[Condition, ...] = ("success()", "always()", "failure()", "cancelled()")
JOB_KEYS = ("name", "timeout", "env")
STEP_KEYS = (
    "name",
    "run",
    "timeout",
    "idle-timeout",
    "memory-limit",
    "needs",
    "env",
    "cwd",
    "continue-on-error",
    "if",
)


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
        out = []
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

    def step(self, name: str) -> Step:
        """Return the step called ``name`` (``KeyError`` if there is none)."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

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

        def depth_of(step: Step) -> int:
            if step.name not in depth:
                depth[step.name] = 1 + max((depth_of(self.step(n)) for n in step.needs), default=-1)
            return depth[step.name]

        stages: list[list[Step]] = []
        for step in self.steps:
            d = depth_of(step)
            while len(stages) <= d:
                stages.append([])
            stages[d].append(step)
        return stages


def load_pipeline(path: Path) -> Pipeline:
    """Read, parse and check the pipeline file at ``path``.

    Raises:
        PipelineError: the file cannot be read, is not valid TOML, or breaks a rule of the format;
            the error lists every problem found, with its line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(path, [Problem(None, f"cannot read the pipeline file: {exc}")]) from exc
    return parse_pipeline(text, path)


def parse_pipeline(text: str, path: Path) -> Pipeline:
    """Parse and check pipeline ``text``; ``path`` names it and anchors relative ``cwd``s.

    Raises:
        PipelineError: as for :func:`load_pipeline`.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(match.group(1)) if match else None
        raise PipelineError(path, [Problem(line, f"not valid TOML: {exc}")]) from exc
    return _Checker(data, SourceMap(text), path).check()


class _Checker:
    """Checks parsed TOML against the format, collecting every problem before giving up."""

    def __init__(self, data: dict[str, Any], source: SourceMap, path: Path) -> None:
        self.data = data
        self.source = source
        self.path = path
        self.base = path.resolve().parent
        self.problems: list[Problem] = []
        self.nodes: list[_Node] = []  # every step with a readable name and needs

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(Problem(line, message))

    def check(self) -> Pipeline:
        for key in self.data:
            if key not in ("job", "steps"):
                self.problem(
                    self.source.top_level_line(key),
                    f"unknown top-level key {key!r}{_did_you_mean(key, ('job', 'steps'))} "
                    "(a pipeline has a [job] table and [[steps]] tables)",
                )
        job = self.check_job(self.data.get("job", {}))
        raw_steps = self.data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            self.problem(None, "no steps: add at least one [[steps]] table with a name and a run")
            raw_steps = []
        steps = [self.check_step(i, raw) for i, raw in enumerate(raw_steps)]
        checked = [s for s in steps if s is not None]
        self.check_graph()
        if self.problems or job is None:
            raise PipelineError(self.path, self.problems)
        return Pipeline(path=self.path, job=job, steps=tuple(checked))

    def check_job(self, raw: object) -> Job | None:
        line = self.source.job_line()
        if not isinstance(raw, dict):
            self.problem(line, "[job] must be a table")
            return None
        ok = True
        for key in raw:
            if key not in JOB_KEYS:
                ok = False
                self.problem(
                    self.source.job_key_line(key) or line,
                    f"[job]: unknown key {key!r}{_did_you_mean(key, JOB_KEYS)}",
                )
        name = raw.get("name", self.path.stem)
        if not isinstance(name, str) or not name.strip():
            ok = False
            self.problem(self.source.job_key_line("name") or line, "[job]: name must be a text")
        where = "[job]"
        timeout = self.check_timeout(raw, where, self.source.job_key_line("timeout") or line)
        env = self.check_env(raw, where, self.source.job_key_line("env") or line)
        if not ok or timeout is False or env is None:
            return None
        return Job(name=str(name), timeout=timeout, env=env)

    def check_step(self, index: int, raw: object) -> Step | None:
        line = self.source.step_line(index, raw)
        if not isinstance(raw, dict):
            self.problem(line, f"step #{index + 1} must be a table")
            return None
        name = raw.get("name")
        where = f"step {name!r}" if isinstance(name, str) and name else f"step #{index + 1}"

        def key_line(key: str) -> int | None:
            return self.source.step_key_line(index, key) or line

        ok = True
        for key in raw:
            if key not in STEP_KEYS:
                ok = False
                self.problem(
                    key_line(key), f"{where}: unknown key {key!r}{_did_you_mean(key, STEP_KEYS)}"
                )
        if not isinstance(name, str) or not name.strip():
            ok = False
            self.problem(key_line("name"), f'{where}: needs a name = "..."')
        run = raw.get("run")
        if run is None:
            ok = False
            self.problem(line, f'{where}: missing run = "..." (the shell command of the step)')
        elif not isinstance(run, str) or not run.strip():
            ok = False
            self.problem(key_line("run"), f"{where}: run must be a non-empty shell command")
        timeout = self.check_timeout(raw, where, key_line("timeout"))
        idle_timeout = self.check_timeout(raw, where, key_line("idle-timeout"), "idle-timeout")
        memory_limit = self.check_memory(raw, where, key_line("memory-limit"))
        env = self.check_env(raw, where, key_line("env"))
        needs = raw.get("needs", [])
        if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
            ok = False
            self.problem(key_line("needs"), f"{where}: needs must be a list of step names")
        elif isinstance(name, str) and name.strip():
            step_line = self.source.step_key_line(index, "name") or line
            self.nodes.append(_Node(index, name, tuple(dict.fromkeys(needs)), step_line))
        cwd_text = raw.get("cwd", ".")
        cwd = self.base
        if not isinstance(cwd_text, str):
            ok = False
            self.problem(key_line("cwd"), f"{where}: cwd must be a text (a folder)")
        else:
            cwd = (self.base / cwd_text).resolve()
            if not cwd.is_dir():
                ok = False
                self.problem(
                    key_line("cwd"),
                    f"{where}: cwd {cwd_text!r} is not a folder (it is relative to the folder "
                    "of the pipeline file)",
                )
        continue_on_error = raw.get("continue-on-error", False)
        if not isinstance(continue_on_error, bool):
            ok = False
            self.problem(
                key_line("continue-on-error"), f"{where}: continue-on-error must be true or false"
            )
        condition = raw.get("if", "success()")
        if condition not in CONDITIONS:
            ok = False
            self.problem(
                key_line("if"),
                f"{where}: if must be one of {', '.join(CONDITIONS)}; got {condition!r}"
                f"{_did_you_mean(str(condition), CONDITIONS)}",
            )
        if not ok or timeout is False or idle_timeout is False or memory_limit is False:
            return None
        if env is None:
            return None
        return Step(
            name=str(name),
            run=str(run),
            timeout=timeout,
            needs=tuple(dict.fromkeys(needs)),
            env=env,
            cwd=cwd,
            cwd_text=str(cwd_text),
            continue_on_error=continue_on_error,
            condition=condition,
            line=self.source.step_key_line(index, "name") or line,
            idle_timeout=idle_timeout,
            memory_limit=memory_limit,
        )

    def check_memory(
        self, raw: dict[str, Any], where: str, line: int | None
    ) -> int | Literal[False] | None:
        """Return the ``memory-limit`` in bytes, ``None`` when absent, ``False`` when bad."""
        if "memory-limit" not in raw:
            return None
        value = raw["memory-limit"]
        size = parse_size(value)
        if size is None:
            self.problem(
                line,
                f"{where}: memory-limit must be a positive number of bytes or a size like "
                f'"512M" or "2G" (K, M, G: powers of 1024), got {value!r}',
            )
            return False
        return size

    def check_timeout(
        self, raw: dict[str, Any], where: str, line: int | None, key: str = "timeout"
    ) -> float | Literal[False] | None:
        """Return the ``key`` limit in seconds, ``None`` when absent, ``False`` when bad."""
        if key not in raw:
            return None
        value = raw[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            self.problem(
                line, f"{where}: {key} must be a positive number of seconds, got {value!r}"
            )
            return False
        return float(value)

    def check_env(self, raw: dict[str, Any], where: str, line: int | None) -> dict[str, str] | None:
        """Return the env as text values (numbers and booleans converted), ``None`` when bad."""
        value = raw.get("env", {})
        if not isinstance(value, dict):
            self.problem(line, f'{where}: env must be a table, like env = {{ NAME = "value" }}')
            return None
        env: dict[str, str] = {}
        for key, item in value.items():
            if isinstance(item, bool):
                env[key] = "true" if item else "false"
            elif isinstance(item, str | int | float):
                env[key] = str(item)
            else:
                self.problem(
                    line, f"{where}: env value {key!r} must be a text, a number or a boolean"
                )
                return None
        return env

    def check_graph(self) -> None:
        """Check that needs name existing steps, once each, and that they form no cycle.

        Runs over every step whose name and needs are readable, even when the step has other
        problems, so that one run reports everything.
        """
        names: dict[str, _Node] = {}
        for node in self.nodes:
            if node.name in names:
                first = names[node.name].line
                self.problem(
                    node.line,
                    f"step {node.name!r}: duplicate name (first defined at line {first})",
                )
            else:
                names[node.name] = node
        bad = False
        for node in self.nodes:
            for need in node.needs:
                if need == node.name:
                    bad = True
                    self.problem(node.line, f"step {node.name!r}: needs itself")
                elif need not in names:
                    bad = True
                    self.problem(
                        self.source.step_key_line(node.index, "needs") or node.line,
                        f"step {node.name!r}: needs unknown step {need!r}"
                        f"{_did_you_mean(need, names)}",
                    )
        if bad or len(names) != len(self.nodes):
            return
        for cycle in _find_cycles({name: node.needs for name, node in names.items()}):
            head = names[cycle[0]]
            self.problem(head.line, f"step {head.name!r}: needs form a cycle: {' -> '.join(cycle)}")


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(value: object) -> int | None:
    """Bytes from an int or a text like ``"512M"`` / ``"1.5G"`` / ``"800KiB"`` (powers of
    1024); None when it is not a positive size."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if not isinstance(value, str) or (match := _SIZE.fullmatch(value.strip())) is None:
        return None
    size = int(float(match[1]) * _UNITS[match[2].upper()])
    return size if size > 0 else None


@attrs.frozen
class _Node:
    """A step as the needs graph sees it: its position, name, needs and line."""

    index: int
    name: str
    needs: tuple[str, ...]
    line: int | None


def _find_cycles(graph: Mapping[str, tuple[str, ...]]) -> list[list[str]]:
    """Return one path per cycle in the needs graph, each starting and ending at the same step."""
    state: dict[str, Literal["visiting", "done"]] = {}
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "visiting"
        path.append(name)
        for need in graph[name]:
            if state.get(need) == "visiting":
                cycles.append([*path[path.index(need) :], need])
            elif need not in state:
                visit(need, path)
        path.pop()
        state[name] = "done"

    for name in graph:
        if name not in state:
            visit(name, [])
    return cycles


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
