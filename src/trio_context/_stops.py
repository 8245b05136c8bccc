"""Graceful and hard stops: a "stop now" twin of a "please stop" context, and cleanup contexts.

Rules for callers:

- A *soft* context says "please stop": finish the current step, save, answer the user. Its *hard*
  twin, ``hard = with_grace(soft, seconds)``, says "stop now": it becomes done ``seconds`` after
  ``soft`` is done. Give the soft one to code that can wind down and the hard one to whatever
  enforces the end (``run_process`` sends its term signal on soft and SIGKILL on hard).
- ``finally:`` work (upload logs, release a lock, the CI ``after_script``) must not run under the
  cancelled context, or it is cancelled before it starts. Run it under
  ``cleanup(ctx, seconds)``: same values, ``ctx``'s cancellation ignored, its own deadline.
  Binding it shields the body from the enclosing cancellation for that budget (trio's
  ``CancelScope(shield=True)``), so it works in a ``finally:`` inside the cancelled block::

      try:
          await build(ctx)
      finally:
          with tc.cleanup(ctx, 10).scope():
              await upload_logs()

- A *forced* stop (the second Ctrl-C, see :func:`open_signal_context`) still reaches both:
  :func:`with_grace` and :func:`cleanup` contexts end as soon as the nearest hard context recorded
  by ``open_signal_context`` (see :func:`hard_context`) is done.
- Cancel the contexts these functions return once their work is over (or use ``with ctx:``): that
  releases the callback they register on ``soft`` and on the hard twin at once.

Both constructors need a running trio loop (deadlines are on trio's clock) and belong in the trio
thread; :func:`hard_context` is safe from any thread.
"""

from __future__ import annotations

import math

from ._core import (
    HARD_KEY,
    CancelContext,
    Context,
    after_func,
    check_parent,
    check_seconds,
    clock_for,
    hard_context,
    set_shield,
    with_cancel,
    with_value,
    without_cancel,
)

__all__ = ["cleanup", "grace_left", "graceful", "hard_context", "with_grace"]


def _detached(ctx: Context) -> CancelContext:
    """A cancellable context with ``ctx``'s values that ignores ``ctx``'s cancellation but ends
    at once when ``ctx``'s hard twin (if any) is done, with the twin's cause."""
    linked = with_cancel(without_cancel(ctx))
    twin = hard_context(ctx)
    if twin is not None:
        # Linked through after_func rather than parented under the twin: a child of the twin
        # would lose every value set between the twin and ``ctx``
        # (see docs/explanation/internals.md).
        def force() -> None:
            linked.cancel(twin.cause)

        if twin.done.is_set():
            force()
        else:
            after_func(linked, after_func(twin, force))
    return linked


def with_grace(soft: Context, seconds: float) -> CancelContext:
    """Return the hard twin of ``soft``: a context that is done ``seconds`` after ``soft`` is.

    It keeps ``soft``'s values and ignores its cancellation until the grace period has passed,
    then ends with :class:`DeadlineExceeded` whose cause is ``soft``'s cause. A forced stop
    (the hard context of :func:`open_signal_context`) ends it at once. ``seconds=0`` follows
    ``soft`` immediately; ``math.inf`` waits for a forced stop or an explicit ``cancel()``.
    Each call makes a new context; cancelling it early is allowed and releases its watch on
    ``soft``. Call it in the trio thread::

        hard = tc.with_grace(ctx, 5)
        result = await tc.run_process(ctx, ["make"], hard=hard)

    Raises:
        TypeError: ``soft`` is not a context or ``seconds`` is not a number.
        ValueError: ``seconds`` is negative or NaN.
        RuntimeError: outside a trio run.
    """
    check_parent(soft, "soft")
    grace = check_seconds(seconds, "seconds")
    clock_for("with_grace()")
    hard = _detached(soft)
    # Bound, a hard twin does not shield its body as a cleanup context does: it has no budget
    # of its own until soft ends, so a shield could hold off an unrelated cancellation forever.
    set_shield(hard, shield=False)

    def start_grace() -> None:
        # An outer budget (a hard stop recorded above ``soft``) caps this grace period: the
        # link in _detached() would end ``hard`` with it anyway; the deadline says so now.
        # A zero grace too ends by its deadline (DeadlineExceeded), like any other.
        twin = hard_context(soft)
        left = grace if twin is None else min(grace, twin.remaining())
        if left != math.inf:
            hard.cancel_after(left, cause=soft.cause)

    after_func(hard, after_func(soft, start_grace))
    return hard


def cleanup(ctx: Context, timeout: float) -> CancelContext:
    """Return a context for ``finally:`` work: ``ctx``'s values, none of its cancellation, and
    its own deadline ``timeout`` seconds from now (it ends with :class:`DeadlineExceeded`).

    Binding it (``with``, ``scope()``) shields the body from any enclosing trio cancellation
    for at most ``timeout`` seconds, as ``trio.move_on_after(timeout, shield=True)`` would, so
    it runs in a ``finally:`` inside the block that was cancelled. A forced stop (the hard
    context of :func:`open_signal_context`) still ends it at once, so a second Ctrl-C cuts
    cleanup short. ``math.inf`` means no deadline of its own. Each call
    makes a new context; call it in the trio thread::

        with tc.cleanup(ctx, 10) as cctx:
            await upload_logs(cctx)

    Raises:
        TypeError: ``ctx`` is not a context or ``timeout`` is not a number.
        ValueError: ``timeout`` is negative or NaN.
        RuntimeError: outside a trio run.
    """
    check_parent(ctx, "ctx")
    budget = check_seconds(timeout, "timeout")
    clock_for("cleanup()")
    result = _detached(ctx)
    result.cancel_after(budget)
    return result


def graceful(soft: Context, seconds: float) -> Context:
    """Return ``soft`` with a grace budget recorded: once ``soft`` is done, work under the
    returned context has ``seconds`` to finish before its hard stop -- and never more than an
    outer budget (one recorded above ``soft``, e.g. by :func:`open_signal_context` or a
    parent process through :func:`from_environ`) leaves.

    Everything below sees the budget: :func:`with_grace` and :func:`cleanup` contexts end with
    it, ``run_process`` sends SIGKILL by then and tells a listening child how much is left,
    and :func:`grace_left` says how long remains. Nested levels (job, step, subprocess) so
    never add up past the outer budget::

        job = tc.graceful(tc.with_cancel(root), 30)
        step = tc.graceful(tc.with_cancel(job), 10)   # at most what the job has left

    Call it in the trio thread.

    Raises:
        TypeError: ``soft`` is not a context or ``seconds`` is not a number.
        ValueError: ``seconds`` is negative or NaN.
        RuntimeError: outside a trio run.
    """
    hard = with_grace(soft, seconds)
    return with_value(soft, HARD_KEY, hard)


def grace_left(ctx: Context) -> float:
    """Seconds left before the hard stop of the graceful stop ``ctx`` is part of: ``math.inf``
    while no grace period is running (``ctx`` is not stopping, or no budget is recorded above
    it), 0 once the hard stop came. Safe from any thread::

        if ctx.done.is_set():
            save_partial(timeout=min(5, tc.grace_left(ctx)))
    """
    check_parent(ctx, "ctx")
    hard = hard_context(ctx)
    if hard is None:
        return math.inf
    return 0.0 if hard.done.is_set() else hard.remaining()
