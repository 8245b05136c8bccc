"""GitLab values that are not YAML types: durations (``timeout``) and variable expansion.

Rules for callers: both functions are pure; :func:`parse_duration` raises ``ValueError`` with a
readable message, :func:`expand_all` never raises (a variable that refers to itself, directly or
not, keeps the reference as written).

Examples::

    >>> parse_duration("1h 30m"), parse_duration("10 minutes"), parse_duration(90)
    (5400.0, 600.0, 90.0)
    >>> expand_all({"A": "x", "B": "$A-${A}-$$A"}, raw=set())["B"]
    'x-x-$A'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def parse_duration(value: object) -> float:
    """Return the seconds of a GitLab duration: ``"1h 30m"``, ``"10 minutes"``, ``"90s"``, ``90``.

    A bare number is seconds. Parts may be separated by spaces, commas or "and".

    Raises:
        ValueError: not a text or a number, empty, an unknown unit, or not more than 0 seconds.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"a duration must be a text like '1h 30m' or a number, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = re.sub(r"\s*(,|\band\b)\s*", " ", value.strip().lower())
        seconds, pos = 0.0, 0
        while pos < len(text):
            match = _PART.match(text, pos)
            if match is None:
                raise ValueError(f"not a duration: {value!r} (try '1h 30m', '10 minutes', '90s')")
            number, unit = match.groups()
            if unit and unit not in _UNITS:
                raise ValueError(f"unknown unit {unit!r} in duration {value!r}")
            seconds += float(number) * _UNITS.get(unit, 1)
            pos = match.end()
            while pos < len(text) and text[pos] == " ":
                pos += 1
        if not text:
            raise ValueError("a duration cannot be empty")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be more than 0 seconds, got {value!r}")
    return seconds


def expand_all(variables: Mapping[str, str], *, raw: set[str]) -> dict[str, str]:
    """Expand ``$VAR``, ``${VAR}`` and ``$$`` in every value, as GitLab does before a job runs.

    A reference takes the *expanded* value of the other variable; a name that is not in
    ``variables`` stays as written (the job's shell may know it); ``$$`` becomes ``$``. Names in
    ``raw`` (``expand: false``) keep their value exactly as written.
    """
    done: dict[str, str] = {}
    active: set[str] = set()

    def value_of(name: str) -> str:
        if name in done:
            return done[name]
        if name in raw:
            done[name] = variables[name]
            return done[name]
        active.add(name)

        def replace(match: re.Match[str]) -> str:
            other = match.group(1) or match.group(2)
            if other is None:
                return "$"
            if other not in variables or other in active:
                return match.group(0)
            return value_of(other)

        result = _REFERENCE.sub(replace, variables[name])
        active.discard(name)
        done[name] = result
        return result

    return {name: value_of(name) for name in variables}
