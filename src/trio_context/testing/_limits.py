"""Wall-clock limits for tests, safe under ``MockClock`` and ``autojump_clock``.

A deadline on trio's clock is virtual under a ``MockClock``: with ``autojump_clock`` it fires
at once in a test that sleeps long in virtual time, and with ``mock_clock`` it never fires on
its own. A *limit* is measured in real seconds (``time.monotonic``) by one daemon thread, the
:class:`Watchdog`, so it means the same under every clock. Rules for callers:

- :class:`PhaseLimits` holds one limit per test phase (``setup``, ``call``, ``teardown``);
  :func:`parse_limits` reads ``"30"`` (each phase) or ``"call=30 setup=5"``.
- :class:`Watchdog` runs a callback, in its own thread, when a phase it was armed for outlives
  its limit. Arming and disarming cost a lock and a notify: no thread per test.
- :class:`TimeLimitExceeded` is the cause given to the test's context when its limit passes,
  so ``ctx.explain()`` says which phase, how long, and who set the limit.

Nothing here imports pytest.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final

import attrs

from .._core import logger

__all__ = [
    "PHASES",
    "PhaseLimits",
    "TimeLimitExceeded",
    "Watchdog",
    "check_limit",
    "marker_limits",
    "parse_limits",
]

PHASES: Final = ("setup", "call", "teardown")

WATCHDOG_THREAD_NAME: Final = "trio_context wall-clock limit"


class TimeLimitExceeded(Exception):
    """A test phase ran past its wall-clock limit: the cause of the test context's
    cancellation. ``phase`` is ``"setup"``, ``"call"`` or ``"teardown"``, ``seconds`` the
    limit, ``source`` where it was set (``""`` if unknown)."""

    def __init__(self, phase: str, seconds: float, source: str = "") -> None:
        self.phase = phase
        self.seconds = seconds
        self.source = source
        message = f"the test's {phase} ran past its wall-clock limit of {seconds:g} s"
        if source:
            message += f" (set by {source})"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[TimeLimitExceeded], tuple[str, float, str]]:
        return type(self), (self.phase, self.seconds, self.source)


def check_limit(value: object, name: str) -> float | None:
    """``value`` as a limit in seconds: None for no limit (``None``, ``0``, ``inf``).

    Raises:
        ValueError: not a number, NaN or negative; the message names ``name``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds or None, not {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, not {value!r}")
    return None if value == 0 or value == math.inf else float(value)


@attrs.frozen
class PhaseLimits:
    """A wall-clock limit in seconds per test phase (None: no limit), and where it was set.
    Immutable; build one with :func:`parse_limits` or by keyword."""

    setup: float | None = None
    call: float | None = None
    teardown: float | None = None
    source: str = ""

    def of(self, phase: str) -> float | None:
        """The limit of ``phase`` (``"setup"``, ``"call"`` or ``"teardown"``)."""
        limit: float | None = getattr(self, phase)
        return limit

    def __bool__(self) -> bool:
        return any(self.of(phase) is not None for phase in PHASES)


_ITEM: Final = re.compile(r"\s*(?:(\w+)\s*=\s*)?([^\s,=]+)\s*(?:,|\s|$)")


def parse_limits(text: str, *, name: str, source: str = "") -> PhaseLimits:
    """Read a limit spec: ``"30"`` (each phase 30 s), ``"call=30 setup=5 teardown=5"`` (phases
    not named get no limit), or both (``"10 call=60"``: 60 s for the call, 10 s for the
    others); commas or spaces between items. ``""``, ``0`` and ``none`` mean no limit.

    Raises:
        ValueError: a malformed spec; the message names ``name`` (the option it came from).
    """
    default: float | None = None
    phases: dict[str, float | None] = {}
    rest = text.strip()
    while rest:
        match = _ITEM.match(rest)
        if match is None:
            raise ValueError(f"{name}: cannot read {rest!r}; use e.g. '30' or 'call=30 setup=5'")
        key, raw = match.group(1), match.group(2)
        value = _seconds(raw, name)
        if key is None:
            default = value
        elif key in PHASES:
            phases[key] = value
        else:
            raise ValueError(f"{name}: unknown phase {key!r}; use {', '.join(PHASES)}")
        rest = rest[match.end() :].lstrip(", ")
    return PhaseLimits(**{p: phases.get(p, default) for p in PHASES}, source=source)


def marker_limits(
    args: tuple[object, ...], kwargs: Mapping[str, object], *, default: PhaseLimits
) -> PhaseLimits:
    """The limits a ``ctx_limit(seconds=None, *, setup=, call=, teardown=)`` marker sets over
    ``default``: ``seconds`` for every phase, then each phase named (None: no limit).

    Raises:
        ValueError: more than one number, an unknown phase, or a value that is not a number
            of seconds or None.
    """
    if len(args) > 1 or set(kwargs) - set(PHASES):
        raise ValueError(
            "use @pytest.mark.ctx_limit(seconds, setup=..., call=..., teardown=...), "
            "with numbers of seconds or None"
        )
    values: dict[str, float | None] = {phase: default.of(phase) for phase in PHASES}
    if args:
        values = dict.fromkeys(PHASES, check_limit(args[0], "ctx_limit"))
    for phase, value in kwargs.items():
        values[phase] = check_limit(value, f"ctx_limit({phase}=...)")
    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return PhaseLimits(**values, source=f"@pytest.mark.ctx_limit({', '.join(shown)})")


def _seconds(raw: str, name: str) -> float | None:
    if raw.lower() == "none":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
    return check_limit(value, name)


class Watchdog:
    """Calls a function, from its own daemon thread, when the phase it was armed for outlives
    its limit. One watchdog serves any number of tests one after the other.

    ``arm(seconds, on_expiry)`` replaces whatever was armed; ``disarm()`` cancels it. The
    thread starts on the first ``arm`` with a limit and stops with :meth:`close`; it is only
    woken when a new limit ends before the time it already wakes up at, so arming a limit per
    phase of every test costs a lock, not a thread switch. All methods
    are thread-safe; ``on_expiry`` runs in the watchdog thread (it must be thread-safe too:
    ``CancelContext.cancel`` and ``TrioToken.run_sync_soon`` are).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadline = math.inf
        self._wake_at = math.inf  # when the thread wakes up next (it re-checks then)
        self._on_expiry: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        """Start the thread now (so no test sees it start). Idempotent."""
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name=WATCHDOG_THREAD_NAME, daemon=True
                )
                self._thread.start()

    @property
    def thread(self) -> threading.Thread | None:
        """The watchdog's thread, once started."""
        return self._thread

    def arm(self, seconds: float | None, on_expiry: Callable[[], None]) -> None:
        """Call ``on_expiry()`` ``seconds`` of real time from now unless re-armed or disarmed
        before; ``None`` only disarms."""
        if seconds is None:
            self.disarm()
            return
        self.start()
        with self._cond:
            self._deadline = time.monotonic() + seconds
            self._on_expiry = on_expiry
            if self._deadline < self._wake_at:  # else the thread wakes in time anyway: a
                self._cond.notify()  # per-test limit costs no thread switch

    def disarm(self) -> None:
        """Forget what was armed. Idempotent."""
        with self._cond:
            self._deadline = math.inf
            self._on_expiry = None

    def close(self) -> None:
        """Stop the thread (waits for it). Idempotent."""
        with self._cond:
            self._closed = True
            self._on_expiry = None
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    wait = self._deadline - time.monotonic()
                    if wait <= 0 and self._on_expiry is not None:
                        break
                    self._wake_at = self._deadline
                    self._cond.wait(None if wait == math.inf else max(wait, 0.001))
                    self._wake_at = -math.inf  # awake: arm() need not notify
                if self._closed:
                    return
                on_expiry, self._on_expiry = self._on_expiry, None
                self._deadline = math.inf
            try:
                if on_expiry is not None:
                    on_expiry()
            except Exception:  # pragma: no cover - a bug in a callback must not kill the thread
                logger.exception("trio_context: a wall-clock limit callback failed")
