"""The job queue's terminal demo, run as a real program: ``python examples/jobs demo``.

Stdout is a pipe, so the demo prints plain lines (the live view is for terminals). The final
states are the same on every run; the steps at which the cancelled jobs stopped may differ by one.
Ctrl-C is sent as SIGINT once the demo has shown that jobs are running (read from its output).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from support import EXAMPLES, ROOT

DEMO = [sys.executable, str(EXAMPLES / "jobs"), "demo"]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def final_states(stdout: str) -> dict[str, tuple[str, str, str]]:
    """{job id: (kind, state, reason)} from the "final states:" table."""
    table = stdout.split("final states:\n", 1)[1]
    rows: dict[str, tuple[str, str, str]] = {}
    for line in table.splitlines():
        match = re.fullmatch(r"  (job-\d+) +(\w+) +(\w+) +\d+/\d+ +\d+%(?:  (.*))?", line)
        assert match, line
        rows[match[1]] = (match[2], match[3], match[4] or "")
    return rows


def test_demo_prints_the_expected_final_states() -> None:
    done = subprocess.run(DEMO, capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    rows = final_states(done.stdout)
    assert {job: (kind, state) for job, (kind, state, _) in rows.items()} == {
        "job-1": ("async", "done"),
        "job-2": ("thread", "cancelled"),
        "job-3": ("process", "done"),
        "job-4": ("async", "cancelled"),
        "job-5": ("process", "cancelled"),
        "job-6": ("async", "failed"),
        "job-7": ("thread", "failed"),
        "job-8": ("async", "done"),
    }
    assert re.fullmatch(r"safe cancel, stopped after step [34] of 12", rows["job-2"][2])
    assert rows["job-4"][2] == "safe cancel, before it started"
    assert re.fullmatch(r"cancel now, stopped after step [23] of 20", rows["job-5"][2])
    assert rows["job-6"][2].startswith("stalled: no progress for 0.5 s")
    assert rows["job-7"][2].startswith("timed out after 0.35 s")
    assert rows["job-8"][2] == "from the result cache"
    # the plain view: one line per change, with a progress bar
    assert re.search(r"^job-2 thread +cancelling +\[#+-+\]", done.stdout, re.M)
    assert "\x1b[" not in done.stdout


def interrupted_demo(signals: int) -> tuple[int, str]:
    """Start the demo; once a step of job-2 is done, send SIGINT; with ``signals=2``, another
    one once the first has closed the queue (two at once would merge into one); finish."""
    proc = subprocess.Popen(
        DEMO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("job-2 thread  running    [##"):
                proc.send_signal(signal.SIGINT)
                if signals == 1:
                    break
            if "queue closed" in line:
                proc.send_signal(signal.SIGINT)
                break
        out, _ = proc.communicate(timeout=15)
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode, "".join(seen) + out


def test_first_ctrl_c_closes_the_queue_gracefully() -> None:
    code, stdout = interrupted_demo(1)
    assert code == 130
    rows = final_states(stdout)
    assert rows["job-1"][1] == "done"  # the running ones finish (the demo still cancels job-2)
    assert rows["job-2"][1:] == ("cancelled", rows["job-2"][2])
    assert rows["job-2"][2].startswith("safe cancel, stopped after step")
    for job in ("job-3", "job-5", "job-6", "job-7"):  # the queued ones never start
        assert rows[job][1:] == ("cancelled", "queue closed, before it started")
    assert "no cached resubmission" in stdout


def test_second_ctrl_c_destroys() -> None:
    code, stdout = interrupted_demo(2)
    assert code == 130
    rows = final_states(stdout)
    assert rows["job-1"][1] == "cancelled" and rows["job-2"][1] == "cancelled"
    # the hard context's cause, or destroy()'s, whichever the job saw first
    assert re.fullmatch(
        r"(received SIGINT: forcing stop|queue destroyed), stopped after step \d "
        r"of 8",
        rows["job-1"][2],
    )
