"""End-to-end tests of the CI runner example: the real program, run as a subprocess.

Each test writes a small pipeline to ``tmp_path`` and runs ``python examples/ci_runner``. Steps
report through files (their pids, "I am ready" markers), and the tests wait for those files with
bounded polling loops, never with a bare sleep. After every run the test checks that no process a
step started is still alive.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from support import EXAMPLES, ROOT, alive, read_terminal, started

RUNNER = EXAMPLES / "ci_runner"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")


def write(tmp_path: Path, text: str, name: str = "ci.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run(path: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUNNER), str(path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def run_json(path: Path, expected_code: int) -> tuple[dict[str, Any], str]:
    result_file = path.parent / "result.json"
    done = run(path, "--json", str(result_file))
    assert done.returncode == expected_code, done.stdout + done.stderr
    document: dict[str, Any] = json.loads(result_file.read_text())
    return document, done.stdout


def statuses(document: dict[str, Any]) -> dict[str, str]:
    return {step["name"]: step["status"] for step in document["steps"]}


def wait_for(path: Path, text: str = "", timeout: float = 10) -> str:
    """Poll until ``path`` exists and contains ``text``; return its content."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            content = path.read_text()
            if text in content:
                return content
        time.sleep(0.02)
    raise AssertionError(f"{path.name} never showed {text!r}")


def pids_in(tmp_path: Path) -> list[int]:
    pids = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
    assert pids, "no step wrote its pid"
    return pids


def assert_no_process_left(tmp_path: Path) -> None:
    left = [pid for pid in pids_in(tmp_path) if alive(pid)]
    assert not left, f"processes left alive: {left}"


# -- statuses, conditions, exit codes ---------------------------------------------------------

FAILING = """
[job]
name = "failing"

[[steps]]
name = "ok"
run = "echo hello from ok"

[[steps]]
name = "bad"
run = "echo about to fail >&2; exit 3"
needs = ["ok"]

[[steps]]
name = "after-bad"
run = "touch should-not-exist"
needs = ["bad"]

[[steps]]
name = "flaky"
run = "exit 1"
continue-on-error = true

[[steps]]
name = "after-flaky"
run = "true"
needs = ["flaky"]

[[steps]]
name = "on-failure"
run = "echo reporting"
needs = ["after-bad"]
if = "failure()"

[[steps]]
name = "on-cancel"
run = "true"
needs = ["after-bad"]
if = "cancelled()"

[[steps]]
name = "cleanup"
run = "echo cleaning"
needs = ["after-bad"]
if = "always()"
"""


def test_failed_job_statuses_and_exit_code_1(tmp_path: Path) -> None:
    document, out = run_json(write(tmp_path, FAILING), 1)
    assert document["status"] == "failed"
    assert statuses(document) == {
        "ok": "passed",
        "bad": "failed",
        "after-bad": "skipped",
        "flaky": "failed",
        "after-flaky": "passed",  # continue-on-error: the failure counts as a success
        "on-failure": "passed",
        "on-cancel": "skipped",
        "cleanup": "passed",
    }
    steps = {step["name"]: step for step in document["steps"]}
    assert steps["bad"]["exit_code"] == 3
    assert steps["bad"]["cause"] == "exit code 3"
    assert steps["after-bad"]["cause"] == "needs 'bad', which failed"
    assert steps["after-bad"]["exit_code"] is None
    assert not (tmp_path / "should-not-exist").exists()
    assert "[ok]" in out and "hello from ok" in out
    assert "[bad:err]" in out and "about to fail" in out
    assert "failed (continue-on-error)" in out
    assert out.rstrip().splitlines()[-1].startswith("job failing: failed in ")


def test_passing_job_env_merge_and_cwd(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = write(
        tmp_path,
        """
[job]
name = "env"
env = { A = "job-a", B = "job-b", N = 7 }

[[steps]]
name = "show"
run = 'echo "A=$A B=$B N=$N step=$CI_RUNNER_STEP dir=$(basename "$PWD")" > ../env.txt'
env = { B = "step-b" }
cwd = "sub"
timeout = 10
""",
    )
    document, _ = run_json(path, 0)
    assert document["status"] == "passed"
    assert (tmp_path / "env.txt").read_text() == "A=job-a B=step-b N=7 step=show dir=sub\n"


# -- timeouts and cleanup -----------------------------------------------------------------------


def test_step_timeout_kills_its_tree_and_cleanup_runs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[steps]]
name = "hang"
run = "sleep 60 & echo $! > child.pid; echo $$ > shell.pid; sleep 60"
timeout = 1

[[steps]]
name = "next"
run = "touch next-ran"
needs = ["hang"]

[[steps]]
name = "cleanup"
run = "echo $$ > cleanup.pid; touch cleaned"
needs = ["next"]
if = "always()"
""",
    )
    started_at = time.monotonic()
    document, out = run_json(path, 1)
    assert time.monotonic() - started_at < 10
    assert statuses(document) == {"hang": "timed_out", "next": "skipped", "cleanup": "passed"}
    hang = document["steps"][0]
    assert 0.9 < hang["duration"] < 5
    assert "step timeout (1 s)" in hang["cause"]  # the context's explain() text
    assert "timed out in" in out
    assert (tmp_path / "cleaned").exists()
    assert not (tmp_path / "next-ran").exists()
    assert_no_process_left(tmp_path)


def test_job_timeout_stops_steps_and_cleanup_still_runs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[job]
name = "slow"
timeout = 1.5

[[steps]]
name = "long"
run = "echo $$ > long.pid; sleep 60"

[[steps]]
name = "deploy"
run = "touch deployed"
needs = ["long"]

[[steps]]
name = "notify"
run = "touch notified"
needs = ["deploy"]
if = "failure()"

[[steps]]
name = "cleanup"
run = "sleep 0.5; touch cleaned"
needs = ["deploy"]
if = "always()"
timeout = 5
""",
    )
    document, out = run_json(path, 1)
    assert document["status"] == "failed"
    assert statuses(document) == {
        "long": "timed_out",
        "deploy": "skipped",
        "notify": "passed",
        "cleanup": "passed",  # its cleanup context ignores the job's deadline
    }
    assert "job timeout (1.5 s)" in document["steps"][0]["cause"]
    assert document["steps"][1]["cause"] == "job timed out"
    assert (tmp_path / "cleaned").exists() and (tmp_path / "notified").exists()
    assert "job timed out after 1.5 s" in out
    assert "job slow: failed (timed out)" in out
    assert_no_process_left(tmp_path)


def test_idle_timeout_stops_a_silent_step_and_spares_a_chatty_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[steps]]
name = "stuck"
run = "sleep 60 & echo $! > child.pid; echo $$ > stuck.pid; echo started; sleep 60"
idle-timeout = 0.5
timeout = 20

[[steps]]
name = "after-stuck"
run = "touch after-ran"
needs = ["stuck"]

[[steps]]
name = "chatty"
run = "echo $$ > chatty.pid; for i in 1 2 3 4 5 6 7 8 9 10; do echo tick $i; sleep 0.1; done"
idle-timeout = 0.8
""",
    )
    started_at = time.monotonic()
    document, out = run_json(path, 1)
    assert time.monotonic() - started_at < 10
    assert statuses(document) == {
        "stuck": "timed_out",
        "after-stuck": "skipped",
        "chatty": "passed",
    }
    stuck = document["steps"][0]
    assert stuck["cause"].startswith("no output for 0.5 s (idle-timeout of step 'stuck', ")
    assert stuck["exit_code"] == -signal.SIGTERM
    assert 0.5 <= stuck["duration"] < 5
    assert document["steps"][2]["duration"] > 0.8  # longer than its idle limit, never silent
    assert any(line.startswith("[stuck]") and line.endswith(" started") for line in out.split("\n"))
    assert any("timed out in" in line and "no output for 0.5 s" in line for line in out.split("\n"))
    assert not (tmp_path / "after-ran").exists()
    assert_no_process_left(tmp_path)


def test_step_sees_its_deadline_in_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[steps]]
name = "limited"
run = 'echo "$TRIO_CONTEXT_DEADLINE" > limited.txt'
timeout = 30

[[steps]]
name = "unlimited"
run = 'echo "${TRIO_CONTEXT_DEADLINE:-none}" > unlimited.txt'
""",
    )
    document, _ = run_json(path, 0)
    assert statuses(document) == {"limited": "passed", "unlimited": "passed"}
    _, remaining = (tmp_path / "limited.txt").read_text().strip().split(";")
    assert 20 < float(remaining) <= 30
    assert (tmp_path / "unlimited.txt").read_text() == "none\n"


def test_step_that_leaves_a_background_child_passes_and_the_child_dies(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[steps]]\nname = "spawn"\nrun = "sleep 60 & echo $! > child.pid; echo spawned"\n',
    )
    document, _ = run_json(path, 0)
    assert statuses(document) == {"spawn": "passed"}
    assert_no_process_left(tmp_path)


def test_flood_on_stdout_and_stderr_does_not_deadlock(tmp_path: Path) -> None:
    line = "x" * 60
    path = write(
        tmp_path,
        f"""
[[steps]]
name = "flood"
run = "yes {line} | head -n 80000 >&2 & yes {line} | head -n 80000; wait"
timeout = 20
""",
    )
    document, out = run_json(path, 0)  # about 5 MB on each pipe
    assert statuses(document) == {"flood": "passed"}
    assert "lines of output not shown" in out
    assert len(out) < 100_000


# -- signals --------------------------------------------------------------------------------------

GRACEFUL = """
[[steps]]
name = "long"
run = "sleep 60 & echo $! > child.pid; echo $$ > long.pid; touch ready; wait"

[[steps]]
name = "deploy"
run = "touch deployed"
needs = ["long"]

[[steps]]
name = "on-cancel"
run = "echo $$ > on-cancel.pid; touch on-cancel-ran"
needs = ["deploy"]
if = "cancelled()"

[[steps]]
name = "cleanup"
run = "echo $$ > cleanup.pid; sleep 0.3; touch cleaned"
needs = ["deploy"]
if = "always()"
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_one_signal_cancels_gracefully_and_cleanup_runs(tmp_path: Path, signum: int) -> None:
    path = write(tmp_path, GRACEFUL)
    out = tmp_path / "out.txt"
    with started(path, out) as proc:
        wait_for(tmp_path / "ready")
        proc.send_signal(signum)
        assert proc.wait(timeout=15) == 130
    text = out.read_text()
    assert "cancelling... (" + signal.Signals(signum).name in text
    document = json.loads((tmp_path / "result.json").read_text())
    assert document["status"] == "cancelled"
    assert statuses(document) == {
        "long": "cancelled",
        "deploy": "skipped",
        "on-cancel": "passed",
        "cleanup": "passed",
    }
    cause = document["steps"][0]["cause"]  # readable: who stopped it, and when
    assert re.fullmatch(
        signal.Signals(signum).name
        + r" \(.+\) \d+\.\d s after the step started: the job was cancelled",
        cause,
    ), cause
    assert "trio" not in cause and ".py" not in cause
    assert (tmp_path / "cleaned").exists() and (tmp_path / "on-cancel-ran").exists()
    assert not (tmp_path / "deployed").exists()
    assert f"job ci: cancelled ({signal.Signals(signum).name})" in text
    assert_no_process_left(tmp_path)  # the step's whole tree is gone


def test_sighup_mid_step_stops_the_tree_runs_cleanup_and_writes_json(tmp_path: Path) -> None:
    # The terminal closed. The step also started a daemon (setsid: its own session, its parent
    # gone): under the runner's subreaper it dies with the step all the same.
    path = write(
        tmp_path,
        GRACEFUL.replace(
            'run = "sleep 60 & echo $! > child.pid;',
            "run = \"setsid sh -c 'echo $$ > daemon.pid; exec sleep 60' "
            "</dev/null >/dev/null 2>&1 & sleep 60 & echo $! > child.pid;",
        ),
    )
    out = tmp_path / "out.txt"
    with started(path, out) as proc:
        wait_for(tmp_path / "ready")
        wait_for(tmp_path / "daemon.pid", "\n")
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=15) == 130
    document = json.loads((tmp_path / "result.json").read_text())
    assert document["status"] == "cancelled"
    assert statuses(document)["long"] == "cancelled"
    assert statuses(document)["cleanup"] == "passed" and (tmp_path / "cleaned").exists()
    assert "SIGHUP" in document["steps"][0]["cause"]
    assert_no_process_left(tmp_path)  # daemon.pid included


def test_memory_limit_stops_the_step_and_is_reported(tmp_path: Path) -> None:
    allocate = "import time; b = b'x' * (256 << 20); time.sleep(60)"
    path = write(
        tmp_path,
        f"""
[[steps]]
name = "hungry"
run = "echo $$ > hungry.pid; {sys.executable} -c \\"{allocate}\\""
memory-limit = "64M"
timeout = 30

[[steps]]
name = "after-hungry"
run = "touch after-ran"
needs = ["hungry"]
""",
    )
    started_at = time.monotonic()
    document, out = run_json(path, 1)
    assert time.monotonic() - started_at < 15
    assert statuses(document) == {"hungry": "failed", "after-hungry": "skipped"}
    cause = document["steps"][0]["cause"]
    assert cause.startswith("memory limit: the process tree's resident memory (")
    assert "passed the memory-limit (64.0 MiB) of step 'hungry' (ci.toml:3), " in cause
    assert cause.endswith(" s after the step started")
    assert "memory limit" in out
    assert_no_process_left(tmp_path)


def test_bad_memory_limit_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, '[[steps]]\nname = "a"\nrun = "true"\nmemory-limit = "lots"\n')
    done = run(path)
    assert done.returncode == 2
    assert "memory-limit must be a positive number of bytes or a size like" in done.stderr


def test_two_sigints_kill_a_step_that_ignores_sigterm(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[steps]]
name = "stubborn"
run = "trap '' TERM; sleep 60 & echo $! > child.pid; echo $$ > stubborn.pid; touch ready; wait"

[[steps]]
name = "cleanup"
run = "touch cleaned"
needs = ["stubborn"]
if = "always()"
""",
    )
    out = tmp_path / "out.txt"
    with started(path, out) as proc:
        wait_for(tmp_path / "ready")
        proc.send_signal(signal.SIGINT)
        wait_for(out, "cancelling")  # the first one was handled: SIGTERM sent, grace running
        assert proc.poll() is None
        forced_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 130
        assert time.monotonic() - forced_at < 1.0
    document = json.loads((tmp_path / "result.json").read_text())
    assert statuses(document) == {"stubborn": "cancelled", "cleanup": "cancelled"}
    assert document["steps"][1]["cause"] == "forced stop before it started"
    assert not (tmp_path / "cleaned").exists()
    assert "forced stop" in out.read_text()
    assert_no_process_left(tmp_path)


def test_second_sigint_cuts_cleanup_short(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[steps]]
name = "work"
run = "echo $$ > work.pid; touch ready; sleep 60"

[[steps]]
name = "cleanup"
run = "trap '' TERM; echo $$ > cleanup.pid; touch cleanup-started; sleep 60; touch cleaned"
needs = ["work"]
if = "always()"
timeout = 30
""",
    )
    out = tmp_path / "out.txt"
    with started(path, out) as proc:
        wait_for(tmp_path / "ready")
        proc.send_signal(signal.SIGINT)
        wait_for(tmp_path / "cleanup-started")  # cleanup runs despite the cancel
        forced_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 130
        assert time.monotonic() - forced_at < 1.0
    document = json.loads((tmp_path / "result.json").read_text())
    assert statuses(document) == {"work": "cancelled", "cleanup": "cancelled"}
    assert not (tmp_path / "cleaned").exists()
    assert_no_process_left(tmp_path)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this system")
def test_sigusr1_prints_the_context_tree_and_the_run_goes_on(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[job]
name = "ci"
timeout = 60

[[steps]]
name = "waiting"
run = "echo $$ > waiting.pid; touch ready; while [ ! -e go ]; do sleep 0.02; done; echo went"
timeout = 30

[[steps]]
name = "after"
run = "echo $$ > after.pid; touch after-ran"
needs = ["waiting"]
if = "always()"
""",
    )
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with started(path, out, err) as proc:
        wait_for(tmp_path / "ready")  # the step runs, so the runner listens for SIGUSR1 already
        proc.send_signal(signal.SIGUSR1)
        wait_for(err, "with_value(step 'waiting') [active")
        proc.send_signal(signal.SIGUSR1)  # as often as one likes
        deadline = time.monotonic() + 10
        while err.read_text().count("[job] ci: context tree (SIGUSR1)") < 2:
            assert time.monotonic() < deadline, "the second SIGUSR1 printed nothing"
            time.sleep(0.02)
        assert proc.poll() is None  # the run goes on
        (tmp_path / "go").touch()
        assert proc.wait(timeout=15) == 0
    tree = err.read_text()
    lines = tree.splitlines()
    first = lines.index("[job] ci: context tree (SIGUSR1)")
    assert lines[first + 1].startswith("with_timeout(60.0) [active, ")  # the job
    step = next(i for i, line in enumerate(lines) if "with_timeout(30.0) [active, " in line)
    assert lines[step].startswith(("├── ", "└── "))  # the step, right under the job
    assert "with_value(step 'waiting') [active, " in lines[step + 1]  # named, under the step
    group = next(i for i, line in enumerate(lines) if "with_value(steps group, no limit)" in line)
    assert "with_cancel [active, 1 scope]" in lines[group + 1]  # the group: one step running
    assert "step 'after'" not in tree  # not started yet
    document = json.loads((tmp_path / "result.json").read_text())
    assert statuses(document) == {"waiting": "passed", "after": "passed"}
    text = out.read_text()
    assert "went" in text
    assert "context tree" not in text  # stdout keeps the run's own output only
    assert_no_process_left(tmp_path)


# -- bad files, dry run, the demo, the live view ----------------------------------------------

FIRST = '[[steps]]\nname = "first"\nrun = "touch ran"\n\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            FIRST + '[[steps]]\nname = "b"\nrun = "true"\nneeds = ["first"]\nruns-on = "x"\n',
            ":9: step 'b': unknown key 'runs-on'",
        ),
        (FIRST + '[[steps]]\nname = "b"\nneeds = ["first"]\n', ":5: step 'b': missing run"),
        (
            FIRST + '[[steps]]\nname = "b"\nrun = "true"\ntimeout = "10s"\n',
            ":8: step 'b': timeout must be a positive number of seconds, got '10s'",
        ),
        (
            FIRST.replace('"touch ran"', '"touch ran"\nneeds = ["b"]')
            + '[[steps]]\nname = "b"\nrun = "true"\nneeds = ["first"]\n',
            ":2: step 'first': needs form a cycle: first -> b -> first",
        ),
    ],
    ids=["unknown-key", "missing-run", "bad-timeout", "cycle"],
)
def test_bad_pipeline_files_are_rejected_and_nothing_runs(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    done = run(path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "bad pipeline file, nothing was run" in done.stderr
    assert f"{path}{expected}" in done.stderr
    assert not (tmp_path / "ran").exists()


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, FIRST)
    done = run(path, "--dry-run")
    assert done.returncode == 0
    assert "stage 1:\n  first\n    run: touch ran" in done.stdout
    assert not (tmp_path / "ran").exists()


def test_demo_pipeline_passes(tmp_path: Path) -> None:
    result_file = tmp_path / "demo.json"
    started_at = time.monotonic()
    done = run(RUNNER / "demo.toml", "--json", str(result_file))
    assert time.monotonic() - started_at < 20
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(result_file.read_text())
    assert statuses(document) == {
        "checkout": "passed",
        "unit-tests": "passed",
        "lint": "passed",
        "flood": "passed",
        "integration": "timed_out",
        "package": "passed",
        "report-failure": "skipped",
        "on-cancel": "skipped",
        "cleanup": "passed",
    }
    assert "background helper" in done.stdout and "is gone" in done.stdout
    assert "timed out (continue-on-error)" in done.stdout
    assert "job demo: passed" in done.stdout


def test_live_view_on_a_terminal(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[steps]]\nname = "hello"\nrun = "echo hi; sleep 0.3"\n'
        '[[steps]]\nname = "never"\nrun = "true"\nif = "failure()"\nneeds = ["hello"]\n',
    )
    import pty

    master, slave = pty.openpty()
    with subprocess.Popen(
        [sys.executable, str(RUNNER), str(path)],
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env={**os.environ, "TERM": "xterm", "NO_COLOR": "1"},
    ) as proc:
        os.close(slave)
        text = read_terminal(master, proc, timeout=15).decode()
        assert proc.wait(timeout=5) == 0
    assert "\x1b[" in text  # the status block is redrawn in place
    assert "running" in text
    assert "✓ hello" in text
    assert "- never" in text and "skipped" in text
    assert "job ci: passed" in text


STEP_LEARNS_WHY = (
    "import trio, trio_context as tc\n"
    "async def main():\n"
    "    ctx = tc.from_environ(tc.background())\n"
    "    open('started', 'w').close()\n"
    "    await ctx.done.wait()\n"
    "    c = tc.cause(ctx)\n"
    "    name = c.type_name if isinstance(c, tc.RemoteCause) else type(c).__name__\n"
    "    with open('why', 'w') as f:\n"
    "        f.write(f'{type(ctx.err).__name__} {name}')\n"
    "trio.run(main)\n"
)


def _python_step(tmp_path: Path) -> str:
    (tmp_path / "why.py").write_text(STEP_LEARNS_WHY)
    return f'{sys.executable} "{tmp_path / "why.py"}"'


def test_a_python_step_learns_it_timed_out(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[[steps]]
name = "slow"
run = '{_python_step(tmp_path)}'
timeout = 1
cwd = "{tmp_path}"
""",
    )
    run_json(path, 1)
    # Its own copy of the deadline (TRIO_CONTEXT_DEADLINE) or the runner's word, whichever
    # came first: either way a deadline, not a cancel.
    assert (tmp_path / "why").read_text().split()[0] == "DeadlineExceeded"


def test_a_python_step_learns_it_was_stopped_by_ctrl_c(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[[steps]]
name = "slow"
run = '{_python_step(tmp_path)}'
cwd = "{tmp_path}"
""",
    )
    out = tmp_path / "out.txt"
    with started(path, out) as proc:
        wait_for(tmp_path / "started")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    assert (tmp_path / "why").read_text() == "ContextCancelled SignalReceived"
