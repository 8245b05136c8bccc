"""HTTP integrations: an ASGI middleware (no dependencies) and an httpx transport (extra).

Rules for callers:

- Server side, wrap the ASGI app: ``app = tc.ContextMiddleware(app)``. Each HTTP request then
  runs inside ``ctx.scope()`` of a fresh context, so handlers use ``tc.current()``. That context
  has the caller's deadline (from ``grpc-timeout`` or ``x-envoy-expected-rq-timeout-ms``, the
  earlier of the two when both are sent), the baggage entries you opted into, and is cancelled
  (cause: :class:`ConnectionAbortedError`) as soon as the client disconnects, and when the
  request is over. Run it under a trio server (hypercorn's trio worker).
- Client side, give httpx the transport: ``httpx.AsyncClient(transport=tc.httpx_transport())``.
  Each request then uses the context of the calling code (``tc.current()``, or
  ``extensions={"trio_context": ctx}`` on the request): it fails at once with ``ctx.err`` when
  that context is done, sends the remaining time as a header, caps httpx's timeouts to it, and
  is interrupted with ``ctx.err`` (not an httpx timeout) when the context ends mid-request.
- Values cross only when named on *both* sides (``baggage=("tenant",)``): the client sends the
  ``str`` value of those context keys as W3C ``baggage``; the middleware accepts only those
  entries, as ``str`` values under the same keys. Anything else in the header is ignored.
- A malformed deadline or baggage header is ignored with a warning on the ``trio_context``
  logger: the request still runs, under the server's own limits.
- httpx is an optional extra (``pip install trio-context[httpx]``); it is imported only when
  :func:`httpx_transport` is called. The middleware needs nothing beyond trio.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

import trio

from .._core import (
    CancelContext,
    Context,
    DeadlineExceeded,
    background,
    logger,
    with_cancel,
    with_timeout,
    with_value,
)
from ._codecs import parse_baggage, parse_grpc_timeout, parse_timeout_ms

if TYPE_CHECKING:
    import httpx

__all__ = [
    "GRPC_TIMEOUT_HEADER",
    "TIMEOUT_MS_HEADER",
    "ContextMiddleware",
    "httpx_transport",
]


#: gRPC's deadline header (``encode_grpc_timeout`` format). The client's default.
GRPC_TIMEOUT_HEADER = "grpc-timeout"
#: Envoy's milliseconds deadline header (``encode_timeout_ms`` format).
TIMEOUT_MS_HEADER = "x-envoy-expected-rq-timeout-ms"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

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

    Per request, the context is ``scope["trio_context"]`` and ``tc.current()`` in the app.
    When the deadline passes before the app started its response, the middleware answers
    ``504 Gateway Timeout``; when the client disconnects, the app is cancelled and nothing is
    sent. Other scope types (``lifespan``, ``websocket``) pass through untouched.

    Raises:
        Whatever the app raises, except the request context's own cancellation.

    Example::

        app = tc.ContextMiddleware(app, baggage=("tenant",))
        await hypercorn.trio.serve(app, config)
    """

    def __init__(
        self, app: ASGIApp, *, parent: Context | None = None, baggage: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.parent = parent
        self.baggage = frozenset(baggage)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        ctx, cancel = self._context_for(scope)
        scope["trio_context"] = ctx
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message.get("type") == "http.response.start":
                started = True
            await send(message)

        error: Exception | None = None
        try:
            async with trio.open_nursery() as nursery:
                relay = _Relay(receive, cancel, nursery)
                await relay.prime()
                try:
                    with ctx.move_on():
                        await self.app(scope, relay.receive, tracking_send)
                except Exception as exc:
                    error = exc  # re-raised below as is, not wrapped in an ExceptionGroup
                nursery.cancel_scope.cancel()
            if error is not None:
                raise error
            if isinstance(ctx.err, DeadlineExceeded) and not started:
                await _send_504(send)
        finally:
            del error
            cancel.cancel()

    def _context_for(self, scope: Scope) -> tuple[Context, CancelContext]:
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
            elif name == b"baggage" and self.baggage:
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
            for key in sorted(self.baggage & entries.keys()):
                ctx = with_value(ctx, key, entries[key])
        return ctx, cancel


class _Relay:
    """Owns the server's ``receive``: hands the app its messages and, once the request body is
    complete, keeps listening for ``http.disconnect`` to cancel the request context at once.

    Only one of the app and the watcher ever waits on the server's ``receive`` at a time.
    """

    def __init__(self, receive: Receive, cancel: CancelContext, nursery: trio.Nursery) -> None:
        self._receive = receive
        self._cancel = cancel
        self._nursery = nursery
        self._first: Message | None = None
        self._final: Message | None = None  # the message the watcher got (a disconnect)
        self._final_ready = trio.Event()

    async def prime(self) -> None:
        # Reading the first message ourselves is cheap (one chunk) and lets us watch for a
        # disconnect even while an app that ignores the body (a GET handler) is busy.
        self._first = await self._receive()
        self._after(self._first)

    def _after(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.disconnect":
            self._cancel.cancel(ConnectionAbortedError("the client disconnected"))
            self._final = message
            self._final_ready.set()
        elif kind == "http.request" and not message.get("more_body", False):
            self._nursery.start_soon(self._watch)

    async def _watch(self) -> None:
        message = await self._receive()
        if message.get("type") == "http.disconnect":
            self._cancel.cancel(ConnectionAbortedError("the client disconnected"))
        self._final = message
        self._final_ready.set()

    async def receive(self) -> Message:
        if self._first is not None:
            message, self._first = self._first, None
            return message
        if self._final is not None or self._nursery.child_tasks:
            await self._final_ready.wait()
            assert self._final is not None
            return self._final
        message = await self._receive()
        self._after(message)
        return message


async def _send_504(send: Send) -> None:
    body = b"deadline exceeded\n"
    await send(
        {
            "type": "http.response.start",
            "status": 504,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def httpx_transport(
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    header: str = GRPC_TIMEOUT_HEADER,
    baggage: Iterable[str] = (),
) -> httpx.AsyncBaseTransport:
    """Return an httpx transport that makes each request follow its context.

    Args:
        transport: the transport to wrap (default ``httpx.AsyncHTTPTransport()``).
        header: which deadline header to send: ``GRPC_TIMEOUT_HEADER`` (default) or
            ``TIMEOUT_MS_HEADER``. Nothing is sent when the context has no deadline.
        baggage: context keys whose ``str`` values travel as W3C ``baggage``.

    The context is ``request.extensions["trio_context"]`` when set, else ``tc.current()``.

    Raises:
        ImportError: httpx is not installed (``pip install trio-context[httpx]``).
        ValueError: ``header`` is neither of the two supported names.
        At request time: ``ctx.err`` (a fresh :class:`ContextCancelled` or
        :class:`DeadlineExceeded`) when the context is or becomes done; ``ValueError`` from
        :func:`encode_baggage` when the chosen values break the W3C limits.

    Example::

        async with httpx.AsyncClient(transport=tc.httpx_transport()) as client:
            with ctx.scope():
                response = await client.get(url)
    """
    if header not in (GRPC_TIMEOUT_HEADER, TIMEOUT_MS_HEADER):
        raise ValueError(
            f"`header` must be {GRPC_TIMEOUT_HEADER!r} or {TIMEOUT_MS_HEADER!r}, got {header!r}"
        )
    try:
        from ._httpx import ContextTransport
    except ImportError as exc:
        raise ImportError(
            "tc.httpx_transport() needs httpx; install it with: pip install trio-context[httpx]"
        ) from exc
    return ContextTransport(transport, header=header, baggage=tuple(baggage))
