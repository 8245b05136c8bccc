"""A snapshot of a live context tree, for debugging: :func:`dump` and :func:`format_tree`.

Rules for callers:

- These are for people, not for program logic: print the tree from a debug endpoint, a
  ``SIGUSR1`` handler or a key press to see which contexts are alive, which are done and why,
  and where trio scopes are still bound. Don't branch on the output; its text may change.
- Only *live* descendants are listed (``ctx.children()``): a done child is dropped from its
  parent, so a cancelled subtree shows as one done node (the one you dumped) or not at all.
- Both functions only read, so they are idempotent and safe from any thread; a tree that
  changes while it is being read gives a snapshot that may mix moments.

It reads a context's label and bound scopes through the core's inspection hooks
(``label_parts``, ``bound_scopes``).
"""

from __future__ import annotations

import math
from typing import Any

from ._core import Context, bound_scopes, check_parent, label_parts

__all__ = ["dump", "format_tree"]


def _node(ctx: Context) -> dict[str, Any]:
    kind, arg = label_parts(ctx)
    err = ctx.err
    if err is None:
        state = "active"
    else:
        state = "deadline exceeded" if isinstance(err, TimeoutError) else "cancelled"
    remaining = ctx.remaining()
    deadline = ctx.deadline
    cause = ctx.cause
    return {
        "kind": kind,
        "label": kind if arg is None else f"{kind}({arg!r})",
        "state": state,
        "deadline": None if deadline == math.inf else deadline,
        "remaining": None if remaining == math.inf else remaining,
        "keys": [repr(arg)] if kind == "with_value" else [],
        "cause": None if cause is None else repr(cause),
        "scopes": len(bound_scopes(ctx)),
        "children": [],
    }


def dump(ctx: Context) -> dict[str, Any]:
    """Return the tree under ``ctx`` as JSON-serialisable dicts, one per context:

    - ``kind``: the constructor (``"background"``, ``"with_cancel"``, ``"with_timeout"``, ...);
      ``label``: the kind with its argument (``"with_timeout(5.0)"``);
    - ``state``: ``"active"``, ``"cancelled"`` or ``"deadline exceeded"``;
    - ``deadline`` and ``remaining`` (seconds, trio clock; None when there is none);
    - ``keys``: the value key this context adds (``with_value``), as ``repr`` strings;
    - ``cause``: ``repr(ctx.cause)`` or None;
    - ``scopes``: trio scopes open through this context's own cancellation state (scopes bound
      through a ``with_value`` child are counted on the cancellable context it shares);
    - ``children``: the live children, the same way.

    Nesting stops at depth ``NESTED_DEPTH`` (100) below ``ctx``, so that ``json.dumps`` (which
    recurses) works for any tree: a node at that depth has no ``children`` but a flat
    ``descendants`` list, every context below it in depth-first order, each with ``depth``
    (below ``ctx``) and an empty ``children``. Time and memory are linear in the number of
    contexts. Idempotent, safe from any thread::

        json.dumps(tc.dump(job_ctx))

    Raises:
        TypeError: ``ctx`` is not a context.
    """
    check_parent(ctx, "ctx")
    root = _node(ctx)
    stack: list[tuple[Context, dict[str, Any], int]] = [(ctx, root, 0)]
    while stack:  # iterative: a chain of contexts may be deeper than Python's recursion limit
        parent, node, depth = stack.pop()
        if depth == NESTED_DEPTH:
            node["descendants"] = _flat(parent, depth)
            continue
        for child in parent.children():
            child_node = _node(child)
            node["children"].append(child_node)
            stack.append((child, child_node, depth + 1))
    return root


# Below this depth, dump() lists contexts flat: json.dumps recurses twice per level (a dict and
# its "children" list) and stops at Python's recursion limit (1000 by default).
NESTED_DEPTH = 100


def _flat(ctx: Context, depth: int) -> list[dict[str, Any]]:
    """Every context below ``ctx``, depth first, as nodes with a ``depth``."""
    out: list[dict[str, Any]] = []
    stack = [(child, depth + 1) for child in reversed(ctx.children())]
    while stack:
        node, at = stack.pop()
        entry = _node(node)
        entry["depth"] = at
        out.append(entry)
        stack.extend((child, at + 1) for child in reversed(node.children()))
    return out


def _line(node: dict[str, Any]) -> str:
    facts = [node["state"]]
    if node["remaining"] is not None:
        facts.append(f"{node['remaining']:.3f} s left")
    if node["scopes"]:
        facts.append(f"{node['scopes']} scope{'s' if node['scopes'] != 1 else ''}")
    if node["cause"] is not None:
        facts.append(f"cause {node['cause']}")
    return f"{node['label']} [{', '.join(facts)}]"


def format_tree(ctx: Context) -> str:
    """Return :func:`dump` as indented text, one context per line::

        with_cancel [active, 1 scope]
        ├── with_timeout(5.0) [active, 4.200 s left]
        │   └── with_value('request id') [active]
        └── with_cancel [active]

    Below depth ``NESTED_DEPTH`` (see :func:`dump`) the indentation stops growing and each
    line says its depth, so the text is linear in the number of contexts. Idempotent, safe
    from any thread::

        print(tc.format_tree(ctx))

    Raises:
        TypeError: ``ctx`` is not a context.
    """
    root = dump(ctx)
    lines = [_line(root)]
    stack: list[tuple[dict[str, Any], str, bool]] = []

    def push(node: dict[str, Any], prefix: str) -> None:
        kids: list[dict[str, Any]] = node["children"]
        for i in reversed(range(len(kids))):
            stack.append((kids[i], prefix, i == len(kids) - 1))

    push(root, "")
    while stack:
        node, prefix, last = stack.pop()
        lines.append(f"{prefix}{'└── ' if last else '├── '}{_line(node)}")
        push(node, prefix + ("    " if last else "│   "))
        # Below the nesting depth the indentation stops growing (the text stays linear in
        # the number of contexts): each line says its depth instead.
        inner = prefix + ("    " if last else "│   ")
        for flat in node.get("descendants", ()):
            lines.append(f"{inner}└── [depth {flat['depth']}] {_line(flat)}")
    return "\n".join(lines)
