"""Tests for the ASGI middleware and the httpx transport (``_http.py``, ``_httpx.py``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

import trio_context as tc
from support import answering_lifespan, serving
from trio_context.propagation import ContextMiddleware, httpx_transport

Message = dict[str, Any]

# ---------------------------------------------------------------------------------------------
# The middleware against a fake ASGI server (deterministic: autojump clock, no sockets)


class FakeServer:
    def __init__(self, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.headers = headers or []
        self.sent: list[Message] = []
        self.disconnect = trio.Event()
        self._messages = [{"type": "http.request", "body": b"", "more_body": False}]

    def scope(self) -> dict[str, Any]:
        return {"type": "http", "method": "GET", "path": "/", "headers": self.headers}

    async def receive(self) -> Message:
        if self._messages:
            return self._messages.pop(0)
        await self.disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def run(self, app: Callable[..., Awaitable[None]]) -> None:
        await app(self.scope(), self.receive, self.send)


async def ok(send: Callable[[Message], Awaitable[None]], body: bytes = b"ok") -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], math.inf),
        ([(b"grpc-timeout", b"2500m")], 2.5),
        ([(b"x-envoy-expected-rq-timeout-ms", b"1500")], 1.5),
        ([(b"Grpc-Timeout", b"3S"), (b"x-envoy-expected-rq-timeout-ms", b"1500")], 1.5),
    ],
)
async def test_middleware_binds_the_callers_deadline(
    autojump_clock: trio.testing.MockClock, headers: list[tuple[bytes, bytes]], expected: float
) -> None:
    seen: list[tc.Context] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(tc.current())
        assert scope["trio_context"] is tc.current()
        await ok(send)

    await FakeServer(headers).run(ContextMiddleware(app))
    assert seen[0].remaining() == pytest.approx(expected)
    assert seen[0].done.is_set()  # cancelled when the request is over


async def test_middleware_ignores_a_malformed_header(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[float] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(tc.current().remaining())
        await ok(send)

    with caplog.at_level(logging.WARNING, logger="trio_context"):
        await FakeServer([(b"grpc-timeout", b"5 seconds")]).run(ContextMiddleware(app))
    assert seen == [math.inf]
    assert "grpc-timeout" in caplog.text


async def test_middleware_parent_caps_the_deadline(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[float] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(tc.current().remaining())
        await ok(send)

    parent = tc.with_timeout(tc.background(), 1)
    await FakeServer([(b"grpc-timeout", b"5S")]).run(ContextMiddleware(app, parent=parent))
    assert seen == [pytest.approx(1)]


async def test_middleware_accepts_only_opted_in_baggage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[object, object]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        ctx = tc.current()
        seen.append((ctx.value("tenant"), ctx.value("admin")))
        await ok(send)

    headers = [(b"baggage", b"tenant=acme%20co"), (b"baggage", b"admin=yes")]
    await FakeServer(headers).run(ContextMiddleware(app, baggage=["tenant"]))
    assert seen == [("acme co", None)]


async def test_middleware_disconnect_cancels_the_handler(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tc.Context] = []
    server = FakeServer()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(tc.current())
        server.disconnect.set()
        await trio.sleep_forever()  # ignores the body, never calls receive

    start = trio.current_time()
    await server.run(ContextMiddleware(app))
    assert trio.current_time() == start
    assert isinstance(seen[0].err, tc.ContextCancelled)
    assert isinstance(seen[0].cause, ConnectionAbortedError)
    assert server.sent == []


async def test_middleware_hands_the_disconnect_to_the_app(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[Message] = []
    server = FakeServer()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())
        await ok(send)
        server.disconnect.set()
        # The disconnect cancels the handler; shielded cleanup code can still read it.
        with trio.CancelScope(shield=True):
            got.append(await receive())

    await server.run(ContextMiddleware(app))
    assert [m["type"] for m in got] == ["http.request", "http.disconnect"]


async def test_middleware_answers_504_when_the_deadline_passes_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await trio.sleep(10)

    server = FakeServer([(b"grpc-timeout", b"1S")])
    start = trio.current_time()
    await server.run(ContextMiddleware(app))
    assert trio.current_time() - start == pytest.approx(1)
    assert server.sent[0]["status"] == 504


async def test_middleware_lets_app_errors_through_unwrapped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await FakeServer().run(ContextMiddleware(app))


async def test_middleware_passes_other_scopes_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        assert "trio_context" not in scope

    async def receive() -> Message:
        raise AssertionError("not called")

    async def send(message: Any) -> None:
        raise AssertionError("not called")

    await ContextMiddleware(app)({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]


def test_httpx_transport_rejects_unknown_header() -> None:
    with pytest.raises(ValueError, match="`header` must be"):
        httpx_transport(header="x-timeout")


# ---------------------------------------------------------------------------------------------
# Real parts on localhost: hypercorn (trio worker) and an httpx client

try:
    import httpx
    import hypercorn.trio  # noqa: F401  (serving() needs it)
except ImportError:  # the optional extras are not installed
    HAVE_HTTP = False
else:
    HAVE_HTTP = True
needs_http = pytest.mark.skipif(not HAVE_HTTP, reason="needs httpx and hypercorn")


@needs_http
async def test_deadline_arrives_over_http() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await ok(send, repr(tc.current().remaining()).encode())

    async with (
        serving(answering_lifespan(ContextMiddleware(app))) as url,
        httpx.AsyncClient(transport=httpx_transport()) as client,
    ):
        ctx = tc.with_timeout(tc.background(), 5)
        with ctx.scope():
            response = await client.get(url)
            sent_remaining = ctx.remaining()
    skew = sent_remaining - float(response.text)
    assert abs(skew) <= 0.05


@needs_http
async def test_ms_header_and_baggage_over_http() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        ctx = tc.current()
        await ok(send, f"{ctx.value('tenant')} {ctx.remaining():.1f}".encode())

    transport = httpx_transport(header="x-envoy-expected-rq-timeout-ms", baggage=["tenant"])
    async with (
        serving(answering_lifespan(ContextMiddleware(app, baggage=["tenant"]))) as url,
        httpx.AsyncClient(transport=transport) as client,
    ):
        ctx = tc.with_value(tc.with_timeout(tc.background(), 7), "tenant", "acme co")
        response = await client.get(url, extensions={"trio_context": ctx})
    assert response.text == "acme co 7.0"


@needs_http
async def test_client_disconnect_cancels_the_handler_quickly() -> None:
    handler_started = trio.Event()
    handler_done_at: list[float] = []
    handler_done = trio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        handler_started.set()
        ctx = tc.current()
        try:
            await trio.sleep_forever()
        finally:
            if ctx.done.is_set():
                handler_done_at.append(trio.current_time())
                handler_done.set()

    async with (
        serving(answering_lifespan(ContextMiddleware(app))) as url,
        httpx.AsyncClient(transport=httpx_transport()) as client,
    ):
        ctx = tc.with_cancel(tc.background())

        async def call() -> None:
            with pytest.raises(tc.ContextCancelled):
                with ctx.scope():
                    await client.get(url)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await handler_started.wait()
            cancelled_at = trio.current_time()
            ctx.cancel()
            with trio.fail_after(5):
                await handler_done.wait()
    assert handler_done_at[0] - cancelled_at <= 0.1


@needs_http
async def test_done_context_fails_before_sending() -> None:
    calls: list[object] = []

    async def handler(request: Any) -> Any:
        calls.append(request)
        return httpx.Response(200)

    transport = httpx_transport(httpx.MockTransport(handler))
    async with httpx.AsyncClient(transport=transport) as client:
        ctx = tc.with_cancel(tc.background())
        ctx.cancel()
        with pytest.raises(tc.ContextCancelled):
            await client.get("http://test/", extensions={"trio_context": ctx})
    assert calls == []


@needs_http
async def test_transport_sets_header_and_caps_timeouts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[Any] = []

    async def handler(request: Any) -> Any:
        seen.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(
        transport=httpx_transport(httpx.MockTransport(handler)), timeout=30
    ) as client:
        await client.get("http://test/")  # background(): no header
        ctx = tc.with_timeout(tc.background(), 2)
        with ctx.scope():
            await client.get("http://test/")
    assert "grpc-timeout" not in seen[0].headers
    assert seen[0].extensions["timeout"]["read"] == 30
    assert seen[1].headers["grpc-timeout"] == "2000000u"
    assert seen[1].extensions["timeout"] == dict.fromkeys(("connect", "read", "write", "pool"), 2)


@needs_http
async def test_deadline_interrupts_a_slow_response(autojump_clock: trio.testing.MockClock) -> None:
    async def handler(request: Any) -> Any:
        await trio.sleep(10)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx_transport(httpx.MockTransport(handler))) as c:
        ctx = tc.with_timeout(tc.background(), 1)
        start = trio.current_time()
        with pytest.raises(tc.DeadlineExceeded):
            await c.get("http://test/", extensions={"trio_context": ctx})
    assert trio.current_time() - start == pytest.approx(1)


def test_package_works_without_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "httpx", None)  # makes `import httpx` fail
    monkeypatch.delitem(sys.modules, "trio_context.propagation._httpx", raising=False)
    with pytest.raises(ImportError, match=r"pip install trio-context\[httpx\]"):
        tc.httpx_transport()
