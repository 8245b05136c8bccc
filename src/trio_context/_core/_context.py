"""The context tree's read-only side: :class:`Context`, the roots and ``current()``.

A context reads its cancellation state from its *canceller* (see ``_state.py``): itself for a
:class:`~trio_context.CancelContext` (``_cancel.py``, which builds on this module), the nearest
cancellable ancestor for a value context, none for the roots and ``without_cancel``. Parents
hold children weakly, by id.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Final, TypeAlias, TypeVar, TypeVarTuple, cast

import trio

from ._common import _INF, _lock, deadline_in, trio_token_or_none
from ._errors import ContextError, DeadlineExceeded
from ._scope import Done, _Binding, current_var
from ._state import CancelState
from ._values import _MISSING, Values

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")


class Context:
    """A read-only context: deadline, values, cancellation state and ``done``.

    Contexts are made by :func:`background`, :func:`with_cancel`, :func:`with_timeout`,
    :func:`with_deadline`, :func:`with_value` and :func:`without_cancel`, never directly.
    Every attribute and method is safe to call from any thread except the async ones and
    ``scope()``/``move_on()``, which belong in trio.
    """

    __slots__ = (
        "__weakref__",
        "_canceller",
        "_children",
        "_done",
        "_kind",
        "_label_arg",
        "_parent",
        "_shield",
        "_values",
        "_vpos",
    )

    _parent: Context | None
    # The context whose cancellation state this one shares (None: never cancelled). A slot
    # here; CancelContext overrides it with a property that returns the context itself.
    _canceller: CancelState | None
    _values: Values  # with _vpos, the view of the values (see _values.py)
    _vpos: int
    _kind: str
    _label_arg: object
    _children: ChildRefs | None
    _done: weakref.ref[Done] | None
    # Bound scopes shield their body from enclosing trio cancellation: set by without_cancel(),
    # inherited by everything derived below it (cleanup contexts), cleared for a hard twin.
    _shield: bool

    def __init__(self) -> None:
        raise TypeError(
            "contexts are not constructed directly; use trio_context.background() and the "
            "with_*() functions"
        )

    # -- state ------------------------------------------------------------------------------

    @property
    def deadline(self) -> float:
        """The deadline on trio's clock, or ``math.inf`` when there is none. Read in the trio
        thread of another run than the one that set it, it is translated to that run's clock
        (trio's ``SystemClock``; a ``MockClock`` on either side: ``RuntimeError``)."""
        canceller = self._canceller
        if canceller is None:
            return _INF
        deadline = canceller._current_deadline()
        clock = canceller._clock
        if clock is not None and deadline != _INF:
            here = trio_token_or_none()
            if here is not None and here is not canceller._token:
                return deadline_in(deadline, clock, trio.lowlevel.current_clock())
        return deadline

    def remaining(self) -> float:
        """Seconds left until the deadline (0 once it passed; ``math.inf`` when there is none)."""
        canceller = self._canceller
        if canceller is None:
            return _INF
        deadline = canceller._current_deadline()
        if deadline == _INF or canceller._clock is None:
            return _INF
        return max(0.0, deadline - canceller._clock.current_time())

    @property
    def err(self) -> ContextError | None:
        """None until the context is done; then :class:`ContextCancelled` or
        :class:`DeadlineExceeded`, the same object every time. Safe from any thread."""
        canceller = self._canceller
        return None if canceller is None else canceller._poll()

    @property
    def cause(self) -> BaseException | None:
        """None until done; then the cause given to ``cancel()`` (or ``with_timeout(cause=)``),
        else ``err`` itself. A context cancelled through its parent has the parent's cause."""
        canceller = self._canceller
        if canceller is None or canceller._poll() is None:
            return None
        return canceller._cause

    @property
    def done(self) -> Done:
        """The context's read-only event (``is_set()``, ``await wait()``). Successive reads
        return the same object for as long as anyone holds it (it is cached weakly)."""
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
        canceller = self._canceller
        if canceller is not None and canceller._poll() is not None:
            canceller._raise_err()

    def value(self, key: Hashable, default: Any = None) -> Any:
        """Return the value stored under ``key`` by the nearest :func:`with_value`, else
        ``default``. A stored ``None`` is a value. Constant time whatever the depth: one dict
        lookup while the context has fewer than 16 keys."""
        values = self._values
        if isinstance(values, dict):
            return values.get(key, default)
        found = values.flat.get(key, _MISSING)  # read before tip: see Run.get
        if found is not _MISSING and values.tip == self._vpos:
            return found
        return values.get(key, default, self._vpos)

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
        return _Binding(self, self._canceller, True, False)

    def move_on(self) -> _Binding:
        """Like :meth:`scope`, but the context's own cancellation is swallowed and the block
        just ends (trio's ``move_on_*`` shape). Check ``ctx.err`` or the scope's
        ``cancelled_caught`` afterwards."""
        return _Binding(self, self._canceller, True, True)

    async def run(self, afn: Callable[[*PosArgsT], Awaitable[T]], *args: *PosArgsT) -> T:
        """Run ``afn(*args)`` inside :meth:`scope` and return its result: Go's
        ``select { case r := <-result: ... case <-ctx.Done(): return ctx.Err() }``.

        Raises:
            ContextCancelled, DeadlineExceeded: when the context ended first.
            Exception: whatever ``afn`` raised.
        """
        with self.scope():
            if self.err is not None:
                # Already done: never call afn. The bound scope is cancelled (or its deadline
                # passed), so this checkpoint raises and the scope turns it into err.
                await trio.lowlevel.checkpoint()
            return await afn(*args)
        # Only reachable if the trio scope was cancelled but the context is not done.
        self.check()
        raise RuntimeError(f"{self._label()}.run(): the bound scope ended without the context")

    # -- inspection -------------------------------------------------------------------------

    def children(self) -> list[Context]:
        """The live contexts derived directly from this one (not done, not garbage). A done
        context still lists its live :func:`without_cancel` children, which outlive it. The
        roots, :func:`background` and :func:`todo`, keep no list: every top-level context of
        the process would be on it."""
        out: list[Context] = []
        for ref in child_refs(self._children):
            child = ref()
            if child is not None and child.err is None:
                out.append(child)
        return out

    def explain(self) -> str:
        """Say why the context is done: which context ended it, by whom (task), where
        (file:line of the ``cancel()`` call, or "deadline"), when (trio time), with which
        cause, and the path from that context down to this one. ``""`` when not done."""
        canceller = self._canceller
        if canceller is None or canceller._poll() is None:
            return ""
        err, cause, origin = canceller._err, canceller._cause, canceller._origin
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
        ender = origin.ctx_id  # the context whose cancel or deadline ended this one (alive:
        # it is this one or an ancestor)
        while node is not None:
            path.append(node._label())
            if id(node) == ender:
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
        """Register ``child`` (weakly). Lock-free: a concurrent cancel of this context may walk
        the child at once, which ``new_cancel`` settles by checking the parent afterwards."""
        if self._parent is None:
            return  # a root: it would list every top-level context of the process
        kids = self._children
        if kids is None:
            self._children = weakref.ref(child)  # the common case: one child
        elif type(kids) is _Children:
            ref = weakref.ref(child, kids.drop)
            kids[ref] = None
            if kids.retired:
                _readd(self, ref)  # compacted meanwhile: the new table must have it too
        else:
            _second_child(self, kids, child)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# A context's children are held weakly, in its ``_children`` slot: None, one ``weakref.ref``
# (no callback: a dead one costs one object until it is replaced), or a _Children table once
# a second child lives at the same time.
ChildRefs: TypeAlias = "weakref.ref[Context] | _Children"


class _Children(dict[weakref.ref[Context], None]):
    """Two or more children: weak references (the keys) whose callback (``drop``, one per
    parent) removes a dead child's entry at once, so a dropped child leaves nothing behind
    whatever its creation pattern: there is no purge to starve. When the table empties out
    it is replaced by a compact copy (Python never shrinks a dict), so 100,000 children made
    at once and dropped leave a few hundred bytes, not megabytes. No strong cycle: ``drop``
    holds the parent weakly."""

    __slots__ = ("drop", "retired")

    def __init__(self, drop: Callable[[weakref.ref[Context]], None]) -> None:
        super().__init__()
        self.drop = drop
        self.retired = False  # replaced by a compact copy: adders re-add to the new one


def _dropper(home: weakref.ref[Context]) -> Callable[[weakref.ref[Context]], None]:
    def drop(ref: weakref.ref[Context]) -> None:
        parent = home()
        if parent is None:
            return
        kids = parent._children
        if type(kids) is not _Children:
            return
        kids.pop(ref, None)
        n = len(kids)
        if n & (n - 1) == 0 and kids.__sizeof__() > 1024 + 128 * n:
            _compact(parent, kids)

    return drop


def _compact(parent: Context, kids: _Children) -> None:
    """Replace a mostly empty table by a compact copy. Adders do not lock: one that wrote to
    the old table after the copy sees ``retired`` and re-adds (``_readd``)."""
    with _lock:
        if parent._children is not kids:
            return
        kids.retired = True
        fresh = _Children(kids.drop)
        fresh.update(kids)
        parent._children = fresh


def _readd(parent: Context, ref: weakref.ref[Context]) -> None:
    with _lock:
        kids = parent._children
        if type(kids) is _Children and ref() is not None:
            kids[ref] = None


def _second_child(parent: Context, first: weakref.ref[Context], child: Context) -> None:
    old = first()
    if old is None:
        parent._children = weakref.ref(child)  # the one child died: reuse the slot
        return
    kids = _Children(_dropper(weakref.ref(parent)))
    kids[weakref.ref(old, kids.drop)] = None
    kids[weakref.ref(child, kids.drop)] = None
    parent._children = kids


def child_refs(kids: ChildRefs | None) -> list[weakref.ref[Context]]:
    """A snapshot of the references in a ``_children`` slot."""
    if kids is None:
        return []
    if type(kids) is _Children:
        return list(kids)
    return [kids]  # type: ignore[list-item]  # pyright: ignore[reportReturnType]


def forget_child(parent: Context, ref: weakref.ref[Context]) -> None:
    """Drop ``ref`` (from :func:`child_refs`) from ``parent``'s children."""
    kids = parent._children
    if kids is ref:
        parent._children = None
    elif type(kids) is _Children:
        kids.pop(ref, None)


def check_parent(parent: object, name: str = "parent") -> None:
    """The argument ``name`` must be a context."""
    if not isinstance(parent, Context):
        raise TypeError(
            f"`{name}` must be a trio_context.Context (e.g. tc.background()), "
            f"not {type(parent).__name__}"
        )


def _new(
    cls: type[Context],
    parent: Context | None,
    kind: str,
    label_arg: object,
    canceller: CancelState | None,
    values: Values,
    vpos: int,
) -> Any:
    ctx = object.__new__(cls)
    ctx._parent = parent
    ctx._canceller = canceller
    ctx._values = values
    ctx._vpos = vpos
    ctx._kind = kind
    ctx._label_arg = label_arg
    ctx._children = None
    ctx._done = None
    ctx._shield = parent is not None and parent._shield
    if parent is not None:
        parent._add_child(ctx)
    return ctx


_NO_VALUES: Final[dict[Hashable, Any]] = {}


def _root(kind: str) -> Context:
    ctx: Context = _new(Context, None, kind, None, None, _NO_VALUES, 0)
    return ctx


_BACKGROUND: Final = _root("background")
_TODO: Final = _root("todo")


def background() -> Context:
    """The root context: never cancelled, no deadline, no values. The same object every time."""
    return _BACKGROUND


def current() -> Context:
    """The context bound to the running code by the innermost ``ctx.scope()`` (per task,
    inherited by tasks started inside it; also in worker threads started there), else
    :func:`background`."""
    return cast(Context, current_var.get(_BACKGROUND))  # only contexts are ever bound


def todo() -> Context:
    """Like :func:`background`, but says "which context belongs here is not decided yet"."""
    return _TODO
