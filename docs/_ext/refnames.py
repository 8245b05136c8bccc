"""Which public names the reference must document, and a catch-all page for those it misses.

Shared by the Sphinx build (``conf.py`` loads it as an extension) and by
``tests/docs/test_reference.py``, which checks the built inventory against :func:`exported`.

A name exported by several public modules (``trio_context.environ_for`` is
``trio_context.propagation.environ_for``) is documented once, under the most specific module
that exports that same object: :func:`canonical`.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
from pathlib import Path
from typing import Any

#: The public modules whose every exported name must have a reference entry.
PUBLIC_MODULES = ("trio_context", "trio_context.propagation", "trio_context.testing")

_DIRECTIVE = re.compile(
    r"^\.\. (?:auto(?:function|class|exception|data|decorator)|py:data)::\s+(\S+)", re.M
)
_MODULE = re.compile(r"^\.\. (?:py:|auto)?(?:current)?module::\s+(\S+)", re.M)


def _module(name: str) -> types.ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def public_names(module_name: str) -> list[str]:
    """The names a public module exports: its ``__all__``, else every public non-module name."""
    module = _module(module_name)
    if module is None:
        return []
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)
        ]
    return sorted(names)


def canonical(module_name: str, name: str) -> str:
    """The dotted name under which ``module_name.name`` is documented."""
    value = getattr(_module(module_name), name)
    home = module_name
    for other in PUBLIC_MODULES:
        if other.startswith(module_name + ".") and name in public_names(other):
            if getattr(_module(other), name) is value:
                home = other
    return f"{home}.{name}"


def exported() -> dict[str, str]:
    """Every exported ``module.name`` mapped to its canonical documented name."""
    return {
        f"{module_name}.{name}": canonical(module_name, name)
        for module_name in PUBLIC_MODULES
        for name in public_names(module_name)
    }


def documented_names(reference_dir: Path) -> set[str]:
    """Every dotted name that an ``auto*`` or ``py:data`` directive in the reference documents."""
    found: set[str] = set()
    for page in sorted(reference_dir.glob("*.rst")):
        text = page.read_text(encoding="utf-8")
        module = "trio_context"
        for match in sorted(
            [*_DIRECTIVE.finditer(text), *_MODULE.finditer(text)], key=lambda m: m.start()
        ):
            if match.re is _MODULE:
                module = match.group(1)
            else:
                target = match.group(1)
                found.add(target if target.startswith("trio_context") else f"{module}.{target}")
    return found


def _kind(value: object) -> str:
    if isinstance(value, type):
        return "exception" if issubclass(value, BaseException) else "class"
    return "function" if callable(value) else "data"


def unsorted_entries(reference_dir: Path) -> str:
    """reST for every exported name that no topic page documents yet."""
    documented = documented_names(reference_dir)
    missing = sorted({name for name in exported().values() if name not in documented})
    if not missing:
        return "Every exported name is on a topic page.\n"
    parts: list[str] = []
    for dotted in missing:
        module_name, _, name = dotted.rpartition(".")
        value = getattr(_module(module_name), name)
        parts.append(f".. currentmodule:: {module_name}\n\n.. auto{_kind(value)}:: {name}\n")
    return "\n".join(parts)


_RULES_OF = re.compile(r"^\.\. rules-of:: (\S+)$", re.M)


def defining_module(dotted: str) -> str:
    """The private module that defines a public function (its ``__module__`` says the public
    one), so a page can show that module's docstring: the rules for callers."""
    module_name, _, name = dotted.rpartition(".")
    value = inspect.unwrap(getattr(importlib.import_module(module_name), name))
    defined_in = getattr(value, "__globals__", {}).get("__name__")
    if not isinstance(defined_in, str):
        raise TypeError(f"rules-of:: needs a public function, got {dotted}")
    return defined_in


def _rules_of(match: re.Match[str]) -> str:
    module = defining_module(match[1])
    return f".. automodule:: {module}\n   :no-members:\n   :no-index:\n"


def _fill_reference(app: Any, docname: str, source: list[str]) -> None:
    if docname.startswith("reference/"):
        source[0] = _RULES_OF.sub(_rules_of, source[0])
    if docname == "reference/unsorted":
        entries = unsorted_entries(Path(app.srcdir) / "reference")
        source[0] = source[0].replace(".. unsorted-names::", entries)


# Google style wants ``ExcType: description`` under ``Raises:``; a free-text entry ("Nothing of
# its own.", "At request time: ...") would be read as an exception name and fail the nitpicky
# build. Such entries are given an empty type, so they render as plain text.
_RAISES_ENTRY = re.compile(r"[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_][\w.]*)*\s*:(\s|$)")


def _plain_raises(
    app: Any, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    in_raises = free_text = False
    indent = ""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped == "Raises:":
            in_raises, free_text, indent = True, False, ""
            continue
        if not in_raises or not stripped:
            continue
        current = line[: len(line) - len(line.lstrip())]
        indent = indent or current
        if len(current) < len(indent):
            in_raises = False
        elif current == indent and _RAISES_ENTRY.match(stripped):
            free_text = False
        elif current == indent and free_text:  # a free-text entry's next line
            lines[index] = f"{indent}    {stripped}"
        elif current == indent:
            lines[index] = f"{indent}: {stripped}"
            free_text = True


def _short_names(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve ``:class:`ContextCancelled``` written in any public module to its documented home."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    if target.startswith("trio_context."):
        target = target.rpartition(".")[2]
    if "." in target:
        return None
    domain = env.get_domain("py")
    for module in PUBLIC_MODULES:
        found = domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], f"{module}.{target}", node, contnode
        )
        if found is not None:
            return found
    return None


def _always_reread(
    app: Any, env: Any, added: set[str], changed: set[str], removed: set[str]
) -> list[str]:
    # The catch-all and the rules-of pages depend on the package, not on their own source.
    return [name for name in env.found_docs if name.startswith("reference/")]


def setup(app: Any) -> dict[str, Any]:
    app.connect("source-read", _fill_reference)
    app.connect("autodoc-process-docstring", _plain_raises, priority=400)  # before napoleon
    app.connect("missing-reference", _short_names)
    app.connect("env-get-outdated", _always_reread)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
