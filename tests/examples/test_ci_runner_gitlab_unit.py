"""Unit tests of the GitLab CI front end of the CI runner example: the ``rules: if:`` expression
language, GitLab durations, variable expansion, YAML places and the compiled step graph.

The real program on whole pipelines is tested in ``test_ci_runner_gitlab.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("yaml")

from ci_runner.gitlab import GitLabError, load_gitlab
from ci_runner.gitlab.expressions import ExpressionError, evaluate, parse
from ci_runner.gitlab.values import expand_all, parse_duration
from ci_runner.gitlab.yaml_source import Map, Reference, YamlError, load_yaml

VARS = {"BRANCH": "main", "EMPTY": "", "TAG": "v1.2.3", "PATTERN": "/^v\\d/", "OTHER": "main"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$BRANCH", True),
        ("$EMPTY", False),  # defined but empty: not "present"
        ("$MISSING", False),
        ("${BRANCH}", True),
        ('$BRANCH == "main"', True),
        ("$BRANCH == 'dev'", False),
        ('"main" == $BRANCH', True),
        ("$BRANCH == $OTHER", True),
        ("$BRANCH != 'main'", False),
        ("$MISSING == null", True),
        ("$EMPTY == null", False),
        ('$EMPTY == ""', True),
        ('$MISSING == ""', False),
        ("$BRANCH != null", True),
        ("$TAG =~ /^v\\d+\\.\\d+/", True),
        ("$TAG =~ /^V1/", False),
        ("$TAG =~ /^V1/i", True),
        ("$TAG =~ /2\\.3/", True),  # a search, not a full match
        ("$TAG !~ /^v/", False),
        ("$MISSING =~ /.*/", False),
        ("$MISSING !~ /x/", True),
        ("$TAG =~ $PATTERN", True),
        ("$BRANCH =~ $PATTERN", False),
        ('$BRANCH == "main" && $TAG', True),
        ('$BRANCH == "dev" || $TAG', True),
        ("$MISSING || $EMPTY", False),
        ("$BRANCH || $MISSING && $EMPTY", True),  # && binds tighter than ||
        ("($BRANCH || $MISSING) && $EMPTY", False),
        ('$A == "x" || ($BRANCH == "main" && ($TAG =~ /3$/))', True),
        ("$PATH_WITH_SLASH =~ /a\\/b/", True),
    ],
)
def test_expressions(text: str, expected: bool) -> None:
    assert evaluate(parse(text), {**VARS, "PATH_WITH_SLASH": "x/a/b"}) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a $VARIABLE"),
        ("$A ==", "expected a $VARIABLE, a 'text', a /regex/ or null at the end"),
        ("$A = 'x'", "unexpected \"= 'x'\" (column 4)"),
        ("($A", "expected ')' at the end"),
        ("$A)", "unexpected ')'"),
        ("$A && && $B", "got '&&'"),
        ("$A =~ 'text'", "=~ needs a /regex/ on its right (column 4)"),
        ("/re/", "a /regex/ must follow =~ or !~"),
        ("$A =~ /(/", "bad regex"),
        ("$A =~ /x/q", "unknown regex flag 'q'"),
        ('$A == "unclosed', "unexpected"),
        ("A == 'x'", "(column 1)"),
    ],
)
def test_bad_expressions_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match="column") as info:
        parse(text)
    assert message in str(info.value)


NAMES = st.sampled_from(["A", "B", "C"])
VALUES = st.dictionaries(NAMES, st.sampled_from(["", "x", "y"]))


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> tuple[str, str]:
    """Return (GitLab text, the same as Python source over a dict ``v``)."""
    if depth > 2 or draw(st.booleans()):
        name = draw(NAMES)
        kind = draw(st.sampled_from(["present", "==", "!=", "null", "=~"]))
        if kind == "present":
            return f"${name}", f"bool(v.get({name!r}))"
        if kind == "null":
            return f"${name} == null", f"{name!r} not in v"
        if kind == "=~":
            return f"${name} =~ /^x/", f"v.get({name!r}, '').startswith('x')"
        literal = draw(st.sampled_from(["", "x", "y"]))
        return f'${name} {kind} "{literal}"', f"v.get({name!r}) {kind} {literal!r}"
    left, pleft = draw(expressions(depth + 1))
    right, pright = draw(expressions(depth + 1))
    op = draw(st.sampled_from(["&&", "||"]))
    pop = "and" if op == "&&" else "or"
    if draw(st.booleans()):
        return f"({left} {op} {right})", f"({pleft} {pop} {pright})"
    return f"{left} {op} {right}", f"{pleft} {pop} {pright}"


@given(expressions(), VALUES)
def test_expressions_agree_with_python_precedence(
    expr: tuple[str, str], values: dict[str, str]
) -> None:
    text, python = expr
    assert evaluate(parse(text), values) == eval(python, {}, {"v": values})


@given(st.text(max_size=30))
def test_parse_raises_only_expression_errors(text: str) -> None:
    try:
        expr = parse(text)
    except ExpressionError:
        return
    evaluate(expr, VARS)  # whatever parses, evaluates


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1h 30m", 5400),
        ("1h30m", 5400),
        ("10 minutes", 600),
        ("90s", 90),
        ("2s", 2),
        ("1 hour and 5 min", 3900),
        ("3 hours, 2 minutes", 10920),
        ("1d", 86400),
        ("2 weeks", 1209600),
        ("45", 45),
        (90, 90),
        (1.5, 1.5),
        (" 1 H ", 3600),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("0s", "more than 0"),
        (0, "more than 0"),
        (-5, "more than 0"),
        ("5 parsecs", "unknown unit 'parsecs'"),
        ("soon", "not a duration"),
        (True, "a text like"),
        ([5], "a text like"),
        (float("inf"), "more than 0"),
    ],
)
def test_bad_durations(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@given(
    st.integers(0, 50),
    st.integers(0, 59),
    st.integers(0, 59),
    st.sampled_from([("h", "m", "s"), ("hours", "minutes", "seconds"), ("hr", "min", "sec")]),
    st.sampled_from([" ", "", ", ", " and "]),
)
def test_duration_parts_add_up(
    h: int, m: int, s: int, units: tuple[str, str, str], sep: str
) -> None:
    parts = [f"{n}{u}" for n, u in zip((h, m, s), units, strict=True) if n]
    if not parts:
        return
    assert parse_duration(sep.join(parts)) == h * 3600 + m * 60 + s


def test_expansion_follows_gitlab() -> None:
    variables = {
        "A": "a",
        "B": "$A-${A}",
        "C": "$B/$UNKNOWN/$$A/$$$A",
        "SELF": "x$SELF",
        "LOOP1": "$LOOP2",
        "LOOP2": "$LOOP1",
        "RAW": "$A$$",
    }
    out = expand_all(variables, raw={"RAW"})
    assert out["B"] == "a-a"
    assert out["C"] == "a-a/$UNKNOWN/$A/$a"  # unknown names stay for the shell
    assert out["SELF"] == "x$SELF"
    assert out["LOOP1"] in ("$LOOP1", "$LOOP2")  # a cycle stops, never recurses forever
    assert out["RAW"] == "$A$$"


@given(st.dictionaries(st.sampled_from("ABCD"), st.text("$AB{}x", max_size=8)))
def test_expansion_never_fails_and_dollar_dollar_never_expands(variables: dict[str, str]) -> None:
    out = expand_all(variables, raw=set())
    assert set(out) == set(variables)
    for name, value in variables.items():
        if "$" not in value:
            assert out[name] == value


def test_yaml_keeps_places_anchors_and_references(tmp_path: Path) -> None:
    file = tmp_path / "ci.yml"
    data = load_yaml(
        ".base: &base\n  image: x\n  tags: [a]\njob:\n  <<: *base\n  script:\n"
        "    - !reference [.base, tags]\n",
        file,
    )
    assert isinstance(data, Map)
    job = data["job"]
    assert job["image"] == "x"  # merge key
    assert str(data.at("job")) == f"{file}:4"
    assert job.at("script").line == 6
    ref = job["script"][0]
    assert isinstance(ref, Reference) and ref.path == (".base", "tags") and ref.where.line == 7


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: [1, 2\nb: 3\n", 2, "not valid YAML"),
        ("a:\n  - !reference x\n", 2, "!reference takes a list"),
        ("a:\n  b: !env X\n", 2, "unknown YAML tag !env"),
        ("a: 1\n? [x]\n: 2\n", 2, "a key must be a name"),
    ],
)
def test_yaml_errors_have_a_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    with pytest.raises(YamlError) as info:
        load_yaml(text, tmp_path / "ci.yml")
    assert info.value.where.line == line
    assert message in info.value.message


def test_compiled_graph_stage_order_and_needs(tmp_path: Path) -> None:
    (tmp_path / ".gitlab-ci.yml").write_text(
        "a:\n  stage: build\n  script: x\n"
        "b:\n  stage: build\n  script: x\n"
        "c:\n  script: x\n"
        "d:\n  stage: deploy\n  needs: [a]\n  script: x\n"
        "e:\n  stage: deploy\n  needs: []\n  script: x\n"
    )
    pipeline = load_gitlab(tmp_path / ".gitlab-ci.yml").pipeline
    graph = {s.name: (s.needs, s.extras.after if s.extras else ()) for s in pipeline.steps}
    assert graph == {
        "a": ((), ()),
        "b": ((), ()),
        "c": ((), ("a", "b")),
        "d": (("a",), ()),
        "e": ((), ()),
    }
    assert pipeline.upstream("c") == ["a", "b"]


def test_extends_cycle_unknown_parent_and_bad_reference(tmp_path: Path) -> None:
    (tmp_path / "ci.yml").write_text(
        ".a:\n  extends: .b\n.b:\n  extends: .a\n"
        "job:\n  extends: [.a, .tmpl]\n  script:\n    - !reference [.a, scrip]\n"
    )
    with pytest.raises(GitLabError) as info:
        load_gitlab(tmp_path / "ci.yml")
    text = info.value.format()
    assert "ci.yml:4: job '.b': extends forms a cycle: .a -> .b -> .a" in text
    assert "ci.yml:6: job 'job': extends unknown job '.tmpl'" in text
    assert "ci.yml:8: !reference [.a, scrip]: no 'scrip' in '.a'" in text


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "no jobs: add at least one job with a script:"),
        (".hidden: {script: x}\n", 1, "no jobs"),
        ("- a\n- b\n", 1, "a pipeline file must be a mapping"),
        ("job:\n", 1, "job 'job' is empty (it needs a script:)"),
        ("job:\n  script: ''\n", 2, "job 'job': script has no command"),
        ("job:\n  stage: 5\n  script: x\n", 2, "stage 5 is not in stages"),
        ("job:\n  script: [x]\n  needs: [job]\n", 1, "needs form a cycle: job -> job"),
        ("job:\n  extends: job\n  script: x\n", 2, "extends forms a cycle: job -> job"),
        ("job:\n  script: x\n  parallel: 201\n", 3, "parallel must be from 1 to 200"),
        (
            "job:\n  script: x\n  parallel: {matrix: [{A: [1, 2]}] }\n  when: never\n",
            4,
            "got 'never'",
        ),
        ("job:\n  script: x\n  rules: {if: $A}\n", 3, "rules must be a list"),
        ("job:\n  script: x\n  only: [main]\n", 3, "only/except are not supported here"),
        ("job:\n  script: x\n  trigger: other/project\n", 3, "trigger starts a downstream"),
        ("include: {template: Auto-DevOps.gitlab-ci.yml}\njob: {script: x}\n", 1, "'template'"),
        ("include: nope/*.yml\njob: {script: x}\n", 1, "include: no file matches 'nope/*.yml'"),
        (
            "stage: [a]\njob: {script: x}\n",
            1,
            "unknown top-level key 'stage' (did you mean 'stages'?)",
        ),
    ],
)
def test_bad_files(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / ".gitlab-ci.yml"
    path.write_text(text)
    with pytest.raises(GitLabError) as info:
        load_gitlab(path)
    assert f"{path}:{line}: " in info.value.format()
    assert message in info.value.format(), info.value.format()


def test_an_include_cycle_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("include: .gitlab-ci.yml\nfrom-a: {script: x}\n")
    (tmp_path / ".gitlab-ci.yml").write_text("include: a.yml\nmain: {script: x}\n")
    steps = load_gitlab(tmp_path / ".gitlab-ci.yml").pipeline.steps
    assert sorted(s.name for s in steps) == ["from-a", "main"]
