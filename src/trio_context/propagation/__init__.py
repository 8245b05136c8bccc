"""Carry a context across process and network boundaries (``trio_context.propagation``).

- Child processes: :func:`environ_for` / :func:`from_environ` and :data:`DEADLINE_ENV_VAR`
  (the deadline); :class:`CancelChannel` and :data:`CANCEL_FD_ENV_VAR` (why to stop, before
  any signal); :class:`RemoteCause` (a cause from the other side of a hop).
- Wire codecs: :func:`encode_grpc_timeout` / :func:`parse_grpc_timeout`,
  :func:`encode_timeout_ms` / :func:`parse_timeout_ms`, :func:`encode_baggage` /
  :func:`parse_baggage`.
- HTTP: :class:`ContextMiddleware` (ASGI, no dependencies) and :func:`httpx_transport`
  (needs the ``httpx`` extra, imported only when called).

Every name here is also exported by ``trio_context`` itself.
"""

from .._meta import fixup_module_metadata
from ._asgi import GRPC_TIMEOUT_HEADER, TIMEOUT_MS_HEADER, ContextMiddleware
from ._cause import CAUSE_HEADER, RemoteCause
from ._channel import CANCEL_ACK_FD_ENV_VAR, CANCEL_FD_ENV_VAR, CancelChannel
from ._codecs import (
    encode_baggage,
    encode_grpc_timeout,
    encode_timeout_ms,
    parse_baggage,
    parse_grpc_timeout,
    parse_timeout_ms,
)
from ._environ import DEADLINE_ENV_VAR, environ_for, from_environ
from ._http import httpx_transport

__all__ = [
    "CANCEL_ACK_FD_ENV_VAR",
    "CANCEL_FD_ENV_VAR",
    "CAUSE_HEADER",
    "DEADLINE_ENV_VAR",
    "GRPC_TIMEOUT_HEADER",
    "TIMEOUT_MS_HEADER",
    "CancelChannel",
    "ContextMiddleware",
    "RemoteCause",
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
