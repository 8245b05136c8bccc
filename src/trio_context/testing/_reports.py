"""The reports the test helpers produce: why a test's context ended, and what leaked."""

from __future__ import annotations

from .._core import CancelContext, DeadlineExceeded
from ._leakcheck import tasks_under
from ._leakreport import Leak, exception_stacks, format_stack
from ._limits import TimeLimitExceeded


def interrupted_report(test_ctx: CancelContext, source: str, raised: list[BaseException]) -> str:
    """Say why ``test_ctx`` interrupted a test: its ``explain()``, the stacks where the test
    and its tasks were waiting (from the exceptions ``raised`` in the body), and the tasks
    still running under it. ``source`` names where the deadline came from ("" if unknown).
    Must run in the trio thread."""
    err = test_ctx.err
    if isinstance(test_ctx.cause, TimeLimitExceeded):
        head = str(test_ctx.cause)
    elif isinstance(err, DeadlineExceeded):
        head = "the test's context reached its deadline"
        if source:
            head += f" (set by {source})"
    else:
        head = "the test's context was cancelled while the test ran"
    lines = [head, test_ctx.explain()]
    stacks: list[str] = []
    for exc in raised:
        for stack in exception_stacks(exc):
            text = format_stack(stack, "      ")
            if text and text not in stacks:
                stacks.append(text)
    if stacks:
        lines.append("where the test and its tasks were waiting:")
        for n, text in enumerate(stacks, 1):
            lines += [f"  - #{n}:", text]
    others = tasks_under(test_ctx)
    if others:
        lines.append("tasks still running under the test's context:")
        lines += [leak.format() for leak in others]
    return "\n".join(lines)


def leak_report(leaks: list[Leak], *, opt_out: str = "") -> str:
    """A report of ``leaks`` (from :class:`LeakWatch`), one block per leak with where it was
    created and where it is now; ``opt_out`` (e.g. a marker's name) is shown as the way to
    skip the check, with the kinds to pass it."""
    kinds = sorted({leak.kind for leak in leaks})
    lines = [
        f"trio_context leak check: the test left {len(leaks)} thing(s) "
        f"running after it ended and its context was cancelled ({', '.join(kinds)}):"
    ]
    lines += [leak.format() for leak in leaks]
    if opt_out:
        kinds_args = ", ".join(repr(k) for k in kinds)
        lines.append(f"(opt out with {opt_out}, or {opt_out}({kinds_args}))")
    return "\n".join(lines)
