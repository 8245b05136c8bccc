"""One ``__module__`` fix-up for every public name (trio's ``fixup_module_metadata``).

The implementation lives in private modules; this makes tracebacks, reprs, pickles and the
reference docs say ``trio_context.X`` (or ``trio_context.propagation.X``) instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import FunctionType


def fixup_module_metadata(module_name: str, namespace: Mapping[str, object]) -> None:
    """Set ``__module__`` of each public class and function in ``namespace`` to
    ``module_name``, if it still names a private module of this package. Call it for the
    public submodules first, so their names keep the submodule."""
    for name, obj in namespace.items():
        if name.startswith("_") or not isinstance(obj, type | FunctionType):
            continue
        current = getattr(obj, "__module__", "")
        if current.startswith("trio_context.") and "._" in current:
            obj.__module__ = module_name
