"""Unit tests of the CI runner example: the pipeline format, its checks, the plan and the reports.

The end-to-end behaviour (running steps, signals, processes) is in ``test_ci_runner_e2e.py``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ci_runner import cli, display, report
from ci_runner.pipeline import Pipeline, PipelineError, parse_pipeline
from ci_runner.runner import JobResult, StepResult
from support import EXAMPLES

DEMO = EXAMPLES / "ci_runner" / "demo.toml"


def parse(text: str, tmp_path: Path) -> Pipeline:
    return parse_pipeline(text, tmp_path / "ci.toml")


def problems(text: str, tmp_path: Path) -> list[tuple[int | None, str]]:
    with pytest.raises(PipelineError) as info:
        parse(text, tmp_path)
    return [(p.line, p.message) for p in info.value.problems]


def test_full_step_is_parsed(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    pipeline = parse(
        """
[job]
name = "demo"
timeout = 60
env = { GREETING = "hi", COUNT = 3, DEBUG = true }

[[steps]]
name = "build"
run = "make build"
timeout = 30.5
needs = []
env = { GREETING = "hello" }
cwd = "sub"
continue-on-error = true
if = "always()"
""",
        tmp_path,
    )
    assert pipeline.job.name == "demo"
    assert pipeline.job.timeout == 60.0
    assert pipeline.job.env == {"GREETING": "hi", "COUNT": "3", "DEBUG": "true"}
    (step,) = pipeline.steps
    assert step.name == "build"
    assert step.run == "make build"
    assert step.timeout == 30.5
    assert step.needs == ()
    assert step.env == {"GREETING": "hello"}
    assert step.cwd == (tmp_path / "sub").resolve()
    assert step.continue_on_error is True
    assert step.condition == "always()"
    assert step.is_cleanup
    assert step.line == 8


def test_defaults(tmp_path: Path) -> None:
    pipeline = parse('[[steps]]\nname = "a"\nrun = "true"\n', tmp_path)
    assert pipeline.job.name == "ci"  # the file's name
    assert pipeline.job.timeout is None
    (step,) = pipeline.steps
    assert (step.timeout, step.needs, step.condition) == (None, (), "success()")
    assert step.cwd == tmp_path.resolve()
    assert not step.continue_on_error
    assert not step.is_cleanup


def test_unknown_key_names_step_line_and_suggests(tmp_path: Path) -> None:
    text = '[job]\nname = "j"\n\n[[steps]]\nname = "build"\nrun = "true"\ntimout = 3\n'
    assert problems(text, tmp_path) == [
        (7, "step 'build': unknown key 'timout' (did you mean 'timeout'?)")
    ]


def test_unknown_job_and_top_level_keys(tmp_path: Path) -> None:
    text = 'stages = 1\n[job]\nnmae = "j"\n[[steps]]\nname = "a"\nrun = "true"\n'
    assert problems(text, tmp_path) == [
        (
            1,
            "unknown top-level key 'stages' (did you mean 'steps'?) "
            "(a pipeline has a [job] table and [[steps]] tables)",
        ),
        (3, "[job]: unknown key 'nmae' (did you mean 'name'?)"),
    ]


def test_missing_run_names_the_step_header(tmp_path: Path) -> None:
    text = '[[steps]]\nname = "a"\nrun = "true"\n\n[[steps]]\nname = "b"\n'
    assert problems(text, tmp_path) == [
        (5, "step 'b': missing run = \"...\" (the shell command of the step)")
    ]


@pytest.mark.parametrize("value", ['"30s"', "0", "-1", "true", "inf", "[1]"])
def test_bad_timeout(tmp_path: Path, value: str) -> None:
    text = f'[[steps]]\nname = "a"\nrun = "true"\ntimeout = {value}\n'
    ((line, message),) = problems(text, tmp_path)
    assert line == 4
    assert message.startswith("step 'a': timeout must be a positive number of seconds, got")


def test_idle_timeout_is_parsed(tmp_path: Path) -> None:
    text = '[[steps]]\nname = "a"\nrun = "true"\ntimeout = 60\nidle-timeout = 2.5\n'
    (step,) = parse(text, tmp_path).steps
    assert (step.timeout, step.idle_timeout) == (60.0, 2.5)
    (default,) = parse('[[steps]]\nname = "a"\nrun = "true"\n', tmp_path).steps
    assert default.idle_timeout is None


@pytest.mark.parametrize("value", ['"30s"', "0", "-1", "true", "inf", "nan", "[1]"])
def test_bad_idle_timeout_names_step_and_line(tmp_path: Path, value: str) -> None:
    text = f'[[steps]]\nname = "a"\nrun = "true"\ntimeout = 5\nidle-timeout = {value}\n'
    ((line, message),) = problems(text, tmp_path)
    assert line == 5
    assert message.startswith("step 'a': idle-timeout must be a positive number of seconds, got")


def test_idle_timeout_typo_suggests(tmp_path: Path) -> None:
    text = '[[steps]]\nname = "a"\nrun = "true"\nidle_timeout = 3\n'
    assert problems(text, tmp_path) == [
        (4, "step 'a': unknown key 'idle_timeout' (did you mean 'idle-timeout'?)")
    ]


def test_dry_run_shows_the_idle_timeout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ci.toml"
    path.write_text('[[steps]]\nname = "a"\nrun = "true"\ntimeout = 9\nidle-timeout = 3\n')
    assert cli.main([str(path), "--dry-run"]) == 0
    assert "if success(); timeout 9s; idle-timeout 3s" in capsys.readouterr().out


def test_bad_job_timeout(tmp_path: Path) -> None:
    text = '[job]\ntimeout = "1m"\n[[steps]]\nname = "a"\nrun = "true"\n'
    assert problems(text, tmp_path) == [
        (2, "[job]: timeout must be a positive number of seconds, got '1m'")
    ]


def test_bad_condition_suggests(tmp_path: Path) -> None:
    text = '[[steps]]\nname = "a"\nrun = "true"\nif = "allways()"\n'
    assert problems(text, tmp_path) == [
        (
            4,
            "step 'a': if must be one of success(), always(), failure(), cancelled(); "
            "got 'allways()' (did you mean 'always()'?)",
        )
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        '[[steps]]\nname = "a"\nrun = "true"\ncwd = "nowhere"\ncontinue-on-error = "yes"\n'
        '[[steps]]\nrun = "true"\nenv = { A = [1] }\n'
    )
    assert problems(text, tmp_path) == [
        (
            4,
            "step 'a': cwd 'nowhere' is not a folder (it is relative to the folder of the "
            "pipeline file)",
        ),
        (5, "step 'a': continue-on-error must be true or false"),
        (6, 'step #2: needs a name = "..."'),
        (8, "step #2: env value 'A' must be a text, a number or a boolean"),
    ]


def test_cycle_is_rejected_with_its_path(tmp_path: Path) -> None:
    text = (
        '[[steps]]\nname = "a"\nrun = "true"\nneeds = ["c"]\n'
        '[[steps]]\nname = "b"\nrun = "true"\nneeds = ["a"]\n'
        '[[steps]]\nname = "c"\nrun = "true"\nneeds = ["b"]\n'
    )
    assert problems(text, tmp_path) == [(2, "step 'a': needs form a cycle: a -> c -> b -> a")]


def test_self_unknown_and_duplicate_needs(tmp_path: Path) -> None:
    text = (
        '[[steps]]\nname = "build"\nrun = "true"\nneeds = ["build"]\n'
        '[[steps]]\nname = "test"\nrun = "true"\nneeds = ["biuld"]\n'
        '[[steps]]\nname = "test"\nrun = "true"\n'
    )
    assert problems(text, tmp_path) == [
        (2, "step 'build': needs itself"),
        (8, "step 'test': needs unknown step 'biuld' (did you mean 'build'?)"),
        (10, "step 'test': duplicate name (first defined at line 6)"),
    ]


def test_no_steps(tmp_path: Path) -> None:
    assert problems('[job]\nname = "x"\n', tmp_path) == [
        (None, "no steps: add at least one [[steps]] table with a name and a run")
    ]


def test_bad_toml_gives_its_line(tmp_path: Path) -> None:
    ((line, message),) = problems('[[steps]]\nname = "a"\nrun = \n', tmp_path)
    assert line == 3
    assert message.startswith("not valid TOML:")


def test_lines_inside_multiline_strings_and_subtables(tmp_path: Path) -> None:
    text = (
        '[[steps]]\nname = "a"\nrun = """\necho [[steps]]\ntimeout = 3\n"""\n'
        "[steps.env]\nX = [1]\n"
        '[[steps]]\nname = "b"\nrun = "true"\nif = "never()"\n'
    )
    assert problems(text, tmp_path) == [
        (7, "step 'a': env value 'X' must be a text, a number or a boolean"),
        (
            12,
            "step 'b': if must be one of success(), always(), failure(), cancelled(); "
            "got 'never()'",
        ),
    ]


def test_inline_steps_fall_back_to_the_name_line(tmp_path: Path) -> None:
    text = 'steps = [\n  { name = "a", run = "true" },\n  { name = "b", run = 3 },\n]\n'
    assert problems(text, tmp_path) == [(3, "step 'b': run must be a non-empty shell command")]


def test_error_format_is_file_colon_line(tmp_path: Path) -> None:
    with pytest.raises(PipelineError) as info:
        parse('[[steps]]\nname = "a"\n', tmp_path)
    assert info.value.format() == (
        f"{tmp_path / 'ci.toml'}:1: step 'a': missing run = \"...\" (the shell command of the step)"
    )


def test_stages_and_upstream(tmp_path: Path) -> None:
    pipeline = parse(
        '[[steps]]\nname = "d"\nrun = "true"\nneeds = ["b", "c"]\n'
        '[[steps]]\nname = "a"\nrun = "true"\n'
        '[[steps]]\nname = "b"\nrun = "true"\nneeds = ["a"]\n'
        '[[steps]]\nname = "c"\nrun = "true"\nneeds = ["a", "a"]\n'
        '[[steps]]\nname = "e"\nrun = "true"\n',
        tmp_path,
    )
    assert [[s.name for s in stage] for stage in pipeline.stages()] == [
        ["a", "e"],
        ["b", "c"],
        ["d"],
    ]
    assert pipeline.upstream("d") == ["a", "b", "c"]
    assert pipeline.step("c").needs == ("a",)


def test_demo_pipeline_is_valid_and_shows_every_feature() -> None:
    from ci_runner.pipeline import load_pipeline

    pipeline = load_pipeline(DEMO)
    conditions = {step.condition for step in pipeline.steps}
    assert conditions == {"success()", "always()", "failure()", "cancelled()"}
    assert any(len(stage) > 1 for stage in pipeline.stages())
    assert any(step.continue_on_error and step.timeout for step in pipeline.steps)
    assert any(step.idle_timeout for step in pipeline.steps)


def test_dry_run_prints_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([str(DEMO), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "stage 2 (in parallel):" in out
    assert "if always(); needs package; timeout 10s; runs under a cleanup context" in out
    assert out.rstrip().endswith("(dry run: nothing was run)")


def test_bad_file_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[steps]]\nname = "a"\nrun = "true"\ntimeout = "soon"\n')
    assert cli.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "nothing was run" in err
    assert f"{path}:4: step 'a': timeout must be a positive number of seconds" in err
    assert cli.main([str(tmp_path / "missing.toml")]) == 2
    assert "cannot read the pipeline file" in capsys.readouterr().err


def sample_result() -> JobResult:
    return JobResult(
        name="j",
        status="failed",
        duration=3.25,
        reason="timed out",
        steps=[
            StepResult("build", "passed", 0, 1.0),
            StepResult("slow", "timed_out", -15, 2.0, "step timeout (2 s)", "why\nin detail"),
            StepResult("flaky", "failed", 3, 0.5, "exit code 3", continue_on_error=True),
            StepResult("deploy", "skipped", cause="job timed out"),
        ],
    )


def test_summary_table() -> None:
    assert report.format_summary(sample_result()).splitlines() == [
        "step    status                      exit  duration  cause",
        "------  --------------------------  ----  --------  -----",
        "build   passed                      0     1.0s",
        "slow    timed out                   -15   2.0s      step timeout (2 s)",
        "flaky   failed (continue-on-error)  3     0.5s      exit code 3",
        "deploy  skipped                                     job timed out",
        "job j: failed (timed out) in 3.2s",
    ]


def test_json_schema() -> None:
    document = report.to_json(sample_result())
    assert json.loads(json.dumps(document)) == {
        "status": "failed",
        "duration": 3.25,
        "steps": [
            {
                "name": "build",
                "status": "passed",
                "exit_code": 0,
                "duration": 1.0,
                "cause": None,
                "allowed_failure": False,
            },
            {
                "name": "slow",
                "status": "timed_out",
                "exit_code": -15,
                "duration": 2.0,
                "cause": "why\nin detail",
                "allowed_failure": False,
            },
            {
                "name": "flaky",
                "status": "failed",
                "exit_code": 3,
                "duration": 0.5,
                "cause": "exit code 3",
                "allowed_failure": True,
            },
            {
                "name": "deploy",
                "status": "skipped",
                "exit_code": None,
                "duration": 0.0,
                "cause": "job timed out",
                "allowed_failure": False,
            },
        ],
    }
    assert StepResult("x", "failed", continue_on_error=True).succeeded
    assert not StepResult("x", "cancelled", continue_on_error=True).succeeded
    assert [JobResult("j", s, 0.0, []).exit_code for s in ("passed", "failed", "cancelled")] == [
        0,
        1,
        130,
    ]


def test_plain_display_limits_output_to_head_and_tail(tmp_path: Path) -> None:
    pipeline = parse('[[steps]]\nname = "flood"\nrun = "yes"\n', tmp_path)
    out = io.StringIO()
    shown = display.make_display(out, pipeline, max_lines=8)  # StringIO is not a terminal
    assert type(shown) is display.PlainDisplay
    shown.step_started(pipeline.steps[0])
    for n in range(100):
        shown.step_output("flood", "stderr" if n % 2 else "stdout", f"line {n}")
    shown.step_finished(StepResult("flood", "passed", 0, 1.5))
    assert out.getvalue().splitlines() == [
        "[flood]     -- started: yes",
        *[f"[flood:err] line {n}" if n % 2 else f"[flood]     line {n}" for n in range(6)],
        "[flood]     -- ... 92 lines of output not shown ...",
        "[flood]     line 98",
        "[flood:err] line 99",
        "[flood]     -- passed in 1.5s",
    ]


async def test_live_display_draws_a_status_block(tmp_path: Path) -> None:
    pipeline = parse(
        '[[steps]]\nname = "a"\nrun = "true"\n[[steps]]\nname = "b"\nrun = "x"\nneeds = ["a"]\n',
        tmp_path,
    )
    out = io.StringIO()
    live = display.LiveDisplay(out, pipeline)
    live.colour = False
    live.step_started(pipeline.steps[0])
    live.step_output("a", "stdout", "hello")
    live.step_stopping("a", "stopping (SIGTERM to its process group)")
    live.job_stopping("cancelling…")
    live.step_finished(StepResult("a", "cancelled", None, 0.5, "SIGINT"))
    text = out.getvalue()
    assert "[a]     hello\n" in text
    assert "\x1b[J" in text  # the block is erased before each new line
    final_block = text.rsplit("\x1b[J", 1)[1]
    assert final_block.splitlines()[0] == "[a]     -- cancelled in 0.5s: SIGINT"
    assert "cancelling…" in final_block.splitlines()[1]
    assert "⊘ a" in final_block and "cancelled  0.5s  SIGINT" in final_block
    assert "· b" in final_block and "queued" in final_block
    live.close()
    assert out.getvalue()[len(text) :] == "\x1b[3F\x1b[J\x1b[?25h"  # erased, cursor shown


def test_graph_problems_are_reported_with_other_problems(tmp_path: Path) -> None:
    text = (
        '[[steps]]\nname = "build"\nrun = "make"\ntimout = 3\n'
        '[[steps]]\nname = "test"\nrun = "true"\nneeds = ["lint"]\n'
        '[[steps]]\nname = "lint"\nneeds = ["test"]\n'
    )
    assert problems(text, tmp_path) == [
        (4, "step 'build': unknown key 'timout' (did you mean 'timeout'?)"),
        (6, "step 'test': needs form a cycle: test -> lint -> test"),
        (9, "step 'lint': missing run = \"...\" (the shell command of the step)"),
    ]
