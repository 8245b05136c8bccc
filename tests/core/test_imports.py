"""``import trio_context`` loads trio and the core only; the other layers load on first use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import trio_context as tc


def loaded_after(code: str) -> list[str]:
    """The ``trio_context`` modules loaded by a fresh interpreter after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    return [m for m in json.loads(out.splitlines()[-1]) if m.startswith("trio_context")]


def test_import_loads_only_the_core() -> None:
    loaded = loaded_after("import trio_context")
    assert all(
        m == "trio_context"
        or m.startswith(("trio_context._core", "trio_context._meta"))
        or m == "trio_context._trio_private"
        for m in loaded
    ), loaded
    assert "trio_context._core" in loaded


def test_a_toolkit_name_loads_its_layer_only() -> None:
    loaded = loaded_after("from trio_context import format_tree")
    assert "trio_context._tree" in loaded
    assert not any(
        m.startswith(("trio_context._process", "trio_context.propagation")) for m in loaded
    )


@pytest.mark.parametrize("name", sorted(tc._LAZY))
def test_every_lazy_name_is_importable_and_public(name: str) -> None:
    obj = getattr(tc, name)
    assert name in dir(tc)
    if name != "propagation" and isinstance(obj, type):
        assert obj.__module__ in ("trio_context", "trio_context.propagation")


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        tc.nope  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(ImportError):
        from trio_context import nope  # type: ignore[attr-defined]  # noqa: F401
