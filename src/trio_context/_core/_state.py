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
import sys
import threading
from types import FrameType, TracebackType
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
    _token: trio.lowlevel.TrioToken | None  # the run of _clock
    _shield: bool  # bound scopes shield their body (see Context._shield)
    _moves: bool  # the deadline moves (idle contexts)

    @property
    def _follow(self) -> CancelState | None:
        """The nearest ancestor whose deadline moves (read-only here)."""
        ...

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
        """``file:line`` of the ``cancel()`` call, ``"deadline"``, or :data:`UNKNOWN`."""
        if self.task == "deadline" or self.file == UNKNOWN:
            return self.file
        return f"{self.file}:{self.line}"

    @classmethod
    def deadline(cls, ctx: CancelState, when: float) -> Origin:
        origin = object.__new__(cls)
        origin.ctx_id = id(ctx)
        origin.task = origin.file = "deadline"
        origin.line = 0
        origin.when = when
        return origin

    @classmethod
    def capture(cls, ctx: CancelState, frame: FrameType | None, now: float | None) -> Origin:
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
        # Called from C (an atexit hook, _thread.start_new_thread(ctx.cancel, ())), cancel()
        # may have no Python caller at all (frame is None): the origin is then unknown.
        while (
            frame is not None
            and frame.f_back is not None
            and frame.f_code.co_filename.startswith(PACKAGE_DIR)
        ):
            frame = frame.f_back
        if frame is None or frame.f_code.co_filename.startswith(PACKAGE_DIR):
            origin.file, origin.line = UNKNOWN, 0
        else:
            origin.file = frame.f_code.co_filename
            origin.line = frame.f_lineno
        return origin


def raise_fresh(state: CancelState) -> NoReturn:
    """Raise a fresh copy of ``state._err``, chained from its cause.

    Called while the body's ``trio.Cancelled`` is being handled (a bound scope's exit), the
    copy keeps it visible: as ``__context__`` when there is no separate cause (printed as
    "During handling of the above exception..."), else as a note saying where the body was
    interrupted (``__cause__`` is the cause, and Python prints only one of the two). The
    local is dropped on the way out, so the traceback makes no reference cycle."""
    err, cause = state._err, state._cause
    assert err is not None
    fresh = type(err)(*err.args)
    try:
        if cause is err:
            raise fresh
        body = sys.exception()
        if body is not None:
            where = _user_frame(body.__traceback__)
            if where is not None:
                fresh.add_note(f"(the body was interrupted at {where})")
        raise fresh from cause
    finally:
        del fresh


def _user_frame(tb: TracebackType | None) -> str | None:
    """The innermost traceback entry outside trio and this package: where a body was
    interrupted."""
    found = None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not name.startswith(_LIBRARY_DIRS):
            found = f"{name}:{tb.tb_lineno} in {tb.tb_frame.f_code.co_name}"
        tb = tb.tb_next
    return found


# Frames under the package are the library's own, skipped when looking for cancel()'s caller.
PACKAGE_DIR: Final = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# trio's and its ``outcome`` helper's frames: where a cancellation is delivered, not the body.
_LIBRARY_DIRS: Final = (
    PACKAGE_DIR,
    os.path.dirname(os.path.abspath(trio.__file__)),
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(trio.__file__))), "outcome"),
)
# Origin.file when cancel() had no Python caller (explain() says so).
UNKNOWN: Final = "an unknown origin (no Python caller)"
