"""The command line: arguments, signals and exit codes.

Exit codes: 0 the job passed, 1 it failed (a step failed or timed out without continue-on-error,
or the job timed out), 130 it was cancelled (SIGINT/Ctrl-C, SIGTERM or SIGHUP), 2 the pipeline
file is bad (nothing was run) or the arguments are (a ``--json`` file or a ``--log-dir`` that
cannot be written is found before the job runs).

Signals: the whole run happens inside ``tc.open_subreaper()`` (every step's descendants, even
daemonised ones, are stopped with the step) and ``tc.open_signal_context``. The first SIGINT,
SIGTERM or SIGHUP (the terminal closed) cancels the job's context: "cancelling…", running steps
get SIGTERM and a grace period, cleanup steps still run. The second one cancels the hard twin:
every step's process group is killed at once and cleanup is cut short. A third one raises
``KeyboardInterrupt`` (exit 130 at once). SIGUSR1 (where it exists) prints the job's live context
tree to stderr and changes nothing.

Output: a reader that goes away (``| head``, a ``| cat`` that the same Ctrl-C killed, a closed
terminal) never stops the run: the rest of the output is dropped, the steps (cleanup included)
run, ``--json`` is written and the exit code is the job's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import trio

import trio_context as tc

from .display import PlainDisplay, make_display
from .pipeline import Pipeline, PipelineError, load_pipeline
from .report import format_plan, format_summary, to_json
from .results import JobResult, signal_words
from .runner import run_pipeline
from .startable import unstartable
from .terminal import emit


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/ci_runner",
        description="Run the steps of a TOML pipeline file (see the README of the example).",
        epilog="Exit codes: 0 passed, 1 failed, 130 cancelled, 2 bad pipeline file or arguments.",
    )
    parser.add_argument(
        "pipeline", type=Path, help="the pipeline file (TOML, or a GitLab CI .yml/.yaml file)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the result as JSON")
    parser.add_argument(
        "--dry-run", action="store_true", help="check the file, print the plan, run nothing"
    )
    parser.add_argument(
        "--job",
        action="append",
        default=[],
        metavar="NAME",
        help="GitLab CI files: run only this job (repeat for more; not the jobs it needs)",
    )
    parser.add_argument(
        "--max-lines",
        type=_number(0),
        default=100,
        metavar="N",
        help="show at most N lines of each step's output, first and last ones (0: all; "
        "default 100)",
    )
    parser.add_argument(
        "--max-parallel",
        type=_number(1),
        default=None,
        metavar="N",
        help="run at most N steps at once, the others wait in file order (default: no bound)",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        metavar="DIR",
        help="keep every step's whole output in DIR, one file per step (created if missing)",
    )
    args = parser.parse_args(argv)
    problem = _check_outputs(args.json, args.log_dir)
    if problem is not None:
        parser.error(problem)
    return args


def _number(minimum: int) -> Callable[[str], int]:
    """Return an argparse ``type`` that accepts whole numbers from ``minimum`` up."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    return convert


def _check_outputs(json_file: Path | None, log_dir: Path | None) -> str | None:
    """Return why ``--json`` or ``--log-dir`` cannot be written (checked before the job runs:
    a job must not run for an hour and then lose its report), or None; creates ``log_dir``."""
    if json_file is not None:
        folder = json_file.parent
        if json_file.is_dir():
            return f"--json {json_file}: is a folder, not a file"
        if not folder.is_dir():
            return f"--json {json_file}: folder {str(folder)!r} does not exist"
        if not os.access(folder, os.W_OK) or (
            json_file.exists() and not os.access(json_file, os.W_OK)
        ):
            return f"--json {json_file}: cannot write there (permission denied)"
    if log_dir is not None:
        if log_dir.exists() and not log_dir.is_dir():
            return f"--log-dir {log_dir}: is a file, not a folder"
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"--log-dir {log_dir}: cannot create the folder: {exc.strerror or exc}"
        if not os.access(log_dir, os.W_OK):
            return f"--log-dir {log_dir}: cannot write there (permission denied)"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parse_args(argv)
    try:
        pipeline, plan, stopped = load_file(args.pipeline, args.job)
    except PipelineError as exc:
        emit(sys.stderr, f"ci_runner: bad pipeline file, nothing was run:\n{exc.format()}\n")
        return 2
    except _Usage as exc:
        emit(sys.stderr, f"ci_runner: {exc}\n")
        return 2
    if args.dry_run:
        emit(sys.stdout, (plan or format_plan(pipeline)) + "\n")
        return 0
    if stopped is not None or not pipeline.steps:
        emit(sys.stdout, f"ci_runner: nothing to run: {stopped or 'rules leave every job out'}\n")
        if args.json is not None:
            document: dict[str, object] = {
                "status": "passed",
                "duration": 0.0,
                "steps": [],
                "reason": stopped,
            }
            args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return 0
    reconfigure: Callable[..., object] | None = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="replace")  # a step's odd bytes must not stop the runner
    try:
        result = trio.run(run_job, pipeline, args)
    except KeyboardInterrupt:
        emit(sys.stderr, "\nci_runner: interrupted again, exiting at once\n")
        return 130
    emit(sys.stdout, format_summary(result) + "\n")
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(to_json(result), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            emit(sys.stderr, f"ci_runner: cannot write {args.json}: {exc}\n")
    return result.exit_code


class _Usage(Exception):
    """Arguments that do not fit the file (exit code 2)."""


def load_file(path: Path, jobs: list[str]) -> tuple[Pipeline, str | None, str | None]:
    """Load a TOML pipeline, or compile a GitLab CI file (PyYAML imported only then).

    Returns the pipeline, its ``--dry-run`` text when it has its own, and why ``workflow: rules``
    keep a GitLab pipeline from running (``None``: it runs). Raises :class:`PipelineError` for a
    bad file, also for anything the OS would refuse when a step starts (``startable.py``).
    """
    if path.suffix not in (".yml", ".yaml"):
        if jobs:
            raise _Usage("--job works with GitLab CI files (.yml); a TOML file runs every step")
        pipeline, plan, stopped = load_pipeline(path), None, None
    else:
        try:
            from .gitlab import format_gitlab_plan, load_gitlab
        except ImportError as exc:
            raise _Usage(f"GitLab CI files need PyYAML ({exc}): pip install -e '.[test]'") from exc
        compiled = load_gitlab(path, jobs)
        pipeline, plan, stopped = compiled.pipeline, format_gitlab_plan(compiled), compiled.stopped
    problems = unstartable(pipeline)
    if problems:
        raise PipelineError(path, problems)
    return pipeline, plan, stopped


async def run_job(pipeline: Pipeline, args: argparse.Namespace) -> JobResult:
    """Run the job under a signal context, with the display refreshing beside it."""
    display = make_display(sys.stdout, pipeline, max_lines=args.max_lines)
    try:
        # The subreaper: a step's processes that daemonise (setsid, a double fork) still come
        # back to the runner, so they are stopped with the step and reaped.
        async with tc.open_subreaper(), tc.open_signal_context(tc.background()) as ctx:
            watches = [tc.after_func(ctx, lambda: on_cancel(ctx, display))]
            hard = tc.hard_context(ctx)
            if hard is not None:
                watches.append(tc.after_func(hard, lambda: on_force(hard, display)))
            try:
                steps = len(pipeline.steps)
                display.write(f"[job] {pipeline.job.name}: {steps} steps from {pipeline.path}")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(display.run)
                    result = await run_pipeline(
                        ctx,
                        pipeline,
                        display,
                        max_parallel=args.max_parallel,
                        log_dir=args.log_dir,
                    )
                    nursery.cancel_scope.cancel()
            finally:
                for stop in watches:
                    stop()
    finally:
        display.close()
    return result


def on_cancel(ctx: tc.Context, display: PlainDisplay) -> None:
    ellipsis = "..." if type(display) is PlainDisplay else "…"
    display.job_stopping(
        f"cancelling{ellipsis} ({signal_words(ctx.cause)} received; running steps get SIGTERM, "
        "cleanup steps still run; press Ctrl-C again to force)"
    )


def on_force(hard: tc.Context, display: PlainDisplay) -> None:
    display.job_stopping(
        f"forced stop ({signal_words(hard.cause)}): killing every step's processes now"
    )
