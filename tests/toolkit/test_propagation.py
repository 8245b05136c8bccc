"""Tests for the propagation codecs and the child-process environment (``_propagation.py``)."""

from __future__ import annotations

import logging
import math
import os
import sys
import time

import pytest
import trio
import trio.testing
from hypothesis import example, given
from hypothesis import strategies as st

import trio_context as tc
from trio_context.propagation import (
    DEADLINE_ENV_VAR,
    encode_baggage,
    encode_grpc_timeout,
    encode_timeout_ms,
    environ_for,
    from_environ,
    parse_baggage,
    parse_grpc_timeout,
    parse_timeout_ms,
)

# ---------------------------------------------------------------------------------------------
# grpc-timeout


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0n"),
        (-3.0, "0n"),
        (1e-9, "1n"),
        (1e-12, "1n"),  # rounded up, never to "expired"
        (0.099999999, "99999999n"),
        (0.1, "100000u"),
        (0.25, "250000u"),
        (1.5, "1500000u"),
        (99.999999, "99999999u"),
        (100, "100000m"),
        (99_999.999, "99999999m"),
        (100_000, "100000S"),
        (99_999_999, "99999999S"),
        (100_000_000, "1666667M"),
        (99_999_999 * 3600, "99999999H"),
        (1e30, "99999999H"),
    ],
)
def test_encode_grpc_timeout(seconds: float, expected: str) -> None:
    assert encode_grpc_timeout(seconds) == expected


@pytest.mark.parametrize("seconds", [math.inf, -math.inf, math.nan])
def test_encode_grpc_timeout_rejects_non_finite(seconds: float) -> None:
    with pytest.raises(ValueError, match="must be finite"):
        encode_grpc_timeout(seconds)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0n", 0.0),
        ("1n", 1e-9),
        ("250m", 0.25),
        ("250000u", 0.25),
        ("3S", 3.0),
        ("2M", 120.0),
        ("2H", 7200.0),
        ("99999999H", 99_999_999 * 3600.0),
        ("00000001S", 1.0),
        (" 5S\t", 5.0),
        (b"5S", 5.0),
    ],
)
def test_parse_grpc_timeout(value: str | bytes, expected: float) -> None:
    assert parse_grpc_timeout(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "S",
        "5",
        "123456789S",
        "-1S",
        "+1S",
        "1.5S",
        "5s",
        "5h",
        "5 S",
        "5SS",
        "\u0663S",
        "5S\n",
        b"\xff5S",
        "1e3m",
    ],
)
def test_parse_grpc_timeout_rejects(value: str | bytes) -> None:
    with pytest.raises(ValueError, match="grpc-timeout"):
        parse_grpc_timeout(value)


@given(st.floats(min_value=0, max_value=99_999_999 * 3600.0))
@example(1e-9)
@example(0.1)
@example(99.9999995)
def test_grpc_timeout_round_trip(seconds: float) -> None:
    encoded = encode_grpc_timeout(seconds)
    assert len(encoded) <= 9
    decoded = parse_grpc_timeout(encoded)
    assert decoded >= seconds  # never shortened
    # Each unit is at most 1000x the previous, and a unit is only used from 1e8/1000 of it.
    assert decoded - seconds <= max(1e-9, seconds * 1e-5) * 1.000001


@given(st.one_of(st.text(), st.binary()))
@example("99999999H")
def test_parse_grpc_timeout_fuzz(value: str | bytes) -> None:
    try:
        result = parse_grpc_timeout(value)
    except ValueError:
        return
    assert 0 <= result < math.inf


@given(st.from_regex(r"\A[0-9]{1,8}[HMSmun]\Z"))
def test_parse_grpc_timeout_accepts_the_grammar(value: str) -> None:
    assert parse_grpc_timeout(value) >= 0


# ---------------------------------------------------------------------------------------------
# milliseconds header


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0"), (-1, "0"), (0.0001, "1"), (0.001, "1"), (1.5, "1500"), (1e30, "9" * 18)],
)
def test_encode_timeout_ms(seconds: float, expected: str) -> None:
    assert encode_timeout_ms(seconds) == expected


@pytest.mark.parametrize("seconds", [math.inf, math.nan])
def test_encode_timeout_ms_rejects_non_finite(seconds: float) -> None:
    with pytest.raises(ValueError, match="must be finite"):
        encode_timeout_ms(seconds)


@pytest.mark.parametrize(
    ("value", "expected"), [("0", 0.0), ("1500", 1.5), (" 250 ", 0.25), (b"1", 0.001)]
)
def test_parse_timeout_ms(value: str | bytes, expected: float) -> None:
    assert parse_timeout_ms(value) == expected


@pytest.mark.parametrize(
    "value", ["", "-1", "+1", "1.5", "1e3", "1_000", "\u0663", "1" * 19, "1 0", b"\x801"]
)
def test_parse_timeout_ms_rejects(value: str | bytes) -> None:
    with pytest.raises(ValueError, match="timeout"):
        parse_timeout_ms(value)


@given(st.floats(min_value=0, max_value=1e12))
def test_timeout_ms_round_trip(seconds: float) -> None:
    decoded = parse_timeout_ms(encode_timeout_ms(seconds))
    assert decoded >= seconds
    assert decoded - seconds <= 0.001 * 1.000001


@given(st.one_of(st.text(), st.binary()))
def test_parse_timeout_ms_fuzz(value: str | bytes) -> None:
    try:
        result = parse_timeout_ms(value)
    except ValueError:
        return
    assert 0 <= result < math.inf


# ---------------------------------------------------------------------------------------------
# baggage


def test_encode_baggage() -> None:
    assert encode_baggage({}) == ""
    assert encode_baggage({"tenant": "acme", "request-id": "a b"}) == "tenant=acme,request-id=a%20b"
    assert encode_baggage({"k": 'é,;=%+"\\'}) == "k=%C3%A9%2C%3B%3D%25%2B%22%5C"


@pytest.mark.parametrize("key", ["", "a b", "a=b", "a,b", "a;b", "é", 'a"b', "(x)"])
def test_encode_baggage_rejects_bad_keys(key: str) -> None:
    with pytest.raises(ValueError, match="not an HTTP token"):
        encode_baggage({key: "v"})


def test_encode_baggage_rejects_non_str() -> None:
    with pytest.raises(TypeError, match="must be str"):
        encode_baggage({"k": 1})  # type: ignore[dict-item]


def test_encode_baggage_limits() -> None:
    encode_baggage({f"k{i}": "v" for i in range(180)})
    with pytest.raises(ValueError, match="180"):
        encode_baggage({f"k{i}": "v" for i in range(181)})
    # "k=" + 8190 bytes is exactly 8192.
    assert len(encode_baggage({"k": "x" * 8190})) == 8192
    with pytest.raises(ValueError, match="8192"):
        encode_baggage({"k": "x" * 8191})
    with pytest.raises(ValueError, match="8192"):
        encode_baggage({"k": "é" * 1400})  # 6 bytes each once encoded


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", {}),
        ("  ", {}),
        ("a=1", {"a": "1"}),
        ("a=", {"a": ""}),
        ("a=1,b=2", {"a": "1", "b": "2"}),
        (" a = 1 ,\tb=2 ", {"a": "1", "b": "2"}),
        ("a=1,,b=2,", {"a": "1", "b": "2"}),
        ("a=1,b=2,a=3", {"b": "2", "a": "3"}),
        ("a=x=y", {"a": "x=y"}),
        ("a=b+c", {"a": "b+c"}),  # '+' is a plus, not a space
        ("serverNode=DF%2028", {"serverNode": "DF 28"}),
        ("k=%C3%A9", {"k": "é"}),
        ("k=%FF", {"k": "\ufffd"}),
        (
            "key1=value1;property1;property2, key2 = value2, "
            "key3=value3; propertyKey=propertyValue",
            {"key1": "value1", "key2": "value2", "key3": "value3"},
        ),
        (b"a=1", {"a": "1"}),
    ],
)
def test_parse_baggage(value: str | bytes, expected: dict[str, str]) -> None:
    result = parse_baggage(value)
    assert result == expected
    assert list(result) == list(expected)


@pytest.mark.parametrize(
    "value",
    [
        "a",
        "=1",
        "a b=1",
        "a=1 2",
        'a="1"',
        "a=\\",
        "a=%",
        "a=%4",
        "a=%zz",
        "a=1;p q",
        "a=1;=x",
        "é=1",
        "a=é",
        b"a=\xff",
    ],
)
def test_parse_baggage_rejects(value: str | bytes) -> None:
    with pytest.raises(ValueError, match="baggage"):
        parse_baggage(value)


def test_parse_baggage_limits() -> None:
    assert len(parse_baggage(",".join(f"k{i}=v" for i in range(180)))) == 180
    with pytest.raises(ValueError, match="180"):
        parse_baggage(",".join(f"k{i}=v" for i in range(181)))
    assert parse_baggage("k=" + "x" * 8190) == {"k": "x" * 8190}
    with pytest.raises(ValueError, match="8192"):
        parse_baggage("k=" + "x" * 8191)


_keys = st.from_regex(r"\A[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,20}\Z")


@given(st.dictionaries(_keys, st.text(max_size=30), max_size=20))
def test_baggage_round_trip(entries: dict[str, str]) -> None:
    # Lone surrogates cannot be UTF-8 encoded; they are out of scope.
    try:
        "".join(entries.values()).encode("utf-8")
    except UnicodeEncodeError:
        return
    assert parse_baggage(encode_baggage(entries)) == entries


@given(st.one_of(st.text(), st.binary()))
@example("a=1;;")
@example("a=1;p=")
def test_parse_baggage_fuzz(value: str | bytes) -> None:
    try:
        result = parse_baggage(value)
    except ValueError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.items())


@given(st.text(alphabet=st.sampled_from('ab=;,% \t%2C%41"x'), max_size=40))
def test_parse_baggage_fuzz_near_grammar(value: str) -> None:
    try:
        parse_baggage(value)
    except ValueError:
        pass


# ---------------------------------------------------------------------------------------------
# child-process environment

NOW = 1_700_000_000.0


@pytest.fixture
def frozen_wall(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """``time.time()`` returns ``frozen_wall[0]``."""
    wall = [NOW]
    monkeypatch.setattr(time, "time", lambda: wall[0])
    return wall


def test_environ_for_without_deadline() -> None:
    assert environ_for(tc.background()) == {}
    inherited = {"PATH": "/bin", DEADLINE_ENV_VAR: "1.0;1.0"}
    assert environ_for(tc.background(), base=inherited) == {"PATH": "/bin"}
    assert inherited == {"PATH": "/bin", DEADLINE_ENV_VAR: "1.0;1.0"}  # not mutated


async def test_environ_for_format(
    frozen_wall: list[float], autojump_clock: trio.testing.MockClock
) -> None:
    ctx = tc.with_timeout(tc.background(), 4.5)
    assert environ_for(ctx) == {DEADLINE_ENV_VAR: "1700000004.500000;4.500000"}
    env = environ_for(ctx, base={"PATH": "/bin", DEADLINE_ENV_VAR: "1.0;1.0"})
    assert env == {"PATH": "/bin", DEADLINE_ENV_VAR: "1700000004.500000;4.500000"}


async def test_environ_for_expired_context(
    frozen_wall: list[float], autojump_clock: trio.testing.MockClock
) -> None:
    ctx = tc.with_timeout(tc.background(), 1)
    await trio.sleep(2)  # autojump clock: no real waiting
    assert environ_for(ctx) == {DEADLINE_ENV_VAR: "1700000000.000000;0.000000"}


async def test_environ_for_far_deadline_stays_readable(
    frozen_wall: list[float], autojump_clock: trio.testing.MockClock
) -> None:
    ctx = tc.with_timeout(tc.background(), 1e300)
    child = from_environ(tc.background(), environ_for(ctx))
    assert child.remaining() == pytest.approx(1e15)


@pytest.mark.parametrize("environ", [{}, {DEADLINE_ENV_VAR: ""}])
def test_from_environ_absent_returns_parent(environ: dict[str, str]) -> None:
    parent = tc.background()
    assert from_environ(parent, environ) is parent


async def test_from_environ_defaults_to_os_environ(
    monkeypatch: pytest.MonkeyPatch,
    frozen_wall: list[float],
    autojump_clock: trio.testing.MockClock,
) -> None:
    monkeypatch.setenv(DEADLINE_ENV_VAR, "1700000004.5;4.5")
    assert from_environ(tc.background()).remaining() == pytest.approx(4.5)
    monkeypatch.delenv(DEADLINE_ENV_VAR)
    parent = tc.background()
    assert from_environ(parent) is parent


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        (NOW, 4.5),  # clocks agree, no start-up delay
        (NOW + 1, 3.5),  # the child took a second to start: the wall clock counts it
        (NOW - 10, 4.5),  # this clock is 10 s behind: the sent duration caps it
        (NOW + 3600, 0.0),  # long past (or clock far ahead): already expired
    ],
)
async def test_from_environ_takes_the_min(
    frozen_wall: list[float], autojump_clock: trio.testing.MockClock, wall: float, expected: float
) -> None:
    frozen_wall[0] = wall
    ctx = from_environ(tc.background(), {DEADLINE_ENV_VAR: "1700000004.5;4.5"})
    assert ctx.remaining() == pytest.approx(expected)
    assert ctx.deadline == pytest.approx(trio.current_time() + expected)


async def test_from_environ_expired_is_done_with_deadline_exceeded(
    frozen_wall: list[float],
    autojump_clock: trio.testing.MockClock,
) -> None:
    ctx = from_environ(tc.background(), {DEADLINE_ENV_VAR: "1600000000.0;0.0"})
    assert ctx.remaining() == 0
    assert isinstance(ctx.err, tc.DeadlineExceeded)
    assert "parent process" in str(ctx.cause)


async def test_from_environ_keeps_parent_deadline(
    frozen_wall: list[float], autojump_clock: trio.testing.MockClock
) -> None:
    parent = tc.with_timeout(tc.background(), 2)
    ctx = from_environ(parent, {DEADLINE_ENV_VAR: "1700000004.5;4.5"})
    assert ctx.remaining() == pytest.approx(2)


async def test_nested_processes_see_the_min(
    frozen_wall: list[float], autojump_clock: trio.testing.MockClock
) -> None:
    # Process A sends 10 s; B lives under it and adds its own 3 s for C; C sees 3 s.
    env_a = environ_for(tc.with_timeout(tc.background(), 10))
    ctx_b = from_environ(tc.background(), env_a)
    env_b = environ_for(tc.with_timeout(ctx_b, 3))
    assert from_environ(tc.background(), env_b).remaining() == pytest.approx(3)
    # B passes its own context on after 4 s: C sees the 6 s left of A's 10.
    await trio.sleep(4)
    frozen_wall[0] += 4
    assert from_environ(tc.background(), environ_for(ctx_b)).remaining() == pytest.approx(6)


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "1700000004.5",
        "1700000004.5;",
        ";4.5",
        "1700000004.5;4.5;1",
        "1700000004.5;-4.5",
        "1700000004.5;inf",
        "nan;4.5",
        "1e9;4.5",
        "1700000004,5;4,5",
        "\u0661\u0667;4.5",
    ],
)
async def test_from_environ_malformed_logs_and_returns_parent(
    caplog: pytest.LogCaptureFixture, value: str
) -> None:
    parent = tc.background()
    with caplog.at_level(logging.WARNING, logger="trio_context"):
        assert from_environ(parent, {DEADLINE_ENV_VAR: value}) is parent
    [record] = caplog.records
    assert record.name == "trio_context"
    assert DEADLINE_ENV_VAR in record.getMessage()
    assert repr(value) in record.getMessage()


@given(st.text())
def test_from_environ_fuzz(value: str) -> None:
    async def main() -> None:
        parent = tc.background()
        ctx = from_environ(parent, {DEADLINE_ENV_VAR: value})
        assert ctx is parent or 0 <= ctx.remaining() < math.inf

    trio.run(main)


async def test_real_child_process_sees_the_deadline() -> None:
    code = (
        "import trio, trio_context as tc\n"
        "async def main():\n"
        "    print(tc.from_environ(tc.background()).remaining())\n"
        "trio.run(main)\n"
    )
    ctx = tc.with_timeout(tc.background(), 30)
    env = environ_for(ctx, base=os.environ)
    result = await trio.run_process([sys.executable, "-c", code], env=env, capture_stdout=True)
    remaining = float(result.stdout)
    # The child loses only its real start-up time (wall clock) from the 30 s sent.
    assert 20 < remaining <= 30
