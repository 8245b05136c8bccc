"""The httpx transport behind :func:`trio_context.httpx_transport` (imports httpx).

Kept apart from ``_http.py`` so that importing ``trio_context`` never imports httpx.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from types import TracebackType
from typing import cast

import httpx

from .._core import Context, current
from ._cause import CAUSE_HEADER, RemoteCause
from ._codecs import INCOMING_BAGGAGE, encode_baggage, encode_grpc_timeout, encode_timeout_ms

_TIMEOUT_KEYS = ("connect", "read", "write", "pool")


class ContextTransport(httpx.AsyncBaseTransport):
    """Wraps a transport; each request follows its context (see ``httpx_transport``)."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None,
        *,
        header: str,
        baggage: tuple[str, ...],
        forward_baggage: bool,
    ) -> None:
        self._transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._forward = forward_baggage
        self._header = header
        self._encode = encode_grpc_timeout if header == "grpc-timeout" else encode_timeout_ms
        self._baggage = baggage

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        ctx = request.extensions.get("trio_context")
        if not isinstance(ctx, Context):
            ctx = current()
        ctx.check()
        self._prepare(request, ctx)
        response: httpx.Response | None = None
        try:
            with ctx.scope():
                response = await self._transport.handle_async_request(request)
        except httpx.TimeoutException:
            # httpx's timeout (capped to the deadline above) may fire just before the scope's:
            # report the context's error, as the scope would have.
            ctx.check()
            raise
        assert response is not None  # scope() raises ctx.err rather than swallow it
        remote = _remote_cause(response)
        if remote is not None:  # the server's context for this request ended: say why
            await response.aclose()
            raise remote.error()
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_ContextStream(stream, ctx),
            extensions=response.extensions,
        )

    def _prepare(self, request: httpx.Request, ctx: Context) -> None:
        remaining = ctx.remaining()
        if not math.isinf(remaining):
            request.headers[self._header] = self._encode(remaining)
            timeouts: dict[str, float | None] = dict(request.extensions.get("timeout", {}))
            for key in _TIMEOUT_KEYS:
                current_value = timeouts.get(key)
                timeouts[key] = (
                    remaining if current_value is None else min(current_value, remaining)
                )
            request.extensions["timeout"] = timeouts
        incoming: object = ctx.value(INCOMING_BAGGAGE) if self._forward else None
        entries: dict[str, str] = {}
        if isinstance(incoming, dict):
            entries.update(cast("dict[str, str]", incoming))
        for key in self._baggage:
            value = ctx.value(key)
            if isinstance(value, str):
                entries[key] = value
        if entries:
            encoded = encode_baggage(entries)
            existing = request.headers.get("baggage")
            request.headers["baggage"] = f"{existing},{encoded}" if existing else encoded

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> ContextTransport:
        await self._transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._transport.__aexit__(exc_type, exc_value, traceback)


def _remote_cause(response: httpx.Response) -> RemoteCause | None:
    """The cause a ``ContextMiddleware`` sent with its 503/504 answer, if any (a malformed
    header is no cause: the response is returned as it is)."""
    value = response.headers.get(CAUSE_HEADER)
    if value is None or response.status_code not in (503, 504):
        return None
    try:
        return RemoteCause.from_header(value)
    except ValueError:
        return None


class _ContextStream(httpx.AsyncByteStream):
    """A response body whose every read runs in the request context's scope."""

    def __init__(self, stream: httpx.AsyncByteStream, ctx: Context) -> None:
        self._stream = stream
        self._ctx = ctx

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._stream.__aiter__()
        while True:
            # One scope per read, none across the yield (a scope must not span a yield).
            chunk: bytes | None = None
            try:
                with self._ctx.scope():
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except httpx.TimeoutException:
                self._ctx.check()
                raise
            assert chunk is not None  # scope() raises ctx.err rather than swallow it
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()
