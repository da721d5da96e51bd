"""Queue messages as a trace keeps them: tuples the garbage collector lets go of.

A trace that keeps every message holds one record per message until it is
read.  A :class:`~livekit.trace.events.Message` is a named tuple of two
participants, a label and two floats; CPython's collector stops tracking a
tuple whose items it does not track, but only an exact ``tuple``, never a
subclass, and a participant is itself tracked.  So every message recorded
was walked again by every older-generation pass of the collector while
the traced program ran (at 100,000 messages, most of the time the
collector took).

The recorder therefore keeps a queue message as a :data:`Compact`
record, ``(sender key, receiver key, label, time, sent)``: ints, a str and
floats, which the collector's first pass over the record untracks.  Its
participants are looked up by key among the trace's (renamed tasks
included).  :func:`expand` makes the :class:`Message` of each, when the
events are read; the diagram reads the records as they are
(:mod:`livekit.trace.format`).

>>> from livekit.trace.events import Message, Participant
>>> a, b = Participant(0, "a", "caller"), Participant(1, "b", "thread")
>>> [message] = expand([(0, 1, "'ping'", 2.0, 1.0)], {0: a, 1: b})
>>> message == Message(a, b, "'ping'", "send", 2.0, 1.0)
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from livekit.trace.events import Event, Message, Participant

#: A queue message: ``(sender key, receiver key, label, time, sent)``; its
#: kind is ``"send"``.  The only plain ``tuple`` among a trace's records.
Compact = tuple[int, int, str, float, float]
#: What a running trace records: events, and queue messages kept compact.
Recorded = Event | Compact

_new_tuple = tuple.__new__


def expand(records: Iterable[Recorded], participants: Mapping[int, Participant]) -> list[Event]:
    """``records`` with each :data:`Compact` one made a :class:`Message`.

    ``participants`` maps the keys of the trace's participants to them.
    """
    find = participants.__getitem__
    events: list[Any] = [
        # tuple.__new__ skips the named tuple's Python-level __new__.
        _new_tuple(Message, (find(r[0]), find(r[1]), r[2], "send", r[3], r[4]))  # type: ignore[arg-type]
        if type(r) is tuple
        else r
        for r in records
    ]
    return events


def when(record: Recorded) -> float:
    """When the arrow of ``record`` is drawn: a message's send, else its time.

    >>> when((0, 1, "1", 2.0, 1.0))
    1.0
    """
    if type(record) is tuple:
        return record[4]
    if isinstance(record, Message) and record.sent is not None:
        return record.sent
    return record.time  # type: ignore[union-attr] # not a Compact, answered above
