"""The job server survives any client (``examples/jobs/server.py`` and ``api.py``).

Each test runs the real server (``server.serve``: the queue, Starlette inside
``tc.ContextMiddleware``, hypercorn's trio worker) on 127.0.0.1, an ephemeral port, in the test's
own trio run, and drives it with httpx. Waits are on responses and events, bounded by
``trio.fail_after``; the command-line tests run ``python examples/jobs serve`` as a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

import trio_context as tc

httpx = pytest.importorskip("httpx")
pytest.importorskip("hypercorn.trio")
pytest.importorskip("starlette")

from jobs.server import ServerOptions, serve  # noqa: E402
from support import ROOT  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SPEC: dict[str, Any] = {"kind": "async", "prompt": "a red fox", "steps": 4, "step_seconds": 0.02}
SLOW: dict[str, Any] = {**SPEC, "steps": 200, "step_seconds": 0.05}


@asynccontextmanager
async def server(**options: Any) -> AsyncGenerator[tuple[Any, tc.CancelContext]]:
    """The server with ``options`` and an httpx client; ``stop.cancel()`` starts its close."""
    stop = tc.with_cancel(tc.background())
    settings = ServerOptions(port=0, access_log=False, grace=2.0, drain=1.0, **options)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve, settings, stop)
        async with httpx.AsyncClient(base_url=binds[0], timeout=10) as client:
            try:
                yield client, stop
            finally:
                stop.cancel()


async def sse(response: Any) -> AsyncGenerator[tuple[str, dict[str, Any]]]:
    kind = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield kind, json.loads(line.removeprefix("data: "))


async def nothing_ran(client: Any) -> None:
    assert (await client.get("/jobs")).json() == {"jobs": []}
    queue = (await client.get("/health")).json()["queue"]
    assert (queue["queued"], queue["running"], queue["finished"]) == (0, 0, 0)


# -- every field checked before anything runs -----------------------------------------------------

BAD_BODIES: list[tuple[bytes, str]] = [
    (b'{"kind": "async", "prompt": "x", "steps": 1' + b"0" * 400 + b"}", "`steps` must be at most"),
    (b'{"kind": "async", "prompt": "x", "timeout": 1' + b"0" * 400 + b"}", "`timeout` must be"),
    (b'{"kind": "async", "prompt": "x", "stall_timeout": 1e400}', "`stall_timeout` must be"),
    (b'{"kind": "async", "prompt": "x", "step_seconds": 1e308}', "`step_seconds` must be"),
    (b'{"kind": "async", "prompt": "x", "step_seconds": NaN}', "not valid JSON"),
    (b'{"kind": "async", "prompt": "a\\u0000b"}', "NUL"),
    (b'{"kind": "async", "prompt": "\\ud800"}', "lone surrogate"),
    (b'{"kind": "process", "prompt": "--help"}', "start with '-'"),
    (b'{"kind": "async", "prompt": "x", "hang_at": 99, "steps": 3}', "`hang_at`"),
    (b'{"kind": "async", "prompt": "x", "steps": true}', "`steps` must be an integer"),
    (b'{"kind": ["async"], "prompt": "x"}', "`kind` must be one of"),
    (b'{"kind": "async", "prompt": "x", "' + b"k" * 5000 + b'": 1}', "unknown field"),
    (b"[" * 100_000 + b"]" * 100_000, "413"),
    (b"[" * 20_000 + b"]" * 20_000, "not valid JSON"),
    (b'"just a string"', "JSON object"),
    (b"\xff\xfe", "not valid JSON"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES, ids=range(len(BAD_BODIES)))
async def test_bad_values_get_a_4xx_json_message_before_anything_runs(
    body: bytes, message: str
) -> None:
    async with server() as (client, _):
        response = await client.post("/jobs", content=body)
        assert 400 <= response.status_code < 500
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert message in (error if message != "413" else str(response.status_code)), error
        assert len(error) < 400  # a 5000-character field name is not echoed back whole
        await nothing_ran(client)


async def test_bad_query_values_and_headers() -> None:
    async with server() as (client, _):
        job_id = (await client.post("/jobs", json=SPEC)).json()["id"]
        assert (await client.post(f"/jobs/{job_id}/cancel?mode=later")).status_code == 400
        long_key = {"idempotency-key": "k" * 201}
        assert (await client.post("/jobs", json=SPEC, headers=long_key)).status_code == 400
        assert (await client.get("/jobs/job-nope")).status_code == 404
        assert (await client.get("/nowhere")).json()["error"] == "Not Found"
        assert (await client.delete("/jobs")).status_code == 405


async def test_a_flag_like_value_never_reaches_the_worker_command_line() -> None:
    from jobs.model import JobSpec
    from jobs.work import worker_command

    command = worker_command(JobSpec(kind="process", prompt="a -x b", steps=2))
    assert "--prompt=a -x b" in command and "--steps=2" in command


# -- a bounded queue ------------------------------------------------------------------------------


async def test_a_full_queue_answers_429_with_retry_after() -> None:
    async with server(limit=1, max_queued=2) as (client, _):
        states = [(await client.post("/jobs", json={**SLOW, "prompt": str(i)})) for i in range(3)]
        assert [r.json()["state"] for r in states] == ["running", "queued", "queued"]
        full = await client.post("/jobs", json={**SLOW, "prompt": "one too many"})
        assert full.status_code == 429 and full.headers["retry-after"] == "1"
        assert "full" in full.json()["error"]
        await client.post(f"/jobs/{states[1].json()['id']}/cancel")  # a place comes free
        assert (await client.post("/jobs", json={**SLOW, "prompt": "now"})).status_code == 201


# -- progress events carry what changed ---------------------------------------------------------


async def test_progress_events_carry_only_the_new_outputs() -> None:
    async with server() as (client, _):
        spec = {**SPEC, "steps": 30, "step_seconds": 0.005}
        job_id = (await client.post("/jobs", json=spec)).json()["id"]
        collected: list[str] = []
        with trio.fail_after(10):
            async with client.stream("GET", f"/jobs/{job_id}/events") as response:
                async for kind, job in sse(response):
                    if kind == "progress":
                        assert "outputs" not in job and "spec" not in job
                        assert job["step"] == len(collected) + len(job["new_outputs"])
                        collected += job["new_outputs"]
                    else:  # a state event: the whole job
                        collected = list(job["outputs"])
                        final = job
        assert final["state"] == "done" and collected == final["outputs"]
        assert len(collected) == 30


# -- a graceful close: final states first, 503 meanwhile -------------------------------------


async def test_a_close_delivers_final_states_then_stops_listening_and_503s_meanwhile() -> None:
    spec = {**SPEC, "steps": 10, "step_seconds": 0.1}
    seen: list[tuple[str, str]] = []
    polled: list[dict[str, Any]] = []
    async with server(limit=1) as (client, stop):
        running = (await client.post("/jobs", json=spec)).json()["id"]
        queued = (await client.post("/jobs", json={**spec, "prompt": "q"})).json()["id"]

        async def watch(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            async with client.stream("GET", "/events") as response:
                task_status.started()
                async for _, job in sse(response):
                    seen.append((job["id"], job["state"]))

        async def long_poll(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            polled.append((await client.get(f"/jobs/{running}", params={"wait": "1"})).json())

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                await nursery.start(watch)
                await nursery.start(long_poll)
                while (await client.get("/health")).json()["queue"]["waiters"] == 0:  # noqa: ASYNC110
                    await trio.sleep(0.01)  # until the long poll is in the server
                stop.cancel()  # the first Ctrl-C
                await trio.sleep(0.05)
                during = await client.get("/jobs")
                assert during.status_code == 503 and during.headers["retry-after"] == "1"
                assert during.json() == {"error": "the server is closing"}
                refused = await client.post("/jobs", json=SPEC)
                assert refused.status_code == 503
    assert (running, "done") in seen and (queued, "cancelled") in seen  # the stream saw both
    assert polled[0].get("state") == "done" and polled[0]["step"] == 10, polled


# -- ids, tokens, history, idempotency ------------------------------------------------------------


async def test_ids_are_unguessable() -> None:
    async with server() as (client, _):
        ids = [(await client.post("/jobs", json={**SPEC, "prompt": str(i)})).json()["id"]
               for i in range(20)]  # fmt: skip
    assert len(set(ids)) == 20
    assert all(re.fullmatch(r"job-[A-Za-z0-9_-]{16}", job_id) for job_id in ids)


ENDPOINTS = [("GET", "/jobs"), ("POST", "/jobs"), ("GET", "/jobs/job-x"),
             ("GET", "/jobs/job-x?wait=1"), ("POST", "/jobs/job-x/cancel"),
             ("GET", "/jobs/job-x/events"), ("GET", "/events"), ("GET", "/health"),
             ("GET", "/nowhere")]  # fmt: skip


async def test_a_bearer_token_guards_every_endpoint() -> None:
    async with server(token="s3cret") as (client, _):
        for method, path in ENDPOINTS:
            for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
                response = await client.request(method, path, headers=headers, json=SPEC)
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
        good = {"authorization": "Bearer s3cret"}
        created = await client.post("/jobs", json=SPEC, headers=good)
        assert created.status_code == 201
        assert (await client.get("/health", headers=good)).status_code == 200


async def test_history_size_is_configurable() -> None:
    async with server(history=2) as (client, _):
        ids = []
        for i in range(3):
            job_id = (await client.post("/jobs", json={**SPEC, "prompt": str(i)})).json()["id"]
            await client.get(f"/jobs/{job_id}", params={"wait": "1"})
            ids.append(job_id)
        assert (await client.get(f"/jobs/{ids[0]}")).status_code == 404
        assert (await client.get(f"/jobs/{ids[2]}")).json()["state"] == "done"


async def test_an_idempotency_key_makes_a_retried_post_safe() -> None:
    async with server() as (client, _):
        key = {"idempotency-key": "order-42"}
        first = await client.post("/jobs", json=SLOW, headers=key)
        again = await client.post("/jobs", json=SLOW, headers=key)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["id"] == again.json()["id"]
        other = await client.post("/jobs", json={**SLOW, "prompt": "other"}, headers=key)
        assert other.status_code == 422
        assert (await client.post("/jobs", json=SLOW)).json()["id"] != first.json()["id"]
        assert len((await client.get("/jobs")).json()["jobs"]) == 2


# -- cancel escalation, the stall clock, health ----------------------------------------------


async def test_a_safe_cancel_of_a_hung_job_escalates_to_now() -> None:
    spec = {"kind": "process", "prompt": "hangs", "steps": 5, "step_seconds": 0.05, "hang_at": 2}
    async with server(escalate_after=0.5) as (client, _):
        job_id = (await client.post("/jobs", json=spec)).json()["id"]
        with trio.fail_after(20):
            async with client.stream("GET", f"/jobs/{job_id}/events") as response:
                async for _, job in sse(response):
                    if job["step"] == 1 and job["state"] == "running":
                        cancel = await client.post(f"/jobs/{job_id}/cancel")
                        assert cancel.json()["job"]["state"] == "cancelling"
        final = (await client.get(f"/jobs/{job_id}")).json()
    assert final["state"] == "cancelled"
    assert final["reason"].startswith("safe cancel unfinished after 0.5 s, stopped after step 1")


async def test_the_stall_clock_starts_once_the_worker_has_started() -> None:
    # Starting Python and importing trio takes longer than 0.3 s on most machines: that time
    # must not count as a stall; steps of 0.05 s never stall.
    spec = {"kind": "process", "prompt": "ok", "steps": 4, "step_seconds": 0.05}
    async with server() as (client, _):
        job_id = (await client.post("/jobs", json={**spec, "stall_timeout": 0.3})).json()["id"]
        with trio.fail_after(20):
            final = (await client.get(f"/jobs/{job_id}", params={"wait": "1"})).json()
    assert (final["state"], final["step"]) == ("done", 4), final["reason"]


async def test_health_reports_the_queue() -> None:
    async with server(limit=1) as (client, _):
        await client.post("/jobs", json=SLOW)
        await client.post("/jobs", json={**SLOW, "prompt": "q"})
        health = (await client.get("/health")).json()
    assert health["status"] == "serving"
    assert health["queue"] == {
        "limit": 1, "queued": 1, "running": 1, "finished": 0, "subscribers": 0, "waiters": 0,
        "cached_results": 0, "closed": False,
    }  # fmt: skip


# -- nearly spent deadlines, a burst of connections -------------------------------------------


async def test_30_nearly_spent_deadlines_on_every_endpoint_and_the_server_still_serves() -> None:
    async with server() as (client, _):
        job_id = (await client.post("/jobs", json=SLOW)).json()["id"]
        paths = [p.replace("job-x", job_id) for _, p in ENDPOINTS]
        methods = [m for m, _ in ENDPOINTS]
        with trio.fail_after(30):
            for header in ({"grpc-timeout": "1n"}, {"x-envoy-expected-rq-timeout-ms": "0"}):
                for i in range(30):
                    k = i % len(paths)
                    response = await client.request(methods[k], paths[k], headers=header,
                                                    json={**SPEC, "prompt": f"p{i}"})  # fmt: skip
                    assert response.status_code < 500 or response.status_code == 504
                    assert response.headers["content-type"].startswith(
                        ("application/json", "text/event-stream")
                    )
        assert (await client.get("/health")).status_code == 200
        after = (await client.post("/jobs", json={**SPEC, "prompt": "after"})).json()["id"]
        with trio.fail_after(10):
            done = await client.get(f"/jobs/{after}", params={"wait": "1"})
        assert done.json()["state"] == "done"


async def test_a_burst_of_300_connections_gets_no_reset() -> None:
    async with server(backlog=1024) as (client, _):
        port = int(str(client.base_url).rsplit(":", 1)[1].rstrip("/"))
        answers: list[bytes] = []

        async def one() -> None:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(
                    b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
                )
                data = b""
                while chunk := await stream.receive_some():
                    data += chunk
                answers.append(data.split(b"\r\n", 1)[0])

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for _ in range(300):
                    nursery.start_soon(one)
    assert answers == [b"HTTP/1.1 200 "] * 300


# -- the command line: exit codes ---------------------------------------------------------------


def run_cli_until(signals: list[signal.Signals], *extra: str) -> tuple[int, str]:
    """``python examples/jobs serve --port 0``: wait for its address, send ``signals``."""
    proc = subprocess.Popen(
        [sys.executable, "examples/jobs", "serve", "--port", "0", "--no-access-log", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "JOBS_TOKEN": ""},
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        assert "jobs: serving on http://127.0.0.1:" in line, line
        for sig in signals:
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    return proc.returncode, line + out + err


def test_cli_exits_130_after_ctrl_c_and_0_after_a_clean_close() -> None:
    assert run_cli_until([signal.SIGINT])[0] == 130
    code, output = run_cli_until([signal.SIGTERM])
    assert code == 0 and "jobs: stopped" in output


def test_cli_refuses_bad_options() -> None:
    for args in (["--backlog", "0"], ["--grace", "nan"], ["--token", ""], ["--max-queued", "-1"]):
        proc = subprocess.run(
            [sys.executable, "examples/jobs", "serve", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert proc.returncode == 2, (args, proc.stderr)
