"""The cancellation state a context shares, and the record of who ended it.

Every context has a *canceller*: the nearest :class:`~trio_context.CancelContext` at or above it
whose cancellation state it shares (``None``: it can never be cancelled, e.g. ``background()``
or ``without_cancel()``). A ``CancelContext`` is its own canceller; a ``with_value`` context
has its parent's. :class:`Context` reads that state only through the :class:`CancelState`
protocol below, so the read-only side (``_context.py``) never imports the cancellable side
(``_cancel.py``), which builds on it.
"""

from __future__ import annotations

import os
import threading
from types import FrameType
from typing import Final, NoReturn, Protocol

import trio

from ._callbacks import AfterFunc
from ._errors import ContextError


class CancelState(Protocol):
    """What a context reads from its canceller. Implemented by ``CancelContext``.

    ``_err``, ``_cause`` and ``_origin`` are set together, once, under the core's lock, by the
    first cancel or expiry. Everything else is read without the lock (a stale read is at most
    one lazy-expiry check late, and ``_poll()`` settles it)."""

    _err: ContextError | None
    _cause: BaseException | None
    _origin: Origin | None
    _clock: trio.abc.Clock | None
    _deadline: float
    _scopes: dict[trio.CancelScope, trio.lowlevel.TrioToken] | None
    _after: list[AfterFunc] | None

    def _poll(self) -> ContextError | None:
        """``_err``, expiring a deadline that is due first (any thread)."""
        ...

    def _current_deadline(self) -> float:
        """The deadline as ``ctx.deadline`` reports it (an idle deadline moves)."""
        ...

    def _scope_deadline(self) -> float:
        """The deadline bound trio scopes carry natively."""
        ...

    def _raise_err(self) -> NoReturn:
        """Raise a fresh copy of ``_err``, chained from the cause."""
        ...

    def _label(self) -> str: ...


class Origin:
    """Who ended a context, where and when: the first line of ``explain()``."""

    __slots__ = ("ctx_id", "file", "line", "task", "when")

    ctx_id: int  # id() of the context whose cancel or deadline it was (an ancestor or itself)
    task: str  # the task (or thread) that called cancel(), or "deadline"
    file: str  # where cancel() was called ("deadline" for a deadline)
    line: int
    when: float | None  # trio time

    @property
    def where(self) -> str:
        """``file:line`` of the ``cancel()`` call, or ``"deadline"``."""
        return self.file if self.task == "deadline" else f"{self.file}:{self.line}"

    @classmethod
    def deadline(cls, ctx: CancelState, when: float) -> Origin:
        origin = object.__new__(cls)
        origin.ctx_id = id(ctx)
        origin.task = origin.file = "deadline"
        origin.line = 0
        origin.when = when
        return origin

    @classmethod
    def capture(cls, ctx: CancelState, frame: FrameType, now: float | None) -> Origin:
        """The caller of ``cancel()``: its task (or thread), the trio time (``now`` when the
        caller read the context's clock already) and the first frame outside this package,
        from ``frame`` (``cancel()``'s caller) up. Cheap: it runs at every ``with ctx:`` exit."""
        origin = object.__new__(cls)
        origin.ctx_id = id(ctx)
        try:
            origin.task = trio.lowlevel.current_task().name
            origin.when = trio.current_time() if now is None else now
        except RuntimeError:
            origin.task = f"thread {threading.current_thread().name}"
            origin.when = ctx._clock.current_time() if ctx._clock is not None else now
        while frame.f_back is not None and frame.f_code.co_filename.startswith(PACKAGE_DIR):
            frame = frame.f_back
        origin.file = frame.f_code.co_filename
        origin.line = frame.f_lineno
        return origin


# Frames under the package are the library's own, skipped when looking for cancel()'s caller.
PACKAGE_DIR: Final = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
