"""Load on the job server (``examples/jobs``) over loopback, and the middleware's cost.

    python benchmarks/jobs_load.py [--jobs 500] [--backlog 1024]

Part 1 starts ``python examples/jobs serve`` (a subprocess, so its memory is its own), then:
posts ``--jobs`` async jobs at once (one connection each: that many concurrent connections),
cancels a third of them (half "safe", half "now", each timed until its final state arrives
through a long poll), opens an event stream on a fifth and drops it after the first event, and
waits for every job to be final. It reports jobs/s, cancel latency p50/p99, connection errors
(resets and refusals: the target is 0, which needs a listen backlog above the burst), the
server's RSS before and after, and the exit code after SIGTERM (0: a clean close).

Part 2 serves a trivial ASGI app (one short body) from a subprocess with and without
``tc.ContextMiddleware``, in alternating rounds, and reports requests/s of each and the ratio
(target >= 0.9). The client is a few keep-alive connections written with bare trio sockets, so
the figures are the server's.

Everything is bounded in time (``--budget`` seconds per part) and stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
SPEC = {"kind": "async", "steps": 10, "step_seconds": 0.05}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def start(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start a server subprocess; return it and the base URL it printed."""
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, line[line.index("http://") :].split()[0]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far."""
    data = Path(f"/proc/{pid}/stat").read_bytes()
    fields = data[data.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- part 1: the job server under load --------------------------------------------------------


async def load(url: str, jobs: int, budget: float) -> dict[str, Any]:
    import httpx

    errors: dict[str, int] = {}
    ids: list[str] = []
    latencies: dict[str, list[float]] = {"safe": [], "now": []}
    dropped = 0
    # No keep-alive: every request opens its own connection (a reused one may race the server's
    # keep-alive timeout), so the burst is `jobs` connections at once.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=budget) as client:

        async def job(i: int) -> None:
            """Post one job, then: cancel it (a third), drop a stream on it (a fifth), or wait."""
            try:
                response = await client.post("/jobs", json={**SPEC, "prompt": f"job {i}"})
            except httpx.TransportError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            if response.status_code != 201:
                key = f"HTTP {response.status_code}"
                errors[key] = errors.get(key, 0) + 1
                return
            job_id = response.json()["id"]
            ids.append(job_id)
            if i % 3 == 0:
                await trio.sleep(0.1 * (i % 7))  # some still queued, some running
                await cancel(job_id, "safe" if i % 2 else "now")
                return
            if i % 5 == 1:
                await drop_stream(job_id)
            await client.get(f"/jobs/{job_id}", params={"wait": "1"})

        async def cancel(job_id: str, mode: str) -> None:
            """Cancel with a stream open on the job: the latency is from sending the cancel to
            the final state arriving on the stream (no new connection in between)."""
            async with client.stream("GET", f"/jobs/{job_id}/events") as response:
                lines = response.aiter_lines()
                async for line in lines:
                    if line.startswith("data: "):
                        break  # subscribed
                started = time.perf_counter()
                await client.post(f"/jobs/{job_id}/cancel", params={"mode": mode})
                async for line in lines:
                    if line.startswith("data: ") and '"state": "cancelled"' in line:
                        latencies[mode].append(time.perf_counter() - started)
                        break

        async def drop_stream(job_id: str) -> None:
            nonlocal dropped
            async with client.stream("GET", f"/jobs/{job_id}/events") as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        dropped += 1
                        break  # hang up mid-stream

        async def counted(i: int) -> None:
            try:
                await job(i)
            except httpx.TransportError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

        with trio.fail_after(budget):
            began = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for i in range(jobs):
                    nursery.start_soon(counted, i)
            elapsed = time.perf_counter() - began
            quiet: dict[str, list[float]] = {"safe": [], "now": []}
            burst, latencies = latencies, quiet
            for i in range(40):  # then one at a time, on a quiet server
                response = await client.post("/jobs", json={**SPEC, "prompt": f"quiet {i}"})
                job_id = response.json()["id"]
                await trio.sleep(0.12)  # running, between step boundaries
                await cancel(job_id, "safe" if i % 2 else "now")
            latencies = burst
            states = [job["state"] for job in (await client.get("/jobs")).json()["jobs"]]
            health = (await client.get("/health")).json()["queue"]
    return {
        "elapsed": elapsed,
        "accepted": len(ids),
        "errors": errors,
        "latencies": latencies,
        "quiet": quiet,
        "dropped": dropped,
        "states": {state: states.count(state) for state in sorted(set(states))},
        "subscribers_left": health["subscribers"],
    }


def part1(jobs: int, backlog: int, budget: float) -> None:
    command = [sys.executable, "examples/jobs", "serve", "--port", "0", "--limit", "50",
               "--max-queued", str(jobs), "--history", str(jobs + 100), "--backlog", str(backlog),
               "--no-access-log", "--grace", "5"]  # fmt: skip
    proc, url = start(command)
    try:
        before = rss_mb(proc.pid)
        result = trio.run(load, url, jobs, budget)
        after = rss_mb(proc.pid)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=budget)
    finally:
        proc.kill()
    lat = result["latencies"]
    print(f"job server, {jobs} jobs posted at once (backlog {backlog}), loopback:")
    print(f"  accepted {result['accepted']}, connection errors {result['errors'] or 0}")
    print(f"  {result['accepted'] / result['elapsed']:.0f} jobs/s "
          f"({result['elapsed']:.2f} s until every job was final; 10 steps of 50 ms, "
          "limit 50)")  # fmt: skip
    for when, table in (("during the burst", lat), ("one at a time", result["quiet"])):
        for mode in ("now", "safe"):
            values = table[mode]
            p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
            print(f"  cancel {mode:<4} {when}: latency p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                  f"({len(values)} cancels)")  # fmt: skip
    print(f"  final states {result['states']}; streams dropped {result['dropped']}, "
          f"subscribers left {result['subscribers_left']}")  # fmt: skip
    print(
        f"  server RSS {before:.1f} MB before, {after:.1f} MB after; exit code {code} after SIGTERM"
    )


# -- part 2: a trivial ASGI app with and without ContextMiddleware ----------------------------


async def trivial(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"ok"})


async def serve_trivial(middleware: bool) -> None:
    import hypercorn.config
    import hypercorn.trio

    import trio_context as tc

    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    app = tc.ContextMiddleware(trivial) if middleware else trivial

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        await hypercorn.trio.serve(app, config, task_status=task_status)  # pyright: ignore[reportUnknownMemberType]

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run)
        print(f"serving on {binds[0]}", flush=True)


async def hammer(port: int, seconds: float, connections: int) -> int:
    """Keep-alive GETs on ``connections`` sockets for ``seconds``; return the responses."""
    request = b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n"
    done = 0

    async def one() -> None:
        nonlocal done
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            buffer = b""
            with trio.move_on_after(seconds):
                while True:
                    await stream.send_all(request)
                    while b"\r\n\r\nok" not in buffer:
                        buffer += await stream.receive_some()
                    buffer = buffer[buffer.index(b"\r\n\r\nok") + 6 :]
                    done += 1

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(one)
    return done


def part2(rounds: int, seconds: float) -> None:
    """Alternating rounds; per round the wall-clock rate and the rate per CPU-second of the
    server (the second does not depend on what else the machine is running)."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    per_cpu: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for middleware in (False, True):
            command = [sys.executable, __file__, "--serve-trivial"]
            if middleware:
                command.append("--middleware")
            proc, url = start(command)
            try:
                port = int(url.rsplit(":", 1)[1])
                cpu = cpu_seconds(proc.pid)
                count = trio.run(hammer, port, seconds, 8)
                cpu = cpu_seconds(proc.pid) - cpu
            finally:
                proc.kill()
                proc.wait()
            rates[middleware].append(count / seconds)
            per_cpu[middleware].append(count / cpu if cpu > 0 else math.nan)
    print(f"trivial ASGI app on hypercorn, 8 keep-alive connections, {rounds} rounds of "
          f"{seconds:g} s each (medians; target >= 0.9x):")  # fmt: skip
    for name, table, unit in (("wall clock", rates, "req/s"), ("server CPU", per_cpu, "req/cpu-s")):
        bare, wrapped = statistics.median(table[False]), statistics.median(table[True])
        ratios = [w / b for w, b in zip(table[True], table[False], strict=True)]
        print(
            f"  {name}: without ContextMiddleware {bare:.0f} {unit}, with {wrapped:.0f}: "
            f"{wrapped / bare:.2f}x (rounds {', '.join(f'{r:.2f}' for r in ratios)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per part, at most")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=("load", "middleware"), help="run one part only")
    parser.add_argument("--serve-trivial", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--middleware", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_trivial:
        sys.path.insert(0, str(ROOT / "src"))
        trio.run(serve_trivial, args.middleware)
        return
    if not Path("/proc/self/status").exists():
        raise SystemExit("needs Linux (/proc) for the RSS figures")
    os.environ.pop("JOBS_TOKEN", None)
    if args.only != "middleware":
        part1(args.jobs, args.backlog, args.budget)
    if args.only != "load":
        part2(args.rounds, 2.0)


if __name__ == "__main__":
    main()
