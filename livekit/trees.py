"""Trees of who owns, starts and restarts whom, drawn as Mermaid.

:func:`~livekit.sup_tree` draws one object's tree: a :class:`~livekit.Supervisor`, an
executor, a ``multiprocessing`` pool, an OS process, an asyncio task.
:func:`~livekit.app_tree` draws an application: livekit's own supervisor, the work
of any imported package, or the whole interpreter.
:func:`~livekit.started_applications` lists the distributions this interpreter uses.

Capture and format are apart: each ``_capture_*`` function turns a live
object into plain :class:`TreeNode` values, and :func:`format_tree` (pure)
turns those into Mermaid text.  Edges say what is true: ``supervises`` only
where the parent restarts the child, ``owns`` where it holds the child
without restarting it, ``started`` where it merely started it, ``awaits``
where an asyncio task waits for another.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib.metadata
import multiprocessing
import multiprocessing.pool
import os
import re
import sys
import threading
import weakref
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import process as _futures_process
from concurrent.futures import thread as _futures_thread
from types import CodeType, FrameType
from typing import Any, Literal, NamedTuple

import psutil

from livekit import _display
from livekit.mermaid import Mermaid
from livekit.supervisor import Supervisor
from livekit.supervisor.app import current_app, running_supervisors

Direction = Literal["top_down", "left_right"]
NodeClass = Literal["root", "supervisor", "owner", "worker", "notstarted", "stopping", "failed"]

_DIRECTIONS = {"top_down": "TD", "left_right": "LR"}

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
        A :class:`~livekit.Supervisor` (nested supervisors included), an
        executor or pool, a process, a task, or an attached Dask cluster
        (:func:`livekit.cluster`).
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
    >>> sup_tree("my app")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: sup_tree() draws a Supervisor..., got str: 'my app'
    """
    # An object that knows its own tree (livekit.Cluster) draws it.
    own = getattr(type(obj), "_livekit_tree_", None)
    root, default_caption = own(obj) if callable(own) else _capture(obj)
    source = format_tree(root, direction=direction)
    return Mermaid(source, caption=caption if caption is not None else default_caption)


def render_sup_tree(
    obj: object, *, direction: str = "top_down", caption: str | None = None
) -> None:
    """Display :func:`sup_tree` of ``obj``: drawn in a notebook, printed elsewhere.

    It returns None, so that a notebook cell ending with it shows the tree
    once; call :func:`sup_tree` for the diagram itself.

    Examples
    --------
    >>> from livekit import Supervisor
    >>> render_sup_tree(Supervisor(name="empty"))  # doctest: +ELLIPSIS
    %% Supervision tree of 'empty'.
    graph TD
      n0["empty (one_for_one)"]:::root
    ...
    """
    _display.show(sup_tree(obj, direction=direction, caption=caption))


def _capture(obj: object) -> tuple[TreeNode, str]:
    """Turn ``obj`` into a tree and a default caption, or raise naming it."""
    if isinstance(obj, Supervisor):
        return _supervisor_node(obj, root=True), _supervisor_caption(obj)
    if isinstance(obj, ThreadPoolExecutor):
        node = _thread_pool_node(obj)
        return node, f"The threads that {node.label} owns."
    if isinstance(obj, ProcessPoolExecutor):
        node = _process_pool_node(obj)
        return node, f"The worker processes and manager thread that {node.label} owns."
    if isinstance(obj, multiprocessing.pool.Pool):
        node = _mp_pool_node(obj)
        return node, f"{node.label}: its worker handler supervises the workers."
    if isinstance(obj, asyncio.Task):
        node = _task_node(obj, _task_children(_all_tasks_of(obj.get_loop())), root=True)
        return node, f"The tasks that task {obj.get_name()!r} awaits or started."
    if isinstance(obj, psutil.Process) or (isinstance(obj, int) and not isinstance(obj, bool)):
        proc = _process(obj)
        node = _os_process_node(proc, root=True)
        return node, f"OS process tree of pid {proc.pid}."
    raise TypeError(
        "sup_tree() draws a Supervisor, a ThreadPoolExecutor or ProcessPoolExecutor, "
        "a multiprocessing.pool.Pool, a psutil.Process or pid, or an asyncio.Task, "
        f"got {type(obj).__name__}: {obj!r}"
    )


def _supervisor_caption(sup: Supervisor) -> str:
    if sup.exit_reason is None:
        return f"Supervision tree of {sup.name!r}."
    return f"Supervision tree of {sup.name!r}, which gave up: {sup.exit_reason}."


def _supervisor_label(sup: Supervisor) -> str:
    label = f"{sup.name} ({sup.strategy})"
    gave_up = sup._tree_gave_up()
    return label if gave_up is None else f"{label}: gave up, {gave_up.limit}"


def _supervisor_node(sup: Supervisor, *, root: bool = False, edge: str = "") -> TreeNode:
    node = TreeNode(_supervisor_label(sup), "root" if root else "supervisor", edge)
    if sup.exit_reason is not None:
        node.kind = "failed"  # stopped, unlike one that never started: the label says why
    elif not root and not sup.alive:
        node.kind = "notstarted"
    for row in sup._tree_children():
        spec = row.spec
        # Only a child the supervisor would restart is "supervised".
        link = "started" if spec.restart == "temporary" else "supervises"
        if isinstance(spec.target, Supervisor):
            sub = _supervisor_node(spec.target, edge=link)
            if not row.alive and sub.kind != "failed":
                sub.kind = "notstarted"
        else:
            label = spec.name if not row.restarts else f"{spec.name} (restarts: {row.restarts})"
            sub = TreeNode(label, "worker" if row.alive else "notstarted", link)
            if row.ended is not None:
                sub.label += f": {row.ended}"
        if row.ended is not None:
            sub.kind = "failed"  # its exit made the supervisor give up
        if row.stopping:
            sub.kind = "stopping"
            sub.label += (
                ": stopping (waiting for the old copy to return)"
                if row.waiting
                else ": stopping (the old copy has not returned)"
            )
        node.children.append(sub)
    return node


# ── executors and pools ──────────────────────────────────────────────


def _natural(text: str) -> list[Any]:
    """Sort key that puts ``worker_2`` before ``worker_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _thread_label(thread: threading.Thread) -> str:
    return thread.name if thread.is_alive() else f"{thread.name} (ended)"


def _thread_pool_node(pool: ThreadPoolExecutor) -> TreeNode:
    prefix = getattr(pool, "_thread_name_prefix", "") or "ThreadPoolExecutor"
    state = ", shut down" if getattr(pool, "_shutdown", False) else ""
    limit = int(getattr(pool, "_max_workers", 0))
    node = TreeNode(f"ThreadPoolExecutor {prefix} (max_workers={limit}{state})", "root")
    threads = sorted(getattr(pool, "_threads", ()), key=lambda t: _natural(t.name))
    for t in threads:
        node.children.append(
            TreeNode(_thread_label(t), "worker" if t.is_alive() else "notstarted", "owns")
        )
    # Threads start on demand, one per submit while idle ones are lacking.
    idle = limit - len(threads)
    if idle > 0 and not state:
        node.children.append(TreeNode(_not_started(idle, "thread"), "notstarted", "owns"))
    return node


def _not_started(count: int, what: str) -> str:
    plural = "es" if what.endswith("s") else "s"
    return f"{count} {what}{plural if count != 1 else ''} not started yet"


def _process_pool_node(pool: ProcessPoolExecutor) -> TreeNode:
    state = ", shut down" if getattr(pool, "_shutdown_thread", False) else ""
    if getattr(pool, "_broken", False):
        state += ", broken"
    limit = int(getattr(pool, "_max_workers", 0))
    node = TreeNode(f"ProcessPoolExecutor (max_workers={limit}{state})", "root")
    manager = getattr(pool, "_executor_manager_thread", None)
    if isinstance(manager, threading.Thread):
        kind: NodeClass = "worker" if manager.is_alive() else "notstarted"
        node.children.append(TreeNode(f"{manager.name} (manager thread)", kind, "owns"))
    processes = dict(getattr(pool, "_processes", None) or {})
    for pid in sorted(processes):
        node.children.append(_mp_process_node(processes[pid], "owns"))
    # Workers start on demand (all at once with the fork start method).
    missing = limit - len(processes)
    if missing > 0 and not state:
        node.children.append(
            TreeNode(_not_started(missing, "worker process"), "notstarted", "owns")
        )
    # A worker that dies breaks the pool; nothing restarts it: "owns", not "supervises".
    return node


def _mp_process_node(proc: Any, edge: str) -> TreeNode:
    if isinstance(proc, threading.Thread):  # a ThreadPool's workers are threads
        return TreeNode(_thread_label(proc), "worker" if proc.is_alive() else "notstarted", edge)
    pid = getattr(proc, "pid", None)
    alive = bool(pid) and proc.is_alive()
    label = f"{proc.name} (pid {pid})" if pid else f"{proc.name} (not started)"
    return TreeNode(label, "worker" if alive else "notstarted", edge)


def _mp_pool_node(pool: multiprocessing.pool.Pool) -> TreeNode:
    kind = type(pool).__name__
    state = str(getattr(pool, "_state", "RUN")).lower()
    limit = int(getattr(pool, "_processes", 0))
    node = TreeNode(f"multiprocessing {kind} (processes={limit}, {state})", "root")
    workers = list(getattr(pool, "_pool", ()))
    handler = getattr(pool, "_worker_handler", None)
    # Pool._handle_workers replaces every worker that exits (_maintain_pool),
    # so its thread truly supervises them; the other two threads only work.
    if isinstance(handler, threading.Thread):
        sup = TreeNode(
            f"{handler.name} (worker handler)",
            "supervisor" if handler.is_alive() else "notstarted",
            "owns",
        )
        sup.children = [_mp_process_node(w, "supervises") for w in workers]
        node.children.append(sup)
    else:
        node.children.extend(_mp_process_node(w, "owns") for w in workers)
    for attr, role in (("_task_handler", "task handler"), ("_result_handler", "result handler")):
        t = getattr(pool, attr, None)
        if isinstance(t, threading.Thread):
            kind_: NodeClass = "worker" if t.is_alive() else "notstarted"
            node.children.append(TreeNode(f"{t.name} ({role})", kind_, "owns"))
    return node


# ── OS processes ─────────────────────────────────────────────────────


def _process(obj: object) -> psutil.Process:
    pid = obj.pid if isinstance(obj, psutil.Process) else obj
    try:
        proc = psutil.Process(pid)  # type: ignore[arg-type]
        proc.name()
    except (psutil.NoSuchProcess, ValueError):
        raise ValueError(f"no process with pid {pid!r}") from None
    return proc


def _os_process_node(
    proc: psutil.Process,
    *,
    root: bool = False,
    edge: str = "",
    names: dict[int, str] | None = None,
) -> TreeNode:
    """A process and, recursively, the processes it started.

    ``names`` gives multiprocessing's names ("ForkPoolWorker-3") for pids
    that this interpreter started; the OS knows them only as "python".
    """
    names = _mp_names() if names is None else names
    try:
        label = f"{names.get(proc.pid) or proc.name()} (pid {proc.pid})"
        children = proc.children()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return TreeNode(f"pid {proc.pid} (gone)", "notstarted", edge)
    node = TreeNode(label, "root" if root else ("owner" if children else "worker"), edge)
    node.children = [
        _os_process_node(c, edge="started", names=names)
        for c in sorted(children, key=lambda c: c.pid)
    ]
    return node


def _mp_names() -> dict[int, str]:
    # active_children() also reaps children that ended, which is harmless.
    return {p.pid: p.name for p in multiprocessing.active_children() if p.pid is not None}


# ── asyncio tasks ────────────────────────────────────────────────────

#: child task -> the task that was running when it was created, for loops
#: that track_tasks() was called on.
_task_parents: weakref.WeakKeyDictionary[asyncio.Task[Any], asyncio.Task[Any]] = (
    weakref.WeakKeyDictionary()
)


def track_tasks(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Record which task started which, on ``loop`` (default: the running loop).

    Python keeps no record of the task that created a task; from this call
    on, livekit records it (through the loop's task factory, chaining any
    factory already set), so :func:`sup_tree` of a task and :func:`app_tree`
    draw ``started`` edges as well as ``awaits`` edges.  Calling it again on
    the same loop does nothing.

    Examples
    --------
    >>> import asyncio
    >>> async def child():
    ...     await asyncio.sleep(0)
    >>> async def main():
    ...     track_tasks()
    ...     task = asyncio.create_task(child(), name="child")
    ...     me = asyncio.current_task()
    ...     diagram = sup_tree(me)
    ...     await task
    ...     return str(diagram).splitlines()[1:3]
    >>> asyncio.run(main())  # doctest: +ELLIPSIS
    ['  n0["Task-... main()"]:::root', '  n0 -->|started| n1["child: child()"]:::worker']
    """
    loop = loop or asyncio.get_running_loop()
    previous = loop.get_task_factory()
    if getattr(previous, "_livekit_tracks", False):
        return

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        parent = asyncio.current_task(loop)
        if previous is not None:
            task = previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        if parent is not None and isinstance(task, asyncio.Task):
            _task_parents[task] = parent
        return task

    factory._livekit_tracks = True  # type: ignore[attr-defined]
    loop.set_task_factory(factory)


def _all_tasks() -> list[asyncio.Task[Any]]:
    """Every pending task of every event loop this interpreter can find.

    asyncio has no public list of loops.  Up to Python 3.13 it keeps every
    task in module-level weak sets, read here.  Python 3.14 keeps native
    tasks per thread instead, so there the loops are found on the threads'
    stacks (:func:`_running_loops`), among the tasks that
    :func:`track_tasks` saw, and as this thread's own, and each is asked
    with ``asyncio.all_tasks(loop)``.
    """
    tasks: set[asyncio.Task[Any]] = set()
    for attr in ("_all_tasks", "_scheduled_tasks", "_eager_tasks"):
        found = getattr(asyncio.tasks, attr, None)
        if found is not None:
            tasks.update(list(found))
    loops = {t.get_loop() for t in list(_task_parents)}
    running = asyncio._get_running_loop()
    if running is not None:
        loops.add(running)
    if sys.version_info >= (3, 14):
        loops.update(_running_loops())
    for loop in loops:
        tasks.update(_all_tasks_of(loop))
    return [t for t in tasks if not t.done()]


_RUN_FOREVER = asyncio.BaseEventLoop.run_forever.__code__


def _running_loops() -> set[asyncio.AbstractEventLoop]:
    """The event loops that some thread is running now (``run_forever`` on its stack).

    Every way of running a loop (``asyncio.run``, ``Runner``,
    ``run_until_complete``) goes through ``BaseEventLoop.run_forever``; a
    loop written in C (uvloop) is not found this way.
    """
    loops: set[asyncio.AbstractEventLoop] = set()
    for frame in sys._current_frames().values():
        f: FrameType | None = frame
        while f is not None:
            if f.f_code is _RUN_FOREVER:
                loop = f.f_locals.get("self")
                if isinstance(loop, asyncio.AbstractEventLoop):
                    loops.add(loop)
                break
            f = f.f_back
    return loops


def _all_tasks_of(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    """The pending tasks of one loop (asyncio.all_tasks reads from any thread)."""
    for _ in range(10):
        try:
            return list(asyncio.all_tasks(loop))
        except RuntimeError:  # "Set changed size during iteration", on 3.11
            continue
    return []


def _awaits(tasks: Iterable[asyncio.Task[Any]]) -> dict[asyncio.Task[Any], list[asyncio.Task[Any]]]:
    """Which tasks each task waits for now: one awaited task, or a gather's children.

    Python 3.14 says it publicly: ``asyncio.capture_call_graph(task)``
    lists the tasks that await ``task`` (a gather's caller among them).
    Up to 3.13 the task's private ``_fut_waiter`` is read instead: the
    task it awaits, or the gather future whose children it awaits.
    """
    awaits: dict[asyncio.Task[Any], list[asyncio.Task[Any]]] = {}
    ordered = sorted(tasks, key=lambda t: _natural(t.get_name()))
    if sys.version_info >= (3, 14):
        for child in ordered:
            graph = asyncio.capture_call_graph(child, limit=0)
            for awaiter in graph.awaited_by if graph is not None else ():
                if isinstance(awaiter.future, asyncio.Task):
                    awaits.setdefault(awaiter.future, []).append(child)
    else:
        for task in ordered:
            waiter = getattr(task, "_fut_waiter", None)
            if isinstance(waiter, asyncio.Task):
                awaits[task] = [waiter]
                continue
            children = getattr(waiter, "_children", None)  # asyncio.gather's future
            if children:
                awaits[task] = [c for c in children if isinstance(c, asyncio.Task)]
    return awaits


def _task_children(
    tasks: Iterable[asyncio.Task[Any]],
) -> dict[asyncio.Task[Any], list[tuple[asyncio.Task[Any], str]]]:
    """Map each task to its child tasks and the edge: ``awaits`` or ``started``."""
    tasks = list(tasks)
    children: dict[asyncio.Task[Any], list[tuple[asyncio.Task[Any], str]]] = {}
    claimed: set[asyncio.Task[Any]] = set()
    awaits = _awaits(tasks)
    for t in sorted(tasks, key=lambda t: _natural(t.get_name())):
        for awaited in awaits.get(t, []):
            if awaited not in claimed:
                children.setdefault(t, []).append((awaited, "awaits"))
                claimed.add(awaited)
    for t in sorted(tasks, key=lambda t: _natural(t.get_name())):
        parent = _task_parents.get(t)
        if parent is not None and t not in claimed and not parent.done():
            children.setdefault(parent, []).append((t, "started"))
            claimed.add(t)
    return children


def _task_label(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", None) or type(coro).__name__
    # "main.<locals>.fetch" says less than "fetch" in a small box.
    return f"{task.get_name()}: {name.rpartition('<locals>.')[2]}()"


def _task_node(
    task: asyncio.Task[Any],
    children: dict[asyncio.Task[Any], list[tuple[asyncio.Task[Any], str]]],
    *,
    root: bool = False,
    edge: str = "",
    seen: set[asyncio.Task[Any]] | None = None,
) -> TreeNode:
    seen = set() if seen is None else seen
    seen.add(task)
    kind: NodeClass = "root" if root else ("worker" if not task.done() else "notstarted")
    node = TreeNode(_task_label(task), kind, edge)
    for c, link in children.get(task, []):
        if c not in seen:  # a task awaiting itself in a cycle is Python's error, not ours
            node.children.append(_task_node(c, children, edge=link, seen=seen))
    return node


def _task_roots(
    tasks: list[asyncio.Task[Any]],
    children: dict[asyncio.Task[Any], list[tuple[asyncio.Task[Any], str]]],
) -> list[asyncio.Task[Any]]:
    below = {c for kids in children.values() for c, _ in kids}
    return sorted((t for t in tasks if t not in below), key=lambda t: _natural(t.get_name()))


# ── app_tree ─────────────────────────────────────────────────────────


def app_tree(
    app: str | None = None, *, direction: str = "top_down", caption: str | None = None
) -> Mermaid:
    """Return the tree of an application as a :class:`~livekit.Mermaid` diagram.

    Parameters
    ----------
    app
        ``"livekit"``: livekit's own supervisor (:func:`~livekit.supervisor.app_supervisor`)
        and everything running under it.  The import name of any other
        imported package (``"concurrent"``, ``"IPython"``, your own): the
        threads, asyncio tasks and child processes whose code belongs to
        it.  ``None``: the whole interpreter, its threads grouped by owner
        (supervisors, executor pools, packages, user threads), the event
        loops they run with their tasks, and its child processes.
    direction
        ``"top_down"`` or ``"left_right"``.
    caption
        The diagram's caption; a sentence naming the application by default.

    Examples
    --------
    >>> str(app_tree()).splitlines()[1]  # doctest: +ELLIPSIS
    '  n0["python 3... (pid ...)"]:::root'
    >>> app_tree("no_such_package")
    Traceback (most recent call last):
    ...
    ValueError: unknown package 'no_such_package': not imported in this interpreter
    """
    _direction(direction)
    if app is None:
        root = _interpreter_node()
        default = (
            f"Threads, event loops and child processes of this interpreter (pid {os.getpid()})."
        )
    elif _import_name(app) == "livekit":
        root = _livekit_node()
        default = "livekit's own supervision tree: the background work livekit runs."
    else:
        root = _package_node(_import_name(app))
        default = f"Threads, tasks and child processes running code of {app!r}."
    source = format_tree(root, direction=direction)
    return Mermaid(source, caption=caption if caption is not None else default)


def render_app_tree(
    app: str | None = None, *, direction: str = "top_down", caption: str | None = None
) -> None:
    """Display :func:`app_tree` of ``app``: drawn in a notebook, printed elsewhere.

    Like :func:`render_sup_tree`, it returns None.

    Examples
    --------
    >>> render_app_tree("livekit")  # doctest: +ELLIPSIS
    %% livekit's own supervision tree...
    graph TD
      n0["livekit..."]:::root
    ...
    """
    _display.show(app_tree(app, direction=direction, caption=caption))


def _livekit_node() -> TreeNode:
    app = current_app()
    if app is None or not app.alive:
        return TreeNode("livekit (no background work started)", "root")
    return _supervisor_node(app, root=True)


def _thread_owner(thread: threading.Thread) -> str:
    """The module whose code the thread was made to run: its target's, or its class's."""
    target = getattr(thread, "_target", None)
    module = getattr(target, "__module__", None)
    if module is None and target is not None:
        module = getattr(getattr(target, "__func__", None), "__module__", None)
    if module is None:
        module = type(thread).__module__
    return str(module)


def _interpreter_node() -> TreeNode:
    version = ".".join(map(str, sys.version_info[:3]))
    root = TreeNode(f"python {version} (pid {os.getpid()})", "root")
    threads = sorted(threading.enumerate(), key=lambda t: _natural(t.name))
    draw = _ThreadDrawer(_loops_by_thread())

    main = threading.main_thread()
    if main in threads:
        root.children.append(draw(main))
    # Supervisors: their threads are drawn inside their trees.
    for sup in running_supervisors():
        root.children.append(_supervisor_node(sup, edge="owns"))
        draw.placed.update(sup._threads())
    pools = _executor_pool_threads(draw.placed)
    pool_pids: set[int] = set()
    if pools:
        group = TreeNode("executor pools", "owner", "owns")
        for prefix in sorted(pools, key=_natural):
            pool = TreeNode(prefix, "owner", "owns")
            for t in sorted(pools[prefix], key=lambda t: _natural(t.name)):
                pool.children.append(draw(t))
                # A ProcessPoolExecutor's manager thread holds its worker processes.
                for pid, proc in sorted(dict(getattr(t, "processes", None) or {}).items()):
                    pool.children.append(_mp_process_node(proc, "owns"))
                    pool_pids.add(pid)
            group.children.append(pool)
        root.children.append(group)
    # The rest, by the package whose code each thread was made to run.
    owners: dict[str, list[threading.Thread]] = {}
    for t in threads:
        if t not in draw.placed:
            owners.setdefault(_thread_owner(t).split(".")[0], []).append(t)
    for top in sorted(owners, key=lambda name: (name != "__main__", name.lower())):
        label = "user threads (__main__)" if top == "__main__" else f"threads of {top}"
        root.children.append(TreeNode(label, "owner", "owns", [draw(t) for t in owners[top]]))
    # Loops with tasks whose thread was not found: not running now.
    root.children.extend(_loop_node(loop, "owns") for loop in draw.loops.values())
    names = _mp_names()
    root.children.extend(
        _os_process_node(c, edge="started", names=names)
        for c in _child_processes()
        if c.pid not in pool_pids
    )
    return root


class _ThreadDrawer:
    """Draws each thread once, with the event loop it runs under it."""

    def __init__(self, loops: dict[int | None, asyncio.AbstractEventLoop]) -> None:
        self.loops = loops
        self.placed: set[threading.Thread] = set()

    def __call__(self, thread: threading.Thread) -> TreeNode:
        node = TreeNode(thread.name, "worker", "owns")
        self.placed.add(thread)
        loop = self.loops.pop(thread.ident, None) if thread.ident is not None else None
        if loop is not None:
            node.kind = "owner"
            node.children.append(_loop_node(loop, "runs"))
        return node


def _executor_pool_threads(placed: set[threading.Thread]) -> dict[str, list[threading.Thread]]:
    """Executor threads by pool: concurrent.futures keeps weak maps of them for exit."""
    pools: dict[str, list[threading.Thread]] = {}
    for t in list(_futures_thread._threads_queues):
        if t.is_alive() and t not in placed:
            # Workers are named f"{thread_name_prefix}_{n}".
            pools.setdefault(t.name.rsplit("_", 1)[0], []).append(t)
    for t in list(_futures_process._threads_wakeups):
        if t.is_alive() and t not in placed:
            pools.setdefault(f"ProcessPoolExecutor ({t.name})", []).append(t)
    return pools


def _loops_by_thread() -> dict[int | None, asyncio.AbstractEventLoop]:
    """The event loops that have live tasks, keyed by the ident of the thread running them."""
    loops: dict[int | None, asyncio.AbstractEventLoop] = {}
    for task in _all_tasks():
        loop = task.get_loop()
        # BaseEventLoop records the thread that runs it (None when not running).
        ident = getattr(loop, "_thread_id", None)
        loops.setdefault(ident, loop)
    return loops


def _loop_node(loop: asyncio.AbstractEventLoop, edge: str) -> TreeNode:
    running = loop.is_running()
    label = f"event loop {type(loop).__name__}" + ("" if running else " (not running)")
    node = TreeNode(label, "owner" if running else "notstarted", edge)
    tasks = _all_tasks_of(loop)
    children = _task_children(tasks)
    node.children = [_task_node(t, children, edge="runs") for t in _task_roots(tasks, children)]
    return node


def _child_processes() -> list[psutil.Process]:
    try:
        return sorted(psutil.Process().children(), key=lambda p: p.pid)
    except psutil.Error:
        return []


# ── one package's share ──────────────────────────────────────────────


def _import_name(app: str) -> str:
    """The imported top-level module for ``app``: itself, or a distribution's module.

    So that a name from :func:`started_applications` ("livekit-introspect",
    "PyYAML") works as well as an import name ("livekit", "yaml").
    """
    if not isinstance(app, str):
        raise TypeError(f"expected a package name (str) or None, got {type(app).__name__}: {app!r}")
    if app in sys.modules:
        return app
    wanted = re.sub(r"[-_.]+", "-", app).lower()
    mapping = dict(_distributions_of_modules())
    mapping.setdefault("livekit", ["livekit-introspect"])
    for module, dists in sorted(mapping.items()):
        if module in sys.modules and any(
            re.sub(r"[-_.]+", "-", d).lower() == wanted for d in dists
        ):
            return module
    return app  # _package_files() says it is unknown


def _package_files(app: str) -> tuple[str, ...]:
    """Directory prefixes (or the file) holding ``app``'s code; raise if not imported."""
    module = sys.modules.get(app)
    if module is None:
        raise ValueError(f"unknown package {app!r}: not imported in this interpreter")
    paths = list(getattr(module, "__path__", None) or [])
    if paths:
        return tuple(os.path.join(os.path.abspath(p), "") for p in paths)
    file = getattr(module, "__file__", None)
    if not file:
        raise ValueError(f"package {app!r} is built into the interpreter: it has no code files")
    return (os.path.abspath(file),)


def _code_of(obj: object) -> CodeType | None:
    obj = getattr(obj, "__func__", obj)
    code = getattr(obj, "__code__", None)
    if isinstance(code, CodeType):
        return code
    run = getattr(type(obj), "run", None)
    return getattr(run, "__code__", None)


def _belongs(filename: str, prefixes: tuple[str, ...]) -> bool:
    return os.path.abspath(filename).startswith(prefixes)


def _stack_files(frame: FrameType | None) -> Iterator[str]:
    while frame is not None:
        yield frame.f_code.co_filename
        frame = frame.f_back


def _package_node(app: str) -> TreeNode:
    prefixes = _package_files(app)
    version = _version_of(app)
    root = TreeNode(f"{app} {version}".strip(), "root")
    frames = sys._current_frames()
    try:
        for t in sorted(threading.enumerate(), key=lambda t: _natural(t.name)):
            target = getattr(t, "_target", None)
            code = _code_of(target) if target is not None else _code_of(t)
            if code is not None and _belongs(code.co_filename, prefixes):
                root.children.append(TreeNode(t.name, "worker", "thread target"))
            elif t.ident is not None and any(
                _belongs(f, prefixes) for f in _stack_files(frames.get(t.ident))
            ):
                root.children.append(TreeNode(t.name, "worker", "on thread's stack"))
    finally:
        # The dict holds this frame, whose locals hold the dict: without this,
        # every thread's last frame (and its sockets) lives until a full collection.
        frames.clear()
    for task in sorted(_all_tasks(), key=lambda t: _natural(t.get_name())):
        code = getattr(task.get_coro(), "cr_code", None)
        if isinstance(code, CodeType) and _belongs(code.co_filename, prefixes):
            root.children.append(TreeNode(_task_label(task), "worker", "task coroutine"))
    # Process.start() drops the target function, so a process belongs to the
    # package that defines its class's run(), or to the executor that owns it.
    owned: set[int] = set()
    for manager in list(_futures_process._threads_wakeups):
        code = _code_of(getattr(manager, "_target", None)) or _code_of(manager)
        if code is not None and _belongs(code.co_filename, prefixes):
            for pid, proc in sorted(dict(getattr(manager, "processes", None) or {}).items()):
                root.children.append(_mp_process_node(proc, "executor's process"))
                owned.add(pid)
    for proc in sorted(multiprocessing.active_children(), key=lambda p: p.pid or 0):
        code = _code_of(proc)
        if proc.pid not in owned and code is not None and _belongs(code.co_filename, prefixes):
            root.children.append(_mp_process_node(proc, "process class"))
    return root


# ── started_applications ─────────────────────────────────────────────


class Application(NamedTuple):
    """One row of :func:`~livekit.started_applications`."""

    name: str
    description: str
    version: str


@functools.cache
def _distributions_of_modules() -> dict[str, list[str]]:
    # Scanning every installed distribution's file list takes ~0.3 s: once is enough.
    return dict(importlib.metadata.packages_distributions())


def _version_of(app: str) -> str:
    dists = _distributions_of_modules().get(app) or (
        ["livekit-introspect"] if app == "livekit" else []
    )
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return str(getattr(sys.modules.get(app), "__version__", ""))


def started_applications() -> list[Application]:
    """Return ``(name, description, version)`` of each distribution this interpreter uses.

    A distribution counts when a module it installs is imported, as
    Elixir's ``Application.started_applications()`` lists the applications
    a node runs.  Sorted by name.

    Examples
    --------
    >>> import psutil
    >>> [app for app in started_applications() if app.name == "psutil"] == [
    ...     ("psutil", "Cross-platform lib for process and system monitoring.", psutil.__version__)
    ... ]
    True
    """
    found: dict[str, Application] = {}
    modules = {name.partition(".")[0] for name in list(sys.modules)}
    for module in modules:
        # An editable install of livekit lists no files to map it by.
        dists = _distributions_of_modules().get(module) or (
            ["livekit-introspect"] if module == "livekit" else []
        )
        for dist in dists:
            if dist in found:
                continue
            try:
                meta = importlib.metadata.metadata(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
            found[dist] = Application(
                _field(meta, "Name") or dist, _field(meta, "Summary"), _field(meta, "Version")
            )
    return sorted(found.values(), key=lambda a: a.name.lower())


def _field(meta: Any, key: str) -> str:
    # get_all() returns None for a missing field; meta[key] warns on 3.12+.
    values = meta.get_all(key)
    return str(values[0]) if values else ""
