"""The ``>>>`` examples in the package's docstrings (shown in the reference) are true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import trio_context


def modules() -> list[str]:
    return [
        "trio_context",
        *sorted(
            info.name
            for info in pkgutil.walk_packages(trio_context.__path__, prefix="trio_context.")
        ),
    ]


@pytest.mark.parametrize("name", modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module, name, globs={**vars(module), "tc": trio_context}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} docstring example(s) failed"


def test_some_docstring_examples_exist() -> None:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = sum(
        len(test.examples)
        for name in modules()
        for test in finder.find(importlib.import_module(name), name)
    )
    assert found >= 3
