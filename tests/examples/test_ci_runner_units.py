"""Unit tests of the CI runner's edges: neutralised output, a reader that goes away, the status
block on a small terminal, log file names, every cycle, and the net under every front end.

The same behaviours are checked end to end (the real program) in ``test_ci_runner_edges.py``.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest

from ci_runner import display
from ci_runner.logs import log_name
from ci_runner.pipeline import Pipeline, PipelineError, parse_pipeline
from ci_runner.results import StepResult
from ci_runner.startable import unstartable
from ci_runner.terminal import emit, neutralise


def parse(text: str, tmp_path: Path) -> Pipeline:
    return parse_pipeline(text, tmp_path / "ci.toml")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2Jcleared", "cleared"),  # clear the screen
        ("\x1b[31mred\x1b[0m text", "red text"),  # colours
        ("\x1b]0;title\x07after", "after"),  # window title (OSC ... BEL)
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),  # hyperlink (OSC ... ST)
        ("\x9b2Jc1", "c1"),  # the one-byte CSI
        ("10%\r50%\r100%", "100%"),  # a progress bar: its last state
        ("done\r", "done"),
        ("a\tb", "a       b"),
        ("bell\x07 back\x08space\x00nul", "bell backspacenul"),
        ("\x1b[", ""),  # cut short
        ("plain ünïcødé ✓", "plain ünïcødé ✓"),
    ],
)
def test_neutralise(raw: str, shown: str) -> None:
    assert neutralise(raw) == shown


def test_emit_to_a_closed_pipe_silences_the_stream() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    out = open(write_end, "w", encoding="utf-8")
    try:
        assert emit(out, "x" * 100_000) is False  # EPIPE (Python ignores SIGPIPE)
        assert emit(out, "more\n") is True  # now the null device takes it
    finally:
        out.close()  # flushing what was buffered raises nothing


def test_emit_to_a_string_buffer() -> None:
    out = io.StringIO()
    assert emit(out, "hello\n") is True
    assert out.getvalue() == "hello\n"


async def test_the_status_block_fits_a_small_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINES", "12")
    monkeypatch.setenv("COLUMNS", "30")
    steps = "".join(f'[[steps]]\nname = "step-{i:02d}"\nrun = "true"\n' for i in range(30))
    pipeline = parse(steps, tmp_path)
    out = io.StringIO()
    live = display.LiveDisplay(out, pipeline)
    live.colour = False
    for step in pipeline.steps[:8]:
        live.step_started(step)
    live.step_finished(StepResult("step-00", "failed", 1, 0.5, "exit code 1"))
    live.step_finished(StepResult("step-01", "passed", 0, 0.5))
    block = live.block().splitlines()
    assert len(block) == live.block_height <= 6  # half of 12 rows
    assert all(len(line) <= 29 for line in block)
    assert block[1].startswith("  ▸ step-02 running")  # active steps first
    assert block[-1] == "  + 26 more: 22 queued, 2 run"  # cut to the width
    live.close()


async def test_the_status_block_names_every_step_when_they_fit(tmp_path: Path) -> None:
    pipeline = parse('[[steps]]\nname = "a"\nrun = "true"\n', tmp_path)
    live = display.LiveDisplay(io.StringIO(), pipeline)
    live.colour = False
    assert live.block().splitlines()[1:] == ["  · a queued"]
    live.close()


def test_log_names_are_safe_file_names() -> None:
    assert log_name(0, 5, "build") == "01-build.log"
    assert log_name(99, 120, "../../etc/passwd") == "100-etc_passwd.log"
    assert log_name(2, 5, "unit tests: fast") == "03-unit_tests_fast.log"
    assert log_name(3, 5, "...") == "04-step.log"


def test_every_cycle_is_reported_also_next_to_a_self_need(tmp_path: Path) -> None:
    text = "".join(
        f'[[steps]]\nname = "{name}"\nrun = "true"\nneeds = [{needs}]\n'
        for name, needs in [
            ("self", '"self"'),
            ("a", '"b"'),
            ("b", '"a"'),
            ("c", '"d"'),
            ("d", '"e", "unknown"'),
            ("e", '"c"'),
        ]
    )
    with pytest.raises(PipelineError) as info:
        parse(text, tmp_path)
    messages = [p.message for p in info.value.problems]
    assert "step 'self': needs itself" in messages
    assert "step 'a': needs form a cycle: a -> b -> a" in messages
    assert "step 'c': needs form a cycle: c -> d -> e -> c" in messages
    assert any(m.startswith("step 'd': needs unknown step 'unknown'") for m in messages)


def test_a_long_reversed_chain_has_one_stage_per_step(tmp_path: Path) -> None:
    count = 3000
    text = "".join(
        f'[[steps]]\nname = "s{i}"\nrun = "true"\n' + (f'needs = ["s{i - 1}"]\n' if i else "")
        for i in reversed(range(count))
    )
    pipeline = parse(text, tmp_path)
    stages = pipeline.stages()
    assert len(stages) == count and stages[-1][0].name == f"s{count - 1}"
    assert len(pipeline.upstream(f"s{count - 1}")) == count - 1


def test_what_the_os_would_refuse_is_caught_for_any_front_end(tmp_path: Path) -> None:
    pipeline = parse('[[steps]]\nname = "ok"\nrun = "true"\n', tmp_path)
    assert unstartable(pipeline) == []
    step = pipeline.steps[0]
    bad = Pipeline(
        path=pipeline.path,
        job=pipeline.job.__class__(name="j", timeout=None, env={"A=B": "x"}),
        steps=(
            step.__class__(
                name="tab\there",
                run="echo \0",
                timeout=None,
                needs=(),
                env={"": "x", "V": "a\0b"},
                cwd=step.cwd,
                cwd_text=".",
                continue_on_error=False,
                condition="success()",
                line=7,
            ),
        ),
    )
    found = [(p.line, p.message) for p in unstartable(bad)]
    assert found == [
        (
            None,
            "[job]: env name 'A=B' cannot be used: a variable name must be non-empty, "
            "without '=' or NUL",
        ),
        (7, "step 'tab\\there': name must not contain control characters"),
        (7, "step 'tab\\there': its commands contain a NUL character, which no shell accepts"),
        (
            7,
            "step 'tab\\there': env name '' cannot be used: a variable name must be non-empty, "
            "without '=' or NUL",
        ),
        (7, "step 'tab\\there': env value 'V' contains a NUL character"),
    ]
    assert re.search("NUL", str(PipelineError(bad.path, unstartable(bad))))
