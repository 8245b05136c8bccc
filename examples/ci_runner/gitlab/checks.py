"""The keyword lists of a job and the checks of single values, each problem with its place.

Rules for callers: every function appends what is wrong to ``problems`` (never raises) and
returns the checked value, or ``None`` when it is unusable. Keys that need a GitLab server or
containers are *ignored*: accepted, collected in ``ignored`` and shown by ``--dry-run``.
"""

from __future__ import annotations

from typing import Any

from .config import Problem, did_you_mean
from .yaml_source import Map, Where, as_list

JOB_KEYS = (
    "script", "before_script", "after_script", "stage", "needs", "variables", "when",
    "allow_failure", "timeout", "retry", "parallel", "rules", "extends", "artifacts",
    "dependencies", "inherit",
)  # fmt: skip
IGNORED_JOB_KEYS = (
    "image", "services", "cache", "tags", "environment", "coverage", "interruptible",
    "resource_group", "release", "pages", "id_tokens", "secrets", "hooks", "identity",
    "dast_configuration", "manual_confirmation", "description", "start_in",
)  # fmt: skip
REJECTED_JOB_KEYS = {
    "only": "only/except are not supported here; use rules:",
    "except": "only/except are not supported here; use rules:",
    "trigger": "trigger starts a downstream pipeline on a GitLab server",
    "run": "run: (CI steps) is not supported here; use script:",
}
DEFAULT_KEYS = (
    "after_script", "artifacts", "before_script", "cache", "hooks", "id_tokens", "image",
    "interruptible", "retry", "services", "tags", "timeout",
)  # fmt: skip
RULE_KEYS = (
    "if",
    "changes",
    "exists",
    "when",
    "allow_failure",
    "variables",
    "needs",
    "interruptible",
)
IGNORED_RULE_KEYS = ("needs", "interruptible")
WHEN_JOB = ("on_success", "on_failure", "always", "manual", "delayed")
WHEN_RULE = (*WHEN_JOB, "never")


class Checker:
    """Collects problems and ignored keys while values are checked."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.ignored: list[tuple[Where, str]] = []

    def problem(self, where: Where | None, message: str) -> None:
        self.problems.append(Problem(where, message))

    def keys(
        self,
        data: Map,
        what: str,
        allowed: tuple[str, ...],
        ignored: tuple[str, ...] = (),
        rejected: dict[str, str] | None = None,
    ) -> None:
        """Check the keys of ``data``: unknown ones are problems (with a suggestion)."""
        for key in data:
            if key in allowed:
                continue
            if key in ignored:
                self.ignored.append((data.at(key), f"{what}: {key}"))
            elif rejected and key in rejected:
                self.problem(data.at(key), f"{what}: {key}: {rejected[key]}")
            else:
                choices = (*allowed, *ignored, *(rejected or {}))
                self.problem(
                    data.at(key), f"{what}: unknown key {key!r}{did_you_mean(key, choices)}"
                )

    def commands(self, value: Any, where: Where, what: str, depth: int = 0) -> list[str] | None:
        """Return a script as a flat list of commands (nested lists, from ``!reference``, are
        flattened, 10 levels at most)."""
        if isinstance(value, str):
            return [value]
        items = as_list(value)
        if items is not None and depth < 10:
            out: list[str] = []
            for item in items:
                if isinstance(item, bool) or not isinstance(item, str | int | float | list):
                    self.problem(
                        where, f"{what} must be a command or a list of commands, got {item!r}"
                    )
                    return None
                inner = (
                    [str(item)]
                    if not isinstance(item, list)
                    else self.commands(item, where, what, depth + 1)
                )
                if inner is None:
                    return None
                out.extend(inner)
            return out
        self.problem(where, f"{what} must be a command or a list of commands, got {value!r}")
        return None

    def variables(self, value: Any, where: Where, what: str) -> tuple[dict[str, str], set[str]]:
        """Return the variables of a ``variables:`` mapping and the names with ``expand: false``."""
        values: dict[str, str] = {}
        raw: set[str] = set()
        if value is None:
            return values, raw
        if not isinstance(value, Map):
            self.problem(where, f"{what}: variables must be a mapping of NAME: value")
            return values, raw
        for name, item in value.items():
            at = value.at(name)
            if not name.isidentifier() or not name.isascii():
                self.problem(at, f"{what}: bad variable name {name!r} (letters, digits and _)")
                continue
            if isinstance(item, Map):
                for key in item:
                    if key not in ("value", "description", "expand", "options"):
                        choices = ("value", "description", "expand", "options")
                        self.problem(
                            item.at(key),
                            f"{what}: variable {name}: unknown key {key!r}"
                            + did_you_mean(key, choices),
                        )
                if not isinstance(item.get("expand", True), bool):
                    self.problem(
                        item.at("expand"), f"{what}: variable {name}: expand must be true or false"
                    )
                elif not item.get("expand", True):
                    raw.add(name)
                item = item.get("value", "")
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                self.problem(
                    at,
                    f"{what}: variable {name} must be a text or a number, got {item!r} (quote it)",
                )
                continue
            values[name] = str(item)
        return values, raw

    def choice(self, data: Map, key: str, choices: tuple[str, ...], what: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if value not in choices:
            self.problem(
                data.at(key),
                f"{what}: {key} must be one of {', '.join(choices)}; got {value!r}"
                f"{did_you_mean(str(value), choices)}",
            )
            return None
        return str(value)

    def exit_codes(self, value: Any, where: Where, what: str) -> frozenset[int] | None:
        codes: list[Any] = as_list(value) or [value]
        if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in codes):
            self.problem(
                where, f"{what}: exit_codes must be an exit code (0-255) or a list of them"
            )
            return None
        return frozenset(int(c) for c in codes)
