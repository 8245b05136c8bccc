"""Carry a context across process and network boundaries (``trio_context.propagation``).

- Child processes: :func:`environ_for` / :func:`from_environ` and :data:`DEADLINE_ENV_VAR`.
- Wire codecs: :func:`encode_grpc_timeout` / :func:`parse_grpc_timeout`,
  :func:`encode_timeout_ms` / :func:`parse_timeout_ms`, :func:`encode_baggage` /
  :func:`parse_baggage`.
- HTTP: :class:`ContextMiddleware` (ASGI, no dependencies) and :func:`httpx_transport`
  (needs the ``httpx`` extra, imported only when called).

Every name here is also exported by ``trio_context`` itself.
"""

from .._meta import fixup_module_metadata
from ._codecs import (
    DEADLINE_ENV_VAR,
    encode_baggage,
    encode_grpc_timeout,
    encode_timeout_ms,
    environ_for,
    from_environ,
    parse_baggage,
    parse_grpc_timeout,
    parse_timeout_ms,
)
from ._http import GRPC_TIMEOUT_HEADER, TIMEOUT_MS_HEADER, ContextMiddleware, httpx_transport

__all__ = [
    "DEADLINE_ENV_VAR",
    "GRPC_TIMEOUT_HEADER",
    "TIMEOUT_MS_HEADER",
    "ContextMiddleware",
    "encode_baggage",
    "encode_grpc_timeout",
    "encode_timeout_ms",
    "environ_for",
    "from_environ",
    "httpx_transport",
    "parse_baggage",
    "parse_grpc_timeout",
    "parse_timeout_ms",
]

fixup_module_metadata(__name__, globals())
del fixup_module_metadata
