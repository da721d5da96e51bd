"""The pure formatter: plain :class:`TreeNode` values in, Mermaid text out.

No threads, no processes, no clocks: every source module of this package
builds :class:`TreeNode` values, and :func:`format_tree` alone writes them
as a Mermaid flowchart, so that one walk numbers every tree livekit draws.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator
from typing import Literal

from livekit._labels import MAX_NAME, escape, short_name

Direction = Literal["top_down", "left_right"]
NodeClass = Literal["root", "supervisor", "owner", "worker", "notstarted", "stopping", "failed"]

#: Every node class, for a clear error on a tree that names another.
NODE_CLASSES: tuple[NodeClass, ...] = (
    "root",
    "supervisor",
    "owner",
    "worker",
    "notstarted",
    "stopping",
    "failed",
)

_DIRECTIONS = {"top_down": "TD", "left_right": "LR"}

# Words, spaces, a few marks and entity codes: "supervises", "on thread's stack", "a#124;b".
_PLAIN_EDGE = re.compile(r"[\w '.,:#;-]*")

# The colours of Kino.Process's trees: supervisors violet, workers blue,
# children that are not running grey; "owner" (holds children but does not
# restart them) is a supervisor with a dashed border; "stopping" (asked to
# stop, still running: a thread cannot be killed) is amber and dashed;
# "failed" (a supervisor that gave up, and the child whose exit made it) is red.
# Labels are dark on every pale fill, whatever the surrounding theme (dark
# Jupyter, saved SVGs).
_CLASS_DEFS = (
    "classDef root fill:#c4b5fd,color:#111827,stroke:#374151,stroke-width:4px",
    "classDef supervisor fill:#c4b5fd,color:#111827,stroke:#374151,stroke-width:1px",
    "classDef owner fill:#ddd6fe,color:#111827,stroke:#374151,stroke-width:1px,"
    "stroke-dasharray:4 2",
    "classDef worker fill:#93c5fd,color:#111827,stroke:#374151,stroke-width:1px",
    "classDef notstarted color:#777,fill:#d9d9d9,stroke:#777,stroke-width:1px",
    "classDef stopping fill:#fde68a,color:#111827,stroke:#92400e,stroke-width:1px,"
    "stroke-dasharray:4 2",
    "classDef failed fill:#fca5a5,color:#111827,stroke:#991b1b,stroke-width:2px",
)


@dataclasses.dataclass
class TreeNode:
    """One box of a tree, with the label of the edge that leads to it.

    Examples
    --------
    >>> pool = TreeNode("pool", "owner", children=[TreeNode("worker-1", "worker", edge="owns")])
    >>> pool.children[0]
    TreeNode(label='worker-1', kind='worker', edge='owns', children=[])
    """

    label: str
    kind: NodeClass
    edge: str = ""
    children: list[TreeNode] = dataclasses.field(default_factory=list)


def walk(root: TreeNode) -> Iterator[tuple[int, int, TreeNode]]:
    """Yield ``(parent, number, node)`` for every node below ``root``, depth first.

    Nodes are numbered from 1 (the root is 0) in the order they are
    yielded, so every drawing of the same tree numbers it the same way.
    The walk is iterative: a 1,000-child supervisor or a deep process tree
    must not hit the recursion limit.

    Examples
    --------
    >>> tree = TreeNode("a", "root", children=[
    ...     TreeNode("b", "owner", children=[TreeNode("c", "worker")]),
    ...     TreeNode("d", "worker"),
    ... ])
    >>> [(parent, number, node.label) for parent, number, node in walk(tree)]
    [(0, 1, 'b'), (1, 2, 'c'), (0, 3, 'd')]
    """
    counter = 0
    stack: list[tuple[int, Iterator[TreeNode]]] = [(0, iter(root.children))]
    while stack:
        parent, children = stack[-1]
        node = next(children, None)
        if node is None:
            stack.pop()
            continue
        counter += 1
        yield parent, counter, node
        if node.children:
            stack.append((counter, iter(node.children)))


def format_tree(root: TreeNode, *, direction: str = "top_down") -> str:
    """Return the Mermaid flowchart source of a tree (a pure function).

    Nodes are numbered ``n0, n1, ...`` in depth-first order, so the same
    tree always gives the same text.  A label longer than 80 characters
    is shortened in its box and kept whole as the box's tooltip.

    Examples
    --------
    >>> tree = TreeNode("app", "root", children=[
    ...     TreeNode("db", "worker", edge="supervises"),
    ...     TreeNode('say "hi"', "notstarted", edge="started"),
    ... ])
    >>> print(format_tree(tree, direction="left_right"))  # doctest: +ELLIPSIS
    graph LR
      n0["app"]:::root
      n0 -->|supervises| n1["db"]:::worker
      n0 -->|started| n2["say #quot;hi#quot;"]:::notstarted
      classDef root ...
    """
    lines = [f"graph {check_direction(direction)}", f"  n0[{_label(root.label)}]:::{root.kind}"]
    lines.extend(_full_name(0, root.label))
    for parent, ident, node in walk(root):
        arrow = f"-->|{_edge_label(node.edge)}|" if node.edge else "-->"
        lines.append(f"  n{parent} {arrow} n{ident}[{_label(node.label)}]:::{node.kind}")
        lines.extend(_full_name(ident, node.label))
    lines.extend(f"  {line}" for line in _CLASS_DEFS)
    return "\n".join(lines)


def check_direction(direction: str) -> str:
    """Return Mermaid's word for ``direction``, or raise naming it.

    Examples
    --------
    >>> check_direction("left_right")
    'LR'
    >>> check_direction("diagonal")
    Traceback (most recent call last):
    ...
    ValueError: expected direction 'top_down' or 'left_right', got 'diagonal'
    """
    try:
        return _DIRECTIONS[direction]
    except (KeyError, TypeError):
        raise ValueError(
            f"expected direction 'top_down' or 'left_right', got {direction!r}"
        ) from None


def _label(text: str) -> str:
    """A node label: quoted, shortened if very long, escaped (:mod:`livekit._labels`)."""
    return f'"{escape(short_name(text))}"'


def _full_name(ident: int, label: str) -> list[str]:
    """The full text of a shortened label, as the node's tooltip (its ``title``).

    Mermaid has no tooltip without a click action; ``String`` is a harmless
    global for a page that allows click callbacks (livekit's pages do not).
    """
    if len(label) <= MAX_NAME:
        return []
    return [f'  click n{ident} call String() "{escape(label)}"']


@functools.lru_cache(maxsize=1024)  # a tree has few distinct edges ("supervises", "owns")
def _edge_label(text: str) -> str:
    """An edge label: bare when it is plain words (as every built-in edge is), else quoted.

    Mermaid reads brackets and braces in a bare edge label as syntax.
    """
    escaped = escape(text)
    return escaped if _PLAIN_EDGE.fullmatch(escaped) else f'"{escaped}"'
