"""What the runner shows while the job runs: plain prefixed lines, or a live view on a terminal.

Rules for callers: make one with :func:`make_display`; it implements the runner's ``Reporter``.
Every method is called from the trio thread and never raises for a reader that went away (the
output is then dropped and the job goes on). :meth:`LiveDisplay.run` is a task that redraws the
status block ten times a second until cancelled; call :meth:`PlainDisplay.close` at the end.

- :class:`PlainDisplay` (stdout is not a terminal, e.g. a CI log): every event and every output
  line is one line, prefixed with the step name (``[build] ...``, ``[build:err] ...`` for stderr),
  ASCII only, no colour; step output goes through as it came.
- :class:`LiveDisplay` (a terminal): the same lines scroll above a status block that shows the
  job and the steps (queued / running with elapsed time / cancelling / passed / failed / ...).
  Step output is neutralised first (no escape sequence or control character reaches the
  terminal; a ``\\r`` progress bar shows its last state). The block never takes more than half
  the terminal's rows: when the steps do not fit it shows the active ones, then the failed ones,
  and one line that counts the rest by status ("+ 85 more: 60 queued, 25 passed").

Why hand-written rather than rich's ``Live``: the example's only dependencies are trio and attrs,
and the view needs four things, each a few lines here: redraw in place, fit the terminal's size
(read at every redraw), neutralise the output, and a plain fallback for pipes that ``Live``
would need anyway.

Both show at most ``max_lines`` lines of each step's output: the first ones as they come, then,
when the step ends, how many were left out and the last quarter of the budget (the lines that
usually say what went wrong). ``max_lines=0`` shows everything; ``--log-dir`` keeps it all.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter, deque
from typing import TextIO

import attrs
import trio

from .pipeline import Pipeline, Step
from .results import StepResult
from .terminal import emit, neutralise

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
_SHOWN_FIRST = ("cancelling", "running", "failed", "timed_out", "cancelled")
"""When the steps do not fit, the block shows these, in this order."""


def describe(result: StepResult) -> str:
    """Return a step's status in words: ``timed out (continue-on-error)``, ``failed``, ..."""
    words = STATUS_WORDS[result.status]
    if result.allowed_failure:
        words += " (continue-on-error)"
    return words


@attrs.define
class _Output:
    """The output budget of one step: lines shown so far, lines left out, the last ones kept."""

    shown: int = 0
    hidden: int = 0
    tail: deque[tuple[str, str]] = attrs.field(factory=lambda: deque[tuple[str, str]]())


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
        self.reader_gone = False

    # -- the runner's Reporter -------------------------------------------------------------

    def step_started(self, step: Step) -> None:
        command = self.visible(step.run.strip().splitlines()[0])
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
        self.write(self.prefix(name, stream) + self.visible(line))

    def step_stopping(self, name: str, how: str) -> None:
        self.event(name, how)

    def step_finished(self, result: StepResult) -> None:
        output = self.outputs[result.name]
        left_out = output.hidden - len(output.tail)
        if left_out > 0:
            self.event(result.name, f"... {left_out} lines of output not shown ...")
        for stream, line in output.tail:
            self.write(self.prefix(result.name, stream) + self.visible(line))
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
        emit(sys.stderr, text + "\n")

    # -- helpers ---------------------------------------------------------------------------

    def visible(self, text: str) -> str:
        """Return step output as this display shows it (as it came, in plain mode)."""
        return text

    def prefix(self, name: str, stream: str) -> str:
        label = f"[{name}:err]" if stream == "stderr" else f"[{name}]"
        return label.ljust(self.name_width + len("[:err] "))

    def event(self, name: str, text: str) -> None:
        self.write(f"{self.prefix(name, 'stdout')}-- {text}")

    def write(self, line: str) -> None:
        """Write one line; once the reader is gone, drop it (the job goes on)."""
        if not self.reader_gone:
            self.reader_gone = not emit(self.out, line + "\n")

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
        self.send("\x1b[?25l")  # hide the cursor while the block is redrawn

    def step_started(self, step: Step) -> None:
        self.states[step.name] = "running"
        self.started[step.name] = trio.current_time()
        super().step_started(step)

    def step_stopping(self, name: str, how: str) -> None:
        self.states[name] = "cancelling"
        super().step_stopping(name, how)

    def step_finished(self, result: StepResult) -> None:
        self.states[result.name] = result.status
        self.results[result.name] = result
        super().step_finished(result)

    def context_tree(self, text: str) -> None:
        self.send(self.erase())  # stderr is usually the same terminal: print the tree above
        super().context_tree(text)
        self.send(self.block())

    def visible(self, text: str) -> str:
        return neutralise(text)

    def prefix(self, name: str, stream: str) -> str:
        plain = super().prefix(name, stream)
        return self.paint(plain, "31" if stream == "stderr" else "1")

    def write(self, line: str) -> None:
        self.send(self.erase() + line + "\n" + self.block())

    async def run(self) -> None:
        """Redraw the block (elapsed times) every 0.1 s until cancelled."""
        while not self.reader_gone:
            self.send(self.erase() + self.block())
            await trio.sleep(0.1)

    def close(self) -> None:
        """Erase the block (the summary table takes its place) and show the cursor again."""
        self.send(self.erase() + "\x1b[?25h")

    # -- the status block ------------------------------------------------------------------

    def send(self, text: str) -> None:
        if not self.reader_gone:
            self.reader_gone = not emit(self.out, text)

    def erase(self) -> str:
        height, self.block_height = self.block_height, 0
        return f"\x1b[{height}F\x1b[J" if height else ""

    def block(self) -> str:
        """Return the status block for the terminal's current size (and note its height)."""
        size = shutil.get_terminal_size((100, 24))
        columns, budget = size.columns - 1, max(size.lines // 2, 3)
        now = trio.current_time()
        header = f"job {self.pipeline.job.name}: {now - self.job_start:.1f}s"
        if self.job_message:
            header += f"  {self.job_message}"
        lines = [self.paint(header[:columns], "1;33" if self.job_message else "1")]
        steps = list(self.pipeline.steps)
        hidden: list[Step] = []
        if len(steps) + 1 > budget:  # too tall: the steps that matter now, and a count of the rest
            order = {state: rank for rank, state in enumerate(_SHOWN_FIRST)}
            wanted = sorted(
                (s for s in steps if self.states[s.name] in order),
                key=lambda s: order[self.states[s.name]],
            )[: budget - 2]
            hidden = [s for s in steps if s not in wanted]
            steps = [s for s in steps if s in wanted]
        lines.extend(self.step_line(step, now, columns) for step in steps)
        if hidden:
            counts = Counter(STATUS_WORDS[self.states[s.name]] for s in hidden)
            text = ", ".join(f"{n} {word}" for word, n in counts.most_common())
            lines.append(self.paint(f"  + {len(hidden)} more: {text}"[:columns], "2"))
        self.block_height = len(lines)
        return "\n".join(lines) + "\n"

    def step_line(self, step: Step, now: float, columns: int) -> str:
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
        return self.paint(text[:columns], _COLOURS[state])

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
