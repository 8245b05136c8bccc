"""A child program for tests/test_signals.py: a job under ``open_signal_context``.

It prints markers, one a line, flushed: ``ready <pid>``, then after the first signal
``graceful <SIGNAME> forced=False`` and ``cleanup-start``; its cleanup work (100 s) is cut short
by the second signal: ``forced <SIGNAME> forced=True``. With ``third`` as argument it then waits
again, unprotected, for a third signal (trio's KeyboardInterrupt). Exit code 3 marks a normal
end of ``main``.
"""

from __future__ import annotations

import os
import signal
import sys

import trio

import trio_context as tc


def say(*words: object) -> None:
    print(*words, flush=True)


async def main(third: bool) -> None:
    async with tc.open_signal_context(tc.background()) as ctx:
        say("ready", os.getpid())
        try:
            with ctx.scope():
                await trio.sleep_forever()
        except tc.ContextCancelled as exc:
            cause = exc.__cause__
            assert isinstance(cause, tc.SignalReceived), cause
            say("graceful", signal.Signals(cause.signum).name, f"forced={cause.forced}")
        say("cleanup-start")
        try:
            with tc.cleanup(ctx, 100).scope():
                await trio.sleep(100)
            say("cleanup-finished")
        except tc.ContextCancelled as exc:
            cause = exc.__cause__
            assert isinstance(cause, tc.SignalReceived), cause
            say("forced", signal.Signals(cause.signum).name, f"forced={cause.forced}")
        if third:
            try:
                say("waiting-third")  # inside the try: the signal may come at once
                await trio.sleep_forever()
            except KeyboardInterrupt:
                say("keyboard-interrupt")
                raise
    say("handlers-restored")
    sys.exit(3)


if __name__ == "__main__":
    trio.run(main, "third" in sys.argv[1:])
