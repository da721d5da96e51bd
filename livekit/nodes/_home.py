"""Where livekit keeps its per-user files: the cookie and the node registry."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that moves livekit's per-user directory away from
#: ``~/.livekit`` (tests and the book point it at a temporary directory).
HOME_ENV = "LIVEKIT_HOME"


def livekit_home() -> Path:
    """Return livekit's per-user directory: ``$LIVEKIT_HOME`` or ``~/.livekit``."""
    override = os.environ.get(HOME_ENV)
    return Path(override) if override else Path.home() / ".livekit"


def make_dir(path: Path) -> Path:
    """Create ``path`` and any missing parent up to livekit's home, all private (0700).

    ``Path.mkdir(parents=True)`` would give the parents the default mode.
    """
    home = livekit_home()
    for directory in (home, path):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
