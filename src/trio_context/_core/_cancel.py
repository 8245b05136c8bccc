"""Cancellation: :class:`CancelContext` and how a cancel or a deadline spreads down the tree.

``cancel()`` marks a whole subtree done (first cancel wins, under one lock), then cancels the
bound trio scopes (through each run's token when called from another thread) and dispatches the
after-funcs. Deadlines are observed lazily, so the walk also settles deadlines that passed unseen.
"""

from __future__ import annotations

import sys
import weakref
from contextvars import Token
from types import FrameType, TracebackType
from typing import Any, NoReturn

import trio

from .._trio_private import run_token
from ._callbacks import AfterFunc
from ._common import (
    _INF,
    _lock,
    check_cause,
    check_number,
    check_seconds,
    clock_for,
    deadline_in,
)
from ._context import Context, child_refs, forget_child
from ._errors import ContextCancelled, ContextError, DeadlineExceeded
from ._scope import Bindable, _Binding, _foreign_deadline, current_var
from ._state import Origin, raise_fresh
from ._timers import timers


class CancelContext(Context):
    """A context that can be cancelled: made by :func:`with_cancel`, :func:`with_timeout` and
    :func:`with_deadline`.

    ``cancel()`` may be called from any thread. ``with ctx:`` binds a scope like
    :meth:`Context.scope` and cancels the context on exit.
    """

    __slots__ = (
        "_after",
        "_cause",
        "_clock",
        "_deadline",
        "_deadline_owner",
        "_err",
        "_follow",
        "_origin",
        "_scopes",
        "_token",
        "_with_binding",
    )

    # True for contexts whose deadline moves (IdleContext): their children follow it.
    _moves: bool = False

    _deadline: float  # own or inherited deadline; only ever moves earlier
    # The context whose expiry that deadline is; None: this one (or no deadline). Never the
    # context itself: that reference cycle would leave it to the cycle collector.
    _deadline_owner: CancelContext | None
    _clock: trio.abc.Clock | None  # the trio clock the deadline is on (None: no deadline)
    _token: trio.lowlevel.TrioToken | None  # the run of that clock
    _err: ContextError | None  # set once, under _lock, by the first cancel or expiry
    _cause: BaseException | None  # before done: the cause to use on expiry (with_timeout(cause=))
    _origin: Origin | None
    _scopes: dict[trio.CancelScope, trio.lowlevel.TrioToken] | None  # bound trio scopes
    _after: list[AfterFunc] | None
    # A `with ctx:` block's trio scope, the run's token and the current() reset token; None
    # before the block, False after it (a context is entered once, like a trio CancelScope).
    _with_binding: tuple[trio.CancelScope, trio.lowlevel.TrioToken, Token[Bindable]] | bool | None
    _follow: CancelContext | None  # the nearest ancestor whose deadline moves (idle), if any

    def cancel(self, cause: BaseException | None = None) -> None:
        """Cancel the context: set ``err`` to :class:`ContextCancelled` (``cause`` or the err
        itself as cause), cancel every descendant and every bound scope, run the
        :func:`after_func` callbacks and set ``done``.

        Idempotent: the first call (or the deadline) wins; later calls do nothing. Safe from
        any thread.

        Raises:
            TypeError: ``cause`` is not an exception.
        """
        if cause is not None:
            check_cause(cause)
        if self._err is None:
            # f_back, not _getframe(1): called from C (atexit, a raw thread) there is no caller.
            self._cancel(cause, sys._getframe().f_back)

    def _cancel(self, cause: BaseException | None, frame: FrameType | None) -> None:
        """``cancel()`` called from ``frame`` (``cause`` checked)."""
        now = None
        if self._clock is not None:  # a deadline that passed unseen wins (first cause)
            now = self._clock.current_time()
            if self._is_due(now):
                self._on_due()
                if self._err is not None:
                    return
        err = ContextCancelled("context cancelled")
        origin = Origin.capture(self, frame, now)
        if _finish_tree(self, err, err if cause is None else cause, origin):
            self._detach()

    def cancel_at(self, deadline: float, *, cause: BaseException | None = None) -> None:
        """Move the deadline earlier, to ``deadline`` on trio's clock (.NET's ``CancelAfter``).

        A deadline later than the current one is ignored: deadlines only move earlier. On
        expiry the context ends with :class:`DeadlineExceeded` and ``cause``. Must be called
        in the trio thread of a running loop.

        Raises:
            TypeError: ``deadline`` is not a number, or ``cause`` not an exception.
            ValueError: ``deadline`` is NaN.
            RuntimeError: outside a trio run.
        """
        deadline = check_number("deadline", deadline)
        check_cause(cause)
        clock = clock_for("cancel_at()")
        if deadline >= _deadline_on(self, clock) or self._poll() is not None:
            return
        self._cause = cause
        _move_deadline(self, deadline, clock)
        if deadline <= clock.current_time():
            self._expire()
        else:
            timers().add(deadline, self)

    def cancel_after(self, seconds: float, *, cause: BaseException | None = None) -> None:
        """Move the deadline earlier, to ``seconds`` from now; see :meth:`cancel_at`.

        Raises:
            TypeError, ValueError: ``seconds`` is not a number, negative or NaN.
            RuntimeError: outside a trio run.
        """
        seconds = check_seconds(seconds)
        self.cancel_at(clock_for("cancel_after()").current_time() + seconds, cause=cause)

    def __enter__(self) -> CancelContext:
        # Like scope(), written out: the block keeps its one trio scope in _with_binding (no
        # registration in _scopes), where the cancel walk finds it.
        if self._with_binding is not None:
            raise RuntimeError(
                f"{self._label()} was already entered: a CancelContext can be entered once, "
                "like a trio CancelScope; use ctx.scope() for each block"
            )
        token = run_token()
        if token is None:
            raise RuntimeError("`with ctx:` must be used inside a running trio loop")
        deadline = self._deadline
        if self._clock is not None and self._token is not token:
            deadline = _foreign_deadline(self, deadline)
        if self._shield:
            cs = trio.CancelScope(deadline=deadline, shield=True)
        elif deadline == _INF:
            cs = trio.CancelScope()
        else:
            cs = trio.CancelScope(deadline=deadline)
        cs.__enter__()
        self._with_binding = (cs, token, current_var.set(self))  # a cancel reaches cs from now
        if self._err is not None:
            cs.cancel()
        return self

    def __exit__(
        self,
        etype: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        block = self._with_binding
        assert isinstance(block, tuple), "CancelContext exited without being entered"
        cs = block[0]
        try:
            try:
                suppressed = cs.__exit__(etype, exc, tb)
            finally:
                current_var.reset(block[2])
                self._with_binding = False  # once only
            if cs.cancelled_caught and self._poll() is not None:
                self._raise_err()
            return suppressed
        finally:
            if self._err is None:
                self._cancel(None, sys._getframe(1))

    def scope(self) -> _Binding:
        # Context.scope() written out: no property read of the canceller (it is self), no
        # __init__ frame. The hot path of benchmarks/core.py's first figure.
        binding = object.__new__(_Binding)
        binding._ctx = binding._canceller = self
        binding._bind = True
        binding._swallow = False
        binding._cs = binding._var_token = None
        return binding

    scope.__doc__ = Context.scope.__doc__

    def move_on(self) -> _Binding:
        return _Binding(self, self, True, True)

    move_on.__doc__ = Context.move_on.__doc__

    # -- internals --------------------------------------------------------------------------

    @property
    def _canceller(self) -> CancelContext:
        """A cancellable context is its own canceller (a property: a slot would be a cycle)."""
        return self

    @_canceller.setter
    def _canceller(self, value: object) -> None:  # pyright: ignore[reportIncompatibleVariableOverride]
        raise AttributeError("a CancelContext is its own canceller")

    def _bound_scopes(self) -> list[trio.CancelScope]:
        """The trio scopes bound to this context's own state right now."""
        scopes = list(self._scopes or ())
        block = self._with_binding
        if block:
            scopes.append(block[0])  # type: ignore[index]
        return scopes

    def _scope_deadline(self) -> float:
        """The deadline bound trio scopes carry natively."""
        return self._deadline

    def _current_deadline(self) -> float:
        follow = self._follow
        if follow is None:
            return self._deadline
        return min(self._deadline, follow._current_deadline())

    def _poll(self) -> ContextError | None:
        """``err``, expiring the deadline first if it is due (safe from any thread)."""
        err = self._err
        if err is None and self._clock is not None and self._is_due(self._clock.current_time()):
            self._on_due()
            err = self._err
        return err

    def _is_due(self, now: float) -> bool:
        follow = self._follow
        return now >= self._deadline or (follow is not None and follow._is_due(now))

    def _on_due(self) -> None:
        follow = self._follow
        if follow is not None and follow._err is None and self._clock is not None:
            if follow._is_due(self._clock.current_time()):
                follow._on_due()  # the idle ancestor expired: its walk ends this one too
                return
        src = self._deadline_owner
        (src if src is not None else self)._expire()

    def _on_timer(self, now: float) -> float | None:
        """Called by the timer task at a due time; returns the next time to call it, if any."""
        if self._err is None and self._is_due(now):
            self._on_due()
        return None

    def _expired_before(self, when: float | None) -> tuple[float, BaseException | None] | None:
        """If this context's *own* deadline passed before an event at ``when`` (None: now),
        return (that deadline, the cause to use or None for the preset one)."""
        if self._deadline_owner is not None or self._clock is None:
            return None
        if (self._clock.current_time() if when is None else when) >= self._deadline:
            return self._deadline, None
        return None

    def _expire(self, when: float | None = None, cause: BaseException | None = None) -> None:
        """End the context with DeadlineExceeded as of trio time ``when`` (its deadline)."""
        if when is None:
            when = self._deadline
        err, cause = _deadline_err(self, cause)
        origin = Origin.deadline(self, when)
        if _finish_tree(self, err, cause, origin, when):
            self._detach()

    def _detach(self) -> None:
        parent = self._parent
        if parent is not None and parent._children is not None:
            forget_child(parent, weakref.ref(self))

    def _raise_err(self) -> NoReturn:
        raise_fresh(self)


def _deadline_err(
    ctx: CancelContext, cause: BaseException | None
) -> tuple[DeadlineExceeded, BaseException]:
    err = DeadlineExceeded("context deadline exceeded")
    if cause is None:
        cause = ctx._cause if ctx._cause is not None else err
    return err, cause


_Item = tuple[Context, ContextError, BaseException, Origin, "float | None"]


def _finish_tree(
    root: CancelContext,
    err: ContextError,
    cause: BaseException,
    origin: Origin,
    when: float | None = None,
) -> bool:
    """Mark ``root`` and every descendant done (first cancel wins), then cancel their bound
    scopes and dispatch their after-funcs. Iterative, so depth is unbounded. Returns False if
    ``root`` was already done.

    ``when`` is the trio time of the event (a deadline), None for "now" (a cancel). Deadlines
    are observed lazily, so a descendant whose own deadline passed before the event, unseen,
    is ended by that deadline instead, and its subtree with it: the state is what Go's timers
    would have made it, whoever looks first."""
    scopes: list[tuple[trio.CancelScope, trio.lowlevel.TrioToken]] | None = None
    callbacks: list[AfterFunc] | None = None
    # One hold of the (global) lock for the whole walk: the marking is atomic for every node
    # at once, and nothing a user wrote runs under it (scopes and after-funcs are served after).
    with _lock:
        if root._err is not None:
            return False
        root._err = err  # first: a child registering now sees it and is born done
        root._cause = cause
        root._origin = origin
        if root._scopes:
            scopes = list(root._scopes.items())
        if root._with_binding:
            scopes = scopes or []
            scopes.append(root._with_binding[:2])  # type: ignore[index]
        if root._after:
            callbacks, root._after = root._after, None
        if root._children is not None:  # else nothing to walk: the cheap common case
            scopes = scopes or []
            callbacks = callbacks or []
            _mark_below(root, err, cause, origin, when, scopes, callbacks)
    if scopes:
        here = run_token()
        for cs, token in scopes:
            if token is here:
                cs.cancel()
            else:
                try:
                    token.run_sync_soon(cs.cancel)
                except trio.RunFinishedError:
                    pass
    if callbacks:
        for cb in callbacks:
            cb.dispatch()
    return True


def _mark_below(
    root: CancelContext,
    err: ContextError,
    cause: BaseException,
    origin: Origin,
    when: float | None,
    scopes: list[tuple[trio.CancelScope, trio.lowlevel.TrioToken]],
    callbacks: list[AfterFunc],
) -> None:
    """The walk below a just-marked ``root`` (under the lock): mark, collect scopes and
    after-funcs."""
    stack: list[_Item] = [(root, err, cause, origin, when)]
    while stack:
        node, err, cause, origin, when = stack.pop()
        if node is root:
            pass
        elif not isinstance(node, CancelContext):
            if node._canceller is None:  # without_cancel(): cancellation stops here
                continue
        else:
            if node._err is not None:
                continue  # already done: so is its subtree
            expired = node._expired_before(when)
            if expired is not None:
                when, own_cause = expired
                err, cause = _deadline_err(node, own_cause)
                origin = Origin.deadline(node, when)
            node._err = err
            node._cause = cause
            node._origin = origin
            if node._scopes:
                scopes.extend(node._scopes.items())
            if node._with_binding:
                scopes.append(node._with_binding[:2])  # type: ignore[index]
            if node._after:
                callbacks.extend(node._after)
            node._after = None
        if node._children is not None:
            for ref in child_refs(node._children):
                child = ref()
                if (
                    child is None
                    or isinstance(child, CancelContext)
                    or child._canceller is not None
                ):
                    forget_child(node, ref)  # no longer a live child
                    if child is not None:
                        stack.append((child, err, cause, origin, when))
                # without_cancel() children stay: they outlive this node's cancellation


def _deadline_on(ctx: CancelContext, clock: trio.abc.Clock) -> float:
    """``ctx``'s deadline on ``clock`` (the running run's): translated when it was set in
    another run (see ``deadline_in``).

    Raises:
        RuntimeError: it cannot be translated (a ``MockClock`` on either side).
    """
    if ctx._clock is None or ctx._clock is clock:
        return ctx._deadline
    return deadline_in(ctx._deadline, ctx._clock, clock)


def _move_deadline(root: CancelContext, deadline: float, clock: trio.abc.Clock) -> None:
    """Tighten ``root``'s deadline and every descendant's that was later (trio thread)."""
    token = trio.lowlevel.current_trio_token()
    stack: list[Context] = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, CancelContext):
            if node._canceller is None:
                continue
        else:
            if node is not root:
                try:
                    if _deadline_on(node, clock) <= deadline:
                        continue
                except RuntimeError:
                    pass  # on a clock that cannot be compared: the new deadline replaces it
            node._deadline = deadline
            node._deadline_owner = None if node is root else root
            node._clock = clock
            node._token = token
            for cs in node._bound_scopes():
                cs.deadline = min(cs.deadline, node._scope_deadline())
        if node._children is not None:
            for ref in child_refs(node._children):
                child = ref()
                if child is not None:
                    stack.append(child)


def new_cancel(
    cls: type[CancelContext], parent: Context, kind: str, label_arg: object = None
) -> Any:
    # Written out rather than built on _new(): creation is a hot path (benchmarks/core.py
    # holds with_cancel() to 1.3x a trio.CancelScope()), so calls and property reads are few.
    # Every canceller is a CancelContext; the protocol type only keeps _context.py one-way.
    canceller: CancelContext | None = (
        parent if isinstance(parent, CancelContext) else parent._canceller  # type: ignore[assignment]
    )
    ctx = object.__new__(cls)
    ctx._parent = parent
    ctx._values = parent._values
    ctx._vpos = parent._vpos
    ctx._kind = kind
    ctx._label_arg = label_arg
    ctx._children = ctx._done = ctx._err = ctx._cause = ctx._origin = None
    ctx._scopes = ctx._after = ctx._with_binding = None
    ctx._shield = parent._shield
    if canceller is None:
        ctx._deadline = _INF
        ctx._deadline_owner = ctx._clock = ctx._token = ctx._follow = None
    else:
        ctx._follow = canceller if canceller._moves else canceller._follow
        ctx._deadline = canceller._deadline
        owner = canceller._deadline_owner
        ctx._deadline_owner = canceller if owner is None else owner
        ctx._clock = canceller._clock
        ctx._token = canceller._token
    # Register with the parent (its _add_child, inlined for the usual cases): only now, as a
    # concurrent cancel of the parent may walk the child at once.
    if parent._parent is not None:
        kids = parent._children
        if kids is None or (type(kids) is weakref.ref and kids() is None):
            parent._children = weakref.ref(ctx)
        else:
            parent._add_child(ctx)
    if canceller is not None and (
        canceller._err is not None
        or (canceller._clock is not None and canceller._poll() is not None)
    ):
        # Born done: the parent's err and cause (a concurrent parent cancel may get here first).
        with _lock:
            if ctx._err is None:
                ctx._err, ctx._cause, ctx._origin = (
                    canceller._err,
                    canceller._cause,
                    canceller._origin,
                )
        ctx._detach()
    return ctx
