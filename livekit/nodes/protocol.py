"""The wire between two nodes: sockets, frames, the cookie handshake, and messages.

A link is a stream socket (loopback TCP, or a Unix socket on one host)
carrying length-prefixed frames: a 4-byte big-endian length, or ``-1``
then an 8-byte length for frames of 2 GiB and more (the framing of
:mod:`multiprocessing.connection`). A frame longer than the reader allows
is refused before its body is read: 1 KiB during the handshake,
:data:`MAX_FRAME` after it.

The handshake, modelled on Erlang's distribution handshake (which
exchanges the nodes' names before either digest), binds the proof of the
cookie to both ends' names and to the direction it goes in, so that an
answer given to one node can never be replayed to another:

1. node to client: ``livekit-challenge 1 <nonce_s> <node name>``;
2. client to node: ``livekit-answer 1 <nonce_c> <client name> <mac_c>``,
   sent only once the client has checked that the node's name is the one
   it meant to reach;
3. node to client: ``livekit-welcome 1 <mac_s>``, or ``livekit-refused``.

``mac_c`` and ``mac_s`` are HMAC-SHA256 under the cookie of the direction
(``client-to-server`` or ``server-to-client``), the client's name, the
node's name and both 32-byte nonces. Each side checks the other's with
the names as it sees them: a relay that passes one node's challenge to a
client that meant another fails on the name check or on the MAC. Nothing
is unpickled before step 3; every handshake frame is plain ASCII.

After the handshake every frame is a pickled tuple whose first item names
its kind. Client to node: ``("hello", name)``, ``("call", module, function,
args, kwargs)``, ``("spawn", fn)``, and for traces ``("traced", context,
request)`` and ``("untrace", id)`` (:mod:`livekit.nodes.tracing`). Node to
client: ``("welcome", name, pid, features)`` (older nodes: without
``features``),
``("ok", value)``, ``("raise", pickled_exception, type_name, message,
traceback_text)``, ``("unsendable", message)``, and for a spawn
``("spawned", thread_name)`` then ``("out", text)`` / ``("err", text)`` until
its ``ok`` or ``raise``; a traced request's reply follows a ``("trace",
...)`` frame.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import pickle
import re
import secrets
import select
import socket
import struct
import time
import traceback
from dataclasses import dataclass
from typing import Any

#: Seconds a peer gets to complete the whole cookie handshake before it is dropped.
HANDSHAKE_TIMEOUT = 5.0
#: The longest frame accepted during the handshake.
HANDSHAKE_FRAME = 1024
#: The longest frame accepted after it (1 GiB): a larger one closes the link.
MAX_FRAME = 1 << 30

_VERSION = b"1"
_CHALLENGE = b"livekit-challenge"
_ANSWER = b"livekit-answer"
_WELCOME = b"livekit-welcome"
_REFUSED = b"livekit-refused"
_NONCE = 32
# What may stand for a name in a handshake: printable, no spaces, bounded.
_NAME = re.compile(rb"[!-~]{1,255}\Z")
_HEX = re.compile(rb"[0-9a-f]+\Z")


class ProtocolError(Exception):
    """The peer broke the wire format (a bad frame, or not a livekit node at all)."""


class FrameTooLargeError(ProtocolError):
    """A frame declared more bytes than the reader accepts; nothing of it was read."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a frame declared {size} bytes, more than the {limit} accepted")
        self.size = size
        self.limit = limit


class CookieRefusedError(Exception):
    """The peer does not hold the same cookie (either side found the other's MAC wrong)."""


class Link:
    """One connection to or from a node, carrying frames.

    Examples
    --------
    >>> left, right = socket.socketpair()
    >>> a, b = Link(left), Link(right)
    >>> a.send(b"hello"); b.recv_bytes()
    b'hello'
    >>> a.close(); b.close()
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        #: When the link was last given back to its pool (``time.monotonic()``).
        self.idle_since = 0.0
        #: What the node at the other end said it understands, once asked
        #: (see :mod:`livekit.nodes.tracing`); None until then.
        self.features: dict[str, Any] | None = None

    def send(self, payload: bytes) -> None:
        send_frame(self.sock, payload)

    def recv_bytes(self, limit: int = MAX_FRAME, deadline: float | None = None) -> bytes:
        return recv_frame(self.sock, limit, deadline)

    def recv(self) -> Any:
        return pickle.loads(self.recv_bytes())  # noqa: S301 -- only after the cookie handshake

    def poll(self, timeout: float | None) -> bool:
        """Return True when a frame (or the end of the link) can be read.

        ``select`` on the socket directly: a selector object costs more than
        the rest of a call.
        """
        return bool(select.select([self.sock], [], [], timeout)[0])

    def abort(self) -> None:
        """Wake any thread blocked on this link; :meth:`close` still follows."""
        # OSError: already closed or never connected, so there is nothing to wake.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.sock.close()


def tune(sock: socket.socket) -> None:
    """Turn Nagle's algorithm off: with it, each small call waits ~40 ms."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def send_frame(sock: socket.socket, payload: bytes) -> None:
    """Send ``payload`` as one frame."""
    size = len(payload)
    header = struct.pack("!i", size) if size < 0x7FFFFFFF else struct.pack("!iQ", -1, size)
    if size < 16384:  # one system call for the small frames that calls are made of
        sock.sendall(header + payload)
    else:
        sock.sendall(header)
        sock.sendall(payload)


def recv_frame(sock: socket.socket, limit: int, deadline: float | None = None) -> bytes:
    """Read one frame of at most ``limit`` bytes, by ``deadline`` (``time.monotonic()``).

    Raises
    ------
    FrameTooLargeError
        If the frame declares more than ``limit`` bytes (its body is not read).
    ProtocolError
        If it declares a negative length.
    TimeoutError
        If the deadline passes first, however the peer trickles its bytes.
    EOFError
        If the peer closed the connection.

    Examples
    --------
    >>> left, right = socket.socketpair()
    >>> left.sendall(struct.pack("!iQ", -1, 2**62))
    >>> recv_frame(right, 1024)
    Traceback (most recent call last):
    livekit.nodes.protocol.FrameTooLargeError: a frame declared 4611686018427387904 bytes, \
more than the 1024 accepted
    >>> left.close(); right.close()
    """
    (size,) = struct.unpack("!i", _recv_exact(sock, 4, deadline))
    if size == -1:
        (size,) = struct.unpack("!Q", _recv_exact(sock, 8, deadline))
    if size < 0:
        raise ProtocolError(f"a frame declared a negative length, {size}")
    if size > limit:
        raise FrameTooLargeError(size, limit)
    return _recv_exact(sock, size, deadline)


def _recv_exact(sock: socket.socket, size: int, deadline: float | None) -> bytes:
    # Memory grows with what arrives, never with what a header declares.
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                raise TimeoutError("the handshake's deadline passed")
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("the peer closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@dataclass(frozen=True)
class _Transcript:
    """What both MACs of one handshake are computed over, besides the direction."""

    client: bytes
    server: bytes
    nonce_s: bytes
    nonce_c: bytes

    def mac(self, cookie: str, direction: bytes) -> bytes:
        # Fields NUL-separated: no name can hold a NUL, so no two transcripts read alike.
        fields = (b"livekit-node-handshake", _VERSION, direction, self.client, self.server)
        message = b"\0".join(fields) + b"\0" + self.nonce_s + self.nonce_c
        return hmac.new(cookie.encode(), message, hashlib.sha256).hexdigest().encode()


def _fields(frame: bytes, kind: bytes, count: int) -> list[bytes]:
    parts = frame.split(b" ")
    if parts[0] != kind or len(parts) != count or parts[1] != _VERSION:
        raise ProtocolError(f"expected {kind.decode()} version 1, got {frame[:60]!r}")
    return parts[2:]


def _nonce(text: bytes) -> bytes:
    if len(text) != 2 * _NONCE or not _HEX.match(text):
        raise ProtocolError(f"expected a {_NONCE}-byte nonce in hex, got {text[:70]!r}")
    return bytes.fromhex(text.decode())


def _name(text: bytes) -> bytes:
    if not _NAME.match(text):
        raise ProtocolError(f"expected a node name, got {text[:60]!r}")
    return text


class ServerHandshake:
    """The node's side of one handshake, as two steps that never block.

    The node server runs these in its accept loop, for every connection at
    once, so that a peer still in its handshake costs no thread.

    Examples
    --------
    >>> node = ServerHandshake("demo@localhost")
    >>> node.challenge().startswith(b"livekit-challenge 1 ")
    True
    >>> node.verify(b"livekit-answer 1 00 me@x ff", "cookie")
    Traceback (most recent call last):
    livekit.nodes.protocol.ProtocolError: expected a 32-byte nonce in hex, got b'00'
    """

    def __init__(self, name: str) -> None:
        self._server = name.encode()
        self._nonce_s = secrets.token_bytes(_NONCE)

    def challenge(self) -> bytes:
        """Return the first frame's payload: the challenge and this node's name."""
        return b" ".join((_CHALLENGE, _VERSION, self._nonce_s.hex().encode(), self._server))

    def verify(self, answer: bytes, cookie: str) -> tuple[str, bytes]:
        """Check the peer's answer; return its name and the welcome's payload.

        Raises
        ------
        CookieRefusedError
            If the answer is wrong: send :data:`REFUSED`, then close.
        ProtocolError
            If it is not an answer at all.
        """
        nonce_text, client, mac_text = _fields(answer, _ANSWER, 5)
        transcript = _Transcript(_name(client), self._server, self._nonce_s, _nonce(nonce_text))
        if not hmac.compare_digest(mac_text, transcript.mac(cookie, b"client-to-server")):
            raise CookieRefusedError("the peer's answer does not match this node's cookie")
        welcome = b" ".join((_WELCOME, _VERSION, transcript.mac(cookie, b"server-to-client")))
        return transcript.client.decode(), welcome


#: What the node answers a wrong proof with, before it closes the connection.
REFUSED = _REFUSED


def frame(payload: bytes) -> bytes:
    """Return ``payload`` with its length header, ready to send in one piece."""
    return struct.pack("!i", len(payload)) + payload


def read_challenge(link: Link, deadline: float) -> tuple[str, bytes]:
    """Read the node's first frame, client side: return its name and its nonce.

    The caller checks the name before :func:`answer_challenge` proves anything.

    Raises
    ------
    ProtocolError
        If the peer does not speak livekit's protocol.
    """
    frame = link.recv_bytes(HANDSHAKE_FRAME, deadline)
    nonce_text, server = _fields(frame, _CHALLENGE, 4)
    return _name(server).decode(), _nonce(nonce_text)


def answer_challenge(
    link: Link, challenge: tuple[str, bytes], *, client: str, cookie: str, deadline: float
) -> None:
    """Prove the cookie to the node that sent ``challenge``, then check its proof back.

    Raises
    ------
    CookieRefusedError
        If the node refused the answer, or its own proof is wrong.
    """
    server, nonce_s = challenge
    transcript = _Transcript(
        _name(client.encode()), server.encode(), nonce_s, secrets.token_bytes(_NONCE)
    )
    answer = (_ANSWER, _VERSION, transcript.nonce_c.hex().encode(), transcript.client)
    link.send(b" ".join((*answer, transcript.mac(cookie, b"client-to-server"))))
    reply = link.recv_bytes(HANDSHAKE_FRAME, deadline)
    if reply == _REFUSED:
        raise CookieRefusedError("the node refused the answer: it has another cookie")
    (proof,) = _fields(reply, _WELCOME, 3)
    if not hmac.compare_digest(proof, transcript.mac(cookie, b"server-to-client")):
        raise CookieRefusedError("the node's proof does not match the cookie")


def client_handshake(
    link: Link, cookie: str, *, client: str = "client@localhost", timeout: float = HANDSHAKE_TIMEOUT
) -> str:
    """Run the whole handshake from the client side; return the node's name.

    :func:`read_challenge` then :func:`answer_challenge`, without checking
    the node's name (the caller of this one accepts any node).
    """
    deadline = time.monotonic() + timeout
    challenge = read_challenge(link, deadline)
    answer_challenge(link, challenge, client=client, cookie=cookie, deadline=deadline)
    return challenge[0]


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
