"""Latency of a cause crossing a process hop: from the parent's notify() on the cancel channel
to the child's context being done (the child's ``ack`` is written in its trio thread right
after the cancel, so the round trip bounds the one-way latency from above).

Plain script: ``python benchmarks/causes.py [N]`` (default 100 children, a few seconds).
Reports p50/p99 in milliseconds; target p99 < 10 ms on a quiet machine.
"""

from __future__ import annotations

import os
import sys
import time

import trio

import trio_context as tc
from trio_context.propagation import CancelChannel

CHILD = """
import trio, trio_context as tc
async def main():
    ctx = tc.from_environ(tc.background())
    await ctx.done.wait()
trio.run(main)
"""


async def one() -> float:
    channel = CancelChannel()
    env = {**os.environ, **channel.environ()}
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", CHILD], env=env, pass_fds=channel.child_fds
    )
    channel.spawned()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(channel.watch)
        await channel.wait_listening()
        await trio.sleep(0.01)  # let the child settle into its wait
        start = time.perf_counter()
        acked = await channel.notify(tc.RemoteCause("Bench", "stop"), wait=5)
        elapsed = time.perf_counter() - start
        await proc.wait()
        channel.close()
    if not acked:
        raise RuntimeError("the child did not acknowledge")
    return elapsed


async def main(n: int) -> None:
    samples = sorted([await one() for _ in range(n)])
    p50 = samples[len(samples) // 2] * 1e3
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e3
    print(f"cause across a process hop, {n} children: p50 {p50:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 100)
