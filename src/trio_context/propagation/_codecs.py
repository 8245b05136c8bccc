"""Carry a context's deadline and chosen values across process and network boundaries.

Rules for callers:

- Only the *deadline* travels by default. Cancellation itself cannot cross a process edge (the
  other side learns about it from the connection closing or from its own copy of the deadline),
  and values travel only when you pick them, as W3C ``baggage`` entries.
- Deadlines travel as *durations* or wall-clock times, never as trio clock readings: the trio
  clock of one process means nothing in another.
- Sending side: put ``environ_for(ctx, base=os.environ)`` into a child process's environment;
  encode ``ctx.remaining()`` with :func:`encode_grpc_timeout` or :func:`encode_timeout_ms` into a
  request header. Omit the header when ``ctx.remaining()`` is ``math.inf`` (no deadline).
- Receiving side: ``ctx = from_environ(parent)`` at the top of a child program; in a server,
  ``with_timeout(parent, parse_grpc_timeout(header))``.
- The parsers are strict and raise :class:`ValueError` (and nothing else) for any text they
  cannot read whole. Input from the network is untrusted: catch ``ValueError`` and decide
  (ignore the header, or answer 400). :func:`from_environ` never raises for a malformed
  variable: it logs a warning on the ``trio_context`` logger and returns the parent unchanged.
- The encoders round durations *up* (as grpc-go does): a deadline that is rounded down would make
  the receiver give up before the sender does, for no reason either side can see.

Every function here is pure (except :func:`from_environ`, which creates a context, and the
wall-clock reading in :func:`environ_for`) and safe to call from any thread.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Final, final
from urllib.parse import quote, unquote

__all__ = [
    "encode_baggage",
    "encode_grpc_timeout",
    "encode_timeout_ms",
    "parse_baggage",
    "parse_grpc_timeout",
    "parse_timeout_ms",
]


_OWS = " \t"


def _text(value: str | bytes, what: str) -> str:
    """Return header text as ``str``; bytes must be ASCII (headers on the wire are)."""
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"{what} must be ASCII, got {value!r}") from None
    return value


def _ceil_scaled(seconds: float, per_second: int, name: str) -> int:
    """``ceil(seconds * per_second)``, exactly; negative clamps to 0; NaN/inf raise."""
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(
            f"`{name}` must be finite, got {seconds!r} (omit the header when there is no deadline)"
        )
    if seconds <= 0:
        return 0
    # The shortest decimal that reads back as this float (``repr``), not the float's exact
    # binary value: 0.001 is 1 ms, not 1.0000000000000000208 ms rounded up to 2.
    return math.ceil(Fraction(repr(float(seconds))) * per_second)


# ---------------------------------------------------------------------------------------------
# gRPC ``grpc-timeout``

#: Largest TimeoutValue: "positive integer as ASCII string of at most 8 digits".
_GRPC_MAX_VALUE = 99_999_999
#: Units from the most precise to the least, with their length in nanoseconds.
_GRPC_UNITS: tuple[tuple[str, int], ...] = (
    ("n", 1),
    ("u", 1_000),
    ("m", 1_000_000),
    ("S", 1_000_000_000),
    ("M", 60_000_000_000),
    ("H", 3_600_000_000_000),
)
_GRPC_UNIT_NANOS: dict[str, int] = dict(_GRPC_UNITS)
_GRPC_RE = re.compile(r"([0-9]{1,8})([HMSmun])")


def encode_grpc_timeout(seconds: float) -> str:
    """Encode a remaining time as a gRPC ``grpc-timeout`` header value.

    The value is at most 8 digits followed by a unit (``H``, ``M``, ``S``, ``m``, ``u``, ``n``);
    the most precise unit that fits is used and the amount is rounded *up*, so the receiver never
    gets less time than ``seconds``. A negative or zero ``seconds`` gives ``"0n"`` (already
    expired, as grpc-go sends); more than 99999999 hours is clamped to ``"99999999H"``.

    Raises:
        ValueError: if ``seconds`` is NaN or infinite (no deadline: send no header).

    Example::

        >>> encode_grpc_timeout(1.5)
        '1500000u'
        >>> encode_grpc_timeout(0.25)
        '250000u'
    """
    nanos = _ceil_scaled(seconds, 1_000_000_000, "seconds")
    for unit, unit_nanos in _GRPC_UNITS:
        amount = -(-nanos // unit_nanos)  # ceiling division
        if amount <= _GRPC_MAX_VALUE:
            return f"{amount}{unit}"
    return f"{_GRPC_MAX_VALUE}H"


def parse_grpc_timeout(value: str | bytes) -> float:
    """Parse a gRPC ``grpc-timeout`` header value into seconds.

    Accepts 1 to 8 ASCII digits followed by one unit letter (case matters: ``M`` is minutes,
    ``m`` milliseconds), with optional surrounding spaces or tabs. ``"0n"`` (and any zero) is
    accepted and means "already expired".

    Raises:
        ValueError: for anything else (empty, 9+ digits, a sign, a fraction, an unknown unit,
            non-ASCII bytes); the message quotes the value.

    Example::

        >>> parse_grpc_timeout("250m")
        0.25
        >>> parse_grpc_timeout("2M")
        120.0
    """
    text = _text(value, "grpc-timeout")
    match = _GRPC_RE.fullmatch(text.strip(_OWS))
    if match is None:
        raise ValueError(
            f"malformed grpc-timeout {text!r}: expected 1 to 8 digits and a unit "
            "(H, M, S, m, u or n), e.g. '250m'"
        )
    amount, unit = int(match[1]), match[2]
    unit_nanos = _GRPC_UNIT_NANOS[unit]
    if unit_nanos >= 1_000_000_000:
        return float(amount * (unit_nanos // 1_000_000_000))
    return amount / (1_000_000_000 // unit_nanos)


# ---------------------------------------------------------------------------------------------
# Plain milliseconds header (Envoy's ``x-envoy-expected-rq-timeout-ms`` style)

_MS_MAX_DIGITS = 18
_MS_MAX = 10**_MS_MAX_DIGITS - 1
_MS_RE = re.compile(rf"[0-9]{{1,{_MS_MAX_DIGITS}}}")


def encode_timeout_ms(seconds: float) -> str:
    """Encode a remaining time as a whole number of milliseconds, rounded up.

    This is the format of Envoy's ``x-envoy-expected-rq-timeout-ms``. A negative or zero
    ``seconds`` gives ``"0"``, which here means "already expired" (not "no timeout", as ``0``
    does in Envoy's *request* header ``x-envoy-upstream-rq-timeout-ms``). Values beyond 18 digits
    are clamped.

    Raises:
        ValueError: if ``seconds`` is NaN or infinite (no deadline: send no header).

    Example::

        >>> encode_timeout_ms(1.5)
        '1500'
        >>> encode_timeout_ms(0.0001)
        '1'
    """
    return str(min(_ceil_scaled(seconds, 1000, "seconds"), _MS_MAX))


def parse_timeout_ms(value: str | bytes) -> float:
    """Parse a milliseconds header value (1 to 18 ASCII digits) into seconds.

    Surrounding spaces or tabs are ignored; ``"0"`` means "already expired".

    Raises:
        ValueError: for anything else (empty, a sign, a fraction, too many digits, non-ASCII).

    Example::

        >>> parse_timeout_ms("1500")
        1.5
    """
    text = _text(value, "timeout header")
    stripped = text.strip(_OWS)
    if _MS_RE.fullmatch(stripped) is None:
        raise ValueError(
            f"malformed milliseconds timeout {text!r}: expected 1 to {_MS_MAX_DIGITS} digits"
        )
    return int(stripped) / 1000


# ---------------------------------------------------------------------------------------------
# W3C ``baggage``


#: The W3C grammar allows at most 180 list-members (``list-member 0*179(...)``).
@final
class _IncomingBaggage:
    """The value key under which ``ContextMiddleware`` keeps a request's incoming W3C baggage
    (a ``dict[str, str]``); ``httpx_transport`` forwards it on calls made under that request."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<trio_context incoming-baggage key>"


INCOMING_BAGGAGE: Final = _IncomingBaggage()

_BAGGAGE_MAX_MEMBERS = 180
#: A baggage-string of 8192 bytes must be propagated; we refuse longer ones.
_BAGGAGE_MAX_BYTES = 8192
# RFC 7230 token characters.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
# baggage-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
_VALUE = r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"
_BAGGAGE_VALUE_RE = re.compile(_VALUE)
_PROPERTY_RE = re.compile(rf"[ \t]*{_TOKEN}[ \t]*(?:=[ \t]*{_VALUE}[ \t]*)?")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def encode_baggage(entries: Mapping[str, str]) -> str:
    """Encode ``{key: value}`` as a W3C ``baggage`` header value.

    Keys must be HTTP tokens (letters, digits and ``!#$%&'*+-.^_`|~``) and are sent as they
    are; values are any strings, sent UTF-8 percent-encoded (so ``parse_baggage`` gives back
    exactly what went in). An empty mapping gives ``""`` (send no header).

    Raises:
        TypeError: if a key or a value is not a ``str``.
        ValueError: if a key is not a token, or the result would have more than 180 entries or
            more than 8192 bytes (the W3C limits): choose fewer or smaller values.

    Example::

        >>> encode_baggage({"tenant": "acme", "request-id": "a b"})
        'tenant=acme,request-id=a%20b'
    """
    if len(entries) > _BAGGAGE_MAX_MEMBERS:
        raise ValueError(
            f"baggage has {len(entries)} entries; the W3C limit is {_BAGGAGE_MAX_MEMBERS}"
        )
    members: list[str] = []
    for key, val in entries.items():
        # Checked at run time too: a non-str would otherwise be quoted or stringified silently.
        if not isinstance(key, str) or not isinstance(val, str):  # pyright: ignore
            raise TypeError(f"baggage keys and values must be str, got {key!r}: {val!r}")
        if _TOKEN_RE.fullmatch(key) is None:
            raise ValueError(
                f"baggage key {key!r} is not an HTTP token "
                "(use letters, digits and !#$%&'*+-.^_`|~)"
            )
        members.append(f"{key}={quote(val, safe='')}")
    result = ",".join(members)
    if len(result) > _BAGGAGE_MAX_BYTES:
        raise ValueError(
            f"baggage would be {len(result)} bytes; the W3C limit is {_BAGGAGE_MAX_BYTES}"
        )
    return result


def parse_baggage(value: str | bytes) -> dict[str, str]:
    """Parse a W3C ``baggage`` header value into ``{key: value}``.

    Values are percent-decoded as UTF-8 (invalid UTF-8 becomes U+FFFD, as the spec asks);
    whitespace around keys, values and commas is ignored; empty list elements (``"a=1,,b=2"``,
    as from joining several ``baggage`` headers) are skipped; properties (``k=v;prop;p2=x``) are
    checked and then dropped; when a key repeats, the last value wins. ``""`` gives ``{}``.

    Raises:
        ValueError: if any member is malformed (no ``=``, a key that is not a token, a character
            a value may not hold, a bad ``%`` escape), or the header has more than 180 members or
            more than 8192 bytes. The whole header is rejected: nothing is half-read.

    Example::

        >>> parse_baggage("tenant=acme, request-id = a%20b;ttl=30")
        {'tenant': 'acme', 'request-id': 'a b'}
    """
    text = _text(value, "baggage")
    if len(text.encode("utf-8", "surrogatepass")) > _BAGGAGE_MAX_BYTES:
        raise ValueError(f"baggage is longer than {_BAGGAGE_MAX_BYTES} bytes")
    result: dict[str, str] = {}
    count = 0
    for raw_member in text.split(","):
        if not raw_member.strip(_OWS):
            continue
        count += 1
        if count > _BAGGAGE_MAX_MEMBERS:
            raise ValueError(f"baggage has more than {_BAGGAGE_MAX_MEMBERS} members")
        key, val = _parse_member(raw_member)
        result.pop(key, None)  # keep the order of the last occurrence
        result[key] = val
    return result


def _parse_member(member: str) -> tuple[str, str]:
    pair, *properties = member.split(";")
    key, sep, raw_value = pair.partition("=")
    key = key.strip(_OWS)
    raw_value = raw_value.strip(_OWS)
    if not sep or _TOKEN_RE.fullmatch(key) is None:
        raise ValueError(f"malformed baggage member {member!r}: expected key=value")
    if _BAGGAGE_VALUE_RE.fullmatch(raw_value) is None or _BAD_ESCAPE_RE.search(raw_value):
        raise ValueError(f"malformed baggage value in {member!r}: expected percent-encoding")
    for prop in properties:
        if _PROPERTY_RE.fullmatch(prop) is None:
            raise ValueError(f"malformed baggage property {prop!r} in {member!r}")
    return key, unquote(raw_value, errors="replace")
