"""Why a context ended, in a form that crosses a process or network hop: :class:`RemoteCause`.

A cause is an arbitrary exception and does not travel; what travels is its type's name, its
message, whether the stop is graceful (finish up, save what you have) or forced (stop now), and
the seconds of grace the receiver has left. Two text encodings carry it:

- the *cancel line* (one line on a child process's cancel channel, see ``_channel.py``)::

      v1 <graceful|forced> <grace seconds|inf> <cancelled|deadline> <TypeName> <message...>

  Fields are separated by single spaces; the message is the rest of the line (control
  characters replaced by spaces, at most 1,000 characters). A shell reads it with
  ``read -r version mode grace kind type message <&"$TRIO_CONTEXT_CANCEL_FD"``.
- the ``trio-context-cause`` HTTP header, the same fields as ``key=value`` pairs with the message
  percent-encoded: ``kind=deadline; type=DeadlineExceeded; graceful=1; grace=0; message=...``.

Both parsers are strict about structure and raise :class:`ValueError` only.
"""

from __future__ import annotations

import math
import re
from typing import Final, Literal
from urllib.parse import quote, unquote

from .._core import ContextCancelled, ContextError, DeadlineExceeded

__all__ = ["CAUSE_HEADER", "RemoteCause"]

#: The HTTP response header that carries a :class:`RemoteCause`.
CAUSE_HEADER: Final = "trio-context-cause"

Kind = Literal["cancelled", "deadline"]
_MAX_MESSAGE: Final = 1000
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_TYPE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,199}")


class RemoteCause(Exception):
    """The cause of a context that was ended by the other side of a hop (a parent process, an
    upstream server): what ended it there, as data.

    Attributes:
        type_name: the name of the cause's type on the other side (``"DeadlineExceeded"``,
            ``"SignalReceived"``, ``"KeyboardInterrupt"``...).
        message: its message (may be empty).
        graceful: True for "please stop" (finish the step, save partial results), False for
            "stop now".
        grace: seconds the receiver has to finish before it is stopped by force
            (``math.inf``: no limit was set; 0 for a forced stop).
        kind: ``"deadline"`` when the other side ended by a deadline, else ``"cancelled"``.

    Immutable once made; copies and pickles. Example::

        cause = tc.cause(ctx)
        if isinstance(cause, tc.RemoteCause) and cause.graceful:
            save_partial_results(deadline=cause.grace)
    """

    def __init__(
        self,
        type_name: str,
        message: str = "",
        *,
        graceful: bool = True,
        grace: float = math.inf,
        kind: Kind = "cancelled",
    ) -> None:
        how = "graceful" if graceful else "forced"
        left = "" if math.isinf(grace) else f", {grace:g} s of grace"
        text = f"{type_name}: {message}" if message else type_name
        super().__init__(f"{text} ({how} stop from the other side{left})")
        self.type_name = type_name
        self.message = message
        self.graceful = graceful
        self.grace = grace
        self.kind: Kind = kind

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.type_name, self.message, self.graceful, self.grace, self.kind))

    def __repr__(self) -> str:
        return (
            f"RemoteCause({self.type_name!r}, {self.message!r}, graceful={self.graceful}, "
            f"grace={self.grace!r}, kind={self.kind!r})"
        )

    @classmethod
    def of(
        cls, err: ContextError | None, cause: BaseException | None, *, graceful: bool, grace: float
    ) -> RemoteCause:
        """Describe a local context's ``err`` and ``cause`` for the other side of a hop. A
        :class:`RemoteCause` that came from further away keeps its original type and message."""
        kind: Kind = "deadline" if isinstance(err, DeadlineExceeded) else "cancelled"
        if isinstance(cause, RemoteCause):
            return cls(
                cause.type_name, cause.message, graceful=graceful, grace=grace, kind=cause.kind
            )
        what = cause if cause is not None else err
        name = type(what).__name__ if what is not None else "ContextCancelled"
        return cls(name, _clean(str(what or "")), graceful=graceful, grace=grace, kind=kind)

    def error(self) -> ContextError:
        """A fresh local error of the matching kind (:class:`DeadlineExceeded` or
        :class:`ContextCancelled`) whose ``__cause__`` is this remote cause."""
        err: ContextError
        if self.kind == "deadline":
            err = DeadlineExceeded("deadline exceeded on the other side of a hop")
        else:
            err = ContextCancelled("cancelled on the other side of a hop")
        err.__cause__ = self
        return err

    # -- the cancel line ----------------------------------------------------------------------

    def to_line(self) -> str:
        """The cancel-channel line for this cause, with its ``\\n``."""
        mode = "graceful" if self.graceful else "forced"
        grace = "inf" if math.isinf(self.grace) else f"{max(0.0, self.grace):.3f}"
        name = self.type_name if _TYPE_NAME.fullmatch(self.type_name) else "Exception"
        return f"v1 {mode} {grace} {self.kind} {name} {_clean(self.message)}".rstrip() + "\n"

    @classmethod
    def from_line(cls, line: str) -> RemoteCause:
        """Parse one cancel-channel line (with or without its ``\\n``).

        Raises:
            ValueError: the line is not in the ``v1`` format.
        """
        parts = line.rstrip("\r\n").split(" ", 5)
        if len(parts) < 5 or parts[0] != "v1":
            raise ValueError(f"not a v1 cancel line: {line[:80]!r}")
        _, mode, grace_text, kind, name = parts[:5]
        message = parts[5] if len(parts) == 6 else ""
        if mode not in ("graceful", "forced"):
            raise ValueError(f"cancel line: mode must be graceful or forced, not {mode[:20]!r}")
        if kind not in ("cancelled", "deadline"):
            raise ValueError(f"cancel line: kind must be cancelled or deadline, not {kind[:20]!r}")
        if not _TYPE_NAME.fullmatch(name):
            raise ValueError(f"cancel line: bad type name {name[:40]!r}")
        return cls(
            name,
            message,
            graceful=mode == "graceful",
            grace=_parse_grace(grace_text),
            kind="deadline" if kind == "deadline" else "cancelled",
        )

    # -- the HTTP header ----------------------------------------------------------------------

    def to_header(self) -> str:
        """The ``trio-context-cause`` header value for this cause."""
        grace = "inf" if math.isinf(self.grace) else f"{max(0.0, self.grace):.3f}"
        name = self.type_name if _TYPE_NAME.fullmatch(self.type_name) else "Exception"
        return (
            f"kind={self.kind}; type={name}; graceful={int(self.graceful)}; grace={grace}; "
            f"message={quote(_clean(self.message), safe='')}"
        )

    @classmethod
    def from_header(cls, value: str) -> RemoteCause:
        """Parse a ``trio-context-cause`` header value.

        Raises:
            ValueError: the value is malformed.
        """
        fields: dict[str, str] = {}
        for part in value[:4096].split(";"):
            key, sep, val = part.strip().partition("=")
            if not sep:
                raise ValueError(f"{CAUSE_HEADER}: expected key=value, got {part[:40]!r}")
            fields[key] = val
        try:
            kind, name = fields["kind"], fields["type"]
            graceful, grace = fields["graceful"], fields["grace"]
        except KeyError as missing:
            raise ValueError(f"{CAUSE_HEADER}: missing {missing}") from None
        if kind not in ("cancelled", "deadline") or graceful not in ("0", "1"):
            raise ValueError(f"{CAUSE_HEADER}: bad kind or graceful in {value[:80]!r}")
        if not _TYPE_NAME.fullmatch(name):
            raise ValueError(f"{CAUSE_HEADER}: bad type name {name[:40]!r}")
        return cls(
            name,
            _clean(unquote(fields.get("message", ""))),
            graceful=graceful == "1",
            grace=_parse_grace(grace),
            kind="deadline" if kind == "deadline" else "cancelled",
        )


def _rebuild(type_name: str, message: str, graceful: bool, grace: float, kind: Kind) -> RemoteCause:
    return RemoteCause(type_name, message, graceful=graceful, grace=grace, kind=kind)


def _clean(message: str) -> str:
    return _CONTROL.sub(" ", message)[:_MAX_MESSAGE]


def _parse_grace(text: str) -> float:
    if text == "inf":
        return math.inf
    try:
        grace = float(text)
    except ValueError:
        raise ValueError(f"grace must be seconds or inf, not {text[:20]!r}") from None
    if not math.isfinite(grace) or grace < 0:
        raise ValueError(f"grace must be non-negative seconds or inf, not {text[:20]!r}")
    return grace
