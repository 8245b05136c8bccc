"""The documentation builds cleanly, and every exported name has a reference entry.

The build is Sphinx's strictest: ``-W`` (a warning fails it) and ``-n`` (every cross-reference
must resolve). The inventory it writes (``objects.inv``) lists every documented object; each name
that ``trio_context`` and its public submodules export must be in it. The reference's topic pages
list names by hand and ``docs/reference/unsorted.rst`` documents the rest, so a name added later
is documented there automatically; this test fails only when a name has no entry at all.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import refnames  # noqa: E402  (docs/_ext, shared with the Sphinx build)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pytest.importorskip("sphinx", reason="the docs extra is not installed")
    out = tmp_path_factory.mktemp("html")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"sphinx-build -W -n failed:\n{done.stderr}"
    assert done.stderr == "", done.stderr
    yield out


def inventory(path: Path) -> dict[str, str]:
    """``{name: "domain:role"}`` from a Sphinx ``objects.inv`` (version 2)."""
    raw = path.read_bytes()
    header_end = 0
    for _ in range(4):  # four text lines, then zlib-compressed entries
        header_end = raw.index(b"\n", header_end) + 1
    assert raw.startswith(b"# Sphinx inventory version 2")
    entries: dict[str, str] = {}
    for line in zlib.decompress(raw[header_end:]).decode().splitlines():
        name, kind = line.split(" ", 2)[:2]
        entries[name] = kind
    return entries


def test_every_exported_name_has_a_reference_entry(built: Path) -> None:
    documented = inventory(built / "objects.inv")
    exported = refnames.exported()
    assert "trio_context.with_cancel" in exported  # the module list is not empty by mistake
    missing = {
        public: home
        for public, home in exported.items()
        if not documented.get(home, "").startswith("py:")
    }
    assert not missing, f"exported names without a reference entry: {missing}"


def test_public_modules_are_documented(built: Path) -> None:
    documented = inventory(built / "objects.inv")
    for module in refnames.PUBLIC_MODULES:
        if refnames.public_names(module):
            assert documented.get(module) == "py:module", module


def test_catch_all_documents_names_no_topic_page_lists(tmp_path: Path) -> None:
    (tmp_path / "core.rst").write_text(
        ".. currentmodule:: trio_context\n\n.. autofunction:: todo\n"
    )
    entries = refnames.unsorted_entries(tmp_path)
    assert ".. autofunction:: with_cancel" in entries
    assert ".. autoclass:: CancelContext" in entries
    assert ".. autoexception:: DeadlineExceeded" in entries
    assert ".. autofunction:: todo\n" not in entries
