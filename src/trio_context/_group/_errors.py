"""What a task group does with an exception from one of its tasks or its body.

The rules (see :func:`trio_context.open_group`): trio's cancellation is handed back to trio;
the group's *own* cancellation (``group.context.err``, or a fresh copy of it as ``check()`` and
``scope()`` raise) is dropped, and only noted as an interruption; anything else is a real error:
recorded in order, and the first one cancels the group's context with it as cause. At the end,
the real errors are raised together as one exception group.

Known limit: an unrelated ``ContextError`` indistinguishable from the group's err (same type,
message and cause), raised after the group is done, is taken for it.

Everything here runs in the trio thread.
"""

from __future__ import annotations

from types import TracebackType
from typing import cast, final

import attrs
import trio

from .._core import CancelContext, ContextError

__all__ = ["GroupErrors", "exception_group"]


@final
@attrs.define(eq=False)
class GroupErrors:
    """The real errors of one group (``errors``, in order) and whether its own cancellation
    interrupted the body or a task (``interrupted``)."""

    _context: CancelContext = attrs.field(alias="context")
    errors: list[BaseException] = attrs.field(factory=list[BaseException], init=False)
    interrupted: bool = attrs.field(default=False, init=False)
    cancel_on_error: bool = attrs.field(default=True, init=False)  # False: Go's zero Group

    def is_own(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the group context's own err (or a fresh copy of it, as
        ``check()`` and ``scope()`` raise: same type, message and cause)."""
        if not isinstance(exc, ContextError):
            return False
        err = self._context.err
        if err is None:
            return False
        if exc is err:
            return True
        if type(exc) is not type(err) or exc.args != err.args:
            return False
        cause = self._context.cause
        return exc.__cause__ is (None if cause is err else cause)

    def sort(self, exc: BaseException) -> BaseException | None:
        """Sort an exception from a task or the body: return trio's cancellation (to re-raise),
        drop the group's own cancellation, record the rest (and cancel the group)."""
        if isinstance(exc, trio.Cancelled | GeneratorExit):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            eg = cast(BaseExceptionGroup[BaseException], exc)
            cancelled, rest = eg.split((trio.Cancelled, GeneratorExit))
            if rest is not None:
                own, real = rest.split(lambda e: self.is_own(e))  # a function: 3.11 wants one
                self.interrupted |= own is not None
                if real is not None:
                    self.record(real)
            return cancelled
        if self.is_own(exc):
            self.interrupted = True
        else:
            self.record(exc)
        return None

    def record(self, exc: BaseException) -> None:
        """Keep ``exc`` as a real error and cancel the group with it (the first error wins:
        later ones find the context done), unless the group keeps going after errors."""
        self.errors.append(exc)
        if self.cancel_on_error:
            self._context.cancel(exc)


def exception_group(errors: list[BaseException]) -> BaseExceptionGroup[BaseException]:
    """The exception a group with real ``errors`` raises (an ``ExceptionGroup`` when every
    error is an ``Exception``: ``BaseExceptionGroup`` itself decides)."""
    return BaseExceptionGroup(f"{len(errors)} error(s) in a trio_context task group", errors)


@final
class Triage:
    """``with triage:`` around a task of the group: trio's cancellation goes on, the group's own
    cancellation is dropped, and a real error is recorded for the group (see
    :meth:`GroupErrors.sort`). Stateless, so one serves every task of a group."""

    __slots__ = ("_errors",)

    def __init__(self, errors: GroupErrors) -> None:
        self._errors = errors

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        etype: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            return False
        rest = self._errors.sort(exc)
        if rest is exc:
            return False  # goes on unchanged, its traceback intact
        if rest is None:
            return True  # recorded for the group, or the group's own cancellation
        try:
            raise rest from None  # the part of a group that must go on (trio's cancellations)
        finally:
            del rest  # its traceback holds this frame: no cycle
