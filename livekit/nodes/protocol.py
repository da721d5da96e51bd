"""The wire between two nodes: sockets, the cookie handshake, and messages.

A link is a TCP connection wrapped in a :class:`multiprocessing.connection.Connection`
(length-prefixed frames). Before any frame is unpickled, both sides prove
they hold the cookie with ``multiprocessing.connection``'s HMAC challenge,
the server first (as its ``Listener`` does), then the client: HMAC-MD5 on
Python 3.11; HMAC-SHA256 by default on 3.12+, which still answers a 3.11
peer in MD5. A challenge reply longer than 256 bytes is refused unread.

After the handshake every frame is a pickled tuple whose first item names
its kind. Client to node: ``("hello", name)``, ``("call", module, function,
args, kwargs)``, ``("spawn", fn)``. Node to client: ``("welcome", name, pid)``,
``("ok", value)``, ``("raise", pickled_exception, type_name, message,
traceback_text)``, ``("unsendable", message)``, and for a spawn
``("spawned", thread_name)`` then ``("out", text)`` / ``("err", text)`` until
its ``ok`` or ``raise``.
"""

from __future__ import annotations

import contextlib
import pickle
import select
import socket
import struct
import sys
import traceback
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from typing import Any

#: Seconds a peer gets to complete the cookie handshake before it is dropped.
HANDSHAKE_TIMEOUT = 5.0


class Link:
    """One authenticated connection: the socket and its framed connection.

    The socket is kept beside the connection (which owns a duplicate of its
    descriptor) so that :meth:`abort` can wake a thread blocked reading it.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        #: When the link was last given back to its pool (``time.monotonic()``).
        self.idle_since = 0.0
        # socket.dup() rather than os.dup(): on Windows a socket is not a file descriptor.
        self.conn = Connection(sock.dup().detach())

    def send(self, payload: bytes) -> None:
        self.conn.send_bytes(payload)

    def recv(self) -> Any:
        return pickle.loads(self.conn.recv_bytes())  # noqa: S301 -- only after the cookie handshake

    def poll(self, timeout: float | None) -> bool:
        """Return True when a frame (or the end of the link) can be read.

        ``select`` on the socket directly: ``Connection.poll`` builds a
        selector each time, which costs more than the rest of a call.
        """
        return bool(select.select([self.sock], [], [], timeout)[0])

    def abort(self) -> None:
        """Wake any thread blocked on this link; :meth:`close` still follows."""
        # OSError: already closed or never connected, so there is nothing to wake.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.conn.close()
        self.sock.close()


def tune(sock: socket.socket) -> None:
    """Turn Nagle's algorithm off: with it, each small call waits ~40 ms."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def set_recv_timeout(sock: socket.socket, seconds: float | None) -> None:
    """Bound how long a blocking read on ``sock`` may wait (``None``: forever).

    The connection reads the raw descriptor, so Python's own socket timeout
    (which makes the descriptor non-blocking) cannot be used; the kernel's
    ``SO_RCVTIMEO`` makes a stalled read fail instead.
    """
    seconds = seconds or 0.0
    if sys.platform == "win32":
        value = struct.pack("L", int(seconds * 1000))
    else:
        whole = int(seconds)
        value = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)


def server_handshake(link: Link, cookie: str) -> None:
    """Challenge the peer, then answer its challenge (raises ``AuthenticationError``)."""
    deliver_challenge(link.conn, cookie.encode())
    answer_challenge(link.conn, cookie.encode())


def client_handshake(link: Link, cookie: str) -> None:
    """Answer the node's challenge, then challenge it back."""
    answer_challenge(link.conn, cookie.encode())
    deliver_challenge(link.conn, cookie.encode())


def dumps(message: tuple[Any, ...]) -> bytes:
    """Pickle a message; lambdas and ``__main__``'s functions travel by value.

    The standard pickler is tried first: it is four times faster than
    cloudpickle, and for anything importable both write the same reference.
    They differ only on what the standard one refuses (lambdas, local
    functions) and on references to ``__main__``, which the other side's
    ``__main__`` does not have: those go through cloudpickle.
    """
    try:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        data = None
    if data is None or b"__main__" in data:
        data = _cloudpickle().dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return data


def _cloudpickle() -> Any:
    # Imported on first need: it adds ~13 ms to `import livekit`, and most
    # messages never need it.
    import cloudpickle

    return cloudpickle


def reply_ok(value: Any) -> bytes:
    """Pickle a result, saying plainly what failed if it cannot be pickled."""
    try:
        return dumps(("ok", value))
    except Exception as error:
        return unsendable(f"cannot send back the result, a {type(value).__qualname__}: {error}")


def reply_raise(error: BaseException) -> bytes:
    """Pickle a remote exception with its traceback text.

    The exception is pickled on its own so that the caller can still raise
    a :class:`~livekit.nodes.errors.RemoteError` when it cannot rebuild it.
    """
    # Start the traceback at the called function: the node's own frame says nothing.
    frames = error.__traceback__
    if frames is not None and frames.tb_next is not None:
        frames = frames.tb_next
    text = "".join(traceback.format_exception(type(error), error, frames))
    kind = type(error)
    try:
        pickled: bytes | None = dumps((error,))
    except Exception:  # an unpicklable exception still gets reported
        pickled = None
    message = ("raise", pickled, f"{kind.__module__}.{kind.__qualname__}", str(error), text)
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def unsendable(message: str) -> bytes:
    """Pickle a report that a value could not be serialised."""
    return pickle.dumps(("unsendable", message), protocol=pickle.HIGHEST_PROTOCOL)
