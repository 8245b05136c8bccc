"""Task groups: ``open_group`` (errgroup-style nursery with limits and a stuck-task watchdog).

Modules: ``_group`` (the group and its rules), ``_open`` (``open_group``: the exit rules),
``_slots`` (the FIFO limit), ``_spawn`` (argument checks and task start), ``_stuck`` (the
watchdog's report), ``_errors`` (sorting a task's error into "real" or "caused by the cancel").
"""

from ._group import GroupStatistics, TaskGroup
from ._open import open_group
from ._spawn import check_afn, coroutine_of
from ._stuck import StuckTaskError

__all__ = [
    "GroupStatistics",
    "StuckTaskError",
    "TaskGroup",
    "check_afn",
    "coroutine_of",
    "open_group",
]
