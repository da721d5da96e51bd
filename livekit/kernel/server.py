"""Run the book's server: bind the socket, start uvicorn, stop cleanly.

:class:`BookServer` binds its socket when it is made, so its port (and so
the address printed for the reader) is known before uvicorn starts, even
with ``port=0``.  :meth:`BookServer.run` serves in the calling thread, and
uvicorn turns Ctrl-C and SIGTERM into a shutdown that closes every page's
kernel.  :meth:`BookServer.start` / :meth:`BookServer.stop` run it in a
thread, for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn

from livekit.kernel import _security
from livekit.kernel.app import SEND_TIMEOUT, create_app
from livekit.kernel.session import Session

#: Seconds that open connections get to close when the server stops; the
#: kernels are killed after that, so everything is gone well within 2 s.
GRACE = 1


class BookServer:
    """A built book served on ``host:port``, its pages' cells live.

    Parameters
    ----------
    build_dir, source_dir
        The built HTML book and its sources (see :func:`~livekit.kernel.create_app`).
    host
        The address to bind: loopback unless the reader says otherwise.
    port
        The port; 0 picks a free one.
    token
        The secret; a fresh random one by default.
    session_factory
        Makes each page's session (default: an ipykernel process).
    send_timeout
        Seconds a page gets to take one message before it is cut off and
        its kernel stopped (see :data:`livekit.kernel.app.SEND_TIMEOUT`).

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> server = BookServer(folder, folder, port=0, token="t0k")
    >>> server.url.startswith("http://127.0.0.1:") and server.url.endswith("/?token=t0k")
    True
    >>> server.close()
    """

    def __init__(
        self,
        build_dir: str | Path,
        source_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        session_factory: Callable[[Path, Callable[[dict[str, Any]], None]], Session] | None = None,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.host = host
        self.token = token or _security.new_token()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on
        # sockets whose proto says TCP, and without it Nagle held every small
        # message to a page ~40 ms for the browser's delayed ACK.
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))
            self._socket.listen(128)
            self._socket.setblocking(False)
        except OSError:
            self._socket.close()
            raise
        self.port: int = self._socket.getsockname()[1]
        loopback = _security.is_loopback_name(host)
        self.app = create_app(
            build_dir,
            source_dir,
            token=self.token,
            port=self.port,
            allow_any_host=not loopback,
            session_factory=session_factory,
            send_timeout=send_timeout,
            drop=self._drop,
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Return the address to open; it carries the token, which works once."""
        name = "127.0.0.1" if self.host in _security.LOOPBACK_NAMES else self.host
        if ":" in name:
            name = f"[{name}]"
        return f"http://{name}:{self.port}/?token={self.token}"

    def _drop(self, scope: MutableMapping[str, Any]) -> None:
        """Reset a connection now, discarding what it has not sent.

        A page that stopped reading leaves megabytes in the transport's
        buffer and the socket's, and a graceful close waits for them to
        drain: they never would.  Lingering for 0 s makes the close a reset
        (RST), which frees both.  uvicorn keeps its open connections
        (protocol objects, each with its ``scope`` and ``transport``) in its
        server state.
        """
        if self._server is None:
            return
        for protocol in list(self._server.server_state.connections):
            if getattr(protocol, "scope", None) is scope:
                transport = protocol.transport
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
                return

    def _uvicorn(self) -> uvicorn.Server:
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            timeout_graceful_shutdown=GRACE,
            ws="websockets-sansio",
            lifespan="on",
        )
        server = uvicorn.Server(config)
        self._server = server
        return server

    def run(self) -> None:
        """Serve until Ctrl-C or SIGTERM, in this thread, then stop everything."""
        server = self._uvicorn()
        try:
            asyncio.run(self._serve(server))
        finally:
            self.close()

    async def _serve(self, server: uvicorn.Server) -> None:
        await server.serve(sockets=[self._socket])

    def start(self) -> None:
        """Serve in a background thread (owned by this object: call :meth:`stop`)."""
        server = self._uvicorn()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve(server)), name="livekit-serve", daemon=True
        )
        self._thread.start()
        # uvicorn sets `started` once it listens; nothing to wait on but polling.
        while not server.started and self._thread.is_alive():
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop a server started with :meth:`start` and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.close()

    def close(self) -> None:
        """Close the listening socket (the server must not be running)."""
        self._socket.close()
