"""The whole interpreter as a tree: threads grouped by owner, event loops, child processes.

Each thread is drawn once: inside the tree of the running root that owns
it (a supervisor, :func:`livekit.trees.protocol.running_roots`), in its
executor pool, or under the package whose code it was made to run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from concurrent.futures import process as _futures_process
from concurrent.futures import thread as _futures_thread

from livekit.trees._sorting import natural
from livekit.trees.format import TreeNode
from livekit.trees.pools import mp_process_node
from livekit.trees.processes import child_processes, mp_names, os_process_node
from livekit.trees.protocol import describe, running_roots
from livekit.trees.tasks import all_tasks, loop_node


def _thread_owner(thread: threading.Thread) -> str:
    """The module whose code the thread was made to run: its target's, or its class's."""
    target = getattr(thread, "_target", None)
    module = getattr(target, "__module__", None)
    if module is None and target is not None:
        module = getattr(getattr(target, "__func__", None), "__module__", None)
    if module is None:
        module = type(thread).__module__
    return str(module)


def interpreter_node() -> TreeNode:
    """This interpreter: its threads, the event loops they run, its child processes."""
    version = ".".join(map(str, sys.version_info[:3]))
    root = TreeNode(f"python {version} (pid {os.getpid()})", "root")
    threads = sorted(threading.enumerate(), key=lambda t: natural(t.name))
    draw = _ThreadDrawer(_loops_by_thread())

    main = threading.main_thread()
    if main in threads:
        root.children.append(draw(main))
    # Running roots (supervisors): their threads are drawn inside their trees.
    for owner in running_roots():
        found = describe(owner)
        if found is None:  # a root describes itself; one that stopped meanwhile may not
            continue
        node = found[0]
        node.edge = "owns"
        node.kind = "supervisor" if node.kind == "root" else node.kind  # not this tree's root
        root.children.append(node)
        draw.placed.update(owner.__livekit_threads__())
    pools = _executor_pool_threads(draw.placed)
    pool_pids: set[int] = set()
    if pools:
        group = TreeNode("executor pools", "owner", "owns")
        for prefix in sorted(pools, key=natural):
            pool = TreeNode(prefix, "owner", "owns")
            for t in sorted(pools[prefix], key=lambda t: natural(t.name)):
                pool.children.append(draw(t))
                # A ProcessPoolExecutor's manager thread holds its worker processes.
                for pid, proc in sorted(dict(getattr(t, "processes", None) or {}).items()):
                    pool.children.append(mp_process_node(proc, "owns"))
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
    root.children.extend(loop_node(loop, "owns") for loop in draw.loops.values())
    names = mp_names()
    root.children.extend(
        os_process_node(c, edge="started", names=names)
        for c in child_processes()
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
            node.children.append(loop_node(loop, "runs"))
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
    for task in all_tasks():
        loop = task.get_loop()
        # BaseEventLoop records the thread that runs it (None when not running).
        ident = getattr(loop, "_thread_id", None)
        loops.setdefault(ident, loop)
    return loops
