"""The command line: ``demo`` and ``serve``, and what Ctrl-C does.

    python examples/jobs demo [--limit N]
    python examples/jobs serve [--host H] [--port N] [--limit N] [--grace S] [--token T]
        [--backlog N] [--history N] [--max-queued N] [--escalate-after S] [--memory-limit SIZE]
        [--no-access-log]

``serve`` takes its bearer token from ``--token`` or the ``JOBS_TOKEN`` environment variable
(better: a command line is visible to every user of the machine).

Ctrl-C (or SIGTERM, or SIGHUP: the terminal closed), through ``tc.open_signal_context``, all
inside ``tc.open_subreaper()`` (a worker's daemonised children die with it):

- First: a graceful close. The queue takes no more jobs and cancels the queued ones; running
  jobs finish (``serve``: within ``--grace`` seconds, then they are cancelled now; new requests
  meanwhile get 503, and the server stops listening once every job is final, see
  ``server.py``). ``demo`` prints the final states.
- Second: destroy. Every job is cancelled now, worker processes are SIGKILLed at once (their
  ``run_process`` finds the signal context's hard twin through ``tc.with_grace``), requests end.
- Third: ``KeyboardInterrupt``, exit 130 at once, for a program that is stuck anyway.

Exit codes: 0 done (``serve``: closed cleanly after SIGTERM or SIGHUP), 130 interrupted
(Ctrl-C, or a forced stop), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys

import trio

import trio_context as tc

from .demo import format_final, run_demo
from .lifetime import open_job_queue
from .server import TOKEN_ENV, ServerOptions, serve


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/jobs", description="A generation job queue built on trio_context."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the terminal demo")
    demo.add_argument("--limit", type=int, default=2, help="jobs running at once (default 2)")
    server = commands.add_parser("serve", help="serve the HTTP API")
    add = server.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    add("--limit", type=int, default=2, help="jobs running at once (default 2)")
    add("--grace", type=float, default=30.0, help="seconds running jobs get to finish on close")
    add(
        "--token", default=os.environ.get(TOKEN_ENV) or None, help=f"bearer token (or ${TOKEN_ENV})"
    )
    add("--backlog", type=int, default=1024, help="listen backlog (default 1024)")
    add("--history", type=int, default=100, help="finished jobs remembered (default 100)")
    add("--max-queued", type=int, default=100, help="jobs that may wait; more get 429")
    add("--escalate-after", type=float, default=30.0, help="safe cancel -> now after S seconds")
    add(
        "--memory-limit",
        type=size,
        default=None,
        metavar="SIZE",
        help="resident memory a process job's worker tree may use: bytes, or 512M / 2G (powers "
        "of 1024); past it the worker is stopped, the job retried once in a fresh worker, then "
        "failed (default: no limit; a job may ask for less with memory_limit)",
    )
    add("--no-access-log", dest="access_log", action="store_false", help="no access log")
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error("--limit must be at least 1")
    if args.command == "serve":
        for name in ("backlog", "history", "max_queued"):
            if getattr(args, name) < (1 if name == "backlog" else 0):
                parser.error(f"--{name.replace('_', '-')} is too small")
        for name in ("grace", "escalate_after"):
            if not 0 < getattr(args, name) < math.inf:
                parser.error(f"--{name.replace('_', '-')} must be a positive number of seconds")
        if args.token is not None and (not args.token or not args.token.isprintable()):
            parser.error("--token must be printable text")
    return args


def size(text: str) -> int:
    """Bytes from ``"1048576"``, ``"512M"``, ``"1.5G"`` (K, M, G: powers of 1024)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, unit = text.strip().upper().removesuffix("B").removesuffix("I"), ""
    if number[-1:] in units:
        number, unit = number[:-1], number[-1]
    try:
        value = int(float(number) * units[unit])
    except (ValueError, OverflowError):
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
        options = ServerOptions(
            host=args.host,
            port=args.port,
            limit=args.limit,
            grace=args.grace,
            token=args.token,
            backlog=args.backlog,
            history=args.history,
            max_queued=args.max_queued,
            escalate_after=args.escalate_after,
            memory_limit=args.memory_limit,
            access_log=args.access_log,
        )
        return trio.run(serve_until_signal, options)
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


async def serve_until_signal(options: ServerOptions) -> int:
    """``server.serve`` until a signal; the exit code says how it ended."""
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    async with tc.open_subreaper(), tc.open_signal_context(tc.background(), signals) as soft:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, options, soft)
            print(f"jobs: serving on {binds[0]} (Ctrl-C: close, twice: destroy)", flush=True)
        hard = tc.hard_context(soft)
        forced = hard is not None and hard.done.is_set()  # read before the block cancels it
        cause = soft.cause
    print("jobs: stopped", flush=True)
    interrupted = isinstance(cause, tc.SignalReceived) and cause.signum == signal.SIGINT
    return 130 if forced or interrupted else 0
