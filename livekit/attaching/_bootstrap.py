"""The few lines that run inside the target, and the files they talk through.

The bootstrap is plain standard-library Python, because it runs before
livekit is importable there. On the target's main thread it does only what
cannot wait: it checks that the target's CPython is the attaching one and
that the attacher has not given up, then starts one thread and returns.
That thread puts livekit on ``sys.path``, imports
:mod:`livekit.attaching._agent` and starts the node; it reports back through a
result file, written whole (a rename) and private (0600).

All files live in the attaching user's ``<livekit home>/attach/``, a
directory of mode 0700: a file another user could write there would be
code run in the target.
"""

from __future__ import annotations

import json
import os
import secrets
import site
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import livekit
from livekit.attaching._target import this_python
from livekit.nodes.cookie import cookie_path

#: The bootstrap's text. ``REQUEST`` is replaced by a dict literal; everything
#: lives inside one function that deletes itself, so that the target's
#: namespace (``__main__`` under ``sys.remote_exec``) keeps no name of ours.
_TEMPLATE = """\
def _livekit_attach_bootstrap(request):
    import json, os, sys, threading, time

    def answer(result):
        draft = request["result"] + ".tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(draft, flags, 0o600), "w") as file:
            json.dump(result, file)
        os.replace(draft, request["result"])

    try:
        os.unlink(request["script"])
    except OSError:
        pass
    if time.time() > request["deadline"]:
        return  # the attacher gave up waiting: do nothing at all
    free = "t" if "t" in getattr(sys, "abiflags", "") else ""
    mine = "%d.%d%s" % (sys.version_info[0], sys.version_info[1], free)
    if sys.implementation.name != "cpython" or mine != request["python"]:
        answer({"ok": False, "reason": "version", "message": (
            "process %d runs Python %s (%s) but the attaching livekit runs on Python %s; "
            "livekit was not put on its path" % (os.getpid(), mine, sys.executable,
                                                  request["python"]))})
        return

    def start():
        try:
            fresh = "livekit" not in sys.modules
            added = [p for p in request["paths"] if p not in sys.path]
            # Appended, not prepended: the target's own modules keep precedence.
            sys.path.extend(added)
            import livekit
            where = os.path.dirname(os.path.realpath(livekit.__file__))
            if where != request["livekit"]:
                for path in added:
                    sys.path.remove(path)
                answer({"ok": False, "reason": "failed", "message": (
                    "process %d already has another livekit (%s), not the attaching one (%s)"
                    % (os.getpid(), where, request["livekit"]))})
                return
            from livekit.attaching import _agent
            answer(_agent.start(request, added_paths=added, fresh=fresh))
        except BaseException as error:
            answer({"ok": False, "reason": "failed", "message": "%s in process %d: %s" % (
                type(error).__name__, os.getpid(), error)})

    threading.Thread(target=start, name="livekit-attach", daemon=True).start()


try:
    _livekit_attach_bootstrap(REQUEST)
finally:
    del _livekit_attach_bootstrap
"""


def livekit_home() -> Path:
    """Return the attaching user's livekit home: where its cookie file lives."""
    return cookie_path().parent


def attach_dir() -> Path:
    """Return the directory of attach files, ``<livekit home>/attach``, created private.

    Raises
    ------
    PermissionError
        If it is a symbolic link, another user's, or open to other users.
    """
    home = livekit_home()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory = home / "attach"
    directory.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(
            f"{directory} must be a directory of yours that only you can use (mode 0700); "
            f"it holds code that attached processes run"
        )
    return directory


def cookie_file(short: str) -> Path:
    """Return the file that holds the cookie of the attached node ``short``."""
    return livekit_home() / "attach" / f"{short}.cookie"


def detached_file(short: str) -> Path:
    """Return the file the agent writes when node ``short`` has detached."""
    return livekit_home() / "attach" / f"{short}.detached.json"


def livekit_paths() -> list[str]:
    """Return the directories the target needs on ``sys.path`` to import this livekit.

    The directory holding the ``livekit`` package comes first (an editable
    install reaches it through a ``.pth`` file, which a bare ``sys.path``
    entry would not read), then this environment's site-packages, for
    livekit's dependencies.
    """
    paths = [str(Path(livekit.__file__).resolve().parent.parent)]
    for directory in site.getsitepackages():
        if os.path.isdir(directory) and directory not in paths:
            paths.append(directory)
    return paths


def script(request: dict[str, Any]) -> str:
    """Return the bootstrap's source for ``request`` (a pure function).

    Examples
    --------
    >>> text = script({"python": "3.11", "deadline": 0.0})
    >>> compile(text, "<bootstrap>", "exec") is not None
    True
    >>> "'python': '3.11'" in text
    True
    """
    return _TEMPLATE.replace("REQUEST", repr(request))


@dataclass(frozen=True)
class Exchange:
    """The files of one attach: the bootstrap the target runs and its answer."""

    script: Path
    result: Path

    @classmethod
    def create(cls, request: dict[str, Any]) -> Exchange:
        """Write the bootstrap for ``request`` (0600) and return where to look for the answer.

        ``request`` gets the two paths; the rest of it is the caller's.
        """
        directory = attach_dir()
        token = secrets.token_hex(8)
        exchange = cls(directory / f"{token}.py", directory / f"{token}.result.json")
        request = {**request, "script": str(exchange.script), "result": str(exchange.result)}
        _write_private(exchange.script, script(request))
        return exchange

    def answer(self, deadline: float, alive: Any) -> dict[str, Any] | None:
        """Wait until ``deadline`` (``time.time()``) for the answer; None if none came.

        ``alive()`` is asked between polls, so that a target that died does
        not make the caller wait out the deadline.
        """
        delay = 0.005
        while True:
            try:
                data = json.loads(self.result.read_text(encoding="utf-8"))
            except FileNotFoundError:
                data = None
            if isinstance(data, dict):
                self.result.unlink(missing_ok=True)
                return data
            if time.time() >= deadline or not alive():
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def remove(self, *, script: bool = True) -> None:
        """Delete the files of this exchange that are still there."""
        if script:
            self.script.unlink(missing_ok=True)
        for path in (self.result, self.result.with_name(self.result.name + ".tmp")):
            path.unlink(missing_ok=True)


def write_cookie(path: Path, cookie: str) -> None:
    """Write ``cookie`` to ``path``, mode 0600, replacing a stale file."""
    attach_dir()
    path.unlink(missing_ok=True)
    _write_private(path, cookie + "\n")


def _write_private(path: Path, text: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, 0o600), "w", encoding="utf-8") as file:
        file.write(text)


def request_for(short: str, deadline: float) -> dict[str, Any]:
    """Return the request of an attach of node ``short`` that gives up at ``deadline``."""
    return {
        "name": short,
        "python": this_python(),
        "deadline": deadline,
        "paths": livekit_paths(),
        "livekit": str(Path(livekit.__file__).resolve().parent),
        "home": str(livekit_home().resolve()),
        "cookie_file": str(cookie_file(short)),
        "detached": str(detached_file(short)),
    }
