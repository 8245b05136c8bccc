"""The errors a context reports through ``ctx.err`` and raises from ``check()`` and ``scope()``."""

from __future__ import annotations


class ContextError(Exception):
    """Base class of the errors a done context reports (``ctx.err``)."""


class ContextCancelled(ContextError):
    """The context was cancelled: ``cancel()`` was called on it or on an ancestor."""


class DeadlineExceeded(ContextError, TimeoutError):
    """The context's deadline passed (also a :class:`TimeoutError`)."""
