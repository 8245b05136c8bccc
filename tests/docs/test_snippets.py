"""Every Python example in the documentation runs, and prints what the page says it prints.

The rules a docs page follows (``docs/README.md`` repeats them for writers):

- Each ```` ```python ```` block of a page runs, in order, in one namespace per page (a page reads
  like one session: later blocks use what earlier ones defined). Blocks in other languages
  (``go``, ``console``, ``toml``, ``text``) are not run.
- A ```` ```text ```` block right after a Python block (only blank lines between) is that block's
  expected output: what it prints must equal it, line for line, after stripping trailing space.
- A Python block right after a line ``% expect-failure: REASON`` (a MyST comment, not shown on
  the page) documents a promise the library does not keep yet: it must raise or print something
  else, and the test fails once it works, so the marker is removed when the promise is kept.
- A block (any language) whose first line is ``# file: NAME`` is not run: it is written to a
  scratch folder as NAME (``test_x.py``, ``pytest.ini``...). When the page is done, if any
  ``test_*.py`` file was written, ``python -m pytest`` runs in that folder and must pass.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(
    r"^(?P<fence>`{3,})(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S
)
EXPECT_FAILURE = re.compile(r"%\s*expect-failure:\s*(.+)")
FILE_MARK = re.compile(r"#\s*file:\s*(\S+)\s*")


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # 1-based line of the block's first code line in its page
    output: str | None  # the following ```text block, if any
    expect_failure: str | None = None  # the reason given by a `% expect-failure:` line above


def blocks_of(text: str) -> list[Block]:
    """The fenced blocks of a Markdown page, each Python block with its expected output."""
    fences = list(FENCE.finditer(text))
    found: list[Block] = []
    for index, match in enumerate(fences):
        language = match["info"].strip().split(" ")[0]
        output = None
        if index + 1 < len(fences):
            after = fences[index + 1]
            between = text[match.end() : after.start()]
            if after["info"].strip() == "text" and not between.strip():
                output = after["body"]
        line = text.count("\n", 0, match.start("body")) + 1
        before = text[: match.start()].rstrip().rpartition("\n")[2]
        expect = EXPECT_FAILURE.fullmatch(before.strip())
        found.append(
            Block(language, match["body"], line, output, expect[1] if expect is not None else None)
        )
    return found


def pages() -> list[Path]:
    # docs/README.md is for writers, not part of the site (conf.py excludes it too).
    return sorted(
        p for p in DOCS.rglob("*.md") if "_build" not in p.parts and p != DOCS / "README.md"
    )


def python_pages() -> list[Path]:
    return [p for p in pages() if any(b.language == "python" for b in blocks_of(p.read_text()))]


# httpx's in-memory ASGITransport (the HTTP guide runs client and server in one process) leaves
# the request body's async iterator unclosed when a request is cancelled; trio then warns when it
# is collected. An artefact of that test transport, not of trio_context.
_HTTPX_ARTEFACT = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _params() -> list[object]:
    return [
        pytest.param(
            page,
            id=str(page.relative_to(DOCS)),
            marks=[_HTTPX_ARTEFACT] if page.name == "http.md" else [],
        )
        for page in python_pages()
    ]


def _normalised(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def _compile(block: Block, name: str) -> types.CodeType:
    # Line numbers of the page, so a traceback points at the doc's own line.
    return compile("\n" * (block.line - 1) + block.code, name, "exec")


def _run(block: Block, name: str, namespace: dict[str, object]) -> None:
    code = _compile(block, name)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code, namespace)
    if block.output is not None:
        assert _normalised(printed.getvalue()) == _normalised(block.output), (
            f"{name}:{block.line}: the example printed something else than the page says"
        )


@pytest.mark.parametrize("page", _params())
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    name = str(page.relative_to(DOCS.parent))
    namespace: dict[str, object] = {"__name__": "__docs__"}
    test_files = False
    for block in blocks_of(page.read_text(encoding="utf-8")):
        first = block.code.splitlines()[0] if block.code.strip() else ""
        mark = FILE_MARK.fullmatch(first.strip())
        if mark is not None:
            (tmp_path / mark[1]).write_text(block.code, encoding="utf-8")
            test_files = test_files or mark[1].startswith("test_")
            continue
        if block.language != "python":
            continue
        if block.expect_failure is None:
            _run(block, name, namespace)
            continue
        _compile(block, name)  # a typo is never an "expected" failure
        try:
            _run(block, name, namespace)
        except Exception:
            continue
        pytest.fail(
            f"{name}:{block.line}: works now ({block.expect_failure}): remove its expect-failure"
        )
    if test_files:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            check=False,
        )
        assert done.returncode == 0, f"{name}: its test files fail:\n{done.stdout}\n{done.stderr}"


def test_pages_have_examples() -> None:
    """The extraction finds the examples (a broken fence regex would silently test nothing)."""
    assert len(python_pages()) >= 5
    tutorial = DOCS / "tutorial.md"
    assert sum(b.language == "python" for b in blocks_of(tutorial.read_text())) >= 4


def test_blocks_of_pairs_outputs() -> None:
    text = "x\n```python\nprint(1)\n```\n\n```text\n1\n```\n```go\nfmt.Println()\n```\n"
    python, output, go = blocks_of(text)
    assert (python.language, python.line, python.output) == ("python", 3, "1\n")
    assert output.language == "text" and go.output is None
    assert python.expect_failure is None


def test_expect_failure_marker_is_read() -> None:
    text = "x\n% expect-failure: not yet (issue 1)\n\n```python\nraise ValueError\n```\n"
    (block,) = blocks_of(text)
    assert block.expect_failure == "not yet (issue 1)"
