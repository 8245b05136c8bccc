"""The CI runner where daily use goes: pipes that close, hang-ups, bad files, the live view on a
real terminal (a pty), readable causes, --max-parallel and --log-dir.

Every test runs the real program as a subprocess (``python examples/ci_runner``), as a user
would, and waits for marker files with bounded polling, never a bare sleep.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

if sys.platform != "win32":  # ptys and terminal control: POSIX only (the module is skipped)
    import fcntl
    import pty
    import termios

from support import EXAMPLES, ROOT, alive, read_terminal

RUNNER = EXAMPLES / "ci_runner"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes, signals and ptys")


def write(tmp_path: Path, text: str, name: str = "ci.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def command(path: Path, *args: str) -> list[str]:
    return [sys.executable, str(RUNNER), str(path), *args]


def run(path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(path, *args), capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def wait_for(path: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in document["steps"]}


# -- a reader that goes away ------------------------------------------------------------------

MANY_LINES = """
[[steps]]
name = "chatty"
run = "for i in $(seq 1 2000); do echo line $i; done; exit 3"

[[steps]]
name = "cleanup"
run = "echo $$ > cleanup.pid; sleep 0.2; touch cleaned"
needs = ["chatty"]
if = "always()"
"""


def test_piped_into_head_the_job_goes_on_and_keeps_its_exit_code(tmp_path: Path) -> None:
    path = write(tmp_path, MANY_LINES)
    result = tmp_path / "result.json"
    shell = f"{' '.join(command(path, '--json', str(result)))} | head -3; exit ${{PIPESTATUS[0]}}"
    done = subprocess.run(
        ["bash", "-c", shell], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 1, done.stderr  # the job's code: "chatty" failed
    assert len(done.stdout.splitlines()) == 3
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
    assert (tmp_path / "cleaned").exists()  # the cleanup step still ran
    document = load(result)
    assert document["status"] == "failed"
    assert {s["name"]: s["status"] for s in document["steps"]} == {
        "chatty": "failed",
        "cleanup": "passed",
    }


def test_dry_run_piped_into_head(tmp_path: Path) -> None:
    steps = "".join(f'[[steps]]\nname = "s{i}"\nrun = "true"\n' for i in range(200))
    path = write(tmp_path, steps)
    shell = f"{' '.join(command(path, '--dry-run'))} | head -1; exit ${{PIPESTATUS[0]}}"
    done = subprocess.run(
        ["bash", "-c", shell], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0
    assert done.stdout.startswith("job ci (")
    assert done.stderr == ""


def test_ctrl_c_that_kills_the_reader_too_still_cancels_gracefully(tmp_path: Path) -> None:
    """``runner | cat`` on a terminal: Ctrl-C reaches both; ``cat`` dies, the runner's stdout is
    a broken pipe while it cancels; cleanup steps must still run and the JSON be written."""
    path = write(
        tmp_path,
        """
[[steps]]
name = "long"
run = "echo $$ > long.pid; touch ready; while true; do echo tick; sleep 0.05; done"

[[steps]]
name = "on-cancel"
run = "echo $$ > on-cancel.pid; for i in $(seq 1 200); do echo cleaning $i; done; touch cleaned"
needs = ["long"]
if = "cancelled()"
""",
    )
    result = tmp_path / "result.json"
    runner = subprocess.Popen(
        command(path, "--json", str(result)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert runner.stdout is not None and runner.stderr is not None
    reader = subprocess.Popen(["cat"], stdin=runner.stdout, stdout=subprocess.DEVNULL)
    runner.stdout.close()  # only `cat` reads the pipe now
    try:
        wait_for(tmp_path / "ready")
        reader.send_signal(signal.SIGINT)  # the terminal's Ctrl-C reaches the whole pipeline
        reader.wait(timeout=10)
        runner.send_signal(signal.SIGINT)
        assert runner.wait(timeout=30) == 130
        errors = runner.stderr.read().decode()
    finally:
        for proc in (runner, reader):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        runner.stderr.close()
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
    assert (tmp_path / "cleaned").exists()
    document = load(result)
    assert document["status"] == "cancelled"
    assert {s["name"]: s["status"] for s in document["steps"]} == {
        "long": "cancelled",
        "on-cancel": "passed",
    }
    pid = int((tmp_path / "long.pid").read_text())
    assert not alive(pid)


def test_sighup_mid_step_stops_the_tree_runs_cleanup_and_writes_the_json(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[steps]]
name = "server"
run = "sh -c 'echo $$ > child.pid; sleep 60' & echo $$ > server.pid; touch ready; wait"

[[steps]]
name = "cleanup"
run = "touch cleaned"
needs = ["server"]
if = "always()"
""",
    )
    result = tmp_path / "result.json"
    with subprocess.Popen(
        command(path, "--json", str(result)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    ) as runner:
        wait_for(tmp_path / "ready")
        wait_for(tmp_path / "child.pid")
        runner.send_signal(signal.SIGHUP)
        assert runner.wait(timeout=30) == 130
    document = load(result)
    assert document["status"] == "cancelled"
    server = by_name(document)["server"]
    assert server["status"] == "cancelled"
    assert server["cause"].startswith("SIGHUP (terminal closed) ")
    assert (tmp_path / "cleaned").exists()
    for name in ("server.pid", "child.pid"):
        assert not alive(int((tmp_path / name).read_text())), name


# -- bad files and bad arguments: exit 2, nothing runs, every problem listed -------------------


def test_what_the_os_would_refuse_is_rejected_up_front(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        r"""
[job]
env = { "A=B" = "x" }

[[steps]]
name = "first"
run = "touch ran"

[[steps]]
name = "nul-run"
run = "echo a\u0000b"

[[steps]]
name = "nul-env"
run = "true"
env = { GOOD = "v\u0000w", "BAD\u0000NAME" = "x" }

[[steps]]
name = "self"
run = "true"
needs = ["self"]

[[steps]]
name = "x"
run = "true"
needs = ["y"]

[[steps]]
name = "y"
run = "true"
needs = ["x"]

[[steps]]
name = "p"
run = "true"
needs = ["q"]

[[steps]]
name = "q"
run = "true"
needs = ["p"]
""",
    )
    done = run(path)
    assert done.returncode == 2
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert "forced stop" not in done.stderr and "cancelling" not in done.stderr
    problems = done.stderr.splitlines()[1:]
    assert [line.split(": ", 1)[1] for line in problems] == [
        "[job]: env name 'A=B' cannot be used: a variable name must be non-empty, without '=' "
        "or NUL",
        "step 'nul-run': run contains a NUL character, which no shell accepts",
        "step 'nul-env': env name 'BAD\\x00NAME' cannot be used: a variable name must be "
        "non-empty, without '=' or NUL",
        "step 'nul-env': env value 'GOOD' contains a NUL character",
        "step 'self': needs itself",
        "step 'x': needs form a cycle: x -> y -> x",
        "step 'p': needs form a cycle: p -> q -> p",
    ]
    assert not (tmp_path / "ran").exists()


def test_a_gitlab_file_with_what_the_os_would_refuse_is_rejected_up_front(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = write(
        tmp_path,
        'variables:\n  GOOD: "v\\0w"\njob1:\n  script:\n    - "echo a\\0b; touch ran"\n',
        name=".gitlab-ci.yml",
    )
    done = run(path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[1:] == [
        f"{path}:3: step 'job1': env value 'GOOD' contains a NUL character",
        f"{path}:3: step 'job1': its commands contain a NUL character, which no shell accepts",
    ]
    assert not (tmp_path / "ran").exists()


def test_a_long_chain_written_in_reverse_order(tmp_path: Path) -> None:
    count = 1200
    steps = [
        f'[[steps]]\nname = "s{i}"\nrun = "true"\n' + (f'needs = ["s{i - 1}"]\n' if i else "")
        for i in reversed(range(count))
    ]
    path = write(tmp_path, "\n".join(steps))
    done = run(path, "--dry-run")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"stage {count}:" in done.stdout
    looped = write(
        tmp_path, "\n".join(steps).replace('name = "s0"\n', 'name = "s0"\nneeds = ["s1199"]\n')
    )
    done = run(looped, "--dry-run")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "needs form a cycle: s1199 -> s1198 -> " in done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--max-lines", "-5"], "argument --max-lines: must be 0 or more, got -5"),
        (["--max-parallel", "0"], "argument --max-parallel: must be 1 or more, got 0"),
        (["--max-parallel", "two"], "argument --max-parallel: 'two' is not a whole number"),
        (["--json", "/nonexistent/x.json"], "--json /nonexistent/x.json: folder '/nonexistent'"),
        (["--json", "."], "--json .: is a folder, not a file"),
        (["--log-dir", "pyproject.toml"], "--log-dir pyproject.toml: is a file, not a folder"),
    ],
)
def test_bad_arguments_are_rejected_before_the_job_runs(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    path = write(tmp_path, '[[steps]]\nname = "first"\nrun = "touch ran"\n')
    done = run(path, *args)
    assert done.returncode == 2
    assert expected in done.stderr
    assert not (tmp_path / "ran").exists()


def test_a_step_path_cannot_hide_the_shell_and_start_errors_are_plain(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[steps]]
name = "own-path"
run = "echo PATH is $PATH"
env = { PATH = "./bin" }

[[steps]]
name = "remove"
run = "rmdir gone"
cwd = "."

[[steps]]
name = "in-gone"
run = "true"
cwd = "gone"
needs = ["remove"]
""",
    )
    (tmp_path / "gone").mkdir()
    result = tmp_path / "result.json"
    done = run(path, "--json", str(result))
    assert done.returncode == 1
    steps = by_name(load(result))
    assert steps["own-path"]["status"] == "passed"
    assert "[own-path] PATH is ./bin" in re.sub(" +", " ", done.stdout)
    assert steps["in-gone"]["status"] == "failed"
    assert steps["in-gone"]["cause"].startswith("could not start /bin/sh in 'gone': ")
    assert "`" not in done.stdout


# -- readable reports --------------------------------------------------------------------------


def test_causes_are_readable_and_allowed_failures_are_marked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[job]
timeout = 30

[[steps]]
name = "slow"
run = "sleep 10"
timeout = 0.5
continue-on-error = true

[[steps]]
name = "flaky"
run = "exit 4"
continue-on-error = true

[[steps]]
name = "silent"
run = "echo one; sleep 10"
idle-timeout = 0.5

[[steps]]
name = "fine"
run = "true"
""",
    )
    result = tmp_path / "result.json"
    done = run(path, "--json", str(result))
    assert done.returncode == 1, done.stdout
    steps = by_name(load(result))
    assert steps["slow"]["allowed_failure"] is True
    assert steps["flaky"]["allowed_failure"] is True
    assert steps["silent"]["allowed_failure"] is False
    assert steps["fine"]["allowed_failure"] is False
    slow = steps["slow"]["cause"]
    assert re.fullmatch(
        r"step timeout \(0\.5 s\) passed 0\.\d s after the step started "
        r"\(step 'slow' at ci\.toml:6\)",
        slow,
    ), slow
    silent = steps["silent"]["cause"]
    assert silent.startswith("no output for 0.5 s (idle-timeout of step 'silent', ci.toml:17)")
    assert "s after the step started" in silent
    for step in steps.values():
        assert ".py" not in str(step["cause"]) and "trio" not in str(step["cause"])
    assert "[silent] -- no output for 0.5 s: stopping (SIGTERM to its process group)" in re.sub(
        r" +", " ", done.stdout
    )


def test_a_forced_stop_does_not_claim_sigterm(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[steps]]
name = "stubborn"
run = "trap '' TERM; echo $$ > stubborn.pid; touch ready; while true; do sleep 0.05; done"
""",
    )
    out = tmp_path / "out.txt"
    result = tmp_path / "result.json"
    with (
        out.open("wb") as sink,
        subprocess.Popen(
            command(path, "--json", str(result)), stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT
        ) as runner,
    ):
        wait_for(tmp_path / "ready")
        runner.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        while "cancelling" not in out.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        runner.send_signal(signal.SIGINT)
        assert runner.wait(timeout=15) == 130
    text = re.sub(r" +", " ", out.read_text())
    assert "[job] forced stop (second SIGINT (forced stop)): killing every step's processes" in (
        text
    )
    stopping = [line for line in text.splitlines() if line.startswith("[stubborn] -- ")]
    assert "[stubborn] -- stopping (SIGTERM to its process group)" in stopping  # the first ^C
    stubborn = by_name(load(result))["stubborn"]
    assert stubborn["exit_code"] == -signal.SIGKILL  # run_process killed it and said so
    cause = stubborn["cause"]
    assert cause.startswith("second SIGINT (forced stop) ") and "SIGTERM" not in cause
    assert not alive(int((tmp_path / "stubborn.pid").read_text()))


# -- --max-parallel and --log-dir --------------------------------------------------------------


def test_max_parallel_bounds_the_running_steps(tmp_path: Path) -> None:
    steps = "".join(
        f'[[steps]]\nname = "s{i}"\nrun = "echo start >> trace; sleep 0.2; echo end >> trace"\n'
        for i in range(6)
    )
    path = write(tmp_path, steps)
    result = tmp_path / "result.json"
    done = run(path, "--max-parallel", "2", "--json", str(result))
    assert done.returncode == 0, done.stdout
    running = peak = 0
    for event in (tmp_path / "trace").read_text().split():
        running += 1 if event == "start" else -1
        peak = max(peak, running)
    assert peak == 2


def test_log_dir_keeps_every_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[steps]]
name = "many lines"
run = "for i in $(seq 1 500); do echo out $i; done; echo oops >&2"

[[steps]]
name = "../escape"
run = "echo hi"
""",
    )
    logs = tmp_path / "logs" / "deeper"
    done = run(path, "--max-lines", "10", "--log-dir", str(logs))
    assert done.returncode == 0
    assert "out 300" not in done.stdout  # the screen shows 10 lines of it
    assert sorted(p.name for p in logs.iterdir()) == ["01-many_lines.log", "02-escape.log"]
    lines = (logs / "01-many_lines.log").read_text().splitlines()
    assert [line for line in lines if line.startswith("out ")] == [
        f"out {i}" for i in range(1, 501)
    ]  # in order (stderr lines come in between as they were read)
    assert "[err] oops" in lines and len(lines) == 501
    assert (logs / "02-escape.log").read_text() == "hi\n"


# -- the live view on a real terminal ----------------------------------------------------------


def run_on_terminal(path: Path, rows: int, columns: int, timeout: float = 60) -> tuple[int, str]:
    """Run the runner on a pty of ``rows`` x ``columns``; return its exit code and output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("LINES", "COLUMNS")}
    with subprocess.Popen(
        command(path),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env={**env, "TERM": "xterm", "NO_COLOR": "1"},
    ) as proc:
        os.close(slave)
        output = read_terminal(master, proc, timeout)
        code = proc.wait(timeout=5)
    return code, output.decode("utf-8", "replace")


def test_step_output_cannot_drive_the_terminal(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        r"""
[[steps]]
name = "rude"
run = '''
printf 'before\033[2Jafter\n'
printf '\033]0;pwned\007title\n'
printf '10%%\r50%%\r100%%\n'
printf 'tab\there\n'
'''
""",
    )
    code, text = run_on_terminal(path, rows=24, columns=100)
    assert code == 0, text
    assert "\x1b[2J" not in text and "\x1b]0;" not in text and "\x07" not in text
    lines = re.sub(" +", " ", text).replace("\r\n", "\n").split("\n")
    assert any(line.endswith("[rude] beforeafter") for line in lines), lines
    assert any(line.endswith("[rude] title") for line in lines)
    assert any(line.endswith("[rude] 100%") for line in lines)  # the bar's last state
    assert "10%" not in text and "50%" not in text
    assert any(line.endswith("[rude] tab here") for line in lines)  # spaces, no tab


def test_a_hundred_steps_on_a_forty_row_terminal(tmp_path: Path) -> None:
    steps = "".join(
        f'[[steps]]\nname = "step-{i:03d}"\nrun = "sleep 0.{i % 3}"\n' for i in range(100)
    )
    path = write(tmp_path, steps)
    code, text = run_on_terminal(path, rows=40, columns=80)
    assert code == 0, text[-3000:]
    heights = [int(n) for n in re.findall(r"\x1b\[(\d+)F", text)]
    assert heights and max(heights) <= 20  # never more than half the screen
    summaries = re.findall(r"\+ (\d+) more: ([a-z0-9, ]+)", text)
    assert summaries, "the block never said what it left out"
    for hidden, counts in summaries:  # the counts add up to the steps left out
        assert sum(int(part.split()[0]) for part in counts.split(", ")) == int(hidden)
    assert "job ci: passed" in text
    for line in text.replace("\r\n", "\n").split("\n"):
        shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line)
        if shown.startswith(("  ", "job ci: ")):  # the block's lines fit the width
            assert len(shown) < 80, shown


def test_a_progress_bar_without_newlines_keeps_an_idle_step_alive(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[steps]]
name = "dots"
run = "for i in 1 2 3 4 5 6; do printf .; sleep 0.2; done; echo"
idle-timeout = 0.7

[[steps]]
name = "remove"
run = "rmdir gone"

[[steps]]
name = "in-gone"
run = "true"
cwd = "gone"
idle-timeout = 5
needs = ["remove"]
""",
    )
    (tmp_path / "gone").mkdir()
    result = tmp_path / "result.json"
    done = run(path, "--json", str(result))
    assert done.returncode == 1, done.stdout
    steps = by_name(load(result))
    assert steps["dots"]["status"] == "passed"
    assert steps["dots"]["duration"] > 0.7  # longer than its idle limit, never silent
    assert steps["in-gone"]["cause"].startswith("could not start /bin/sh in 'gone': ")
    assert "Traceback" not in done.stderr


def test_closing_the_terminal_stops_the_job_gracefully(tmp_path: Path) -> None:
    """The runner on a terminal that goes away (a closed window, a dropped SSH session): the
    kernel sends SIGHUP, writes to the terminal fail; the job still cancels gracefully."""
    path = write(
        tmp_path,
        """
[[steps]]
name = "long"
run = "echo $$ > long.pid; touch ready; while true; do echo tick; sleep 0.05; done"

[[steps]]
name = "on-cancel"
run = "for i in $(seq 1 50); do echo cleaning $i; done; touch cleaned"
needs = ["long"]
if = "cancelled()"
""",
    )
    result = tmp_path / "result.json"
    master, slave = pty.openpty()

    def own_terminal() -> None:  # in the child: a new session whose terminal is the pty
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    with subprocess.Popen(
        command(path, "--json", str(result)),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env={**os.environ, "TERM": "xterm"},
        preexec_fn=own_terminal,  # the test starts no thread of its own
    ) as proc:
        os.close(slave)
        deadline = time.monotonic() + 15
        while not (tmp_path / "ready").exists():  # keep reading, so the runner never blocks
            assert time.monotonic() < deadline, "the step never started"
            if select.select([master], [], [], 0.05)[0]:
                os.read(master, 65536)
        os.close(master)  # the terminal goes away: SIGHUP to the session
        assert proc.wait(timeout=30) == 130
    document = load(result)
    assert document["status"] == "cancelled"
    long = by_name(document)["long"]
    assert long["status"] == "cancelled"
    assert long["cause"].startswith("SIGHUP (terminal closed) ")
    assert (tmp_path / "cleaned").exists()
    assert not alive(int((tmp_path / "long.pid").read_text()))
