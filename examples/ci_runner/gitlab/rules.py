"""``rules:`` and ``workflow: rules:``: checked once, then matched against a job's variables.

GitLab's semantics: the rules are checked in order and the first one whose clauses all hold
decides (``when``, ``allow_failure``, ``variables``); ``if:`` is an expression (see
``expressions.py``), ``exists:`` holds when a file of the project matches one of its globs,
``changes:`` always holds here (there is no push to compare with, as for a new branch). When no
rule matches, the job is not in the pipeline (``when: never``).

Rules for callers: :func:`check_rules` appends every problem to the checker and returns only
well-formed rules; :func:`first_match` never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .checks import IGNORED_RULE_KEYS, RULE_KEYS, WHEN_RULE, Checker
from .expressions import Expr, ExpressionError, evaluate, parse
from .yaml_source import Map, Where, as_list, texts


@attrs.frozen
class Rule:
    """One checked rule; ``allow_failure`` is ``None`` (not set), a bool or exit codes."""

    where: Where
    condition: Expr | None = None
    exists: tuple[str, ...] | None = None
    when: str | None = None
    allow_failure: bool | frozenset[int] | None = None
    variables: dict[str, str] = attrs.field(factory=dict[str, str])
    raw: frozenset[str] = frozenset()


def check_rules(
    checker: Checker, value: Any, where: Where, what: str, *, workflow: bool = False
) -> list[Rule]:
    """Return the rules of a ``rules:`` list, checking keys, types and ``if:`` expressions."""
    items = as_list(value)
    if items is None:
        checker.problem(where, f"{what}: rules must be a list of rules (- if: ...)")
        return []
    rules: list[Rule] = []
    allowed = ("if", "changes", "exists", "when", "variables") if workflow else RULE_KEYS
    for item in items:
        if not isinstance(item, Map):
            checker.problem(
                where, f"{what}: each rule must be a mapping like - if: $VAR, got {item!r}"
            )
            continue
        checker.keys(item, f"{what}: rule", allowed, () if workflow else IGNORED_RULE_KEYS)
        rule = Rule(item.where)
        if "if" in item:
            text = item["if"]
            try:
                if not isinstance(text, str):
                    raise ExpressionError(f"if must be a text, got {text!r}", 1)
                rule = attrs.evolve(rule, condition=parse(text))
            except ExpressionError as exc:
                checker.problem(item.at("if"), f"{what}: bad if: {exc}")
        if "exists" in item:
            rule = attrs.evolve(rule, exists=_globs(checker, item, what))
        when = checker.choice(
            item, "when", ("always", "never") if workflow else WHEN_RULE, f"{what}: rule"
        )
        rule = attrs.evolve(rule, when=when)
        if "allow_failure" in item:
            rule = attrs.evolve(
                rule,
                allow_failure=allow_failure(
                    checker, item["allow_failure"], item.at("allow_failure"), what
                ),
            )
        if "variables" in item:
            values, raw = checker.variables(
                item["variables"], item.at("variables"), f"{what}: rule"
            )
            rule = attrs.evolve(rule, variables=values, raw=frozenset(raw))
        rules.append(rule)
    return rules


def allow_failure(
    checker: Checker, value: Any, where: Where, what: str
) -> bool | frozenset[int] | None:
    """Check an ``allow_failure`` value: ``true``/``false`` or ``exit_codes: [..]``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Map) and list(value) == ["exit_codes"]:
        return checker.exit_codes(value["exit_codes"], value.at("exit_codes"), what)
    checker.problem(where, f"{what}: allow_failure must be true, false or exit_codes: [codes]")
    return None


def _globs(checker: Checker, item: Map, what: str) -> tuple[str, ...] | None:
    value = item["exists"]
    if isinstance(value, Map):
        value = value.get("paths")
    globs = [value] if isinstance(value, str) else texts(value)
    if globs is None:
        checker.problem(item.at("exists"), f"{what}: exists must be a list of file globs")
        return None
    return tuple(globs)


def first_match(rules: list[Rule], variables: Mapping[str, str], project_dir: Path) -> Rule | None:
    """Return the first rule whose clauses all hold, or ``None``."""
    for rule in rules:
        if rule.condition is not None and not evaluate(rule.condition, variables):
            continue
        if rule.exists is not None and not any(
            any(p.is_file() for p in project_dir.glob(g.lstrip("/"))) for g in rule.exists
        ):
            continue
        return rule
    return None
