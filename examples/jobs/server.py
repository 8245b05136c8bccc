"""The job server: the queue, the HTTP API and hypercorn, and how a close goes.

``serve(options, stop)`` runs until ``stop`` is done, then closes gracefully, in this order:

1. The queue takes no new jobs and cancels the queued ones; every new request gets ``503`` (with
   ``Retry-After``), not "connection refused": the server still listens.
2. Running jobs get ``options.grace`` seconds to finish, then they are cancelled now.
3. Once every job is final, open streams and long polls have their final states (an all-jobs
   stream then ends by itself); only then does hypercorn stop listening and give the open
   connections ``options.drain`` seconds.

A forced stop (the hard context of ``tc.open_signal_context``: a second Ctrl-C) destroys the
queue and ends every request at once, streams included.
"""

from __future__ import annotations

import math
import secrets
from typing import Final

import attrs
import hypercorn.config
import hypercorn.trio
import trio

import trio_context as tc

from .api import make_app
from .lifetime import open_job_queue

TOKEN_ENV: Final = "JOBS_TOKEN"  # the environment variable the bearer token may come from


@attrs.frozen(kw_only=True)
class ServerOptions:
    """What ``serve`` runs with (the command line's options, ``cli.py``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    limit: int = 2  # jobs running at once
    grace: float = 30.0  # seconds running jobs get once the close started
    drain: float = 5.0  # seconds open connections get once every job is final
    token: str | None = None  # bearer token every request must carry
    backlog: int = 1024  # the listen backlog (hypercorn's default, 100, resets a burst)
    history: int = 100  # finished jobs remembered
    max_queued: int = 100  # jobs waiting for a slot; more get 429
    escalate_after: float = 30.0  # a safe cancel becomes a cancel now after this many seconds
    memory_limit: int | None = None  # bytes a process job's worker tree may keep resident
    access_log: bool = True


def new_job_id() -> str:
    """An unguessable job id: 96 random bits."""
    return f"job-{secrets.token_urlsafe(12)}"


async def serve(
    options: ServerOptions,
    stop: tc.Context,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API until ``stop`` is done, then close as the module says. Reports the bound
    addresses (``http://127.0.0.1:PORT``) through ``task_status``.

    Raises:
        OSError: the address cannot be bound.
    """
    jobs_ctx = tc.cleanup(stop, math.inf)  # ignores stop, ends at a forced stop
    async with open_job_queue(
        jobs_ctx,
        limit=options.limit,
        keep_finished=options.history,
        max_queued=options.max_queued,
        escalate_after=options.escalate_after,
        memory_limit=options.memory_limit,
        new_id=new_job_id,
    ) as queue:
        tc.after_func(stop, lambda: queue.close(timeout=options.grace))
        config = hypercorn.config.Config()
        config.bind = [f"{options.host}:{options.port}"]
        config.backlog = options.backlog
        config.graceful_timeout = options.drain
        config.accesslog = "-" if options.access_log else None
        config.errorlog = "-"
        # Requests derive from jobs_ctx: a forced stop ends them, streams included.
        app = make_app(queue, parent=jobs_ctx, token=options.token)

        async def every_job_final() -> None:
            await stop.done.wait()
            await queue.join()

        with jobs_ctx.move_on():
            # The app is checked against hypercorn's ASGI types with no cast; the ignore is for
            # hypercorn's own signature, whose WSGI half has a bare `dict` (unknown to pyright).
            await hypercorn.trio.serve(  # pyright: ignore[reportUnknownMemberType]
                app, config, shutdown_trigger=every_job_final, task_status=task_status
            )
