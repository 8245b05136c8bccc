"""Contexts: a deadline, values, a cancel cause and a ``done`` event that travel with the work.

Rules for callers (the same as Go's ``context`` package):

- Pass a context explicitly, as the first argument of the functions that need it, named ``ctx``.
  Don't keep one in an object that outlives the work it belongs to.
- Every :class:`CancelContext` you make should be cancelled when its work is over; ``with ctx:``
  does it for you. A context that is dropped without ``cancel()`` costs nothing afterwards
  (parents hold children weakly), but cancelling says "this work is finished" to everything
  below it.
- Code that can wait, waits on *either* its result *or* ``ctx.done``: run it inside
  ``with ctx.scope():`` (or ``await ctx.run(afn)``) and trio interrupts it at its next
  checkpoint when the context is done. Code that cannot be interrupted (a worker thread)
  polls ``ctx.check()``.
- Values are for request-scoped data that crosses API boundaries (a request id, a tenant),
  not for optional parameters. Use keys that cannot collide (an object of your own).

Everything here is safe to read from any thread; ``cancel()`` may be called from any thread.
Deadlines are on the trio clock of the run that made them (``trio.current_time()``).
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Final, NoReturn, TypeVar, TypeVarTuple

import trio

from ._errors import ContextCancelled, ContextError, DeadlineExceeded

__all__ = [
    "CancelContext",
    "Context",
    "Done",
    "after_func",
    "background",
    "cause",
    "current",
    "todo",
    "with_cancel",
    "with_deadline",
    "with_timeout",
    "with_value",
    "without_cancel",
]

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")

logger: Final = logging.getLogger("trio_context")

# Protects the "first cancel wins" transition and the lazy creation of per-context containers.
# Reentrant, so a signal handler that cancels while this thread holds it cannot deadlock.
_lock: Final = threading.RLock()

_PACKAGE_DIR: Final = os.path.dirname(os.path.abspath(__file__))
_INF: Final = math.inf
_NO_VALUES: Final[dict[Hashable, Any]] = {}


def _trio_token_or_none() -> trio.lowlevel.TrioToken | None:
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None


class _Origin:
    """Who cancelled a context, where and when: the first line of ``explain()``."""

    __slots__ = ("ctx", "task", "when", "where")

    def __init__(self, ctx: CancelContext, task: str, where: str, when: float | None) -> None:
        self.ctx = weakref.ref(ctx)  # weak: the origin keeps its own _origin
        self.task = task
        self.where = where
        self.when = when

    @classmethod
    def capture(cls, ctx: CancelContext) -> _Origin:
        try:
            task = trio.lowlevel.current_task().name
            when: float | None = trio.current_time()
        except RuntimeError:
            task = f"thread {threading.current_thread().name}"
            when = ctx._clock.current_time() if ctx._clock is not None else None
        frame = sys._getframe(2)
        while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            frame = frame.f_back
        return cls(ctx, task, f"{frame.f_code.co_filename}:{frame.f_lineno}", when)


class Done:
    """The read-only event of a context: set once the context is done, never cleared.

    ``ctx.done`` returns the same object every time. Only the context sets it.
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
        if src is not None and src._poll() is not None:
            await trio.lowlevel.checkpoint()
            return
        with _Binding(self._ctx, bind=False, swallow=True):
            await trio.sleep_forever()

    def __repr__(self) -> str:
        return f"<trio_context.Done {'set' if self.is_set() else 'unset'} of {self._ctx._label()}>"


class _Binding:
    """What ``ctx.scope()`` returns: a trio ``CancelScope`` tied to the context for one ``with``."""

    __slots__ = ("_bind", "_cs", "_ctx", "_swallow", "_var_token")

    def __init__(self, ctx: Context, *, bind: bool, swallow: bool) -> None:
        self._ctx = ctx
        self._bind = bind
        self._swallow = swallow
        self._cs: trio.CancelScope | None = None
        self._var_token: Token[Context] | None = None

    def __enter__(self) -> trio.CancelScope:
        if self._cs is not None:
            raise RuntimeError(
                "this scope() was already entered; call ctx.scope() again for each 'with'"
            )
        src = self._ctx._canceller()
        if src is None:
            cs = trio.CancelScope()
        else:
            try:
                token = trio.lowlevel.current_trio_token()
            except RuntimeError:
                raise RuntimeError("ctx.scope() must be used inside a running trio loop") from None
            cs = trio.CancelScope(deadline=src._scope_deadline())
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
        src = self._ctx._canceller()
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


class Context:
    """A read-only context: deadline, values, cancellation state and ``done``.

    Contexts are made by :func:`background`, :func:`with_cancel`, :func:`with_timeout`,
    :func:`with_deadline`, :func:`with_value` and :func:`without_cancel`, never directly.
    Every attribute and method is safe to call from any thread except the async ones and
    ``scope()``/``move_on()``, which belong in trio.
    """

    __slots__ = (
        "__weakref__",
        "_children",
        "_done",
        "_kind",
        "_label_arg",
        "_parent",
        "_shared",
        "_values",
    )

    _parent: Context | None
    _shared: CancelContext | None  # not a CancelContext: the ancestor whose state this one shares
    _values: dict[Hashable, Any]
    _kind: str
    _label_arg: object
    _children: _Children | None
    _done: weakref.ref[Done] | None

    def __init__(self) -> None:
        raise TypeError(
            "contexts are not constructed directly; use trio_context.background() and the "
            "with_*() functions"
        )

    def _canceller(self) -> CancelContext | None:
        """The context whose cancellation state this one has (None: never cancelled)."""
        return self._shared

    # -- state ------------------------------------------------------------------------------

    @property
    def deadline(self) -> float:
        """The deadline on trio's clock, or ``math.inf`` when there is none."""
        src = self._canceller()
        return _INF if src is None else src._current_deadline()

    def remaining(self) -> float:
        """Seconds left until the deadline (0 once it passed; ``math.inf`` when there is none)."""
        src = self._canceller()
        if src is None:
            return _INF
        deadline = src._current_deadline()
        if deadline == _INF or src._clock is None:
            return _INF
        return max(0.0, deadline - src._clock.current_time())

    @property
    def err(self) -> ContextError | None:
        """None until the context is done; then :class:`ContextCancelled` or
        :class:`DeadlineExceeded`, the same object every time. Safe from any thread."""
        src = self._canceller()
        return None if src is None else src._poll()

    @property
    def cause(self) -> BaseException | None:
        """None until done; then the cause given to ``cancel()`` (or ``with_timeout(cause=)``),
        else ``err`` itself. A context cancelled through its parent has the parent's cause."""
        src = self._canceller()
        if src is None or src._poll() is None:
            return None
        return src._cause

    @property
    def done(self) -> Done:
        """The context's read-only event (``is_set()``, ``await wait()``); the same object
        every time."""
        # Cached weakly: a strong cache would make a reference cycle of every context.
        ref = self._done
        d = ref() if ref is not None else None
        if d is None:
            d = Done(self)
            self._done = weakref.ref(d)
        return d

    def check(self) -> None:
        """Return if the context is not done, else raise a fresh copy of ``err``.

        For polling loops, in trio or in worker threads. Safe from any thread.

        Raises:
            ContextCancelled: the context (or an ancestor) was cancelled.
            DeadlineExceeded: its deadline passed.
        """
        src = self._canceller()
        if src is not None and src._poll() is not None:
            src._raise_err()

    def value(self, key: Hashable, default: Any = None) -> Any:
        """Return the value stored under ``key`` by the nearest :func:`with_value`, else
        ``default``. A stored ``None`` is a value. One dict lookup, whatever the depth."""
        return self._values.get(key, default)

    # -- binding to trio --------------------------------------------------------------------

    def scope(self) -> _Binding:
        """Run a block in a fresh trio ``CancelScope`` tied to this context.

        The scope's deadline is the context's, the context being done cancels it, and
        :func:`current` returns this context inside. Each call makes a new scope, so it can
        be used again, nested, and in many tasks at once. Yields the trio scope::

            with ctx.scope():
                await fetch(url)

        Raises:
            ContextCancelled, DeadlineExceeded: (a fresh copy of ``ctx.err``, chained from the
                cause) when this context interrupted the body. An outer trio cancellation or an
                exception from the body passes through unchanged; a body that finished is
                untouched even if the context is done by then.
            RuntimeError: outside a trio run.
        """
        return _Binding(self, bind=True, swallow=False)

    def move_on(self) -> _Binding:
        """Like :meth:`scope`, but the context's own cancellation is swallowed and the block
        just ends (trio's ``move_on_*`` shape). Check ``ctx.err`` or the scope's
        ``cancelled_caught`` afterwards."""
        return _Binding(self, bind=True, swallow=True)

    async def run(self, afn: Callable[[*PosArgsT], Awaitable[T]], *args: *PosArgsT) -> T:
        """Run ``afn(*args)`` inside :meth:`scope` and return its result: Go's
        ``select { case r := <-result: ... case <-ctx.Done(): return ctx.Err() }``.

        Raises:
            ContextCancelled, DeadlineExceeded: when the context ended first.
            Exception: whatever ``afn`` raised.
        """
        with self.scope():
            return await afn(*args)
        raise AssertionError(
            "unreachable: scope() swallowed its own cancellation"
        )  # pragma: no cover

    # -- inspection -------------------------------------------------------------------------

    def children(self) -> list[Context]:
        """The live contexts derived directly from this one (not done, not garbage). A done
        context still lists its live :func:`without_cancel` children, which outlive it."""
        kids = self._children
        if not kids:
            return []
        out: list[Context] = []
        for ref in list(kids.values()):
            child = ref()
            if child is not None and child.err is None:
                out.append(child)
        return out

    def explain(self) -> str:
        """Say why the context is done: which context ended it, by whom (task), where
        (file:line of the ``cancel()`` call, or "deadline"), when (trio time), with which
        cause, and the path from that context down to this one. ``""`` when not done."""
        src = self._canceller()
        if src is None or src._poll() is None:
            return ""
        err, cause, origin = src._err, src._cause, src._origin
        assert err is not None and origin is not None
        when = "" if origin.when is None else f" at trio time {origin.when:.3f}"
        if origin.task == "deadline":
            how = (
                f"deadline {origin.when:.3f} passed"
                if origin.when is not None
                else "deadline passed"
            )
        else:
            how = f"cancel() called by task {origin.task!r} at {origin.where}{when}"
        lines = [f"{self._label()} is done: {type(err).__name__}: {err}", f"  {how}"]
        if cause is not err:
            lines.append(f"  cause: {cause!r}")
        path: list[str] = []
        node: Context | None = self
        while node is not None:
            path.append(node._label())
            if node is origin.ctx():
                break
            node = node._parent
        lines.append("  path: " + " -> ".join(reversed(path)))
        return "\n".join(lines)

    def _label(self) -> str:
        arg = self._label_arg
        if arg is None:
            return self._kind
        return f"{self._kind}({arg!r})"

    def _state_name(self) -> str:
        err = self.err
        if err is None:
            return "active"
        return "deadline exceeded" if isinstance(err, DeadlineExceeded) else "cancelled"

    def __repr__(self) -> str:
        parts = [
            f"<trio_context.{type(self).__name__} {self._label()} at {id(self):#x}",
            self._state_name(),
        ]
        left = self.remaining()
        if left != _INF and self.err is None:
            parts.append(f"{left:.2f} s left")
        if self._parent is not None:
            parts.append(f"parent {self._parent._label()}")
        return ", ".join(parts) + ">"

    # -- tree plumbing ----------------------------------------------------------------------

    def _add_child(self, child: Context) -> None:
        kids = self._children
        if kids is None:
            with _lock:
                kids = self._children
                if kids is None:
                    kids = self._children = _Children()
        elif len(kids) >= kids.purge_at:
            kids.purge()
        kids[id(child)] = weakref.ref(child)


class _Children(dict[int, weakref.ref[Context]]):
    """A context's children, held weakly, by id. The references carry no callback (that would
    cost memory per child). A dead child's entry is overwritten by the next child that gets
    its address, and the rest are purged when the dict has doubled since the last purge, so
    adding stays amortised O(1). (A set of weakrefs is slow here: reused addresses make every
    new child collide with dead entries of equal hash.)"""

    __slots__ = ("purge_at",)

    def __init__(self) -> None:
        super().__init__()
        self.purge_at = 64

    def purge(self) -> None:
        for key, ref in list(self.items()):
            if ref() is None:
                self.pop(key, None)
        self.purge_at = max(64, 2 * len(self))


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
        "_deadline_src",
        "_err",
        "_origin",
        "_scopes",
        "_token",
        "_with_binding",
    )

    _deadline: float  # own or inherited deadline; only ever moves earlier
    _deadline_src: CancelContext | None  # the context whose expiry that deadline is
    _clock: trio.abc.Clock | None  # the trio clock the deadline is on (None: no deadline)
    _token: trio.lowlevel.TrioToken | None  # the run of that clock
    _err: ContextError | None  # set once, under _lock, by the first cancel or expiry
    _cause: BaseException | None  # before done: the cause to use on expiry (with_timeout(cause=))
    _origin: _Origin | None
    _scopes: dict[trio.CancelScope, trio.lowlevel.TrioToken] | None  # bound trio scopes
    _after: list[_AfterFunc] | None
    _with_binding: _Binding | None

    def cancel(self, cause: BaseException | None = None) -> None:
        """Cancel the context: set ``err`` to :class:`ContextCancelled` (``cause`` or the err
        itself as cause), cancel every descendant and every bound scope, run the
        :func:`after_func` callbacks and set ``done``.

        Idempotent: the first call (or the deadline) wins; later calls do nothing. Safe from
        any thread.

        Raises:
            TypeError: ``cause`` is not an exception.
        """
        _check_cause(cause)
        if self._poll() is not None:
            return
        err = ContextCancelled("context cancelled")
        if _finish_tree(self, err, cause if cause is not None else err, _Origin.capture(self)):
            self._detach()

    def cancel_at(self, deadline: float, *, cause: BaseException | None = None) -> None:
        """Move the deadline earlier, to ``deadline`` on trio's clock (.NET's ``CancelAfter``).

        A deadline later than the current one is ignored: deadlines only move earlier. On
        expiry the context ends with :class:`DeadlineExceeded` and ``cause``. Must be called
        in the trio thread of a running loop.

        Raises:
            TypeError, ValueError: ``deadline`` is not a number, or is NaN.
            RuntimeError: outside a trio run.
        """
        deadline = _check_number("deadline", deadline)
        clock = _clock_for("cancel_at()")
        if deadline >= self._deadline or self._poll() is not None:
            return
        self._cause = cause
        _move_deadline(self, deadline, clock)
        if deadline <= clock.current_time():
            self._expire()
        else:
            _timers().add(deadline, self)

    def cancel_after(self, seconds: float, *, cause: BaseException | None = None) -> None:
        """Move the deadline earlier, to ``seconds`` from now; see :meth:`cancel_at`.

        Raises:
            TypeError, ValueError: ``seconds`` is not a number, negative or NaN.
            RuntimeError: outside a trio run.
        """
        seconds = _check_seconds(seconds)
        self.cancel_at(_clock_for("cancel_after()").current_time() + seconds, cause=cause)

    def __enter__(self) -> CancelContext:
        if self._with_binding is not None:
            raise RuntimeError(
                f"{self._label()} is already entered; use ctx.scope() for concurrent blocks"
            )
        binding = _Binding(self, bind=True, swallow=False)
        binding.__enter__()
        self._with_binding = binding
        return self

    def __exit__(
        self,
        etype: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        binding = self._with_binding
        assert binding is not None, "CancelContext exited without being entered"
        self._with_binding = None
        try:
            return binding.__exit__(etype, exc, tb)
        finally:
            self.cancel()

    # -- internals --------------------------------------------------------------------------

    def _canceller(self) -> CancelContext:
        return self

    def _scope_deadline(self) -> float:
        """The deadline bound trio scopes carry natively."""
        return self._deadline

    def _current_deadline(self) -> float:
        return self._deadline

    def _poll(self) -> ContextError | None:
        """``err``, expiring the deadline first if it is due (safe from any thread)."""
        err = self._err
        if err is None and self._clock is not None and self._is_due(self._clock.current_time()):
            self._on_due()
            err = self._err
        return err

    def _is_due(self, now: float) -> bool:
        return now >= self._deadline

    def _on_due(self) -> None:
        src = self._deadline_src
        (src if src is not None else self)._expire()

    def _on_timer(self, now: float) -> float | None:
        """Called by the timer task at a due time; returns the next time to call it, if any."""
        if self._err is None and self._is_due(now):
            self._on_due()
        return None

    def _expired_before(self, when: float | None) -> tuple[float, BaseException | None] | None:
        """If this context's *own* deadline passed before an event at ``when`` (None: now),
        return (that deadline, the cause to use or None for the preset one)."""
        if self._deadline_src is not self or self._clock is None:
            return None
        if (self._clock.current_time() if when is None else when) >= self._deadline:
            return self._deadline, None
        return None

    def _expire(self, when: float | None = None, cause: BaseException | None = None) -> None:
        """End the context with DeadlineExceeded as of trio time ``when`` (its deadline)."""
        if when is None:
            when = self._deadline
        err, cause = _deadline_err(self, cause)
        origin = _Origin(self, "deadline", "deadline", when)
        if _finish_tree(self, err, cause, origin, when):
            self._detach()

    def _detach(self) -> None:
        parent = self._parent
        if parent is not None and parent._children is not None:
            parent._children.pop(id(self), None)

    def _raise_err(self) -> NoReturn:
        err, cause = self._err, self._cause
        assert err is not None
        fresh = type(err)(*err.args)
        if cause is err:
            raise fresh from None
        raise fresh from cause


def _deadline_err(
    ctx: CancelContext, cause: BaseException | None
) -> tuple[DeadlineExceeded, BaseException]:
    err = DeadlineExceeded("context deadline exceeded")
    if cause is None:
        cause = ctx._cause if ctx._cause is not None else err
    return err, cause


_Item = tuple[Context, ContextError, BaseException, _Origin, "float | None"]


def _finish_tree(
    root: CancelContext,
    err: ContextError,
    cause: BaseException,
    origin: _Origin,
    when: float | None = None,
) -> bool:
    """Mark ``root`` and every descendant done (first cancel wins), then cancel their bound
    scopes and dispatch their after-funcs. Iterative, so depth is unbounded. Returns False if
    ``root`` was already done.

    ``when`` is the trio time of the event (a deadline), None for "now" (a cancel). Deadlines
    are observed lazily, so a descendant whose own deadline passed before the event, unseen,
    is ended by that deadline instead, and its subtree with it: the state is what Go's timers
    would have made it, whoever looks first."""
    here = _trio_token_or_none()
    scopes: list[tuple[trio.CancelScope, trio.lowlevel.TrioToken]] = []
    callbacks: list[_AfterFunc] = []
    stack: list[_Item] = [(root, err, cause, origin, when)]
    while stack:
        node, err, cause, origin, when = stack.pop()
        if not isinstance(node, CancelContext):
            if node._shared is None:  # without_cancel(): cancellation stops here
                continue
        else:
            if node is not root:
                expired = node._expired_before(when)
                if expired is not None:
                    when, own_cause = expired
                    err, cause = _deadline_err(node, own_cause)
                    origin = _Origin(node, "deadline", "deadline", when)
            with _lock:
                if node._err is not None:
                    if node is root:
                        return False
                    continue
                node._err = err
                node._cause = cause
                node._origin = origin
                after, node._after = node._after, None
            if node._scopes:
                scopes.extend(node._scopes.copy().items())
            if after:
                callbacks.extend(after)
        kids = node._children
        if kids:
            for key, ref in list(kids.items()):
                child = ref()
                if child is None or isinstance(child, CancelContext) or child._shared is not None:
                    del kids[key]  # done with this node: no longer a live child
                    if child is not None:
                        stack.append((child, err, cause, origin, when))
                # without_cancel() children stay: they outlive this node's cancellation
    for cs, token in scopes:
        if token is here:
            cs.cancel()
        else:
            try:
                token.run_sync_soon(cs.cancel)
            except trio.RunFinishedError:
                pass
    for cb in callbacks:
        cb.dispatch()
    return True


def _move_deadline(root: CancelContext, deadline: float, clock: trio.abc.Clock) -> None:
    """Tighten ``root``'s deadline and every descendant's that was later (trio thread)."""
    token = trio.lowlevel.current_trio_token()
    stack: list[Context] = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, CancelContext):
            if node._shared is None:
                continue
        else:
            if node._deadline <= deadline and node is not root:
                continue
            node._deadline = deadline
            node._deadline_src = root
            node._clock = clock
            node._token = token
            if node._scopes:
                for cs in node._scopes.copy():
                    cs.deadline = min(cs.deadline, node._scope_deadline())
        if node._children:
            for ref in list(node._children.values()):
                child = ref()
                if child is not None:
                    stack.append(child)


# -- after_func ----------------------------------------------------------------------------


class _AfterFunc:
    __slots__ = ("fn", "state", "token")

    PENDING: Final = 0
    STARTED: Final = 1
    STOPPED: Final = 2

    def __init__(self, fn: Callable[[], object], token: trio.lowlevel.TrioToken | None) -> None:
        self.fn = fn
        self.token = token
        self.state = self.PENDING

    def dispatch(self) -> None:
        with _lock:
            if self.state != self.PENDING:
                return
            self.state = self.STARTED
        if self.token is not None:
            try:
                self.token.run_sync_soon(self.call)
                return
            except trio.RunFinishedError:
                pass
        self.call()

    def call(self) -> None:
        try:
            self.fn()
        except Exception:
            logger.exception("after_func callback %r raised", self.fn)


def after_func(ctx: Context, fn: Callable[[], object]) -> Callable[[], bool]:
    """Arrange for ``fn()`` to be called once, soon after ``ctx`` is done (soon, if it already
    is). Returns ``stop``: ``stop()`` returns True if it prevented the call, False if the call
    already started or ``stop()`` was already called.

    ``fn`` runs in the trio thread of the run that registered it (through its token), so it may
    touch trio objects; registered outside trio, it runs in the thread that cancels. An
    exception from ``fn`` is logged on the ``trio_context`` logger. Safe from any thread::

        stop = tc.after_func(ctx, lambda: print("done"))

    Raises:
        TypeError: ``ctx`` is not a context or ``fn`` is not callable.
    """
    _check_parent(ctx, "ctx")
    if not callable(fn):
        raise TypeError(f"fn must be callable, not {type(fn).__name__}")
    entry = _AfterFunc(fn, _trio_token_or_none())
    src = ctx._canceller()
    if src is not None:
        with _lock:
            registered = src._err is None
            if registered:
                if src._after is None:
                    src._after = []
                src._after.append(entry)
        if not registered:
            entry.dispatch()
        elif src._clock is not None and src._deadline != _INF:
            if src._poll() is None:
                _arm_timer(src)

    def stop() -> bool:
        with _lock:
            if entry.state != _AfterFunc.PENDING:
                return False
            entry.state = _AfterFunc.STOPPED
            if src is not None and src._after is not None and entry in src._after:
                src._after.remove(entry)
        return True

    return stop


# -- deadlines: one timer task per trio run ------------------------------------------------


class _Timers:
    """A heap of (due time, context) served by one system task per trio run.

    Bound scopes carry deadlines natively and ``err`` is computed lazily, so the timer is only
    needed where something must *happen* at a deadline without anyone looking: after_func
    callbacks and idle contexts."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, weakref.ref[CancelContext]]] = []
        self.seq = 0
        self.scope: trio.CancelScope | None = None

    def add(self, when: float, ctx: CancelContext) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (when, self.seq, weakref.ref(ctx)))
        if self.scope is not None and when < self.scope.deadline:
            self.scope.deadline = when

    async def run(self) -> None:
        while True:
            with trio.CancelScope(deadline=self.heap[0][0] if self.heap else _INF) as self.scope:
                await trio.sleep_forever()
            now = trio.current_time()
            while self.heap and self.heap[0][0] <= now:
                _, _, ref = heapq.heappop(self.heap)
                ctx = ref()
                if ctx is not None:
                    again = ctx._on_timer(now)
                    if again is not None:
                        self.add(again, ctx)


_TIMERS: Final = trio.lowlevel.RunVar[_Timers]("trio_context_timers")


def _timers() -> _Timers:
    try:
        return _TIMERS.get()
    except LookupError:
        timers = _Timers()
        trio.lowlevel.spawn_system_task(timers.run, name="trio_context.timers")
        _TIMERS.set(timers)
        return timers


def _arm_timer(ctx: CancelContext) -> None:
    """Make sure ``ctx``'s deadline fires without anyone looking (any thread)."""
    target = ctx._deadline_src if ctx._deadline_src is not None else ctx
    when = target._deadline
    here = _trio_token_or_none()
    if here is not None and here is target._token:
        _timers().add(when, target)
    elif target._token is not None:
        try:
            target._token.run_sync_soon(lambda: _timers().add(when, target))
        except trio.RunFinishedError:
            pass


# -- constructors ---------------------------------------------------------------------------

_current: Final[ContextVar[Context]] = ContextVar("trio_context.current")


def _new(
    cls: type[Context],
    parent: Context | None,
    kind: str,
    label_arg: object,
    src: CancelContext | None,
    values: dict[Hashable, Any],
) -> Any:
    ctx = object.__new__(cls)
    ctx._parent = parent
    ctx._shared = src
    ctx._values = values
    ctx._kind = kind
    ctx._label_arg = label_arg
    ctx._children = None
    ctx._done = None
    if parent is not None:
        parent._add_child(ctx)
    return ctx


def _root(kind: str) -> Context:
    ctx: Context = _new(Context, None, kind, None, None, _NO_VALUES)
    return ctx


_BACKGROUND: Final = _root("background")
_TODO: Final = _root("todo")
_current_default: Final = _BACKGROUND


def background() -> Context:
    """The root context: never cancelled, no deadline, no values. The same object every time."""
    return _BACKGROUND


def todo() -> Context:
    """Like :func:`background`, but says "which context belongs here is not decided yet"."""
    return _TODO


def current() -> Context:
    """The context bound to the running code by the innermost ``ctx.scope()`` (per task,
    inherited by tasks started inside it; also in worker threads started there), else
    :func:`background`."""
    return _current.get(_BACKGROUND)


def cause(ctx: Context) -> BaseException | None:
    """Same as ``ctx.cause`` (Go's ``context.Cause``)."""
    _check_parent(ctx, "ctx")
    return ctx.cause


def _check_parent(parent: object, name: str = "parent") -> None:
    if not isinstance(parent, Context):
        raise TypeError(
            f"{name} must be a trio_context.Context (e.g. tc.background()), "
            f"not {type(parent).__name__}"
        )


def _check_cause(cause: object) -> None:
    if cause is not None and not isinstance(cause, BaseException):
        raise TypeError(f"cause must be an exception or None, not {type(cause).__name__}")


def _check_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    return value


def _check_seconds(seconds: object) -> float:
    value = _check_number("seconds", seconds)
    if value < 0:
        raise ValueError(f"seconds must be non-negative, got {value!r}")
    return value


def _clock_for(what: str) -> trio.abc.Clock:
    try:
        return trio.lowlevel.current_clock()
    except RuntimeError:
        raise RuntimeError(
            f"{what} needs a running trio loop (deadlines are on trio's clock); "
            "with_cancel() and with_value() do not"
        ) from None


def _new_cancel(
    cls: type[CancelContext], parent: Context, kind: str, label_arg: object = None
) -> Any:
    # Written out rather than built on _new(): creation is a hot path (benchmarks/core.py).
    psrc = parent._canceller()
    ctx = object.__new__(cls)
    ctx._parent = parent
    ctx._shared = None
    ctx._values = parent._values
    ctx._kind = kind
    ctx._label_arg = label_arg
    ctx._children = None
    ctx._done = None
    ctx._err = None
    ctx._cause = None
    ctx._origin = None
    ctx._scopes = None
    ctx._after = None
    ctx._with_binding = None
    if psrc is None:
        ctx._deadline = _INF
        ctx._deadline_src = ctx._clock = ctx._token = None
        parent._add_child(ctx)
        return ctx
    ctx._deadline = psrc._deadline
    ctx._deadline_src = psrc._deadline_src if psrc._deadline_src is not None else psrc
    ctx._clock = psrc._clock
    ctx._token = psrc._token
    parent._add_child(ctx)  # only now: a concurrent cancel of the parent may walk it at once
    if psrc._err is not None or (psrc._clock is not None and psrc._poll() is not None):
        # Born done: the parent's err and cause (a concurrent parent cancel may get here first).
        with _lock:
            if ctx._err is None:
                ctx._err, ctx._cause, ctx._origin = psrc._err, psrc._cause, psrc._origin
        ctx._detach()
    return ctx


def with_cancel(parent: Context) -> CancelContext:
    """Return a child of ``parent`` that can be cancelled (Go's ``WithCancel``).

    It is done when ``cancel()`` is called on it or when ``parent`` is done, whichever comes
    first; cancelling it never touches ``parent``. Works without a running trio loop::

        with tc.with_cancel(parent) as ctx:
            await work(ctx)

    Raises:
        TypeError: ``parent`` is not a context.
    """
    _check_parent(parent)
    ctx: CancelContext = _new_cancel(CancelContext, parent, "with_cancel")
    return ctx


def with_deadline(
    parent: Context, deadline: float, *, cause: BaseException | None = None
) -> CancelContext:
    """Return a child of ``parent`` that ends with :class:`DeadlineExceeded` (cause ``cause``
    or the err itself) at ``deadline`` on trio's clock, unless ``parent``'s deadline is earlier
    or equal: then it ends when the parent does, with the parent's err and cause. A deadline
    already past gives a context that is done at once.

    Raises:
        TypeError: ``parent`` is not a context, or ``deadline`` is not a number.
        ValueError: ``deadline`` is NaN.
        RuntimeError: no trio loop is running.
    """
    _check_parent(parent)
    deadline = _check_number("deadline", deadline)
    _check_cause(cause)
    return _with_deadline(parent, deadline, cause, "with_deadline", deadline)


def _with_deadline(
    parent: Context, deadline: float, cause: BaseException | None, kind: str, label_arg: object
) -> CancelContext:
    clock = _clock_for(f"{kind}()")
    ctx: CancelContext = _new_cancel(CancelContext, parent, kind, label_arg)
    if deadline < ctx._deadline:
        ctx._deadline = deadline
        ctx._deadline_src = ctx
        ctx._clock = clock
        ctx._token = trio.lowlevel.current_trio_token()
        if ctx._err is None:
            ctx._cause = cause
            if deadline <= clock.current_time():
                ctx._expire()
    return ctx


def with_timeout(
    parent: Context, seconds: float, *, cause: BaseException | None = None
) -> CancelContext:
    """Return ``with_deadline(parent, trio.current_time() + seconds, cause=cause)``.

    Raises:
        TypeError: ``parent`` is not a context, or ``seconds`` is not a number.
        ValueError: ``seconds`` is negative or NaN.
        RuntimeError: no trio loop is running.
    """
    _check_parent(parent)
    seconds = _check_seconds(seconds)
    _check_cause(cause)
    now = _clock_for("with_timeout()").current_time()
    return _with_deadline(parent, now + seconds, cause, "with_timeout", seconds)


def with_value(parent: Context, key: Hashable, value: Any) -> Context:
    """Return a child of ``parent`` where ``value(key)`` is ``value``; everything else
    (deadline, cancellation) is the parent's. Lookups stay one dict access at any depth;
    deriving copies the key map, so keep keys few (as Go advises).

    Raises:
        TypeError: ``parent`` is not a context, or ``key`` is None or unhashable.
    """
    _check_parent(parent)
    if key is None:
        raise TypeError("key must not be None")
    try:
        hash(key)
    except TypeError:
        raise TypeError(f"key must be hashable, not {type(key).__name__}") from None
    values = dict(parent._values)
    values[key] = value
    ctx: Context = _new(Context, parent, "with_value", key, parent._canceller(), values)
    return ctx


def without_cancel(parent: Context) -> Context:
    """Return a child of ``parent`` that keeps its values but is never cancelled and has no
    deadline (Go's ``WithoutCancel``): for work that must outlive the request, such as cleanup.

    Raises:
        TypeError: ``parent`` is not a context.
    """
    _check_parent(parent)
    ctx: Context = _new(Context, parent, "without_cancel", None, None, parent._values)
    return ctx


for _obj in (Context, CancelContext, Done):
    _obj.__module__ = "trio_context"
