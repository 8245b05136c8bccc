"""Go-style contexts for trio: a deadline, values, a cancel cause and a ``done`` event that
travel with the work, so that nothing it started outlives it.

Start from :func:`background`, derive with :func:`with_cancel`, :func:`with_timeout`,
:func:`with_deadline`, :func:`with_value` and :func:`without_cancel`, and run work inside
``with ctx.scope():``. See the README for the rules and the toolkit.
"""

from ._context import CancelContext as CancelContext
from ._context import Context as Context
from ._context import Done as Done
from ._context import after_func as after_func
from ._context import background as background
from ._context import cause as cause
from ._context import current as current
from ._context import todo as todo
from ._context import with_cancel as with_cancel
from ._context import with_deadline as with_deadline
from ._context import with_timeout as with_timeout
from ._context import with_value as with_value
from ._context import without_cancel as without_cancel
from ._errors import ContextCancelled as ContextCancelled
from ._errors import ContextError as ContextError
from ._errors import DeadlineExceeded as DeadlineExceeded
from ._group import GroupStatistics as GroupStatistics
from ._group import TaskGroup as TaskGroup
from ._group import open_group as open_group
from ._http import GRPC_TIMEOUT_HEADER as GRPC_TIMEOUT_HEADER
from ._http import TIMEOUT_MS_HEADER as TIMEOUT_MS_HEADER
from ._http import ContextMiddleware as ContextMiddleware
from ._http import httpx_transport as httpx_transport
from ._idle import IdleContext as IdleContext
from ._idle import IdleTimeout as IdleTimeout
from ._idle import with_idle_timeout as with_idle_timeout
from ._process import ProcessFailed as ProcessFailed
from ._process import ProcessHandle as ProcessHandle
from ._process import ProcessResult as ProcessResult
from ._process import run_process as run_process
from ._propagation import DEADLINE_ENV_VAR as DEADLINE_ENV_VAR
from ._propagation import encode_baggage as encode_baggage
from ._propagation import encode_grpc_timeout as encode_grpc_timeout
from ._propagation import encode_timeout_ms as encode_timeout_ms
from ._propagation import environ_for as environ_for
from ._propagation import from_environ as from_environ
from ._propagation import parse_baggage as parse_baggage
from ._propagation import parse_grpc_timeout as parse_grpc_timeout
from ._propagation import parse_timeout_ms as parse_timeout_ms
from ._race import race as race
from ._signals import SignalReceived as SignalReceived
from ._signals import open_signal_context as open_signal_context
from ._stops import cleanup as cleanup
from ._stops import hard_context as hard_context
from ._stops import with_grace as with_grace
from ._stuck import StuckTaskError as StuckTaskError
from ._threads import to_thread as to_thread
from ._tree import dump as dump
from ._tree import format_tree as format_tree
