"""A child program for tests/toolkit/test_causes.py: it learns why its parent stopped it.

``from_environ`` gives it a context; it prints ``ready``, waits until that context is done, and
prints one line ``done <err type> <cause type_name> <graceful> <grace> <grace_left> <sigterm>``
and the cause's message on the next line (``sigterm`` says whether a SIGTERM arrived first).
With ``nested`` as argument it then runs 60 s of cleanup work under a 60 s budget of its own and
prints how long it really ran (``nested <seconds>``): never longer than the parent left.
"""

from __future__ import annotations

import math
import signal
import sys

import trio

import trio_context as tc

got_sigterm = False


def on_term(signum: int, frame: object) -> None:
    global got_sigterm
    got_sigterm = True


async def main() -> None:
    signal.signal(signal.SIGTERM, on_term)
    ctx = tc.from_environ(tc.background())
    print("ready", flush=True)
    await ctx.done.wait()
    cause = tc.cause(ctx)
    assert isinstance(cause, tc.RemoteCause), repr(cause)
    left = tc.grace_left(ctx)
    print(
        "done",
        type(ctx.err).__name__,
        cause.type_name,
        cause.graceful,
        cause.grace,
        "inf" if math.isinf(left) else round(left, 1),
        got_sigterm,
        flush=True,
    )
    print(cause.message, flush=True)
    if "nested" in sys.argv:
        start = trio.current_time()
        with tc.cleanup(ctx, 60).move_on():
            await trio.sleep(60)
        print("nested", round(trio.current_time() - start, 1), flush=True)


if __name__ == "__main__":
    trio.run(main)
