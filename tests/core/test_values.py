"""Values at depth: correct at any depth and shape (checked against a dict model), constant
memory per derivation, and safe to derive and read from many threads."""

from __future__ import annotations

import gc
import threading
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

import trio_context as tc


def test_chain_of_distinct_keys_reads_right_at_every_depth() -> None:
    ctx = tc.background()
    chain = []
    for i in range(3000):
        ctx = (
            tc.with_value(ctx, ("k", i), i)
            if i % 3
            else tc.with_cancel(tc.with_value(ctx, ("k", i), i))
        )
        chain.append(ctx)
    for depth in (0, 1, 15, 16, 17, 100, 1500, 2999):
        node = chain[depth]
        assert node.value(("k", depth)) == depth
        assert node.value(("k", 0)) == 0
        assert node.value(("k", depth + 1), "absent") == "absent"  # set below, not visible
    assert chain[-1].value(("k", 1234)) == 1234


def test_a_chain_costs_constant_memory_per_level() -> None:
    def per_level(depth: int) -> float:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        ctx = tc.background()
        for i in range(depth):
            ctx = tc.with_value(ctx, i, i)
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return used / depth

    small, big = per_level(2_000), per_level(20_000)
    assert big < 400, big  # was ~40 KB per level at depth 2,000 when each level copied the map
    assert big < 1.5 * small


def test_resetting_a_key_shadows_it_below_only() -> None:
    base = tc.background()
    for i in range(40):
        base = tc.with_value(base, i, i)
    a = tc.with_value(base, 5, "a")
    b = tc.with_value(a, 5, "b")
    sibling = tc.with_value(base, 5, "sibling")  # branches off a run that moved on
    assert (base.value(5), a.value(5), b.value(5), sibling.value(5)) == (5, "a", "b", "sibling")
    assert tc.with_cancel(a).value(5) == "a" and tc.without_cancel(b).value(5) == "b"


ops = st.lists(
    st.tuples(
        st.integers(0, 10_000),
        st.sampled_from(["value", "cancel", "without"]),
        st.integers(0, 40),
        st.integers(),
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_any_tree_of_derivations_matches_a_dict_model(
    steps: list[tuple[int, str, int, int]],
) -> None:
    nodes: list[tc.Context] = [tc.background()]
    models: list[dict[int, int]] = [{}]
    for pick, kind, key, value in steps:
        i = pick % len(nodes)
        parent, model = nodes[i], models[i]
        if kind == "value":
            nodes.append(tc.with_value(parent, key, value))
            models.append({**model, key: value})
        else:
            nodes.append(tc.with_cancel(parent) if kind == "cancel" else tc.without_cancel(parent))
            models.append(model)
    for node, model in zip(nodes, models, strict=True):
        for key in range(41):
            assert node.value(key, None) == model.get(key), (key, model)


def test_threads_derive_and_read_at_once() -> None:
    root = tc.background()
    for i in range(30):
        root = tc.with_value(root, ("base", i), i)
    errors: list[str] = []

    def work(t: int) -> None:
        ctx = root
        for i in range(2_000):
            ctx = tc.with_value(ctx, (t, i), i)
            if ctx.value((t, i)) != i or ctx.value(("base", 7)) != 7:
                errors.append(f"thread {t} level {i}")
            if root.value((t, i)) is not None:
                errors.append(f"thread {t}: leaked into the parent")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
