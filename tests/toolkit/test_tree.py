"""Tests for the context-tree dump (``dump``, ``format_tree``)."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

import trio_context as tc


class Key:
    def __repr__(self) -> str:
        return "<request id>"


async def test_dump_is_json_and_describes_each_context(
    autojump_clock: trio.testing.MockClock,
) -> None:
    root = tc.with_cancel(tc.background())
    timed = tc.with_timeout(root, 5)
    valued = tc.with_value(timed, Key(), 42)
    await trio.sleep(1)
    with valued.scope(), timed.scope():
        dump = tc.dump(root)
    assert json.loads(json.dumps(dump)) == dump
    assert dump["kind"] == "with_cancel"
    assert (dump["state"], dump["remaining"], dump["deadline"], dump["cause"]) == (
        "active",
        None,
        None,
        None,
    )
    [t] = dump["children"]
    assert (t["kind"], t["label"], t["remaining"], t["scopes"]) == (
        "with_timeout",
        "with_timeout(5.0)",
        pytest.approx(4),
        2,  # the scope bound through the with_value child shares the timeout's state
    )
    [v] = t["children"]
    assert (v["kind"], v["keys"], v["scopes"], v["children"]) == (
        "with_value",
        ["<request id>"],
        0,
        [],
    )
    assert tc.dump(root)["children"][0]["scopes"] == 0  # scopes closed


async def test_dump_of_a_done_context_shows_why() -> None:
    ctx = tc.with_cancel(tc.background())
    ctx.cancel(ValueError("stop"))
    dump = tc.dump(ctx)
    assert (dump["state"], dump["cause"], dump["children"]) == (
        "cancelled",
        "ValueError('stop')",
        [],
    )


async def test_dump_of_an_expired_context(autojump_clock: trio.testing.MockClock) -> None:
    ctx = tc.with_timeout(tc.background(), 1)
    await trio.sleep(2)
    dump = tc.dump(ctx)
    assert (dump["state"], dump["remaining"]) == ("deadline exceeded", 0)
    assert dump["cause"] is not None and "DeadlineExceeded" in dump["cause"]


async def test_done_children_are_dropped_from_the_tree() -> None:
    root = tc.with_cancel(tc.background())
    kept = tc.with_cancel(root)
    gone = tc.with_cancel(root)
    gone.cancel()
    assert [c["kind"] for c in tc.dump(root)["children"]] == ["with_cancel"]
    del kept


async def test_format_tree(autojump_clock: trio.testing.MockClock) -> None:
    root = tc.with_cancel(tc.background())
    a = tc.with_timeout(root, 5)
    a1 = tc.with_value(a, "request id", 1)
    a2 = tc.without_cancel(a)
    b = tc.with_cancel(root)
    with b.scope():
        text = tc.format_tree(root)
    assert text == "\n".join(
        [
            "with_cancel [active]",
            "├── with_timeout(5.0) [active, 5.000 s left]",
            "│   ├── with_value('request id') [active, 5.000 s left]",
            "│   └── without_cancel [active]",
            "└── with_cancel [active, 1 scope]",
        ]
    )
    del a1, a2


async def test_format_tree_of_a_group_shows_its_context() -> None:
    outer = tc.with_cancel(tc.background())
    async with tc.open_group(outer) as group:
        text = tc.format_tree(outer)
        assert text.splitlines()[1] == "└── with_cancel [active, 1 scope]"
        group.cancel()


def test_a_deep_chain_does_not_hit_the_recursion_limit() -> None:
    ctx: tc.Context = tc.with_cancel(tc.background())
    root = ctx
    chain = [ctx]
    for _ in range(5000):
        ctx = tc.with_cancel(ctx)
        chain.append(ctx)
    assert len(tc.format_tree(root).splitlines()) == 5001
    node = tc.dump(root)
    depth = 0
    while node["children"]:
        node = node["children"][0]
        depth += 1
    assert depth == 100  # nested to NESTED_DEPTH, then flat (json.dumps recurses)
    assert [d["depth"] for d in node["descendants"]] == list(range(101, 5001))


def test_a_chain_10000_deep_dumps_to_json_and_the_output_is_linear() -> None:
    def chain(n: int) -> tuple[tc.Context, list[tc.Context]]:
        ctx: tc.Context = tc.with_cancel(tc.background())
        keep = [ctx]
        for _ in range(n):
            keep.append(ctx := tc.with_cancel(ctx))
        return keep[0], keep

    def size(n: int) -> int:
        root, _keep = chain(n)
        text = tc.format_tree(root)
        assert text.count("\n") == n
        return len(text) + len(json.dumps(tc.dump(root)))

    # linear: the output (what the walk builds) grows 4x, not 16x, for 4x the contexts; the
    # old indentation grew with the depth (20,000 deep: gigabytes)
    assert size(8000) < 4.2 * size(2000)

    root, _keep = chain(10_000)
    data = json.loads(json.dumps(tc.dump(root)))
    assert len(data["children"]) == 1


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="`ctx` must be a trio_context"):
        tc.dump("nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`ctx` must be a trio_context"):
        tc.format_tree(None)  # type: ignore[arg-type]


def test_public_names() -> None:
    assert tc.dump.__module__ == "trio_context"
    assert tc.format_tree.__module__ == "trio_context"
