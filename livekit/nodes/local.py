"""This interpreter as a node: start it, name it, stop it.

The node server runs as the ``"node-server"`` child of livekit's own
supervisor (:func:`livekit.supervisor.app_supervisor`), so it shows in
``app_tree("livekit")`` and stops with the interpreter.

A node keeps the livekit home it started with (``$LIVEKIT_HOME`` or
``~/.livekit`` at :func:`start_node`) for its whole life: its entry and
Unix socket are written there, and removed from there when it stops, even
if ``LIVEKIT_HOME`` has changed meanwhile.

A node leaves nothing in the registry on any exit it can see: :func:`stop_node`,
the interpreter's exit (``atexit``), and SIGTERM when nobody else handles it
(the node then removes its entry and socket and lets SIGTERM end the process
as it would have). A death it cannot see (SIGKILL, a crash) leaves an entry
that whoever finds it dead removes: a client, or a node starting or stopping
(:func:`livekit.nodes.registry.prune`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from livekit.nodes import cookie as _cookie
from livekit.nodes import registry
from livekit.nodes._home import livekit_home, make_dir
from livekit.nodes.errors import NodeError
from livekit.nodes.server import NodeServer
from livekit.supervisor import app_supervisor, child, stopping

#: The name of the node server among livekit's supervised children.
CHILD_NAME = "node-server"


@dataclass(frozen=True)
class _Running:
    name: str
    server: NodeServer
    entry: registry.Entry
    child: str
    #: The livekit home the node started in; its registry is the node's for life.
    home: Path


_lock = threading.RLock()
_running: _Running | None = None
_atexit_registered = False
#: Set while livekit's SIGTERM handler is installed (only over the default one).
_sigterm_installed = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Remove this node's entry and socket, then die of SIGTERM as if never caught.

    Only the files: a full :func:`stop_node` joins threads, which a signal
    handler must not wait for.
    """
    running = _running
    if running is not None:
        with contextlib.suppress(OSError):
            registry.unregister(running.entry)
        if running.server.unix_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(running.server.unix_path)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _take_sigterm() -> None:
    # Only over the default handler, and only from the main thread (where
    # Python allows it): a program with its own SIGTERM handling keeps it.
    global _sigterm_installed  # noqa: PLW0603
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
        _sigterm_installed = True


def _give_back_sigterm() -> None:
    global _sigterm_installed  # noqa: PLW0603
    if not _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _sigterm_installed = False


def _not_a_node_after_fork() -> None:
    """A forked child is not its parent's node: close its copy of the listener."""
    global _running, _lock  # noqa: PLW0603 -- the parent's lock may have been held at fork
    _lock = threading.RLock()
    running, _running = _running, None
    if running is not None:
        running.server.forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_not_a_node_after_fork)


def start_node(
    name: str | None = None,
    *,
    cookie: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> str:
    """Make this interpreter a node and return its full name, ``name@host``.

    Other processes can then :func:`~livekit.connect` to it, call functions
    in it with :func:`livekit.rpc.call` and :func:`~livekit.spawn` code on it,
    if they hold its cookie. Anyone who holds the cookie can run any code in
    this process, as in Erlang.

    The node's registry entry and Unix socket go in livekit's home as it is
    now (``$LIVEKIT_HOME`` or ``~/.livekit``), and are removed from there when
    the node stops, even if ``LIVEKIT_HOME`` has changed meanwhile.

    Parameters
    ----------
    name
        The short name, unique on this host; ``python<pid>`` when None.
    cookie
        This node's cookie; by default the one in ``~/.livekit/cookie``
        (see :func:`~livekit.get_cookie`).
    host
        The address to listen on. The default, loopback, admits only this
        machine; any other address is reachable from the network, so cross
        machines through TLS or an SSH tunnel (see the how-to).
    port
        The TCP port; 0 picks a free one. Nodes on this host find it in the
        registry; other hosts need it: ``name@host:port``.

    Raises
    ------
    NodeError
        If another live process on this host already has this name, or this
        interpreter is already a node under another name.
    PermissionError
        If the cookie file is readable by other users.

    Examples
    --------
    >>> full = start_node("example", cookie="example-cookie")
    >>> full.startswith("example@"), node() == full
    (True, True)
    >>> stop_node()
    True
    >>> start_node("no spaces")
    Traceback (most recent call last):
    ValueError: expected a node name of letters, digits, '_', '.' and '-', got 'no spaces'
    """
    global _running, _atexit_registered  # noqa: PLW0603 -- one node per interpreter
    if name is not None:
        registry.check_short_name(name)
    if not isinstance(host, str) or not host:
        raise ValueError(f"expected a host address to listen on, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"expected a port between 0 and 65535, got {port!r}")
    with _lock:
        if _running is not None:
            options = (cookie, host, port) != (None, "127.0.0.1", 0)
            if name in (None, _running.entry.name) and not options:
                return _running.name
            raise NodeError(
                f"this interpreter is already node {_running.name}; "
                "stop_node() first to change its name, cookie, host or port"
            )
        if cookie is not None:
            _cookie.set_cookie(cookie)
        else:
            _cookie.get_cookie()  # a bad cookie file fails here, not at the first peer
        # Read once: the environment may name another home by the time this node stops.
        home = livekit_home()
        with contextlib.suppress(OSError):
            registry.prune(home=home)  # the dead entries found on the way are removed, not kept
        short = name or f"python{os.getpid()}"
        full = f"{short}@{registry.this_host()}"
        # The Unix socket's name holds the pid, so it never clobbers a live namesake's.
        unix_path = make_dir(registry.registry_dir(home), home) / f"{short}.{os.getpid()}.sock"
        server = NodeServer(
            full, cookie=_cookie.get_cookie, host=host, port=port, unix_path=str(unix_path)
        )
        entry = None
        try:
            entry = registry.register(
                short, *server.address, path=server.unix_path or "", home=home
            )
            spec = child(lambda: server.serve(stopping()), name=CHILD_NAME, restart="permanent")
            _running = _Running(full, server, entry, app_supervisor().start_child(spec), home)
        except BaseException:
            # Undo in reverse: nothing may stay bound or registered for a node that never ran.
            server.close()
            if entry is not None:
                registry.unregister(entry)
            raise
        if not _atexit_registered:
            atexit.register(stop_node)
            _atexit_registered = True
        _take_sigterm()
        return full


def node() -> str:
    """Return this interpreter's node name, making it a node first if needed.

    Starting on demand is what lets a notebook connect to itself when no
    other node is at hand, as the seed notebook's default does.

    Examples
    --------
    >>> name = node()
    >>> name == node() and "@" in name
    True
    """
    with _lock:
        return _running.name if _running is not None else start_node()


def stop_node() -> bool:
    """Stop this interpreter's node server; return False if it was not running.

    The listener closes, every link to it ends, and its registry entry and
    Unix socket are removed from the home the node started in (with the
    entries of any dead node found there). Links this interpreter opened to
    other nodes stay open.

    Examples
    --------
    >>> stop_node()
    False
    """
    global _running
    with _lock:
        running, _running = _running, None
    if running is None:
        return False
    supervisor = app_supervisor()
    try:
        supervisor.terminate_child(running.child)
        supervisor.delete_child(running.child)
    finally:
        # Whatever the supervisor did, the socket and the entry must go.
        running.server.close()
        registry.unregister(running.entry)
        _give_back_sigterm()
        with contextlib.suppress(OSError):
            registry.prune(home=running.home)
    return True
