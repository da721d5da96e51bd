"""A read-only look at another process: its threads, their stacks, its asyncio tasks.

Nothing runs in the target. The stacks are read from its memory by a
well-kept reader: py-spy (``py-spy dump --json``) on CPython 3.11-3.13,
CPython's own remote unwinder (``_remote_debugging``, what
``python -m asyncio pstree`` uses) on 3.14+, which also finds the asyncio
tasks and what each awaits. Capture and format are apart: :func:`capture`
returns plain :class:`ThreadStack` and :class:`TaskStack` values,
:func:`stack_tree` (pure) turns them into a tree.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.attaching._target import process
from livekit.attaching.errors import AttachError
from livekit.mermaid import Mermaid
from livekit.trees import TreeNode, format_tree, tree_text

#: Frames drawn per thread or task, innermost last; the outer rest is one box.
DEPTH = 6


@dataclass(frozen=True)
class ThreadStack:
    """One thread and its stack, innermost frame first (``funcname file:line``)."""

    name: str
    tid: int
    frames: tuple[str, ...]


@dataclass(frozen=True)
class TaskStack:
    """One asyncio task: its coroutine stack, innermost first, and who awaits it."""

    id: int
    name: str
    tid: int
    frames: tuple[str, ...]
    awaited_by: tuple[int, ...] = ()


@dataclass
class Capture:
    """What was read from one process."""

    pid: int
    python: str
    threads: list[ThreadStack]
    tasks: list[TaskStack] = field(default_factory=list)
    reader: str = ""


def dump(pid: int) -> Mermaid:
    """Return the tree of ``pid``'s threads and stacks as a :class:`~livekit.Mermaid` diagram."""
    found = capture(pid)
    caption = (
        f"Threads of process {pid} and where each one is, read from outside by "
        f"{found.reader}: nothing ran in the process."
    )
    root = stack_tree(found)
    # A terminal prints the pstree-like drawing instead of the source.
    return Mermaid(format_tree(root), caption=caption, text=functools.partial(tree_text, root))


def capture(pid: int) -> Capture:
    """Read the stacks of ``pid`` without running code in it.

    Raises
    ------
    AttachError
        ``no-process``; ``failed`` when the reader cannot read it (not a
        CPython, another user's process without root, py-spy missing).
    """
    from livekit.attaching import _target

    proc = process(pid)
    python = _target.inspect_version(proc)
    if sys.version_info >= (3, 14):
        return _capture_unwinder(pid, python)
    return _capture_py_spy(pid, python)


def py_spy_path() -> str:
    """Return the py-spy program of this environment (the ``attach`` extra installs it)."""
    beside = Path(sysconfig.get_path("scripts")) / "py-spy"
    found = str(beside) if beside.is_file() else shutil.which("py-spy")
    if found is None:
        raise AttachError(
            "failed",
            "py-spy is not installed: pip install 'livekit-introspect[attach]' (or py-spy)",
        )
    return found


def _capture_py_spy(pid: int, python: str) -> Capture:
    result = subprocess.run(  # noqa: S603 -- py-spy of this environment, arguments built here
        [py_spy_path(), "dump", "--pid", str(pid), "--json"],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        said = result.stderr.strip().splitlines()
        raise AttachError(
            "failed", f"py-spy could not read process {pid}: {said[0] if said else 'no output'}"
        )
    threads = [
        ThreadStack(
            str(item.get("thread_name") or f"thread {item.get('os_thread_id')}"),
            int(item.get("os_thread_id") or 0),
            tuple(_py_spy_frame(frame) for frame in item.get("frames", [])),
        )
        for item in json.loads(result.stdout)
    ]
    return Capture(pid, python, threads, reader="py-spy")


def _py_spy_frame(frame: dict[str, Any]) -> str:
    where = frame.get("short_filename") or frame.get("filename") or "?"
    return f"{frame.get('name', '?')} {where}:{frame.get('line', '?')}"


def _capture_unwinder(pid: int, python: str) -> Capture:  # pragma: no cover - 3.14+
    try:
        from _remote_debugging import RemoteUnwinder  # type: ignore[import-not-found]
    except ImportError:
        raise AttachError("failed", "this CPython has no remote unwinder") from None
    try:
        unwinder = RemoteUnwinder(pid, all_threads=True)
        stacks = unwinder.get_stack_trace()
    except PermissionError:
        raise AttachError(
            "failed", f"not allowed to read the memory of process {pid} (run as its user or root)"
        ) from None
    except (RuntimeError, OSError) as error:
        raise AttachError("failed", f"could not read process {pid}: {error}") from None
    names = _os_thread_names(pid)
    threads = [
        ThreadStack(
            names.get(info.thread_id, f"thread {info.thread_id}"),
            int(info.thread_id),
            tuple(_unwound_frame(frame) for frame in info.frame_info),
        )
        for info in _threads_of(stacks)
    ]
    try:
        awaited = unwinder.get_all_awaited_by()
    except RuntimeError:
        awaited = []  # asyncio was never imported there: no tasks to draw
    tasks = [
        TaskStack(
            int(task.task_id),
            str(task.task_name),
            int(group.thread_id),
            tuple(_unwound_frame(f) for coro in task.coroutine_stack for f in coro.call_stack),
            tuple(int(coro.task_name) for coro in task.awaited_by),
        )
        for group in awaited
        for task in group.awaited_by
    ]
    return Capture(pid, python, threads, tasks, reader="CPython's remote unwinder")


def _threads_of(stacks: list[Any]) -> list[Any]:
    """The threads of a stack trace: 3.14 lists them; 3.15 groups them by interpreter."""
    found: list[Any] = []
    for item in stacks:
        found.extend(item.threads if hasattr(item, "threads") else [item])
    return found


def _unwound_frame(frame: Any) -> str:
    where = os.path.basename(str(frame.filename)) or "?"
    # 3.14 gives the line; 3.15 a location with the line and columns.
    line = getattr(frame, "lineno", None)
    if line is None:
        line = getattr(getattr(frame, "location", None), "lineno", "?")
    return f"{frame.funcname} {where}:{line}"


def _os_thread_names(pid: int) -> dict[int, str]:
    """Thread names as the OS knows them (3.14 gives Python's names to OS threads)."""
    names: dict[int, str] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return names
    for tid in tids:
        try:
            names[int(tid)] = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except (OSError, ValueError):
            continue
    names[pid] = "MainThread"
    return names


def stack_tree(found: Capture) -> TreeNode:
    """Return the tree of a capture (a pure function).

    Each thread shows its stack from the outermost frame down, the
    innermost :data:`DEPTH` frames drawn; a thread that runs an event loop
    shows its tasks, each under the task that awaits it.

    Examples
    --------
    >>> found = Capture(42, "3.11", [
    ...     ThreadStack("MainThread", 42, ("sleep app.py:3", "<module> app.py:9")),
    ... ], [TaskStack(1, "Task-1", 42, ("main app.py:7",)),
    ...     TaskStack(2, "fetch", 42, ("get app.py:2",), awaited_by=(1,))], reader="py-spy")
    >>> print(format_tree(stack_tree(found)))  # doctest: +ELLIPSIS
    graph TD
      n0["python 3.11 (pid 42), read-only"]:::root
      n0 -->|owns| n1["MainThread (tid 42)"]:::owner
      n1 -->|at| n2["#lt;module#gt; app.py:9 → sleep app.py:3"]:::worker
      n1 -->|runs| n3["task Task-1: main app.py:7"]:::owner
      n3 -->|awaits| n4["task fetch: get app.py:2"]:::worker
      classDef ...
    """
    root = TreeNode(f"python {found.python} (pid {found.pid}), read-only", "root")
    by_thread: dict[int, list[TaskStack]] = {}
    for task in found.tasks:
        by_thread.setdefault(task.tid, []).append(task)
    for thread in found.threads:
        node = TreeNode(f"{thread.name} (tid {thread.tid})", "worker", "owns")
        if thread.frames:
            node.children.append(TreeNode(_path(thread.frames), "worker", "at"))
        tasks = by_thread.get(thread.tid, [])
        node.children.extend(_task_nodes(tasks, "runs"))
        node.kind = "owner" if node.children else "worker"
        root.children.append(node)
    return root


def _path(frames: tuple[str, ...]) -> str:
    """Frames from the outermost down to the innermost, the outer rest summed up."""
    shown = list(reversed(frames[:DEPTH]))
    hidden = len(frames) - DEPTH
    prefix = [f"{hidden} outer frames"] if hidden > 0 else []
    return " → ".join(prefix + shown)


def _task_nodes(tasks: list[TaskStack], edge: str) -> list[TreeNode]:
    known = {task.id for task in tasks}
    children: dict[int, list[TaskStack]] = {}
    roots = []
    for task in tasks:
        parents = [p for p in task.awaited_by if p in known]
        if parents:
            children.setdefault(parents[0], []).append(task)
        else:
            roots.append(task)

    def draw(task: TaskStack, edge: str, seen: frozenset[int]) -> TreeNode:
        where = _path(task.frames) if task.frames else "?"
        kids = [k for k in children.get(task.id, []) if k.id not in seen]
        node = TreeNode(f"task {task.name}: {where}", "owner" if kids else "worker", edge)
        node.children = [draw(k, "awaits", seen | {k.id}) for k in kids]
        return node

    return [draw(task, edge, frozenset({task.id})) for task in roots]
