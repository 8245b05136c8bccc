"""``ContextMiddleware`` never breaks the ASGI/HTTP protocol, whatever the deadline header says.

First against a fake server on the autojump clock (exact, instant), then against a real hypercorn
server (trio worker) on localhost driven by httpx. The real-server helper calls
``hypercorn.trio.serve(tc.ContextMiddleware(app), config)`` with no cast: type-checking this
module is the check that the middleware is an ASGI app for hypercorn's (and asgiref's) types.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.lowlevel
import trio.testing

import trio_context as tc

httpx = pytest.importorskip("httpx")
hypercorn_config = pytest.importorskip("hypercorn.config")
hypercorn_trio = pytest.importorskip("hypercorn.trio")

if TYPE_CHECKING:
    from asgiref.typing import ASGI3Application
    from hypercorn.typing import ASGIFramework

Message = dict[str, Any]
START: Message = {"type": "http.response.start", "status": 200, "headers": []}


def body(data: bytes, *, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


class SlowServer:
    """A fake ASGI server whose ``send`` takes ``send_seconds`` (a slow network)."""

    def __init__(self, timeout: bytes, send_seconds: float = 0) -> None:
        self.headers = [(b"grpc-timeout", timeout)]
        self.send_seconds = send_seconds
        self.sent: list[Message] = []
        self.cut = 0  # sends interrupted halfway: what breaks a real server

    async def receive(self) -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Message) -> None:
        try:
            await trio.sleep(self.send_seconds)
        except trio.Cancelled:
            self.cut += 1
            raise
        self.sent.append(message)

    async def run(self, app: Any) -> None:
        scope = {"type": "http", "method": "GET", "path": "/", "headers": self.headers}
        await tc.ContextMiddleware(app)(scope, self.receive, self.send)


async def test_the_deadline_inside_the_servers_send_never_cuts_a_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)  # the deadline passes while the server sends the headers
        await send(body(b"never sent", more=True))
        await trio.sleep_forever()

    server = SlowServer(b"1S", send_seconds=2)
    await server.run(app)
    assert server.cut == 0
    assert [m["type"] for m in server.sent] == ["http.response.start"] * 1 + [
        "http.response.body"
    ] * 2
    assert server.sent[-1] == body(b"")  # closed cleanly: an empty last chunk


async def test_a_body_chunk_to_a_client_that_stopped_reading_gets_the_grace_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"x", more=True))

    server = SlowServer(b"1S", send_seconds=0)
    await server.run(app)  # no deadline trouble: the app finished, the body was left open
    assert server.sent[-1] == body(b"")


async def test_before_the_response_a_deadline_gives_504_json_with_the_cause(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await trio.sleep(10)

    server = SlowServer(b"100m")
    await server.run(app)
    assert server.sent[0]["status"] == 504
    assert dict(server.sent[0]["headers"])[b"content-type"] == b"application/json"
    payload = json.loads(server.sent[1]["body"])
    assert payload["error"] == "deadline exceeded"
    assert payload["cause"]["type"] == "DeadlineExceeded"


async def test_an_app_that_raises_its_own_context_error_gets_504_not_500(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await tc.current().done.wait()
        tc.current().check()  # raises DeadlineExceeded outside any scope

    server = SlowServer(b"1S")
    await server.run(app)
    assert server.sent[0]["status"] == 504


async def test_an_error_after_the_headers_is_logged_and_the_body_closed(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"half", more=True))
        raise KeyError("boom")

    with caplog.at_level(logging.ERROR, logger="trio_context"):
        await SlowServer(b"9S").run(app)  # nothing raised to the server
    assert "failed after its response started" in caplog.text and "boom" in caplog.text


async def test_a_cancelled_parent_gives_503(autojump_clock: trio.testing.MockClock) -> None:
    parent = tc.with_cancel(tc.background())

    async def app(scope: Any, receive: Any, send: Any) -> None:
        parent.cancel(RuntimeError("shutting down"))
        await trio.sleep(1)

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Message = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await tc.ContextMiddleware(app, parent=parent)(scope, receive, send)
    assert sent[0]["status"] == 503
    assert json.loads(sent[1]["body"])["cause"] == {
        "type": "RuntimeError",
        "message": "shutting down",
    }


def test_send_grace_is_checked() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    with pytest.raises(ValueError, match="`send_grace`"):
        tc.ContextMiddleware(app, send_grace=-1)


# -- a real server -------------------------------------------------------------------------------


async def typed_app(scope: Any, receive: Any, send: Any) -> None:
    """Three endpoints: ``/json`` answers at once, ``/slow`` after 10 s, ``/stream`` sends one
    chunk and then waits forever, ``/fail`` fails after its headers."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path == "/slow":
        await trio.sleep(10)
    await send({**START, "headers": [(b"content-type", b"text/plain")]})
    if path == "/stream":
        await send(body(b"first chunk\n", more=True))
        await trio.sleep_forever()
    if path == "/fail":
        await send(body(b"half", more=True))
        raise RuntimeError("the app broke mid-body")
    for _ in range(3):
        await trio.lowlevel.checkpoint()
        await send(body(b"part\n", more=True))
    await send(body(b"end\n"))


@asynccontextmanager
async def served(app: Any) -> AsyncGenerator[Any]:
    """``app`` behind ContextMiddleware on hypercorn, localhost, an ephemeral port; a client."""
    config = hypercorn_config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1
    stop = trio.Event()
    middleware = tc.ContextMiddleware(app)
    async with trio.open_nursery() as nursery:

        async def serve(*, task_status: trio.TaskStatus[list[str]]) -> None:
            await hypercorn_trio.serve(
                middleware, config, shutdown_trigger=stop.wait, task_status=task_status
            )

        binds: list[str] = await nursery.start(serve)
        try:
            async with httpx.AsyncClient(base_url=binds[0], timeout=10) as client:
                yield client
        finally:
            stop.set()


def as_typed_asgi(app: Any) -> None:
    """Static only: the middleware is an ASGI 3 app for asgiref and hypercorn."""
    middleware = tc.ContextMiddleware(app)
    if TYPE_CHECKING:
        asgiref_app: ASGI3Application = middleware
        hypercorn_app: ASGIFramework = middleware
        del asgiref_app, hypercorn_app


async def test_real_server_deadline_before_the_response_is_a_504_json() -> None:
    async with served(typed_app) as client:
        with trio.fail_after(5):
            response = await client.get("/slow", headers={"grpc-timeout": "50m"})
        assert response.status_code == 504
        assert response.json()["error"] == "deadline exceeded"
        assert (await client.get("/json")).text == "part\n" * 3 + "end\n"


async def test_real_server_deadline_mid_body_ends_the_body_cleanly() -> None:
    async with served(typed_app) as client:
        with trio.fail_after(5):
            response = await client.get("/stream", headers={"grpc-timeout": "100m"})
        assert response.status_code == 200
        assert response.text == "first chunk\n"  # read to the end without a protocol error
        failed = await client.get("/fail")
        assert (failed.status_code, failed.text) == (200, "half")
        assert (await client.get("/json")).status_code == 200


@pytest.mark.parametrize(
    "header",
    [("grpc-timeout", "1n"), ("grpc-timeout", "100u"), ("x-envoy-expected-rq-timeout-ms", "0")],
)
async def test_real_server_survives_30_nearly_spent_deadlines_on_every_path(
    header: tuple[str, str],
) -> None:
    async with served(typed_app) as client:
        with trio.fail_after(20):
            for i in range(30):
                path = ("/json", "/slow", "/stream", "/fail")[i % 4]
                response = await client.get(path, headers=dict([header]))
                assert response.status_code in (200, 504), (path, response.status_code)
                if response.status_code == 504:
                    assert response.json()["error"] == "deadline exceeded"
            ok = await client.get("/json")
        assert ok.status_code == 200 and ok.text.endswith("end\n")


async def test_stack_dumps_see_the_app_through_the_middleware() -> None:
    app_sleeping = trio.Event()

    async def slow_handler(scope: Any, receive: Any, send: Any) -> None:
        app_sleeping.set()
        await trio.sleep_forever()

    server = SlowServer(b"9S")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run, slow_handler)
        await app_sleeping.wait()
        await trio.testing.wait_all_tasks_blocked()
        (task,) = nursery.child_tasks
        names = [frame.f_code.co_name for frame, _ in task.iter_await_frames()]
        assert "slow_handler" in names and names.index("slow_handler") > names.index("__call__")
        nursery.cancel_scope.cancel()


async def test_a_disconnect_during_a_slow_handler_is_seen_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The disconnect watcher starts when the app first waits on something else than the
    server (an app that answers at once never needs one)."""
    seen: list[tc.Context] = []
    gone = trio.Event()

    async def receive() -> Message:
        if not seen:
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent to a client that left")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(tc.current())
        gone.set()
        await trio.sleep(100)

    scope: Message = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await tc.ContextMiddleware(app)(scope, receive, send)
    assert trio.current_time() == 0
    assert isinstance(seen[0].cause, ConnectionAbortedError)
