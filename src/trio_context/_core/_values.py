"""The values a context carries (``with_value``): cheap to derive and to look up at any depth.

A context's values are a *view*: ``(values, pos)`` in its ``_values`` and ``_vpos`` slots.

- Small maps (fewer than ``SMALL`` keys, the usual case: Go advises few) are a plain ``dict``,
  copied by each ``with_value`` (a bounded copy) and read with one ``dict.get``.
- Larger maps are a :class:`Run`: the values set along one linear run of ``with_value``
  derivations, appended in place, so deriving costs O(1) memory whatever the depth (a copy
  per level made a chain of n distinct keys O(n²)). ``pos`` is the position of the context's
  last value in the run. The run keeps the view of its *tip* (its last position) as a dict,
  so a lookup there is a dict get; a lookup at an earlier position finds the latest value
  set at or before it (an index built on first need, then a bisect). Deriving from a
  context that is not the tip starts a new run on top of its view; after ``MAX_HOPS`` runs
  stacked that way, the new run starts from a flattened copy instead, so lookups never walk
  more than ``MAX_HOPS`` runs.

Known cost: a run lives as long as any context of it, and keeps the values set along it.

Appends take the core's lock; lookups never do (see ``Run.get`` for why they are safe).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable
from typing import Any, Final, TypeAlias

from ._common import _lock

SMALL: Final = 16
MAX_HOPS: Final = 8

_MISSING: Final[Any] = object()

Values: TypeAlias = "dict[Hashable, Any] | Run"


class Run:
    """The values set along one linear run of ``with_value`` derivations (see the module)."""

    __slots__ = ("base", "base_pos", "flat", "hops", "keys", "tip", "vals", "where")

    def __init__(self, base: Values, base_pos: int, hops: int, key: Hashable, value: Any) -> None:
        self.base = base  # the view this run extends
        self.base_pos = base_pos
        self.hops = hops  # runs below this one before a dict
        self.keys: list[Hashable] = [key]  # keys[i], vals[i]: what position i set
        self.vals: list[Any] = [value]
        self.where: dict[Hashable, list[int]] | None = None  # key -> positions (on need)
        self.tip = 0
        # The view at the tip: this run's values, over a copy of a small base (a bounded copy
        # that saves a second lookup for the keys set before the run).
        self.flat: dict[Hashable, Any] = (
            {**base, key: value} if isinstance(base, dict) and len(base) <= SMALL else {key: value}
        )

    def get(self, key: Hashable, default: Any, pos: int) -> Any:
        """The value of ``key`` at position ``pos``, else ``default``. Lock-free: an append
        moves ``tip`` *before* it writes ``flat``, and ``flat`` is read here before ``tip``,
        so a read that saw a newer write also sees that ``pos`` is no longer the tip."""
        run = self
        while True:
            value = run.flat.get(key, _MISSING)
            if run.tip != pos:
                value = run._before(key, pos)
            if value is not _MISSING:
                return value
            base, pos = run.base, run.base_pos
            if isinstance(base, dict):
                return base.get(key, default)
            run = base

    def _before(self, key: Hashable, pos: int) -> Any:
        """The latest value of ``key`` set at a position up to ``pos``, else ``_MISSING``."""
        where = self.where
        if where is None:
            where = self._index()
        positions = where.get(key)
        if positions is None:
            return _MISSING
        i = bisect_right(positions, pos) - 1
        return self.vals[positions[i]] if i >= 0 else _MISSING

    def _index(self) -> dict[Hashable, list[int]]:
        with _lock:
            if self.where is None:
                where: dict[Hashable, list[int]] = {}
                for i, key in enumerate(self.keys):
                    where.setdefault(key, []).append(i)
                self.where = where
            return self.where


def derive(values: Values, pos: int, key: Hashable, value: Any) -> tuple[Values, int]:
    """The view of a ``with_value(key, value)`` child of the view ``(values, pos)``."""
    if isinstance(values, dict):
        if len(values) < SMALL:
            fresh = values.copy()
            fresh[key] = value
            return fresh, 0
        return Run(values, 0, 0, key, value), 0
    run: Run = values
    with _lock:
        if run.tip == pos:  # the tip: append in place
            i = pos + 1
            run.keys.append(key)
            run.vals.append(value)
            if run.where is not None:
                run.where.setdefault(key, []).append(i)
            run.tip = i  # before flat: see Run.get
            run.flat[key] = value
            return run, i
    if run.hops + 1 >= MAX_HOPS:
        return Run(flatten(run, pos), 0, 0, key, value), 0
    return Run(run, pos, run.hops + 1, key, value), 0


def flatten(values: Values, pos: int) -> dict[Hashable, Any]:
    """The view ``(values, pos)`` as one dict (a copy)."""
    stack: list[tuple[Run, int]] = []
    while not isinstance(values, dict):
        run: Run = values
        stack.append((run, pos))
        values, pos = run.base, run.base_pos
    flat: dict[Hashable, Any] = dict(values)
    for run, pos in reversed(stack):
        flat.update(zip(run.keys[: pos + 1], run.vals[: pos + 1], strict=True))
    return flat
