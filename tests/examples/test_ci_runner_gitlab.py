"""End-to-end tests of GitLab CI files in the CI runner example: the real program, as a subprocess.

Each test writes a small ``.gitlab-ci.yml`` (usually several jobs, one feature each) to
``tmp_path`` and runs ``python examples/ci_runner`` on it. Jobs report through files (markers,
pids) that the tests read afterwards; the only waiting is bounded polling for a marker file.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from support import EXAMPLES, ROOT, alive, started

pytest.importorskip("yaml")

RUNNER = EXAMPLES / "ci_runner"
DEMO = RUNNER / "gitlab" / ".gitlab-ci.yml"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shells and signals")


def write(folder: Path, text: str, name: str = ".gitlab-ci.yml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def run(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUNNER), str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def run_json(path: Path, expected_code: int, *args: str) -> tuple[dict[str, Any], str]:
    result = path.parent / "result.json"
    done = run(path, "--json", str(result), *args)
    assert done.returncode == expected_code, done.stdout + done.stderr
    document: dict[str, Any] = json.loads(result.read_text())
    return document, done.stdout


def statuses(document: dict[str, Any]) -> dict[str, str]:
    return {step["name"]: step["status"] for step in document["steps"]}


def step(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in document["steps"] if s["name"] == name)


def lines(path: Path) -> list[str]:
    return path.read_text().split()


def wait_for(path: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


# -- stages, needs, when ----------------------------------------------------------------------


def test_stages_order_jobs_of_a_stage_run_together_and_default_stages(tmp_path: Path) -> None:
    # a1 and a2 each wait for the other's marker: they only finish if they run at the same time.
    path = write(
        tmp_path,
        """
        first:
          stage: .pre
          script: echo first >> order
        a1:
          stage: build
          script:
            - touch a1-up
            - for i in $(seq 200); do [ -e a2-up ] && break; sleep 0.02; done; [ -e a2-up ]
            - echo build >> order
        a2:
          stage: build
          script:
            - touch a2-up
            - for i in $(seq 200); do [ -e a1-up ] && break; sleep 0.02; done; [ -e a1-up ]
            - echo build >> order
        unit:
          script: echo "test $CI_JOB_STAGE" >> order
        ship:
          stage: deploy
          script: echo deploy >> order
        last:
          stage: .post
          script: echo post >> order
        """,
    )
    document, _ = run_json(path, 0)
    assert set(statuses(document).values()) == {"passed"}
    assert lines(tmp_path / "order") == [
        "first",
        "build",
        "build",
        "test",
        "test",
        "deploy",
        "post",
    ]
    assert step(document, "unit")["stage"] == "test"  # a job's default stage
    assert [s["stage"] for s in document["steps"]] == [
        ".pre", "build", "build", "test", "deploy", ".post",
    ]  # fmt: skip


def test_needs_dag_empty_needs_optional_needs_and_manual_jobs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        stages: [build, test, deploy]
        slow-build:
          stage: build
          script:  # waits until a job of the last stage, which needs nothing, has run
            - for i in $(seq 200); do [ -e early-ran ] && break; sleep 0.02; done; [ -e early-ran ]
        early:
          stage: deploy
          needs: []
          script: touch early-ran
        gate:
          stage: build
          when: manual
          script: touch gate-ran
        after-gate:
          stage: test
          needs: [gate]
          script: touch after-gate-ran
        maybe-gate:
          stage: test
          needs: [{job: gate, optional: true}, {job: docs, optional: true}]
          script: touch maybe-ran
        docs:
          stage: build
          script: "true"
          rules:
            - if: $NEVER_SET
        deploy:
          stage: deploy
          script: touch deployed
        """,
    )
    document, _ = run_json(path, 0)
    assert statuses(document) == {
        "slow-build": "passed",
        "early": "passed",
        "gate": "skipped",
        "after-gate": "skipped",
        "maybe-gate": "passed",
        "deploy": "passed",  # a manual job is allowed to fail: later stages go on
    }
    assert step(document, "gate")["cause"] == "when: manual (not run here)"
    assert step(document, "after-gate")["cause"] == "needs 'gate', which was skipped"
    assert not (tmp_path / "gate-ran").exists() and not (tmp_path / "after-gate-ran").exists()


def test_failures_when_and_allow_failure(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        stages: [one, two, three]
        flaky:
          stage: one
          script: exit 1
          allow_failure: true
        known-crash:
          stage: one
          script: exit 3
          allow_failure: {exit_codes: [2, 3]}
        broken:
          stage: two
          script:
            - echo step 1
            - exit 4
            - touch not-reached
          allow_failure: {exit_codes: 3}
        never:
          stage: three
          script: touch never-ran
        report:
          stage: three
          when: on_failure
          script: touch reported
        always:
          stage: three
          when: always
          script: touch always-ran
        """,
    )
    document, stdout = run_json(path, 1)
    assert document["status"] == "failed"
    assert statuses(document) == {
        "flaky": "failed",
        "known-crash": "failed",
        "broken": "failed",
        "never": "skipped",
        "report": "passed",
        "always": "passed",
    }
    assert step(document, "broken")["exit_code"] == 4
    allowed = {s["name"]: s["allowed_failure"] for s in document["steps"]}
    assert allowed == {
        "flaky": True,
        "known-crash": True,
        "broken": False,  # exit code 4 is not in exit_codes
        "never": False,
        "report": False,
        "always": False,
    }
    assert step(document, "never")["cause"] == "'broken' failed before it"
    assert "failed (continue-on-error)" in stdout  # shown as an allowed failure
    assert not (tmp_path / "not-reached").exists()  # the first failing line fails the job
    assert not (tmp_path / "never-ran").exists()
    assert (tmp_path / "reported").exists() and (tmp_path / "always-ran").exists()


def test_on_failure_is_skipped_when_nothing_failed_and_a_blocking_manual_job_holds_later_stages(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """
        stages: [one, two]
        ok:
          stage: one
          script: "true"
        approve:
          stage: one
          script: "true"
          rules:
            - when: manual   # from rules: allow_failure is false, so the pipeline waits here
        next:
          stage: two
          script: touch next-ran
        report:
          stage: two
          when: on_failure
          script: touch reported
        """,
    )
    document, _ = run_json(path, 0)
    assert statuses(document) == {
        "ok": "passed",
        "approve": "skipped",
        "next": "skipped",
        "report": "skipped",
    }
    assert not (tmp_path / "next-ran").exists() and not (tmp_path / "reported").exists()


# -- scripts, default:, variables ------------------------------------------------------------


def test_scripts_default_inherit_and_after_script_status(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        default:
          before_script: [export GREETING=hello]
          after_script:
            - echo "$CI_JOB_NAME $CI_JOB_STATUS" >> statuses
        same-shell:
          script:
            - echo "$GREETING from the before_script's shell" > greeting
            - cd sub
            - pwd > ../where
        own-before:
          before_script: [export GREETING=hi]
          script: echo "$GREETING" > own-greeting
          after_script:
            - echo "own after" > own-after
            - exit 7
        fails:
          script: exit 2
        no-defaults:
          inherit: {default: false}
          script: echo "[$GREETING]" > no-defaults
        """,
    )
    (tmp_path / "sub").mkdir()
    document, stdout = run_json(path, 1)
    assert statuses(document) == {
        "same-shell": "passed",
        "own-before": "passed",  # a failing after_script changes nothing
        "fails": "failed",
        "no-defaults": "passed",
    }
    assert (tmp_path / "greeting").read_text() == "hello from the before_script's shell\n"
    assert (tmp_path / "where").read_text().strip() == str((tmp_path / "sub").resolve())
    assert (tmp_path / "own-greeting").read_text() == "hi\n"
    assert (tmp_path / "no-defaults").read_text() == "[]\n"
    assert (tmp_path / "own-after").exists()
    assert sorted((tmp_path / "statuses").read_text().splitlines()) == [
        "fails failed",
        "same-shell success",
    ]
    assert "after_script exit code 7 (ignored)" in stdout
    assert "$ cd sub" in stdout  # each command is shown before it runs


def test_variables_precedence_expansion_and_predefined(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        variables:
          NAME: world
          GREETING: "hello $NAME"
          PRICE: "5 $$ each"
          RAW:
            value: "$NAME stays"
            expand: false
          LEVEL: global
        show:
          variables:
            LEVEL: job
            NAME: job-world
            BOTH: "${GREETING}!"
          script:
            - |
              for v in GREETING PRICE RAW LEVEL BOTH CI GITLAB_CI CI_JOB_NAME CI_JOB_STAGE \\
                       CI_PROJECT_DIR CI_PIPELINE_SOURCE CI_NODE_INDEX CI_NODE_TOTAL \\
                       CI_COMMIT_SHA CI_COMMIT_BRANCH CI_DEFAULT_BRANCH CI_JOB_STATUS; do
                eval "echo \\"$v=\\$$v\\""
              done > vars
        """,
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "trunk"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "m"], cwd=tmp_path, check=True)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    run_json(path, 0)
    found = dict(line.split("=", 1) for line in (tmp_path / "vars").read_text().splitlines())
    assert found == {
        "GREETING": "hello job-world",  # a job variable changes what a global one expands to
        "PRICE": "5 $ each",
        "RAW": "$NAME stays",
        "LEVEL": "job",
        "BOTH": "hello job-world!",
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_JOB_NAME": "show",
        "CI_JOB_STAGE": "test",
        "CI_PROJECT_DIR": str(tmp_path.resolve()),
        "CI_PIPELINE_SOURCE": "push",
        "CI_NODE_INDEX": "1",
        "CI_NODE_TOTAL": "1",
        "CI_COMMIT_SHA": sha,
        "CI_COMMIT_BRANCH": "trunk",
        "CI_DEFAULT_BRANCH": "trunk",
        "CI_JOB_STATUS": "running",
    }


# -- timeout, retry, parallel ------------------------------------------------------------------


def test_timeout_stops_the_whole_tree_and_after_script_still_runs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        slow:
          timeout: 1s
          script:
            - sleep 30 & echo $! > child.pid
            - echo $$ > shell.pid
            - wait
          after_script:
            - echo "$CI_JOB_STATUS" > after-status
        next:
          stage: deploy
          script: touch next-ran
        """,
    )
    document, _ = run_json(path, 1)
    assert statuses(document) == {"slow": "timed_out", "next": "skipped"}
    assert "step timeout (1 s)" in step(document, "slow")["cause"]
    assert (tmp_path / "after-status").read_text() == "timedout\n"
    for name in ("child.pid", "shell.pid"):
        assert not alive(int((tmp_path / name).read_text()))


def test_retry_counts_and_reasons(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        flaky:
          retry: 2
          script:
            - echo try >> flaky-tries
            - '[ "$(wc -l < flaky-tries)" -ge 2 ]'
          after_script: [echo "$CI_JOB_STATUS" >> flaky-after]
        only-timeouts:
          retry: {max: 2, when: job_execution_timeout}
          script:
            - echo try >> timeouts-tries
            - exit 1
        slow-once:
          timeout: 1s
          retry: {max: 1, when: job_execution_timeout}
          script:
            - echo try >> slow-tries
            - '[ "$(wc -l < slow-tries)" -ge 2 ] || sleep 10'
        by-exit-code:
          retry: {max: 1, when: [], exit_codes: [75]}
          script:
            - echo try >> code-tries
            - exit 75
        """,
    )
    document, _ = run_json(path, 1)
    assert statuses(document) == {
        "flaky": "passed",
        "only-timeouts": "failed",
        "slow-once": "passed",  # timed out, then passed on its retry
        "by-exit-code": "failed",
    }
    assert len(lines(tmp_path / "slow-tries")) == 2
    assert len(lines(tmp_path / "flaky-tries")) == 2
    assert lines(tmp_path / "flaky-after") == ["failed", "success"]  # after_script each try
    assert len(lines(tmp_path / "timeouts-tries")) == 1  # a script failure is not a timeout
    assert len(lines(tmp_path / "code-tries")) == 2


def test_parallel_count_and_matrix_names_and_needs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        stages: [test, report]
        shard:
          parallel: 3
          script: echo "$CI_JOB_NAME $CI_NODE_INDEX/$CI_NODE_TOTAL" >> shards
        cell:
          parallel:
            matrix:
              - PY: ["3.11", "3.12"]
                OS: linux
              - PY: "3.13"
                OS: [mac]
          script: echo "$PY-$OS" >> cells
        report:
          stage: report
          needs: [shard]
          script: touch reported
        """,
    )
    document, _ = run_json(path, 0)
    assert list(statuses(document)) == [
        "shard 1/3", "shard 2/3", "shard 3/3",
        "cell: [3.11, linux]", "cell: [3.12, linux]", "cell: [3.13, mac]",
        "report",
    ]  # fmt: skip
    assert sorted((tmp_path / "shards").read_text().splitlines()) == [
        "shard 1/3 1/3", "shard 2/3 2/3", "shard 3/3 3/3",
    ]  # fmt: skip
    assert sorted(lines(tmp_path / "cells")) == ["3.11-linux", "3.12-linux", "3.13-mac"]


# -- rules, workflow ---------------------------------------------------------------------------


def test_rules_pick_when_allow_failure_and_variables(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.rst").write_text("docs")
    path = write(
        tmp_path,
        """
        variables:
          MODE: release
          TAG: v1.2.3
        equal:
          script: touch equal
          rules:
            - if: $MODE == "release" && ($TAG =~ /^V\\d+/i || $NOPE)
        not-equal:
          script: touch not-equal
          rules:
            - if: $MODE != 'release'
            - if: $UNSET == null && $MODE !~ /debug/
              variables: {FROM_RULE: yes-rule}
              when: always
        left-out:
          script: touch left-out
          rules:
            - if: $UNSET
            - if: $MODE == "debug"
        never:
          script: touch never
          rules:
            - if: $MODE
              when: never
            - when: always
        docs:
          script: echo "$FROM_JOB" > docs-ran
          variables: {FROM_JOB: job}
          rules:
            - exists: ["docs/**/*.rst"]
        no-docs:
          script: touch no-docs
          rules:
            - exists: [nothing/*.md]
        changed:
          script: touch changed
          rules:
            - changes: [src/**/*]
        may-fail:
          script: exit 1
          rules:
            - if: $MODE
              allow_failure: true
        vars:
          script: echo "$FROM_RULE" > rule-var
          rules:
            - if: $UNSET == null
              variables: {FROM_RULE: yes-rule}
        """,
    )
    document, _ = run_json(path, 0)
    assert statuses(document) == {
        "equal": "passed",
        "not-equal": "passed",
        "docs": "passed",
        "changed": "passed",
        "may-fail": "failed",
        "vars": "passed",
    }  # jobs that rules leave out are absent from the report
    assert (tmp_path / "rule-var").read_text() == "yes-rule\n"
    for name in ("left-out", "never", "no-docs"):
        assert not (tmp_path / name).exists()


def test_workflow_rules_stop_the_whole_pipeline(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        workflow:
          rules:
            - if: $CI_PIPELINE_SOURCE == "schedule"
        job:
          script: touch ran
        """,
    )
    document, stdout = run_json(path, 0)
    assert document["steps"] == []
    assert "nothing to run: no workflow: rules matched" in stdout
    assert not (tmp_path / "ran").exists()
    write(
        tmp_path,
        """
        workflow:
          rules:
            - if: $CI_PIPELINE_SOURCE == "push"
              variables: {DEPLOY_TO: staging}
        job:
          script: echo "$DEPLOY_TO" > ran
        """,
    )
    run_json(path, 0)
    assert (tmp_path / "ran").read_text() == "staging\n"


# -- extends, !reference, include, dotenv, --job -----------------------------------------------


def test_extends_reference_and_local_includes_with_wildcards(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        .base:
          variables: {A: base, B: base}
          script: [echo base]
          after_script: [echo "base after" > base-after]
        .setup:
          script:
            - echo "setup $A" >> refs
        """,
        "ci/base.yml",
    )
    write(
        tmp_path,
        """
        .middle:
          extends: .base
          variables: {B: middle}
          tags: [docker]
        """,
        "ci/extra/middle.yml",
    )
    path = write(
        tmp_path,
        """
        include:
          - local: ci/base.yml
          - "/ci/extra/*.yml"
        .other:
          variables: {C: other}
        job:
          extends: [.middle, .other]
          variables: {A: job}
          script:
            - !reference [.setup, script]
            - echo "$A $B $C" > merged
        """,
    )
    document, _ = run_json(path, 0)
    assert statuses(document) == {"job": "passed"}  # hidden jobs are templates, never run
    assert (tmp_path / "merged").read_text() == "job middle other\n"  # hashes merged deeply
    assert (tmp_path / "refs").read_text() == "setup job\n"
    assert (tmp_path / "base-after").exists()
    dry = run(path, "--dry-run")
    assert dry.returncode == 0
    assert "ci/extra/middle.yml:5: job 'job': tags" in dry.stdout  # ignored, with its place


def test_dotenv_reports_reach_later_jobs_unless_artifacts_false(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        stages: [build, test]
        variables: {VERSION: from-yaml}
        build:
          stage: build
          script:
            - echo "VERSION=1.2.3" > build.env
            - echo "# a comment" >> build.env
          artifacts:
            reports: {dotenv: build.env, junit: report.xml}
        later-stage:
          stage: test
          script: echo "$VERSION" > later
        with-needs:
          stage: test
          needs: [build]
          script: echo "$VERSION" > needs
        no-artifacts:
          stage: test
          needs: [{job: build, artifacts: false}]
          script: echo "$VERSION" > none
        """,
    )
    run_json(path, 0)
    assert (tmp_path / "later").read_text() == "1.2.3\n"  # dotenv beats YAML variables
    assert (tmp_path / "needs").read_text() == "1.2.3\n"
    assert (tmp_path / "none").read_text() == "from-yaml\n"


def test_job_option_runs_only_the_named_jobs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        build:
          stage: build
          script: touch built
        test:
          needs: [build]
          parallel: 2
          script: touch "tested-$CI_NODE_INDEX"
        lint:
          script: touch linted
        """,
    )
    document, _ = run_json(path, 0, "--job", "test", "--job", "lint")
    assert statuses(document) == {"test 1/2": "passed", "test 2/2": "passed", "lint": "passed"}
    assert not (tmp_path / "built").exists()
    done = run(path, "--job", "tset")
    assert done.returncode == 2
    assert "--job 'tset': no such job in the pipeline (did you mean 'test'?)" in done.stderr


# -- cancel ------------------------------------------------------------------------------------

CANCEL = """
stages: [build, test, cleanup]
long:
  stage: build
  script:
    - echo $$ > long.pid
    - touch ready
    - sleep 30
  after_script:
    - echo "$CI_JOB_STATUS" > long-after
other:
  stage: build
  script:
    - trap '' TERM; echo $$ > other.pid; touch other-ready; sleep 30
  after_script:
    - touch other-after
later:
  stage: test
  script: touch later-ran
tidy:
  stage: cleanup
  when: always
  script: touch tidy-ran
"""


def test_ctrl_c_once_runs_after_script_and_cancels_jobs_not_started(tmp_path: Path) -> None:
    path = write(tmp_path, CANCEL.replace("trap '' TERM; ", ""))
    with started(path, tmp_path / "out.txt") as proc:
        wait_for(tmp_path / "ready")
        wait_for(tmp_path / "other-ready")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    document = json.loads((tmp_path / "result.json").read_text())
    assert document["status"] == "cancelled"
    assert statuses(document) == {
        "long": "cancelled",
        "other": "cancelled",
        "later": "cancelled",
        "tidy": "cancelled",  # when: always too: GitLab cancels jobs that have not started
    }
    assert step(document, "later")["cause"] == "pipeline cancelled before it started"
    assert (tmp_path / "long-after").read_text() == "canceled\n"
    assert (tmp_path / "other-after").exists()
    assert not (tmp_path / "later-ran").exists() and not (tmp_path / "tidy-ran").exists()
    for pid_file in tmp_path.glob("*.pid"):
        assert not alive(int(pid_file.read_text()))


def test_ctrl_c_twice_kills_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, CANCEL)
    out = tmp_path / "out.txt"
    with started(path, out) as proc:
        wait_for(tmp_path / "ready")
        wait_for(tmp_path / "other-ready")
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        while "cancelling" not in out.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        forced_at = time.monotonic()
        proc.send_signal(signal.SIGINT)  # `other` ignores SIGTERM: only the forced stop ends it
        assert proc.wait(timeout=10) == 130
        assert time.monotonic() - forced_at < 3
    document = json.loads((tmp_path / "result.json").read_text())
    assert statuses(document)["other"] == "cancelled"
    assert statuses(document)["tidy"] == "cancelled"
    for pid_file in tmp_path.glob("*.pid"):
        assert not alive(int(pid_file.read_text()))


# -- bad files ---------------------------------------------------------------------------------


def test_bad_files_list_every_problem_with_file_and_line_and_run_nothing(tmp_path: Path) -> None:
    write(tmp_path, "included:\n  script: touch ran\n  stgae: test\n", "ci/inc.yml")
    path = write(
        tmp_path,
        """
        include:
          - local: ci/inc.yml
          - remote: https://example.com/ci.yml
        stages: [build, test]
        build:
          stage: build
          script: touch ran
          needs: [test-job]
          timeout: 5 parsecs
        test-job:
          script: [touch ran]
          scirpt: oops
          needs: [build, nope]
          retry: 5
          when: sometimes
          allow_failure: maybe
        a:
          script: "true"
          needs: [b]
        b:
          script: "true"
          needs: [a]
        bad-if:
          script: "true"
          variables: {FLAG: true}
          rules:
            - if: $A == "x" &&
        no-script:
          stage: deploy
        """,
    )
    done = run(path)
    assert done.returncode == 2, done.stdout + done.stderr
    err = done.stderr
    where = f"{path}"
    expected = [
        f"{tmp_path}/ci/inc.yml:3: job 'included': unknown key 'stgae' (did you mean 'stage'?)",
        f"{where}:4: include: 'remote' needs a GitLab server",
        f"{where}:9: job 'build': needs 'test-job', of the later stage 'test' (stage 'build')",
        f"{where}:10: job 'build': timeout: unknown unit 'parsecs'",
        f"{where}:13: job 'test-job': unknown key 'scirpt' (did you mean 'script'?)",
        f"{where}:14: job 'test-job': needs 'nope': no such job",
        f"{where}:15: job 'test-job': retry must be 0, 1 or 2",
        f"{where}:16: job 'test-job': when must be one of on_success,",
        f"{where}:17: job 'test-job': allow_failure must be true, false or exit_codes",
        "needs form a cycle: a -> b -> a",
        f"{where}:26: job 'bad-if': variable FLAG must be a text or a number, got True",
        f"{where}:28: job 'bad-if': bad if: expected a $VARIABLE",
        f"{where}:29: job 'no-script': no script:",
        f"{where}:30: job 'no-script': stage 'deploy' is not in stages",
    ]
    for text in expected:
        assert text in err, f"{text!r} not in:\n{err}"
    assert not (tmp_path / "ran").exists()


def test_yaml_syntax_errors_and_unknown_tags_have_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "job:\n  script: [a, b\nother: 1\n")
    done = run(path)
    assert done.returncode == 2
    assert f"{path}:3: not valid YAML" in done.stderr
    write(tmp_path, "job:\n  script: !include other.yml\n")
    done = run(path)
    assert f"{path}:2: unknown YAML tag !include (GitLab knows only !reference)" in done.stderr


# -- the demo ----------------------------------------------------------------------------------


def test_demo_pipeline_passes_and_leaves_nothing_behind(tmp_path: Path) -> None:
    before = sorted(p.name for p in DEMO.parent.iterdir())
    done = run(DEMO, "--json", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    stdout = done.stdout
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["status"] == "passed"
    assert statuses(document) == {
        "ruff": "passed",
        "mypy": "passed",
        "pytest: [3.11, 0.31]": "passed",
        "pytest: [3.12, 0.31]": "passed",
        "wheel": "passed",
        "staging": "passed",
        "production": "skipped",
        "cleanup": "passed",
    }
    assert "deploying trio_demo 0.1.0 to staging" in stdout  # the dotenv report reached it
    assert sorted(p.name for p in DEMO.parent.iterdir()) == before
    dry = run(DEMO, "--dry-run")
    assert "left out: docs: no rule matched" in dry.stdout
    assert "default: image" in dry.stdout


BLOCK_YAML = (
    "import runpy, sys; sys.modules['yaml'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def test_pyyaml_stays_optional(tmp_path: Path) -> None:
    toml = write(tmp_path, '[[steps]]\nname = "a"\nrun = "true"\n', "ci.toml")
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_YAML, str(RUNNER), str(toml)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr  # TOML pipelines never import it
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_YAML, str(RUNNER), str(DEMO), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "GitLab CI files need PyYAML" in done.stderr
    assert "pip install -e '.[test]'" in done.stderr
