"""Binding contexts to trio: ``ctx.scope()``, ``ctx.done`` and the task-local current context.

A bound scope is a fresh trio ``CancelScope`` per ``with``: it carries the context's deadline
natively, is registered with the context so ``cancel()`` (from any thread) reaches it, and sets
the task-local ``current()`` context.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType
from typing import Final, Protocol

import trio

from .._trio_private import run_token
from ._common import _INF, _lock, deadline_in
from ._errors import ContextError
from ._state import CancelState

__all__ = ["Bindable", "Done", "ScopeTie", "current_var"]


class Bindable(Protocol):
    """What binding needs of a context (``Context`` in ``_context.py`` implements it)."""

    @property
    def _canceller(self) -> CancelState | None: ...

    _shield: bool

    @property
    def err(self) -> ContextError | None: ...

    def _label(self) -> str: ...


class Done:
    """The read-only event of a context: set once the context is done, never cleared.

    Successive reads of ``ctx.done`` return the same object while anyone holds it. Only the
    context sets it.
    """

    __slots__ = ("__weakref__", "_ctx")

    def __init__(self, ctx: Bindable) -> None:
        self._ctx = ctx

    def is_set(self) -> bool:
        """Return True once the context is done. Safe from any thread."""
        return self._ctx.err is not None

    async def wait(self) -> None:
        """Wait until the context is done (return at once, after a checkpoint, if it is).

        Raises:
            trio.Cancelled: when the *calling* code is cancelled while waiting.
        """
        canceller = self._ctx._canceller
        if canceller is not None and canceller._err is not None:
            await trio.lowlevel.checkpoint()
            return
        # A deadline that is already due needs no clock read here: the bound scope below is
        # born cancelled, and its exit settles the context. The loop is a guard: the scope
        # only ends early when the context is done, and wait() never returns before that.
        while True:
            with _Binding(self._ctx, self._ctx._canceller, False, True):
                await trio.sleep_forever()
            if self.is_set():
                return

    def __repr__(self) -> str:
        return f"<trio_context.Done {'set' if self.is_set() else 'unset'} of {self._ctx._label()}>"


class _Binding:
    """What ``ctx.scope()`` returns: a trio ``CancelScope`` tied to the context for one ``with``.

    A hot path (``benchmarks/core.py`` holds it to 1.15x a bare trio scope): keep it lean."""

    __slots__ = ("_bind", "_canceller", "_cs", "_ctx", "_swallow", "_var_token")

    def __init__(
        self, ctx: Bindable, canceller: CancelState | None, bind: bool, swallow: bool
    ) -> None:
        # (CancelContext.scope() fills one in itself: no __init__ frame on the hot path.)
        self._ctx = ctx
        self._canceller = canceller
        self._bind = bind  # set current() to ctx inside
        self._swallow = swallow  # swallow the context's own cancellation (move_on)
        self._cs: trio.CancelScope | None = None
        self._var_token: Token[Bindable] | None = None

    def __enter__(self) -> trio.CancelScope:
        if self._cs is not None:
            raise RuntimeError(
                "this scope() was already entered; call ctx.scope() again for each 'with'"
            )
        canceller = self._canceller
        if canceller is None:
            # Shielded when bound below without_cancel(): work that must outlive a cancel.
            cs = trio.CancelScope(shield=self._bind and self._ctx._shield)
        else:
            token = run_token()
            if token is None:
                raise RuntimeError("ctx.scope() must be used inside a running trio loop")
            deadline = canceller._deadline
            if canceller._clock is not None and canceller._token is not token:
                deadline = _foreign_deadline(canceller, deadline)
            # Passing deadline= costs trio as much again as the scope itself: only when needed.
            if self._bind and canceller._shield:
                cs = trio.CancelScope(deadline=deadline, shield=True)
            elif deadline == _INF:
                cs = trio.CancelScope()
            else:
                cs = trio.CancelScope(deadline=deadline)
            scopes = canceller._scopes
            if scopes is None:
                with _lock:
                    scopes = canceller._scopes
                    if scopes is None:
                        scopes = canceller._scopes = {}
            scopes[cs] = token
            if canceller._err is not None:
                cs.cancel()
        self._cs = cs
        cs.__enter__()
        if self._bind:
            self._var_token = current_var.set(self._ctx)
        return cs

    def __exit__(
        self,
        etype: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        cs = self._cs
        assert cs is not None, "scope() exited without being entered"
        canceller = self._canceller
        try:
            suppressed = cs.__exit__(etype, exc, tb)
        finally:
            if self._var_token is not None:
                current_var.reset(self._var_token)
            if canceller is not None:
                scopes = canceller._scopes
                if scopes is not None:
                    scopes.pop(cs, None)
        if cs.cancelled_caught and canceller is not None and canceller._poll() is not None:
            if self._swallow:
                return True
            canceller._raise_err()
        return suppressed


def _foreign_deadline(canceller: CancelState, deadline: float) -> float:
    """The deadline of a context made in another trio run, on this run's clock.

    Raises:
        RuntimeError: it cannot be translated (a ``MockClock`` run), or the context's deadline
            moves (an idle context: its timer lives in the run that made it).
    """
    if canceller._poll() is not None:
        return deadline  # done: the scope is cancelled at once anyway
    if canceller._moves or canceller._follow is not None:
        raise RuntimeError(
            f"{canceller._label()} has an idle deadline set in another trio run; idle "
            "contexts work in the run that made them"
        )
    assert canceller._clock is not None
    if deadline == _INF:
        return deadline
    return deadline_in(deadline, canceller._clock, trio.lowlevel.current_clock())


class ScopeTie:
    """Ties a trio scope that someone else entered (a nursery's) to a context as ``scope()``
    would: the scope gets the context's deadline, the context's end cancels it (from any
    thread), and ``current()`` is the context until :meth:`untie`. ``open_group`` ties its
    nursery's scope, so a group costs one trio scope, not two. Trio thread only.

    Raises:
        RuntimeError: outside a trio run.
    """

    __slots__ = ("_canceller", "_cs", "_var_token")

    def __init__(self, ctx: Bindable, cs: trio.CancelScope) -> None:
        token = run_token()
        if token is None:
            raise RuntimeError("ScopeTie must be used inside a running trio loop")
        canceller = self._canceller = ctx._canceller
        self._cs = cs
        if canceller is not None:
            if canceller._deadline < cs.deadline:
                cs.deadline = canceller._deadline
            scopes = canceller._scopes
            if scopes is None:
                with _lock:
                    scopes = canceller._scopes
                    if scopes is None:
                        scopes = canceller._scopes = {}
            scopes[cs] = token
            if canceller._err is not None:
                cs.cancel()
        self._var_token = current_var.set(ctx)

    def untie(self) -> bool:
        """Undo the tie (in the same task, once the scope has exited). Return True when the
        context's end interrupted the scope (it caught a cancellation, and the context is
        done): the caller raises the context's err, as ``scope()`` does."""
        current_var.reset(self._var_token)
        canceller = self._canceller
        if canceller is None:
            return False
        scopes = canceller._scopes
        if scopes is not None:
            scopes.pop(self._cs, None)
        return self._cs.cancelled_caught and canceller._poll() is not None


# Set by every bound scope; read by trio_context.current(), whose default is background().
current_var: Final[ContextVar[Bindable]] = ContextVar("trio_context.current")
