"""Carry a context to a child process through its environment: the deadline, and the channel
that tells the child why it must stop.

Rules for callers:

- Sending side: ``run_process`` does it all. By hand: ``env = environ_for(ctx, base=os.environ)``
  for the deadline, and a :class:`~trio_context.propagation.CancelChannel` for the cause.
- Receiving side: ``ctx = from_environ(parent)`` at the top of a child program. It never raises
  for a malformed variable: it logs a warning on the ``trio_context`` logger and goes on.
- Deadlines travel as wall-clock times plus durations, never as trio clock readings: the trio
  clock of one process means nothing in another.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping

from .._core import (
    HARD_KEY,
    Context,
    DeadlineExceeded,
    logger,
    with_cancel,
    with_timeout,
    with_value,
)
from ._channel import CANCEL_ACK_FD_ENV_VAR, CANCEL_FD_ENV_VAR, listen

__all__ = ["DEADLINE_ENV_VAR", "environ_for", "from_environ"]

_OWS = " \t"


#: The environment variable that carries the deadline to a child process.
DEADLINE_ENV_VAR = "TRIO_CONTEXT_DEADLINE"
# Variables a parent sets for one child only: never passed on from a base environment.
_OURS = (DEADLINE_ENV_VAR, CANCEL_FD_ENV_VAR, CANCEL_ACK_FD_ENV_VAR)

_NUMBER = r"[0-9]{1,30}(?:\.[0-9]{1,9})?"
#: environ_for caps the remaining time it sends (about 31 million years) to keep the value short.
_ENV_MAX_REMAINING = 1e15
_ENV_RE = re.compile(rf"({_NUMBER});({_NUMBER})")


def environ_for(ctx: Context, *, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment entries that carry ``ctx``'s deadline to a child process.

    The variable is ``TRIO_CONTEXT_DEADLINE`` (:data:`DEADLINE_ENV_VAR`), and its value is
    ``"<deadline>;<remaining>"``: the deadline as absolute UNIX wall time in seconds, then the
    seconds that were left when this was called, both decimal with 6 places, e.g.
    ``"1732370004.623456;4.500000"``. The pair lets the receiver survive both a clock that
    differs between processes and the time the child takes to start (see :func:`from_environ`).

    Without ``base``, returns just that entry, or ``{}`` when ``ctx`` has no deadline. With
    ``base`` (typically ``os.environ``), returns a copy of ``base`` with the entry set, or
    *removed* when ``ctx`` has no deadline, so a deadline this process inherited does not leak
    into a child that was meant to run without one. Without ``base``, do that removal yourself
    (``env.pop(DEADLINE_ENV_VAR, None)``) before merging.

    Reads ``ctx.remaining()`` and ``time.time()``; safe from any thread the context allows.

    Raises:
        Nothing of its own.

    Example::

        subprocess_env = tc.environ_for(ctx, base=os.environ)
        await trio.run_process(["worker"], env=subprocess_env)
    """
    remaining = ctx.remaining()
    entries: dict[str, str] = {}
    if not math.isinf(remaining):
        remaining = min(max(0.0, remaining), _ENV_MAX_REMAINING)
        entries[DEADLINE_ENV_VAR] = f"{time.time() + remaining:.6f};{remaining:.6f}"
    if base is None:
        return entries
    env = {k: v for k, v in base.items() if k not in _OURS}
    env.update(entries)
    return env


def from_environ(parent: Context, environ: Mapping[str, str] | None = None) -> Context:
    """Return a child of ``parent`` that carries what a parent process handed this one: its
    deadline, and its reason to stop.

    *Deadline.* Reads ``TRIO_CONTEXT_DEADLINE`` from ``environ`` (default ``os.environ``), as
    written by :func:`environ_for`, and applies ``with_timeout(parent, remaining)`` where::

        remaining = max(0, min(sent_remaining, deadline_wall - time.time()))

    The wall-clock term counts the time the child took to start; the sent duration caps it
    when this machine's wall clock is behind the sender's (or jumped back), so a child never
    gets more time than its parent had. A clock that runs ahead only makes the child stop
    early, never late. ``parent``'s own deadline still applies: nested processes each see the
    minimum.

    *Cause.* When ``TRIO_CONTEXT_CANCEL_FD`` names a cancel channel (``run_process`` opens
    one), the returned context is done as soon as the parent's context ends -- before any
    signal -- with a :class:`~trio_context.RemoteCause` as its cause (the parent's cause type
    and message, whether the stop is graceful, the grace left), and an err of the same kind
    (:class:`DeadlineExceeded` for a deadline, else :class:`ContextCancelled`). The grace
    travels too: a hard stop is recorded above the context (see :func:`graceful`), so grace
    periods started here are capped by what the parent left.

    Returns ``parent`` itself when neither variable is set, and ignores a malformed one (after
    a warning on the ``trio_context`` logger): a bad variable must not stop a program from
    starting. Needs a running trio loop when a deadline or channel is present.

    Raises:
        Nothing for a missing or malformed variable.

    Example::

        async def main() -> None:
            ctx = tc.from_environ(tc.background())
            with ctx.scope():
                await work(ctx)
    """
    env = os.environ if environ is None else environ
    ctx = _with_sent_deadline(parent, env.get(DEADLINE_ENV_VAR, ""))
    if not env.get(CANCEL_FD_ENV_VAR):
        return ctx
    hard = with_cancel(ctx)
    soft = with_cancel(with_value(hard, HARD_KEY, hard))
    return soft if listen(soft, hard, env) else ctx


def _with_sent_deadline(parent: Context, raw: str) -> Context:
    if not raw:
        return parent
    match = _ENV_RE.fullmatch(raw.strip(_OWS))
    if match is None:
        logger.warning(
            "ignoring malformed %s=%.80r: expected '<deadline unix time>;<remaining seconds>'",
            DEADLINE_ENV_VAR,
            raw,
        )
        return parent
    deadline_wall, sent_remaining = float(match[1]), float(match[2])
    remaining = max(0.0, min(sent_remaining, deadline_wall - time.time()))
    cause = DeadlineExceeded(f"deadline inherited from the parent process ({DEADLINE_ENV_VAR})")
    return with_timeout(parent, remaining, cause=cause)
