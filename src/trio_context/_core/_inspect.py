"""Read-only views of a context's place in the tree, for the toolkit's inspection tools
(``format_tree``/``dump`` and the leak check). Nothing here changes a context, except
:func:`set_shield` (a construction hook); every function is safe from any thread."""

from __future__ import annotations

from typing import cast

import trio

from ._cancel import CancelContext
from ._context import Context


def parent_of(ctx: Context) -> Context | None:
    """The context ``ctx`` was derived from (None for the roots)."""
    return ctx._parent


def label_parts(ctx: Context) -> tuple[str, object]:
    """The constructor that made ``ctx`` (``"with_timeout"``) and its argument (None if it
    had none worth showing): ``with_value`` gives its key."""
    return ctx._kind, ctx._label_arg


def label_of(ctx: Context) -> str:
    """``ctx``'s label as ``explain()`` shows it: ``"with_timeout(5.0)"``."""
    return ctx._label()


def canceller_of(ctx: Context) -> CancelContext | None:
    """The context whose cancellation state ``ctx`` shares (itself for a cancellable one;
    None when it can never be cancelled)."""
    return cast(CancelContext | None, ctx._canceller)


def bound_scopes(ctx: Context) -> list[trio.CancelScope]:
    """The trio scopes open right now through ``ctx``'s *own* cancellation state (empty for a
    context that shares its parent's: those scopes are counted on the one it shares)."""
    if not isinstance(ctx, CancelContext):
        return []
    return ctx._bound_scopes()


def set_shield(ctx: Context, *, shield: bool) -> None:
    """Whether scopes bound to ``ctx`` (and to contexts derived from it afterwards) shield their
    body from enclosing trio cancellation. ``without_cancel()`` turns it on for everything
    below it; the toolkit turns it off for a hard twin. Call it right after creating ``ctx``."""
    ctx._shield = shield
