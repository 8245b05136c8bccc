"""From ``.gitlab-ci.yml`` files to one resolved configuration (``include``, ``extends``,
``!reference``).

Rules for callers: :func:`load_config` reads the main file and every ``include: local`` file, and
returns a :class:`Config` whose jobs have their ``extends`` merged in and every ``!reference``
replaced; every problem found is added to the ``problems`` list it is given (with its file and
line), and parts that cannot be resolved are left out, so that one run lists everything.

Merging follows GitLab: included files first, in order, then the including file on top; hashes are
merged deeply, anything else (arrays too) is replaced. ``extends`` works the same way, parents in
order, the job itself last.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import attrs

from .yaml_source import Map, Reference, Where, YamlError, as_list, load_yaml, texts

GLOBAL_KEYS = ("default", "include", "stages", "variables", "workflow")
DEPRECATED_GLOBALS = ("image", "services", "cache", "before_script", "after_script")
"""Top-level keys that GitLab still reads as if they were under ``default:``."""
MAX_DEPTH = 11


@attrs.frozen
class Problem:
    """One thing wrong with a pipeline: where (``None``: no particular place) and what."""

    where: Where | None
    message: str


@attrs.define
class Config:
    """The merged top level, the ``default:`` section and every job (hidden ones too)."""

    file: Path
    project_dir: Path
    top: Map
    default: Map
    jobs: dict[str, Map]
    files: list[Path]
    ignored: list[tuple[Where, str]] = attrs.field(factory=list[tuple[Where, str]])


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest choice, or an empty text."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def merge(base: Map, over: Map) -> Map:
    """Return ``base`` with ``over`` merged in deeply (hashes merged, anything else replaced)."""
    result = Map(over.where, base)
    result.key_at.update(base.key_at)
    for key, value in over.items():
        old = result.get(key)
        result[key] = (
            merge(old, value) if isinstance(old, Map) and isinstance(value, Map) else value
        )
        result.key_at[key] = over.at(key)
    return result


def load_config(file: Path, problems: list[Problem]) -> Config | None:
    """Read ``file`` and its includes and resolve ``extends`` and ``!reference``.

    Returns ``None`` when the main file cannot be read at all (the reason is in ``problems``).
    """
    project_dir = file.resolve().parent
    files: list[Path] = []
    top = _read(file, problems, files)
    if top is None:
        return None
    ignored: list[tuple[Where, str]] = []
    top = _with_includes(top, project_dir, problems, files, ignored, depth=0)
    default = top.get("default", Map(top.at("default")))
    if not isinstance(default, Map):
        problems.append(Problem(top.at("default"), "default: must be a mapping of job keys"))
        default = Map(top.at("default"))
    for key in DEPRECATED_GLOBALS:  # `before_script:` at the top is `default: before_script:`
        if key in top and key not in default:
            default = merge(Map(top.at(key), {key: top[key]}), default)
            default.key_at[key] = top.at(key)
    raw_jobs: dict[str, Map] = {}
    for name, value in top.items():
        if name in GLOBAL_KEYS or name in DEPRECATED_GLOBALS:
            continue
        if isinstance(value, Map):
            value.where = top.at(name)  # a job is where its name is written
            raw_jobs[name] = value
        elif value is None:
            problems.append(Problem(top.at(name), f"job {name!r} is empty (it needs a script:)"))
        elif not name.startswith("."):
            problems.append(
                Problem(
                    top.at(name),
                    f"unknown top-level key {name!r}{did_you_mean(name, GLOBAL_KEYS)} (a job is "
                    "a mapping with a script)",
                )
            )
    jobs = _resolve_extends(raw_jobs, problems)
    resolver = _References(
        {**{k: v for k, v in top.items() if isinstance(v, Map)}, **jobs}, problems
    )
    jobs = {name: resolver.resolve(job) for name, job in jobs.items()}
    default = resolver.resolve(default)
    for key in ("variables", "workflow", "stages"):
        if key in top:
            top[key] = resolver.resolve(top[key])
    return Config(file, project_dir, top, default, jobs, files, ignored)


def _read(
    file: Path, problems: list[Problem], files: list[Path], where: Where | None = None
) -> Map | None:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(where, f"cannot read {file}: {exc}"))
        return None
    files.append(file)
    try:
        data = load_yaml(text, file)
    except YamlError as exc:
        problems.append(Problem(exc.where, exc.message))
        return None
    if data is None:
        return Map(Where(file, 1))
    if not isinstance(data, Map):
        problems.append(
            Problem(Where(file, 1), "a pipeline file must be a mapping of jobs and keys")
        )
        return None
    return data


def _with_includes(
    top: Map,
    project_dir: Path,
    problems: list[Problem],
    files: list[Path],
    ignored: list[tuple[Where, str]],
    depth: int,
) -> Map:
    """Return ``top`` with its ``include:`` files merged under it (recursively)."""
    if "include" not in top:
        return top
    where = top.at("include")
    entries = top.pop("include")
    if depth > 100:
        problems.append(Problem(where, "include: nested more than 100 levels"))
        return top
    result = Map(top.where)
    listed = as_list(entries)
    for entry in listed if listed is not None else [entries]:
        for path in _include_paths(entry, where, project_dir, problems, ignored):
            if path in files:
                continue
            included = _read(path, problems, files, where)
            if included is not None:
                result = merge(
                    result,
                    _with_includes(included, project_dir, problems, files, ignored, depth + 1),
                )
    return merge(result, top)


def _include_paths(
    entry: Any,
    where: Where,
    project_dir: Path,
    problems: list[Problem],
    ignored: list[tuple[Where, str]],
) -> list[Path]:
    """Return the files one ``include:`` entry names (``rules:`` and ``inputs:`` of an entry are
    not applied here: the file is always included, and the keys are listed as ignored)."""
    if isinstance(entry, Map):
        kinds = [
            key for key in entry if key in ("local", "remote", "project", "template", "component")
        ]
        if kinds != ["local"]:
            kind = kinds[0] if kinds else next(iter(entry), "?")
            problems.append(
                Problem(
                    entry.at(kind),
                    f"include: {kind!r} needs a GitLab server; only include: local (a file of "
                    "this project) runs here",
                )
            )
            return []
        for key in entry:
            if key in ("rules", "inputs"):
                ignored.append((entry.at(key), f"include: {key} (the file is always included)"))
            elif key != "local":
                problems.append(
                    Problem(
                        entry.at(key),
                        f"include: unknown key {key!r}"
                        + did_you_mean(key, ("local", "rules", "inputs")),
                    )
                )
        where, entry = entry.at("local"), entry["local"]
    if not isinstance(entry, str) or not entry.strip():
        problems.append(Problem(where, f"include: expected a file path, got {entry!r}"))
        return []
    if "://" in entry:
        problems.append(
            Problem(
                where,
                f"include: remote file {entry!r} needs the network; only local files run here",
            )
        )
        return []
    pattern = entry.strip().lstrip("/")
    if any(ch in pattern for ch in "*?["):
        paths = sorted(p for p in project_dir.glob(pattern) if p.is_file())
        if not paths:
            problems.append(Problem(where, f"include: no file matches {entry!r}"))
        return paths
    path = project_dir / pattern
    if not path.is_file():
        problems.append(Problem(where, f"include: no file {entry!r} in {project_dir.name}/"))
        return []
    return [path]


def _resolve_extends(raw: dict[str, Map], problems: list[Problem]) -> dict[str, Map]:
    resolved: dict[str, Map] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> Map:
        if name in resolved:
            return resolved[name]
        job = raw[name]
        value = job.get("extends", [])
        where = job.at("extends")
        parents = [value] if isinstance(value, str) else texts(value)
        if parents is None:
            problems.append(
                Problem(where, f"job {name!r}: extends must be a job name or a list of them")
            )
            parents = []
        base = Map(job.where)
        for parent in parents:
            if parent in chain or parent == name:
                problems.append(
                    Problem(
                        where,
                        f"job {name!r}: extends forms a cycle: "
                        + " -> ".join([*chain, name, parent]),
                    )
                )
            elif parent not in raw:
                problems.append(
                    Problem(
                        where,
                        f"job {name!r}: extends unknown job {parent!r}{did_you_mean(parent, raw)}",
                    )
                )
            elif len(chain) >= MAX_DEPTH:
                problems.append(
                    Problem(where, f"job {name!r}: extends nested more than {MAX_DEPTH} levels")
                )
            else:
                base = merge(base, resolve(parent, (*chain, name)))
        own = Map(job.where, {k: v for k, v in job.items() if k != "extends"})
        own.key_at.update(job.key_at)
        resolved[name] = merge(base, own)
        return resolved[name]

    return {name: resolve(name, ()) for name in raw}


class _References:
    """Replaces every ``!reference [name, key, ...]`` with the value it points at."""

    def __init__(self, roots: dict[str, Map], problems: list[Problem]) -> None:
        self.roots = roots
        self.problems = problems

    def resolve(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, Reference):
            return self.follow(value, depth)
        if isinstance(value, Map):
            result = Map(value.where, {k: self.resolve(v, depth) for k, v in value.items()})
            result.key_at.update(value.key_at)
            return result
        items = as_list(value)
        if items is not None:
            return [self.resolve(item, depth) for item in items]
        return value

    def follow(self, ref: Reference, depth: int) -> Any:
        text = f"!reference [{', '.join(ref.path)}]"
        if depth >= 10:
            self.problems.append(Problem(ref.where, f"{text}: nested more than 10 levels"))
            return None
        value: Any = self.roots
        for i, key in enumerate(ref.path):
            if not isinstance(value, dict) or key not in value:
                choices: list[str] = list(value) if isinstance(value, Map) else []
                if i == 0:
                    choices = list(self.roots)
                self.problems.append(
                    Problem(
                        ref.where,
                        f"{text}: no {key!r} in "
                        + ("the file" if i == 0 else repr(ref.path[i - 1]))
                        + did_you_mean(key, choices),
                    )
                )
                return None
            value = cast("Any", value[key])
        return self.resolve(value, depth + 1)
