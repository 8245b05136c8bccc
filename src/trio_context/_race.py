"""Racing alternatives: :func:`race` runs functions side by side and keeps the first to finish.

Rules for callers: give :func:`race` functions that can stop at their next checkpoint; the losers
are cancelled (through the race's group context, which each sees as ``tc.current()``) and the race
returns only once they have all finished. Pass arguments with ``functools.partial``. Call it in
the trio thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import trio

from ._core import Context, logger
from ._group import TaskGroup, check_afn, coroutine_of, open_group

__all__ = ["race"]

T = TypeVar("T")


def _has_cancelled(exc: BaseException) -> bool:
    if not isinstance(exc, BaseExceptionGroup):
        return False
    return cast(BaseExceptionGroup[BaseException], exc).subgroup(trio.Cancelled) is not None


async def race(ctx: Context, *afns: Callable[[], Awaitable[T]]) -> T:
    """Run every ``afn()`` in a group on ``ctx``; the first to finish decides: its value is
    returned, or its exception raised. The others are cancelled and awaited first. An
    exception a loser raises while being cancelled is logged (``trio_context`` logger), not
    raised, except a non-``Exception`` (``KeyboardInterrupt``), which propagates in a group.
    Each call runs a new race; trio thread only::

        page = await tc.race(ctx, partial(fetch, mirror1), partial(fetch, mirror2))

    Raises:
        ValueError: no ``afns``.
        TypeError: one is not an async function.
        ContextCancelled, DeadlineExceeded: ``ctx`` ended before any finished.
        Exception: the winner's.
    """
    if not afns:
        raise ValueError("race() needs at least one async function in `afns`")
    for i, afn in enumerate(afns):
        check_afn(afn, f"afns[{i}]")
    won: list[tuple[T]] = []
    failed: list[BaseException] = []

    async def racer(group: TaskGroup, afn: Callable[[], Awaitable[T]], i: int) -> None:
        try:
            value = cast(T, await coroutine_of(afn, (), name=f"afns[{i}]"))
        except BaseException as exc:
            if isinstance(exc, trio.Cancelled) or group._outcome.is_own(exc) or _has_cancelled(exc):
                raise
            if won or failed:
                if not isinstance(exc, Exception):
                    raise
                logger.warning("race(): a loser raised while being cancelled", exc_info=exc)
                return
            failed.append(exc)
            group.cancel(exc)
            return
        if not (won or failed):
            won.append((value,))
            group.cancel()

    async with open_group(ctx) as group:
        if ctx.err is not None:
            await trio.lowlevel.checkpoint()  # the group scope is born cancelled: raises err
        for i, afn in enumerate(afns):
            group.start_soon(racer, group, afn, i, name=afn)
    if failed:
        # Not raised from the list: its traceback would hold this frame, and the frame the list.
        error = failed.pop()
        try:
            raise error
        finally:
            del error
    if won:
        return won[0][0]
    group.context.check()  # pragma: no cover - a done ctx raised from the group above
    raise AssertionError("race(): no function finished")  # pragma: no cover
