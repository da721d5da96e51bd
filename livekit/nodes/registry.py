"""Node names, and the per-user registry that finds same-host nodes by name.

A node's full name is ``name@host``. Nodes on this host are found through
small files under ``~/.livekit/nodes/``, one per node, holding its port and
process id: the role EPMD plays for Erlang, without a daemon. An entry
whose process has died is ignored and deleted, with its Unix socket, by
whoever finds it dead: a client that looks it up, a node that starts or
stops (:func:`prune`). Nodes on other hosts are named with their port:
``name@host:port``.

The registry lives in livekit's home as it is when a function here is
called (``$LIVEKIT_HOME/nodes`` or ``~/.livekit/nodes``), unless a ``home``
is given. An :class:`Entry` remembers the file it was read from or written
to, and :func:`unregister` removes that file: a node that started under one
home removes its entry from there even if ``LIVEKIT_HOME`` has changed since
(see :mod:`livekit.nodes.local`).

What the registry is trusted with: the folder is the user's own and
writable by no one else (checked on every read, see
:mod:`livekit.nodes._home`), and a client reaches a node it found here only
through the Unix socket the entry names, after checking that the process
at the other end is the user's and is the one the entry names
(:func:`check_peer`). An entry's TCP port is never dialled: a dead node's
port can be taken by anyone.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from livekit.nodes._home import check_private_dir, livekit_home, make_dir
from livekit.nodes.errors import NodeError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class NodeAddress:
    """A parsed node name: ``name@host`` or ``name@host:port``.

    Examples
    --------
    >>> parse_node("demo@build-box:4370")
    NodeAddress(name='demo', host='build-box', port=4370)
    >>> parse_node("demo@build-box").port is None
    True
    """

    name: str
    host: str
    port: int | None


def parse_node(node: str) -> NodeAddress:
    """Split a node name into its short name, host and optional port.

    Examples
    --------
    >>> parse_node("demo@localhost")
    NodeAddress(name='demo', host='localhost', port=None)
    >>> parse_node("demo")
    Traceback (most recent call last):
    ValueError: expected a node name like 'name@host' or 'name@host:port', got 'demo'
    """
    if not isinstance(node, str):
        raise TypeError(f"expected the node name as a str, got {type(node).__name__}")
    name, at, rest = node.partition("@")
    host, colon, port_text = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    if not at or not _NAME.match(name) or not host or (colon and not port_text.isdigit()):
        raise ValueError(f"expected a node name like 'name@host' or 'name@host:port', got {node!r}")
    port = int(port_text) if colon else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"expected a port between 1 and 65535 in the node name, got {node!r}")
    return NodeAddress(name, host, port)


def check_short_name(name: str) -> str:
    """Return ``name`` if it can name a node (letters, digits, ``_ . -``).

    Examples
    --------
    >>> check_short_name("demo-1")
    'demo-1'
    >>> check_short_name("demo@host")
    Traceback (most recent call last):
    ValueError: expected a node name of letters, digits, '_', '.' and '-', got 'demo@host'
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"expected a node name of letters, digits, '_', '.' and '-', got {name!r}")
    return name


def this_host() -> str:
    """Return the host part of this machine's node names (its host name)."""
    return socket.gethostname()


def is_this_host(host: str) -> bool:
    """Tell whether ``host`` names this machine, so that the registry applies.

    Examples
    --------
    >>> is_this_host("localhost"), is_this_host(this_host()), is_this_host("elsewhere.invalid")
    (True, True, False)
    """
    host = host.lower()
    own = this_host().lower()
    return host in _LOOPBACK_NAMES or host in {own, own.partition(".")[0]}


@dataclass(frozen=True)
class Entry:
    """One registered node: where it listens and which process it is."""

    name: str
    host: str
    port: int
    pid: int
    started: float
    #: Its Unix socket, the faster way in from this host; "" when it has none.
    path: str = ""
    #: The registry file this entry was read from or written to; "" for one made by hand.
    #: Not stored in the file itself.
    file: str = field(default="", repr=False)

    def connect_host(self) -> str:
        """Return the address a same-host client should dial."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)  # noqa: S104


def registry_dir(home: Path | None = None) -> Path:
    """Return the directory of the registry, ``nodes/`` in ``home`` or in :func:`livekit_home`."""
    return (home if home is not None else livekit_home()) / "nodes"


def register(name: str, host: str, port: int, path: str = "", *, home: Path | None = None) -> Entry:
    """Record that this process serves node ``name`` at ``host:port`` (and ``path``).

    The entry is written in the registry of ``home`` (the current livekit
    home when None); the returned :class:`Entry` names that file, for
    :func:`unregister`.

    Raises
    ------
    NodeError
        If a live process already holds that name.
    """
    home = home if home is not None else livekit_home()
    directory = make_dir(registry_dir(home), home)
    me = psutil.Process()
    entry_file = directory / f"{check_short_name(name)}.json"
    entry = Entry(name, host, port, me.pid, me.create_time(), path, str(entry_file))
    # Write the entry whole, then link it into place: a reader never sees a
    # half-written file, and link() fails if the name is already claimed.
    draft = directory / f".{name}.{me.pid}.tmp"
    with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        json.dump(_stored(entry), file)
    try:
        for _ in range(2):
            try:
                os.link(draft, entry_file)
            except FileExistsError:
                holder = lookup(name, home=home)
                if holder is not None:
                    raise NodeError(
                        f"the node name {name!r} is in use by process {holder.pid} on this host"
                    ) from None
                continue  # lookup() removed the stale entry: claim it now
            return entry
    finally:
        draft.unlink(missing_ok=True)
    raise NodeError(f"could not claim the node name {name!r} in {directory}")


def unregister(entry: Entry) -> None:
    """Remove ``entry`` and its Unix socket from the registry if it is still this process's.

    The entry is removed from the file it names (:attr:`Entry.file`), in the
    home it was registered in, whatever the livekit home is now.

    Raises
    ------
    ValueError
        If ``entry`` was made by hand, so names no registry file.
    """
    if not entry.file:
        raise ValueError(
            f"expected an entry read from or written to the registry, got one that names "
            f"no file: {entry!r}"
        )
    _remove_if_unchanged(Path(entry.file), entry)


def lookup(name: str, *, home: Path | None = None) -> Entry | None:
    """Return the live entry registered as ``name``, deleting it if its process died.

    ``home`` is the livekit home whose registry to read; the current one when None.

    Examples
    --------
    >>> lookup("no-such-node") is None
    True
    """
    path = _checked_dir(home) / f"{check_short_name(name)}.json"
    entry = _read(path)
    if entry is None:
        return None
    if not _alive(entry):
        _remove_if_unchanged(path, entry)
        return None
    return entry


def read(name: str, *, home: Path | None = None) -> Entry | None:
    """Return the entry registered as ``name`` without checking that it is alive.

    ``home`` is the livekit home whose registry to read; the current one when None.

    Examples
    --------
    >>> read("no-such-node") is None
    True
    """
    return _read(_checked_dir(home) / f"{check_short_name(name)}.json")


def entries(*, home: Path | None = None) -> list[Entry]:
    """Return the live nodes of this host, by name, cleaning dead entries.

    ``home`` is the livekit home whose registry to read; the current one when None.

    Examples
    --------
    >>> entries()
    []
    """
    directory = _checked_dir(home)
    if not directory.is_dir():
        return []
    found = (
        lookup(path.stem, home=home)
        for path in sorted(directory.glob("*.json"))
        if _NAME.match(path.stem)
    )
    return [entry for entry in found if entry is not None]


def prune(*, home: Path | None = None) -> int:
    """Delete every entry whose process has died, with its Unix socket; return how many.

    ``home`` is the livekit home whose registry to clean; the current one when None.

    Examples
    --------
    >>> prune()
    0
    """
    directory = _checked_dir(home)
    if not directory.is_dir():
        return 0
    removed = 0
    for path in sorted(directory.glob("*.json")):
        entry = _read(path) if _NAME.match(path.stem) else None
        if entry is not None and not _alive(entry):
            removed += _remove_if_unchanged(path, entry)
    return removed


def check_peer(sock: socket.socket, entry: Entry) -> None:
    """Refuse ``sock`` unless the process at its other end is ``entry``'s, and the user's.

    Called on a Unix socket right after it connects, before any byte is
    sent: the kernel tells who is listening (``SO_PEERCRED``), so a socket
    bound by anyone else is refused unanswered.

    Raises
    ------
    NodeError
        Naming the process found and the one expected.
    """
    if not hasattr(socket, "SO_PEERCRED"):
        # macOS and the BSDs: the socket lies in the user's private nodes/ folder,
        # which no one else can write to; that is what vouches for it there.
        return
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.getuid():
        raise NodeError(
            f"refusing node {entry.name!r}: its socket {entry.path} is served by another "
            f"user (uid {uid}, process {pid})"
        )
    if pid != entry.pid:
        raise NodeError(
            f"refusing node {entry.name!r}: its socket {entry.path} is served by process "
            f"{pid}, not by the registered process {entry.pid}"
        )


def _checked_dir(home: Path | None = None) -> Path:
    home = home if home is not None else livekit_home()
    directory = registry_dir(home)
    check_private_dir(directory, home)
    return directory


def _stored(entry: Entry) -> dict[str, object]:
    """What of ``entry`` its file holds: everything but the file's own path."""
    stored = asdict(entry)
    del stored["file"]
    return stored


def _read(path: Path) -> Entry | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Entry(
            str(data["name"]),
            str(data["host"]),
            int(data["port"]),
            int(data["pid"]),
            float(data["started"]),
            str(data.get("path", "")),
            str(path),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # A torn or foreign file: treat it as a dead entry so it gets replaced.
        return Entry(path.stem, "", 0, -1, 0.0, file=str(path))


def _alive(entry: Entry) -> bool:
    if entry.pid <= 0:
        return False
    try:
        # Compare start times too: after a reboot or a wrap, the pid may be someone else's.
        return abs(psutil.Process(entry.pid).create_time() - entry.started) < 0.5
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _remove_if_unchanged(path: Path, entry: Entry) -> int:
    # A new node may have claimed the name since we read it: only delete what we read.
    if _read(path) != entry:
        return 0
    path.unlink(missing_ok=True)
    socket_file = Path(entry.path)
    # A killed node's Unix socket; never anything outside the registry.
    if entry.path and socket_file.parent == path.parent and socket_file.suffix == ".sock":
        socket_file.unlink(missing_ok=True)
    return 1
