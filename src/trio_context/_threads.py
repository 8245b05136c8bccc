"""Run blocking code in a worker thread that stops with its context.

Rules for callers:

- Python cannot interrupt a thread, so the function must cooperate: inside it,
  ``tc.current()`` is a context that is done when ``ctx`` is done *or* when the awaiting trio
  task is cancelled, and a step loop polls it between steps::

      def generate(steps: int) -> Image:
          for i in range(steps):
              tc.current().check()      # raises ContextCancelled / DeadlineExceeded
              image = denoise(image, i)
          return image

      image = await tc.to_thread(ctx, generate, 30)

- On cancellation :func:`to_thread` tells the thread (through that context), *waits for the
  function to return* (the next ``check()``), and then raises. A function that never checks
  therefore delays the caller until it finishes, which is the point: no thread outlives the call.
- ``abandon_on_cancel=True`` returns at once instead and leaves the thread running in the
  background, still able to see that its context is done. That is the risky choice (the thread
  may keep holding files, locks or the GPU); use it only for side-effect-free work.
- ``trio.from_thread`` works inside the function, as with ``trio.to_thread.run_sync``, and the
  thread counts against trio's default thread limiter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple, Unpack, cast

import trio

from ._core import Context, ContextError, with_cancel

__all__ = ["to_thread"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class _WatchedLimiter:
    """Trio's default limiter, plus a record of the thread's start and end.

    ``trio.to_thread.run_sync`` documents that it calls ``acquire_on_behalf_of`` before starting
    the thread and ``release_on_behalf_of`` (in the trio thread) once the thread has *actually*
    finished, even after abandoning it: exactly the "did it start / has it ended" we need."""

    def __init__(self, inner: trio.CapacityLimiter) -> None:
        self._inner = inner
        self.started = False
        self.finished = trio.Event()

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        await self._inner.acquire_on_behalf_of(borrower)
        self.started = True

    def release_on_behalf_of(self, borrower: object) -> None:
        try:
            self._inner.release_on_behalf_of(borrower)
        finally:
            self.finished.set()


async def to_thread(
    ctx: Context,
    fn: Callable[[Unpack[Ts]], T],
    *args: *Ts,
    abandon_on_cancel: bool = False,
) -> T:
    """Run ``fn(*args)`` in a worker thread and return its result; ``tc.current()`` there is a
    child of ``ctx`` that is also cancelled when the calling task is cancelled.

    When ``ctx`` is done (or the caller is cancelled) before ``fn`` returns, the thread's context
    is cancelled, ``to_thread`` waits for ``fn`` to return (unless ``abandon_on_cancel``), and
    then raises. Whatever ``fn`` returned is discarded then; an exception it raised that is not
    a :class:`ContextError` is raised instead, so real failures are not hidden. If ``ctx`` is
    already done, ``fn`` is not started. Each call runs ``fn`` once in its own thread; call it
    from trio, from any number of tasks at once::

        total = await tc.to_thread(ctx, crunch, rows)

    Raises:
        ContextCancelled, DeadlineExceeded: a fresh copy of ``ctx.err`` when ``ctx`` ended first.
        trio.Cancelled: the caller was cancelled from outside (re-raised after the thread ended).
        Exception: whatever ``fn`` raised.
    """
    child = with_cancel(ctx)
    limiter = _WatchedLimiter(trio.to_thread.current_default_thread_limiter())
    failure: list[BaseException] = []

    def call() -> T:
        try:
            return fn(*args)
        except BaseException as exc:
            failure.append(exc)
            raise

    try:
        # Started inside the scope, the thread's copied contextvars say current() is `child`.
        with child.scope():
            try:
                return await trio.to_thread.run_sync(
                    call,
                    abandon_on_cancel=True,
                    thread_name=f"{getattr(fn, '__name__', 'fn')} (trio_context.to_thread)",
                    # "CapacityLimiter-like" is the documented contract of `limiter`.
                    limiter=cast("trio.CapacityLimiter", limiter),
                )
            except trio.Cancelled:
                child.cancel()  # the outer cancellation reaches the thread too
                if not limiter.started or abandon_on_cancel:
                    raise
                with trio.CancelScope(shield=True):
                    await limiter.finished.wait()
                if not failure or isinstance(failure[0], ContextError | trio.Cancelled):
                    raise
            raise failure[0]  # a real error from fn beats the cancellation it raced with
    finally:
        child.cancel()
    raise AssertionError("unreachable: scope() swallowed its own cancellation")  # pragma: no cover
