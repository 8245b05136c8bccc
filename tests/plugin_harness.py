"""The harness of the pytest plugin's tests: ``run`` runs a small inner test file with
``pytester`` in this process, with a conftest that gives inner tests ways to leak on purpose.
Loaded as a plugin by those test modules (``pytest_plugins``)."""

from __future__ import annotations

import textwrap
from typing import Protocol

import pytest

TRIO_MODE = "[pytest]\ntrio_mode = true\n"

# The thread and process leak check runs after the test's fixtures are torn down (what a
# fixture owns and releases at teardown is not a leak), so an inner test that leaks a thread or
# a process hands it to `reaper` or `release`, which only clean up when the session finishes.
# `pool` is a nursery a fixture owns: unlike pytest-trio's `nursery` fixture, the plugin cannot
# know that its teardown cancels what is left in it.
CONFTEST = """
import subprocess
import threading

import pytest
import trio

PROCS: list[subprocess.Popen[bytes]] = []
EVENT = threading.Event()


def pytest_sessionfinish(session):
    EVENT.set()
    for p in PROCS:
        p.kill()
        p.wait()


@pytest.fixture
def reaper():
    return PROCS


@pytest.fixture
def release():
    return EVENT


@pytest.fixture
async def pool():
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()
"""


class Run(Protocol):
    def __call__(
        self, source: str, *args: str, ini: str | None = ..., subprocess: bool = ...
    ) -> pytest.RunResult: ...


def make_run(pytester: pytest.Pytester, request: pytest.FixtureRequest) -> Run:
    """For a ``run`` fixture: run an inner test file with the plugin (loaded with ``-p``
    unless this session already has it through the entry point, which the inner session then
    loads too). ``subprocess=True`` runs the inner session in its own process."""
    plugin = (
        []
        if request.config.pluginmanager.has_plugin("trio_context")
        else [
            "-p",
            "trio_context.pytest_plugin",
        ]
    )

    def run_inner(
        source: str, *args: str, ini: str | None = TRIO_MODE, subprocess: bool = False
    ) -> pytest.RunResult:
        if ini is not None:
            pytester.makeini(ini)
        pytester.makeconftest(CONFTEST)
        pytester.makepyfile(test_inner=textwrap.dedent(source))
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        return runner(*plugin, "-p", "no:cacheprovider", *args)

    return run_inner
