"""Pipeline files: the TOML format and its validation (the model is in ``model.py``).

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
from typing import Any, Literal, cast

import attrs

from .model import CONDITIONS, Condition, Job, Pipeline, PipelineError, Problem, Step
from .source_map import SourceMap

__all__ = [  # the model is re-exported: front ends and tests import it from here
    "CONDITIONS",
    "Condition",
    "Job",
    "Pipeline",
    "PipelineError",
    "Problem",
    "Step",
    "load_pipeline",
    "parse_pipeline",
]

JOB_KEYS = ("name", "timeout", "env")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
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
        self.folders: dict[str, tuple[Path, bool]] = {}  # cwd as written: (folder, exists)

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
        steps = [self.check_step(i, raw) for i, raw in enumerate(cast("list[object]", raw_steps))]
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
        raw = cast("dict[str, Any]", raw)
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
        raw = cast("dict[str, Any]", raw)
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
        elif _CONTROL.search(name):
            ok = False
            self.problem(key_line("name"), f"{where}: name must not contain control characters")
        run = raw.get("run")
        if run is None:
            ok = False
            self.problem(line, f'{where}: missing run = "..." (the shell command of the step)')
        elif not isinstance(run, str) or not run.strip():
            ok = False
            self.problem(key_line("run"), f"{where}: run must be a non-empty shell command")
        elif "\0" in run:
            ok = False
            self.problem(
                key_line("run"), f"{where}: run contains a NUL character, which no shell accepts"
            )
        timeout = self.check_timeout(raw, where, key_line("timeout"))
        idle_timeout = self.check_timeout(raw, where, key_line("idle-timeout"), "idle-timeout")
        memory_limit = self.check_memory(raw, where, key_line("memory-limit"))
        env = self.check_env(raw, where, key_line("env"))
        raw_needs: object = raw.get("needs", [])
        needs: list[str] = []
        if not isinstance(raw_needs, list) or not all(
            isinstance(n, str) for n in cast("list[object]", raw_needs)
        ):
            ok = False
            self.problem(key_line("needs"), f"{where}: needs must be a list of step names")
        elif isinstance(name, str) and name.strip():
            needs = cast("list[str]", raw_needs)
            step_line = self.source.step_key_line(index, "name") or line
            self.nodes.append(_Node(index, name, tuple(dict.fromkeys(needs)), step_line))
        cwd_text = raw.get("cwd", ".")
        cwd = self.base
        if not isinstance(cwd_text, str):
            ok = False
            self.problem(key_line("cwd"), f"{where}: cwd must be a text (a folder)")
        elif "\0" in cwd_text:
            ok = False
            self.problem(key_line("cwd"), f"{where}: cwd contains a NUL character")
        else:
            if cwd_text not in self.folders:
                folder = (self.base / cwd_text).resolve()
                self.folders[cwd_text] = (folder, folder.is_dir())
            cwd, is_dir = self.folders[cwd_text]
            if not is_dir:
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
        value = cast("dict[str, object]", value)
        env: dict[str, str] = {}
        ok = True
        for key, item in value.items():
            if not key or "=" in key or "\0" in key:
                ok = False
                self.problem(
                    line,
                    f"{where}: env name {key!r} cannot be used: a variable name must be "
                    "non-empty, without '=' or NUL",
                )
            if isinstance(item, bool):
                env[key] = "true" if item else "false"
            elif isinstance(item, str | int | float):
                env[key] = str(item)
                if "\0" in env[key]:
                    ok = False
                    self.problem(line, f"{where}: env value {key!r} contains a NUL character")
            else:
                ok = False
                self.problem(
                    line, f"{where}: env value {key!r} must be a text, a number or a boolean"
                )
        return env if ok else None

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
        for node in self.nodes:
            for need in node.needs:
                if need == node.name:
                    self.problem(node.line, f"step {node.name!r}: needs itself")
                elif need not in names:
                    self.problem(
                        self.source.step_key_line(node.index, "needs") or node.line,
                        f"step {node.name!r}: needs unknown step {need!r}"
                        f"{_did_you_mean(need, names)}",
                    )
        graph = {
            name: tuple(n for n in node.needs if n != name and n in names)
            for name, node in names.items()
        }
        for cycle in _find_cycles(graph):  # every cycle among the needs that are well formed
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
    """Return one path per cycle in the needs graph, each starting and ending at the same step.

    A depth-first walk with its own stack (a chain of thousands of steps is fine); every edge
    back to a step on the current path closes one cycle.
    """
    state: dict[str, Literal["visiting", "done"]] = {}
    cycles: list[list[str]] = []
    for root in graph:
        if root in state:
            continue
        path: list[str] = [root]
        on_path = {root: 0}
        todo = [iter(graph[root])]
        state[root] = "visiting"
        while todo:
            need = next(todo[-1], None)
            if need is None:
                todo.pop()
                done = path.pop()
                del on_path[done]
                state[done] = "done"
            elif need in on_path:
                cycles.append([*path[on_path[need] :], need])
            elif need not in state:
                state[need] = "visiting"
                on_path[need] = len(path)
                path.append(need)
                todo.append(iter(graph[need]))
    return cycles


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
