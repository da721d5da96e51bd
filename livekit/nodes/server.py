"""The node server: accepts authenticated links and runs what they ask.

The accept loop also runs every connection's cookie handshake, without
blocking and without a thread, under one deadline for the whole of it: a
silent, slow or garbage-sending peer costs a few hundred bytes of the
loop's memory and is dropped without ever reaching :mod:`pickle`. A peer
that proves the cookie gets a thread of its own, which serves that link's
requests one after another. A peer that misbehaves only ever loses its own
link.

Connections that have not proved the cookie yet are capped apart from the
others, per listener (loopback TCP, where any local user can connect, and
the private Unix socket): when a new one would pass the cap, the oldest
gives way. A crowd of cookieless peers therefore cannot lock out the
owner, whose handshake takes a millisecond, while theirs never end.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import os
import pickle
import selectors
import socket
import struct
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.nodes import _output, protocol
from livekit.nodes.protocol import Link
from livekit.nodes.tracing import FEATURES, NodeTrace

#: The most links open at once, authenticated or not; more are closed unread.
MAX_CONNECTIONS = 512
#: The most connections per listener still in their handshake; beyond it the oldest is closed.
MAX_UNAUTHENTICATED = 64

_log = logging.getLogger("livekit.nodes")
_UNIX_PATH_MAX = 107 if sys.platform.startswith("linux") else 103

_spawn_ids = itertools.count(1)


@dataclass(eq=False)
class _Pending:
    """A connection still in its handshake, driven by the accept loop."""

    sock: socket.socket
    listener: socket.socket
    deadline: float
    handshake: protocol.ServerHandshake
    received: bytearray = field(default_factory=bytearray)


@dataclass(eq=False)
class _Watch:
    """A link serving a traced request, watched by the accept loop meanwhile.

    Nobody reads the link while its request runs, so anything readable on
    it is the caller's ``untrace`` or the caller going away: either way the
    loop ends the node's side of the trace, so that nothing stays installed
    for a caller that no longer listens.  ``lock`` orders what is sent on
    the link while the request runs (output, the ``trace`` frame, the reply).
    """

    link: Link
    trace: NodeTrace
    lock: threading.Lock = field(default_factory=threading.Lock)
    over: bool = False

    def send_trace(self) -> None:
        """End the trace and send its frame, unless that was done already (lock held)."""
        frame = self.trace.stop()
        if frame is not None:
            self.link.send(pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL))


class NodeServer:
    """Listen on ``host:port`` for other nodes and serve their requests.

    The socket is bound when the server is made, so that errors (a port in
    use) reach the caller; :meth:`serve` then runs the accept loop until its
    ``stop`` event is set or :meth:`close` is called, and always closes the
    listener and ends the link threads on its way out.

    Parameters
    ----------
    name
        This node's full name, told to every client in its welcome.
    cookie
        A function returning the cookie peers must prove they hold; asked
        at each handshake, so ``set_cookie`` applies to new links.
    host, port
        Where to listen; port 0 picks a free port.
    unix_path
        Also listen on a Unix socket there, for clients on this host: a call
        over it costs about half of one over loopback TCP. Skipped where
        Unix sockets are missing or the path is too long for one.
    handshake_timeout
        Seconds a peer gets for the whole handshake before it is dropped.
    max_connections
        The most links open at once; more are closed as soon as accepted.
    max_unauthenticated
        The most connections per listener that have not authenticated yet;
        a new one beyond that closes the oldest.

    Examples
    --------
    >>> server = NodeServer("example@localhost", cookie=lambda: "secret")
    >>> server.address[0]
    '127.0.0.1'
    >>> server.close()
    """

    def __init__(
        self,
        name: str,
        *,
        cookie: Callable[[], str],
        host: str = "127.0.0.1",
        port: int = 0,
        unix_path: str | None = None,
        handshake_timeout: float = protocol.HANDSHAKE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_unauthenticated: int = MAX_UNAUTHENTICATED,
    ) -> None:
        self.name = name
        self._cookie = cookie
        self._handshake_timeout = handshake_timeout
        self._max_connections = max_connections
        self._max_unauthenticated = max_unauthenticated
        #: Per listener, its connections still in their handshake, oldest first.
        self._pending: dict[socket.socket, OrderedDict[socket.socket, _Pending]] = {}
        self._selector: selectors.BaseSelector | None = None
        #: Links serving a traced request, by socket (see :class:`_Watch`).
        self._watches: dict[socket.socket, _Watch] = {}
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            if os.name != "nt":  # on Windows this option would let others steal the port
                self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, port))
            self._listener.listen(128)
            self._listener.setblocking(False)
        except OSError:
            self._listener.close()
            raise
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._listeners = [self._listener]
        #: The Unix socket's path, or None when there is none.
        self.unix_path = self._listen_unix(unix_path) if unix_path is not None else None
        self._wake_read, self._wake_write = socket.socketpair()
        self._lock = threading.Lock()
        self._links: dict[Link, threading.Thread] = {}
        self._closed = threading.Event()
        self._serving = threading.Event()
        self._finished = threading.Event()
        self._shutting_down = False

    # -- lifecycle ---------------------------------------------------------

    def serve(self, stop: threading.Event | None = None) -> None:
        """Accept links until ``stop`` is set or :meth:`close` is called.

        If the loop itself fails, the listener and the links stay open, so
        that a supervisor restarting this function resumes serving them.
        """
        stop = stop or self._closed
        with self._lock:
            if self._shutting_down:
                return
            self._serving.set()
        selector = selectors.DefaultSelector()
        try:
            for listener in self._listeners:
                selector.register(listener, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            with self._lock:  # a restarted loop takes over the handshakes under way
                self._selector = selector
                for pending in self._all_pending():
                    selector.register(pending.sock, selectors.EVENT_READ, pending)
                for watch in self._watches.values():
                    selector.register(watch.link.sock, selectors.EVENT_READ, watch)
            while not (stop.is_set() or self._closed.is_set()):
                # The timeout bounds how late the supervisor's ``stop`` is seen (the
                # event cannot wake select); ten idle wake-ups a second cost nothing.
                for key, _ in selector.select(timeout=0.1):
                    if isinstance(key.data, _Watch):
                        self._watched(key.data)
                    elif key.data is not None:
                        self._advance(key.data)
                    elif key.fileobj is not self._wake_read:
                        self._accept(key.fileobj)  # type: ignore[arg-type]
                self._drop_late(time.monotonic())
        finally:
            with self._lock:
                self._selector = None
            selector.close()
            self._serving.clear()
        # Asked to stop: the node is going away, so release everything.
        self._shutdown()

    def close(self, timeout: float = 2.0) -> None:
        """Stop serving: close the listener and every link, and join their threads."""
        self._closed.set()
        # OSError: the loop already ended and closed its wake-up pair.
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")
        # A running loop shuts down on its way out; otherwise do it here.
        if not self._finished.wait(timeout if self._serving.is_set() else 0):
            self._shutdown(timeout)

    def _shutdown(self, timeout: float = 2.0) -> None:
        with self._lock:
            if self._shutting_down:
                claimed = False
            else:
                claimed = self._shutting_down = True
        if not claimed:  # another thread is at it: wait for it to finish
            self._finished.wait(timeout)
            return
        with self._lock:
            for listener in self._listeners:
                listener.close()
            if self.unix_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self.unix_path)
            self._wake_read.close()
            self._wake_write.close()
            for pending in self._all_pending():
                pending.sock.close()
            self._pending = {}
            links = dict(self._links)
            watches, self._watches = list(self._watches.values()), {}
        for watch in watches:
            watch.trace.stop()  # the node is going away: its traces end with it
        for link in links:
            link.abort()
        deadline = time.monotonic() + timeout
        for thread in links.values():
            # A thread running a long remote call cannot be interrupted; it is a
            # daemon and its link is already dead, so stop waiting at the deadline.
            thread.join(max(0.0, deadline - time.monotonic()))
        _output.uninstall()
        self._finished.set()

    def forget_after_fork(self) -> None:
        """In a forked child: close this process's copies of the sockets, nothing more.

        The parent still serves on them; shutting them down here would cut its links.
        """
        self._lock = threading.Lock()
        for sock in (*self._listeners, self._wake_read, self._wake_write):
            sock.close()
        for link in self._links:
            link.close()
        for pending in self._all_pending():
            pending.sock.close()
        self._links = {}
        self._pending = {}
        self._watches = {}
        self._shutting_down = True
        self._finished.set()

    def connection_count(self) -> int:
        """Return how many links are open now (authenticated or not)."""
        with self._lock:
            return self._count()

    def unauthenticated_count(self) -> int:
        """Return how many connections are still in their handshake."""
        with self._lock:
            return sum(len(p) for p in self._pending.values())

    def _all_pending(self) -> list[_Pending]:
        return [pending for per in self._pending.values() for pending in per.values()]

    # -- links -------------------------------------------------------------

    def _listen_unix(self, path: str) -> str | None:
        # sockaddr_un holds 108 bytes on Linux (one for the NUL), 104 on macOS and the BSDs.
        if not hasattr(socket, "AF_UNIX") or len(os.fsencode(path)) > _UNIX_PATH_MAX:
            return None
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # the path names this pid: a dead namesake's leftover
            listener.bind(path)
            os.chmod(path, 0o600)
            listener.listen(128)
            listener.setblocking(False)
        except OSError:
            listener.close()
            return None
        self._listeners.append(listener)
        return path

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError:
            # Out of descriptors or memory: the pending peer stays queued, so
            # pause rather than spin on a listener that stays readable.
            self._closed.wait(0.1)
            return
        sock.setblocking(False)
        protocol.tune(sock)
        pending = _Pending(
            sock,
            listener,
            time.monotonic() + self._handshake_timeout,
            protocol.ServerHandshake(self.name),
        )
        with self._lock:
            if self._count() >= self._max_connections or self._closed.is_set():
                sock.close()
                return
            waiting = self._pending.setdefault(listener, OrderedDict())
            if len(waiting) >= self._max_unauthenticated:
                _, oldest = waiting.popitem(last=False)  # the oldest gives way
                self._forget(oldest)
            waiting[sock] = pending
        try:
            # A few hundred bytes into an empty send buffer: never blocks.
            sock.send(protocol.frame(pending.handshake.challenge()))
        except OSError:
            self._drop(pending)
            return
        if self._selector is not None:
            self._selector.register(sock, selectors.EVENT_READ, pending)

    def _count(self) -> int:
        """Links and pending handshakes (lock held)."""
        return len(self._links) + sum(len(p) for p in self._pending.values())

    def _forget(self, pending: _Pending) -> None:
        """Close a pending connection already taken out of ``_pending`` (lock held)."""
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(pending.sock)
        pending.sock.close()

    def _drop(self, pending: _Pending) -> None:
        with self._lock:
            waiting = self._pending.get(pending.listener)
            if waiting is not None:
                waiting.pop(pending.sock, None)
            self._forget(pending)

    def _drop_late(self, now: float) -> None:
        """Close the handshakes whose deadline has passed (the oldest come first)."""
        with self._lock:
            for waiting in self._pending.values():
                while waiting:
                    sock, oldest = next(iter(waiting.items()))
                    if oldest.deadline > now:
                        break
                    del waiting[sock]
                    self._forget(oldest)

    def _advance(self, pending: _Pending) -> None:
        """Read what a connection in its handshake sent; finish it once its answer is in."""
        answer = self._read_answer(pending)
        if answer is None:
            return
        try:
            _, welcome = pending.handshake.verify(answer, self._cookie())
        except protocol.CookieRefusedError:
            with contextlib.suppress(OSError):
                pending.sock.send(protocol.frame(protocol.REFUSED))
            self._drop(pending)
        except Exception:  # a broken answer, or no cookie to check it with
            self._drop(pending)
        else:
            self._promote(pending, welcome)

    def _read_answer(self, pending: _Pending) -> bytes | None:
        """Return the peer's whole answer once it is in; None until then, or if dropped."""
        wanted = 4 + protocol.HANDSHAKE_FRAME - len(pending.received)
        try:
            chunk = pending.sock.recv(wanted)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            chunk = b""
        if not chunk:  # it left
            self._drop(pending)
            return None
        pending.received += chunk
        received = len(pending.received)
        if received < 4:
            return None
        (size,) = struct.unpack("!i", pending.received[:4])
        if not 0 <= size <= protocol.HANDSHAKE_FRAME or received > 4 + size:
            self._drop(pending)  # it announced too much, or talked on before its welcome
            return None
        return bytes(pending.received[4:]) if received == 4 + size else None

    def _promote(self, pending: _Pending, welcome: bytes) -> None:
        """Welcome a peer that proved the cookie, and give its link a thread."""
        sock = pending.sock
        link = Link(sock)
        with self._lock:
            waiting = self._pending.get(pending.listener)
            if waiting is None or waiting.pop(sock, None) is None:
                return  # closed meanwhile
            if self._selector is not None:
                self._selector.unregister(sock)
            thread = threading.Thread(
                target=self._serve_link,
                args=(link,),
                name=f"livekit-node-link-{sock.fileno()}",
                daemon=True,
            )
            self._links[link] = thread
        try:
            sock.setblocking(True)
            link.send(welcome)
        except OSError:
            with self._lock:
                self._links.pop(link, None)
            link.close()
            return
        thread.start()

    def _serve_link(self, link: Link) -> None:
        try:
            while True:
                request = link.recv_bytes()
                answer = self._answer(link, request, time.monotonic())
                if answer is not None:
                    link.send(answer)
        except protocol.FrameTooLargeError as error:
            _log.error("node %s closed the link from %s: %s", self.name, _peer(link), error)
        except MemoryError:
            _log.error(
                "node %s closed the link from %s: out of memory reading its request",
                self.name,
                _peer(link),
            )
        except (OSError, EOFError, protocol.ProtocolError):
            pass  # the peer left, or broke the framing: drop only this link
        finally:
            with self._lock:
                self._links.pop(link, None)
            link.close()

    def _answer(  # noqa: PLR0911 -- one return per kind of request
        self, link: Link, request: bytes, received: float
    ) -> bytes | None:
        """The reply to one request; None for the one message that has none."""
        try:
            message = pickle.loads(request)  # noqa: S301 -- the peer holds the cookie
        except Exception as error:  # e.g. a class unknown on this node
            return protocol.unsendable(f"could not unpickle the request: {error}")
        match message:
            case ("hello", _):
                # Without features, the welcome an older node sends.
                features = (dict(self.features),) if self.features else ()
                return pickle.dumps(("welcome", self.name, os.getpid(), *features))
            case ("call", str(module), str(function), tuple(args), dict(kwargs)):
                try:
                    result = _resolve(module, function)(*args, **kwargs)
                except BaseException as error:  # report everything to the caller
                    return protocol.reply_raise(error)
                return protocol.reply_ok(result)
            case ("spawn", fn) if callable(fn):
                return self._spawn(link, fn)
            case ("traced", context, tuple(inner)) if self.features.get("trace"):
                return self._traced(link, context, inner, received)
            case ("untrace", str()) if self.features.get("trace"):
                return None  # it came after its request ended: nothing left to stop
        return protocol.unsendable(f"cannot answer the request {message!r:.80}")

    #: What this node tells a client it understands, in its welcome.
    features: dict[str, int] = FEATURES

    def _traced(
        self, link: Link, context: object, inner: tuple[Any, ...], received: float
    ) -> bytes:
        """Serve ``inner`` under a trace of this node's, sent back before the reply."""
        try:
            trace = NodeTrace(context, received=received)
        except ValueError as error:  # a context this node does not understand
            return protocol.unsendable(f"cannot trace the request: {error}")
        match inner:
            case ("call", str(module), str(function), tuple(args), dict(kwargs)):
                watch = self._watch(link, trace)
                try:
                    trace.start()
                    reply = _call(module, function, args, kwargs)
                    with watch.lock:
                        watch.over = True
                        watch.send_trace()
                finally:
                    self._unwatch(watch)
                return reply
            case ("spawn", fn) if callable(fn):
                return self._spawn(link, fn, trace)
        return protocol.unsendable(f"cannot answer the request {inner!r:.80}")

    def _watch(self, link: Link, trace: NodeTrace) -> _Watch:
        watch = _Watch(link, trace)
        with self._lock:
            self._watches[link.sock] = watch
            if self._selector is not None:
                self._selector.register(link.sock, selectors.EVENT_READ, watch)
        return watch

    def _unwatch(self, watch: _Watch) -> None:
        with watch.lock:
            watch.over = True
        watch.trace.stop()  # whatever happened, nothing stays installed
        with self._lock:
            if self._watches.get(watch.link.sock) is watch:
                del self._watches[watch.link.sock]
                if self._selector is not None:
                    with contextlib.suppress(KeyError, ValueError, OSError):
                        self._selector.unregister(watch.link.sock)

    def _watched(self, watch: _Watch) -> None:
        """A link with a traced request running has something to read: untrace, or its end."""
        sock = watch.link.sock
        with watch.lock:
            if watch.over:
                return
            try:
                peek = sock.recv(1, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                peek = b""
            if not peek:  # the caller went away: end the trace, nobody is left to send it to
                watch.over = True
                watch.trace.stop()
            else:
                watch.over = True
                try:
                    frame = protocol.recv_frame(
                        sock, protocol.HANDSHAKE_FRAME, time.monotonic() + 1.0
                    )
                    message = pickle.loads(frame)  # noqa: S301 -- the peer holds the cookie
                except Exception:
                    message = None
                if message == ("untrace", watch.trace.id):
                    with contextlib.suppress(OSError):
                        watch.send_trace()
                else:  # anything else breaks the protocol: drop this link only
                    watch.trace.stop()
                    watch.link.abort()
        with self._lock:
            if self._watches.get(sock) is watch:
                del self._watches[sock]
                if self._selector is not None:
                    with contextlib.suppress(KeyError, ValueError, OSError):
                        self._selector.unregister(sock)

    def _spawn(self, link: Link, fn: Callable[[], Any], trace: NodeTrace | None = None) -> bytes:
        """Run ``fn`` in a new thread whose prints go back over ``link``.

        The link is the caller's for as long as ``fn`` runs: this thread sends
        ``spawned``, the new thread streams its output and its outcome, and
        the link serves requests again once it has ended.  With a ``trace``,
        the new thread runs under it, and sends it back before its outcome.
        """
        _output.install()
        outcome: list[bytes] = []
        watch: _Watch | None = None

        def sink(kind: str, text: str) -> None:
            # OSError: the caller went away; its output has nowhere to go.
            with contextlib.suppress(OSError):
                if watch is None:
                    link.send(pickle.dumps((kind, text)))
                else:
                    with watch.lock:
                        link.send(pickle.dumps((kind, text)))

        def run() -> None:
            _output.route_current_thread(sink)
            if trace is not None:
                trace.start()
            try:
                result = protocol.reply_ok(fn())
            except BaseException as error:  # reported to the caller
                result = protocol.reply_raise(error)
            finally:
                _output.route_current_thread(None)
                if watch is not None:
                    with watch.lock, contextlib.suppress(OSError):
                        watch.send_trace()
            outcome.append(result)

        thread = threading.Thread(target=run, name=f"livekit-spawn-{next(_spawn_ids)}", daemon=True)
        link.send(pickle.dumps(("spawned", thread.name)))
        if trace is not None:
            watch = self._watch(link, trace)
        try:
            thread.start()
            thread.join()
        finally:
            if watch is not None:
                self._unwatch(watch)
        return outcome[0]


def _call(module: str, function: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """A traced call's reply (an untraced one is answered in ``_answer`` itself)."""
    try:
        result = _resolve(module, function)(*args, **kwargs)
    except BaseException as error:  # report everything to the caller
        return protocol.reply_raise(error)
    return protocol.reply_ok(result)


def _peer(link: Link) -> str:
    try:
        address = link.sock.getpeername()
    except OSError:
        return "a peer that left"
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return "the Unix socket"


def _resolve(module: str, function: str) -> Callable[..., Any]:
    target: Any = sys.modules.get(module)
    if target is None or getattr(getattr(target, "__spec__", None), "_initializing", False):
        # Not imported yet, or another request's thread is still importing
        # it: import_module waits for that import to finish, as import does.
        target = importlib.import_module(module)
    for part in function.split("."):
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]
