"""The httpx transport (an optional extra): each request follows its context.

Rules for callers:

- Give httpx the transport: ``httpx.AsyncClient(transport=tc.httpx_transport())``.
  Each request then uses the context of the calling code (``tc.current()``, or
  ``extensions={"trio_context": ctx}`` on the request): it fails at once with ``ctx.err`` when
  that context is done, sends the remaining time as a header, caps httpx's timeouts to it, and
  is interrupted with ``ctx.err`` (not an httpx timeout) when the context ends mid-request.
- Values cross only when named on *both* sides (``baggage=("tenant",)``): the client sends the
  ``str`` value of those context keys as W3C ``baggage``; the middleware (``_asgi.py``) accepts
  only those entries, as ``str`` values under the same keys. Baggage that came *in* with the
  request being served is forwarded as it came (``forward_baggage``), so it crosses any
  number of hops.
- A server's answer that its context for the request ended (``ContextMiddleware``'s 503/504
  with the ``trio-context-cause`` header) raises the matching error here, with a
  :class:`~trio_context.RemoteCause` as its ``__cause__``: the caller learns why, typed.
- httpx is an optional extra (``pip install trio-context[httpx]``); it is imported only when
  :func:`httpx_transport` is called.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._asgi import GRPC_TIMEOUT_HEADER, TIMEOUT_MS_HEADER

if TYPE_CHECKING:
    import httpx

__all__ = ["httpx_transport"]


def httpx_transport(
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    header: str = GRPC_TIMEOUT_HEADER,
    baggage: Iterable[str] = (),
    forward_baggage: bool = True,
) -> httpx.AsyncBaseTransport:
    """Return an httpx transport that makes each request follow its context.

    Args:
        transport: the transport to wrap (default ``httpx.AsyncHTTPTransport()``).
        header: which deadline header to send: ``GRPC_TIMEOUT_HEADER`` (default) or
            ``TIMEOUT_MS_HEADER``. Nothing is sent when the context has no deadline.
        baggage: context keys whose ``str`` values travel as W3C ``baggage``.
        forward_baggage: send on the baggage that came in with the request being served
            (``ContextMiddleware`` keeps it in the request's context), under the entries of
            ``baggage``, which win. On by default, as W3C propagators do.

    The context is ``request.extensions["trio_context"]`` when set, else ``tc.current()``.

    Raises:
        ImportError: httpx is not installed (``pip install trio-context[httpx]``).
        ValueError: ``header`` is neither of the two supported names.
        At request time: ``ctx.err`` (a fresh :class:`ContextCancelled` or
        :class:`DeadlineExceeded`) when the context is or becomes done; the matching error,
        its ``__cause__`` a :class:`~trio_context.RemoteCause`, when the server's context for
        the request ended first (a 503/504 with the ``trio-context-cause`` header, as
        ``ContextMiddleware`` answers); ``ValueError`` from
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
    return ContextTransport(
        transport, header=header, baggage=tuple(baggage), forward_baggage=forward_baggage
    )
