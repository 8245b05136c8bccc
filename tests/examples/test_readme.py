"""The README's first example is a program: run it and check what it prints."""

from __future__ import annotations

import re
import subprocess
import sys

from support import ROOT

README = ROOT / "README.md"


def test_readme_example_runs_and_prints_what_it_says() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None, "README.md lost its first python example"
    code = block.group(1)
    promised = re.search(r'# prints "(.*)"', code)
    assert promised is not None
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == promised.group(1)
