"""Subprocesses under a context: ``run_process`` and its result types.

Modules: ``_run`` (the public call and its result types), ``_supervisor`` (watching a process
group and stopping it: TERM, grace, KILL), ``_pgroup`` (process-group signals, liveness and
output tails).
"""

from ._run import ProcessFailed, ProcessHandle, ProcessResult, run_process

__all__ = ["ProcessFailed", "ProcessHandle", "ProcessResult", "run_process"]
