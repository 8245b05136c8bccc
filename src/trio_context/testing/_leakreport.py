"""What a leak report shows: :class:`Leak`, and the stacks that say where a leak was created
and where it is now.

Part of the pytest plugin's leak check (``testing/_leakcheck.py``). Stacks are captured
cheaply (frames only) and formatted with the user's frames only: trio, pytest and the plugin's
own modules are left out. Everything here only reads, and is safe from any thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterable
from types import FrameType
from typing import Final, cast

import trio

__all__ = [
    "Leak",
    "capture",
    "exception_stacks",
    "format_stack",
    "has_user_frames",
    "task_stack",
    "thread_stack",
]

_STACK_LIMIT: Final = 24
_SHOWN_FRAMES: Final = 8
_HERE: Final = os.path.dirname(os.path.abspath(__file__))
_HIDDEN_PREFIXES: Final = (os.path.dirname(os.path.abspath(trio.__file__)) + os.sep,)
_HIDDEN_PARTS: Final = tuple(
    os.sep + name + os.sep for name in ("_pytest", "pluggy", "pytest_trio", "outcome")
)
_HIDDEN_FILES: Final = frozenset(
    [
        os.path.abspath(threading.__file__),
        os.path.abspath(subprocess.__file__),
        *(
            os.path.join(_HERE, name)
            for name in (
                "_binding.py",
                "_guard.py",
                "_helpers.py",
                "_leakcheck.py",
                "_leakprocs.py",
                "_leakreport.py",
            )
        ),
        os.path.join(os.path.dirname(_HERE), "pytest_plugin.py"),
    ]
)


# -- stacks -------------------------------------------------------------------------------


def _hidden(filename: str) -> bool:
    return (
        filename in _HIDDEN_FILES
        or filename.startswith(_HIDDEN_PREFIXES)
        or any(part in filename for part in _HIDDEN_PARTS)
    )


def capture(frame: FrameType | None) -> traceback.StackSummary:
    """A cheap stack from ``frame`` outwards, outermost first: frames only, no source lines
    (they are read from ``linecache`` when the stack is formatted)."""
    summary = traceback.StackSummary.extract(
        traceback.walk_stack(frame), limit=_STACK_LIMIT, lookup_lines=False
    )
    summary.reverse()
    return summary


def has_user_frames(frames: Iterable[traceback.FrameSummary]) -> bool:
    """Whether a stack has a frame outside trio, pytest and the plugin's own modules."""
    return any(not _hidden(f.filename) for f in frames)


def format_stack(frames: Iterable[traceback.FrameSummary], indent: str = "    ") -> str:
    """The user's frames of a stack (trio, pytest and plugin internals left out), innermost
    last, at most a few, formatted like a traceback. ``""`` when none is left."""
    frames = list(frames)
    shown = [f for f in frames if not _hidden(f.filename)][-_SHOWN_FRAMES:]
    if not shown:
        shown = frames[-1:]  # all internal (trio.sleep_forever, Event.wait): say which
    lines: list[str] = []
    for f in shown:
        lines.append(f'{indent}File "{f.filename}", line {f.lineno}, in {f.name}')
        code = (f.line or "").strip()
        if code:
            lines.append(f"{indent}  {code}")
    return "\n".join(lines)


def task_stack(task: trio.lowlevel.Task) -> traceback.StackSummary:
    """Where a suspended trio task is waiting, outermost frame first."""
    return traceback.StackSummary.extract(task.iter_await_frames(), limit=_STACK_LIMIT)


def thread_stack(thread: threading.Thread) -> traceback.StackSummary | None:
    """Where a running thread is now, outermost frame first (None if it is gone)."""
    ident = thread.ident
    frame = sys._current_frames().get(ident) if ident is not None else None
    if frame is None:
        return None
    summary = traceback.StackSummary.extract(traceback.walk_stack(frame), limit=_STACK_LIMIT)
    summary.reverse()
    return summary


def exception_stacks(exc: BaseException) -> list[traceback.StackSummary]:
    """The stacks where each ``trio.Cancelled`` inside ``exc`` (an exception group tree) was
    raised: where each task was waiting when its scope was cancelled."""
    out: list[traceback.StackSummary] = []
    todo: list[tuple[BaseException, list[traceback.FrameSummary]]] = [(exc, [])]
    while todo:
        node, outer = todo.pop()
        frames = outer + list(traceback.extract_tb(node.__traceback__, limit=_STACK_LIMIT))
        if isinstance(node, BaseExceptionGroup):
            group = cast("BaseExceptionGroup[BaseException]", node)
            subs = group.exceptions
            todo.extend((sub, frames) for sub in reversed(subs))
        elif isinstance(node, trio.Cancelled):
            out.append(traceback.StackSummary.from_list(frames))
    return out


# -- leaks ----------------------------------------------------------------------------------


class Leak:
    """One thing a test left behind: ``kind`` (``"tasks"``, ``"scopes"``, ``"threads"`` or
    ``"processes"``), a one-line ``what``, where it was created and where it is now."""

    __slots__ = ("created", "kind", "now", "what")

    def __init__(
        self,
        kind: str,
        what: str,
        created: Iterable[traceback.FrameSummary] | None = None,
        now: Iterable[traceback.FrameSummary] | None = None,
    ) -> None:
        self.kind = kind
        self.what = what
        self.created = created
        self.now = now

    def format(self) -> str:
        lines = [f"- {self.what}"]
        for label, frames in (("created at", self.created), ("now at", self.now)):
            text = format_stack(frames, "      ") if frames is not None else ""
            if text:
                lines += [f"    {label}:", text]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Leak {self.kind}: {self.what}>"
