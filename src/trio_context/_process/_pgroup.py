"""Plumbing for :mod:`._process`: output tails, process-group signals, start errors.

Nothing here is public. Everything runs in the trio thread; the process-group helper is
POSIX-only. Finding and stopping the whole tree is :mod:`._descendants`.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Final, cast

MAX_LINE: Final = 1 << 16  # longer lines reach on_line in pieces


class Tail:
    """One output stream: keeps the last ``keep`` bytes and cuts lines for ``on_line``."""

    def __init__(
        self, name: str, keep: int, capture: bool, on_line: Callable[[str, str], object] | None
    ) -> None:
        self.name = name
        self.keep = keep if capture else 0
        self.on_line = on_line
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.truncated = False
        self.partial = bytearray()

    def feed(self, data: bytes) -> None:
        if self.keep:
            self.chunks.append(data)
            self.size += len(data)
            while self.size - len(self.chunks[0]) >= self.keep:
                self.size -= len(self.chunks.popleft())
                self.truncated = True
        elif data:
            self.truncated = True
        if self.on_line is not None:
            buf = self.partial
            buf += data
            start = 0
            while (nl := buf.find(b"\n", start)) >= 0:
                self._emit(buf[start:nl])
                start = nl + 1
            del buf[:start]
            while len(buf) > MAX_LINE:
                self._emit(buf[:MAX_LINE])
                del buf[:MAX_LINE]

    def flush(self) -> None:
        if self.on_line is not None and self.partial:
            line, self.partial = self.partial, bytearray()
            self._emit(line)

    def _emit(self, line: bytearray) -> None:
        assert self.on_line is not None
        if line.endswith(b"\r"):
            line = line[:-1]
        self.on_line(self.name, line.decode("utf-8", "replace"))

    def tail(self) -> bytes:
        data = b"".join(self.chunks)
        if len(data) > self.keep:
            self.truncated = True
            data = data[len(data) - self.keep :]
        return data


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_env(env: Mapping[str, str | None] | None) -> None:
    """Raise TypeError unless ``env`` maps str to str or None."""
    if env is None:
        return
    for key, value in env.items():
        if not _is_str(key) or not (value is None or _is_str(value)):
            raise TypeError(f"`env` must map str to str or None, got {key!r}: {value!r}")


# os.environ decoded, and the raw (bytes) mapping it was decoded from: most calls run with an
# unchanged os.environ, and decoding it entry by entry costs more than the rest of the copy.
_snapshot: tuple[dict[bytes, bytes], dict[str, str]] | None = None


def _environ_copy() -> dict[str, str]:
    """A fresh copy of ``os.environ`` (decoded once for as long as it does not change)."""
    global _snapshot
    data: object = getattr(os.environ, "_data", None)  # CPython's mapping behind os.environ
    if not isinstance(data, dict):  # pragma: no cover - another implementation
        return dict(os.environ)
    raw = cast(dict[bytes, bytes], data)
    snapshot = _snapshot
    if snapshot is None or snapshot[0] != raw:
        snapshot = _snapshot = (raw.copy(), dict(os.environ))
    return snapshot[1].copy()


def child_environ(
    env: Mapping[str, str | None] | None, *, drop: Sequence[str], add: Mapping[str, str]
) -> dict[str, str] | None:
    """The child's environment, built in one copy: ``os.environ``, then ``env`` merged over it
    (a None value removes a variable), then the names in ``drop`` removed and ``add`` set.
    None when that is ``os.environ`` unchanged (the child then inherits it as it is)."""
    if env is None and not add and not any(name in os.environ for name in drop):
        return None
    merged = _environ_copy()
    if env is not None:
        for key, value in env.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
    for name in drop:
        merged.pop(name, None)
    merged.update(add)
    return merged


def start_error(exc: OSError, program: str, cwd: str | None) -> OSError:
    if cwd is not None and exc.filename == cwd:
        what = f"`cwd` {cwd!r} cannot be used as the working directory: {exc.strerror}"
    elif exc.errno == errno.ENOENT:
        what = f"`command` not found: executable {program!r} does not exist or is not on PATH"
    elif exc.errno == errno.EACCES:
        what = f"`command` {program!r} cannot be executed: permission denied"
    else:
        what = f"`command` {program!r} could not be started: {exc.strerror}"
    return type(exc)(exc.errno, what)
