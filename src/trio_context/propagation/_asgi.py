"""The ASGI middleware: each HTTP request under a context with the caller's deadline.

Rules for callers:

- Wrap the ASGI app: ``app = tc.ContextMiddleware(app)``. Each HTTP request then runs inside
  ``ctx.move_on()`` of a fresh context, so handlers use ``tc.current()``. That context has the
  caller's deadline (from ``grpc-timeout`` or ``x-envoy-expected-rq-timeout-ms``, the earlier of
  the two when both are sent), the baggage entries you opted into (every incoming entry is also
  kept, to be forwarded by :func:`httpx_transport` on calls made under the request), and is
  cancelled (cause:
  :class:`ConnectionAbortedError`) as soon as the client disconnects, and when the request is
  over. Run it under a trio server (hypercorn's trio worker).
- The middleware never breaks the HTTP protocol, whatever the deadline header says: the
  server's ``send`` is never interrupted halfway through a message by the request's context (a
  cut message is what crashes servers: hypercorn's h11 ``LocalProtocolError``). A request whose
  context ends before the response started gets a JSON error (``504`` for a deadline, ``503`` when
  ``parent`` was cancelled, nothing for a client that left), with the cause in the
  ``trio-context-cause`` header; one that ends mid-body has its body
  closed (an empty last chunk, ``more_body`` False). After the response started, an exception of
  the app is logged on the ``trio_context`` logger instead of reaching the server, which could
  only break the connection with it.
- It type-checks as an ASGI 3 application against hypercorn's and asgiref's types, and wraps any
  ASGI app (Starlette, a typed hypercorn app, a plain function): ``hypercorn.trio.serve(
  tc.ContextMiddleware(app), config)`` needs no cast.
- A malformed deadline or baggage header is ignored with a warning on the ``trio_context``
  logger: the request still runs, under the server's own limits.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Mapping
from typing import Any, Final, cast

import trio

from .._core import (
    CancelContext,
    Context,
    ContextError,
    DeadlineExceeded,
    after_func,
    background,
    check_seconds,
    logger,
    with_cancel,
    with_timeout,
    with_value,
)
from ._cause import CAUSE_HEADER, RemoteCause
from ._codecs import INCOMING_BAGGAGE, parse_baggage, parse_grpc_timeout, parse_timeout_ms

__all__ = ["GRPC_TIMEOUT_HEADER", "TIMEOUT_MS_HEADER", "ContextMiddleware"]

#: gRPC's deadline header (``encode_grpc_timeout`` format). The client's default.
GRPC_TIMEOUT_HEADER: Final = "grpc-timeout"
#: Envoy's milliseconds deadline header (``encode_timeout_ms`` format).
TIMEOUT_MS_HEADER: Final = "x-envoy-expected-rq-timeout-ms"

# The ASGI types, as loose as the servers and frameworks need: hypercorn and asgiref type scopes
# and messages as TypedDicts, Starlette as MutableMapping[str, Any]. A callable that takes `Any`
# accepts every one of them, and so is accepted by every one of them.
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

_CAUSE: Final = CAUSE_HEADER.encode()

_PARSERS: dict[bytes, Callable[[bytes], float]] = {
    GRPC_TIMEOUT_HEADER.encode(): parse_grpc_timeout,
    TIMEOUT_MS_HEADER.encode(): parse_timeout_ms,
}


class ContextMiddleware:
    """ASGI middleware: run each HTTP request under a context with the caller's deadline.

    Args:
        app: the ASGI application to wrap.
        parent: the context every request context derives from (default ``background()``);
            use it to cap all requests (``with_timeout``) or stop them all on shutdown.
        baggage: the W3C baggage keys to accept into the context (``ctx.value(key)``, a str).
        send_grace: seconds a body chunk the server is sending gets to finish once the
            request's context is done (a client that stopped reading); default 5. The response
            start is never cut.

    Per request, the context is ``scope["trio_context"]`` (in a copy of the server's scope) and
    ``tc.current()`` in the app. The protocol guarantees are in the module rules; other scope
    types (``lifespan``, ``websocket``) pass through untouched. Calls are independent: safe to
    serve many requests at once.

    Raises:
        TypeError, ValueError: a bad ``send_grace``.
        At request time: whatever the app raises before its response started, except the
        request context's own cancellation (answered with a JSON error instead).

    Example::

        app = tc.ContextMiddleware(app, baggage=("tenant",))
        await hypercorn.trio.serve(app, config)
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        parent: Context | None = None,
        baggage: Iterable[str] = (),
        send_grace: float = 5.0,
    ) -> None:
        self.app = app
        self.parent = parent
        self.baggage = frozenset(baggage)
        self.send_grace = check_seconds(send_grace, "send_grace")

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx, cancel = self._context_for(scope)
        relay = _Relay(receive, cancel)
        response = _Response(send, ctx, self.send_grace, relay)
        error: Exception | None = None
        try:
            try:
                with ctx.move_on():
                    app = self.app({**scope, "trio_context": ctx}, relay.receive, response.send)
                    if isinstance(app, Coroutine):
                        await _Watched(cast("Coroutine[Any, Any, object]", app), relay)
                    else:  # some other awaitable: watch from the start
                        relay.paused()
                        await app
            except Exception as exc:
                error = exc  # handled below
            relay.stop()
            if error is not None or not response.complete:  # else: nothing left to do
                await self._finish(response, ctx, error, disconnected=relay.disconnected)
        finally:
            del error
            relay.stop()
            response.close()
            cancel.cancel()

    async def _finish(
        self, response: _Response, ctx: Context, error: Exception | None, *, disconnected: bool
    ) -> None:
        """Leave the response whole: an error answer, a closed body, or the app's error."""
        ours = isinstance(error, ContextError) and ctx.err is not None
        if response.started:
            if error is not None and not ours:
                logger.error("the ASGI app failed after its response started", exc_info=error)
            if not response.complete:
                await response.send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if error is not None and not ours:
            raise error  # nothing sent yet: the server answers 500
        if ctx.err is not None and not disconnected:
            status, body = self.error_body(ctx)
            remote = RemoteCause.of(ctx.err, ctx.cause, graceful=False, grace=0.0)
            await response.send_json(status, body, [(_CAUSE, remote.to_header().encode())])

    def error_body(self, ctx: Context) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for a request whose context ended before the response
        started: 504 for a deadline, 503 otherwise, with the cause's type and message. The
        answer also carries the cause in the ``trio-context-cause`` header, which
        :func:`httpx_transport` turns back into the matching error."""
        cause = ctx.cause
        deadline = isinstance(ctx.err, DeadlineExceeded)
        return (504 if deadline else 503), {
            "error": "deadline exceeded" if deadline else "request cancelled",
            "cause": {"type": type(cause).__name__, "message": str(cause)},
        }

    def _context_for(self, scope: Mapping[str, Any]) -> tuple[Context, CancelContext]:
        cancel = with_cancel(self.parent if self.parent is not None else background())
        ctx: Context = cancel
        headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
        remaining = math.inf
        baggage: list[bytes] = []
        for raw_name, raw_value in headers:
            name = raw_name.lower()
            parser = _PARSERS.get(name)
            if parser is not None:
                try:
                    remaining = min(remaining, parser(raw_value))
                except ValueError as exc:
                    logger.warning("ignoring request header %s: %s", name.decode(), exc)
            elif name == b"baggage":
                baggage.append(raw_value)
        if remaining != math.inf:
            cause = DeadlineExceeded("deadline from the request's timeout header")
            ctx = with_timeout(ctx, remaining, cause=cause)
        if baggage:
            try:
                entries = parse_baggage(b",".join(baggage))
            except ValueError as exc:
                logger.warning("ignoring request header baggage: %s", exc)
                entries = {}
            if entries:  # forwarded by httpx_transport on calls made under this request
                ctx = with_value(ctx, INCOMING_BAGGAGE, entries)
            for key in sorted(self.baggage & entries.keys()):
                ctx = with_value(ctx, key, entries[key])
        return ctx, cancel


class _Response:
    """The server's ``send`` as the app sees it: each message goes out whole, and the state of
    the response (started, complete) is known afterwards. Trio thread only."""

    def __init__(self, send: Send, ctx: Context, grace: float, relay: _Relay) -> None:
        self._send = send
        self._relay = relay
        self._ctx = ctx
        self._grace = grace
        self._sending: trio.CancelScope | None = None  # the body chunk being sent
        self._stop_watching: Callable[[], bool] | None = None
        self.started = False
        self.complete = False

    async def send(self, message: Message) -> None:
        self._relay.busy += 1
        try:
            await self._send_whole(message)
        finally:
            self._relay.busy -= 1

    async def _send_whole(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            with trio.CancelScope(shield=True):  # small, and a cut one breaks the connection
                await self._send(message)
            return
        if kind != "http.response.body":
            await self._send(message)
            return
        self.complete = not message.get("more_body", False)
        if self._ctx.done.is_set():
            deadline = trio.current_time() + self._grace
        else:
            # A chunk that fits in the socket's buffers does not wait for the client: only a
            # stream or a large body needs to hear when the context ends (the common short
            # answer saves the registration); a deadline is known already.
            deadline = self._ctx.deadline + self._grace
            if self._stop_watching is None and (
                not self.complete or len(message.get("body", b"")) > _SMALL
            ):
                self._stop_watching = after_func(self._ctx, self._hurry)
        with trio.CancelScope(shield=True, deadline=deadline) as sending:
            self._sending = sending
            try:
                await self._send(message)
            finally:
                self._sending = None

    def _hurry(self) -> None:
        """The request's context is done: a body chunk being sent gets ``grace`` seconds."""
        if self._sending is not None:
            self._sending.deadline = trio.current_time() + self._grace

    async def send_json(
        self, status: int, body: object, extra: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        data = json.dumps(body).encode() + b"\n"
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        headers.extend(extra)
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": data, "more_body": False})

    def close(self) -> None:
        if self._stop_watching is not None:
            self._stop_watching()


_SMALL: Final = 64 * 1024  # bytes


class _Relay:
    """Owns the server's ``receive``: hands the app its messages and, while the app waits on
    something else than the server, listens for ``http.disconnect`` to cancel the request
    context at once.

    Only one of the app and the watcher ever waits on the server's ``receive`` at a time, and
    the watcher never reads ahead more than one message the app has not taken (the server's
    backpressure on a large body stays intact). The watcher is a trio system task, started only
    when the app first waits elsewhere (see :class:`_Watched`: an app that answers at once never
    needs one, and a task per request was the middleware's main cost) and stopped by
    :meth:`stop`; it never raises.
    """

    def __init__(self, receive: Receive, cancel: CancelContext) -> None:
        self._receive = receive
        self._cancel = cancel
        self._pending: deque[Message] = deque()  # what the watcher got, not yet taken
        self._arrived = trio.Event()
        self._disconnect_message: Message | None = None
        self._watching = False  # the watcher owns the server's receive
        self._watch_scope: trio.CancelScope | None = None
        self._stopped = False
        self.busy = 0  # calls of the server's send or receive in progress
        self.disconnected = False

    def paused(self) -> None:
        """The app is waiting (trio thread): watch for a disconnect unless it waits on the
        server, a watcher runs already, or a message it has not taken is waiting for it."""
        if not (self._watching or self.busy or self._pending or self._stopped or self.disconnected):
            self._watching = True
            trio.lowlevel.spawn_system_task(self._watch, name="trio_context.ContextMiddleware")

    def _got(self, message: Message) -> None:
        if message.get("type") == "http.disconnect":
            self._disconnect_message = message
            if not self.disconnected:
                self.disconnected = True
                self._cancel.cancel(ConnectionAbortedError("the client disconnected"))

    async def _watch(self) -> None:
        with trio.CancelScope() as self._watch_scope:
            body_done = False
            while not self._stopped:
                try:
                    message = await self._receive()
                except Exception:  # the server closed its side: as good as a disconnect
                    message = {"type": "http.disconnect"}
                self._got(message)
                self._pending.append(message)
                self._arrived.set()
                if message.get("type") != "http.request" or message.get("more_body", False):
                    break  # a disconnect, or a body the app must read before we read on
                if body_done:
                    break  # a server that sends more after the body: not ours to judge
                body_done = True  # the whole body: only a disconnect can follow
        self._watching = False
        self._arrived.set()

    def stop(self) -> None:
        """The request is over: stop listening. Idempotent."""
        self._stopped = True
        if self._watch_scope is not None:
            self._watch_scope.cancel()

    async def receive(self) -> Message:
        while not self._pending and self._watching:
            self._arrived = trio.Event()
            await self._arrived.wait()
        if self._pending:
            return self._pending.popleft()
        if self._disconnect_message is not None:
            await trio.lowlevel.checkpoint()
            return self._disconnect_message
        self.busy += 1
        try:
            message = await self._receive()
        finally:
            self.busy -= 1
        self._got(message)
        return message


class _Watched:
    """Awaits the app's coroutine exactly as ``await`` would (the same ``send``/``throw``/
    ``close`` calls; trio's stack dumps see through it, ``gi_yieldfrom``) and tells the relay
    each time the app suspends, so that the disconnect watcher starts only when needed."""

    __slots__ = ("_coro", "_relay")
    gi_frame = None  # for trio's Task.iter_await_frames: no frame of its own

    def __init__(self, coro: Coroutine[Any, Any, object], relay: _Relay) -> None:
        self._coro = coro
        self._relay = relay

    @property
    def gi_yieldfrom(self) -> Coroutine[Any, Any, object]:
        return self._coro

    def __await__(self) -> Generator[Any, Any, None]:
        return self  # type: ignore[return-value]  # the generator protocol, by hand

    def __iter__(self) -> _Watched:
        return self

    def __next__(self) -> object:
        return self.send(None)

    def send(self, value: object) -> object:
        yielded = self._coro.send(value)  # StopIteration ends the await, as it should
        self._relay.paused()
        return yielded

    def throw(self, exc: BaseException) -> object:
        yielded = self._coro.throw(exc)
        self._relay.paused()
        return yielded

    def close(self) -> None:
        self._coro.close()
