"""The attached side: what livekit runs inside a process it was injected into.

The bootstrap (:mod:`livekit.attaching._bootstrap`) imports this module on a
thread of its own and calls :func:`start`, which makes the process a node
through the public :func:`~livekit.start_node`. :func:`detach` is called
over that node, with ``rpc.call``; it undoes what :func:`start` did, in
reverse, on a thread of its own, because the node that carries the call
cannot stop itself while it answers.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livekit.nodes.cookie import cookie_path, read_cookie_file
from livekit.nodes.local import node, start_node, stop_node
from livekit.supervisor import app_supervisor

#: livekit's home is this variable when set (see livekit.nodes); the target
#: must use the attaching user's, so that its registry entry is found there.
_HOME_ENV = "LIVEKIT_HOME"
_UNSET = object()


@dataclass(frozen=True)
class _Attached:
    name: str
    added_paths: list[str]
    previous_home: object  # the target's own LIVEKIT_HOME, or _UNSET, or None when untouched
    fresh: bool  # livekit's supervisor is the attach's own: stop it at detach
    detached_file: str


_lock = threading.Lock()
_attached: _Attached | None = None
#: True once an attach brought livekit into this process: every detach then
#: stops livekit's supervisor, which only the attaches had started.
_ours = False


def start(request: dict[str, Any], *, added_paths: list[str], fresh: bool) -> dict[str, Any]:
    """Make this process the node ``request["name"]`` and return the answer for the attacher.

    ``added_paths`` are the ``sys.path`` entries the bootstrap added, and
    ``fresh`` tells whether livekit was imported for the attach; both are
    undone by :func:`detach`.
    """
    global _attached, _ours  # noqa: PLW0603 -- one attach per process
    import time

    with _lock:
        if _attached is not None:
            return {"ok": True, "name": _attached.name, "existing": True}
        _ours = _ours or fresh
        previous: object = None
        if cookie_path().parent.resolve() != Path(request["home"]):
            previous = os.environ.get(_HOME_ENV, _UNSET)
            os.environ[_HOME_ENV] = request["home"]
        try:
            cookie = read_cookie_file(Path(request["cookie_file"]))
            name = start_node(request["name"], cookie=cookie)
        except BaseException:
            _restore(previous, added_paths)
            raise
        if time.time() > request["deadline"] + 1.0:
            # The attacher has stopped waiting for this answer: nobody would detach.
            _stop(_ours)
            _restore(previous, added_paths)
            return {"ok": False, "reason": "timeout", "message": "started too late"}
        _attached = _Attached(name, added_paths, previous, _ours, request["detached"])
        return {"ok": True, "name": name, "pid": os.getpid(), "existing": False}


def detach() -> bool:
    """Stop the attached node soon, on a thread of its own; return False if not attached.

    Examples
    --------
    >>> detach()
    False
    """
    with _lock:
        attached = _attached
    if attached is None:
        return False
    threading.Thread(target=_finish, args=(attached,), name="livekit-detach").start()
    return True


def state() -> dict[str, Any]:
    """Return what the attach changed in this process (for tests and the curious).

    Examples
    --------
    >>> state()
    {'attached': False}
    """
    with _lock:
        attached = _attached
    if attached is None:
        return {"attached": False}
    return {
        "attached": True,
        "name": attached.name,
        "node": node(),
        "added_paths": list(attached.added_paths),
        "fresh": attached.fresh,
    }


def _finish(attached: _Attached) -> None:
    global _attached  # noqa: PLW0603
    try:
        _stop(attached.fresh)
        _restore(attached.previous_home, attached.added_paths)
    finally:
        with _lock:
            _attached = None
        # Written last: the detacher waits for it, then for this thread to end.
        draft = attached.detached_file + ".tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(draft, flags, 0o600), "w", encoding="utf-8") as file:
            json.dump({"threads": threading.active_count(), "pid": os.getpid()}, file)
        os.replace(draft, attached.detached_file)


def _stop(ours: bool) -> None:
    stop_node()
    if ours:
        # livekit came in with the attach: its supervisor (started by
        # start_node) goes with it, so that no livekit thread stays behind.
        app_supervisor().stop()


def _restore(previous_home: object, added_paths: list[str]) -> None:
    if previous_home is _UNSET:
        os.environ.pop(_HOME_ENV, None)
    elif isinstance(previous_home, str):
        os.environ[_HOME_ENV] = previous_home
    for path in added_paths:
        while path in sys.path:
            sys.path.remove(path)
