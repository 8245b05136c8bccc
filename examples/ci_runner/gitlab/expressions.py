"""GitLab's ``rules: if:`` expression language: parse once, evaluate against variables.

The language (GitLab's "CI/CD variable expressions")::

    $VAR                      true when VAR is defined and not empty (also ${VAR})
    $VAR == "text"  != 'x'    equal / not equal; compare to null for "not defined"
    $VAR =~ /re/i   !~ /re/   a regular expression search anywhere in the value; the pattern
                              may also come from a variable holding "/re/"
    a && b   a || b  ( ... )  && binds tighter than ||

Rules for callers: :func:`parse` raises :class:`ExpressionError` (with the column) for any
text that is not an expression, so a bad ``if:`` is a bad file before anything runs;
:func:`evaluate` never raises. Both are pure functions.

Example::

    >>> evaluate(parse('$CI_COMMIT_BRANCH == "main" || $FORCE'), {"CI_COMMIT_BRANCH": "main"})
    True
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeAlias

import attrs

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<var>\$(?:\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*))
    | (?P<str>"[^"]*"|'[^']*')
    | (?P<re>/(?:\\.|[^/\\])*/[a-z]*)
    | (?P<null>null\b)
    | (?P<op>==|!=|=~|!~|&&|\|\||\(|\))
    )""",
    re.VERBOSE,
)


class ExpressionError(ValueError):
    """Text that is not a GitLab expression; ``column`` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} (column {column})")
        self.column = column


@attrs.frozen
class Var:
    name: str


@attrs.frozen
class Text:
    value: str


@attrs.frozen
class Regex:
    pattern: re.Pattern[str]


@attrs.frozen
class Null:
    pass


Operand: TypeAlias = Var | Text | Regex | Null


@attrs.frozen
class Compare:
    op: str
    left: Operand
    right: Operand


@attrs.frozen
class Present:
    operand: Operand


@attrs.frozen
class Logic:
    op: str  # "&&" or "||"
    left: Expr
    right: Expr


Expr: TypeAlias = Compare | Present | Logic


def compile_regex(text: str) -> re.Pattern[str]:
    """Compile ``/pattern/flags`` (flags ``i``, ``m``, ``s``); raise ``ValueError`` when bad."""
    end = text.rfind("/")
    if not text.startswith("/") or end <= 0:
        raise ValueError(f"not a /regex/: {text!r}")
    flags = 0
    for flag in text[end + 1 :]:
        if flag not in "ims":
            raise ValueError(f"unknown regex flag {flag!r}")
        flags |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}[flag]
    try:
        return re.compile(text[1:end].replace("\\/", "/"), flags)
    except re.error as exc:
        raise ValueError(f"bad regex {text}: {exc}") from exc


def parse(text: str) -> Expr:
    """Parse a ``rules: if:`` expression.

    Raises:
        ExpressionError: the text is empty, has an unknown token, a regex that does not compile,
            unbalanced parentheses, or a missing operand.
    """
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            column = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
            raise ExpressionError(f"unexpected {text[column - 1 :][:12]!r}", column)
        tokens.append((match.lastgroup, match.group(match.lastgroup), match.start(match.lastgroup)))
        pos = match.end()
    parser = _Parser(tokens, len(text))
    expr = parser.parse_or()
    if parser.index < len(tokens):
        _, value, at = tokens[parser.index]
        raise ExpressionError(f"unexpected {value!r}", at + 1)
    return expr


class _Parser:
    def __init__(self, tokens: list[tuple[str, str, int]], end: int) -> None:
        self.tokens = tokens
        self.index = 0
        self.end = end

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, what: str) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise ExpressionError(f"expected {what} at the end", self.end + 1)
        self.index += 1
        return token

    def parse_or(self) -> Expr:
        left = self.parse_and()
        while (token := self.peek()) is not None and token[1] == "||":
            self.index += 1
            left = Logic("||", left, self.parse_and())
        return left

    def parse_and(self) -> Expr:
        left = self.parse_primary()
        while (token := self.peek()) is not None and token[1] == "&&":
            self.index += 1
            left = Logic("&&", left, self.parse_primary())
        return left

    def parse_primary(self) -> Expr:
        token = self.peek()
        if token is not None and token[1] == "(":
            self.index += 1
            inner = self.parse_or()
            _, value, at = self.take("')'")
            if value != ")":
                raise ExpressionError(f"expected ')', got {value!r}", at + 1)
            return inner
        left = self.operand()
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] in ("==", "!=", "=~", "!~"):
            self.index += 1
            right = self.operand()
            if token[1] in ("=~", "!~") and not isinstance(right, Regex | Var):
                raise ExpressionError(f"{token[1]} needs a /regex/ on its right", token[2] + 1)
            return Compare(token[1], left, right)
        if isinstance(left, Regex):
            raise ExpressionError(
                "a /regex/ must follow =~ or !~", self.tokens[self.index - 1][2] + 1
            )
        return Present(left)

    def operand(self) -> Operand:
        kind, value, at = self.take("a $VARIABLE, a 'text', a /regex/ or null")
        if kind == "var":
            return Var(value.strip("${}"))
        if kind == "str":
            return Text(value[1:-1])
        if kind == "null":
            return Null()
        if kind == "re":
            try:
                return Regex(compile_regex(value))
            except ValueError as exc:
                raise ExpressionError(str(exc), at + 1) from None
        raise ExpressionError(
            f"expected a $VARIABLE, a 'text', a /regex/ or null, got {value!r}", at + 1
        )


def evaluate(expr: Expr, variables: Mapping[str, str]) -> bool:
    """Return the value of ``expr`` with ``variables`` (an absent name is ``null``)."""
    if isinstance(expr, Logic):
        if expr.op == "&&":
            return evaluate(expr.left, variables) and evaluate(expr.right, variables)
        return evaluate(expr.left, variables) or evaluate(expr.right, variables)
    if isinstance(expr, Present):
        value = _value(expr.operand, variables)
        return isinstance(value, str) and value != ""
    left = _value(expr.left, variables)
    if expr.op in ("==", "!="):
        equal = left == _value(expr.right, variables)
        return equal if expr.op == "==" else not equal
    pattern = _pattern(expr.right, variables)
    matched = isinstance(left, str) and pattern is not None and pattern.search(left) is not None
    return matched if expr.op == "=~" else not matched


def _value(operand: Operand, variables: Mapping[str, str]) -> str | re.Pattern[str] | None:
    if isinstance(operand, Var):
        return variables.get(operand.name)
    if isinstance(operand, Text):
        return operand.value
    if isinstance(operand, Regex):
        return operand.pattern
    return None


def _pattern(operand: Operand, variables: Mapping[str, str]) -> re.Pattern[str] | None:
    if isinstance(operand, Regex):
        return operand.pattern
    text = variables.get(operand.name) if isinstance(operand, Var) else None
    if not text:
        return None
    try:
        return compile_regex(text)
    except ValueError:
        try:
            return re.compile(re.escape(text))
        except re.error:  # pragma: no cover - an escaped text always compiles
            return None
