"""Write a recorded trace in the Trace Event Format, for Perfetto and Chrome.

The `Trace Event Format
<https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU>`_
is the JSON that ``ui.perfetto.dev`` and ``chrome://tracing`` open.  A
sequence trace maps onto it like this:

- every participant is a track: a thread or a task is a thread track of the
  traced process, a child process gets a process of its own;
- a SPAWN or an EXIT is an instant event on its participant's track;
- a worker's work, from its pick-up to the end after its REPLY, is a
  slice on the worker's track (a ``B`` event and its ``E``);
- every message is a zero-length slice where it was sent and another where
  it was received, joined by a flow (an ``s`` event and its ``f``), so that
  Perfetto draws the same arrows as the diagram.

Pure functions over :mod:`livekit.trace.events`: no clock, no threads.  The
writer builds its lines with string formatting rather than a dict per event,
which keeps a million events well within a few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO

from livekit.trace.events import Activation, Event, Exit, Message, Participant, Spawn

__all__ = ["write_trace_events"]

#: The process id given to the traced process; a child process gets its own.
TRACED_PID = 1

_CATEGORY = {"send": "message", "call": "call", "reply": "reply"}
_PREFIX = {"send": "", "call": "CALL: ", "reply": "REPLY: "}


class _Tracks:
    """Give each participant a (pid, tid) pair, and name it once."""

    def __init__(self) -> None:
        self.ids: dict[int, str] = {}
        self.metadata: list[str] = []
        self._next_pid = TRACED_PID + 1
        self.metadata.append(_meta("process_name", TRACED_PID, 0, "traced process"))

    def of(self, who: Participant) -> str:
        found = self.ids.get(who.key)
        if found is not None:
            return found
        name = _quote(who.name)
        if who.kind == "process":
            pid, tid = self._next_pid, 1
            self._next_pid += 1
            self.metadata.append(_meta("process_name", pid, 0, name, quoted=True))
        else:
            pid, tid = TRACED_PID, who.key + 1
        self.metadata.append(_meta("thread_name", pid, tid, name, quoted=True))
        # "sort_index" keeps Perfetto's tracks in the diagram's order.
        self.metadata.append(
            f'{{"ph":"M","name":"thread_sort_index","pid":{pid},"tid":{tid},'
            f'"args":{{"sort_index":{who.key}}}}}'
        )
        found = self.ids[who.key] = f'"pid":{pid},"tid":{tid}'
        return found


def _chunks(events: Iterable[Event], omitted: int) -> tuple[list[str], int]:
    """Return the trace's JSON objects, in chunks joined by ``,\\n``, and their count.

    Times are in microseconds from the first event.  A message with a
    known send time starts its flow there; otherwise it starts where it
    was received, as the diagram draws it.
    """
    events = list(events)
    tracks = _Tracks()
    start = min((_first_time(e) for e in events), default=0.0)
    names: dict[str, str] = {}
    body: list[str] = []
    flow = 0
    busy: dict[int, int] = {}  # slices begun by a pick-up, not yet ended
    for event in events:
        if isinstance(event, Message):
            flow += 1
            text = _PREFIX[event.kind] + event.label
            name = names.get(text)
            if name is None:
                name = names[text] = _quote(text)
            cat = _CATEGORY[event.kind]
            sender, receiver = tracks.of(event.sender), tracks.of(event.receiver)
            sent = "%.3f" % (((event.time if event.sent is None else event.sent) - start) * 1e6)
            got = "%.3f" % ((event.time - start) * 1e6)
            # One string for the four objects: a message is the common event.
            body.append(
                f'{{"ph":"X","name":{name},"cat":"{cat}","ts":{sent},"dur":0,{sender}}},\n'
                f'{{"ph":"s","name":{name},"cat":"{cat}","id":{flow},"ts":{sent},{sender}}},\n'
                f'{{"ph":"X","name":{name},"cat":"{cat}","ts":{got},"dur":0,{receiver}}},\n'
                f'{{"ph":"f","bp":"e","name":{name},"cat":"{cat}","id":{flow},"ts":{got},{receiver}}}'
            )
        elif isinstance(event, Spawn):
            parent, child = tracks.of(event.parent), tracks.of(event.child)
            ts = (event.time - start) * 1e6
            label = _quote(f"SPAWN {event.child.name}")
            body.append(f'{{"ph":"i","s":"t","name":{label},"cat":"spawn","ts":{ts:.3f},{parent}}}')
            body.append(f'{{"ph":"i","s":"t","name":"start","cat":"spawn","ts":{ts:.3f},{child}}}')
        elif isinstance(event, Exit):
            who = tracks.of(event.who)
            ts = (event.time - start) * 1e6
            label = _quote(f"EXIT: {event.reason}")
            body.append(f'{{"ph":"i","s":"t","name":{label},"cat":"exit","ts":{ts:.3f},{who}}}')
        elif isinstance(event, Activation):
            key, who = event.who.key, tracks.of(event.who)
            ts = (event.time - start) * 1e6
            if not event.ends:
                busy[key] = busy.get(key, 0) + 1
                body.append(f'{{"ph":"B","name":"work","cat":"call","ts":{ts:.3f},{who}}}')
            elif busy.get(key):  # an end without its start would close another slice
                busy[key] -= 1
                body.append(f'{{"ph":"E","name":"work","cat":"call","ts":{ts:.3f},{who}}}')
    objects = len(tracks.metadata) + len(body) + 3 * flow
    if omitted:
        objects += 1
        body.append(
            f'{{"ph":"M","name":"process_labels","pid":{TRACED_PID},"tid":0,'
            f'"args":{{"labels":"{omitted} messages were not recorded (max_messages)"}}}}'
        )
    return tracks.metadata + body, objects


def write_trace_events(events: Iterable[Event], file: IO[str], *, omitted: int = 0) -> int:
    """Write the trace of ``events`` to ``file`` as one JSON document.

    Returns the number of trace events written.  Times are in
    microseconds from the first event.  A message with a known send time
    starts its flow there; otherwise it starts where it was received, as
    the diagram draws it.

    Parameters
    ----------
    events
        Recorded events, as :attr:`livekit.SequenceTrace.events` holds them.
    file
        A text file open for writing.
    omitted
        How many messages the trace did not keep; it is written in
        ``otherData``.

    Examples
    --------
    >>> import io, json
    >>> from livekit.trace.events import Participant, Spawn, Exit
    >>> a, b = Participant(0, "main", "caller"), Participant(1, "worker", "thread")
    >>> out = io.StringIO()
    >>> write_trace_events([Spawn(a, b, 1.0), Exit(b, "normal", 1.5)], out)
    8
    >>> [e["name"] for e in json.loads(out.getvalue())["traceEvents"] if e["ph"] == "i"]
    ['SPAWN worker', 'start', 'EXIT: normal']
    >>> from livekit.trace.events import Message
    >>> out = io.StringIO()
    >>> write_trace_events([Message(a, b, "'ping'", time=2.0, sent=1.0)], out)
    9
    >>> for event in json.loads(out.getvalue())["traceEvents"]:
    ...     if event["ph"] != "M":
    ...         print(event["ph"], event["ts"], event["tid"], event.get("id"))
    X 0.0 1 None
    s 0.0 1 1
    X 1000000.0 2 None
    f 1000000.0 2 1
    """
    chunks, count = _chunks(events, omitted)
    file.write('{"displayTimeUnit":"ms",')
    file.write(f'"otherData":{{"generator":"livekit","omitted_messages":{int(omitted)}}},')
    file.write('"traceEvents":[\n')
    # In slices: one join of a large trace would double its memory.
    for first in range(0, len(chunks), 100_000):
        if first:
            file.write(",\n")
        file.write(",\n".join(chunks[first : first + 100_000]))
    file.write("\n]}\n")
    return count


def _first_time(event: Event) -> float:
    if isinstance(event, Message) and event.sent is not None:
        return min(event.sent, event.time)
    return event.time


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _meta(kind: str, pid: int, tid: int, name: str, *, quoted: bool = False) -> str:
    value = name if quoted else _quote(name)
    return f'{{"ph":"M","name":"{kind}","pid":{pid},"tid":{tid},"args":{{"name":{value}}}}}'
