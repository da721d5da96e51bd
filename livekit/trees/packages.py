"""One package's share of the interpreter, and the distributions this interpreter uses.

A thread, task or process belongs to a package when the code it was made
to run is in the package's files (or, for a thread, when such code is on
its stack now).
"""

from __future__ import annotations

import functools
import importlib.metadata
import multiprocessing
import os
import re
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import process as _futures_process
from types import CodeType, FrameType
from typing import Any, NamedTuple

from livekit.trees._sorting import natural
from livekit.trees.format import TreeNode
from livekit.trees.pools import mp_process_node
from livekit.trees.tasks import all_tasks, task_label


def import_name(app: str) -> str:
    """The imported top-level module for ``app``: itself, or a distribution's module.

    So that a name from :func:`started_applications` ("livekit-introspect",
    "PyYAML") works as well as an import name ("livekit", "yaml").
    """
    if not isinstance(app, str):
        raise TypeError(f"expected a package name (str) or None, got {type(app).__name__}: {app!r}")
    if app in sys.modules:
        return app
    wanted = re.sub(r"[-_.]+", "-", app).lower()
    mapping = dict(distributions_of_modules())
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


def package_node(app: str) -> TreeNode:
    prefixes = _package_files(app)
    version = version_of(app)
    root = TreeNode(f"{app} {version}".strip(), "root")
    frames = sys._current_frames()
    try:
        for t in sorted(threading.enumerate(), key=lambda t: natural(t.name)):
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
    for task in sorted(all_tasks(), key=lambda t: natural(t.get_name())):
        code = getattr(task.get_coro(), "cr_code", None)
        if isinstance(code, CodeType) and _belongs(code.co_filename, prefixes):
            root.children.append(TreeNode(task_label(task), "worker", "task coroutine"))
    # Process.start() drops the target function, so a process belongs to the
    # package that defines its class's run(), or to the executor that owns it.
    owned: set[int] = set()
    for manager in list(_futures_process._threads_wakeups):
        code = _code_of(getattr(manager, "_target", None)) or _code_of(manager)
        if code is not None and _belongs(code.co_filename, prefixes):
            for pid, proc in sorted(dict(getattr(manager, "processes", None) or {}).items()):
                root.children.append(mp_process_node(proc, "executor's process"))
                owned.add(pid)
    for proc in sorted(multiprocessing.active_children(), key=lambda p: p.pid or 0):
        code = _code_of(proc)
        if proc.pid not in owned and code is not None and _belongs(code.co_filename, prefixes):
            root.children.append(mp_process_node(proc, "process class"))
    return root


class Application(NamedTuple):
    """One row of :func:`~livekit.started_applications`."""

    name: str
    description: str
    version: str


@functools.cache
def distributions_of_modules() -> dict[str, list[str]]:
    # Scanning every installed distribution's file list takes ~0.3 s: once is enough.
    return dict(importlib.metadata.packages_distributions())


def version_of(app: str) -> str:
    dists = distributions_of_modules().get(app) or (
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
        dists = distributions_of_modules().get(module) or (
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
