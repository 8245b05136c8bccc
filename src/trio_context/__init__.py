"""Go-style contexts for trio: a deadline, values, a cancel cause and a ``done`` event that
travel with the work, so that nothing it started outlives it.

Start from :func:`background`, derive with :func:`with_cancel`, :func:`with_timeout`,
:func:`with_deadline`, :func:`with_value` and :func:`without_cancel`, and run work inside
``with ctx.scope():``. The rules for callers are in ``trio_context._core._constructors``'s
docstring and the documentation.

The layers, each importing only those below it: the core (contexts, scopes, deadlines,
after-funcs, idle contexts), :mod:`trio_context.propagation` (wire codecs, HTTP), the toolkit
(groups, race, threads, processes, stops, signals, the tree dump), :mod:`trio_context.testing`
and the pytest plugin.

``import trio_context`` imports trio and the core only; every other layer is imported the first
time one of its names is used (``tc.open_group``, ``from trio_context import run_process``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._core import CancelContext as CancelContext
from ._core import Context as Context
from ._core import ContextCancelled as ContextCancelled
from ._core import ContextError as ContextError
from ._core import DeadlineExceeded as DeadlineExceeded
from ._core import Done as Done
from ._core import IdleContext as IdleContext
from ._core import IdleTimeout as IdleTimeout
from ._core import after_func as after_func
from ._core import background as background
from ._core import cause as cause
from ._core import current as current
from ._core import todo as todo
from ._core import with_cancel as with_cancel
from ._core import with_deadline as with_deadline
from ._core import with_idle_timeout as with_idle_timeout
from ._core import with_timeout as with_timeout
from ._core import with_value as with_value
from ._core import without_cancel as without_cancel
from ._meta import fixup_module_metadata

if TYPE_CHECKING:  # the static view: every name, re-exported (pyright --verifytypes reads it)
    from . import propagation as propagation
    from ._group import GroupStatistics as GroupStatistics
    from ._group import StuckTaskError as StuckTaskError
    from ._group import TaskGroup as TaskGroup
    from ._group import open_group as open_group
    from ._process import MemoryExceeded as MemoryExceeded
    from ._process import Outcome as Outcome
    from ._process import ProcessFailed as ProcessFailed
    from ._process import ProcessHandle as ProcessHandle
    from ._process import ProcessResult as ProcessResult
    from ._process import open_subreaper as open_subreaper
    from ._process import run_process as run_process
    from ._race import race as race
    from ._signals import SignalReceived as SignalReceived
    from ._signals import open_signal_context as open_signal_context
    from ._stops import cleanup as cleanup
    from ._stops import grace_left as grace_left
    from ._stops import graceful as graceful
    from ._stops import hard_context as hard_context
    from ._stops import with_grace as with_grace
    from ._threads import to_thread as to_thread
    from ._tree import dump as dump
    from ._tree import format_tree as format_tree
    from .propagation import CANCEL_ACK_FD_ENV_VAR as CANCEL_ACK_FD_ENV_VAR
    from .propagation import CANCEL_FD_ENV_VAR as CANCEL_FD_ENV_VAR
    from .propagation import CAUSE_HEADER as CAUSE_HEADER
    from .propagation import DEADLINE_ENV_VAR as DEADLINE_ENV_VAR
    from .propagation import GRPC_TIMEOUT_HEADER as GRPC_TIMEOUT_HEADER
    from .propagation import TIMEOUT_MS_HEADER as TIMEOUT_MS_HEADER
    from .propagation import ContextMiddleware as ContextMiddleware
    from .propagation import RemoteCause as RemoteCause
    from .propagation import encode_baggage as encode_baggage
    from .propagation import encode_grpc_timeout as encode_grpc_timeout
    from .propagation import encode_timeout_ms as encode_timeout_ms
    from .propagation import environ_for as environ_for
    from .propagation import from_environ as from_environ
    from .propagation import httpx_transport as httpx_transport
    from .propagation import parse_baggage as parse_baggage
    from .propagation import parse_grpc_timeout as parse_grpc_timeout
    from .propagation import parse_timeout_ms as parse_timeout_ms

# The rest of the public names, by the module that defines them; imported on first use.
_LAZY: dict[str, str] = {
    "propagation": ".",
    "GroupStatistics": "._group",
    "StuckTaskError": "._group",
    "TaskGroup": "._group",
    "open_group": "._group",
    "MemoryExceeded": "._process",
    "ProcessFailed": "._process",
    "ProcessHandle": "._process",
    "Outcome": "._process",
    "ProcessResult": "._process",
    "open_subreaper": "._process",
    "run_process": "._process",
    "race": "._race",
    "SignalReceived": "._signals",
    "open_signal_context": "._signals",
    "cleanup": "._stops",
    "grace_left": "._stops",
    "graceful": "._stops",
    "hard_context": "._stops",
    "with_grace": "._stops",
    "to_thread": "._threads",
    "dump": "._tree",
    "format_tree": "._tree",
    "CANCEL_ACK_FD_ENV_VAR": ".propagation",
    "CANCEL_FD_ENV_VAR": ".propagation",
    "CAUSE_HEADER": ".propagation",
    "DEADLINE_ENV_VAR": ".propagation",
    "GRPC_TIMEOUT_HEADER": ".propagation",
    "TIMEOUT_MS_HEADER": ".propagation",
    "ContextMiddleware": ".propagation",
    "RemoteCause": ".propagation",
    "encode_baggage": ".propagation",
    "encode_grpc_timeout": ".propagation",
    "encode_timeout_ms": ".propagation",
    "environ_for": ".propagation",
    "from_environ": ".propagation",
    "httpx_transport": ".propagation",
    "parse_baggage": ".propagation",
    "parse_grpc_timeout": ".propagation",
    "parse_timeout_ms": ".propagation",
}


if not TYPE_CHECKING:  # hidden from type checkers: they see the names above, and a typo
    # such as ``tc.with_timout`` stays an error for them

    def __getattr__(name: str) -> object:
        """Import the layer that defines ``name`` (once) and return the name (PEP 562)."""
        where = _LAZY.get(name)
        if where is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        module = importlib.import_module(where, __name__)
        if name == "propagation":
            globals()[name] = module
            return module
        names = {
            n: getattr(module, n) for n, m in _LAZY.items() if m == where and n != "propagation"
        }
        fixup_module_metadata(__name__, names)
        globals().update(names)
        return names[name]

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY})


# The public submodules fix their own names first; these are the rest.
fixup_module_metadata(__name__, globals())
