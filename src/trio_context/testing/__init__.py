"""Test support for code that takes a context: clock helpers, cancelling from a foreign thread,
and the leak check behind the pytest plugin. Nothing here imports pytest, so any test runner
can use it; the plugin (``trio_context.pytest_plugin``) only wires it into pytest.

- :func:`advance_to_deadline`: jump a ``MockClock`` to a context's deadline and let tasks react.
- :func:`cancel_from_thread`: cancel from a real thread trio did not start, and wait for it.
- :class:`LeakWatch`: what a test left running (tasks, bound scopes, threads, processes), each
  reported as a :class:`Leak` with where it was created and where it is now.
"""

from .._meta import fixup_module_metadata
from ._helpers import CancelFromThread, advance_to_deadline, cancel_from_thread
from ._leakcheck import LEAK_KINDS, LeakWatch, tasks_under
from ._leakreport import Leak
from ._reports import interrupted_report, leak_report

__all__ = [
    "LEAK_KINDS",
    "CancelFromThread",
    "Leak",
    "LeakWatch",
    "advance_to_deadline",
    "cancel_from_thread",
    "interrupted_report",
    "leak_report",
    "tasks_under",
]

fixup_module_metadata(__name__, globals())
del fixup_module_metadata
