"""Subprocesses under a context: ``run_process``, its result types and ``open_subreaper``.

Modules: ``_run`` (the public call), ``_results`` (its result, failure and handle types),
``_supervisor`` (watching one call's processes and stopping them: TERM, grace, KILL),
``_descendants`` (one call's process tree: found, signalled, measured, reaped), ``_subreaper``
(orphans come back to this process), ``_procfs`` (reads of ``/proc``), ``_memory`` (the cause
of a memory stop), ``_pgroup`` (output tails, group signals, start errors).
"""

from ._memory import MemoryExceeded
from ._results import ProcessFailed, ProcessHandle, ProcessResult
from ._run import run_process
from ._subreaper import open_subreaper
from ._supervisor import Outcome

__all__ = [
    "MemoryExceeded",
    "Outcome",
    "ProcessFailed",
    "ProcessHandle",
    "ProcessResult",
    "open_subreaper",
    "run_process",
]
