"""The command line: ``demo`` and ``serve``, and what Ctrl-C does.

    python examples/jobs demo [--limit N]
    python examples/jobs serve [--host H] [--port N] [--limit N] [--grace S] [--memory-limit SIZE]

Ctrl-C (or SIGTERM, or SIGHUP: the terminal closed), through ``tc.open_signal_context``, all
inside ``tc.open_subreaper()`` (a worker's daemonised children die with it):

- First: a graceful close. The queue takes no more jobs and cancels the queued ones; running
  jobs finish (``serve``: within ``--grace`` seconds, then they are cancelled now); the server
  stops accepting connections and gives open ones the same grace. ``demo`` prints the final
  states and exits with 130.
- Second: destroy. Every job is cancelled now, worker processes are SIGKILLed at once (their
  ``run_process`` finds the signal context's hard twin through ``tc.with_grace``), requests end.
- Third: ``KeyboardInterrupt``, exit 130 at once, for a program that is stuck anyway.

Exit codes: 0 done, 130 interrupted, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import hypercorn.config
import hypercorn.trio
import trio

import trio_context as tc

from .api import ASGIApp, make_app
from .demo import format_final, run_demo
from .jobqueue import open_job_queue


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/jobs", description="A generation job queue built on trio_context."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the terminal demo")
    demo.add_argument("--limit", type=int, default=2, help="jobs running at once (default 2)")
    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    serve.add_argument("--limit", type=int, default=2, help="jobs running at once (default 2)")
    serve.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds running jobs get after the first Ctrl-C (default 30)",
    )
    serve.add_argument(
        "--memory-limit",
        type=size,
        default=None,
        metavar="SIZE",
        help="resident memory a process job's worker tree may use: bytes, or 512M / 2G (powers "
        "of 1024); past it the worker is stopped, the job retried once in a fresh worker, then "
        "failed (default: no limit; a job may ask for less with memory_limit)",
    )
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


def size(text: str) -> int:
    """Bytes from ``"1048576"``, ``"512M"``, ``"1.5G"`` (K, M, G: powers of 1024)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, unit = text.strip().upper().removesuffix("B").removesuffix("I"), ""
    if number[-1:] in units:
        number, unit = number[:-1], number[-1]
    try:
        value = int(float(number) * units[unit])
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (bytes, or like 512M or 2G)")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parse_args(argv)
    try:
        if args.command == "demo":
            return trio.run(demo, args.limit)
        return trio.run(serve, args.host, args.port, args.limit, args.grace, args.memory_limit)
    except KeyboardInterrupt:
        print("\njobs: interrupted a third time, exiting at once", file=sys.stderr)
        return 130


async def demo(limit: int) -> int:
    # The subreaper: a worker's own children, daemonised or not, die with the worker.
    async with tc.open_subreaper(), tc.open_signal_context(tc.background()) as soft:
        # The jobs must survive the first Ctrl-C (it only closes the queue), but not the second:
        # cleanup() keeps soft's values, ignores its cancellation, and ends at a forced stop.
        async with open_job_queue(tc.cleanup(soft, math.inf), limit=limit) as queue:
            tc.after_func(soft, queue.close)
            jobs = await run_demo(queue)
        print(format_final(jobs), flush=True)
        return 130 if soft.done.is_set() else 0


async def serve(
    host: str, port: int, limit: int, grace: float, memory_limit: int | None = None
) -> int:
    async with tc.open_subreaper(), tc.open_signal_context(tc.background()) as soft:
        jobs_ctx = tc.cleanup(soft, math.inf)  # as in demo(): ends at the second Ctrl-C
        async with open_job_queue(jobs_ctx, limit=limit, memory_limit=memory_limit) as queue:
            tc.after_func(soft, lambda: queue.close(timeout=grace))
            config = hypercorn.config.Config()
            config.bind = [f"{host}:{port}"]
            config.graceful_timeout = grace
            config.accesslog = "-"
            # Requests derive from jobs_ctx: the second Ctrl-C ends them, streams included.
            app = make_app(queue, parent=jobs_ctx)
            with jobs_ctx.move_on():
                async with trio.open_nursery() as nursery:
                    binds = await nursery.start(serve_app, app, config, soft)
                    print(
                        f"jobs: serving on {binds[0]} (Ctrl-C: close, twice: destroy)", flush=True
                    )
        print("jobs: stopped", flush=True)
    return 0


async def serve_app(
    app: ASGIApp,
    config: hypercorn.config.Config,
    soft: tc.Context,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """hypercorn until the first Ctrl-C (``soft`` done), then its graceful shutdown."""
    # hypercorn's signature is partly untyped (its WSGI half): typed as Any here
    serve: Any = hypercorn.trio.serve  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    await serve(app, config, shutdown_trigger=soft.done.wait, task_status=task_status)
