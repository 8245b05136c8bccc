"""What a task group hands to trio: checks that an argument is an async function (before any task
is spawned, so the mistake is reported where it was made), option checks, and a ``task_status``
wrapper that records whether the task has reported readiness. Internal; trio thread only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from types import CoroutineType
from typing import Any, Protocol, TypeVar

import trio

from .._core import check_seconds

__all__ = [
    "A1",
    "A2",
    "Startable0",
    "Startable1",
    "Startable2",
    "Status",
    "StatusT",
    "check_afn",
    "check_options",
    "coroutine_of",
]

StatusT = TypeVar("StatusT")
StatusT_co = TypeVar("StatusT_co", covariant=True)
A1 = TypeVar("A1")
A2 = TypeVar("A2")
A1_contra = TypeVar("A1_contra", contravariant=True)
A2_contra = TypeVar("A2_contra", contravariant=True)


# What TaskGroup.start accepts, by number of positional arguments, so that its result is typed
# from the function's ``task_status: trio.TaskStatus[T]``.
class Startable0(Protocol[StatusT_co]):
    def __call__(self, *, task_status: trio.TaskStatus[StatusT_co]) -> Awaitable[object]: ...


class Startable1(Protocol[A1_contra, StatusT_co]):
    def __call__(
        self, a1: A1_contra, /, *, task_status: trio.TaskStatus[StatusT_co]
    ) -> Awaitable[object]: ...


class Startable2(Protocol[A1_contra, A2_contra, StatusT_co]):
    def __call__(
        self, a1: A1_contra, a2: A2_contra, /, *, task_status: trio.TaskStatus[StatusT_co]
    ) -> Awaitable[object]: ...


class Status:
    """Wraps trio's ``task_status`` to know whether the task has reported readiness."""

    __slots__ = ("called", "inner")

    def __init__(self, inner: trio.TaskStatus[Any]) -> None:
        self.inner = inner
        self.called = False

    def started(self, value: object = None) -> None:
        self.inner.started(value)
        self.called = True


def check_afn(afn: object, name: str = "afn") -> None:
    """Raise TypeError unless ``afn`` is callable, with a hint for a coroutine object."""
    if callable(afn):  # the hot path: one builtin call
        return
    if isinstance(afn, Coroutine):
        afn.close()  # as trio does: no "never awaited" warning on top of the error
        raise TypeError(
            f"`{name}` must be an async function, not a coroutine object: pass the function "
            "and its arguments separately, start_soon(fn, arg), not start_soon(fn(arg))"
        )
    raise TypeError(f"`{name}` must be an async function, not {type(afn).__name__}")


def coroutine_of(
    afn: object, args: tuple[object, ...], *, name: str = "afn", **kwargs: object
) -> Coroutine[Any, Any, object]:
    """Call ``afn`` and return its coroutine, or raise TypeError naming the mistake (and the
    argument, ``name``)."""
    check_afn(afn, name)
    assert callable(afn)
    coro = afn(*args, **kwargs)
    if type(coro) is not CoroutineType and not isinstance(coro, Coroutine):
        if hasattr(coro, "__await__"):  # an awaitable that is not a coroutine: fine
            return _awaiting(coro)
        raise TypeError(
            f"`{name}` must be an async function; {afn!r} returned {type(coro).__name__}, "
            "not a coroutine (is it a synchronous function?)"
        )
    return coro  # pyright: ignore[reportUnknownVariableType]


async def _awaiting(awaitable: Any) -> object:
    return await awaitable


def check_options(
    limit: object, grace: object, strict: object, cancel_on_error: object = True
) -> None:
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"`limit` must be a positive int or None, not {type(limit).__name__}")
        if limit < 1:
            raise ValueError(f"`limit` must be a positive int or None, got {limit!r}")
    if grace is not None:
        check_seconds(grace, "grace")
    if not isinstance(strict, bool):
        raise TypeError(f"`strict` must be a bool, not {type(strict).__name__}")
    if not isinstance(cancel_on_error, bool):
        raise TypeError(f"`cancel_on_error` must be a bool, not {type(cancel_on_error).__name__}")
