"""An ``after_func`` registration: a callback run once, soon after its context is done.

The entry is created by ``after_func()`` (``_after.py``), kept in its canceller's ``_after``
list and dispatched by the cancel walk (``_cancel.py``) once nothing holds the core's lock.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Final

import trio

from .._trio_private import run_token
from ._common import _lock, logger


class AfterFunc:
    """One callback: pending until dispatched or stopped, then never again."""

    __slots__ = ("direct", "fn", "state", "token")

    PENDING: Final = 0
    STARTED: Final = 1
    STOPPED: Final = 2

    def __init__(
        self, fn: Callable[[], object], token: trio.lowlevel.TrioToken | None, *, direct: bool
    ) -> None:
        self.fn = fn
        self.token = token  # the run it belongs to (None: registered outside trio)
        self.direct = direct  # called at once when dispatched in that run's thread
        self.state = self.PENDING

    def dispatch(self) -> None:
        """Start the call (once): in the registering run's trio thread (through its token, or at
        once for a ``direct`` entry already there), else right here."""
        with _lock:
            if self.state != self.PENDING:
                return
            self.state = self.STARTED
        if self.token is not None:
            if self.direct and self.token is run_token():
                self.call()
                return
            try:
                self.token.run_sync_soon(self.call_in_trio)
                return
            except trio.RunFinishedError:
                pass
        self.call()

    def call(self) -> None:
        """Call ``fn`` where the cancel happened: an ``Exception`` is logged; anything else
        (``KeyboardInterrupt``) propagates to the caller of ``cancel()``."""
        try:
            self.fn()
        except Exception:
            logger.exception("after_func callback %r raised", self.fn)

    def call_in_trio(self) -> None:
        """Call ``fn`` as a trio ``run_sync_soon`` callback, where an escaping exception would
        end the run with ``TrioInternalError``. An ``Exception`` is logged; a
        ``KeyboardInterrupt`` is logged and delivered again as a Ctrl-C (SIGINT), so the run
        ends the way Ctrl-C ends it (or the program's SIGINT handler decides); any other
        ``BaseException`` (``SystemExit``) is logged as an error."""
        try:
            self.fn()
        except Exception:
            logger.exception("after_func callback %r raised", self.fn)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                logger.error(
                    "after_func callback %r raised KeyboardInterrupt: raising SIGINT", self.fn
                )
                signal.raise_signal(signal.SIGINT)
            else:
                logger.error(
                    "after_func callback %r raised %s; it cannot end the trio run from a "
                    "callback, so it is dropped",
                    self.fn,
                    type(exc).__name__,
                    exc_info=exc,
                )
