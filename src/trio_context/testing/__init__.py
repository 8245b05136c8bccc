"""Test support for code that takes a context: clock helpers, cancelling from a foreign thread,
a fresh context per Hypothesis example, wall-clock limits, and the leak check behind the pytest
plugin. Nothing here imports pytest, so any test runner can use it; the plugin
(``trio_context.pytest_plugin``) only wires it into pytest.

- :func:`advance_to_deadline`: jump a ``MockClock`` to a context's deadline and let tasks react.
- :func:`cancel_from_thread`: cancel from a real thread trio did not start, and wait for it.
- :func:`fresh_context`: a new bound context for one block (the body of a ``@given`` test).
- :class:`LeakWatch`: what a test left running (tasks, bound scopes, threads, processes), each
  reported as a :class:`Leak` with where it was created and where it is now.
- :class:`Watchdog`, :class:`TestGuard`, :class:`PhaseLimits`: wall-clock limits per test
  phase, measured in real time (safe under ``MockClock``); :class:`TimeLimitExceeded` is the
  cause a test's context gets when one passes.
"""

from .._meta import fixup_module_metadata
from ._binding import ReportedFailure, fresh_context, new_test_context, run_bound
from ._guard import TestGuard
from ._helpers import CancelFromThread, advance_to_deadline, cancel_from_thread
from ._leakcheck import LEAK_KINDS, LeakWatch, all_tasks, marker_kinds, tasks_under
from ._leakreport import Leak
from ._limits import (
    PHASES,
    PhaseLimits,
    TimeLimitExceeded,
    Watchdog,
    check_limit,
    marker_limits,
    parse_limits,
)
from ._reports import interrupted_report, leak_report

__all__ = [
    "LEAK_KINDS",
    "PHASES",
    "CancelFromThread",
    "Leak",
    "LeakWatch",
    "PhaseLimits",
    "ReportedFailure",
    "TestGuard",
    "TimeLimitExceeded",
    "Watchdog",
    "advance_to_deadline",
    "all_tasks",
    "cancel_from_thread",
    "check_limit",
    "fresh_context",
    "interrupted_report",
    "leak_report",
    "marker_kinds",
    "marker_limits",
    "new_test_context",
    "parse_limits",
    "run_bound",
    "tasks_under",
]

fixup_module_metadata(__name__, globals())
del fixup_module_metadata
