"""Memory budgets for process trees: the cause of a memory stop and its sizes.

Nothing here is public but :class:`MemoryExceeded` (exported as ``tc.MemoryExceeded``). The
sampling itself is :meth:`~._descendants.Tree.refresh` (``/proc/<pid>/stat`` of the tree's
processes) called by the supervisor every ``rss_interval`` seconds.
"""

from __future__ import annotations

from typing import final

__all__ = ["MemoryExceeded", "size_text"]


def size_text(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


@final
class MemoryExceeded(Exception):
    """The cause of a ``run_process(..., max_rss=...)`` stop: the process tree's resident
    memory (``rss``, in bytes, summed over the leader and every tracked descendant) passed
    ``limit`` (bytes). Copies and pickles with both figures::

        if result.outcome == "memory":
            assert isinstance(result.cause, tc.MemoryExceeded)
            print(f"used {result.cause.rss} bytes, allowed {result.cause.limit}")
    """

    rss: int
    limit: int

    def __init__(self, rss: int, limit: int) -> None:
        used, allowed = size_text(rss), size_text(limit)
        super().__init__(f"the process tree's resident memory ({used}) passed max_rss ({allowed})")
        self.rss = rss
        self.limit = limit

    def __reduce__(self) -> tuple[type[MemoryExceeded], tuple[int, int]]:
        return type(self), (self.rss, self.limit)
