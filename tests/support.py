"""Helpers shared by the test folders: paths, ``/proc`` readers, and a real HTTP server.

Importable as ``support`` from every test module because ``pyproject.toml`` puts ``tests`` (and
``examples``, for the example programs' packages) on ``pythonpath``.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import trio

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PROGRAMS = Path(__file__).resolve().parent / "programs"
CI_RUNNER = EXAMPLES / "ci_runner"

HAVE_PROC = Path("/proc/self/stat").exists()
needs_proc = pytest.mark.skipif(not HAVE_PROC, reason="needs /proc")


# -- /proc ------------------------------------------------------------------------------------


class ProcStat(NamedTuple):
    """The fields of ``/proc/<pid>/stat`` the tests read."""

    state: str  # "R", "S", ... "Z" for a zombie
    ppid: int
    pgrp: int


def proc_stat(pid: int | str) -> ProcStat | None:
    """State, parent and process group of ``pid``; None when it is gone (or unreadable).

    The command name (field 2) may hold spaces and parentheses, so the fields after it are
    found from the last ``)``.
    """
    try:
        data = Path("/proc", str(pid), "stat").read_bytes()
    except OSError:
        return None
    state, ppid, pgrp = data[data.rfind(b")") + 2 :].split()[:3]
    return ProcStat(state.decode(), int(ppid), int(pgrp))


def processes() -> Iterator[tuple[int, ProcStat]]:
    """``(pid, stat)`` of every process in ``/proc``, skipping those that exit while read."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := proc_stat(entry)) is not None:
            yield int(entry), stat


def live_members(pgid: int) -> list[int]:
    """Pids of the non-zombie processes in process group ``pgid``."""
    return [pid for pid, stat in processes() if stat.pgrp == pgid and stat.state != "Z"]


def child_pids(parent: int | None = None) -> set[int]:
    """Live (not zombie) children of ``parent`` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    return {pid for pid, stat in processes() if stat.ppid == parent and stat.state != "Z"}


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, waiting for its parent or init to reap it, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = proc_stat(pid)
    if stat is None:
        return not Path("/proc").is_dir()  # gone, unless there is no /proc to tell
    return stat.state != "Z"


# -- a real server on localhost: hypercorn (trio worker) --------------------------------------


def answering_lifespan(app: Any) -> Any:
    """``app`` behind a wrapper that completes the ASGI lifespan protocol for it."""

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    return outer


@asynccontextmanager
async def serving(app: Any, *, graceful_timeout: float | None = None) -> AsyncIterator[str]:
    """Serve the ASGI ``app`` on an ephemeral localhost port; yield its base URL.

    Needs hypercorn (imported here: callers skip when it is missing). The server shuts down when
    the block exits.
    """
    import hypercorn.config
    import hypercorn.trio

    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    if graceful_timeout is not None:
        config.graceful_timeout = graceful_timeout
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: hypercorn.trio.serve(
                app, config, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        try:
            yield binds[0]
        finally:
            stop.set()


# -- the example CI runner as a program ----------------------------------------------------------


@contextmanager
def started(path: Path, out: Path, err: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Start the CI runner on ``path`` (``--json result.json`` beside it) with its output going
    to ``out`` (stderr too, unless ``err`` is given); kill it if the test fails early."""
    with out.open("wb") as sink, err.open("wb") if err is not None else nullcontext() as err_sink:
        proc = subprocess.Popen(
            [sys.executable, str(CI_RUNNER), str(path), "--json", str(path.parent / "result.json")],
            stdout=sink,
            stderr=subprocess.STDOUT if err_sink is None else err_sink,
            cwd=ROOT,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def read_terminal(master: int, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """Everything a program writes to the pty whose ``master`` end this is, until it closes
    its side, exits, or ``timeout`` seconds pass; closes ``master``."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return b"".join(chunks)
