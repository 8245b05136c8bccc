"""The worker program of "process" jobs: one line per finished step, and it stops itself.

    python worker.py --prompt TEXT --steps N --step-seconds S [--first K] [--hang-at K]
                     [--fail-at K] [--leak-mib M]

stdout gets ``ready`` once the worker is up, then ``step K/N OUTPUT`` after each step (flushed
at once: the parent reads it as progress). The worker stops by itself:

- when the deadline its parent put in the environment passes (``tc.from_environ``): it says so
  on stderr and exits with code 124 (like ``timeout(1)``);
- when its parent's context ends: ``tc.run_process`` tells it why on the cancel channel, before
  any signal, and ``tc.from_environ``'s context is done with a ``tc.RemoteCause`` (the cause's
  type and message, graceful or forced, the grace left). A graceful stop saves the partial
  results (stderr: ``saved K/N steps``) and exits 143 -- no signal was needed;
- on SIGTERM (a parent that has no cancel channel): at once, exit 143.

``--hang-at K`` simulates a worker stuck in native code at step K: it blocks the whole process
(no progress, deaf to SIGTERM until it gets SIGKILL). ``--fail-at K`` exits with code 1.
``--leak-mib M`` keeps M MiB more after each step (a leak, for memory limits). ``--first K``
starts at step K (a fresh worker that takes over from one stopped for memory).
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import time

import trio

import trio_context as tc


class StepFailed(Exception):
    """A broken step (``--fail-at``)."""


def output_for(prompt: str, step: int) -> str:
    """Must match ``work.output_for`` (this script runs on its own, without the package)."""
    digest = hashlib.sha256(f"{prompt}\0{step}".encode()).hexdigest()
    return f"{step}:{digest[:8]}"


async def main(args: argparse.Namespace) -> int:
    ctx = tc.with_cancel(tc.from_environ(tc.background()))  # the parent's deadline, if any
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_sigterm() -> None:
                async for _ in signals:
                    ctx.cancel()
                    return

            nursery.start_soon(stop_on_sigterm)
            print("ready", flush=True)  # up: the parent's stall clock starts now
            done: list[int] = []
            try:
                with ctx.scope():
                    await steps(args, done)
                code = 0
            except tc.ContextError as exc:
                code = stopped(exc, tc.cause(ctx), done, args.steps)
            except StepFailed as exc:
                print(exc, file=sys.stderr)
                code = 1
            nursery.cancel_scope.cancel()
    return code


def stopped(err: tc.ContextError, cause: BaseException | None, done: list[int], n: int) -> int:
    """Say why the worker stops, save what it has, and return the exit code."""
    if isinstance(cause, tc.RemoteCause):
        how = "graceful" if cause.graceful else "forced"
        print(f"worker: told to stop ({how}): {cause.type_name}: {cause.message}", file=sys.stderr)
        if cause.graceful:
            print(f"worker: saved {len(done)}/{n} steps", file=sys.stderr)  # the partial results
        return 124 if cause.kind == "deadline" else 143
    if isinstance(err, tc.DeadlineExceeded):
        print(f"worker: {tc.DEADLINE_ENV_VAR} deadline passed, stopping", file=sys.stderr)
        return 124
    print("worker: SIGTERM, stopping", file=sys.stderr)
    return 143


async def steps(args: argparse.Namespace, done: list[int]) -> None:
    kept: list[bytes] = []  # what --leak-mib never gives back
    for k in range(args.first, args.steps + 1):
        if k == args.hang_at:
            time.sleep(3600)  # noqa: ASYNC251 -- stuck in "native code", deaf to signals
        if k == args.fail_at:
            raise StepFailed(f"worker: step {k} failed")
        await trio.sleep(args.step_seconds)
        if args.leak_mib:
            kept.append(b"x" * (args.leak_mib << 20))  # written, so resident
        print(f"step {k}/{args.steps} {output_for(args.prompt, k)}", flush=True)
        done.append(k)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--step-seconds", type=float, required=True)
    parser.add_argument("--hang-at", type=int)
    parser.add_argument("--fail-at", type=int)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--leak-mib", type=int, default=0)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(trio.run(main, parse_args()))
