"""The calling side: links to other nodes, kept, reused and shared by threads.

Each remote node gets a small pool of authenticated links. A call takes an
idle link (or opens one), sends its request, reads the reply on the same
thread and gives the link back: no hand-off between threads on the way, so
a call costs about one round trip, and many threads can call one node at
once, each on its own link. A link that broke, or whose call timed out
(its late reply would confuse the next caller), is closed, never reused.
"""

from __future__ import annotations

import os
import pickle
import socket
import sys
import threading
import time
from typing import Any, TextIO

from livekit.nodes import protocol, registry, tracing
from livekit.nodes.cookie import cookie_for
from livekit.nodes.errors import NodeError, RemoteError, RemoteTraceback, SerializationError
from livekit.nodes.protocol import Link
from livekit.trace import sources
from livekit.trace.events import Exit, Message, Participant, Spawn

#: Seconds to wait for a node to accept a link and authenticate.
CONNECT_TIMEOUT = 5.0
#: Idle links kept per node; more are closed when given back.
MAX_IDLE = 16
#: Seconds a link may sit idle before it is checked for a node that went away.
RECHECK_IDLE_AFTER = 0.05


class _Pool:
    """The links to one node: idle ones ready for reuse, busy ones in calls."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._lock = threading.Lock()
        self._idle: list[Link] = []
        self._busy: set[Link] = set()
        self._closed = False

    def take(self, timeout: float) -> Link:
        while True:
            with self._lock:
                if self._closed:
                    raise NodeError(f"disconnected from node {self.node}")
                link = self._idle.pop() if self._idle else None
                if link is not None:
                    self._busy.add(link)
            if link is None:
                break
            # An idle link with something to read has been closed by the node
            # (it stopped or restarted): it cannot carry a call. A link given
            # back moments ago is not checked: no node restarts that fast, and
            # the check is a system call on the path of every call.
            if time.monotonic() - link.idle_since < RECHECK_IDLE_AFTER or not link.poll(0):
                return link
            self.discard(link)
        link = _open(self.node, timeout)
        with self._lock:
            self._busy.add(link)
        return link

    def give(self, link: Link) -> None:
        with self._lock:
            self._busy.discard(link)
            if not self._closed and len(self._idle) < MAX_IDLE:
                link.idle_since = time.monotonic()
                self._idle.append(link)
                return
        link.close()

    def discard(self, link: Link) -> None:
        with self._lock:
            self._busy.discard(link)
        link.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, busy = self._idle, list(self._busy)
            self._idle = []
        for link in idle:
            link.close()
        for link in busy:
            link.abort()  # their threads see the link end and close it


_pools_lock = threading.Lock()
_pools: dict[str, _Pool] = {}


def _forget_links_after_fork() -> None:
    """Drop the parent's links in a forked child.

    Sharing them would mix two processes' calls on one stream; closing the
    child's copies (without shutting them down) leaves the parent's open.
    """
    global _pools_lock  # noqa: PLW0603 -- the parent's lock may have been held at fork
    _pools_lock = threading.Lock()
    pools = list(_pools.values())
    _pools.clear()
    for pool in pools:
        for link in [*pool._idle, *pool._busy]:
            link.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_links_after_fork)


def _pool(node: str) -> _Pool:
    pool = _pools.get(node)  # the common case, without the lock (dict reads are atomic)
    if pool is not None:
        return pool
    with _pools_lock:
        pool = _pools.get(node)
        if pool is None:
            registry.parse_node(node)  # a malformed name raises before anything is kept
            pool = _pools[node] = _Pool(node)
        return pool


def _open(node: str, timeout: float) -> Link:
    """Connect to ``node``, found by port or in the registry, and authenticate."""
    try:
        return _open_any(node, timeout)
    except _UnreachableError as error:
        raise NodeError(str(error)) from None  # the private subclass stays private


def _open_any(node: str, timeout: float) -> Link:
    address = registry.parse_node(node)
    if address.port is not None:
        return _dial(node, (address.host, address.port), timeout)
    if not registry.is_this_host(address.host):
        raise NodeError(
            f"unknown node {node}: {address.host} is not this host, so give the node's port, "
            f"as in '{address.name}@{address.host}:PORT'"
        )
    unknown = f"unknown node {node}: no node named {address.name!r} runs on this host"
    # Dial first and check that the entry's process is alive only when that
    # fails: the check costs more than the connection.  This interpreter's
    # own node is known without the registry, which may since have moved
    # with LIVEKIT_HOME (the node keeps the home it started in).
    entry = _own_entry(address.name) or registry.read(address.name)
    if entry is None:
        raise NodeError(unknown)
    if not hasattr(socket, "AF_UNIX"):  # Windows: loopback TCP, still bound to the name
        return _dial(node, (entry.connect_host(), entry.port), timeout, entry=entry)
    if not entry.path:
        raise NodeError(
            f"node {node} has no Unix socket (its livekit home's path is too long for one), "
            f"and a name from the registry is reached through nothing else; "
            f"connect to it as '{address.name}@127.0.0.1:{entry.port}'"
        )
    try:
        # Only the Unix socket: a dead node's TCP port can be bound by anyone.
        return _dial(node, entry.path, timeout, entry=entry)
    except _UnreachableError as error:
        if registry.lookup(address.name) is None:  # a dead node's entry: now removed
            raise NodeError(unknown) from None
        raise NodeError(
            f"{error}; a node found by name is reached through its Unix socket only "
            f"(to use TCP, connect to '{address.name}@127.0.0.1:{entry.port}')"
        ) from None


class _UnreachableError(NodeError):
    """Nothing answered at that address (as opposed to a failed handshake)."""


def _connect(address: tuple[str, int] | str, timeout: float) -> socket.socket:
    if isinstance(address, tuple):
        return socket.create_connection(address, timeout=timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _own_entry(name: str) -> registry.Entry | None:
    """The registry entry of this interpreter's node if it is named ``name``."""
    from livekit.nodes import local  # here: importing local starts the supervisor module

    running = local._running
    return running.entry if running is not None and running.entry.name == name else None


def _client_name() -> str:
    """The name this side gives in the handshake: its node's, or its pid's."""
    from livekit.nodes import local  # here: importing local starts the supervisor module

    running = local._running
    return running.name if running is not None else f"client{os.getpid()}@{registry.this_host()}"


def _check_name(node: str, announced: str, *, via_registry: bool) -> bool:
    """Tell whether a node announcing ``announced`` is the ``node`` that was dialled."""
    short, _, host = announced.partition("@")
    if short != node.partition("@")[0]:
        return False
    # A registry name is this host's: its node must say so.
    return not via_registry or host == registry.this_host()


def _dial(
    node: str,
    address: tuple[str, int] | str,
    timeout: float,
    *,
    entry: registry.Entry | None = None,
) -> Link:
    """Connect to a TCP address or a Unix socket, check the node's name, and authenticate.

    With a registry ``entry``, the process at the other end of a Unix socket
    must be the user's and the one the entry names, before any byte is sent.
    """
    host, port = address if isinstance(address, tuple) else (address, None)
    where = f"node {node} at {host}" if port is None else f"node {node} at {host}:{port}"
    deadline = time.monotonic() + timeout
    try:
        sock = _connect(address, timeout)
    except (ConnectionRefusedError, FileNotFoundError):
        raise _UnreachableError(f"nothing is listening for {where}") from None
    except TimeoutError:
        raise _UnreachableError(f"timed out after {timeout:g} s connecting to {where}") from None
    except OSError as error:
        raise _UnreachableError(f"cannot reach {where}: {error.strerror or error}") from None
    sock.settimeout(None)
    protocol.tune(sock)
    link = Link(sock)
    try:
        if entry is not None and sock.family == getattr(socket, "AF_UNIX", None):
            registry.check_peer(sock, entry)
        challenge = protocol.read_challenge(link, deadline)
        if not _check_name(node, challenge[0], via_registry=entry is not None):
            raise NodeError(f"{where} is node {challenge[0]}")
        protocol.answer_challenge(
            link, challenge, client=_client_name(), cookie=cookie_for(node), deadline=deadline
        )
    except NodeError:
        link.close()
        raise
    except protocol.CookieRefusedError:
        link.close()
        raise NodeError(
            f"authentication failed for {where}: it has another cookie "
            f"(set the right one with livekit.set_cookie({node!r}, cookie))"
        ) from None
    except TimeoutError:
        link.close()
        raise NodeError(f"timed out after {timeout:g} s authenticating with {where}") from None
    except protocol.ProtocolError as error:
        link.close()
        raise NodeError(f"{where} is not a livekit node: {error}") from None
    except (OSError, EOFError):
        link.close()
        raise NodeError(
            f"{where} closed the link during the handshake; is it a livekit node?"
        ) from None
    return link


def connect(node: str, *, timeout: float = CONNECT_TIMEOUT) -> bool:
    """Connect to ``node`` and return True, like Erlang's ``Node.connect``.

    The link is kept and reused by later calls. Connecting again to a node
    already connected is cheap and also returns True.

    Parameters
    ----------
    node
        ``name@host`` for a node of this host (found in the registry), or
        ``name@host:port`` for any node.
    timeout
        Seconds to wait for the node to accept and authenticate.

    Raises
    ------
    NodeError
        Saying why: an unknown name, nothing listening, a failed
        authentication (the cookies differ), or a timeout.

    Examples
    --------
    >>> import livekit
    >>> me = livekit.node()
    >>> livekit.connect(me)
    True
    >>> livekit.connect("nobody@localhost")
    Traceback (most recent call last):
    livekit.NodeError: unknown node nobody@localhost: no node named 'nobody' runs on this host
    """
    if isinstance(node, str) and "://" in node:  # a Dask process: livekit.clusters serves it
        from livekit.clusters import core

        return core.connect(node, timeout=timeout)
    check_timeout(timeout)
    pool = _pool(node)
    pool.give(pool.take(timeout))
    return True


def disconnect(node: str) -> bool:
    """Close every link to ``node``; return True if there were any.

    Calls in progress on those links raise :class:`NodeError`.

    Examples
    --------
    >>> import livekit
    >>> me = livekit.node()
    >>> livekit.connect(me), livekit.disconnect(me), livekit.disconnect(me)
    (True, True, False)
    """
    with _pools_lock:
        pool = _pools.pop(node, None)
    if pool is None:
        return False
    pool.close()
    return True


def disconnect_all() -> None:
    """Close every link to every node."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


def call(
    node: str,
    module: str,
    function: str,
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    timeout: float | None = None,
) -> Any:
    """Call ``module.function(*args, **kwargs)`` on ``node`` and return its result.

    The Python counterpart of Erlang's ``:erpc.call(node, Mod, :fun, args)``.
    The node imports ``module`` if needed; ``function`` may be dotted
    (``"datetime.now"`` in module ``"datetime"``). Arguments travel with
    cloudpickle, so lambdas and local functions can be passed.

    Parameters
    ----------
    node
        ``name@host`` or ``name@host:port``; connected on first use.
    module, function
        What to call on the node, by name.
    args, kwargs
        Its arguments.
    timeout
        Seconds to wait for the answer; None waits as long as it takes.

    Returns
    -------
    object
        What the function returned, unpickled in the caller.

    Raises
    ------
    Exception
        What the function raised on the node, rebuilt here, with the node's
        traceback chained as a :class:`RemoteTraceback` (or a
        :class:`RemoteError` when the exception cannot be rebuilt here).
    TimeoutError
        If no answer came within ``timeout``. The call is not cancelled on
        the node (a Python thread cannot be killed); its link is closed.
    SerializationError
        If the arguments or the result cannot be pickled or unpickled.
    NodeError
        If the node cannot be reached, or the link broke during the call.

    Examples
    --------
    >>> import livekit
    >>> from livekit import rpc
    >>> me = livekit.node()
    >>> rpc.call(me, "math", "sqrt", (16,))
    4.0
    >>> try:
    ...     rpc.call(me, "builtins", "int", ("four",))
    ... except ValueError as error:
    ...     print(repr(error), *error.__notes__, sep="\\n")  # doctest: +ELLIPSIS
    ValueError("invalid literal for int() with base 10: 'four'")
    (raised on node ...@... in builtins.int())
    >>> rpc.call(me, "time", "sleep", (0.5,), timeout=0.05)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    TimeoutError: node ... did not answer time.sleep() within 0.05 s
    """
    check_call(module, function, args, kwargs, timeout)
    if isinstance(node, str) and "://" in node:  # a Dask process: livekit.clusters serves it
        from livekit.clusters import core

        return core.call(node, module, function, args, kwargs, timeout=timeout)
    what = f"{module}.{function}()"
    request = ("call", module, function, tuple(args), dict(kwargs or {}))
    traced = _tracer()
    try:
        payload = protocol.dumps(request)
    except Exception as error:
        raise SerializationError(
            f"cannot send the arguments of {what} to node {node}: {error}"
        ) from error
    deadline = None if timeout is None else time.monotonic() + timeout
    pool = _pool(node)
    link = pool.take(CONNECT_TIMEOUT if timeout is None else min(timeout, CONNECT_TIMEOUT))
    if traced is not None:
        calls, sender = traced
        target = calls.node(node)
        label = tracing.call_label(module, function, request[3], request[4])
        # An older node is drawn from this side only: it takes no context.
        understood = _understands_traces(pool, link, what)
        if understood:
            # The request pickled once more, inside its context: only while a trace runs.
            payload = protocol.dumps(("traced", calls.context(), request))
        started = time.monotonic()
        calls.emit(Message(sender, target, label, "call", started))
        followed = calls.begin(link, sender, node, started, target, follow=understood)
        answer = _traced_exchange(pool, link, payload, deadline, what, followed=followed)
        if answer is None:
            raise TimeoutError(f"node {node} did not answer {what} within {timeout:g} s")
        reply, back = answer
        text, _ = tracing.reply_label(reply, calls.trace.label)
        calls.emit(Message(target, sender, text, "reply", back))
        return reply_value(reply, node, what)
    raw = _exchange(pool, link, payload, deadline, what)
    if raw is None:
        raise TimeoutError(f"node {node} did not answer {what} within {timeout:g} s")
    return unwrap(raw, node, what)


def _tracer() -> tuple[tracing.NodeCalls, Participant] | None:
    """The running trace's node calls and the traced caller, or None (the common case)."""
    running = sources.running()
    if running is None:
        return None
    sender = running.who()
    if sender is None:  # a thread the trace does not follow
        return None
    calls = tracing.calls_for(running)
    return None if calls is None else (calls, sender)


def _understands_traces(pool: _Pool, link: Link, what: str) -> bool:
    """Ask the node once per link whether it takes a trace context (an older one does not)."""
    if link.features is None:
        payload = pickle.dumps(("hello", _client_name()))
        deadline = time.monotonic() + CONNECT_TIMEOUT
        raw = _exchange(pool, link, payload, deadline, what, give_back=False)
        if raw is None:
            raise NodeError(
                f"node {pool.node} did not answer its hello within {CONNECT_TIMEOUT:g} s"
            )
        welcome = pickle.loads(raw)  # noqa: S301 -- the node proved it holds the cookie
        features = welcome[3] if isinstance(welcome, tuple) and len(welcome) > 3 else None
        link.features = features if isinstance(features, dict) else {}
    version = link.features.get("trace")
    return isinstance(version, int) and version >= tracing.VERSION


def _traced_exchange(
    pool: _Pool,
    link: Link,
    payload: bytes,
    deadline: float | None,
    what: str,
    *,
    followed: tracing.Request,
) -> tuple[Any, float] | None:
    """:func:`_exchange` for a traced request: the node's ``trace`` frame comes first.

    Returns the reply, unpickled, and when it came; None if the deadline passed.
    """
    try:
        link.send(payload)
        while True:
            if deadline is not None and not link.poll(max(0.0, deadline - time.monotonic())):
                followed.over()
                pool.discard(link)
                return None
            raw = link.recv_bytes()
            back = time.monotonic()
            reply = _loads_reply(raw, pool.node, what)
            if type(reply) is tuple and reply and reply[0] == "trace":
                followed.trace_frame(reply)
                continue
            break
    except (OSError, EOFError, protocol.ProtocolError) as error:
        followed.over()
        pool.discard(link)
        reason = str(error) or "the node closed it"
        raise NodeError(f"lost the link to node {pool.node} during {what}: {reason}") from error
    except BaseException:
        followed.over()
        pool.discard(link)
        raise
    followed.over()  # before the link goes back: nothing more is sent on it for this request
    pool.give(link)
    return reply, back


def _exchange(
    pool: _Pool,
    link: Link,
    payload: bytes,
    deadline: float | None,
    what: str,
    *,
    give_back: bool = True,
) -> bytes | None:
    """Send one request and read its reply; None if the deadline passed first.

    The link goes back to the pool afterwards, unless ``give_back`` is
    False (a spawn keeps it) or it can no longer be trusted.
    """
    try:
        link.send(payload)
        if deadline is not None and not link.poll(max(0.0, deadline - time.monotonic())):
            pool.discard(link)  # its late reply would be read by the next caller
            return None
        raw = link.recv_bytes()
    except (OSError, EOFError, protocol.ProtocolError) as error:
        pool.discard(link)
        reason = str(error) or "the node closed it"
        raise NodeError(f"lost the link to node {pool.node} during {what}: {reason}") from error
    except BaseException:
        pool.discard(link)  # e.g. KeyboardInterrupt: the reply may still come
        raise
    if give_back:
        pool.give(link)
    return raw


def unwrap(raw: bytes, node: str, what: str) -> Any:
    """Return the value of a reply, or raise what it carries."""
    return reply_value(_loads_reply(raw, node, what), node, what)


def _loads_reply(raw: bytes, node: str, what: str) -> Any:
    try:
        return pickle.loads(raw)  # noqa: S301 -- the node proved it holds the cookie
    except Exception as error:
        raise SerializationError(
            f"the result of {what} from node {node} cannot be unpickled here: {error}"
        ) from error


def reply_value(reply: Any, node: str, what: str) -> Any:
    """Return the value of an unpickled reply, or raise what it carries."""
    if type(reply) is tuple and len(reply) == 2 and reply[0] == "ok":
        return reply[1]  # the common case, before the slower pattern matching
    match reply:
        case ("raise", pickled, str(type_name), str(message), str(text)):
            remote = _rebuild(pickled, type_name, message)
            remote.add_note(f"(raised on node {node} in {what})")
            raise remote from RemoteTraceback(text)
        case ("unsendable", str(message)):
            raise SerializationError(f"{what} on node {node}: {message}")
    raise NodeError(f"node {node} sent an unexpected reply {reply!r:.80}")


def _rebuild(pickled: bytes | None, type_name: str, message: str) -> BaseException:
    if pickled is not None:
        try:
            (error,) = pickle.loads(pickled)  # noqa: S301 -- from an authenticated node
            if isinstance(error, BaseException):
                return error
        except Exception:  # noqa: S110 -- its class is unknown here: fall through
            pass
    return RemoteError(f"{type_name}: {message}")


def check_call(
    module: object, function: object, args: object, kwargs: object, timeout: object
) -> None:
    """Raise at once for arguments that :func:`call` cannot send (any backend)."""
    if not isinstance(module, str) or not module:
        raise ValueError(f"expected a module name, got {module!r}")
    if not isinstance(function, str) or not function:
        raise ValueError(f"expected a function name, got {function!r}")
    if not isinstance(args, tuple | list):
        raise TypeError(f"expected args as a tuple or a list, got {type(args).__name__}")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError(f"expected kwargs as a dict or None, got {type(kwargs).__name__}")
    if timeout is not None:
        check_timeout(timeout)


def check_timeout(timeout: object) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"expected a timeout in seconds greater than 0, got {timeout!r}")


class SpawnHandle:
    """A function running in its own thread on a node, from :func:`spawn`.

    Its prints appear in the caller's output as they happen. Wait for it
    with :meth:`join` (like :class:`threading.Thread`), or for its return
    value with :meth:`result`. Both raise what went wrong: what the function
    raised, or a :class:`NodeError` if the node died or the link broke.

    Examples
    --------
    >>> import livekit
    >>> handle = livekit.spawn(livekit.node(), lambda: sum(range(10)))
    >>> handle.result(timeout=10), handle.is_alive()
    (45, False)
    >>> handle.name.startswith("livekit-spawn-")
    True
    """

    def __init__(self, node: str, name: str) -> None:
        #: The node the function runs on.
        self.node = node
        #: The name of its thread on the node.
        self.name = name
        self._done = threading.Event()
        self._raw: bytes | None = None
        self._lost: NodeError | None = None
        self._reader: threading.Thread | None = None
        #: The traced spawn this handle follows, or None.
        self._followed: tracing.Request | None = None

    def _follow(self, pool: _Pool, link: Link, *, stdout: TextIO, stderr: TextIO) -> None:
        """Copy the function's output from ``link`` to the caller's streams until it ends."""
        self._pool = pool
        self._link = link
        self._streams = {"out": stdout, "err": stderr}
        self._reader = threading.Thread(
            target=self._read, name=f"livekit-spawn-output-{self.name}", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        link = self._link
        try:
            while True:
                raw = link.recv_bytes()
                message = pickle.loads(raw)  # noqa: S301 -- from an authenticated node
                if message[0] in self._streams:
                    stream = self._streams[message[0]]
                    stream.write(message[1])
                    stream.flush()
                    continue
                followed = self._followed
                if followed is not None and message[0] == "trace":
                    followed.trace_frame(message)
                    continue
                self._raw = raw
                if followed is not None:
                    followed.over()
                    _spawn_ended(followed, message)
                self._pool.give(link)
                return
        except Exception as error:  # any failure is the handle's to report, never lost
            if self._followed is not None:
                self._followed.over()
            self._pool.discard(link)
            if isinstance(error, EOFError | ConnectionError):
                # An EOFError says nothing: say what it means.
                reason = "the node closed the link before the function ended (it stopped or died)"
            else:
                reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            self._lost = NodeError(
                f"lost the link to node {self.node} while {self.name} ran: {reason}"
            )
        finally:
            self._done.set()

    def _wait(self, timeout: float | None) -> None:
        self._done.wait(timeout)
        if self._done.is_set() and self._reader is not None:
            self._reader.join()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the function has ended and all its output has arrived.

        As ``threading.Thread.join()``, it returns when ``timeout`` passes
        first (check :meth:`is_alive`). Unlike it, a failure is not hidden:
        once the function has ended, this raises what :meth:`result` raises.

        Raises
        ------
        Exception
            What the function raised on the node, with its traceback.
        NodeError
            If the node died or the link broke while the function ran.

        Examples
        --------
        >>> import livekit
        >>> livekit.spawn(livekit.node(), lambda: 1 / 0).join()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ZeroDivisionError: division by zero
        (raised on node ... in spawned livekit-spawn-...)
        """
        self._wait(timeout)
        if self._done.is_set():
            self._outcome()

    def is_alive(self) -> bool:
        """Return True while the function is still running on the node."""
        return not self._done.is_set()

    def result(self, timeout: float | None = None) -> Any:
        """Return what the function returned, raising what it raised.

        Raises
        ------
        TimeoutError
            If it is still running after ``timeout`` seconds.
        """
        self._wait(timeout)
        if not self._done.is_set():
            raise TimeoutError(f"{self.name} on node {self.node} still runs after {timeout:g} s")
        return self._outcome()

    def _outcome(self) -> Any:
        if self._lost is not None:
            raise self._lost
        assert self._raw is not None  # noqa: S101 -- set before _done whenever _lost is not
        return unwrap(self._raw, self.node, f"spawned {self.name}")

    def __repr__(self) -> str:
        state = "running" if self.is_alive() else "done"
        return f"<SpawnHandle {self.name} on {self.node} {state}>"


def spawn(node: str, fn: Any) -> SpawnHandle:
    """Run ``fn()`` in a new thread on ``node``; its prints come back here.

    Like Erlang's ``Node.spawn(node, fn)``: what the function prints appears
    in the caller's output (this cell, this terminal), which is where
    Erlang's group leader sends it. Only that thread's prints come back:
    threads the function starts print on the node. The function travels
    with cloudpickle, so a lambda or a function defined in a notebook works
    (with the same Python version on both sides, since it travels as
    bytecode).

    Parameters
    ----------
    node
        ``name@host`` or ``name@host:port``.
    fn
        A function of no arguments.

    Returns
    -------
    SpawnHandle
        ``join()`` waits for it, ``result()`` returns its value.

    Examples
    --------
    >>> import livekit
    >>> handle = livekit.spawn(livekit.node(), lambda: print("hello from the node")); handle.join()
    hello from the node
    >>> livekit.spawn(livekit.node(), lambda: 6 * 7).result()
    42
    """
    if not callable(fn):
        raise TypeError(f"expected a function to spawn, got {type(fn).__name__}: {fn!r:.60}")
    if isinstance(node, str) and "://" in node:  # a Dask worker: livekit.clusters serves it
        from livekit.clusters import core

        return core.spawn(node, fn)
    traced = _tracer()
    try:
        payload = protocol.dumps(("spawn", fn))
    except Exception as error:
        raise SerializationError(f"cannot send {fn!r:.60} to node {node}: {error}") from error
    pool = _pool(node)
    link = pool.take(CONNECT_TIMEOUT)
    followed: tracing.Request | None = None
    if traced is not None:
        calls, sender = traced
        understood = _understands_traces(pool, link, "spawn()")
        if understood:
            payload = protocol.dumps(("traced", calls.context(), ("spawn", fn)))
        followed = calls.begin(link, sender, node, time.monotonic(), follow=understood)
    # The link stays the spawned function's until it ends; its handle gives it back.
    try:
        raw = _exchange(pool, link, payload, None, "spawn()", give_back=False)
    except BaseException:
        if followed is not None:
            followed.over()
        raise
    assert raw is not None  # noqa: S101 -- no deadline, so a reply came
    reply = pickle.loads(raw)  # noqa: S301 -- from an authenticated node
    if isinstance(reply, tuple) and reply[0] == "spawned":
        handle = SpawnHandle(node, reply[1])
        if followed is not None:
            calls = followed.calls
            followed.target = calls.participant(f"{reply[1]}@{node}", "thread")
            calls.emit(Spawn(followed.sender, followed.target, followed.started))
            handle._followed = followed
        handle._follow(pool, link, stdout=sys.stdout, stderr=sys.stderr)
        return handle
    if followed is not None:
        followed.over()
    pool.give(link)
    unwrap(raw, node, "spawn()")  # raises what the node reported
    raise NodeError(f"node {node} did not start {fn!r:.60}")


def _spawn_ended(followed: tracing.Request, outcome: Any) -> None:
    """A traced spawn's function ended: its REPLY to whoever spawned it, and its EXIT."""
    if followed.target is None:
        return
    calls = followed.calls
    now = time.monotonic()
    text, reason = tracing.reply_label(outcome, calls.trace.label)
    calls.emit(Message(followed.target, followed.sender, text, "reply", now))
    calls.emit(Exit(followed.target, reason, now))
