"""Causes and grace budgets across hops: RemoteCause's encodings, the cancel channel to a child
process (Python and shell), and nested grace budgets."""

from __future__ import annotations

import copy
import math
import pickle
import sys
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

import trio_context as tc
from support import PROGRAMS, answering_lifespan, serving
from trio_context.propagation import CANCEL_ACK_FD_ENV_VAR, CANCEL_FD_ENV_VAR, CancelChannel

# -- RemoteCause ------------------------------------------------------------------------------


def test_line_round_trip_keeps_every_field() -> None:
    cause = tc.RemoteCause(
        "DeadlineExceeded", "job 42 timed out", graceful=True, grace=4.5, kind="deadline"
    )
    back = tc.RemoteCause.from_line(cause.to_line())
    assert (back.type_name, back.message, back.graceful, back.grace, back.kind) == (
        "DeadlineExceeded",
        "job 42 timed out",
        True,
        4.5,
        "deadline",
    )
    assert cause.to_line() == "v1 graceful 4.500 deadline DeadlineExceeded job 42 timed out\n"


def test_header_round_trip_and_infinite_grace() -> None:
    cause = tc.RemoteCause("SignalReceived", "received SIGINT; 50% done\n", graceful=False)
    back = tc.RemoteCause.from_header(cause.to_header())
    assert back.type_name == "SignalReceived"
    assert back.message == "received SIGINT; 50% done "  # control characters become spaces
    assert back.graceful is False and math.isinf(back.grace) and back.kind == "cancelled"


def test_copies_and_pickles() -> None:
    cause = tc.RemoteCause("X", "m", graceful=False, grace=1.0, kind="deadline")
    for other in (copy.copy(cause), pickle.loads(pickle.dumps(cause))):
        assert repr(other) == repr(cause)


def test_of_describes_a_local_context_and_keeps_a_remote_origin() -> None:
    err = tc.DeadlineExceeded("context deadline exceeded")
    local = tc.RemoteCause.of(err, KeyError("job"), graceful=True, grace=2.0)
    assert (local.type_name, local.kind, local.grace) == ("KeyError", "deadline", 2.0)
    relayed = tc.RemoteCause.of(tc.ContextCancelled("x"), local, graceful=False, grace=0.0)
    assert (relayed.type_name, relayed.message, relayed.kind) == ("KeyError", "'job'", "deadline")
    assert relayed.graceful is False
    error = relayed.error()
    assert isinstance(error, tc.DeadlineExceeded) and error.__cause__ is relayed


@pytest.mark.parametrize(
    "line",
    [
        "",
        "v2 graceful 1 cancelled X m",
        "v1 gently 1 cancelled X m",
        "v1 graceful -1 cancelled X m",
        "v1 graceful nan cancelled X m",
        "v1 graceful 1 exploded X m",
        "v1 graceful 1 cancelled 9bad m",
    ],
)
def test_malformed_lines_raise_value_error(line: str) -> None:
    with pytest.raises(ValueError):
        tc.RemoteCause.from_line(line)


@given(st.text(max_size=300))
def test_parsers_raise_only_value_error(text: str) -> None:
    for parse in (tc.RemoteCause.from_line, tc.RemoteCause.from_header):
        try:
            parse(text)
        except ValueError:
            pass


# -- the cancel channel to a child process ------------------------------------------------------


async def _start(
    channel: CancelChannel, command: list[str]
) -> tuple[trio.Process, trio.abc.ReceiveStream]:
    import os
    import subprocess

    env = {**os.environ, **channel.environ()}
    proc = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, env=env, pass_fds=channel.child_fds
    )
    channel.spawned()
    assert proc.stdout is not None
    return proc, proc.stdout


async def _read_lines(stream: trio.abc.ReceiveStream, n: int) -> list[str]:
    data = b""
    while data.count(b"\n") < n:
        chunk = await stream.receive_some()
        if not chunk:
            break
        data += chunk
    return data.decode().splitlines()


async def test_a_python_child_learns_the_cause_before_any_signal() -> None:
    channel = CancelChannel()
    proc, out = await _start(channel, [sys.executable, str(PROGRAMS / "cause_child.py")])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(channel.watch)
        assert await _read_lines(out, 1) == ["ready"]
        await channel.wait_listening()
        cause = tc.RemoteCause("KeyError", "job 42", graceful=True, grace=30.0, kind="deadline")
        assert await channel.notify(cause, wait=10) is True  # acknowledged: no signal needed
        lines = await _read_lines(out, 2)
        await proc.wait()
        channel.close()
    done, message = lines
    err, type_name, graceful, grace, left, sigterm = done.split()[1:]
    assert (err, type_name, graceful, grace, sigterm) == (
        "DeadlineExceeded",
        "KeyError",
        "True",
        "30.0",
        "False",
    )
    assert 25 < float(left) <= 30  # the grace it has left, counted down from 30
    assert message == "job 42"
    assert proc.returncode == 0


async def test_the_grace_a_child_gets_caps_its_own_grace_periods() -> None:
    channel = CancelChannel()
    command = [sys.executable, str(PROGRAMS / "cause_child.py"), "nested"]
    proc, out = await _start(channel, command)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(channel.watch)
        await _read_lines(out, 1)
        await channel.wait_listening()
        cancelled = tc.RemoteCause("ContextCancelled", "stop", graceful=True, grace=0.5)
        assert await channel.notify(cancelled, wait=10)
        lines = await _read_lines(out, 3)
        await proc.wait()
        channel.close()
    assert lines[0].split()[1] == "ContextCancelled"
    nested = float(lines[2].split()[1])
    assert 0.3 <= nested < 5  # the child's own 60 s budget was cut to the 0.5 s it was given


async def test_a_forced_line_after_a_graceful_one_ends_the_hard_stop_too() -> None:
    channel = CancelChannel()
    command = [sys.executable, str(PROGRAMS / "cause_child.py"), "nested"]
    proc, out = await _start(channel, command)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(channel.watch)
        await _read_lines(out, 1)
        await channel.wait_listening()
        assert await channel.notify(tc.RemoteCause("Stop", "soft"), wait=10)
        await _read_lines(out, 2)
        await channel.notify(tc.RemoteCause("Stop", "now", graceful=False, grace=0), wait=10)
        lines = await _read_lines(out, 1)
        await proc.wait()
        channel.close()
    assert float(lines[0].split()[1]) < 5  # the 60 s of cleanup ended with the forced stop


async def test_the_parent_exiting_ends_the_childs_context() -> None:
    channel = CancelChannel()
    proc, out = await _start(channel, [sys.executable, str(PROGRAMS / "cause_child.py")])
    await _read_lines(out, 1)
    channel.close()  # what the parent's death does to the channel
    lines = await _read_lines(out, 2)
    await proc.wait()
    assert lines[0].split()[2] == "ParentExited"


async def test_a_shell_child_reads_the_documented_format() -> None:
    channel = CancelChannel()
    script = (
        "read -r v mode grace kind type msg < /dev/fd/$TRIO_CONTEXT_CANCEL_FD; "
        'echo "$v|$mode|$grace|$kind|$type|$msg"'
    )
    proc, out = await _start(channel, ["/bin/sh", "-c", script])
    cause = tc.RemoteCause("SignalReceived", "received SIGINT: stopping", grace=2.0)
    assert await channel.notify(cause, wait=0) is False  # it never said it listens
    lines = await _read_lines(out, 1)
    await proc.wait()
    channel.close()
    assert lines == ["v1|graceful|2.000|cancelled|SignalReceived|received SIGINT: stopping"]


def test_from_environ_ignores_a_descriptor_that_is_not_a_channel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx = tc.from_environ(tc.background(), {CANCEL_FD_ENV_VAR: "0x"})
    assert ctx is tc.background()
    assert "not an open file descriptor" in caplog.text
    with open(__file__, "rb") as f:  # a regular file is not a channel
        ctx = tc.from_environ(tc.background(), {CANCEL_FD_ENV_VAR: str(f.fileno())})
    assert ctx is tc.background()
    assert "not a pipe" in caplog.text


def test_environ_for_drops_an_inherited_channel() -> None:
    base = {CANCEL_FD_ENV_VAR: "7", CANCEL_ACK_FD_ENV_VAR: "8", "A": "b"}
    env = tc.environ_for(tc.background(), base=base)
    assert env == {"A": "b"}


# -- grace budgets ------------------------------------------------------------------------------


async def test_nested_grace_never_exceeds_the_outer_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    job = tc.with_cancel(tc.background())
    job_budget = tc.graceful(job, 5)
    step = tc.with_cancel(job_budget)
    step_budget = tc.graceful(step, 60)  # asks for more than the job has
    assert tc.grace_left(step_budget) == math.inf  # nothing is stopping yet
    start = trio.current_time()
    job.cancel()
    await trio.sleep(0.01)  # the after-funcs that start the grace periods run
    assert tc.grace_left(step_budget) == pytest.approx(5, abs=0.1)  # capped by the job's 5
    hard = tc.hard_context(step_budget)
    assert hard is not None
    await hard.done.wait()
    assert trio.current_time() - start == pytest.approx(5)  # the job's budget, not 60
    assert tc.grace_left(step_budget) == 0


async def test_an_inner_budget_shorter_than_the_outer_one_is_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    job = tc.with_cancel(tc.background())
    step_budget = tc.graceful(tc.with_cancel(tc.graceful(job, 30)), 2)
    start = trio.current_time()
    job.cancel()
    with tc.cleanup(step_budget, 100).move_on():
        await trio.sleep(100)
    assert trio.current_time() - start == pytest.approx(2)


async def test_graceful_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="`soft`"):
        tc.graceful("ctx", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`seconds`"):
        tc.graceful(tc.background(), -1)
    with pytest.raises(TypeError, match="`ctx`"):
        tc.grace_left(None)  # type: ignore[arg-type]


# -- run_process tells its child ----------------------------------------------------------------


async def test_run_process_tells_a_python_child_why_before_any_signal() -> None:
    ctx = tc.with_cancel(tc.background())
    lines: list[str] = []

    def on_line(stream: str, line: str) -> None:
        lines.append(line)
        if line == "ready":
            ctx.cancel(KeyError("job 42"))

    command = [sys.executable, str(PROGRAMS / "cause_child.py")]
    result = await tc.run_process(ctx, command, grace=20, on_line=on_line)
    done, message = lines[1:3]
    err, type_name, graceful, grace, left, sigterm = done.split()[1:]
    assert (err, type_name, graceful, sigterm) == ("ContextCancelled", "KeyError", "True", "False")
    assert 15 < float(grace) <= 20 and 15 < float(left) <= 20  # the grace run_process gives
    assert message == "'job 42'"
    assert result.outcome == "cancelled" and result.returncode == 0 and not result.killed


async def test_run_process_sends_a_deadline_as_a_deadline() -> None:
    ctx = tc.with_cancel(tc.background())
    lines: list[str] = []

    def on_line(stream: str, line: str) -> None:
        lines.append(line)
        if line == "ready":
            ctx.cancel_after(0.05)

    command = [sys.executable, str(PROGRAMS / "cause_child.py")]
    result = await tc.run_process(ctx, command, on_line=on_line)
    assert lines[1].split()[1:3] == ["DeadlineExceeded", "DeadlineExceeded"]
    assert result.outcome == "timed_out" and result.returncode == 0


async def test_run_process_hands_down_what_is_left_of_an_outer_budget() -> None:
    root = tc.with_cancel(tc.background())
    ctx = tc.graceful(root, 2)  # the job has 2 s to wind down, whatever a step asks for
    lines: list[str] = []

    def on_line(stream: str, line: str) -> None:
        lines.append(line)
        if line == "ready":
            root.cancel()

    command = [sys.executable, str(PROGRAMS / "cause_child.py")]
    result = await tc.run_process(ctx, command, grace=60, on_line=on_line)
    assert 0 < float(lines[1].split()[4]) <= 2
    assert result.outcome == "cancelled" and not result.killed


async def test_propagate_cause_false_keeps_the_channel_out() -> None:
    result = await tc.run_process(
        tc.background(),
        ["/bin/sh", "-c", 'echo "${TRIO_CONTEXT_CANCEL_FD:-none}"'],
        propagate_cause=False,
    )
    assert result.stdout.strip() == b"none"


async def test_run_process_hears_a_shell_childs_ack_without_a_watch_task() -> None:
    # The channel is read when the stop comes, not by a task per call: a "listening" written
    # long before, and an "ack" written after the line arrives, are both heard.
    ctx = tc.with_cancel(tc.background())
    script = (
        "echo listening > /dev/fd/$TRIO_CONTEXT_CANCEL_ACK_FD; echo ready; "
        "trap 'echo TERM' TERM; read -r v mode rest < /dev/fd/$TRIO_CONTEXT_CANCEL_FD; "
        'echo "got $mode"; echo ack > /dev/fd/$TRIO_CONTEXT_CANCEL_ACK_FD; '
        # An unheard ack means a term signal a second later (the longest ack wait): stay on.
        "sleep 1.5; echo done"
    )
    lines: list[str] = []

    def on_line(stream: str, line: str) -> None:
        lines.append(line)
        if line == "ready":
            ctx.cancel()

    result = await tc.run_process(ctx, ["/bin/sh", "-c", script], grace=20, on_line=on_line)
    assert lines == ["ready", "got graceful", "done"]  # no "TERM"
    assert result.outcome == "cancelled" and result.returncode == 0 and not result.killed


async def test_a_child_flooding_its_ack_pipe_is_still_stopped() -> None:
    # Hostile: endless writes on the ack pipe, SIGTERM ignored. The stop reads at most a few
    # pipes' worth of it, then the term signal and, after the grace, SIGKILL end the child.
    ctx = tc.with_cancel(tc.background())
    script = (
        "trap '' TERM; echo ready; "
        "while :; do echo listening; done > /dev/fd/$TRIO_CONTEXT_CANCEL_ACK_FD"
    )

    def on_line(stream: str, line: str) -> None:
        if line == "ready":
            ctx.cancel()

    with trio.fail_after(20):
        result = await tc.run_process(ctx, ["/bin/sh", "-c", script], grace=0.5, on_line=on_line)
    assert result.outcome == "cancelled" and result.killed


# -- over HTTP ----------------------------------------------------------------------------------

httpx = pytest.importorskip("httpx")
pytest.importorskip("hypercorn")


async def test_a_servers_deadline_arrives_typed_at_an_httpx_client() -> None:

    server_cap = tc.with_timeout(tc.background(), 0.2)  # the server's own limit per request

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await trio.sleep_forever()

    async with serving(answering_lifespan(tc.ContextMiddleware(app, parent=server_cap))) as url:
        async with httpx.AsyncClient(transport=tc.httpx_transport()) as client:
            with pytest.raises(tc.DeadlineExceeded) as caught:
                await client.get(url)
    remote = caught.value.__cause__
    assert isinstance(remote, tc.RemoteCause)
    assert (remote.type_name, remote.kind, remote.graceful) == (
        "DeadlineExceeded",
        "deadline",
        False,
    )


async def test_a_servers_cancel_cause_arrives_typed_and_the_answer_still_says_it() -> None:

    shutdown = tc.with_cancel(tc.background())
    entered = trio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        entered.set()
        await trio.sleep_forever()

    async with serving(answering_lifespan(tc.ContextMiddleware(app, parent=shutdown))) as url:
        async with (
            httpx.AsyncClient(transport=tc.httpx_transport()) as typed,
            httpx.AsyncClient() as plain,
        ):
            async with trio.open_nursery() as nursery:

                async def stop_when_entered() -> None:
                    await entered.wait()
                    shutdown.cancel(KeyError("maintenance"))

                nursery.start_soon(stop_when_entered)
                with pytest.raises(tc.ContextCancelled) as caught:
                    await typed.get(url)
            answer = await plain.get(url)  # the parent is done: answered at once
    remote = caught.value.__cause__
    assert isinstance(remote, tc.RemoteCause)
    assert (remote.type_name, remote.message) == ("KeyError", "'maintenance'")
    assert answer.status_code == 503
    assert tc.RemoteCause.from_header(answer.headers[tc.CAUSE_HEADER]).type_name == "KeyError"
    assert answer.json()["cause"]["type"] == "KeyError"


async def test_baggage_is_forwarded_across_two_hops() -> None:

    seen: list[str] = []

    async def last(scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        seen.append(headers.get(b"baggage", b"").decode())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async with serving(answering_lifespan(tc.ContextMiddleware(last))) as last_url:

        async def middle(scope: Any, receive: Any, send: Any) -> None:
            transport = tc.httpx_transport(baggage=("hop",))
            async with httpx.AsyncClient(transport=transport) as client:
                with tc.with_value(tc.current(), "hop", "middle").scope():
                    await client.get(last_url)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        async with serving(answering_lifespan(tc.ContextMiddleware(middle))) as middle_url:
            async with httpx.AsyncClient() as client:
                response = await client.get(
                    middle_url, headers={"baggage": "tenant=acme,user=bob,hop=client"}
                )
    assert response.status_code == 200
    assert tc.parse_baggage(seen[0]) == {"tenant": "acme", "user": "bob", "hop": "middle"}


async def test_forward_baggage_false_sends_only_the_chosen_keys() -> None:
    sent: list[str] = []

    def handler(request: Any) -> Any:
        sent.append(request.headers.get("baggage", ""))
        return httpx.Response(200)

    ctx = tc.with_value(tc.background(), "k", "v")
    from trio_context.propagation._codecs import INCOMING_BAGGAGE

    ctx = tc.with_value(ctx, INCOMING_BAGGAGE, {"tenant": "acme"})
    for forward in (True, False):
        transport = tc.httpx_transport(
            httpx.MockTransport(handler), baggage=("k",), forward_baggage=forward
        )
        async with httpx.AsyncClient(transport=transport) as client:
            with ctx.scope():
                await client.get("http://test/")
    assert [tc.parse_baggage(b) for b in sent] == [{"tenant": "acme", "k": "v"}, {"k": "v"}]
