"""asyncio tasks as trees: which task ``awaits`` which, and which ``started`` which.

Python records neither edge publicly before 3.14: the task a task awaits
is read from asyncio's own state, and the task that started a task only
where :func:`track_tasks` was called on its loop.
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from collections.abc import Iterable
from types import FrameType
from typing import Any

from livekit.trees._sorting import natural
from livekit.trees.format import NodeClass, TreeNode

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
    >>> from livekit import sup_tree
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


def all_tasks() -> list[asyncio.Task[Any]]:
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
        tasks.update(all_tasks_of(loop))
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


def all_tasks_of(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
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
    ordered = sorted(tasks, key=lambda t: natural(t.get_name()))
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


def task_children(
    tasks: Iterable[asyncio.Task[Any]],
) -> dict[asyncio.Task[Any], list[tuple[asyncio.Task[Any], str]]]:
    """Map each task to its child tasks and the edge: ``awaits`` or ``started``."""
    tasks = list(tasks)
    children: dict[asyncio.Task[Any], list[tuple[asyncio.Task[Any], str]]] = {}
    claimed: set[asyncio.Task[Any]] = set()
    awaits = _awaits(tasks)
    for t in sorted(tasks, key=lambda t: natural(t.get_name())):
        for awaited in awaits.get(t, []):
            if awaited not in claimed:
                children.setdefault(t, []).append((awaited, "awaits"))
                claimed.add(awaited)
    for t in sorted(tasks, key=lambda t: natural(t.get_name())):
        parent = _task_parents.get(t)
        if parent is not None and t not in claimed and not parent.done():
            children.setdefault(parent, []).append((t, "started"))
            claimed.add(t)
    return children


def task_label(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", None) or type(coro).__name__
    # "main.<locals>.fetch" says less than "fetch" in a small box.
    return f"{task.get_name()}: {name.rpartition('<locals>.')[2]}()"


def task_node(
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
    node = TreeNode(task_label(task), kind, edge)
    for c, link in children.get(task, []):
        if c not in seen:  # a task awaiting itself in a cycle is Python's error, not ours
            node.children.append(task_node(c, children, edge=link, seen=seen))
    return node


def task_roots(
    tasks: list[asyncio.Task[Any]],
    children: dict[asyncio.Task[Any], list[tuple[asyncio.Task[Any], str]]],
) -> list[asyncio.Task[Any]]:
    below = {c for kids in children.values() for c, _ in kids}
    return sorted((t for t in tasks if t not in below), key=lambda t: natural(t.get_name()))


def loop_node(loop: asyncio.AbstractEventLoop, edge: str) -> TreeNode:
    running = loop.is_running()
    label = f"event loop {type(loop).__name__}" + ("" if running else " (not running)")
    node = TreeNode(label, "owner" if running else "notstarted", edge)
    tasks = all_tasks_of(loop)
    children = task_children(tasks)
    node.children = [task_node(t, children, edge="runs") for t in task_roots(tasks, children)]
    return node
