"""Unit tests of the job queue example (``examples/jobs``), in-process.

Async work runs on trio's ``MockClock`` (``autojump_clock``), so timings are exact and instant.
Threads and processes run on the real clock (an autojump clock would jump while trio waits for
them), and those tests wait for *events* (the queue's own event stream), never for a fixed time.
The HTTP API is in ``test_jobs_http.py``, the terminal demo in ``test_jobs_demo.py``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import pytest
import trio
import trio.testing

import trio_context as tc
from jobs.jobqueue import JobQueue
from jobs.lifetime import open_job_queue
from jobs.model import JobEvent, JobInfo, JobSpec, QueueClosed, SpecError, UnknownJob
from jobs.work import WORK, WORKER, Steps, output_for
from support import child_pids, needs_proc

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")


def spec(kind: str = "async", prompt: str = "p", **fields: object) -> JobSpec:
    options: dict[str, object] = {"steps": 4, "step_seconds": 1.0, **fields}
    return JobSpec(kind=kind, prompt=prompt, **options)  # type: ignore[arg-type]


async def until(queue: JobQueue, job_id: str, predicate: Callable[[JobInfo], bool]) -> JobInfo:
    """Wait for the first snapshot of ``job_id`` that satisfies ``predicate``."""
    with queue.subscribe(job_id) as events:
        async for event in events:
            if predicate(event.job):
                return event.job
    raise AssertionError(f"{job_id} ended without matching: {queue.get(job_id)}")


def states_of(events: list[JobEvent], job_id: str) -> list[str]:
    """The distinct states one job went through, in order."""
    seen: list[str] = []
    for event in events:
        if event.job.id == job_id and (not seen or seen[-1] != event.job.state):
            seen.append(event.job.state)
    return seen


async def collect(
    queue: JobQueue,
    events: list[JobEvent],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with queue.subscribe() as stream:
        task_status.started()
        async for event in stream:
            events.append(event)


def job_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if "trio_context.to_thread" in t.name]


# -- states and transitions: async work on the autojump clock ---------------------------------


async def test_a_job_goes_queued_running_done(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    events: list[JobEvent] = []
    async with trio.open_nursery() as nursery, open_job_queue(ctx, limit=1) as queue:
        await nursery.start(collect, queue, events)
        first = queue.submit(spec(prompt="first"))
        job_id = queue.submit(spec(prompt="lighthouse"))
        info = await queue.wait(job_id)
        queue.close()
    assert info.state == "done" and info.reason is None
    assert info.outputs == tuple(output_for("lighthouse", k) for k in range(1, 5))
    assert states_of(events, job_id) == ["queued", "running", "done"]
    # It started inside submit(): no reader could look in between, so the events coalesced.
    assert states_of(events, first) == ["running", "done"]
    # The last step and "done" happen without a checkpoint in between: one coalesced event.
    mine = [(e.type, e.job.state, e.job.step, e.job.percent) for e in events if e.job.id == job_id]
    assert mine == [
        ("state", "queued", 0, 0),
        ("state", "running", 0, 0),
        ("progress", "running", 1, 25),
        ("progress", "running", 2, 50),
        ("progress", "running", 3, 75),
        ("state", "done", 4, 100),
    ]
    assert trio.current_time() == 8.0


async def test_cancel_queued_job_never_starts(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    started: list[str] = []

    async def work(ctx: tc.Context, job: JobSpec, steps: Steps) -> None:
        started.append(job.prompt)
        await WORK["async"](ctx, job, steps)

    async with open_job_queue(ctx, limit=1, work={"async": work}) as queue:
        first = queue.submit(spec(prompt="first"))
        second = queue.submit(spec(prompt="second"))
        assert queue.get(second).state == "queued"
        assert queue.cancel(second) is True
        assert queue.get(second).state == "cancelled"
        assert queue.get(second).reason == "safe cancel, before it started"
        assert queue.cancel(second, "now") is False  # final: nothing changes
    assert started == ["first"]
    assert queue.get(first).state == "done"


async def test_safe_cancel_finishes_the_step_and_keeps_partial_results(
    ctx: tc.CancelContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[JobEvent] = []
    async with trio.open_nursery() as nursery, open_job_queue(ctx, limit=1) as queue:
        await nursery.start(collect, queue, events)
        job_id = queue.submit(spec(steps=10))
        await until(queue, job_id, lambda j: j.step == 2)
        assert queue.cancel(job_id, "safe") is True
        assert queue.get(job_id).state == "cancelling"
        assert queue.cancel(job_id, "safe") is False  # already cancelling that way
        info = await queue.wait(job_id)
    # the step in progress (3) finishes, the next never starts
    assert info.state == "cancelled" and info.step == 3
    assert info.outputs == tuple(output_for("p", k) for k in (1, 2, 3))
    assert info.reason == "safe cancel, stopped after step 3 of 10"
    assert trio.current_time() == 3.0
    assert states_of(events, job_id) == ["running", "cancelling", "cancelled"]


async def test_now_cancel_interrupts_at_once(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_job_queue(ctx, limit=1) as queue:
        job_id = queue.submit(spec(steps=10))
        await until(queue, job_id, lambda j: j.step == 2)
        cancelled_at = trio.current_time()
        assert queue.cancel(job_id, "now") is True
        info = await queue.wait(job_id)
    assert info.state == "cancelled" and info.step == 2
    assert info.reason == "cancel now, stopped after step 2 of 10"
    assert trio.current_time() == cancelled_at


async def test_now_upgrades_a_safe_cancel(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_job_queue(ctx, limit=1) as queue:
        job_id = queue.submit(spec(steps=10, step_seconds=5.0))
        await until(queue, job_id, lambda j: j.step == 1)
        await trio.sleep(1)  # in the middle of step 2
        assert queue.cancel(job_id, "safe") is True
        assert queue.cancel(job_id, "now") is True
        assert queue.cancel(job_id, "now") is False
        info = await queue.wait(job_id)
    assert (info.state, info.step) == ("cancelled", 1)
    assert trio.current_time() == 6.0


@pytest.mark.parametrize("mode", ["safe", "now"])
@pytest.mark.parametrize("at", [2.999, 3.0, 3.0001, 3.5])
async def test_cancel_racing_completion_gives_exactly_one_final_state(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock, mode: str, at: float
) -> None:
    events: list[JobEvent] = []
    accepted: list[bool] = []
    async with trio.open_nursery() as nursery, open_job_queue(ctx, limit=1) as queue:
        await nursery.start(collect, queue, events)
        job_id = queue.submit(spec(steps=3))

        async def cancel_at() -> None:
            await trio.sleep(at)
            accepted.append(queue.cancel(job_id, mode))  # type: ignore[arg-type]

        nursery.start_soon(cancel_at)
        final = await queue.wait(job_id)
        await trio.testing.wait_all_tasks_blocked()
        queue.close()
    finals = [e for e in events if e.job.id == job_id and e.job.final]
    assert len(finals) == 1  # exactly one final state, never lost
    assert queue.get(job_id) == final  # and it never changed afterwards
    if accepted == [True]:
        assert final.state == "cancelled"
    else:
        assert accepted == [False] and final.state == "done" and final.step == 3
    if at < 3:
        assert final.state == "cancelled"
    if at > 3:
        assert final.state == "done"


async def test_a_limit_of_2_never_runs_3(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    running = 0
    most = 0

    async def work(ctx: tc.Context, job: JobSpec, steps: Steps) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await WORK["async"](ctx, job, steps)
        finally:
            running -= 1

    async with open_job_queue(ctx, limit=2, work={"async": work}) as queue:
        ids = [
            queue.submit(spec(prompt=str(i), steps=1 + i % 3, step_seconds=0.5 + i % 2))
            for i in range(12)
        ]
        with queue.subscribe() as events:
            queue.cancel(ids[3], "now")  # queued
            async for event in events:
                assert queue.statistics().running <= 2
                job = event.job
                if job.id == ids[1] and job.step == 1:
                    queue.cancel(job.id, "now")
                if job.id == ids[4] and job.state == "running":
                    queue.cancel(job.id, "safe")
                if all(queue.get(i).final for i in ids):
                    break
    assert most == 2
    assert running == 0
    states = [queue.get(i).state for i in ids]
    assert states.count("cancelled") == 3 and states.count("done") == 9


# -- timeouts and stalls ----------------------------------------------------------------------


async def test_stall_and_timeout_are_different_failures(
    ctx: tc.CancelContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_job_queue(ctx, limit=4) as queue:
        stalled = queue.submit(spec(prompt="s", steps=8, hang_at=3), stall_timeout=2.5)
        timed_out = queue.submit(spec(prompt="t", steps=8), timeout=5.5)
        # slow but steady: each step within the stall limit, so it never stalls
        steady = queue.submit(spec(prompt="d", steps=8, step_seconds=2.0), stall_timeout=2.5)
        both = queue.submit(spec(prompt="b", steps=8, hang_at=2), timeout=10, stall_timeout=3)
    s, t, d, b = (queue.get(i) for i in (stalled, timed_out, steady, both))
    assert (s.state, s.step) == ("failed", 2)
    assert s.reason == "stalled: no progress for 2.5 s, at step 2 of 8"
    assert (t.state, t.step, t.reason) == ("failed", 5, "timed out after 5.5 s, at step 5 of 8")
    assert (d.state, d.step) == ("done", 8)
    assert (b.state, b.reason) == ("failed", "stalled: no progress for 3 s, at step 1 of 8")
    assert trio.current_time() == 16.0  # the steady one: 8 steps of 2 s


async def test_an_error_fails_the_job_and_not_the_queue(
    ctx: tc.CancelContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_job_queue(ctx, limit=2) as queue:
        bad = queue.submit(spec(fail_at=3))
        good = queue.submit(spec())
    assert queue.get(bad).state == "failed" and queue.get(bad).step == 2
    assert queue.get(bad).reason == "error: StepFailed: step 3 failed"
    assert queue.get(good).state == "done"


# -- close, destroy, the parent context -------------------------------------------------------


async def test_close_cancels_queued_lets_running_finish(
    ctx: tc.CancelContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_job_queue(ctx, limit=1) as queue:
        running = queue.submit(spec())
        queued = queue.submit(spec(prompt="q"))
        await until(queue, running, lambda j: j.step == 1)
        queue.close()
        with pytest.raises(QueueClosed):
            queue.submit(spec(prompt="late"))
        assert queue.get(queued).state == "cancelled"
        assert queue.get(queued).reason == "queue closed, before it started"
        with queue.subscribe() as events:  # an all-jobs stream ends once the queue is done
            async for _ in events:
                pass
        assert queue.get(running).state == "done"


async def test_close_deadline_cancels_what_is_still_running(
    ctx: tc.CancelContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_job_queue(ctx, limit=2) as queue:
        short = queue.submit(spec(steps=2))
        long = queue.submit(spec(steps=100))
        queue.close(timeout=4.5)
    assert queue.get(short).state == "done"
    assert queue.get(long).state == "cancelled"
    assert queue.get(long).reason == "close deadline passed, stopped after step 4 of 100"
    assert trio.current_time() == 4.5


async def test_destroy_cancels_everything_now(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_job_queue(ctx, limit=2) as queue:
        ids = [queue.submit(spec(prompt=str(i), steps=100)) for i in range(4)]
        await until(queue, ids[0], lambda j: j.step == 3)
        queue.destroy()
        queue.destroy()  # idempotent
        with pytest.raises(QueueClosed):
            queue.submit(spec())
    assert [queue.get(i).state for i in ids] == ["cancelled"] * 4
    assert queue.get(ids[0]).reason == "queue destroyed, stopped after step 3 of 100"
    assert queue.get(ids[3]).reason == "queue destroyed, before it started"
    assert trio.current_time() == 3.0


async def test_the_parent_context_ending_destroys_the_queue(
    ctx: tc.CancelContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    parent = tc.with_timeout(ctx, 2.5)
    async with open_job_queue(parent, limit=1) as queue:
        running = queue.submit(spec())
        queued = queue.submit(spec(prompt="q"))
    assert queue.get(running).state == "cancelled" and queue.get(running).step == 2
    assert queue.get(queued).state == "cancelled"
    assert trio.current_time() == 2.5


async def test_an_error_in_the_block_destroys_the_queue(
    ctx: tc.CancelContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    with pytest.raises(KeyError):
        async with open_job_queue(ctx, limit=1) as queue:
            job_id = queue.submit(spec())
            raise KeyError("boom")
    assert queue.get(job_id).state == "cancelled"
    assert trio.current_time() == 0


async def test_leaving_the_block_runs_the_queued_jobs(
    ctx: tc.CancelContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_job_queue(ctx, limit=1) as queue:
        ids = [queue.submit(spec(prompt=str(i))) for i in range(3)]
    assert [queue.get(i).state for i in ids] == ["done"] * 3
    assert trio.current_time() == 12.0


# -- result cache, events, errors -------------------------------------------------------------


async def test_results_are_cached_by_spec(
    ctx: tc.CancelContext, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_job_queue(ctx, limit=2, cache_size=1) as queue:
        first = await queue.wait(queue.submit(spec(prompt="a")))
        again = queue.get(queue.submit(spec(prompt="a")))
        assert again.state == "done" and again.cached and again.outputs == first.outputs
        assert again.reason == "from the result cache"
        await queue.wait(queue.submit(spec(prompt="b")))  # evicts "a" (cache_size=1)
        assert not queue.get(queue.submit(spec(prompt="a"))).cached
        failed = await queue.wait(queue.submit(spec(prompt="f", fail_at=2)))
        assert failed.state == "failed"
        assert not queue.get(queue.submit(spec(prompt="f", fail_at=2))).cached
    assert queue.statistics().cached_results == 1


async def test_a_slow_subscriber_gets_coalesced_events(
    ctx: tc.CancelContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_job_queue(ctx, limit=3) as queue:
        with queue.subscribe() as events:
            ids = [queue.submit(spec(prompt=str(i), steps=50, step_seconds=0.1)) for i in range(3)]
            await queue.join()  # the queue never waited for the reader
            assert events.unread == 3  # one per job, however many events there were
            queue.close()  # so the stream of all jobs ends once it is read
            got = [event async for event in events]
    # (they finish at the same moment, in no particular order)
    assert sorted((e.type, e.job.id, e.job.state, e.job.step) for e in got) == [
        ("state", i, "done", 50) for i in ids
    ]


async def test_one_job_stream_ends_after_its_final_state(
    ctx: tc.CancelContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_job_queue(ctx, limit=1) as queue:
        job_id = queue.submit(spec(steps=2))
        with queue.subscribe(job_id) as events:
            got = [(e.type, e.job.state, e.job.step) async for e in events]
        assert got == [("state", "running", 0), ("progress", "running", 1), ("state", "done", 2)]
        with queue.subscribe(job_id) as events:  # a late subscriber: the final snapshot, once
            assert [e.job.state async for e in events] == ["done"]
        assert queue.statistics().subscribers == 0


async def test_bad_input_is_refused(ctx: tc.CancelContext) -> None:
    with pytest.raises(SpecError, match="`kind` must be one of"):
        JobSpec(kind="gpu", prompt="x")
    with pytest.raises(SpecError, match="`steps` must be positive"):
        JobSpec(kind="async", prompt="x", steps=0)
    with pytest.raises(SpecError, match="unknown field"):
        JobSpec.from_json({"kind": "async", "prompt": "x", "colour": "red"})
    with pytest.raises(SpecError, match="prompt"):
        JobSpec.from_json({"kind": "async"})
    with pytest.raises(ValueError, match="`limit` must be an int >= 1"):
        async with open_job_queue(ctx, limit=0):
            pass
    async with open_job_queue(ctx, limit=1) as queue:
        with pytest.raises(UnknownJob):
            queue.get("job-99")
        with pytest.raises(ValueError, match="`mode` must be 'safe' or 'now'"):
            queue.cancel("job-99", "later")  # type: ignore[arg-type]
        with pytest.raises(SpecError, match="`timeout` must be a positive number"):
            queue.submit(spec(), timeout=0)


# -- worker threads (real clock) --------------------------------------------------------------


async def test_thread_job_safe_and_now_cancel(ctx: tc.CancelContext) -> None:
    async with open_job_queue(ctx, limit=2) as queue:
        safe = queue.submit(spec("thread", "safe", steps=1000, step_seconds=0.02))
        now = queue.submit(spec("thread", "now", steps=10, step_seconds=60))  # one long step
        await until(queue, safe, lambda j: j.step >= 2)
        await until(queue, now, lambda j: j.state == "running")
        assert queue.cancel(safe, "safe") and queue.cancel(now, "now")
        with trio.fail_after(10):  # "now" does not wait for the 60 s step
            s, n = await queue.wait(safe), await queue.wait(now)
    assert s.state == "cancelled" and 2 <= s.step < 1000
    assert s.outputs == tuple(output_for("safe", k) for k in range(1, s.step + 1))
    assert (n.state, n.step) == ("cancelled", 0)
    assert job_threads() == []


async def test_thread_job_done_stalled_timed_out(ctx: tc.CancelContext) -> None:
    async with open_job_queue(ctx, limit=3) as queue:
        done = queue.submit(spec("thread", "d", steps=3, step_seconds=0.01))
        stalled = queue.submit(
            spec("thread", "s", steps=3, step_seconds=0.01, hang_at=2), stall_timeout=0.3
        )
        timed_out = queue.submit(spec("thread", "t", steps=1000, step_seconds=0.01), timeout=0.3)
    assert queue.get(done).state == "done"
    assert queue.get(done).outputs == tuple(output_for("d", k) for k in (1, 2, 3))
    assert (queue.get(stalled).state, queue.get(stalled).step) == ("failed", 1)
    assert queue.get(stalled).reason == "stalled: no progress for 0.3 s, at step 1 of 3"
    assert queue.get(timed_out).state == "failed"
    assert (queue.get(timed_out).reason or "").startswith("timed out after 0.3 s")
    assert job_threads() == []


# -- worker processes (real clock) ------------------------------------------------------------


@needs_proc
async def test_process_jobs_done_safe_now(ctx: tc.CancelContext) -> None:
    async with open_job_queue(ctx, limit=3, grace=5) as queue:
        done = queue.submit(spec("process", "d", steps=3, step_seconds=0.01))
        safe = queue.submit(spec("process", "safe", steps=1000, step_seconds=0.05))
        now = queue.submit(spec("process", "now", steps=10, step_seconds=60))
        await until(queue, safe, lambda j: j.step >= 2)
        assert child_pids()  # the workers are running
        assert queue.cancel(safe, "safe") and queue.cancel(now, "now")
        with trio.fail_after(10):  # the worker stops on SIGTERM, long before the grace
            s, n = await queue.wait(safe), await queue.wait(now)
    assert queue.get(done).state == "done"
    assert queue.get(done).outputs == tuple(output_for("d", k) for k in (1, 2, 3))
    assert s.state == "cancelled" and 3 <= s.step < 1000  # the step after the request finished
    assert s.outputs == tuple(output_for("safe", k) for k in range(1, s.step + 1))
    assert (n.state, n.step) == ("cancelled", 0)
    assert child_pids() == set()


@needs_proc
async def test_a_stuck_worker_stalls_and_is_killed(ctx: tc.CancelContext) -> None:
    async with open_job_queue(ctx, limit=2, grace=0.2) as queue:
        stalled = queue.submit(
            spec("process", "s", steps=5, step_seconds=0.01, hang_at=2), stall_timeout=1.0
        )
        failing = queue.submit(spec("process", "f", steps=5, step_seconds=0.01, fail_at=2))
    s, f = queue.get(stalled), queue.get(failing)
    assert (s.state, s.step) == ("failed", 1)
    assert s.reason == "stalled: no progress for 1 s, at step 1 of 5"
    assert (f.state, f.step) == ("failed", 1)
    assert f.reason == "error: StepFailed: worker exited with code 1: worker: step 2 failed"
    assert child_pids() == set()


@needs_proc
async def test_the_worker_gets_the_jobs_deadline_and_stops_itself(ctx: tc.CancelContext) -> None:
    # The worker alone, with the environment a job's worker gets: it stops at the deadline.
    job = tc.with_timeout(ctx, 1.0)
    command = [
        sys.executable,
        str(WORKER),
        "--prompt",
        "x",
        "--steps",
        "1000",
        "--step-seconds",
        "0.02",
    ]
    result = await tc.run_process(ctx, command, env=tc.environ_for(job), propagate_deadline=False)
    assert result.outcome == "exited" and result.returncode == 124
    assert b"deadline passed" in result.stderr
    assert 0.5 < result.duration < 3
    # And in the queue: a job with a timeout fails "timed out", however its worker stopped.
    async with open_job_queue(ctx, limit=1) as queue:
        job_id = queue.submit(spec("process", "t", steps=1000, step_seconds=0.02), timeout=1.0)
    assert (queue.get(job_id).reason or "").startswith("timed out after 1 s")
    assert child_pids() == set()


@needs_proc
async def test_destroy_leaves_no_task_thread_or_process(ctx: tc.CancelContext) -> None:
    before = len(_root_tasks())
    async with open_job_queue(ctx, limit=3, grace=0.5) as queue:
        ids = [
            queue.submit(spec(kind, kind, steps=1000, step_seconds=0.05))
            for kind in ("async", "thread", "process")
        ]
        ids.append(queue.submit(spec("async", "queued")))
        for job_id in ids[:3]:
            await until(queue, job_id, lambda j: j.step >= 1)
        assert len(job_threads()) == 1 and len(child_pids()) == 1
        with trio.fail_after(10):
            queue.destroy()
            await queue.join()
        assert (queue.statistics().running, queue.statistics().queued) == (0, 0)
    assert [queue.get(i).state for i in ids] == ["cancelled"] * 4
    assert job_threads() == [] and child_pids() == set()
    assert len(_root_tasks()) == before


def _root_tasks() -> frozenset[trio.lowlevel.Task]:
    root = trio.lowlevel.current_root_task()
    assert root is not None
    return root.child_nurseries[0].child_tasks


# -- memory limits for worker processes (real clock) -----------------------------------------

MiB = 1 << 20


@needs_proc
@pytest.mark.parametrize("where", ["job", "server"])
async def test_worker_out_of_memory_is_retried_once_then_fails(
    ctx: tc.CancelContext, where: str
) -> None:
    # Each step keeps 48 MiB more: the limit of 64 MiB passes at the first or second step, in
    # the first worker and again in the fresh one that takes over from the step reached.
    leaky = spec("process", "leaky", steps=6, step_seconds=0.3, leak_mib=48)
    server_limit = 64 * MiB if where == "server" else None
    job_limit = 64 * MiB if where == "job" else 1 << 40  # a job cannot raise the server's limit
    async with open_job_queue(ctx, limit=2, memory_limit=server_limit) as queue:
        leaky_id = queue.submit(leaky, memory_limit=job_limit)
        modest_id = queue.submit(spec("process", "modest", steps=2, step_seconds=0.01))
        with trio.fail_after(30):
            job, modest = await queue.wait(leaky_id), await queue.wait(modest_id)
    assert job.state == "failed", job
    reason = job.reason or ""
    assert reason.startswith("out of memory: the process tree's resident memory (")
    assert "passed max_rss (64.0 MiB), in the first worker and in a fresh one" in reason
    assert 1 <= job.step < 6
    # the fresh worker went on from the step reached: each step once, in order
    assert job.outputs == tuple(output_for("leaky", k) for k in range(1, job.step + 1))
    assert modest.state == "done"
    assert child_pids() == set()


async def test_bad_memory_limit_is_refused(ctx: tc.CancelContext) -> None:
    with pytest.raises(ValueError, match="`memory_limit` must be a positive number of bytes"):
        async with open_job_queue(ctx, limit=1, memory_limit=0):
            pass
    async with open_job_queue(ctx, limit=1) as queue:
        with pytest.raises(SpecError, match="`memory_limit` must be a positive number of bytes"):
            queue.submit(spec(), memory_limit=-1)
    with pytest.raises(SpecError, match="`leak_mib` must be positive"):
        JobSpec(kind="process", prompt="x", leak_mib=0)


@needs_proc
async def test_a_worker_told_to_stop_saves_its_partial_results_without_a_signal() -> None:
    from jobs.work import start_worker

    ctx = tc.with_cancel(tc.background())
    steps = Steps(lambda output: None, tc.background(), grace=10)

    def on_line(stream: str, line: str) -> None:
        if line.startswith("step 2/"):
            ctx.cancel(KeyError("user pressed stop"))

    job = spec("process", "partial", steps=1000, step_seconds=0.2)
    result = await start_worker(ctx, job, steps, on_line=on_line)
    stderr = result.stderr.decode()
    assert result.returncode == 143 and result.signal is None  # it stopped itself: no SIGTERM
    assert not result.killed and result.outcome == "cancelled"
    assert "told to stop (graceful): KeyError: 'user pressed stop'" in stderr
    assert "saved 2/1000 steps" in stderr
