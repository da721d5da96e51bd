"""Sequence traces across nodes: ``rpc.call`` and ``spawn`` followed to the node and back.

Erlang's ``seq_trace`` token travels with a message to another node; here
a *trace context* travels with a call, over the authenticated link only.

On the calling side, a call made by a traced participant while a trace
runs draws ``CALL`` from it to a participant for the node (named as the
caller named the node) and ``REPLY`` back, with the value or the error
raised there; a spawn draws ``SPAWN`` to the new thread on the node
(``livekit-spawn-1@node``), then its ``REPLY`` and its ``EXIT``.
:class:`NodeCalls` records these as a source of the trace
(:mod:`livekit.trace.sources`), which merges them with the trace's own
events in time order.

On the node, a request that carries a context runs under a trace of its
own (:class:`NodeTrace`): the thread that serves it is the node's end of
the arrows, and the messages it and whoever it starts exchange there are
recorded, sent back in a ``trace`` frame just before the reply, and drawn
in the caller's diagram with their participants named ``name@node``.
The node's times are moved onto the caller's clock with the round trip
(as NTP does), and kept between the request and its reply.

The wire, in version 1 (see :mod:`livekit.nodes.protocol` for the rest):

- the node's welcome to ``("hello", name)`` lists what it understands:
  ``("welcome", name, pid, {"trace": 1})``; a node without the fourth
  item (an older livekit) is called as before, untraced there;
- a traced request wraps a plain one: ``("traced", context, request)``,
  ``context`` being ``{"version": 1, "id": str, "max_messages": int}``;
- the node answers with ``("trace", id, received, sent, participants,
  events, omitted, note)``, then the reply it would have sent anyway;
- ``("untrace", id)`` ends the node's side early: the caller's trace is
  over while the request still runs.  The node then sends its ``trace``
  frame at once.  A node whose caller goes away ends its side too, so
  nothing stays installed on a node after a trace.

A node records one trace at a time (hooks are per process): a request
that arrives while the node runs another trace is served untraced there,
and its ``trace`` frame says ``busy``.
"""

from __future__ import annotations

import pickle
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from livekit.nodes.protocol import Link
from livekit.trace.events import Activation, Event, Exit, Message, Participant, Spawn
from livekit.trace.format import describe, shorten
from livekit.trace.sources import NewParticipant, Running

if TYPE_CHECKING:
    from livekit.trace.events import ParticipantKind

#: The version of the trace context this livekit sends and understands.
VERSION = 1
#: What a node's welcome says it understands.
FEATURES = {"trace": VERSION}
#: Seconds the end of a trace waits for the nodes' side of requests still running.
UNTRACE_WAIT = 2.0
#: The most arrows a node records for one request, whatever the caller asks.
MAX_REMOTE_MESSAGES = 100_000

_KINDS = ("caller", "thread", "task", "process")


# -- labels ------------------------------------------------------------------


def call_label(module: str, function: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The label of a ``CALL`` arrow: the function and its arguments, short.

    Examples
    --------
    >>> call_label("math", "sqrt", (16,), {})
    'math.sqrt(16)'
    >>> call_label("operator", "add", (1, 2, 3, 4, 5), {"x": "y"})
    "operator.add(1, 2, 3, 4, x='y', …)"
    """
    parts = [describe(a) for a in args[:4]]
    parts += [f"{k}={describe(v)}" for k, v in list(kwargs.items())[:4]]
    if len(args) + len(kwargs) > len(parts):
        parts.append("…")
    return shorten(f"{module}.{function}({', '.join(parts)})")


def reply_label(reply: object, label: Callable[[object], str] = describe) -> tuple[str, str]:
    """The label of a ``REPLY`` arrow, and how the remote code ended.

    ``reply`` is the node's answer as unpickled (see
    :mod:`livekit.nodes.protocol`); ``label`` labels a value returned.

    Examples
    --------
    >>> reply_label(("ok", 4.0))
    ('4.0', 'normal')
    >>> reply_label(("raise", None, "builtins.ValueError", "no such user: bob", "Traceback…"))
    ('raised ValueError: no such user: bob', 'ValueError')
    >>> reply_label(("unsendable", "cannot send back the result, a Lock"))
    ('unsendable: cannot send back the result…', 'unsendable')
    """
    match reply:
        case ("ok", value):
            return label(value), "normal"
        case ("raise", _, str(type_name), str(message), _):
            name = type_name.rpartition(".")[2]
            text = f"raised {name}: {message}" if message else f"raised {name}"
            return shorten(text), name
        case ("unsendable", str(message)):
            return shorten(f"unsendable: {message}"), "unsendable"
    return shorten(f"unexpected reply {describe(reply)}"), "unexpected reply"


# -- the node's side -----------------------------------------------------------


def check_context(context: object) -> tuple[str, int]:
    """Read a trace context: its id and how many arrows to record at most.

    Raises
    ------
    ValueError
        If it is not a context this node understands.

    Examples
    --------
    >>> check_context({"version": 1, "id": "t1", "max_messages": 50})
    ('t1', 50)
    >>> check_context({"version": 1, "id": "t1", "max_messages": 0})
    Traceback (most recent call last):
    ValueError: expected max_messages between 1 and 100000, got 0
    """
    if not isinstance(context, dict):
        raise ValueError(f"expected a trace context as a dict, got {type(context).__name__}")
    version, trace_id, room = context.get("version"), context.get("id"), context.get("max_messages")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"expected a trace context version of 1 or more, got {version!r}")
    if not isinstance(trace_id, str) or not 0 < len(trace_id) <= 64:
        raise ValueError(f"expected a trace id of 1 to 64 characters, got {trace_id!r:.80}")
    if isinstance(room, bool) or not isinstance(room, int) or not 0 < room <= MAX_REMOTE_MESSAGES:
        raise ValueError(f"expected max_messages between 1 and {MAX_REMOTE_MESSAGES}, got {room!r}")
    return trace_id, room


def encode_events(
    events: Sequence[Event],
    foreign: set[int] = frozenset(),  # type: ignore[assignment]
) -> tuple[list[tuple[int, str, str, bool]], list[tuple[Any, ...]]]:
    """Write events as plain tuples for the wire: ``(participants, events)``.

    A participant is ``(key, name, kind, foreign)``, ``foreign`` saying that
    it lives on yet another node and its name says so already.

    Examples
    --------
    >>> me, pong = Participant(0, "caller (link)", "caller"), Participant(1, "pong", "thread")
    >>> encode_events([Spawn(me, pong, 1.0), Message(me, pong, "'ping'", "send", 2.0, 1.5),
    ...                Exit(pong, "normal", 3.0)])
    ([(0, 'caller (link)', 'caller', False), (1, 'pong', 'thread', False)], \
[('spawn', 0, 1, 1.0), ('message', 0, 1, "'ping'", 'send', 2.0, 1.5), ('exit', 1, 'normal', 3.0)])
    """
    participants: dict[int, tuple[int, str, str, bool]] = {}

    def key(p: Participant) -> int:
        if p.key not in participants:
            participants[p.key] = (p.key, p.name, p.kind, p.key in foreign)
        return p.key

    out: list[tuple[Any, ...]] = []
    for event in events:
        if isinstance(event, Spawn):
            out.append(("spawn", key(event.parent), key(event.child), event.time))
        elif isinstance(event, Message):
            sender, receiver = key(event.sender), key(event.receiver)
            out.append(
                ("message", sender, receiver, event.label, event.kind, event.time, event.sent)
            )
        elif isinstance(event, Activation):
            out.append(("activation", key(event.who), event.ends, event.time))
        else:
            out.append(("exit", key(event.who), event.reason, event.time))
    return list(participants.values()), out


class NodeTrace:
    """The node's side of one traced request: a trace of the thread serving it.

    :meth:`start` runs in the thread that serves the request (it becomes
    the trace's caller); :meth:`stop` may run in any thread, and only the
    first call does anything.  A request whose caller asked to stop
    before it started is never traced.

    Examples
    --------
    >>> import queue, threading
    >>> served = NodeTrace({"version": 1, "id": "t1", "max_messages": 10}, received=0.0)
    >>> served.start()
    >>> inbox = queue.Queue()
    >>> worker = threading.Thread(target=inbox.get, name="worker")
    >>> worker.start(); inbox.put("job"); worker.join()
    >>> frame = served.stop()
    >>> frame[0], frame[1], frame[4], frame[6:]
    ('trace', 't1', [(0, 'caller (MainThread)', 'caller', False), \
(1, 'worker', 'thread', False)], (0, None))
    >>> [event[0] for event in frame[5]]
    ['spawn', 'message', 'exit']
    >>> served.stop() is None
    True
    """

    def __init__(self, context: object, *, received: float) -> None:
        self.id, self._room = check_context(context)
        self._received = received
        self._lock = threading.Lock()
        self._trace: Any = None
        self._running: Running | None = None
        self._stopped = False
        self._note: str | None = None

    def start(self) -> None:
        """Begin recording in this thread, unless stopped already or another trace runs."""
        from livekit.trace import SequenceTrace, sources

        with self._lock:
            if self._stopped:
                return
            trace = SequenceTrace(max_messages=self._room, target="a call from another node")
            try:
                trace.__enter__()
            except RuntimeError:  # this process runs another trace (hooks are per process)
                self._note = "busy"
                return
            self._trace, self._running = trace, sources.running()

    def stop(self) -> tuple[Any, ...] | None:
        """End the trace; return its ``trace`` frame the first time, None after."""
        with self._lock:
            if self._stopped:
                return None
            self._stopped = True
            trace, running = self._trace, self._running
            self._trace = self._running = None
        if trace is None:
            participants: list[tuple[int, str, str, bool]] = []
            events: list[tuple[Any, ...]] = []
            omitted = 0
        else:
            trace.__exit__(None, None, None)
            foreign: set[int] = set()
            for source in running.started if running is not None else ():
                if isinstance(source, NodeCalls):
                    foreign |= source.made
            participants, events = encode_events(trace.events, foreign)
            omitted = trace.omitted
        now = time.monotonic()
        return ("trace", self.id, self._received, now, participants, events, omitted, self._note)


# -- the caller's side -----------------------------------------------------------


def remote_events(
    frame: Sequence[Any],
    *,
    target: Participant,
    node: str,
    new_participant: NewParticipant,
    clock: Callable[[float], float],
) -> tuple[list[Event], set[Participant]]:
    """Turn a node's ``trace`` frame into events of the caller's trace.

    The node's own end of the request (its key 0) becomes ``target``;
    every other participant gets a new one named ``name@node``. ``clock``
    moves a time of the node's onto the caller's clock.

    Returns the events, in the node's order, and the participants made.

    Examples
    --------
    >>> node_end = Participant(1, "beta@host", "process")
    >>> keys = iter(range(2, 10))
    >>> made = lambda name, kind: Participant(next(keys), name, kind)
    >>> frame = ("trace", "t1", 1.0, 2.0,
    ...          [(0, "caller (link)", "caller", False), (1, "pong", "thread", False)],
    ...          [("spawn", 0, 1, 1.1), ("message", 0, 1, "'ping'", "send", 1.3, 1.2),
    ...           ("exit", 1, "normal", 1.4)], 0, None)
    >>> events, _ = remote_events(frame, target=node_end, node="beta@host",
    ...                           new_participant=made, clock=lambda t: t + 100)
    >>> for event in events:
    ...     print(event, event.time)
    beta@host -> pong@beta@host: SPAWN 101.1
    beta@host -> pong@beta@host: 'ping' 101.3
    pong@beta@host: EXIT: normal 101.4
    """
    _, _, _, _, participants, events, _, _ = frame
    made: set[Participant] = set()
    known: dict[int, Participant] = {}
    for key, name, kind, foreign in participants:
        if key == 0:
            known[key] = target
            continue
        text = str(name) if foreign else f"{name}@{node}"
        found = new_participant(shorten(text, 120), kind if kind in _KINDS else "thread")
        known[key] = found
        made.add(found)
    out: list[Event] = []
    for event in events:
        match event:
            case ("spawn", int(parent), int(child), float(at)):
                out.append(Spawn(known[parent], known[child], clock(at)))
            case ("message", int(sender), int(receiver), str(label), kind, float(at), sent):
                if kind not in ("send", "call", "reply"):
                    continue
                sent_at = clock(sent) if isinstance(sent, float) else None
                out.append(
                    Message(
                        known[sender], known[receiver], shorten(label), kind, clock(at), sent_at
                    )
                )
            case ("exit", int(who), str(reason), float(at)):
                out.append(Exit(known[who], shorten(reason), clock(at)))
            case ("activation", int(who), bool(ends), float(at)):
                out.append(Activation(known[who], ends, clock(at)))
    return out, made


def clock_between(
    sent: float, received: float, answered: float, back: float
) -> Callable[[float], float]:
    """Move a node's times onto the caller's clock, with one round trip.

    ``sent`` and ``back`` are the caller's times of the request and of the
    answer; ``received`` and ``answered`` the node's.  The offset is NTP's
    estimate; the result is kept within the round trip, where the node's
    events happened.

    Examples
    --------
    >>> to_caller = clock_between(10.0, 1000.25, 1000.5, 10.75)
    >>> to_caller(1000.25), to_caller(1000.5), to_caller(999.0)
    (10.25, 10.5, 10.0)
    """
    offset = ((received - sent) + (answered - back)) / 2

    def clock(at: float) -> float:
        return min(max(at - offset, sent), back)

    return clock


class Request:
    """One traced call or spawn on its way to a node and back."""

    def __init__(
        self, calls: NodeCalls, link: Link, sender: Participant, node: str, started: float
    ) -> None:
        #: The trace's node calls this request belongs to.
        self.calls = calls
        self.link = link
        self.sender = sender
        self.node = node
        self.started = started
        self.target: Participant | None = None
        #: Set once the node's ``trace`` frame arrived (or the request ended).
        self.traced = threading.Event()
        self._lock = threading.Lock()
        self._over = False

    def trace_frame(self, frame: Sequence[Any]) -> None:
        """The node's ``trace`` frame arrived: merge its events."""
        if self.target is not None:
            self.calls.merge(self, frame, time.monotonic())
        self.traced.set()

    def untrace(self, trace_id: str) -> None:
        """Ask the node to end its side now, unless the request is over."""
        with self._lock:
            if self._over:
                return
            try:
                self.link.send(pickle.dumps(("untrace", trace_id)))
            except OSError:
                self.traced.set()  # the link is gone: nothing will come

    def over(self) -> None:
        """The reply was read: the link is no longer this request's."""
        with self._lock:
            self._over = True
        self.traced.set()
        self.calls.forget(self)


class NodeCalls:
    """The calls and spawns to nodes made during one trace, as one of its sources.

    Made by :func:`calls_for` on the first traced request; the trace asks
    it for its events when it ends (:mod:`livekit.trace.sources`).
    """

    def __init__(self, trace: Running) -> None:
        self.trace = trace
        self.id = uuid.uuid4().hex
        #: Participants this source made (the nodes' ones): their names say where they live.
        self.made: set[int] = set()
        #: Arrows the nodes did not record (their ``max_messages``).
        self.omitted = 0
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._nodes: dict[str, Participant] = {}
        self._pending: set[Request] = set()
        self._done = False
        self._new: NewParticipant = trace.new_participant

    # -- the Source protocol ---------------------------------------------

    def start(self, new_participant: NewParticipant, caller: Participant) -> None:
        self._new = new_participant

    def finish(self) -> list[Event]:
        """Have the nodes end their side of requests still running; return every event."""
        with self._lock:
            pending = [r for r in self._pending if not r.traced.is_set()]
        for request in pending:
            request.untrace(self.id)
        deadline = time.monotonic() + UNTRACE_WAIT
        for request in pending:
            request.traced.wait(max(0.0, deadline - time.monotonic()))
        global _current  # noqa: PLW0603
        with self._lock:
            self._done = True
            events = sorted(self._events, key=_when)
            self._events = []
            self._pending.clear()
        with _lock:
            if _current is self:
                _current = None  # keep nothing of a trace that is over
        return events

    # -- what the client tells it --------------------------------------

    def context(self) -> dict[str, Any]:
        """The trace context sent with each request."""
        return {"version": VERSION, "id": self.id, "max_messages": self._room()}

    def _room(self) -> int:
        return max(1, min(self.trace.max_messages, MAX_REMOTE_MESSAGES))

    def participant(self, name: str, kind: ParticipantKind) -> Participant:
        made = self._new(name, kind)
        self.made.add(made.key)
        return made

    def node(self, node: str) -> Participant:
        """The participant of ``node`` itself: the end of its calls' arrows."""
        with self._lock:
            found = self._nodes.get(node)
            if found is None:
                found = self._nodes[node] = self.participant(node, "process")
            return found

    def emit(self, event: Event) -> None:
        with self._lock:
            if not self._done:
                self._events.append(event)

    def begin(
        self,
        link: Link,
        sender: Participant,
        node: str,
        started: float,
        target: Participant | None = None,
        *,
        follow: bool = True,
    ) -> Request:
        """A request about to be sent on ``link``; ``target`` is its end on the node.

        With ``follow``, the node traces its side: the end of the trace
        then asks the node to stop if the request still runs.
        """
        request = Request(self, link, sender, node, started)
        request.target = target
        with self._lock:
            if follow and not self._done:
                self._pending.add(request)
        return request

    def forget(self, request: Request) -> None:
        with self._lock:
            self._pending.discard(request)

    def merge(self, request: Request, frame: Sequence[Any], back: float) -> None:
        """Add the node's events of ``request``, moved onto this clock."""
        if frame[1] != self.id or request.target is None:
            return
        clock = clock_between(request.started, float(frame[2]), float(frame[3]), back)

        def new(name: str, kind: ParticipantKind) -> Participant:
            return self.participant(name, kind)

        events, _ = remote_events(
            frame, target=request.target, node=request.node, new_participant=new, clock=clock
        )
        with self._lock:
            if self._done:
                return
            self._events.extend(events)
            self.omitted += int(frame[6])


def _when(event: Event) -> float:
    # As the trace merges (livekit.trace.sources): where the arrow was sent.
    if isinstance(event, Message) and event.sent is not None:
        return event.sent
    return event.time


_lock = threading.Lock()
_current: NodeCalls | None = None


def calls_for(trace: Running) -> NodeCalls | None:
    """The source of node calls of the running ``trace``, joining it on first use.

    Examples
    --------
    >>> import livekit
    >>> from livekit.trace import sources
    >>> with livekit.tracing() as trace:
    ...     calls = calls_for(sources.running())
    ...     calls is calls_for(sources.running()), calls.node("beta@host").name
    (True, 'beta@host')
    >>> trace.events
    ()
    """
    global _current  # noqa: PLW0603 - one trace per process
    current = _current
    if current is not None and current.trace is trace:
        return current
    with _lock:
        if _current is not None and _current.trace is trace:
            return _current
        calls = NodeCalls(trace)
        if not trace.join(calls):
            return None
        _current = calls
        return calls
