"""The cancel channel: a parent process tells a child *why* it must stop, before any signal.

Rules for callers (and for programs in any language):

- The parent (``run_process``) opens two pipes per child: the child reads lines from the one
  named by ``TRIO_CONTEXT_CANCEL_FD`` and may write to the one named by
  ``TRIO_CONTEXT_CANCEL_ACK_FD`` (file descriptor numbers). When the parent's context ends it
  writes one line (format in ``_cause.py``: ``v1 graceful 4.500 deadline DeadlineExceeded job
  timed out``); when its hard stop comes, a second line with ``forced``.
- A child that listens writes ``listening`` (a line) when it starts, and ``ack`` after it has
  acted on a line. A parent that has seen ``listening`` waits (a short while) for ``ack`` and
  then sends *no* term signal: the child winds down on its own, and SIGKILL stays the end of
  the grace period. A child that never says ``listening`` gets the term signal as before, so
  programs that know nothing of this work unchanged.
- In Python, ``tc.from_environ(parent)`` does all of it: the context it returns is done, with a
  :class:`~trio_context.RemoteCause` as its cause, as soon as the line arrives. End of file
  without a line (the parent died) ends it too, with type name ``ParentExited``.
- A shell step reads it with
  ``read -r v mode grace kind type msg < /dev/fd/$TRIO_CONTEXT_CANCEL_FD`` (any POSIX shell on
  Linux; bash also takes ``<&"$TRIO_CONTEXT_CANCEL_FD"``) and may answer
  ``echo ack > /dev/fd/$TRIO_CONTEXT_CANCEL_ACK_FD``.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import stat
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Final

import trio

from .._core import CancelContext, logger
from ._cause import RemoteCause

__all__ = ["CANCEL_ACK_FD_ENV_VAR", "CANCEL_FD_ENV_VAR", "CancelChannel", "listen"]

#: The environment variable naming the pipe a child reads its parent's cancel lines from.
CANCEL_FD_ENV_VAR: Final = "TRIO_CONTEXT_CANCEL_FD"
#: The environment variable naming the pipe a child writes ``listening`` and ``ack`` to.
CANCEL_ACK_FD_ENV_VAR: Final = "TRIO_CONTEXT_CANCEL_ACK_FD"
_MAX_LINE: Final = 4096
_DRAIN_CHUNK: Final = 1 << 16  # Linux's default pipe capacity...
_DRAIN_READS: Final = 4  # ...a few times over


class CancelChannel:
    """The parent's end of one child's cancel channel. Made before the child is spawned; hand
    :attr:`child_fds` to the child (``pass_fds``) and :meth:`environ` to its environment, call
    :meth:`spawned` once it runs, :meth:`notify` when the context ends, and :meth:`close` when
    the child is gone. :meth:`notify` reads the child's lines itself; run :meth:`watch` in a
    task only to learn at once when the child listens (:meth:`wait_listening`). Trio thread
    only::

        channel = CancelChannel()
        proc = await trio.lowlevel.open_process(
            args, env={**os.environ, **channel.environ()}, pass_fds=channel.child_fds
        )
        channel.spawned()
    """

    def __init__(self) -> None:
        lines_r, lines_w = os.pipe()  # parent -> child
        acks_r, acks_w = os.pipe()  # child -> parent
        self._child: tuple[int, int] | None = (lines_r, acks_w)
        # Plain non-blocking descriptors rather than trio streams: most channels are never
        # written to nor waited on, and a stream costs more to make and to close.
        os.set_blocking(lines_w, False)
        os.set_blocking(acks_r, False)
        self._send_fd: int | None = lines_w
        self._recv_fd: int | None = acks_r
        self._waited = False  # trio's I/O manager has seen our descriptors: tell it on close
        self._listening = trio.Event()
        self._acked: trio.Event | None = None
        self._sending = trio.Lock()
        self._buffer = b""  # the start of a line from the child
        self._watching = False  # a task runs watch(): notify() leaves the reading to it

    @property
    def child_fds(self) -> tuple[int, ...]:
        """The file descriptors the child inherits (none once :meth:`spawned` closed them)."""
        return self._child if self._child is not None else ()

    def environ(self) -> dict[str, str]:
        """The environment entries that tell the child where its channel is."""
        if self._child is None:
            return {}
        lines, acks = self._child
        return {CANCEL_FD_ENV_VAR: str(lines), CANCEL_ACK_FD_ENV_VAR: str(acks)}

    def spawned(self) -> None:
        """Close this process's copies of the child's ends (the child has its own now)."""
        if self._child is not None:
            for fd in self._child:
                os.close(fd)
            self._child = None

    @property
    def listening(self) -> bool:
        """True once the child said it listens."""
        return self._listening.is_set()

    async def wait_listening(self) -> None:
        """Wait until the child says it listens (needs :meth:`watch` running)."""
        await self._listening.wait()

    async def watch(self) -> None:
        """Read the child's ``listening`` and ``ack`` lines until it closes its end. Optional
        (see the class); at most one task may run it."""
        self._watching = True
        while await self._receive():
            pass

    async def _receive(self) -> bool:
        """Wait for data from the child and take its lines; False at its end (or ours)."""
        while (fd := self._recv_fd) is not None:
            try:
                data = os.read(fd, 1024)
            except BlockingIOError:
                self._waited = True
                try:
                    await trio.lowlevel.wait_readable(fd)
                except (trio.ClosedResourceError, trio.BusyResourceError):
                    return False
                continue
            except OSError:
                return False
            self._take(data)
            return bool(data)
        return False

    async def _write(self, data: bytes) -> bool:
        """Write ``data`` to the child; False when it (or this end) is closed."""
        while data:
            fd = self._send_fd
            if fd is None:
                return False
            try:
                data = data[os.write(fd, data) :]
            except BlockingIOError:
                self._waited = True
                try:
                    await trio.lowlevel.wait_writable(fd)
                except (trio.ClosedResourceError, trio.BusyResourceError):
                    return False
            except OSError:  # EPIPE: the child is gone or closed its end
                return False
        return True

    def _drain(self) -> None:
        """Take the lines the child has written so far, without waiting (and without
        following a child that writes without end: at most a pipe's worth)."""
        for _ in range(_DRAIN_READS):
            if self._recv_fd is None:
                return
            try:
                data = os.read(self._recv_fd, _DRAIN_CHUNK)
            except OSError:  # nothing more now (non-blocking)
                return
            self._take(data)
            if not data:
                return

    def _take(self, data: bytes) -> None:
        self._buffer = (self._buffer + data)[-_MAX_LINE:]
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            word = line.strip()
            if word == b"listening":
                self._listening.set()
            elif word == b"ack" and self._acked is not None:
                self._acked.set()

    async def notify(self, cause: RemoteCause, *, wait: float) -> bool:
        """Send ``cause`` to the child; if it listens, wait up to ``wait`` seconds for its
        ``ack``. Returns True when the child acknowledged (so it needs no term signal)."""
        acked = self._acked = trio.Event()
        async with self._sending:  # a forced line may follow a graceful one at once
            if not await self._write(cause.to_line().encode()):
                return False  # the child is gone or closed its end
        if not self._watching:
            self._drain()
            if not self.listening or wait <= 0:
                return False
            with trio.move_on_after(wait):
                while not acked.is_set() and await self._receive():
                    pass
            return acked.is_set()
        if not self.listening and wait > 0 and _readable(self._recv_fd):
            # A "listening" line the watch task has not read yet: let it.
            with trio.move_on_after(wait):
                await self._listening.wait()
        if not self.listening or wait <= 0:
            return False
        with trio.move_on_after(wait):
            await acked.wait()
        return acked.is_set()

    def close(self) -> None:
        """Close the channel (the child sees end of file). Idempotent."""
        self.spawned()
        for fd in (self._send_fd, self._recv_fd):
            if fd is not None:
                if self._waited:
                    trio.lowlevel.notify_closing(fd)  # wakes a waiter with ClosedResourceError
                os.close(fd)
        self._send_fd = self._recv_fd = None


def _readable(fd: int | None) -> bool:
    """Whether ``fd`` has data to read right now (never blocks)."""
    if fd is None:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


# -- the child's side --------------------------------------------------------------------------


class _Listener:
    """The one reader of this process's cancel channel: a daemon thread that ends every
    registered context when a line (or end of file) arrives."""

    def __init__(self, fd: int, ack_fd: int | None) -> None:
        self._fd = fd
        self._ack_fd = ack_fd
        self._lock = threading.Lock()
        self._pairs: list[_Pair] = []
        self._last: RemoteCause | None = None
        # Said before from_environ() returns, not from the thread: a parent that stops this
        # process right after its first output must already know it listens.
        self._say(b"listening\n")
        thread = threading.Thread(target=self._run, name="trio_context cancel channel", daemon=True)
        thread.start()

    def register(self, soft: CancelContext, hard: CancelContext) -> None:
        token: trio.lowlevel.TrioToken | None = None
        with contextlib.suppress(RuntimeError):
            token = trio.lowlevel.current_trio_token()
        with self._lock:
            self._pairs.append((weakref.ref(soft), weakref.ref(hard), token))
            last = self._last
        if last is not None:  # the line came before this registration
            _apply(last, soft, hard, token, here=True)

    def _run(self) -> None:
        buffer = b""
        while True:
            try:
                data = os.read(self._fd, 1024)
            except OSError:
                data = b""
            if not data:
                self._deliver(
                    RemoteCause(
                        "ParentExited",
                        "the parent process closed the cancel channel",
                        graceful=True,
                    )
                )
                return
            buffer = (buffer + data)[-_MAX_LINE:]
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                try:
                    cause = RemoteCause.from_line(raw.decode("utf-8", "replace"))
                except ValueError as exc:
                    logger.warning("ignoring a malformed line on the cancel channel: %s", exc)
                    continue
                self._deliver(cause)

    def _say(self, line: bytes) -> None:
        if self._ack_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self._ack_fd, line)

    def _deliver(self, cause: RemoteCause) -> None:
        """Apply ``cause`` to every live registration, then say ``ack``. The ack is written
        in the trio thread right after the last cancel, before any task can react to it: once
        the program sees its context done it may exit, and this daemon thread with it."""
        with self._lock:
            self._last = cause
            live = [(s(), h(), token) for s, h, token in self._pairs]
        pairs = [(soft, hard, token) for soft, hard, token in live if soft and hard]
        if not pairs:
            self._say(b"ack\n")
        for n, (soft, hard, token) in enumerate(pairs, 1):
            ack = (lambda: self._say(b"ack\n")) if n == len(pairs) else None
            _apply(cause, soft, hard, token, here=False, then=ack)


_Pair = tuple[
    "weakref.ref[CancelContext]", "weakref.ref[CancelContext]", "trio.lowlevel.TrioToken | None"
]


def _apply(
    cause: RemoteCause,
    soft: CancelContext,
    hard: CancelContext,
    token: trio.lowlevel.TrioToken | None,
    *,
    here: bool,
    then: Callable[[], None] | None = None,
) -> None:
    """End ``soft`` (and ``hard`` for a forced stop) with an err of the cause's kind and start
    ``hard``'s grace period, in the trio thread of ``token`` (``here``: we are in it), then
    call ``then``. Returns once ``soft`` is done."""
    if not cause.graceful:
        hard.cancel(cause)

    def in_trio() -> None:
        if cause.kind == "deadline":
            soft.cancel_at(trio.current_time(), cause=cause)
        else:
            soft.cancel(cause)
        if cause.graceful and not math.isinf(cause.grace):
            hard.cancel_after(cause.grace, cause=cause)
        if then is not None:
            then()

    if here and token is not None:
        in_trio()
    elif token is not None:
        done = threading.Event()

        def run_and_signal() -> None:
            try:
                in_trio()
            finally:
                done.set()

        try:
            token.run_sync_soon(run_and_signal)
        except trio.RunFinishedError:
            pass
        else:
            if done.wait(1.0):
                return
    soft.cancel(cause)  # the trio run is gone (or stuck): the best this thread can do
    if then is not None:
        then()


_listeners: dict[int, _Listener] = {}
_listeners_lock: Final = threading.Lock()


def listen(
    soft: CancelContext, hard: CancelContext, environ: Mapping[str, str] | None = None
) -> bool:
    """Have this process's cancel channel (named in ``environ``, default ``os.environ``) end
    ``soft`` (and start ``hard``'s grace) when the parent says so. Returns False when there is
    no usable channel. The variables are removed from ``os.environ`` once claimed, so this
    process's own children do not inherit stale descriptor numbers."""
    env = os.environ if environ is None else environ
    fd = _pipe_fd(env, CANCEL_FD_ENV_VAR)
    if fd is None:
        return False
    ack_fd = _pipe_fd(env, CANCEL_ACK_FD_ENV_VAR)
    with _listeners_lock:
        listener = _listeners.get(fd)
        if listener is None:
            for claimed in (fd, ack_fd):
                if claimed is not None:
                    os.set_inheritable(claimed, False)
            listener = _listeners[fd] = _Listener(fd, ack_fd)
    if env is os.environ:
        os.environ.pop(CANCEL_FD_ENV_VAR, None)
        os.environ.pop(CANCEL_ACK_FD_ENV_VAR, None)
    listener.register(soft, hard)
    return True


def _pipe_fd(env: Mapping[str, str], name: str) -> int | None:
    """The pipe (or socket) named by ``env[name]``, or None (with a warning if it is bad)."""
    raw = env.get(name, "")
    if not raw:
        return None
    try:
        fd = int(raw)
        mode = os.fstat(fd).st_mode
    except (ValueError, OSError):
        logger.warning("ignoring %s=%.40r: not an open file descriptor", name, raw)
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        logger.warning("ignoring %s=%s: not a pipe", name, fd)
        return None
    return fd
