"""One job of the file, checked, and its instances: one per ``parallel`` index or matrix cell.

Rules for callers: :func:`check_job` appends every problem to the checker and returns a
:class:`JobSpec` (with whatever could be read) or ``None`` when the job cannot run at all;
:func:`instances` expands ``parallel`` and decides ``rules`` for each instance. Neither raises.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .checks import IGNORED_JOB_KEYS, JOB_KEYS, REJECTED_JOB_KEYS, WHEN_JOB, Checker
from .config import did_you_mean
from .rules import Rule, allow_failure, check_rules, first_match
from .values import expand_all, parse_duration
from .yaml_source import Map, Where, as_list, texts

DEFAULT_TIMEOUT = 3600.0
"""GitLab's default job timeout (a project's setting, one hour unless changed)."""
RETRY_WHEN = (
    "always", "unknown_failure", "script_failure", "api_failure", "stuck_or_timeout_failure",
    "runner_system_failure", "runner_unsupported", "stale_schedule", "job_execution_timeout",
    "archived_failure", "unmet_prerequisites", "scheduler_failure", "data_integrity_failure",
)  # fmt: skip
SUPPORTED_DEFAULTS = ("after_script", "before_script", "retry", "timeout", "artifacts")


@attrs.frozen
class Need:
    """One ``needs:`` entry."""

    job: str
    where: Where
    optional: bool = False
    artifacts: bool = True


@attrs.define
class JobSpec:
    """A checked job, before ``parallel`` and ``rules``."""

    name: str
    where: Where
    stage: str
    commands: list[str]
    after_script: list[str]
    when: str | None
    allow_failure: bool | frozenset[int] | None
    timeout: float
    retry: int = 0
    retry_when: frozenset[str] = frozenset({"always"})
    retry_exit_codes: frozenset[int] = frozenset()
    variables: dict[str, str] = attrs.field(factory=dict[str, str])
    raw: set[str] = attrs.field(factory=set[str])
    inherit_variables: bool | frozenset[str] = True
    rules: list[Rule] | None = None
    cells: list[dict[str, str]] | None = None  # parallel: one variable set per instance
    needs: list[Need] | None = None
    dependencies: list[str] | None = None
    dotenv: tuple[str, ...] = ()


@attrs.define
class Instance:
    """One job to run: a job, or one of its ``parallel`` copies, with rules decided."""

    name: str
    spec: JobSpec
    when: str
    allow: bool | frozenset[int]
    env: dict[str, str]


def check_job(
    ck: Checker, name: str, job: Map, default: Map, stages: tuple[str, ...]
) -> JobSpec | None:
    """Check one visible job (``default:`` merged in as ``inherit:`` says)."""
    what = f"job {name!r}"
    ck.keys(job, what, JOB_KEYS, IGNORED_JOB_KEYS, REJECTED_JOB_KEYS)
    inherit_default, inherit_variables = _inherit(ck, job, what)
    for key, value in default.items():
        if key not in job and (
            inherit_default is True or (inherit_default and key in inherit_default)
        ):
            job[key] = value
            job.key_at[key] = default.at(key)
    script, before, after = _scripts(ck, job, what)
    stage = job.get("stage", "test")
    known_stage = stage in stages
    if not known_stage:
        ck.problem(
            job.at("stage"),
            f"{what}: stage {stage!r} is not in stages: {list(stages)}"
            + did_you_mean(str(stage), stages),
        )
    spec = JobSpec(
        name=name,
        where=job.where,
        stage=str(stage),
        commands=[*(before or []), *(script or [])],
        after_script=after or [],
        when=ck.choice(job, "when", WHEN_JOB, what),
        allow_failure=allow_failure(ck, job["allow_failure"], job.at("allow_failure"), what)
        if "allow_failure" in job
        else None,
        timeout=DEFAULT_TIMEOUT,
        inherit_variables=inherit_variables,
    )
    if "timeout" in job:
        try:
            spec.timeout = parse_duration(job["timeout"])
        except ValueError as exc:
            ck.problem(job.at("timeout"), f"{what}: timeout: {exc}")
    _retry(ck, job, spec, what)
    spec.variables, spec.raw = ck.variables(job.get("variables"), job.at("variables"), what)
    if "rules" in job:
        spec.rules = check_rules(ck, job["rules"], job.at("rules"), what)
    if "parallel" in job:
        spec.cells = _parallel(ck, job["parallel"], job.at("parallel"), what)
    if "needs" in job:
        spec.needs = _needs(ck, job["needs"], job.at("needs"), what)
    if "dependencies" in job:
        deps = texts(job["dependencies"])
        if deps is None:
            ck.problem(job.at("dependencies"), f"{what}: dependencies must be a list of job names")
        else:
            spec.dependencies = deps
    spec.dotenv = _artifacts(ck, job.get("artifacts"), job.at("artifacts"), what)
    return None if script is None or before is None or after is None or not known_stage else spec


def _scripts(
    ck: Checker, job: Map, what: str
) -> tuple[list[str] | None, list[str] | None, list[str] | None]:
    """Return ``script``, ``before_script`` and ``after_script`` as commands (``None``: bad)."""
    script = None
    if "script" not in job:
        ck.problem(job.where, f"{what}: no script: (every job needs the commands it runs)")
    else:
        script = ck.commands(job["script"], job.at("script"), f"{what}: script")
        if script is not None and not any(command.strip() for command in script):
            ck.problem(job.at("script"), f"{what}: script has no command")
            script = None
    before = ck.commands(
        job.get("before_script", []), job.at("before_script"), f"{what}: before_script"
    )
    after = ck.commands(
        job.get("after_script", []), job.at("after_script"), f"{what}: after_script"
    )
    return script, before, after


def instances(
    spec: JobSpec, base: Mapping[str, str], raw: set[str], project_dir: Path
) -> tuple[list[Instance], str | None]:
    """Return the instances of ``spec`` that rules keep, and why the others were left out.

    ``base`` holds the predefined and global variables (``raw``: their ``expand: false`` names).
    """
    cells = spec.cells or [{}]
    kept: list[Instance] = []
    why: str | None = None
    for index, cell in enumerate(cells, start=1):
        if spec.cells is None:
            name = spec.name
        elif all(not k.startswith("\0") for k in cell) and cell:
            name = f"{spec.name}: [{', '.join(cell.values())}]"
        else:
            name = f"{spec.name} {index}/{len(cells)}"
        cell = {k: v for k, v in cell.items() if not k.startswith("\0")}
        own = {
            "CI_JOB_NAME": name,
            "CI_JOB_NAME_SLUG": "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[
                :63
            ],
            "CI_JOB_STAGE": spec.stage,
            "CI_NODE_INDEX": str(index),
            "CI_NODE_TOTAL": str(len(cells)),
        }
        inherited = {k: v for k, v in base.items() if _inherits(spec, k)}
        variables = {**inherited, **own, **spec.variables, **cell}
        all_raw = (raw & set(inherited)) | spec.raw
        env = expand_all(variables, raw=all_raw)
        when, allow = spec.when or "on_success", spec.allow_failure
        if spec.rules is not None:
            rule = first_match(spec.rules, env, project_dir)
            if rule is None or rule.when == "never":
                why = (
                    "no rule matched"
                    if rule is None
                    else f"rule at line {rule.where.line}: when: never"
                )
                continue
            if rule.when is not None:
                when = rule.when
                allow = allow if allow is not None else False  # rules' manual: not allowed to fail
            if rule.allow_failure is not None:
                allow = rule.allow_failure
            if rule.variables:
                env = expand_all({**variables, **rule.variables}, raw=all_raw | rule.raw)
        if allow is None:
            allow = when == "manual"
        kept.append(Instance(name, spec, "on_success" if when == "delayed" else when, allow, env))
    return kept, why


def _inherits(spec: JobSpec, name: str) -> bool:
    if name.startswith("CI_") or name in ("CI", "GITLAB_CI"):
        return True
    inherit = spec.inherit_variables
    return inherit if isinstance(inherit, bool) else name in inherit


def _inherit(
    ck: Checker, job: Map, what: str
) -> tuple[bool | frozenset[str], bool | frozenset[str]]:
    value = job.get("inherit")
    if value is None:
        return True, True
    if not isinstance(value, Map):
        ck.problem(job.at("inherit"), f"{what}: inherit must be a mapping (default:, variables:)")
        return True, True
    ck.keys(value, f"{what}: inherit", ("default", "variables"))
    out: list[bool | frozenset[str]] = []
    for key in ("default", "variables"):
        item = value.get(key, True)
        names = texts(item)
        if isinstance(item, bool):
            out.append(item)
        elif names is not None:
            out.append(frozenset(names))
        else:
            ck.problem(
                value.at(key), f"{what}: inherit: {key} must be true, false or a list of names"
            )
            out.append(True)
    return out[0], out[1]


def _retry(ck: Checker, job: Map, spec: JobSpec, what: str) -> None:
    value = job.get("retry", 0)
    where = job.at("retry")
    if isinstance(value, Map):
        ck.keys(value, f"{what}: retry", ("max", "when", "exit_codes"))
        when = value.get("when", "always")
        when_list = [when] if isinstance(when, str) else texts(when)
        if when_list is None or not all(w in RETRY_WHEN for w in when_list):
            ck.problem(
                value.at("when"), f"{what}: retry: when must be some of {', '.join(RETRY_WHEN)}"
            )
        else:
            spec.retry_when = frozenset(when_list)
        if "exit_codes" in value:
            spec.retry_exit_codes = (
                ck.exit_codes(value["exit_codes"], value.at("exit_codes"), what) or frozenset()
            )
        value, where = value.get("max", 0), value.at("max")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2:
        ck.problem(where, f"{what}: retry must be 0, 1 or 2 (or max:/when:), got {value!r}")
        return
    spec.retry = value


def _parallel(ck: Checker, value: Any, where: Where, what: str) -> list[dict[str, str]] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 200:
            ck.problem(where, f"{what}: parallel must be from 1 to 200, got {value}")
            return None
        return [{"\0": str(i)} for i in range(value)]
    matrix = (
        as_list(value["matrix"]) if isinstance(value, Map) and list(value) == ["matrix"] else None
    )
    if matrix is None:
        ck.problem(where, f"{what}: parallel must be a number or matrix: [a list of variable sets]")
        return None
    cells: list[dict[str, str]] = []
    for entry in matrix:
        if not isinstance(entry, Map) or not entry:
            ck.problem(where, f"{what}: each parallel: matrix entry must map names to values")
            return None
        choices: list[list[str]] = []
        for name, item in entry.items():
            items: list[Any] = as_list(item) or [item]
            if not items or not all(
                isinstance(i, str | int | float) and not isinstance(i, bool) for i in items
            ):
                ck.problem(
                    entry.at(name),
                    f"{what}: matrix variable {name} must be a value or a list of values",
                )
                return None
            choices.append([str(i) for i in items])
        names = list(entry)
        cells.extend(dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices))
    if len(cells) > 200:
        ck.problem(where, f"{what}: parallel: matrix makes {len(cells)} jobs; GitLab allows 200")
        return None
    return cells


def _needs(ck: Checker, value: Any, where: Where, what: str) -> list[Need] | None:
    items = as_list(value)
    if items is None:
        ck.problem(where, f"{what}: needs must be a list of job names")
        return None
    needs: list[Need] = []
    for item in items:
        if isinstance(item, str):
            needs.append(Need(item, where))
        elif isinstance(item, Map) and isinstance(item.get("job"), str):
            ck.keys(
                item,
                f"{what}: needs",
                ("job", "optional", "artifacts"),
                ("parallel",),
                {"pipeline": "needs a GitLab server", "project": "needs a GitLab server"},
            )
            for key in ("optional", "artifacts"):
                if not isinstance(item.get(key, False), bool):
                    ck.problem(item.at(key), f"{what}: needs: {key} must be true or false")
            needs.append(
                Need(
                    str(item["job"]),
                    item.where,
                    item.get("optional") is True,
                    item.get("artifacts", True) is not False,
                )
            )
        else:
            ck.problem(where, f"{what}: needs: each entry is a job name or job: NAME, got {item!r}")
    return needs


def _artifacts(ck: Checker, value: Any, where: Where, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, Map):
        ck.problem(where, f"{what}: artifacts must be a mapping")
        return ()
    ignored = (
        "paths",
        "exclude",
        "expire_in",
        "expose_as",
        "name",
        "public",
        "access",
        "untracked",
        "when",
    )
    ck.keys(value, f"{what}: artifacts", ("reports",), ignored)
    reports = value.get("reports")
    if reports is None:
        return ()
    if not isinstance(reports, Map):
        ck.problem(value.at("reports"), f"{what}: artifacts: reports must be a mapping")
        return ()
    for key in reports:
        if key != "dotenv":
            ck.ignored.append((reports.at(key), f"{what}: artifacts: reports: {key}"))
    dotenv = reports.get("dotenv", [])
    files = [dotenv] if isinstance(dotenv, str) else texts(dotenv)
    if files is None:
        ck.problem(
            reports.at("dotenv"),
            f"{what}: artifacts: reports: dotenv must be a file or a list of files",
        )
        return ()
    return tuple(files)
