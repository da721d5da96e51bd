"""Executors and pools as trees: thread and process pool executors, ``multiprocessing`` pools.

A pool ``owns`` its workers: nothing restarts one that dies, except a
``multiprocessing.Pool``'s worker handler, which ``supervises`` them.
"""

from __future__ import annotations

import multiprocessing.pool
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from livekit.trees._sorting import natural
from livekit.trees.format import NodeClass, TreeNode


def thread_label(thread: threading.Thread) -> str:
    return thread.name if thread.is_alive() else f"{thread.name} (ended)"


def thread_pool_node(pool: ThreadPoolExecutor) -> TreeNode:
    prefix = getattr(pool, "_thread_name_prefix", "") or "ThreadPoolExecutor"
    state = ", shut down" if getattr(pool, "_shutdown", False) else ""
    limit = int(getattr(pool, "_max_workers", 0))
    node = TreeNode(f"ThreadPoolExecutor {prefix} (max_workers={limit}{state})", "root")
    threads = sorted(getattr(pool, "_threads", ()), key=lambda t: natural(t.name))
    for t in threads:
        node.children.append(
            TreeNode(thread_label(t), "worker" if t.is_alive() else "notstarted", "owns")
        )
    # Threads start on demand, one per submit while idle ones are lacking.
    idle = limit - len(threads)
    if idle > 0 and not state:
        node.children.append(TreeNode(_not_started(idle, "thread"), "notstarted", "owns"))
    return node


def _not_started(count: int, what: str) -> str:
    plural = "es" if what.endswith("s") else "s"
    return f"{count} {what}{plural if count != 1 else ''} not started yet"


def process_pool_node(pool: ProcessPoolExecutor) -> TreeNode:
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
        node.children.append(mp_process_node(processes[pid], "owns"))
    # Workers start on demand (all at once with the fork start method).
    missing = limit - len(processes)
    if missing > 0 and not state:
        node.children.append(
            TreeNode(_not_started(missing, "worker process"), "notstarted", "owns")
        )
    # A worker that dies breaks the pool; nothing restarts it: "owns", not "supervises".
    return node


def mp_process_node(proc: Any, edge: str) -> TreeNode:
    if isinstance(proc, threading.Thread):  # a ThreadPool's workers are threads
        return TreeNode(thread_label(proc), "worker" if proc.is_alive() else "notstarted", edge)
    pid = getattr(proc, "pid", None)
    alive = bool(pid) and proc.is_alive()
    label = f"{proc.name} (pid {pid})" if pid else f"{proc.name} (not started)"
    return TreeNode(label, "worker" if alive else "notstarted", edge)


def mp_pool_node(pool: multiprocessing.pool.Pool) -> TreeNode:
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
        sup.children = [mp_process_node(w, "supervises") for w in workers]
        node.children.append(sup)
    else:
        node.children.extend(mp_process_node(w, "owns") for w in workers)
    for attr, role in (("_task_handler", "task handler"), ("_result_handler", "result handler")):
        t = getattr(pool, attr, None)
        if isinstance(t, threading.Thread):
            kind_: NodeClass = "worker" if t.is_alive() else "notstarted"
            node.children.append(TreeNode(f"{t.name} ({role})", kind_, "owns"))
    return node
