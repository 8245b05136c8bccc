"""Compile a GitLab CI file into the runner's :class:`~ci_runner.pipeline.Pipeline`.

The whole front end in one call, :func:`load_gitlab`: read the file and its includes
(``config.py``), check every job (``jobs.py``), decide ``workflow: rules`` and each job's
``rules``, expand ``parallel``, then turn stages and ``needs`` into the step graph the TOML engine
runs: a job with ``needs`` waits for those jobs; a job without waits for every job of the
earlier stages (``StepExtras.after``), so a stage starts when the one before it has finished.

Rules for callers: :func:`load_gitlab` returns a :class:`Compiled` or raises :class:`GitLabError`
listing every problem with its ``file:line``; nothing is run either way (it only reads files and
asks ``git`` for the commit).
"""

from __future__ import annotations

import graphlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

import attrs

from ..extras import StepExtras
from ..pipeline import Job, Pipeline, PipelineError, Step
from .checks import Checker
from .config import Config, Problem, did_you_mean, load_config
from .jobs import SUPPORTED_DEFAULTS, Instance, JobSpec, check_job, instances
from .rules import check_rules, first_match
from .values import expand_all
from .yaml_source import Map, Where, texts

DEFAULT_STAGES = (".pre", "build", "test", "deploy", ".post")
CONDITION = {"on_success": "success()", "on_failure": "failure()", "always": "always()"}


class GitLabError(PipelineError):
    """A GitLab CI file that cannot run; every problem has its own ``file:line``."""

    def __init__(self, path: Path, problems: Sequence[Problem]) -> None:
        self.gitlab_problems = sorted(
            set(problems),
            key=lambda p: (
                str(p.where.file) if p.where else "",
                p.where.line if p.where else 0,
                p.message,
            ),
        )
        super().__init__(path, [])

    def format(self) -> str:
        """Return one ``file:line: message`` line per problem."""
        return "\n".join(f"{p.where or self.path}: {p.message}" for p in self.gitlab_problems)


@attrs.frozen
class Compiled:
    """The runnable pipeline, plus what ``--dry-run`` shows: stages, ignored keys, left-out jobs.

    ``stopped`` is set when ``workflow: rules`` keep the whole pipeline from running (the reason).
    """

    pipeline: Pipeline
    stages: tuple[str, ...]
    ignored: tuple[tuple[Where, str], ...]
    left_out: tuple[tuple[str, str], ...]
    stopped: str | None


def load_gitlab(path: Path, only: Sequence[str] = ()) -> Compiled:
    """Read, check and compile the GitLab CI file at ``path``; ``only``: the ``--job`` names.

    Raises:
        GitLabError: the file or an include cannot be read, is not valid YAML, or breaks a rule.
    """
    problems: list[Problem] = []
    config = load_config(path, problems)
    if config is None:
        raise GitLabError(path, problems)
    compiled = _Compiler(config, Checker(problems), only).run()
    if problems:
        raise GitLabError(path, problems)
    return compiled


def git_variables(folder: Path) -> dict[str, str]:
    """Return ``CI_COMMIT_SHA``, ``CI_COMMIT_BRANCH``, ... from the git repository holding
    ``folder``, or nothing when there is none (or no git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=folder, capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None

    sha = git("rev-parse", "HEAD")
    if sha is None:
        return {}
    out = {"CI_COMMIT_SHA": sha, "CI_COMMIT_SHORT_SHA": sha[:8]}
    branch = git("symbolic-ref", "--short", "-q", "HEAD")
    if branch:
        out["CI_COMMIT_BRANCH"] = out["CI_COMMIT_REF_NAME"] = branch
        out["CI_COMMIT_REF_SLUG"] = "".join(c if c.isalnum() else "-" for c in branch.lower())[:63]
    origin = git("symbolic-ref", "--short", "-q", "refs/remotes/origin/HEAD")
    out["CI_DEFAULT_BRANCH"] = origin.split("/", 1)[-1] if origin else (branch or "main")
    message = git("log", "-1", "--format=%B")
    if message:
        out["CI_COMMIT_MESSAGE"] = message
    return out


class _Compiler:
    def __init__(self, config: Config, ck: Checker, only: Sequence[str]) -> None:
        self.config = config
        self.ck = ck
        self.only = only
        self.left_out: list[tuple[str, str]] = []

    def run(self) -> Compiled:
        top, ck = self.config.top, self.ck
        stages = self.stages()
        values, raw = ck.variables(top.get("variables"), top.at("variables"), "variables")
        ck.keys(
            self.config.default, "default", SUPPORTED_DEFAULTS, tuple(k for k in _DEFAULT_IGNORED)
        )
        base = {**self.predefined(), **values}
        stopped = self.workflow(base, raw)
        specs: dict[str, JobSpec] = {}
        for name, job in self.config.jobs.items():
            if not name.startswith("."):
                spec = check_job(ck, name, job, self.config.default, stages)
                if spec is not None:
                    specs[name] = spec
        kept: list[Instance] = []
        for spec in specs.values():
            found, why = instances(spec, base, raw, self.config.project_dir)
            kept.extend(found)
            if why is not None and not found:
                self.left_out.append((spec.name, why))
        if not any(not name.startswith(".") for name in self.config.jobs) and not ck.problems:
            ck.problem(Where(self.config.file, 1), "no jobs: add at least one job with a script:")
        self.check_needs(specs, kept, stages)
        kept = self.select(kept, specs)
        steps = self.steps(kept, stages)
        workflow = top.get("workflow")
        title = workflow.get("name") if isinstance(workflow, Map) else None
        pipeline = Pipeline(
            path=self.config.file,
            job=Job(name=str(title or "pipeline"), timeout=None, env={}),
            steps=tuple(steps),
        )
        ignored = (*self.config.ignored, *ck.ignored)
        return Compiled(pipeline, stages, ignored, tuple(self.left_out), stopped)

    def stages(self) -> tuple[str, ...]:
        top = self.config.top
        if "stages" not in top:
            return DEFAULT_STAGES
        value = texts(top["stages"])
        if value is None:
            self.ck.problem(top.at("stages"), "stages must be a list of stage names")
            return DEFAULT_STAGES
        named = [s for s in dict.fromkeys(value) if s not in (".pre", ".post")]
        return (".pre", *named, ".post")

    def predefined(self) -> dict[str, str]:
        folder = self.config.project_dir
        return {
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_PROJECT_DIR": str(folder),
            "CI_PROJECT_NAME": folder.name,
            "CI_PIPELINE_SOURCE": "push",
            "CI_CONFIG_PATH": self.config.file.name,
            **git_variables(folder),
        }

    def workflow(self, base: dict[str, str], raw: set[str]) -> str | None:
        """Check ``workflow:``; return why it stops the pipeline, or ``None`` (and then apply the
        variables of its matching rule)."""
        value = self.config.top.get("workflow")
        if value is None:
            return None
        if not isinstance(value, Map):
            self.ck.problem(
                self.config.top.at("workflow"), "workflow must be a mapping (rules:, name:)"
            )
            return None
        self.ck.keys(value, "workflow", ("rules", "name"), ("auto_cancel",))
        if "rules" not in value:
            return None
        rules = check_rules(self.ck, value["rules"], value.at("rules"), "workflow", workflow=True)
        rule = first_match(rules, expand_all(base, raw=raw), self.config.project_dir)
        if rule is None:
            return f"no workflow: rules matched ({value.at('rules')})"
        if rule.when == "never":
            return f"workflow rule at {rule.where} says when: never"
        base.update(rule.variables)
        raw.update(rule.raw)
        return None

    def check_needs(
        self, specs: dict[str, JobSpec], kept: list[Instance], stages: tuple[str, ...]
    ) -> None:
        """Check that needs name jobs of this or an earlier stage, kept by rules, with no cycle."""
        present = {i.spec.name for i in kept}
        graph: dict[str, list[str]] = {}
        for spec in specs.values():
            graph[spec.name] = []
            for need in spec.needs or []:
                what = f"job {spec.name!r}: needs {need.job!r}"
                other = specs.get(need.job)
                if other is None:
                    hidden = (
                        " (a hidden job: a template, never run)"
                        if need.job in self.config.jobs
                        else ""
                    )
                    self.ck.problem(
                        need.where, f"{what}: no such job{hidden}{did_you_mean(need.job, specs)}"
                    )
                elif stages.index(other.stage) > stages.index(spec.stage):
                    self.ck.problem(
                        need.where,
                        f"{what}, of the later stage {other.stage!r} (stage {spec.stage!r})",
                    )
                elif need.job not in present and spec.name in present and not need.optional:
                    self.ck.problem(
                        need.where,
                        f"{what}, which its rules leave out of the pipeline (add optional: true)",
                    )
                else:
                    graph[spec.name].append(need.job)
            for dep in spec.dependencies or []:
                if dep not in specs:
                    self.ck.problem(
                        spec.where,
                        f"job {spec.name!r}: dependencies: no job {dep!r}"
                        + did_you_mean(dep, specs),
                    )
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as exc:
            cycle = list(reversed(exc.args[1]))
            self.ck.problem(
                specs[cycle[0]].where, f"job {cycle[0]!r}: needs form a cycle: {' -> '.join(cycle)}"
            )

    def select(self, kept: list[Instance], specs: dict[str, JobSpec]) -> list[Instance]:
        """Keep only the ``--job`` names (a job's name selects all its parallel instances)."""
        if not self.only:
            return kept
        names = {i.name for i in kept} | set(specs)
        for name in self.only:
            if name not in names:
                self.ck.problem(
                    None, f"--job {name!r}: no such job in the pipeline{did_you_mean(name, names)}"
                )
        chosen = [i for i in kept if i.name in self.only or i.spec.name in self.only]
        self.left_out.extend((i.name, "not chosen by --job") for i in kept if i not in chosen)
        return chosen

    def steps(self, kept: list[Instance], stages: tuple[str, ...]) -> list[Step]:
        by_job: dict[str, list[str]] = {}
        for inst in kept:
            by_job.setdefault(inst.spec.name, []).append(inst.name)
        steps: list[Step] = []
        for inst in kept:
            spec, order = inst.spec, stages.index(inst.spec.stage)
            earlier = [i for i in kept if stages.index(i.spec.stage) < order]
            optional: set[str] = set()
            if spec.needs is not None:
                needs = [n for need in spec.needs for n in by_job.get(need.job, [])]
                optional = {
                    n for need in spec.needs if need.optional for n in by_job.get(need.job, [])
                }
                after: list[str] = []
                sources = [
                    n for need in spec.needs if need.artifacts for n in by_job.get(need.job, [])
                ]
            else:  # blocking manual jobs hold the later stages back, like a need that never runs
                needs = [i.name for i in earlier if i.when == "manual" and i.allow is False]
                after = [i.name for i in earlier if i.name not in needs]
                sources = [i.name for i in earlier]
            if spec.dependencies is not None:
                sources = [n for dep in spec.dependencies for n in by_job.get(dep, [])]
            extras = StepExtras(
                stage=spec.stage,
                when=inst.when,  # type: ignore[arg-type]
                after=tuple(after),
                optional=frozenset(optional),
                skip="when: manual (not run here)" if inst.when == "manual" else None,
                commands=tuple(spec.commands),
                after_script=tuple(spec.after_script),
                allow_exit_codes=inst.allow if isinstance(inst.allow, frozenset) else frozenset(),
                retry=spec.retry,
                retry_when=spec.retry_when,
                retry_exit_codes=spec.retry_exit_codes,
                dotenv=spec.dotenv,
                dotenv_from=tuple(sources),
            )
            steps.append(
                Step(
                    name=inst.name,
                    run="\n".join(spec.commands),
                    timeout=spec.timeout,
                    needs=tuple(dict.fromkeys(needs)),
                    env=inst.env,
                    cwd=self.config.project_dir,
                    cwd_text=".",
                    continue_on_error=inst.allow is True,
                    condition=CONDITION.get(inst.when, "success()"),  # type: ignore[arg-type]
                    line=spec.where.line,
                    extras=extras,
                )
            )
        return steps


_DEFAULT_IGNORED = ("cache", "hooks", "id_tokens", "image", "interruptible", "services", "tags")
