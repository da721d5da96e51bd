"""Cookies: the shared secret that lets two nodes talk, as in Erlang.

This interpreter has one cookie of its own. It comes from
:func:`set_cookie`, from ``start_node(cookie=...)``, or from the cookie file
``~/.livekit/cookie``, which is created with a random value and mode 0600
the first time it is needed. As Erlang does with ``~/.erlang.cookie``, a
cookie file that other users can read is refused; so is one that is a
symbolic link (it is opened with ``O_NOFOLLOW`` and the opened file is
checked, not the path), and one in a folder that others can write to. A
different cookie can be set for one remote node with
``set_cookie(node, cookie)``.

A cookie is checked when a link is opened, never again on an open link:
changing it changes nothing for links already open until
:func:`livekit.disconnect`, as in Erlang.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import threading
from pathlib import Path
from typing import overload

from livekit.nodes._home import check_private_dir, livekit_home, make_dir

_lock = threading.Lock()
_own: str | None = None
_per_node: dict[str, str] = {}


def cookie_path() -> Path:
    """Return the path of the cookie file, ``~/.livekit/cookie``."""
    return livekit_home() / "cookie"


def get_cookie() -> str:
    """Return this interpreter's cookie, creating the cookie file if needed.

    Raises
    ------
    PermissionError
        If the cookie file can be read or written by other users.

    Examples
    --------
    >>> set_cookie("example-cookie")
    >>> get_cookie()
    'example-cookie'
    """
    global _own  # noqa: PLW0603 -- one cookie per interpreter, as in Erlang
    with _lock:
        if _own is None:
            _own = read_cookie_file(cookie_path())
        return _own


@overload
def set_cookie(cookie: str, /) -> None: ...
@overload
def set_cookie(node: str, cookie: str, /) -> None: ...
def set_cookie(node_or_cookie: str, cookie: str | None = None, /) -> None:
    """Set this interpreter's cookie, or the cookie to use for one node.

    ``set_cookie(cookie)`` changes this interpreter's own cookie: the one its
    node server checks and the one it shows other nodes by default.
    ``set_cookie(node, cookie)`` sets the cookie used when connecting to
    ``node`` only, like Erlang's ``Node.set_cookie(node, cookie)``.

    A cookie is proved once, when a link opens. Setting another one does
    nothing to links already open, in either direction: a node already
    connected stays connected with the old cookie until
    :func:`~livekit.disconnect` (Erlang behaves the same way). To put a
    new cookie in force, disconnect, then connect again.

    Parameters
    ----------
    node_or_cookie
        The cookie, or with two arguments the node's name.
    cookie
        The cookie for that node.

    Examples
    --------
    >>> set_cookie("cookie-of-this-interpreter")
    >>> set_cookie("demo@otherhost:4370", "cookie-of-demo")
    >>> cookie_for("demo@otherhost:4370"), cookie_for("elsewhere@otherhost:4371")
    ('cookie-of-demo', 'cookie-of-this-interpreter')
    >>> set_cookie("")
    Traceback (most recent call last):
    ValueError: expected a non-empty cookie without whitespace, got an empty string
    """
    global _own  # noqa: PLW0603 -- one cookie per interpreter, as in Erlang
    if cookie is None:
        _check_cookie(node_or_cookie)
        with _lock:
            _own = node_or_cookie
        return
    if not isinstance(node_or_cookie, str) or "@" not in node_or_cookie:
        raise ValueError(f"expected a node name like 'name@host', got {node_or_cookie!r}")
    _check_cookie(cookie)
    with _lock:
        _per_node[node_or_cookie] = cookie


def cookie_for(node: str) -> str:
    """Return the cookie to show ``node``: its own if set, else this interpreter's."""
    with _lock:
        cookie = _per_node.get(node)
    return cookie if cookie is not None else get_cookie()


def read_cookie_file(path: Path) -> str:
    """Return the cookie stored at ``path``, creating it first if it is missing.

    Raises
    ------
    PermissionError
        If the file belongs to another user, others may read or write it,
        it is a symbolic link or not a regular file, or its folder is not
        the user's alone (an ``UnsafeHomeError``, naming the folder).
    ValueError
        If the file is empty.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "cookie"
    ...     first = read_cookie_file(path)
    ...     again = read_cookie_file(path)
    ...     print(len(first) >= 32, again == first, oct(path.stat().st_mode & 0o777))
    True True 0o600
    """
    check_private_dir(path.parent)
    # O_NOFOLLOW: a planted link to a file whose content the planter knows is
    # refused here, and fstat below checks the file that was opened, not the path.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return _create_cookie_file(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise PermissionError(
                f"the cookie file {path} is a symbolic link; livekit does not follow it "
                f"(replace it with the file itself)"
            ) from None
        raise
    with os.fdopen(fd, encoding="ascii") as file:
        _check_private(path, os.fstat(file.fileno()))
        value = file.read().strip()
    if not value:
        raise ValueError(f"the cookie file {path} is empty; delete it to get a new random cookie")
    return value


def _create_cookie_file(path: Path) -> str:
    make_dir(path.parent)
    value = secrets.token_urlsafe(32)
    try:
        # O_EXCL: if another process creates it first, read theirs instead.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_cookie_file(path)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(value + "\n")
    return value


def _check_private(path: Path, info: os.stat_result) -> None:
    if os.name == "nt":  # POSIX modes mean nothing there; the user profile is private
        return
    if not stat.S_ISREG(info.st_mode):
        raise PermissionError(f"the cookie file {path} is not a regular file")
    if info.st_uid != os.getuid():
        raise PermissionError(f"the cookie file {path} belongs to another user (uid {info.st_uid})")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        mode = stat.S_IMODE(info.st_mode)
        raise PermissionError(
            f"the cookie file {path} must be accessible by its owner only, but its mode is "
            f"{mode:#o}; run: chmod 600 {path}"
        )


def _check_cookie(cookie: object) -> None:
    if not isinstance(cookie, str):
        raise TypeError(f"expected the cookie as a str, got {type(cookie).__name__}")
    if not cookie or any(char.isspace() for char in cookie):
        # Never echo the cookie itself: error messages end up in logs.
        what = "an empty string" if not cookie else "a cookie containing whitespace"
        raise ValueError(f"expected a non-empty cookie without whitespace, got {what}")


def _reset() -> None:
    """Forget every cookie (tests only)."""
    global _own  # noqa: PLW0603
    with _lock:
        _own = None
        _per_node.clear()
