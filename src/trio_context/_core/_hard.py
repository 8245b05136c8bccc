"""The hard ("stop now") context recorded above a soft one, for graceful stops.

A graceful stop has two contexts: the *soft* one says "please stop", its *hard* twin "stop now".
Whoever makes the pair (``open_signal_context``, ``graceful()``, ``from_environ`` with a cancel
channel) records the hard one as a value of the soft one under :data:`HARD_KEY`, so everything
derived below finds it with :func:`hard_context`: grace periods started below are capped by it
(``with_grace`` and ``cleanup`` end when it does), so nested graceful stops never add up past
the outer budget.
"""

from __future__ import annotations

from typing import Final, final

from ._context import Context


@final
class _HardKey:
    """The value key under which a soft context's hard twin is recorded."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<trio_context hard-context key>"


HARD_KEY: Final = _HardKey()


def hard_context(ctx: Context) -> Context | None:
    """Return the nearest hard ("stop now") context recorded above ``ctx``, or None.

    ``open_signal_context``, ``graceful()`` and ``from_environ`` (with a cancel channel) record
    one. Pure lookup, idempotent, safe from any thread::

        hard = tc.hard_context(ctx)  # None outside open_signal_context()
    """
    found = ctx.value(HARD_KEY)
    return found if isinstance(found, Context) else None
