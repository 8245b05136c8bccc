"""Line numbers for a pipeline file: TOML parsers keep none, so find them in the text.

Rules for callers: build one :class:`SourceMap` per file text and ask it for the line of a table or
a key; every method returns a 1-based line number, or ``None`` when the text does not say.
"""

from __future__ import annotations

import re
from typing import cast

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*(\]\]?)\s*(#.*)?$")
# A line that assigns a key (or opens a sub-table of one): `key =`, `"key" =`, `[steps.key]`.
_KEY = re.compile(
    r"""^\s*(?:\[\s*(?:steps|job)\s*\.\s*)?(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*[=.\]]"""
)


class SourceMap:
    """Finds the lines of tables and keys in the text of a pipeline file.

    Regions: the text before the first table header is the top level; ``[job]`` and its
    sub-tables (``[job.env]``) form the job's region; each ``[[steps]]`` header and its
    sub-tables form one step's region, in order. A line inside a multi-line string is ignored.
    If the steps were not written as ``[[steps]]`` tables (an inline array, say), step lines are
    found by searching for ``name = "..."`` instead.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.regions: dict[tuple[str, int], list[int]] = {}
        self.step_headers: list[int] = []
        self.keys: dict[tuple[str, int], dict[str, int]] = {}
        region: tuple[str, int] = ("top", 0)
        open_quote: str | None = None
        for number, line in enumerate(self.lines, start=1):
            if open_quote is None:
                match = _HEADER.match(line)
                if match:
                    region = self._region_of(match.group(1), match.group(2), region)
                    if region[0] == "step" and match.group(2) == "steps":
                        self.step_headers.append(number)
                self.regions.setdefault(region, []).append(number)
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1 and open_quote in (None, quote):
                    open_quote = None if open_quote else quote

    def _region_of(self, bracket: str, table: str, current: tuple[str, int]) -> tuple[str, int]:
        first = table.split(".")[0].strip().strip('"')
        if first == "steps" and bracket == "[[" and table.strip() == "steps":
            return ("step", len(self.step_headers))
        if first == "steps" and current[0] == "step":
            return current
        if first == "job":
            return ("job", 0)
        return ("other:" + table, 0)

    def _key_line(self, region: tuple[str, int], key: str) -> int | None:
        keys = self.keys.get(region)
        if keys is None:  # the first question about this region: index its keys once
            keys = self.keys[region] = {}
            for number in self.regions.get(region, []):
                match = _KEY.match(self.lines[number - 1])
                if match:
                    keys.setdefault(next(g for g in match.groups() if g is not None), number)
        return keys.get(key)

    def top_level_line(self, key: str) -> int | None:
        line = self._key_line(("top", 0), key)
        if line is None:
            for number, text in enumerate(self.lines, start=1):
                match = _HEADER.match(text)
                if match and match.group(2).split(".")[0].strip() == key:
                    return number
        return line

    def job_line(self) -> int | None:
        lines = self.regions.get(("job", 0))
        return lines[0] if lines else self._key_line(("top", 0), "job")

    def job_key_line(self, key: str) -> int | None:
        return self._key_line(("job", 0), key)

    def step_line(self, index: int, raw: object) -> int | None:
        if index < len(self.step_headers):
            return self.step_headers[index]
        name = cast("dict[str, object]", raw).get("name") if isinstance(raw, dict) else None
        if isinstance(name, str):
            pattern = re.compile(rf"""\bname\s*=\s*["']{re.escape(name)}["']""")
            for number, text in enumerate(self.lines, start=1):
                if pattern.search(text):
                    return number
        return None

    def step_key_line(self, index: int, key: str) -> int | None:
        if index >= len(self.step_headers):
            return None
        return self._key_line(("step", index), key)
