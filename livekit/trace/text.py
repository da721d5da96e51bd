"""A sequence trace as plain text, for a terminal.

One line per event, in the order the diagram draws them: ``sender →
receiver: label`` for a message or a SPAWN, ``who: EXIT: reason`` for an
exit, ``who: PICK-UP`` and ``who: DONE`` for a worker's pick-up of work
and its end.  Participant columns are aligned while they fit the width.  Pure
functions over :mod:`livekit.trace.events`.
"""

from __future__ import annotations

from collections.abc import Sequence

from livekit.trace.events import Activation, Event, Exit, Message, Spawn

__all__ = ["sequence_text"]

_PREFIX = {"send": "", "call": "CALL: ", "reply": "REPLY: "}

# Control characters (ESC above all) from a traced program's names and
# labels must not drive the reader's terminal: show them as escapes.
_CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]}
_ARROW = {"send": "→", "call": "→", "reply": "⇢"}


def sequence_text(events: Sequence[Event], omitted: int = 0, *, width: int = 100) -> str:
    """Return the terminal drawing of a trace's events.

    Parameters
    ----------
    events
        The recorded events, in order.
    omitted
        How many messages were not kept; a last line says so.
    width
        The terminal's width: the participant columns are aligned only
        when two of the widest names and a short label fit in it.

    Examples
    --------
    >>> from livekit.trace.events import Participant
    >>> main = Participant(0, "caller (MainThread)", "caller")
    >>> pong = Participant(1, "pong", "thread")
    >>> events = [Spawn(main, pong), Message(main, pong, "'ping'"),
    ...           Message(pong, main, "'pong'", "reply"), Exit(pong, "normal")]
    >>> print(sequence_text(events))
    caller (MainThread) → pong               : SPAWN
    caller (MainThread) → pong               : 'ping'
    pong                ⇢ caller (MainThread): REPLY: 'pong'
    pong                : EXIT: normal
    """
    senders = [_from(e).translate(_CONTROL) for e in events]
    receivers = [
        _to(e).translate(_CONTROL) for e in events if not isinstance(e, (Exit, Activation))
    ]
    left = max((len(name) for name in senders), default=0)
    right = max((len(name) for name in receivers), default=0)
    if left + right + 4 + 20 > width:
        left = right = 0
    lines = []
    for event, sender in zip(events, senders, strict=True):
        if isinstance(event, Exit):
            lines.append(f"{sender:<{left}} : EXIT: {event.reason.translate(_CONTROL)}")
            continue
        if isinstance(event, Activation):
            lines.append(f"{sender:<{left}} : {'DONE' if event.ends else 'PICK-UP'}")
            continue
        if isinstance(event, Spawn):
            arrow, label = "→", "SPAWN"
        else:
            arrow, label = _ARROW[event.kind], _PREFIX[event.kind] + event.label
        receiver = _to(event).translate(_CONTROL)
        lines.append(f"{sender:<{left}} {arrow} {receiver:<{right}}: {label.translate(_CONTROL)}")
    if omitted:
        lines.append(f"… and {omitted} more messages, not recorded (max_messages)")
    return "\n".join(lines)


def _from(event: Event) -> str:
    if isinstance(event, Message):
        return event.sender.name
    if isinstance(event, Spawn):
        return event.parent.name
    return event.who.name


def _to(event: Event) -> str:
    if isinstance(event, Message):
        return event.receiver.name
    if isinstance(event, Spawn):
        return event.child.name
    return ""
