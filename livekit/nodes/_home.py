"""Where livekit keeps its per-user files: the cookie and the node registry.

Whoever can write to livekit's home, or to ``nodes/`` in it, or to a folder
above them, can plant a cookie or swap the registry: so, as ssh does with
``StrictModes`` for ``~/.ssh``, every one of those folders must belong to
the user (or to root, for the folders above the home) and be writable by
no one else. A folder that others may write to is still fine when it is
root's and sticky (``/tmp``): there nobody can rename or delete what they
do not own.

The home is read from the environment each time :func:`livekit_home` is
called, but a node asks only once, when it starts, and keeps that home for
its whole life: its registry entry and socket are written there and removed
from there, whatever ``LIVEKIT_HOME`` says by the time it stops.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: Environment variable that moves livekit's per-user directory away from
#: ``~/.livekit`` (tests and the book point it at a temporary directory).
HOME_ENV = "LIVEKIT_HOME"


class UnsafeHomeError(PermissionError):
    """livekit's home, ``nodes/`` or a folder above them is not the user's alone.

    The message names the path and says what is wrong with it.
    """


def livekit_home() -> Path:
    """Return livekit's per-user directory now: ``$LIVEKIT_HOME`` or ``~/.livekit``.

    The path is made absolute, so that a home kept from an earlier call
    still names the same folder after a change of working directory.

    Examples
    --------
    >>> livekit_home().is_absolute()
    True
    """
    override = os.environ.get(HOME_ENV)
    return Path(os.path.abspath(override if override else Path.home() / ".livekit"))


def make_dir(path: Path, home: Path | None = None) -> Path:
    """Create ``path`` and any missing parent up to livekit's home, all private (0700).

    ``Path.mkdir(parents=True)`` would give the parents the default mode.
    Whether created now or found, livekit's home and ``path`` must pass
    :func:`check_private_dir`. ``home`` is the home ``path`` lies in; the
    current one (:func:`livekit_home`) when None.

    Raises
    ------
    UnsafeHomeError
        If one of them, or a folder above the home, belongs to another user
        or others may write to it.
    """
    home = home if home is not None else livekit_home()
    check_private_dir(path, home)  # before creating anything inside someone else's folder
    for directory in (home, path):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private_dir(path, home)  # and again: a folder found, or created meanwhile
    return path


def check_private_dir(path: Path, home: Path | None = None) -> None:
    """Refuse ``path`` unless it, and every folder above it, only the user can change.

    ``path`` (and the folders between it and ``home``) must belong to the
    user; the folders above may also be root's. None of them may be writable
    by group or others, unless it is root's and sticky.

    Raises
    ------
    UnsafeHomeError
        Naming the first folder that fails, and what is wrong with it.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     check_private_dir(Path(tmp))
    ...     os.chmod(tmp, 0o777)
    ...     check_private_dir(Path(tmp))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    livekit.nodes._home.UnsafeHomeError: ... is writable by other users (mode 0o777); ...
    """
    if os.name == "nt":  # POSIX modes mean nothing there; the user profile is private
        return
    me = os.getuid()
    home = home if home is not None else path
    absolute = Path(os.path.abspath(path))
    inside = {Path(os.path.abspath(home)), absolute}
    # Every folder from the root down: a writable one above lets others swap what is below.
    for folder in (*reversed(absolute.parents), absolute):
        try:
            info = os.lstat(folder)
        except FileNotFoundError:
            continue  # not created yet: whoever creates it is checked then
        if stat.S_ISLNK(info.st_mode):
            if info.st_uid not in (me, 0):
                raise UnsafeHomeError(
                    f"{folder} is a symbolic link owned by another user (uid {info.st_uid}); "
                    f"livekit does not follow it"
                )
            info = os.stat(folder)
        owners = (me,) if folder in inside else (me, 0)
        if info.st_uid not in owners:
            whose = "by you" if folder in inside else "by you or by root"
            raise UnsafeHomeError(
                f"{folder} belongs to another user (uid {info.st_uid}); it must be owned {whose}"
                + (f" (set {HOME_ENV} to a folder of your own)" if folder in inside else "")
            )
        writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky_root = info.st_mode & stat.S_ISVTX and info.st_uid == 0 and folder not in inside
        if writable and not sticky_root:
            mode = stat.S_IMODE(info.st_mode)
            raise UnsafeHomeError(
                f"{folder} is writable by other users (mode {mode:#o}); run: chmod go-w {folder}"
            )
