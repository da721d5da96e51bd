"""OS processes as trees: a process and, recursively, the processes it started."""

from __future__ import annotations

import multiprocessing

import psutil

from livekit.trees.format import TreeNode


def process_of(obj: object) -> psutil.Process:
    pid = obj.pid if isinstance(obj, psutil.Process) else obj
    try:
        proc = psutil.Process(pid)  # type: ignore[arg-type]
        proc.name()
    except (psutil.NoSuchProcess, ValueError):
        raise ValueError(f"no process with pid {pid!r}") from None
    return proc


def os_process_node(
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
    names = mp_names() if names is None else names
    try:
        label = f"{names.get(proc.pid) or proc.name()} (pid {proc.pid})"
        children = proc.children()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return TreeNode(f"pid {proc.pid} (gone)", "notstarted", edge)
    node = TreeNode(label, "root" if root else ("owner" if children else "worker"), edge)
    node.children = [
        os_process_node(c, edge="started", names=names)
        for c in sorted(children, key=lambda c: c.pid)
    ]
    return node


def mp_names() -> dict[int, str]:
    # active_children() also reaps children that ended, which is harmless.
    return {p.pid: p.name for p in multiprocessing.active_children() if p.pid is not None}


def child_processes() -> list[psutil.Process]:
    try:
        return sorted(psutil.Process().children(), key=lambda p: p.pid)
    except psutil.Error:
        return []
