"""Trees of who owns, starts and restarts whom, drawn as Mermaid.

:func:`sup_tree` draws one object's tree: a :class:`~livekit.Supervisor`, an
executor, a ``multiprocessing`` pool, an OS process, an asyncio task.
:func:`app_tree` draws an application: livekit's own supervisor, the work
of any imported package, or the whole interpreter.
:func:`started_applications` lists the distributions this interpreter uses.

Capture and format are apart: each ``_capture_*`` function turns a live
object into plain :class:`TreeNode` values, and :func:`format_tree` (pure)
turns those into Mermaid text.  Edges say what is true: ``supervises`` only
where the parent restarts the child, ``owns`` where it holds the child
without restarting it, ``started`` where it merely started it, ``awaits``
where an asyncio task waits for another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Literal

from livekit import _display
from livekit.mermaid import Mermaid
from livekit.supervisor import Supervisor

Direction = Literal["top_down", "left_right"]
NodeClass = Literal["root", "supervisor", "owner", "worker", "notstarted"]

_DIRECTIONS = {"top_down": "TD", "left_right": "LR"}

# The colours of Kino.Process's trees: supervisors violet, workers blue,
# children that are not running grey; "owner" (holds children but does not
# restart them) is a supervisor with a dashed border.
_CLASS_DEFS = (
    "classDef root fill:#c4b5fd,stroke:#374151,stroke-width:4px",
    "classDef supervisor fill:#c4b5fd,stroke:#374151,stroke-width:1px",
    "classDef owner fill:#ddd6fe,stroke:#374151,stroke-width:1px,stroke-dasharray:4 2",
    "classDef worker fill:#93c5fd,stroke:#374151,stroke-width:1px",
    "classDef notstarted color:#777,fill:#d9d9d9,stroke:#777,stroke-width:1px",
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


def format_tree(root: TreeNode, *, direction: str = "top_down") -> str:
    """Return the Mermaid flowchart source of a tree (a pure function).

    Nodes are numbered ``n0, n1, ...`` in depth-first order, so the same
    tree always gives the same text.

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
    lines = [f"graph {_direction(direction)}", f"  n0[{_label(root.label)}]:::{root.kind}"]
    counter = iter(range(1, 1 << 62))
    stack: list[tuple[int, Iterator[TreeNode]]] = [(0, iter(root.children))]
    # Iterative depth-first walk: a 1,000-child supervisor or a deep process
    # tree must not hit the recursion limit.
    while stack:
        parent, children = stack[-1]
        node = next(children, None)
        if node is None:
            stack.pop()
            continue
        ident = next(counter)
        arrow = f"-->|{_edge_label(node.edge)}|" if node.edge else "-->"
        lines.append(f"  n{parent} {arrow} n{ident}[{_label(node.label)}]:::{node.kind}")
        if node.children:
            stack.append((ident, iter(node.children)))
    lines.extend(f"  {line}" for line in _CLASS_DEFS)
    return "\n".join(lines)


def _direction(direction: str) -> str:
    try:
        return _DIRECTIONS[direction]
    except (KeyError, TypeError):
        raise ValueError(
            f"expected direction 'top_down' or 'left_right', got {direction!r}"
        ) from None


def _label(text: str) -> str:
    """Quote a node label; Mermaid's entity codes stand for characters it would parse.

    See https://mermaid.js.org/syntax/flowchart.html#entity-codes-to-escape-characters
    """
    escaped = (
        text.replace("#", "#35;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("\n", " ")
    )
    return f'"{escaped}"'


def _edge_label(text: str) -> str:
    return _label(text)[1:-1].replace("|", "#124;")


# ── sup_tree ─────────────────────────────────────────────────────────


def sup_tree(obj: object, *, direction: str = "top_down", caption: str | None = None) -> Mermaid:
    """Return the tree under ``obj`` as a :class:`~livekit.Mermaid` diagram.

    Parameters
    ----------
    obj
        A :class:`~livekit.Supervisor` (nested supervisors included).
    direction
        ``"top_down"`` or ``"left_right"``.
    caption
        The diagram's caption; a sentence naming the tree by default.

    Examples
    --------
    >>> from livekit import Agent, Supervisor
    >>> inner = Supervisor([Agent(dict, name="cache")], name="inner")
    >>> print(sup_tree(Supervisor([inner], name="outer")))  # doctest: +ELLIPSIS
    graph TD
      n0["outer (one_for_one)"]:::root
      n0 -->|supervises| n1["inner (one_for_one)"]:::notstarted
      n1 -->|supervises| n2["cache"]:::notstarted
    ...
    >>> sup_tree(42)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: sup_tree() draws a Supervisor..., got int: 42
    """
    root, default_caption = _capture(obj)
    source = format_tree(root, direction=direction)
    return Mermaid(source, caption=caption if caption is not None else default_caption)


def render_sup_tree(
    obj: object, *, direction: str = "top_down", caption: str | None = None
) -> Mermaid:
    """Display :func:`sup_tree` of ``obj`` and return the diagram.

    Examples
    --------
    >>> from livekit import Supervisor
    >>> _ = render_sup_tree(Supervisor(name="empty"))  # doctest: +ELLIPSIS
    graph TD
      n0["empty (one_for_one)"]:::root
    ...
    """
    diagram = sup_tree(obj, direction=direction, caption=caption)
    _display.show(diagram)
    return diagram


def _capture(obj: object) -> tuple[TreeNode, str]:
    if isinstance(obj, Supervisor):
        return _supervisor_node(obj, root=True), f"Supervision tree of {obj.name!r}."
    raise TypeError(
        "sup_tree() draws a Supervisor, a ThreadPoolExecutor or ProcessPoolExecutor, "
        "a multiprocessing.pool.Pool, a psutil.Process or pid, or an asyncio.Task, "
        f"got {type(obj).__name__}: {obj!r}"
    )


def _supervisor_label(sup: Supervisor) -> str:
    return f"{sup.name} ({sup.strategy})"


def _supervisor_node(sup: Supervisor, *, root: bool = False, edge: str = "") -> TreeNode:
    node = TreeNode(_supervisor_label(sup), "root" if root else "supervisor", edge)
    if not root and not sup.alive:
        node.kind = "notstarted"
    for spec, running, restarts, _thread in sup._tree_children():
        # Only a child the supervisor would restart is "supervised".
        link = "started" if spec.restart == "temporary" else "supervises"
        if isinstance(spec.target, Supervisor):
            sub = _supervisor_node(spec.target, edge=link)
            if not running:
                sub.kind = "notstarted"
            node.children.append(sub)
            continue
        label = spec.name if not restarts else f"{spec.name} (restarts: {restarts})"
        node.children.append(TreeNode(label, "worker" if running else "notstarted", link))
    return node
