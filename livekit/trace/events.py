"""The plain records a sequence trace is made of.

Capture code (``livekit.trace.capture``) creates these while the traced code
runs; the formatter (``livekit.trace.format``) turns a list of them into
Mermaid text.  They hold no reference to the traced program's objects: a
label is computed when the message is seen, so each event costs a bounded
amount of memory (see :data:`MAX_LABEL`) and keeps nothing alive.

``str(event)`` reads like the event's line in the diagram:

>>> a = Participant(0, "caller (MainThread)", "caller")
>>> b = Participant(1, "pong", "thread")
>>> events = [Spawn(a, b), Message(a, b, "'ping'"), Message(b, a, "42", "reply"), Exit(b, "normal")]
>>> for event in events:
...     print(event)
caller (MainThread) -> pong: SPAWN
caller (MainThread) -> pong: 'ping'
pong -> caller (MainThread): REPLY: 42
pong: EXIT: normal
>>> for event in [Activation(b), Activation(b, ends=True)]:
...     print(event)
pong: PICK-UP
pong: DONE
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple

#: The longest label kept, in characters; a longer one is cut with "…".
MAX_LABEL = 40

ParticipantKind = Literal["caller", "thread", "task", "process", "peer", "group"]
MessageKind = Literal["send", "call", "reply"]


@dataclass(frozen=True, slots=True)
class Participant:
    """A thread, task or process that sends or receives messages.

    Parameters
    ----------
    key
        A small number, unique within one trace, in order of discovery.
    name
        A readable name: the thread's or task's name, with its target.
    kind
        ``"caller"`` for the thread that started the trace, otherwise
        ``"thread"``, ``"task"`` or ``"process"``; ``"peer"`` for the
        other end of a socket, outside the trace, named by its address;
        ``"group"`` for the participants that ``collapse=`` draws as one.
    module
        The module of the code it runs (a thread's target, a task's
        coroutine), or ``""``: what ``participants=``, ``exclude=`` and
        ``collapse=`` patterns can name.
    """

    key: int
    name: str
    kind: ParticipantKind
    module: str = ""


@dataclass(frozen=True, slots=True)
class Spawn:
    """``parent`` started ``child`` (a thread, a task or a process)."""

    parent: Participant
    child: Participant
    time: float = 0.0

    def __str__(self) -> str:
        return f"{self.parent.name} -> {self.child.name}: SPAWN"


class Message(NamedTuple):
    """``sender`` passed something to ``receiver``.

    ``kind`` is ``"send"`` for a queue or pipe message, ``"call"`` for work
    handed to an executor and ``"reply"`` for the result coming back.
    ``label`` is already short (at most :data:`MAX_LABEL` characters and an
    ellipsis) but not yet escaped for Mermaid.  ``time`` is when the
    receiver took the message; ``sent``, when known and earlier, is when the
    sender let it go (a queue message waits in its queue in between).

    A message is the one record made for every message a trace sees, so it
    is a named tuple: as immutable as the other records, and made about
    five times faster than a frozen dataclass, which sets each field
    through ``object.__setattr__``.
    """

    sender: Participant
    receiver: Participant
    label: str
    kind: MessageKind = "send"
    time: float = 0.0
    sent: float | None = None

    def __str__(self) -> str:
        prefix = {"send": "", "call": "CALL: ", "reply": "REPLY: "}[self.kind]
        return f"{self.sender.name} -> {self.receiver.name}: {prefix}{self.label}"


@dataclass(frozen=True, slots=True)
class Exit:
    """``who`` ended: ``reason`` is ``"normal"``, an exception's type name,
    ``"cancelled"`` or a process's exit code."""

    who: Participant
    reason: str
    time: float = 0.0

    def __str__(self) -> str:
        return f"{self.who.name}: EXIT: {self.reason}"


@dataclass(frozen=True, slots=True)
class Activation:
    """``who`` picked up work handed to it (an executor's job), or, with
    ``ends``, finished it: the start and the end of its bar in the diagram.

    The CALL arrow stands where the work was submitted; the pick-up comes
    later, when a worker is free, and the end follows the work's REPLY.
    A recorder keeps an end only when it kept the pick-up, so that every
    bar that ends has begun.
    """

    who: Participant
    ends: bool = False
    time: float = 0.0

    def __str__(self) -> str:
        return f"{self.who.name}: {'DONE' if self.ends else 'PICK-UP'}"


Event = Spawn | Message | Exit | Activation


def participants_of(event: Event) -> tuple[Participant, ...]:
    """Return the participants an event involves, in diagram order.

    Examples
    --------
    >>> main, worker = Participant(0, "MainThread", "caller"), Participant(1, "worker", "thread")
    >>> [p.name for p in participants_of(Spawn(main, worker))]
    ['MainThread', 'worker']
    """
    if isinstance(event, Spawn):
        return (event.parent, event.child)
    if isinstance(event, Message):
        return (event.sender, event.receiver)
    return (event.who,)


def fit_in_room(
    events: Iterable[Event], room: int, shows: Callable[[Exit], bool] = lambda exit: True
) -> tuple[list[Event], int]:
    """Keep the arrows of ``events`` that fit in ``room``, and count the rest.

    An exit takes no room: it is kept where ``shows`` says its participant
    is drawn; nor does an activation (a bar), which is always kept.  Spawns
    and messages are kept in order while room is left; the ones after are
    counted, not kept.  Returns what is kept, in the
    order given, and how many did not fit.

    Examples
    --------
    >>> a, b = Participant(0, "a", "caller"), Participant(1, "b", "thread")
    >>> kept, overflow = fit_in_room([Spawn(a, b), Exit(b, "normal"), Spawn(a, b)], 1)
    >>> [str(e) for e in kept], overflow
    (['a -> b: SPAWN', 'b: EXIT: normal'], 1)
    """
    kept: list[Event] = []
    overflow = 0
    for event in events:
        if isinstance(event, Exit):
            if shows(event):
                kept.append(event)
        elif isinstance(event, Activation):  # a bar, not an arrow: no room
            kept.append(event)
        elif room > 0:
            kept.append(event)
            room -= 1
        else:
            overflow += 1
    return kept, overflow
