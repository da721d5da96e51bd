"""Sockets: the bytes a traced thread or task sends or receives, as arrows.

What is watched
---------------
``socket.socket``'s ``send``, ``sendall``, ``sendto``, ``sendmsg``,
``recv``, ``recv_into``, ``recvfrom``, ``recvfrom_into`` and ``recvmsg``.
They are C methods of ``_socket.socket``, which ``sys.monitoring`` sees
neither called with their arguments nor returning their results, so both
backends do the same thing for them: for the length of a trace,
``socket.socket`` (a Python subclass) gets wrappers of its own that shadow
the inherited C methods; when the trace ends the attributes are deleted
and every socket calls C directly again.

asyncio's selector transports (``transport.write``, and the reads that end
in ``protocol.data_received``), hence asyncio streams
(``StreamWriter.write``, ``StreamReader.read*``), aiohttp and uvicorn, all
go through these methods: one set of wrappers sees them all.  What does
not: uvloop (libuv writes to the file descriptor itself), ``ssl.SSLSocket``
in threads (it overrides these methods), ``os.write`` on a socket's file
descriptor, and unnamed Unix sockets not made by ``socket.socketpair()``
during the trace (asyncio's own wake-up pipe is one, and is left out).

How bytes become arrows
-----------------------
A connection is two byte streams.  Each end of a socket is named by its
``(local address, peer address)``; the stream it writes to is keyed by
that pair and the stream it reads from by the reverse, so the two ends of
one TCP connection in this process meet on the same keys; the trace
forgets an end as its socket is freed (its id may then be another's).
The common write and read (a new arrow, and bytes of the first arrow
waiting, on a connected socket) are written out in the wrappers, which
then make no call into the tracker; the rest goes through it.  A write by a
traced participant reserves its arrow's place at once (the diagram reads
in the order things were done) and waits in its stream with its byte
count; a read takes bytes from the front of the stream, and the first
read of a write names the arrow's receiver.  Writes by the same sender
that follow each other with no reply read in between are one arrow (an
HTTP request's headers and body), however the reader's reads fall between
them.  Bytes read that no traced participant wrote come from outside: the arrow starts
at a participant named by the peer address (``127.0.0.1:8080``); a write
that nobody in the trace read goes to it.

asyncio reads in a loop callback, outside any task.  Such a read is
received by the task or thread that last wrote on the same socket; if
none has, by the next one that does (the server task that answers a
request); if none ever does, by the loop's thread.

A write by a task that the trace never saw start (Python 3.12+ can start
a task eagerly, without ``create_task``: aiohttp's client writes a request
body so) is drawn as that of the traced participant that last wrote on the
socket, or else of the traced task whose call started it.

A label is the byte count, and the first line when the bytes are text:
``GET /items HTTP/1.1 (83 bytes)``.

>>> label(b"GET /items HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n", 33)
'GET /items HTTP/1.1 (33 bytes)'
>>> label(bytes([0, 159, 146, 150]), 4)
'4 bytes'
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import socket
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from operator import attrgetter, not_
from typing import Any

from livekit.trace._patches import Patches
from livekit.trace.events import MAX_LABEL, Participant
from livekit.trace.format import shorten
from livekit.trace.recorder import UNCOUNTED, Recorder, _current_task

__all__ = ["PATCHES", "SocketTracker", "label", "peer_name"]

_get_running_loop = asyncio.events._get_running_loop
_get_ident = threading.get_ident
_monotonic = time.monotonic
_SOCKET = socket.socket
# How many bytes of a write are kept to find its first line.
_HEAD = 256
# What reserve() returns to the fast case of a write once the diagram is full.
_FULL = -3
# How many labels a trace remembers (see SocketTracker._fill).
_LABELS = 1024
_RECEIVER = attrgetter("receiver")
_WAKE_UP_PIPE = "_make_self_pipe"  # BaseSelectorEventLoop's, asyncio's own
# Sockets that multiprocessing (its forkserver's) and livekit itself (a
# node's links, whose calls a trace draws as CALL and REPLY) use are
# plumbing, as their threads are.
_PLUMBING = ("multiprocessing.", "livekit.")

Address = Any  # what getsockname() returns, made hashable


def label(head: bytes, total: int) -> str:
    """The label of ``total`` bytes that begin with ``head``.

    Examples
    --------
    >>> label(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nhi", 40)
    'HTTP/1.1 200 OK (40 bytes)'
    >>> label(b"x", 1)
    'x (1 byte)'
    >>> label(b"\\r\\n", 2)
    '2 bytes'
    """
    count = f"{total} {'byte' if total == 1 else 'bytes'}"
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return count
    if not text or not text.isprintable():
        return count
    suffix = f" ({count})"
    if len(text) + len(suffix) > MAX_LABEL:
        text = shorten(text, MAX_LABEL - len(suffix))
    return text + suffix


def peer_name(address: Address) -> str:
    """The readable name of a socket address (the participant of a peer outside).

    Examples
    --------
    >>> peer_name(("127.0.0.1", 8080))
    '127.0.0.1:8080'
    >>> peer_name(("::1", 8080, 0, 0))
    '[::1]:8080'
    >>> peer_name("/run/app.sock")
    '/run/app.sock'
    """
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if isinstance(host, str) and ":" in host:
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    if address is None:
        return "unknown peer"
    if isinstance(address, bytes):
        return address.decode("utf-8", "backslashreplace") or "unnamed socket"
    return str(address) or "unnamed socket"


def _hashable(address: Any) -> Address:
    if isinstance(address, tuple):
        return address[:2]  # IPv6 flow info and scope id do not name the stream
    if isinstance(address, bytearray | list):
        return bytes(address)
    return address


class _Arrow:
    """One arrow in the making: bytes written, and who read them."""

    __slots__ = (
        "head",
        "key",
        "open",
        "place",
        "read_at",
        "receiver",
        "sender",
        "sent",
        "total",
        "unread",
        "waiting",
    )

    def __init__(
        self,
        sender: Participant,
        key: tuple[Address, Address],
        place: int,
        total: int,
        head: bytes,
    ) -> None:
        self.sender = sender
        self.key = key
        self.place = place
        self.total = total
        self.unread = total
        self.head = head
        self.sent = _monotonic()
        self.read_at = 0.0
        self.receiver: Participant | None = None
        # Read in a loop callback: who takes it is decided later; the last
        # resorts are the end's last writer, then the loop's thread.
        self.waiting: tuple[Participant | None, _End] | None = None
        self.open = True  # more writes of its sender may still join it


class _Stream(deque[_Arrow]):
    """One direction of a connection: the arrows whose bytes wait to be read."""

    __slots__ = ("written",)

    def __init__(self) -> None:
        super().__init__()
        self.written = False  # its key is in SocketTracker._written


class _End:
    """What the trace knows of one socket object."""

    __slots__ = (
        "fast_in",
        "fast_out",
        "ignored",
        "in_key",
        "into",
        "last_in",
        "last_out",
        "local",
        "orphan",
        "out",
        "out_key",
        "owner",
        "peer",
        "ref",
        "spoke_first",
        "waiting",
    )

    def __init__(  # noqa: PLR0917 - the socket, its names, and its streams
        self,
        sock: socket.socket,
        local: Address,
        peer: Address,
        ignored: bool,
        forget: Callable[[Any], Any] | None = None,
        streams: tuple[_Stream, _Stream] | None = None,
    ) -> None:
        # ``forget`` takes the end out of the trace's ends as the socket is
        # freed, before its id can be another's: an end found by the id of
        # a live socket is that socket's (the wrappers check no more).
        self.ref = weakref.ref(sock, forget)
        self.local = local
        self.peer = peer
        # The streams it writes to and reads from (connected sockets): the
        # keys, and the streams themselves, which the fast cases use.
        self.out_key = (local, peer)
        self.in_key = (peer, local)
        self.out: _Stream | None = None
        self.into: _Stream | None = None
        if streams is not None:
            self.out, self.into = streams
        self.ignored = ignored
        self.owner: Participant | None = None  # the last task or thread that wrote on it
        self.last_out: _Arrow | None = None  # its latest write, which a next one may join
        self.last_in: _Arrow | None = None  # its latest read from outside
        self.waiting: list[_Arrow] = []  # reads in loop callbacks, receiver not known yet
        # Whether this end wrote before it read (a client's) or not (a server's).
        self.spoke_first: bool | None = None
        # Once the diagram is full: the thread whose writes on it are only
        # counted, and whose reads are only of counted writes (see _fast).
        self.fast_out = 0
        self.fast_in = 0
        self.orphan = False  # written by untraced tasks only, so far


class SocketTracker:
    """The socket part of one trace: streams, their ends, and peers outside.

    Parameters
    ----------
    recorder
        The trace's recorder: it says who is running, keeps the arrows'
        places and counts what ``max_messages`` leaves out.
    """

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._tasks = recorder.tasks
        self._fill_message = recorder.fill_message
        self._lock = threading.Lock()
        self._ends: dict[int, _End] = {}
        self._streams: dict[tuple[Address, Address], _Stream] = {}
        # Streams that a traced participant wrote to: once the diagram is
        # full, bytes read from them are counted where they were written.
        self._written: set[tuple[Address, Address]] = set()
        self._peers: dict[str, Participant] = {}
        self._pairs = 0
        self._arrows: list[_Arrow] = []
        # Byte count -> (head, label) of the latest message of that size.
        self._labels: dict[int, tuple[bytes, str]] = {}
        #: Writes counted by the wrappers' fast path (``next`` is atomic).
        self.counted = itertools.count()
        self.ends = self._ends

    # -- the two ends ----------------------------------------------------

    def _end(self, sock: socket.socket) -> _End:
        end = self._ends.get(id(sock))
        if end is not None and end.ref() is sock:
            return end
        try:
            local = _hashable(sock.getsockname())
        except OSError:
            local = None
        try:
            peer = _hashable(sock.getpeername())
        except OSError:  # not connected: a datagram socket, say
            peer = None
        # An unnamed Unix socket cannot be told from another: only the
        # pairs made during the trace (see paired) are followed.
        unnamed = sock.family == getattr(socket, "AF_UNIX", None) and not local and not peer
        # Plumbing (see _PLUMBING) is told by the module that uses the socket.
        # Frames: this, sending/received, the wrapper, its caller.
        user = str(sys._getframe(3).f_globals.get("__name__", ""))
        with self._lock:
            end = self._new_end(sock, local, peer, ignored=unnamed or user.startswith(_PLUMBING))
            port = local[1] if isinstance(local, tuple) and len(local) == 2 else None
            if port != 0:  # an unbound socket gets its port at its first send
                self._ends[id(sock)] = end
        return end

    def _new_end(
        self, sock: socket.socket, local: Address, peer: Address, *, ignored: bool
    ) -> _End:
        """The end of ``sock``, with its two streams if it is connected (under the lock)."""
        forget = functools.partial(_forget, self._ends, id(sock))
        if ignored or peer is None:
            return _End(sock, local, peer, ignored, forget)
        streams = (self._stream((local, peer)), self._stream((peer, local)))
        return _End(sock, local, peer, ignored, forget, streams)

    def _stream(self, key: tuple[Address, Address]) -> _Stream:
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
        return stream

    def paired(self, ends: tuple[socket.socket, socket.socket]) -> None:
        """``socket.socketpair()`` returned ``ends``: name them after each other."""
        self._pairs += 1
        a, b = ("socketpair", self._pairs, "a"), ("socketpair", self._pairs, "b")
        first, second = ends
        with self._lock:
            self._ends[id(first)] = self._new_end(first, a, b, ignored=False)
            self._ends[id(second)] = self._new_end(second, b, a, ignored=False)

    def _peer(self, address: Address) -> Participant:
        name = peer_name(address)
        found = self._peers.get(name)
        if found is None:
            found = self._peers[name] = self._recorder.new_participant(name, "peer")
        return found

    # -- what the wrappers report ----------------------------------------

    def sending(  # noqa: PLR0912, PLR0915 - one function: it runs for every write
        self, sock: socket.socket, data: Any, address: Any = None, end: _End | None = None
    ) -> _Arrow | None:
        """``data`` is about to be written (before it is, so no read can overtake it).

        ``end`` is what :attr:`ends` held for ``sock``, if the caller looked.
        """
        if end is None:
            end = self._ends.get(id(sock))
        if end is None or end.ref() is not sock:
            end = self._end(sock)
        if end.ignored:
            return None
        recorder = self._recorder
        loop = _get_running_loop()
        if loop is None:  # a thread: the cheapest case, asked first
            in_callback = False
            sender = recorder.thread_participant()
        else:
            task = _current_task(loop)
            in_callback = task is None
            if task is None:
                sender = end.owner
            else:
                # recorder.who(), written out: the loop and task are known.
                tasks = self._tasks
                sender = tasks.get(task) if tasks else recorder.thread_participant()
        if (
            end.last_out is None
            and address is None
            and not end.waiting
            and recorder.arrows >= recorder.max_messages
            and not recorder.narrowed
        ):
            self._count_only(end, sender, thread=loop is None)
            return None
        if sender is None:
            if end.waiting and not in_callback:
                sender = recorder.adopt()  # it answers bytes a traced participant sent
            if sender is None and loop is not None:
                # A task the trace never saw start (Python 3.12+ starts some
                # eagerly, without create_task): a helper of the socket's user,
                # or of the traced task whose call started it.
                sender = end.owner
                if sender is None and not end.orphan:
                    sender = recorder.task_on_stack()
                    end.orphan = sender is None  # an untraced program's: ask once
        size = len(data)
        if sender is None or size == 0:
            return None
        # The write itself (written out here: this runs for every write).
        key = end.out_key if address is None else (end.local, _hashable(address))
        with self._lock:
            if end.spoke_first is None:
                end.spoke_first = True
            if not in_callback:
                end.owner = sender
            if end.last_in is not None:
                end.last_in.open = False
            if end.waiting:
                for arrow in end.waiting:
                    arrow.receiver = sender
                    self._fill(arrow)
                end.waiting.clear()
            last = end.last_out
            if last is not None and last.open and last.key == key and last.sender is sender:
                self._join(last, data, size)
                return last
            self._written.add(key)
            place = recorder.reserve()
            if place == -1:  # the diagram is full, and the write counted
                end.last_out = None
                return None
            arrow = _Arrow(sender, key, place, size, bytes(data[:_HEAD]))
            self._stream(key).append(arrow)
            self._arrows.append(arrow)
            end.last_out = arrow
            return arrow

    def _count_only(self, end: _End, sender: Participant | None, *, thread: bool) -> None:
        """The diagram is full: a traced write is only counted.  (The common
        case of a long exchange, so it is kept short.)"""
        if sender is not None:
            self._written.add(end.out_key)
            self._recorder.count()
            if thread:
                end.fast_out = _get_ident()  # its next writes: see the wrappers

    def _join(self, last: _Arrow, data: Any, size: int) -> None:
        """The same sender wrote again, no reply read in between: one arrow,
        however the reader's reads interleave with the writes."""
        last.total += size
        if last.unread <= 0 and _gone(self._streams.get(last.key), last):
            self._stream(last.key).append(last)
        last.unread += size
        if b"\n" not in last.head and len(last.head) < _HEAD:
            last.head += bytes(data[: _HEAD - len(last.head)])
        self._fill(last)

    def unsent(self, arrow: _Arrow, size: int) -> None:
        """``size`` of the bytes reported to :meth:`sending` were not written after all."""
        if size <= 0:
            return
        with self._lock:
            arrow.total -= size
            arrow.unread -= size
            self._fill(arrow)

    def received(  # noqa: PLR0912, PLR0915 - one function: it runs for every read
        self,
        sock: socket.socket,
        size: int,
        data: Any,
        address: Any = None,
        end: _End | None = None,
    ) -> None:
        """``size`` bytes were read; ``data`` starts with them.

        ``end`` is what :attr:`ends` held for ``sock``, if the caller looked.
        """
        if size <= 0:
            return  # the end of the stream
        if end is None:
            end = self._ends.get(id(sock))
        if end is None or end.ref() is not sock:
            end = self._end(sock)
        if end.ignored:
            return
        recorder = self._recorder
        if (
            address is None
            and end.last_out is None
            and recorder.arrows >= recorder.max_messages
            and end.in_key in self._written
            and not self._streams.get(end.in_key)
            and not recorder.narrowed
        ):
            # Bytes of writes the full diagram counted where they were written.
            if _get_running_loop() is None:
                end.fast_in = _get_ident()  # its next reads: see _fast
            return
        loop = _get_running_loop()
        in_callback = loop is not None and _current_task(loop) is None
        # The read itself (written out here: this runs for every read).
        if address is None:
            peer, key = end.peer, end.in_key
        else:
            peer = _hashable(address)
            key = (peer, end.local)
        with self._lock:
            if end.spoke_first is None:
                end.spoke_first = False
            last_out = end.last_out
            if last_out is not None:
                last_out.open = False  # a reply came: the next write is a new arrow
            stream = self._streams.get(key)
            if stream is None and peer is None:
                stream = self._stream_to(end.local)
            left = size
            taken: list[_Arrow] = []
            while stream and left > 0:
                arrow = stream[0]
                share = arrow.unread if arrow.unread < left else left  # min(), without a call
                arrow.unread -= share
                left -= share
                if arrow.receiver is None and arrow.waiting is None:
                    taken.append(arrow)
                if arrow.unread <= 0:
                    stream.popleft()
            if not taken and left <= 0:
                return
            if in_callback:  # its receiver is known without asking the recorder
                # A client's end: the task that asked reads the answer.  A
                # server's: the task that answers it read it (known later).
                receiver: Participant | None = end.owner
                waiting: tuple[Participant | None, _End] | None = None
                if receiver is None or not end.spoke_first:
                    receiver = None
                    loop_thread = recorder.thread_participant()
                    # Neither: an untraced loop reading from outside.
                    if loop_thread is not None or taken:
                        waiting = (loop_thread, end)
                self._taken(end, taken, left, key, data, receiver, waiting)
                return
        # Outside the lock: adopting a participant takes the recorder's.
        receiver = recorder.who()
        if receiver is None and taken:
            receiver = recorder.adopt()  # Erlang's token: it received a traced message
        with self._lock:
            self._taken(end, taken, left, key, data, receiver, None)

    def _taken(  # noqa: PLR0917 - the state of one read, passed on
        self,
        end: _End,
        taken: list[_Arrow],
        left: int,
        key: tuple[Address, Address],
        data: Any,
        receiver: Participant | None,
        waiting: tuple[Participant | None, _End] | None,
    ) -> None:
        """A read took the bytes of ``taken`` and ``left`` more (under the lock)."""
        if taken:
            now = _monotonic()
            for arrow in taken:
                arrow.read_at = now
                self._receive(end, arrow, receiver, waiting)
        if left > 0 and (receiver is not None or waiting is not None):
            self._from_outside(
                end, key=key, size=left, data=data, receiver=receiver, waiting=waiting
            )

    def _stream_to(self, local: Address) -> _Stream | None:
        """A stream with bytes waiting for ``local``: a datagram socket read
        without asking who sent (``recv`` on an unconnected socket)."""
        for (_, to), stream in self._streams.items():
            if to == local and stream:
                return stream
        return None

    def _receive(
        self,
        end: _End,
        arrow: _Arrow,
        receiver: Participant | None,
        waiting: tuple[Participant | None, _End] | None,
    ) -> None:
        if receiver is not None:
            arrow.receiver = receiver
            self._fill(arrow)
        else:
            arrow.waiting = waiting
            end.waiting.append(arrow)

    def _from_outside(
        self,
        end: _End,
        *,
        key: tuple[Address, Address],
        size: int,
        data: Any,
        receiver: Participant | None,
        waiting: tuple[Participant | None, _End] | None,
    ) -> None:
        last = end.last_in
        if last is not None and last.open and last.key == key:
            last.total += size
            self._fill(last)
            return
        if self._recorder.full and key in self._written:
            return  # bytes of a write already counted as not shown
        place = self._recorder.reserve()
        if place == -1:
            end.last_in = None
            return
        sender = self._peer(key[0] if key[0] is not None else end.local)
        arrow = _Arrow(sender, key, place, size, bytes(data[:_HEAD]))
        arrow.unread = 0
        arrow.read_at = _monotonic()
        self._arrows.append(arrow)
        end.last_in = arrow
        self._receive(end, arrow, receiver, waiting)

    def _fill(self, arrow: _Arrow) -> None:
        receiver, total = arrow.receiver, arrow.total
        if receiver is None or total <= 0:
            return
        sent = arrow.sent
        # A protocol's messages begin alike (the same request, the same
        # status line): their labels are made once.  Kept by size, and
        # compared by head: an int is hashed at once, a head of up to 256
        # new bytes is not, and equal heads compare in one memcmp.
        head = arrow.head
        made = self._labels.get(total)
        if made is not None and made[0] == head:
            text = made[1]
        else:
            text = label(head, total)
            if len(self._labels) >= _LABELS:
                self._labels.clear()
            self._labels[total] = (head, text)
        place = arrow.place
        self._fill_message(place, arrow.sender, receiver, text, arrow.read_at or sent, sent)
        if place == UNCOUNTED:
            arrow.place = -1  # counted now: its later growth is not another message

    def finish(self) -> None:
        """The trace ends: give every arrow still open its receiver."""
        counted = next(self.counted)
        if counted:
            self._recorder.count(counted)
        with self._lock:
            arrows = self._arrows
            # The arrows with no receiver yet, picked in C: most have one.
            for arrow in itertools.compress(arrows, map(not_, map(_RECEIVER, arrows))):
                if arrow.waiting is not None:
                    loop_thread, end = arrow.waiting
                    arrow.receiver = end.owner or loop_thread
                if arrow.receiver is None:
                    # Never read in the trace, or read by a loop nobody
                    # traced: the other end is known by its address.
                    arrow.receiver = self._peer(arrow.key[1])
                self._fill(arrow)

    def close(self) -> None:
        """Drop every reference to the traced program's sockets."""
        with self._lock:
            self._ends.clear()
            self._streams.clear()
            self._arrows.clear()


def _forget(ends: dict[int, _End], key: int, _: object) -> None:
    """A socket the trace knew was freed: its id may be another's next."""
    ends.pop(key, None)


class _Common:
    """What the wrappers' common cases use of one tracker, bound once.

    Those cases are the tracker's own code, written out in the wrappers so
    that a write or a read costs no call into the tracker.
    """

    def __init__(self, tracker: SocketTracker) -> None:
        recorder = tracker._recorder  # the tracker's own code: its privates
        lock = tracker._lock
        self.acquire, self.release = lock.acquire, lock.release
        self.reserve = recorder.reserve
        self.tasks, self.thread_participant = recorder.tasks, recorder.thread_participant
        self.adopt = recorder.adopt
        self.fill = tracker._fill
        self.arrows = tracker._arrows
        self._written = tracker._written

    def written(self, stream: _Stream, key: tuple[Address, Address]) -> None:
        """A traced participant wrote to ``stream`` (under the lock): see SocketTracker._written."""
        stream.written = True
        self._written.add(key)


def _gone(stream: deque[_Arrow] | None, arrow: _Arrow) -> bool:
    """Whether ``arrow`` left its stream (all read): more bytes put it back."""
    return stream is None or not stream or stream[-1] is not arrow


# -- the wrappers --------------------------------------------------------
#
# Rows of (class or module, attribute, make(tracker) -> wrapper).  Every
# wrapper passes on whatever else it is given, and calls the C method it
# shadows; ``original`` is looked up on ``_socket.socket``, since
# ``socket.socket`` only inherits these.

_C: Any = socket.socket.__mro__[1]  # _socket.socket


# The fast path.  Once the diagram is full, a long exchange between threads
# (the usual way a trace fills up) only needs counting: a socket whose
# thread was found to need nothing else is marked, and its wrappers then
# check the mark and count, without a call into the tracker.


def _sender(name: str) -> Callable[[SocketTracker], Callable[..., Any]]:  # noqa: PLR0915 - its wrapper, written out
    """The wrapper maker of ``socket.send`` or ``socket.sendall``.

    ``send`` may send less than it is given: the rest is taken off the
    arrow.  ``sendall`` sends all or raises, and returns None.
    """
    whole = name == "sendall"

    def make(tracker: SocketTracker) -> Callable[..., Any]:  # noqa: PLR0915 - its wrapper, written out
        original = getattr(_C, name)
        ends, counted = tracker.ends, tracker.counted
        sending, unsent = tracker.sending, tracker.unsent
        # What the common case below uses, bound once (see _Common).
        common = _Common(tracker)
        acquire, release, reserve, fill = (
            common.acquire,
            common.release,
            common.reserve,
            common.fill,
        )
        tasks, thread_participant, arrows = common.tasks, common.thread_participant, common.arrows
        adopt = common.adopt

        def send(self: Any, data: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: PLR0912, PLR0915 - written out
            end = ends.get(id(self))  # that socket's (see _End)
            arrow: _Arrow | None = None
            if end is None or not data:
                arrow = sending(self, data, None, end)
            elif end.fast_out and end.fast_out == _get_ident() and _get_running_loop() is None:
                next(counted)
            else:
                # The common case, written out: a new arrow on a connected
                # socket while the diagram has room, by a participant known
                # at once.  It has the effects that sending() would have, in
                # the same order; reserve(_FULL) counts nothing when the
                # diagram is full, and sending() takes the write then.
                stream = end.out
                done = False
                if stream is not None:
                    loop = _get_running_loop()
                    in_callback = False
                    if loop is None:
                        sender = thread_participant()
                    else:
                        task = _current_task(loop)
                        if task is None:
                            in_callback = True
                            sender = end.owner
                        else:
                            sender = tasks.get(task) if tasks else thread_participant()
                    if sender is None and end.waiting and not in_callback:
                        # It answers bytes a traced participant sent (see
                        # sending): a task started eagerly, as aiohttp's
                        # server starts each request's handler on 3.12+.
                        sender = adopt()
                    if sender is not None:
                        acquire()
                        try:
                            last = end.last_out
                            if (
                                last is None
                                or not last.open
                                or last.sender is not sender
                                or last.key != end.out_key
                            ):
                                place = reserve(_FULL)
                                if place != _FULL:
                                    if end.spoke_first is None:
                                        end.spoke_first = True
                                    if not in_callback:
                                        end.owner = sender
                                    if end.last_in is not None:
                                        end.last_in.open = False
                                    waiting = end.waiting
                                    if waiting:
                                        for arrow in waiting:
                                            arrow.receiver = sender
                                            fill(arrow)
                                        waiting.clear()
                                    if not stream.written:
                                        common.written(stream, end.out_key)
                                    done = True
                                    if place == -1:  # the last place went meanwhile: counted
                                        end.last_out = arrow = None
                                    else:
                                        head = bytes(data[:_HEAD])
                                        arrow = _Arrow(sender, end.out_key, place, len(data), head)
                                        stream.append(arrow)
                                        arrows.append(arrow)
                                        end.last_out = arrow
                        finally:
                            release()
                if not done:
                    arrow = sending(self, data, None, end)
            # A plain call when nothing else is passed (asyncio's way, and
            # the ping-pong's): passing *args and **kwargs on makes a list,
            # a tuple and a dict on every call.
            plain = not args and not kwargs
            if arrow is None:
                return original(self, data) if plain else original(self, data, *args, **kwargs)
            try:
                sent = original(self, data) if plain else original(self, data, *args, **kwargs)
            except BaseException:
                # How much a failed sendall sent is not known: none is drawn.
                unsent(arrow, len(data))
                raise
            if not whole and sent < len(data):
                unsent(arrow, len(data) - sent)
            return sent

        send.__name__ = send.__qualname__ = name
        return send

    return make


_send = _sender("send")
_sendall = _sender("sendall")


def _sendto(tracker: SocketTracker) -> Callable[..., Any]:
    original = _C.sendto

    def sendto(self: Any, data: Any, *args: Any) -> int:
        arrow = tracker.sending(self, data, args[-1]) if args else None
        if arrow is None:
            return original(self, data, *args)  # type: ignore[no-any-return]
        try:
            sent: int = original(self, data, *args)
        except BaseException:
            tracker.unsent(arrow, len(data))
            raise
        tracker.unsent(arrow, len(data) - sent)
        return sent

    return sendto


def _sendmsg(tracker: SocketTracker) -> Callable[..., Any]:
    original = _C.sendmsg

    def sendmsg(self: Any, buffers: Any, *args: Any) -> int:
        buffers = list(buffers)
        address = args[2] if len(args) > 2 else None
        data = b"".join(bytes(b[:_HEAD]) for b in buffers[:4])
        size = sum(memoryview(b).nbytes for b in buffers)
        arrow = tracker.sending(self, _Head(data, size), address)
        if arrow is None:
            return original(self, buffers, *args)  # type: ignore[no-any-return]
        try:
            sent: int = original(self, buffers, *args)
        except BaseException:
            tracker.unsent(arrow, size)
            raise
        tracker.unsent(arrow, size - sent)
        return sent

    return sendmsg


def _recv(tracker: SocketTracker) -> Callable[..., Any]:
    original = _C.recv
    ends, received = tracker.ends, tracker.received
    common = _Common(tracker)
    acquire, release, fill = common.acquire, common.release, common.fill
    tasks, thread_participant = common.tasks, common.thread_participant

    def recv(self: Any, *args: Any, **kwargs: Any) -> bytes:  # noqa: PLR0912 - written out
        # A plain call when only the size is passed (see _sender).
        data: bytes = (
            original(self, args[0])
            if len(args) == 1 and not kwargs
            else original(self, *args, **kwargs)
        )
        end = ends.get(id(self))  # that socket's (see _End)
        if end is None:
            received(self, len(data), data, None, end)
            return data
        if end.fast_in and end.fast_in == _get_ident():
            return data
        stream = end.into
        size = len(data)
        if stream and size:
            # The common case, written out: a read of bytes of the first
            # arrow waiting in a connected stream, by a participant known
            # at once.  It has the effects that received() would have.
            loop = _get_running_loop()
            in_callback = False
            if loop is None:
                receiver = thread_participant()
            else:
                task = _current_task(loop)
                if task is None:  # see received()
                    in_callback = True
                    receiver = end.owner if end.spoke_first else None
                else:
                    receiver = tasks.get(task) if tasks else thread_participant()
            if receiver is not None or in_callback:
                acquire()
                try:
                    arrow = stream[0] if stream else None
                    if arrow is not None and arrow.unread >= size:
                        if end.spoke_first is None:
                            end.spoke_first = False
                        last_out = end.last_out
                        if last_out is not None:
                            last_out.open = False  # a reply came: the next write is a new arrow
                        arrow.unread -= size
                        if arrow.unread <= 0:
                            stream.popleft()
                        if arrow.receiver is None and arrow.waiting is None:
                            arrow.read_at = _monotonic()
                            if receiver is not None:
                                arrow.receiver = receiver
                                fill(arrow)
                            else:
                                arrow.waiting = (thread_participant(), end)
                                end.waiting.append(arrow)
                        return data
                finally:
                    release()
        received(self, size, data, None, end)
        return data

    return recv


def _recv_into(tracker: SocketTracker) -> Callable[..., Any]:
    original = _C.recv_into
    ends, received = tracker.ends, tracker.received

    def recv_into(self: Any, buffer: Any, *args: Any, **kwargs: Any) -> int:
        size: int = (
            original(self, buffer)
            if not args and not kwargs
            else original(self, buffer, *args, **kwargs)
        )
        end = ends.get(id(self))
        if end is not None and end.fast_in and end.fast_in == _get_ident():
            return size
        received(self, size, _Head(buffer, size), None, end)
        return size

    return recv_into


class _Head:
    """The first bytes of ``size`` bytes sent or read, copied only if looked at.

    ``buffer`` holds them: a buffer read into, or the heads of the buffers
    of one ``sendmsg`` joined.
    """

    __slots__ = ("buffer", "size")

    def __init__(self, buffer: Any, size: int) -> None:
        self.buffer, self.size = buffer, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: slice) -> bytes:
        try:
            view = memoryview(self.buffer).cast("B")
        except TypeError:  # not a contiguous buffer: no first line to show
            return b""
        return bytes(view[: min(self.size, index.stop or self.size)])


def _recvfrom(tracker: SocketTracker) -> Callable[..., Any]:
    original = _C.recvfrom

    def recvfrom(self: Any, *args: Any, **kwargs: Any) -> tuple[bytes, Any]:
        data, address = original(self, *args, **kwargs)
        tracker.received(self, len(data), data, address)
        return data, address

    return recvfrom


def _recvfrom_into(tracker: SocketTracker) -> Callable[..., Any]:
    original = _C.recvfrom_into

    def recvfrom_into(self: Any, buffer: Any, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        size, address = original(self, buffer, *args, **kwargs)
        tracker.received(self, size, _Head(buffer, size), address)
        return size, address

    return recvfrom_into


def _recvmsg(tracker: SocketTracker) -> Callable[..., Any]:
    original = _C.recvmsg

    def recvmsg(self: Any, *args: Any) -> tuple[bytes, Any, int, Any]:
        data, ancdata, flags, address = original(self, *args)
        tracker.received(self, len(data), data, address)
        return data, ancdata, flags, address

    return recvmsg


def _socketpair(tracker: SocketTracker) -> Callable[..., Any]:
    original = socket.socketpair

    def socketpair(*args: Any, **kwargs: Any) -> tuple[socket.socket, socket.socket]:
        ends: tuple[socket.socket, socket.socket] = original(*args, **kwargs)
        # asyncio's wake-up pipe carries no message of the program's.
        if sys._getframe(1).f_code.co_name != _WAKE_UP_PIPE:
            tracker.paired(ends)
        return ends

    return socketpair


#: What a trace installs, for either backend (see the module docstring).
PATCHES: list[tuple[Any, str, Callable[[SocketTracker], Callable[..., Any]]]] = [
    (_SOCKET, "send", _send),
    (_SOCKET, "sendall", _sendall),
    (_SOCKET, "sendto", _sendto),
    (_SOCKET, "recv", _recv),
    (_SOCKET, "recv_into", _recv_into),
    (_SOCKET, "recvfrom", _recvfrom),
    (_SOCKET, "recvfrom_into", _recvfrom_into),
    (socket, "socketpair", _socketpair),
]
if hasattr(_C, "sendmsg"):  # not on Windows
    PATCHES += [(_SOCKET, "sendmsg", _sendmsg), (_SOCKET, "recvmsg", _recvmsg)]


class SocketPatches:
    """Install the wrappers of :data:`PATCHES` for one tracker, and take them out."""

    def __init__(self, tracker: SocketTracker) -> None:
        self._tracker = tracker
        self._patches = Patches()

    def install(self) -> None:
        try:
            for owner, name, make in PATCHES:
                self._patches.set(owner, name, make(self._tracker))
        except BaseException:
            self.uninstall()
            raise

    def uninstall(self) -> None:
        self._patches.restore()
