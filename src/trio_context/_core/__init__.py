"""The kernel: contexts, bound scopes, deadlines and after-funcs.

Imports nothing from the rest of the package (``import-linter`` checks it). Inside, imports go
one way, from the bottom up::

    _errors, _common            errors, the lock, the logger, argument checks
    _callbacks, _timers         an after_func entry; the per-run timer task
    _state                      the CancelState protocol a context reads its canceller through
    _scope                      Done and the binding of a context to a trio CancelScope
    _context                    Context (read-only side), the roots, current()
    _cancel                     CancelContext: cancel(), deadlines, the cancel walk
    _after, _idle               after_func(); idle contexts (deadline machinery)
    _constructors, _inspect     with_*(); read-only views for the toolkit
    _hard                       the hard twin recorded above a soft context

This ``__init__`` is the core's API for the toolkit: the public names plus the few hooks the
toolkit shares (argument checks, the clock check, the logger, inspection, and for groups:
``ScopeTie`` to tie a nursery's own scope to a context, ``on_done`` for a callback called at
once on the trio thread, ``call_at`` for a timer without a task).
"""

from ._after import after_func, call_at, on_done
from ._cancel import CancelContext
from ._common import check_cause, check_number, check_seconds, clock_for, logger
from ._constructors import (
    cause,
    with_cancel,
    with_deadline,
    with_timeout,
    with_value,
    without_cancel,
)
from ._context import Context, background, check_parent, current, todo
from ._errors import ContextCancelled, ContextError, DeadlineExceeded
from ._hard import HARD_KEY, hard_context
from ._idle import IdleContext, IdleTimeout, with_idle_timeout
from ._inspect import (
    bound_scopes,
    canceller_of,
    label_of,
    label_parts,
    parent_of,
    set_shield,
)
from ._scope import Done, ScopeTie
from ._timers import Timed

__all__ = [
    "HARD_KEY",
    "CancelContext",
    "Context",
    "ContextCancelled",
    "ContextError",
    "DeadlineExceeded",
    "Done",
    "IdleContext",
    "IdleTimeout",
    "ScopeTie",
    "Timed",
    "after_func",
    "background",
    "bound_scopes",
    "call_at",
    "canceller_of",
    "cause",
    "check_cause",
    "check_number",
    "check_parent",
    "check_seconds",
    "clock_for",
    "current",
    "hard_context",
    "label_of",
    "label_parts",
    "logger",
    "on_done",
    "parent_of",
    "set_shield",
    "todo",
    "with_cancel",
    "with_deadline",
    "with_idle_timeout",
    "with_timeout",
    "with_value",
    "without_cancel",
]
