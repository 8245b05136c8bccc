"""Binding contexts to trio: ``ctx.scope()``, ``ctx.done`` and the task-local current context.

A bound scope is a fresh trio ``CancelScope`` per ``with``: it carries the context's deadline
natively, is registered with the context so ``cancel()`` (from any thread) reaches it, and sets
the task-local ``current()`` context.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Final

import trio

from ._common import _INF, _lock

if TYPE_CHECKING:
    from ._base import Context

__all__ = ["Done"]


class Done:
    """The read-only event of a context: set once the context is done, never cleared.

    Successive reads of ``ctx.done`` return the same object while anyone holds it. Only the
    context sets it.
    """

    __slots__ = ("__weakref__", "_ctx")

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def is_set(self) -> bool:
        """Return True once the context is done. Safe from any thread."""
        return self._ctx.err is not None

    async def wait(self) -> None:
        """Wait until the context is done (return at once, after a checkpoint, if it is).

        Raises:
            trio.Cancelled: when the *calling* code is cancelled while waiting.
        """
        src = self._ctx._canceller()
        if src is not None and src._err is not None:
            await trio.lowlevel.checkpoint()
            return
        # A deadline that is already due needs no clock read here: the bound scope below is
        # born cancelled, and its exit settles the context.
        with _Binding(self._ctx, False, True):  # current() unchanged, swallow
            await trio.sleep_forever()

    def __repr__(self) -> str:
        return f"<trio_context.Done {'set' if self.is_set() else 'unset'} of {self._ctx._label()}>"


class _Binding:
    """What ``ctx.scope()`` returns: a trio ``CancelScope`` tied to the context for one ``with``.

    A hot path (``benchmarks/core.py`` holds it to 1.3x a bare trio scope): keep it lean."""

    __slots__ = ("_bind", "_cs", "_ctx", "_src", "_swallow", "_var_token")

    def __init__(self, ctx: Context, bind: bool, swallow: bool) -> None:
        self._ctx = ctx
        self._src = ctx._canceller()
        self._bind = bind
        self._swallow = swallow
        self._cs: trio.CancelScope | None = None
        self._var_token: Token[Context] | None = None

    def __enter__(self) -> trio.CancelScope:
        if self._cs is not None:
            raise RuntimeError(
                "this scope() was already entered; call ctx.scope() again for each 'with'"
            )
        src = self._src
        if src is None:
            cs = trio.CancelScope()
        else:
            try:
                token = trio.lowlevel.current_trio_token()
            except RuntimeError:
                raise RuntimeError("ctx.scope() must be used inside a running trio loop") from None
            deadline = src._scope_deadline()
            # Passing deadline= costs trio as much again as the scope itself: only when needed.
            cs = trio.CancelScope() if deadline == _INF else trio.CancelScope(deadline=deadline)
            scopes = src._scopes
            if scopes is None:
                with _lock:
                    scopes = src._scopes
                    if scopes is None:
                        scopes = src._scopes = {}
            scopes[cs] = token
            if src._err is not None:
                cs.cancel()
        self._cs = cs
        cs.__enter__()
        if self._bind:
            self._var_token = _current.set(self._ctx)
        return cs

    def __exit__(
        self,
        etype: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        cs = self._cs
        assert cs is not None, "scope() exited without being entered"
        src = self._src
        try:
            suppressed = cs.__exit__(etype, exc, tb)
        finally:
            if self._var_token is not None:
                _current.reset(self._var_token)
            if src is not None:
                scopes = src._scopes
                if scopes is not None:
                    scopes.pop(cs, None)
        if cs.cancelled_caught and src is not None and src._poll() is not None:
            if self._swallow:
                return True
            src._raise_err()
        return suppressed


# Set by every bound scope; read by trio_context.current(), whose default is background().
_current: Final[ContextVar[Context]] = ContextVar("trio_context.current")

Done.__module__ = "trio_context"
