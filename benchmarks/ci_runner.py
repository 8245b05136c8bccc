"""CI runner benchmark: the CPU that 200 trivial steps cost, against a plain shell loop.

Run: ``python benchmarks/ci_runner.py`` (about fifteen seconds). Each round runs, in the same
process and interleaved so that load on the machine hits both sides:

- the runner (``python examples/ci_runner``) on 200 steps of ``true``, once chained (each step
  needs the one before) and once all parallel, its output into a pipe as in CI;
- a plain ``sh`` loop that runs ``/bin/sh -c true`` 200 times, one after the other;
- the floor under the runner: Python with trio_context imported, calling ``tc.run_process`` 200
  times in a row (what any runner built on the library pays before doing anything of its own).

CPU is ``resource.getrusage(RUSAGE_CHILDREN)`` around each child: user + system time of the
child and of everything it waited for (the runner's steps, the loop's shells). The runner's own
share (``RUSAGE_SELF`` inside it, Python's start-up and imports included) is reported apart.
Target (issue "The CI runner as a tool people trust"): the runner costs at most 2x the loop. The
runner's start-up (Python, trio and trio_context imported, a one-step pipeline) is measured too,
so the per-step cost can be read without it.
Figures are the median of the rounds; the ratio is printed as a range too.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "examples" / "ci_runner"
STEPS = 200
ROUNDS = 3

# Runs the runner and reports its own CPU (RUSAGE_SELF) on stderr's last line.
_MEASURED = """
import resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    me = resource.getrusage(resource.RUSAGE_SELF)
    print(f"self-cpu {me.ru_utime + me.ru_stime}", file=sys.stderr)
"""


def pipeline(folder: Path, *, chained: bool) -> Path:
    steps: list[str] = []
    for i in range(STEPS):
        needs = f'needs = ["s{i - 1}"]\n' if chained and i else ""
        steps.append(f'[[steps]]\nname = "s{i}"\nrun = "true"\n{needs}')
    path = folder / ("chained.toml" if chained else "parallel.toml")
    path.write_text("\n".join(steps))
    return path


def children_cpu(command: list[str]) -> tuple[float, str]:
    """Run ``command`` to its end; return the CPU seconds it and its children used, and its
    stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used, done.stderr


def runner_cpu(path: Path) -> tuple[float, float]:
    """Return the CPU of one run of the runner on ``path``: in all, and its own share."""
    total, errors = children_cpu([sys.executable, "-c", _MEASURED, str(RUNNER), str(path)])
    own = float(errors.strip().splitlines()[-1].split()[-1])
    return total, own


# The floor under the runner: the same start-up (Python, trio, trio_context) and 200
# `tc.run_process` calls in a row, with nothing around them.
_LIBRARY_LOOP = f"""
import trio, trio_context as tc
async def main():
    for _ in range({STEPS}):
        await tc.run_process(tc.background(), ["/bin/sh", "-c", "true"], capture=False,
                             on_line=lambda stream, line: None)
trio.run(main)
"""


def library_cpu() -> float:
    return children_cpu([sys.executable, "-c", _LIBRARY_LOOP])[0]


def loop_cpu() -> float:
    return children_cpu(
        ["/bin/sh", "-c", f"i=0; while [ $i -lt {STEPS} ]; do /bin/sh -c true; i=$((i+1)); done"]
    )[0]


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        paths = {"chained": pipeline(Path(scratch), chained=True)}
        paths["parallel"] = pipeline(Path(scratch), chained=False)
        one = Path(scratch) / "one.toml"
        one.write_text('[[steps]]\nname = "s"\nrun = "true"\n')
        loops: list[float] = []
        floors: list[float] = []
        starts: list[float] = []
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
        for _ in range(ROUNDS):
            for name, path in paths.items():
                loops.append(loop_cpu())
                floors.append(library_cpu())
                starts.append(runner_cpu(one)[0])
                runs[name].append(runner_cpu(path))
    loop = statistics.median(loops)
    floor = statistics.median(floors)
    start = statistics.median(starts)
    print(
        f"{STEPS} steps of `true`; plain sh loop: {loop * 1e3:.0f} ms CPU; {STEPS} tc.run_process "
        f"calls in a row, start-up included: {floor * 1e3:.0f} ms = {floor / loop:.2f}x the loop "
        "(medians)"
    )
    for name, figures in runs.items():
        total = statistics.median(t for t, _ in figures)
        own = statistics.median(o for _, o in figures)
        ratios = sorted(t / loop for t, _ in figures)
        per_step = (total - loop) / STEPS * 1e3
        print(
            f"  {name:8}: runner {total * 1e3:.0f} ms CPU in all ({own * 1e3:.0f} ms its own, "
            f"start-up included) = {total / loop:.2f}x the loop "
            f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}x; {per_step:.2f} ms per step on top of sh; "
            f"target <= 2x); {total / floor:.2f}x the run_process loop"
        )
        print(
            f"            start-up excluded (the runner on 1 step: {start * 1e3:.0f} ms): "
            f"{(total - start) / loop:.2f}x the loop"
        )


if __name__ == "__main__":
    main()
