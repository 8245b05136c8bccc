"""What the runner shows while the job runs: plain prefixed lines, or a live view on a terminal.

Rules for callers: make one with :func:`make_display`; it implements the runner's ``Reporter``.
Every method is called from the trio thread. :meth:`LiveDisplay.run` is a task that redraws the
status block ten times a second until cancelled; call :meth:`PlainDisplay.close` at the end.

- :class:`PlainDisplay` (stdout is not a terminal, e.g. a CI log): every event and every output
  line is one line, prefixed with the step name (``[build] ...``, ``[build:err] ...`` for stderr),
  ASCII only, no colour.
- :class:`LiveDisplay` (a terminal): the same lines scroll above a status block that shows each
  step (queued / running with elapsed time / cancelling / passed / failed / ...) and the job.

Both show at most ``max_lines`` lines of each step's output: the first ones as they come, then, when
the step ends, how many were left out and the last quarter of the budget (the lines that usually
say what went wrong). ``max_lines=0`` shows everything.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections import deque
from typing import TextIO

import attrs
import trio

from .pipeline import Pipeline, Step
from .runner import StepResult

STATUS_WORDS = {
    "queued": "queued",
    "running": "running",
    "cancelling": "cancelling",
    "passed": "passed",
    "failed": "failed",
    "timed_out": "timed out",
    "cancelled": "cancelled",
    "skipped": "skipped",
}
_COLOURS = {
    "queued": "2",
    "running": "36",
    "cancelling": "33",
    "passed": "32",
    "failed": "31",
    "timed_out": "33",
    "cancelled": "35",
    "skipped": "2",
}
_SYMBOLS = {
    "queued": "·",
    "running": "▸",
    "cancelling": "…",
    "passed": "✓",
    "failed": "✗",
    "timed_out": "◔",
    "cancelled": "⊘",
    "skipped": "-",
}


def describe(result: StepResult) -> str:
    """Return a step's status in words: ``timed out (continue-on-error)``, ``failed``, ..."""
    words = STATUS_WORDS[result.status]
    if result.continue_on_error and result.status in ("failed", "timed_out"):
        words += " (continue-on-error)"
    return words


@attrs.define
class _Output:
    """The output budget of one step: lines shown so far, lines left out, the last ones kept."""

    shown: int = 0
    hidden: int = 0
    tail: deque[tuple[str, str]] = attrs.field(factory=deque)


class PlainDisplay:
    """One line per event and per output line; the format for logs and pipes."""

    def __init__(self, out: TextIO, pipeline: Pipeline, *, max_lines: int = 100) -> None:
        self.out = out
        self.pipeline = pipeline
        self.max_lines = max_lines
        self.tail_lines = max_lines // 4
        self.name_width = max(len(step.name) for step in pipeline.steps)
        self.outputs = {step.name: _Output() for step in pipeline.steps}
        self.job_message: str | None = None

    # -- the runner's Reporter -------------------------------------------------------------

    def step_started(self, step: Step) -> None:
        command = step.run.strip().splitlines()[0]
        more = " ..." if "\n" in step.run.strip() else ""
        self.event(step.name, f"started: {command}{more}")

    def step_output(self, name: str, stream: str, line: str) -> None:
        output = self.outputs[name]
        if self.max_lines and output.shown >= self.max_lines - self.tail_lines:
            output.hidden += 1
            output.tail.append((stream, line))
            if len(output.tail) > self.tail_lines:
                output.tail.popleft()
            return
        output.shown += 1
        self.write(self.prefix(name, stream) + line)

    def step_stopping(self, name: str) -> None:
        self.event(name, "stopping (SIGTERM to its process group)")

    def step_finished(self, result: StepResult) -> None:
        output = self.outputs[result.name]
        left_out = output.hidden - len(output.tail)
        if left_out > 0:
            self.event(result.name, f"... {left_out} lines of output not shown ...")
        for stream, line in output.tail:
            self.write(self.prefix(result.name, stream) + line)
        output.tail.clear()
        text = describe(result)
        if result.status != "skipped":
            text += f" in {result.duration:.1f}s"
        if result.cause:
            text += f": {result.cause}"
        self.event(result.name, text)

    def job_stopping(self, message: str) -> None:
        self.job_message = message
        self.write(f"[job] {message}")

    def context_tree(self, text: str) -> None:
        """Print the job's context tree (asked for with SIGUSR1) to stderr."""
        print(text, file=sys.stderr, flush=True)

    # -- helpers ---------------------------------------------------------------------------

    def prefix(self, name: str, stream: str) -> str:
        label = f"[{name}:err]" if stream == "stderr" else f"[{name}]"
        return label.ljust(self.name_width + len("[:err] "))

    def event(self, name: str, text: str) -> None:
        self.write(f"{self.prefix(name, 'stdout')}-- {text}")

    def write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    async def run(self) -> None:
        """Nothing to refresh in plain mode; returns at once."""

    def close(self) -> None:
        """Nothing to restore in plain mode."""


class LiveDisplay(PlainDisplay):
    """Output scrolls above a status block that is redrawn in place (ANSI escapes)."""

    def __init__(self, out: TextIO, pipeline: Pipeline, *, max_lines: int = 100) -> None:
        super().__init__(out, pipeline, max_lines=max_lines)
        self.states: dict[str, str] = {step.name: "queued" for step in pipeline.steps}
        self.started: dict[str, float] = {}
        self.results: dict[str, StepResult] = {}
        self.job_start = trio.current_time()
        self.block_height = 0
        self.colour = "NO_COLOR" not in os.environ
        self.out.write("\x1b[?25l")  # hide the cursor while the block is redrawn

    def step_started(self, step: Step) -> None:
        self.states[step.name] = "running"
        self.started[step.name] = trio.current_time()
        super().step_started(step)

    def step_stopping(self, name: str) -> None:
        self.states[name] = "cancelling"
        super().step_stopping(name)

    def step_finished(self, result: StepResult) -> None:
        self.states[result.name] = result.status
        self.results[result.name] = result
        super().step_finished(result)

    def context_tree(self, text: str) -> None:
        self.erase_block()  # stderr is usually the same terminal: print the tree above the block
        self.out.flush()
        super().context_tree(text)
        self.draw_block()

    def prefix(self, name: str, stream: str) -> str:
        plain = super().prefix(name, stream)
        return self.paint(plain, "31" if stream == "stderr" else "1")

    def write(self, line: str) -> None:
        self.erase_block()
        self.out.write(line + "\n")
        self.draw_block()

    async def run(self) -> None:
        """Redraw the block (elapsed times) every 0.1 s until cancelled."""
        while True:
            self.erase_block()
            self.draw_block()
            await trio.sleep(0.1)

    def close(self) -> None:
        """Erase the block (the summary table takes its place) and show the cursor again."""
        self.erase_block()
        self.out.write("\x1b[?25h")
        self.out.flush()

    # -- the status block ------------------------------------------------------------------

    def erase_block(self) -> None:
        if self.block_height:
            self.out.write(f"\x1b[{self.block_height}F\x1b[J")
            self.block_height = 0

    def draw_block(self) -> None:
        columns = shutil.get_terminal_size((100, 24)).columns - 1
        now = trio.current_time()
        elapsed = now - self.job_start
        header = f"job {self.pipeline.job.name}: {elapsed:.1f}s"
        if self.job_message:
            header += f"  {self.job_message}"
        lines = [self.paint(header[:columns], "1;33" if self.job_message else "1")]
        steps = list(self.pipeline.steps)
        rows = shutil.get_terminal_size((100, 24)).lines
        if len(steps) + 1 >= rows:  # too tall to redraw in place: show the active steps only
            steps = [s for s in steps if self.states[s.name] in ("running", "cancelling")]
            steps = steps[: max(rows - 3, 0)]
            lines.append(self.paint(f"  ({len(self.pipeline.steps) - len(steps)} more)", "2"))
        for step in steps:
            state = self.states[step.name]
            text = f"  {_SYMBOLS[state]} {step.name.ljust(self.name_width)} "
            result = self.results.get(step.name)
            if result is not None:
                text += describe(result)
                if result.status != "skipped":
                    text += f"  {result.duration:.1f}s"
                if result.cause:
                    text += f"  {result.cause}"
            else:
                text += STATUS_WORDS[state]
                if step.name in self.started:
                    text += f"  {now - self.started[step.name]:.1f}s"
            lines.append(self.paint(text[:columns], _COLOURS[state]))
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.block_height = len(lines)

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text


def make_display(out: TextIO, pipeline: Pipeline, *, max_lines: int = 100) -> PlainDisplay:
    """Return a live display when ``out`` is a terminal that can show it, a plain one otherwise."""
    live = out.isatty() and os.environ.get("TERM", "") not in ("", "dumb")
    try:
        "".join(_SYMBOLS.values()).encode(getattr(out, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        live = False
    cls = LiveDisplay if live else PlainDisplay
    return cls(out, pipeline, max_lines=max_lines)
