"""pytest plugin benchmark: 1,000 trivial trio tests that use the ``ctx`` fixture vs the same
tests without it, each run by pytest in a subprocess, in the same run of this script.

Run: ``python benchmarks/plugin.py [N]`` (about two minutes with N = 1000). The figure is the ratio
of the two runs' CPU times (user + system of the pytest process, best of REPEATS), pytest's
start-up included, as a user sees it; CPU time because wall time swings with the load of a
shared machine (the wall-time ratio is printed too). The target is <= 1.2x. A second line adds
a project-wide wall-clock limit (``trio_context_timeout``) to the ``ctx`` tests. Lower is
better. Both sides load the plugin (it is installed); only the tests differ.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEATS = 5
TARGET = 1.2

INI = "[pytest]\ntrio_mode = true\n"
WITH_CTX = """
async def test_{i}(ctx):
    await trio.sleep(0)
"""
WITHOUT_CTX = """
async def test_{i}():
    await trio.sleep(0)
"""


def write_project(root: Path, test: str, n: int, ini: str) -> Path:
    """A folder with ``n`` tests built from ``test``, 100 per file."""
    root.mkdir()
    (root / "pytest.ini").write_text(ini)
    for start in range(0, n, 100):
        body = "".join(test.format(i=i) for i in range(start, min(start + 100, n)))
        (root / f"test_{start:05d}.py").write_text("import trio\n" + body)
    return root


def run_pytest(root: Path, n: int) -> tuple[float, float]:
    """Seconds of CPU time (user + system) and of wall time to run the folder's tests; fails
    loudly if any did not pass."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or f"{n} passed" not in done.stdout:
        raise SystemExit(f"pytest failed in {root}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        projects = {
            "without": write_project(Path(tmp, "without"), WITHOUT_CTX, n, INI),
            "ctx": write_project(Path(tmp, "ctx"), WITH_CTX, n, INI),
            "ctx+limit": write_project(
                Path(tmp, "limit"), WITH_CTX, n, INI + "trio_context_timeout = 60\n"
            ),
        }
        cpu = dict.fromkeys(projects, float("inf"))
        wall = dict.fromkeys(projects, float("inf"))
        for _ in range(REPEATS):  # interleaved, so load on the machine hits all alike
            for name, root in projects.items():
                c, w = run_pytest(root, n)
                cpu[name], wall[name] = min(cpu[name], c), min(wall[name], w)
    for name, label in (
        ("ctx", f"{n} trivial trio tests with `ctx` vs without"),
        ("ctx+limit", f"{n} with `ctx` and trio_context_timeout = 60 vs without"),
    ):
        ratio = cpu[name] / cpu["without"]
        verdict = "ok" if ratio <= TARGET else "OVER TARGET"
        extra = (cpu[name] - cpu["without"]) / n * 1e6
        print(
            f"{label:<58} {ratio:6.2f}x CPU  (target <= {TARGET}x)  {verdict}  "
            f"(+{extra:.0f} us/test; wall {wall[name] / wall['without']:.2f}x)"
        )


if __name__ == "__main__":
    main()
