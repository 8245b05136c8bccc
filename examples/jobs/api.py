"""The HTTP API: submit, list, get (with progress), cancel, and progress as server-sent events.

A plain ASGI app (no framework), served by hypercorn's trio worker (``cli.py``)::

    POST /jobs                       {"kind", "prompt", "steps"?, "step_seconds"?, "hang_at"?,
                                      "fail_at"?, "leak_mib"?, "timeout"?,
                                      "stall_timeout"?, "memory_limit"?}   -> 201 job
    GET  /jobs                       -> 200 {"jobs": [job, ...]}
    GET  /jobs/{id}                  -> 200 job: state, step, steps, percent, reason, outputs
    GET  /jobs/{id}?wait=1           -> 200 job, once it is final (a long poll)
    POST /jobs/{id}/cancel?mode=M    -> 200 {"accepted": bool, "job": job}; M is safe (default)
                                        or now
    GET  /jobs/{id}/events           -> text/event-stream, until the job is final
    GET  /events                     -> text/event-stream of every job, until the queue is done

Errors are JSON ``{"error": "..."}``: 400 bad JSON, spec or mode; 404 unknown job or path;
405 wrong method; 413 body over 64 KiB; 503 the queue is closed.

Rules:

- :func:`make_app` wraps the app in ``tc.ContextMiddleware``, so each request runs under a
  context with the caller's deadline (``grpc-timeout`` or ``x-envoy-expected-rq-timeout-ms``),
  cancelled when the client disconnects. Waiting honours it: a long poll whose deadline passes
  gets ``504``, an event stream just ends.
- A job never belongs to a request. The request's context only bounds the waiting and the
  streaming; the job's context comes from the queue. A client that hangs up on a stream, or whose
  deadline passes, ends its stream, never the job.
- Each event is ``event: state|progress`` plus ``data:`` the job as JSON; a slow client gets
  coalesced events (``events.py``), never an unbounded buffer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast
from urllib.parse import parse_qs

import trio

import trio_context as tc

from .jobqueue import JobQueue
from .model import CANCEL_MODES, JobSpec, QueueClosed, SpecError, UnknownJob

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 64 * 1024


def make_app(queue: JobQueue, *, parent: tc.Context | None = None) -> ASGIApp:
    """The ASGI app of ``queue``. ``parent`` is the context every request derives from (cancel
    it to end every request, streams included)."""
    return tc.ContextMiddleware(JobsApp(queue), parent=parent)


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class JobsApp:
    """The routes. Runs under ``tc.ContextMiddleware``: ``tc.current()`` is the request's
    context."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
        elif scope["type"] == "http":
            try:
                await self.route(scope, receive, send)
            except HTTPError as exc:
                await send_json(send, exc.status, {"error": exc.message})

    async def route(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        match [part for part in scope["path"].split("/") if part]:
            case ["jobs"]:
                allow(method, "GET", "POST")
                if method == "POST":
                    await self.submit(await read_json(receive), send)
                else:
                    await send_json(send, 200, {"jobs": [j.to_json() for j in self.queue.jobs()]})
            case ["jobs", job_id]:
                allow(method, "GET")
                if query.get("wait", ["0"])[0] not in ("", "0"):
                    info = await self.queue.wait(known(job_id, self.queue))  # a long poll
                else:
                    info = self.queue.get(known(job_id, self.queue))
                await send_json(send, 200, info.to_json())
            case ["jobs", job_id, "cancel"]:
                allow(method, "POST")
                mode = query.get("mode", ["safe"])[0]
                if mode not in CANCEL_MODES:
                    raise HTTPError(400, f"mode must be 'safe' or 'now', not {mode!r}")
                accepted = self.queue.cancel(known(job_id, self.queue), mode)
                await send_json(
                    send, 200, {"accepted": accepted, "job": self.queue.get(job_id).to_json()}
                )
            case ["jobs", job_id, "events"]:
                allow(method, "GET")
                await self.stream(send, known(job_id, self.queue))
            case ["events"]:
                allow(method, "GET")
                await self.stream(send, None)
            case _:
                raise HTTPError(404, f"no such path: {scope['path']}")

    async def submit(self, body: object, send: Send) -> None:
        if not isinstance(body, dict):
            raise HTTPError(400, "the body must be a JSON object")
        fields = dict(cast("dict[str, object]", body))
        timeout, stall_timeout = fields.pop("timeout", None), fields.pop("stall_timeout", None)
        memory_limit = fields.pop("memory_limit", None)  # bytes; checked by submit()
        try:
            job_id = self.queue.submit(
                JobSpec.from_json(fields),
                timeout=seconds(timeout),
                stall_timeout=seconds(stall_timeout),
                memory_limit=memory_limit,  # type: ignore[arg-type]
            )
        except SpecError as exc:
            raise HTTPError(400, str(exc)) from None
        except QueueClosed as exc:
            raise HTTPError(503, str(exc)) from None
        await send_json(
            send,
            201,
            self.queue.get(job_id).to_json(),
            headers=[(b"location", f"/jobs/{job_id}".encode())],
        )

    async def stream(self, send: Send, job_id: str | None) -> None:
        """Server-sent events until the stream ends, the client leaves or its deadline passes."""
        with self.queue.subscribe(job_id) as events:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream"),
                        (b"cache-control", b"no-cache"),
                    ],
                }
            )
            try:
                # Waiting for the next event is where the request's context (the middleware's
                # scope, not the job's context) interrupts the stream at the caller's deadline
                # or on a disconnect. That ends this stream and nothing else.
                async for event in events:
                    data = json.dumps(event.job.to_json())
                    chunk = f"event: {event.type}\ndata: {data}\n\n".encode()
                    await unhurried(
                        send, {"type": "http.response.body", "body": chunk, "more_body": True}
                    )
            finally:
                await unhurried(
                    send, {"type": "http.response.body", "body": b"", "more_body": False}
                )


async def unhurried(send: Send, message: Message) -> None:
    """Send a message whole, even after the request's context ended: an HTTP message cut in two
    breaks the connection. Bounded, for a client that stopped reading."""
    with trio.CancelScope(shield=True, deadline=trio.current_time() + 5):
        await send(message)


def seconds(value: object) -> float | None:
    """A JSON number (or null) as seconds; submit() checks the range and names the field."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if value is None:
        return None
    raise SpecError(f"a timeout must be a number of seconds, not {value!r}")


def allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise HTTPError(405, f"method {method} not allowed here (use {' or '.join(allowed)})")


def known(job_id: str, queue: JobQueue) -> str:
    try:
        queue.get(job_id)
    except UnknownJob as exc:
        raise HTTPError(404, str(exc)) from None
    return job_id


async def read_json(receive: Receive) -> object:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "the client left before sending the body")
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            raise HTTPError(413, f"the body is larger than {MAX_BODY} bytes")
        if not message.get("more_body", False):
            break
    try:
        return json.loads(body, parse_constant=reject_constant)
    except ValueError as exc:
        raise HTTPError(400, f"the body is not valid JSON: {exc}") from None


def reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


async def send_json(
    send: Send, status: int, body: object, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(body, allow_nan=False, default=str).encode() + b"\n"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def lifespan(receive: Receive, send: Send) -> None:
    """Nothing to set up: the queue's lifetime is the caller's ``async with``."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
