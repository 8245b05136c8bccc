"""The HTTP API on Starlette: submit, list, get (or long-poll), cancel, events, health.

Starlette does the routing, the request parsing and the streaming; it runs on trio through
anyio under hypercorn's trio worker (``cli.py``), inside ``tc.ContextMiddleware``::

    POST /jobs                      {"kind", "prompt", "steps"?, "step_seconds"?, "hang_at"?,
                                     "fail_at"?, "leak_mib"?, "timeout"?, "stall_timeout"?,
                                     "memory_limit"?}                              -> 201 job
                                    header Idempotency-Key: a retry with the same key and body
                                    gets the same job (200), a different body 422
    GET  /jobs                      -> 200 {"jobs": [job, ...]}
    GET  /jobs/{id}[?wait=1]        -> 200 job (with wait: once it is final; a long poll)
    POST /jobs/{id}/cancel?mode=M   -> 200 {"accepted": bool, "job": job}; M: safe (default), now
    GET  /jobs/{id}/events          -> text/event-stream until the job is final
    GET  /events                    -> text/event-stream of every job until the queue is done
    GET  /health                    -> 200 {"status": "serving", "queue": {...counts}}

Errors are JSON ``{"error": "..."}``: 400 bad JSON, field or mode; 401 a missing or wrong bearer
token (when the server has one); 404 unknown job or path; 405 wrong method; 413 body over
64 KiB; 422 an idempotency key reused for another job; 429 the queue is full (``Retry-After``);
503 the server is closing (``Retry-After``); 504 the caller's deadline passed first.

Rules:

- Every field is checked before anything runs (``model.py``), whatever the client sends.
- A job never belongs to a request. The request's context (``scope["trio_context"]``, from the
  middleware: the caller's deadline, cancelled on disconnect) bounds the waiting and the
  streaming only; a client that hangs up ends its stream, never the job.
- An event is ``event: state|progress`` plus ``data:`` JSON: a state event carries the whole
  job, a progress event only what changed (``new_outputs``). A slow client gets coalesced events
  (``events.py``), never an unbounded buffer.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import aclosing
from typing import Any, Final, cast

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import trio_context as tc

from .events import Subscription
from .jobqueue import JobQueue
from .model import CANCEL_MODES, JobSpec, QueueClosed, QueueFull, SpecError, UnknownJob
from .records import check_memory, check_timeout

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_BODY: Final = 64 * 1024
MAX_KEY: Final = 200  # characters of an Idempotency-Key
RETRY_AFTER: Final = "1"  # seconds, for 429 and 503


def make_app(
    queue: JobQueue,
    *,
    parent: tc.Context | None = None,
    token: str | None = None,
    keys: int = 10_000,
) -> tc.ContextMiddleware:
    """The ASGI app of ``queue``: Starlette routes inside ``tc.ContextMiddleware``.

    ``parent``: the context every request derives from (cancel it to end every request, streams
    included). ``token``: the bearer token every request must carry (None: no check). ``keys``:
    how many idempotency keys are remembered (least recently used first out).
    """
    api = JobsAPI(queue, keys=keys)
    routes = [
        Route("/jobs", api.submit, methods=["POST"]),
        Route("/jobs", api.list_jobs, methods=["GET"]),
        Route("/jobs/{job_id}", api.get_job, methods=["GET"]),
        Route("/jobs/{job_id}/cancel", api.cancel, methods=["POST"]),
        Route("/jobs/{job_id}/events", api.job_events, methods=["GET"]),
        Route("/events", api.all_events, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    return tc.ContextMiddleware(Gate(app, queue, token), parent=parent)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404 unknown path, 405 wrong method) as JSON."""
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail, dict(exc.headers or {}))


class Gate:
    """ASGI middleware in front of the routes: the bearer token, then the closing server.

    Pure ASGI (not Starlette's ``BaseHTTPMiddleware``), so streams pass through untouched.
    """

    def __init__(self, app: Starlette, queue: JobQueue, token: str | None) -> None:
        self.app = app
        self.queue = queue
        self.expected = None if token is None else f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> Response | None:
        if self.expected is not None:
            headers = cast("list[tuple[bytes, bytes]]", scope["headers"])
            given = next((value for name, value in headers if name == b"authorization"), b"")
            if not secrets.compare_digest(given, self.expected):
                return error(401, "a valid bearer token is required",
                             {"www-authenticate": "Bearer"})  # fmt: skip
        if self.queue.statistics().closed:
            return error(503, "the server is closing", {"retry-after": RETRY_AFTER})
        return None


class JobsAPI:
    """The route handlers of one queue."""

    def __init__(self, queue: JobQueue, *, keys: int) -> None:
        self.queue = queue
        self.keys: OrderedDict[str, tuple[object, str]] = OrderedDict()  # key -> (body, job id)
        self.max_keys = keys

    async def submit(self, request: Request) -> Response:
        body = await read_json(request)
        key = idempotency_key(request)
        if key is not None and key in self.keys:
            replayed = self.replay(key, body)
            if replayed is not None:
                return replayed
        if not isinstance(body, dict):
            return error(400, "the body must be a JSON object")
        fields = dict(cast("dict[str, object]", body))
        try:
            timeout = check_timeout("timeout", fields.pop("timeout", None))
            stall_timeout = check_timeout("stall_timeout", fields.pop("stall_timeout", None))
            memory_limit = fields.pop("memory_limit", None)
            check_memory("memory_limit", memory_limit)
            spec = JobSpec.from_json(fields)
            job_id = self.queue.submit(
                spec,
                timeout=timeout,
                stall_timeout=stall_timeout,
                memory_limit=cast("int | None", memory_limit),
            )
        except SpecError as exc:
            return error(400, str(exc))
        except QueueFull as exc:
            return error(429, str(exc), {"retry-after": RETRY_AFTER})
        except QueueClosed:
            return error(503, "the server is closing", {"retry-after": RETRY_AFTER})
        if key is not None:
            self.keys[key] = (body, job_id)
            while len(self.keys) > self.max_keys:
                self.keys.popitem(last=False)
        info = self.queue.get(job_id)
        return JSONResponse(
            info.to_json(), status_code=201, headers={"location": f"/jobs/{job_id}"}
        )

    def replay(self, key: str, body: object) -> Response | None:
        """The answer to a retried POST (None: the job was forgotten, submit it again)."""
        first, job_id = self.keys[key]
        if first != body:
            return error(422, "this Idempotency-Key was used for a different job")
        self.keys.move_to_end(key)
        try:
            info = self.queue.get(job_id)
        except UnknownJob:
            return None
        return JSONResponse(info.to_json(), headers={"location": f"/jobs/{job_id}"})

    async def list_jobs(self, request: Request) -> Response:
        return JSONResponse({"jobs": [job.to_json() for job in self.queue.jobs()]})

    async def get_job(self, request: Request) -> Response:
        job_id = self.known(request)
        if flag(request, "wait"):
            info = await self.queue.wait(job_id)  # the middleware's 504 at the caller's deadline
        else:
            info = self.queue.get(job_id)
        return JSONResponse(info.to_json())

    async def cancel(self, request: Request) -> Response:
        job_id = self.known(request)
        mode = request.query_params.get("mode", "safe")
        if mode not in CANCEL_MODES:
            return error(400, f"`mode` must be 'safe' or 'now', not {mode[:40]!r}")
        accepted = self.queue.cancel(job_id, "safe" if mode == "safe" else "now")
        return JSONResponse({"accepted": accepted, "job": self.queue.get(job_id).to_json()})

    async def job_events(self, request: Request) -> Response:
        return EventStream(self.queue.subscribe(self.known(request)))

    async def all_events(self, request: Request) -> Response:
        return EventStream(self.queue.subscribe())

    async def health(self, request: Request) -> Response:
        stats = self.queue.statistics()
        return JSONResponse({"status": "serving", "queue": stats.to_json()})

    def known(self, request: Request) -> str:
        job_id = str(request.path_params["job_id"])
        try:
            self.queue.get(job_id)
        except UnknownJob:
            raise HTTPException(404, f"no job {job_id[:80]!r}") from None
        return job_id


class EventStream(StreamingResponse):
    """Server-sent events of one subscription, which it closes whatever ends the stream."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        super().__init__(
            _sse(subscription),
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.subscription:  # a client that left, a deadline: unsubscribed either way
            await super().__call__(scope, receive, send)


class _sse:  # used like a generator function, without an async generator's finaliser
    """Encodes each event of ``subscription`` as an SSE chunk."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        event = await self.subscription.__anext__()
        return f"event: {event.type}\ndata: {json.dumps(event.to_json())}\n\n".encode()


async def read_json(request: Request) -> object:
    """The body as JSON: at most ``MAX_BODY`` bytes, no NaN or Infinity, nesting bounded."""
    body = bytearray()
    try:
        async with aclosing(request.stream()) as chunks:
            async for chunk in chunks:
                body += chunk
                if len(body) > MAX_BODY:
                    raise HTTPException(413, f"the body is larger than {MAX_BODY} bytes")
    except ClientDisconnect:
        raise HTTPException(400, "the client left before sending the body") from None
    try:
        return json.loads(body, parse_constant=reject_constant)
    except (ValueError, RecursionError) as exc:
        raise HTTPException(400, f"the body is not valid JSON: {str(exc)[:200]}") from None


def reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 0 < len(key) <= MAX_KEY or not key.isprintable():
        raise HTTPException(400, f"`Idempotency-Key` must be 1 to {MAX_KEY} printable characters")
    return key


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "0") not in ("", "0", "false")
