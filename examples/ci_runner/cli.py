"""The command line: arguments, signals and exit codes.

Exit codes: 0 the job passed, 1 it failed (a step failed or timed out without continue-on-error,
or the job timed out), 130 it was cancelled (SIGINT/Ctrl-C or SIGTERM), 2 the pipeline file is bad
(nothing was run) or the arguments are.

Signals: the whole run happens inside ``tc.open_subreaper()`` (every step's descendants, even
daemonised ones, are stopped with the step) and ``tc.open_signal_context``. The first SIGINT,
SIGTERM or SIGHUP (the terminal closed) cancels the job's context: "cancelling…", running steps
get SIGTERM and a grace period, cleanup steps still run. The second one cancels the hard twin:
every step's process group is killed at once and cleanup is cut short. A third one raises
``KeyboardInterrupt`` (exit 130 at once). SIGUSR1 (where it exists) prints the job's live context
tree to stderr and changes nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import trio

import trio_context as tc

from .display import PlainDisplay, make_display
from .pipeline import Pipeline, PipelineError, load_pipeline
from .report import format_plan, format_summary, to_json
from .runner import JobResult, run_pipeline, short_cause


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/ci_runner",
        description="Run the steps of a TOML pipeline file (see the README of the example).",
        epilog="Exit codes: 0 passed, 1 failed, 130 cancelled, 2 bad pipeline file.",
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
        type=int,
        default=100,
        metavar="N",
        help="show at most N lines of each step's output, first and last ones (0: all; "
        "default 100)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parse_args(argv)
    try:
        pipeline, plan, stopped = load_file(args.pipeline, args.job)
    except PipelineError as exc:
        print(f"ci_runner: bad pipeline file, nothing was run:\n{exc.format()}", file=sys.stderr)
        return 2
    except _Usage as exc:
        print(f"ci_runner: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(plan or format_plan(pipeline))
        return 0
    if stopped is not None or not pipeline.steps:
        print(f"ci_runner: nothing to run: {stopped or 'rules leave every job out'}", flush=True)
        if args.json is not None:
            document: dict[str, object] = {
                "status": "passed",
                "duration": 0.0,
                "steps": [],
                "reason": stopped,
            }
            args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return 0
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")  # a step's odd bytes must not stop the runner
    try:
        result = trio.run(run_job, pipeline, args.max_lines)
    except KeyboardInterrupt:
        print("\nci_runner: interrupted again, exiting at once", file=sys.stderr)
        return 130
    print(format_summary(result), flush=True)
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(to_json(result), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"ci_runner: cannot write {args.json}: {exc}", file=sys.stderr)
    return result.exit_code


class _Usage(Exception):
    """Arguments that do not fit the file (exit code 2)."""


def load_file(path: Path, jobs: list[str]) -> tuple[Pipeline, str | None, str | None]:
    """Load a TOML pipeline, or compile a GitLab CI file (PyYAML imported only then).

    Returns the pipeline, its ``--dry-run`` text when it has its own, and why ``workflow: rules``
    keep a GitLab pipeline from running (``None``: it runs).
    """
    if path.suffix not in (".yml", ".yaml"):
        if jobs:
            raise _Usage("--job works with GitLab CI files (.yml); a TOML file runs every step")
        return load_pipeline(path), None, None
    try:
        from .gitlab import format_gitlab_plan, load_gitlab
    except ImportError as exc:
        raise _Usage(f"GitLab CI files need PyYAML ({exc}): pip install -e '.[test]'") from exc
    compiled = load_gitlab(path, jobs)
    return compiled.pipeline, format_gitlab_plan(compiled), compiled.stopped


async def run_job(pipeline: Pipeline, max_lines: int) -> JobResult:
    """Run the job under a signal context, with the display refreshing beside it."""
    display = make_display(sys.stdout, pipeline, max_lines=max_lines)
    try:
        # The subreaper: a step's processes that daemonise (setsid, a double fork) still come
        # back to the runner, so they are stopped with the step and reaped.
        async with tc.open_subreaper(), tc.open_signal_context(tc.background()) as ctx:
            watches = [tc.after_func(ctx, lambda: on_cancel(ctx, display))]
            hard = tc.hard_context(ctx)
            if hard is not None:
                message = "forced stop: killing every step's processes now"
                watches.append(tc.after_func(hard, lambda: display.job_stopping(message)))
            count = len(pipeline.steps)
            display.write(f"[job] {pipeline.job.name}: {count} steps from {pipeline.path}")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(display.run)
                result = await run_pipeline(ctx, pipeline, display)
                nursery.cancel_scope.cancel()
            for stop in watches:
                stop()
    finally:
        display.close()
    return result


def on_cancel(ctx: tc.Context, display: PlainDisplay) -> None:
    ellipsis = "..." if type(display) is PlainDisplay else "…"
    display.job_stopping(
        f"cancelling{ellipsis} ({short_cause(ctx.cause)} received; running steps get SIGTERM, "
        "cleanup steps still run; press Ctrl-C again to force)"
    )
