"""Stuck-task reports: a task still running a grace period after its context was cancelled.

Rules for callers: a task must return soon after its context is done (at its next checkpoint,
or at the next ``check()`` of a polling loop). One that does not, because it shields itself,
swallows ``trio.Cancelled`` or blocks without checkpoints, keeps its whole group waiting; the
report says which task, where it is (its await stack) and why its context ended
(``explain()``). :func:`open_group` logs it on the ``trio_context`` logger at WARNING, or with
``strict=True`` raises :class:`StuckTaskError` among the group's errors once the task ends.
"""

from __future__ import annotations

import traceback

import trio

from .._core import Context

__all__ = ["StuckTaskError", "stuck_report"]


class StuckTaskError(RuntimeError):
    """A task was still running ``grace`` seconds after its group's context was cancelled.

    Raised, inside the group's exception group, by ``open_group(..., strict=True)`` once the
    task has finished. Not a :class:`ContextError`: it reports a task that ignores cancellation,
    not the end of a context. ``task_name``, ``stack`` and ``explanation`` are the parts of the
    message.
    """

    def __init__(
        self, message: str, task_name: str = "", stack: str = "", explanation: str = ""
    ) -> None:
        super().__init__(message)
        self.task_name = task_name
        self.stack = stack
        self.explanation = explanation


def stuck_report(task: trio.lowlevel.Task, grace: float, ctx: Context) -> StuckTaskError:
    """Describe ``task`` (name, current await stack) and why ``ctx`` is done."""
    stack = "".join(traceback.StackSummary.extract(task.iter_await_frames()).format())
    explanation = ctx.explain()
    message = (
        f"task {task.name!r} is still running {grace:g} s after its group's context was "
        f"cancelled; it is at (most recent call last):\n{stack}{explanation}"
    )
    return StuckTaskError(message, task.name, stack, explanation)
