"""A tree as plain text for a terminal, indented like ``pstree``.

The same facts as the Mermaid drawing: every label (a supervisor's
strategy, why it gave up, restarts, pids), every edge label, and in words
what the Mermaid drawing says in colour (a child that is not running, one
that is stopping, one that failed).  Pure: :class:`~livekit.trees.TreeNode`
values in, text out.
"""

from __future__ import annotations

from collections.abc import Iterator

from livekit._labels import visible
from livekit.trees.format import TreeNode

#: What each node class's colour says, for the classes that are not plain running.
STATES = {"notstarted": "not running", "stopping": "stopping", "failed": "failed"}


def tree_text(root: TreeNode) -> str:
    """Return the terminal drawing of a tree (a pure function).

    Each child hangs under its parent, after the label of the edge that
    leads to it; a child that is not running, stopping or failed says so
    in brackets.  Control characters in labels are written out, so a
    program's thread names cannot drive the terminal.

    Examples
    --------
    >>> tree = TreeNode("app (one_for_one)", "root", children=[
    ...     TreeNode("db (one_for_all)", "supervisor", "supervises", [
    ...         TreeNode("conn-1", "worker", "supervises"),
    ...         TreeNode("conn-2", "notstarted", "supervises"),
    ...     ]),
    ...     TreeNode("job: raised ValueError('x')", "failed", "started"),
    ... ])
    >>> print(tree_text(tree))
    app (one_for_one)
    ├─ supervises ─ db (one_for_all)
    │  ├─ supervises ─ conn-1
    │  └─ supervises ─ conn-2 [not running]
    └─ started ─ job: raised ValueError('x') [failed]
    """
    return "\n".join(_lines(root))


def _line(node: TreeNode) -> str:
    edge = f"{visible(node.edge)} ─ " if node.edge else ""
    state = STATES.get(node.kind)
    return edge + visible(node.label) + (f" [{state}]" if state else "")


def _lines(root: TreeNode) -> Iterator[str]:
    yield _line(root)
    # Iterative, like format_tree: a deep process tree must not hit the recursion limit.
    stack: list[tuple[str, Iterator[TreeNode], int]] = [
        ("", iter(root.children), len(root.children))
    ]
    while stack:
        prefix, children, left = stack[-1]
        node = next(children, None)
        if node is None:
            stack.pop()
            continue
        last = left == 1
        stack[-1] = (prefix, children, left - 1)
        yield f"{prefix}{'└─ ' if last else '├─ '}{_line(node)}"
        if node.children:
            stack.append(
                (prefix + ("   " if last else "│  "), iter(node.children), len(node.children))
            )
