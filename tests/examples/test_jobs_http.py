"""The job queue's HTTP API (``examples/jobs/api.py``) driven by a real httpx client against
hypercorn (trio worker) on 127.0.0.1, an ephemeral port, inside the test's own trio run.

Waits are on events (the queue's streams, HTTP responses), bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

import trio_context as tc
from jobs.api import make_app
from jobs.jobqueue import JobQueue
from jobs.lifetime import open_job_queue
from support import serving

httpx = pytest.importorskip("httpx")
pytest.importorskip("hypercorn.trio")  # for serving()


@asynccontextmanager
async def serving_jobs(limit: int = 2) -> AsyncIterator[tuple[JobQueue, Any]]:
    """A queue, the API on an ephemeral port, and an httpx client for it."""
    async with open_job_queue(tc.background(), limit=limit) as queue:
        async with serving(make_app(queue), graceful_timeout=1) as url:
            async with httpx.AsyncClient(base_url=url) as client:
                yield queue, client
        queue.destroy()


async def sse_events(response: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event type, job) pairs from a text/event-stream response."""
    kind = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield kind, json.loads(line.removeprefix("data: "))


SPEC = {"kind": "async", "prompt": "a red fox", "steps": 4, "step_seconds": 0.02}


async def test_submit_list_get_cancel() -> None:
    async with serving_jobs(limit=1) as (_, client):
        created = await client.post("/jobs", json=SPEC)
        assert created.status_code == 201
        job = created.json()
        assert created.headers["location"] == f"/jobs/{job['id']}"
        assert job["state"] == "running" and job["steps"] == 4
        queued = (await client.post("/jobs", json={**SPEC, "prompt": "q", "timeout": 9})).json()
        assert queued["state"] == "queued" and queued["timeout"] == 9

        listed = (await client.get("/jobs")).json()["jobs"]
        assert [j["id"] for j in listed] == [job["id"], queued["id"]]

        cancel = await client.post(f"/jobs/{queued['id']}/cancel", params={"mode": "now"})
        assert cancel.status_code == 200
        assert cancel.json()["accepted"] is True
        assert cancel.json()["job"]["state"] == "cancelled"

        with trio.fail_after(5):
            done = (await client.get(f"/jobs/{job['id']}", params={"wait": "1"})).json()
        assert (done["state"], done["step"], done["percent"]) == ("done", 4, 100)
        assert len(done["outputs"]) == 4
        again = await client.post(f"/jobs/{job['id']}/cancel")
        assert again.json()["accepted"] is False


async def test_errors() -> None:
    async with serving_jobs() as (queue, client):
        bad = await client.post("/jobs", json={"kind": "gpu", "prompt": "x"})
        assert bad.status_code == 400 and "`kind` must be one of" in bad.json()["error"]
        assert (await client.post("/jobs", content=b"{nope")).status_code == 400
        assert (await client.post("/jobs", json={**SPEC, "colour": 1})).status_code == 400
        assert (await client.post("/jobs", json={**SPEC, "timeout": "soon"})).status_code == 400
        assert (await client.post("/jobs", json={**SPEC, "timeout": -1})).status_code == 400
        big = await client.post("/jobs", json={**SPEC, "memory_limit": "lots"})
        assert big.status_code == 400 and "`memory_limit` must be a positive" in big.json()["error"]
        assert (await client.get("/jobs/job-42")).status_code == 404
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.delete("/jobs")).status_code == 405
        job_id = (await client.post("/jobs", json=SPEC)).json()["id"]
        mode = await client.post(f"/jobs/{job_id}/cancel", params={"mode": "later"})
        assert mode.status_code == 400
        queue.close()
        closed = await client.post("/jobs", json=SPEC)
        assert closed.status_code == 503


async def test_progress_stream_until_done() -> None:
    async with serving_jobs() as (_, client):
        job_id = (await client.post("/jobs", json=SPEC)).json()["id"]
        seen: list[tuple[str, str, int]] = []
        with trio.fail_after(5):
            async with client.stream("GET", f"/jobs/{job_id}/events") as response:
                assert response.headers["content-type"] == "text/event-stream"
                async for kind, job in sse_events(response):
                    seen.append((kind, job["state"], job["step"]))
    assert seen[0][1] == "running"
    assert seen[-1] == ("state", "done", 4)  # the stream ends after the final state
    steps = [step for _, _, step in seen]
    assert steps == sorted(steps)


# Leaving httpx's line iterator early leaves httpcore's inner async generators for the garbage
# collector, and trio's finalizer warns about them: theirs, not the API's.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_dropping_the_stream_does_not_cancel_the_job() -> None:
    async with serving_jobs() as (queue, client):
        spec = {**SPEC, "steps": 20, "step_seconds": 0.05}
        job_id = (await client.post("/jobs", json=spec)).json()["id"]
        with trio.fail_after(5):
            async with client.stream("GET", f"/jobs/{job_id}/events") as response:
                async for kind, job in sse_events(response):
                    if kind == "progress" and job["step"] >= 2:
                        break  # hang up mid-stream
            # the server notices the hang-up (no event to wait on: poll, bounded above)
            while queue.statistics().subscribers:  # noqa: ASYNC110
                await trio.sleep(0.01)
            assert queue.get(job_id).state == "running"  # ...and the job goes on
            final = await queue.wait(job_id)
    assert (final.state, final.step) == ("done", 20)


async def test_the_callers_deadline_bounds_waiting_not_the_job() -> None:
    async with serving_jobs() as (queue, client):
        spec = {**SPEC, "steps": 100, "step_seconds": 0.05}
        job_id = (await client.post("/jobs", json=spec)).json()["id"]
        started = trio.current_time()
        with trio.fail_after(5):
            waited = await client.get(
                f"/jobs/{job_id}", params={"wait": "1"}, headers={"grpc-timeout": "300m"}
            )
        assert waited.status_code == 504  # the long poll gave up at the caller's deadline
        assert 0.25 <= trio.current_time() - started < 2
        with trio.fail_after(5):
            seen = 0
            async with client.stream(
                "GET", f"/jobs/{job_id}/events", headers={"x-envoy-expected-rq-timeout-ms": "300"}
            ) as resp:
                async for _ in sse_events(resp):  # ends at the deadline, cleanly
                    seen += 1
        assert seen >= 1
        assert queue.get(job_id).state == "running"
        queue.cancel(job_id, "now")


async def test_stream_of_all_jobs_ends_when_the_queue_is_done() -> None:
    async with serving_jobs(limit=2) as (queue, client):
        ids = [
            (await client.post("/jobs", json={**SPEC, "prompt": str(i)})).json()["id"]
            for i in range(3)
        ]
        finals: dict[str, str] = {}
        with trio.fail_after(5):
            async with client.stream("GET", "/events") as response:
                queue.close()  # the queued one is cancelled, the running ones finish
                async for _, job in sse_events(response):
                    if job["state"] in ("done", "cancelled", "failed"):
                        finals[job["id"]] = job["state"]
    assert finals == {ids[0]: "done", ids[1]: "done", ids[2]: "cancelled"}
