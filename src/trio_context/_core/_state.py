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
import weakref
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

    __slots__ = ("ctx", "task", "when", "where")

    def __init__(self, ctx: CancelState, task: str, where: str, when: float | None) -> None:
        self.ctx = weakref.ref(ctx)  # weak: the origin is kept by the context it names
        self.task = task
        self.where = where
        self.when = when

    @classmethod
    def deadline(cls, ctx: CancelState, when: float) -> Origin:
        return cls(ctx, "deadline", "deadline", when)

    @classmethod
    def capture(cls, ctx: CancelState, frame: FrameType) -> Origin:
        """The caller of ``cancel()``: its task (or thread), trio time and first frame outside
        this package, from ``frame`` (``cancel()``'s caller) up."""
        try:
            task = trio.lowlevel.current_task().name
            when: float | None = trio.current_time()
        except RuntimeError:
            task = f"thread {threading.current_thread().name}"
            when = ctx._clock.current_time() if ctx._clock is not None else None
        while frame.f_back is not None and frame.f_code.co_filename.startswith(PACKAGE_DIR):
            frame = frame.f_back
        return cls(ctx, task, f"{frame.f_code.co_filename}:{frame.f_lineno}", when)


# Frames under the package are the library's own, skipped when looking for cancel()'s caller.
PACKAGE_DIR: Final = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
