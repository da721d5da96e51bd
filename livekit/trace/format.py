"""Turn recorded events into Mermaid sequence-diagram text.

Pure functions only: no threads, no clocks, no I/O.  Each kind of line has
its own small function, so each is tested alone with hand-made events.

Every participant name and every label goes through :func:`escape`, the
one escaping of every diagram livekit draws (``livekit._labels``): it
writes Mermaid's entity codes for the characters its grammar would
otherwise read as syntax or configuration.
"""

from __future__ import annotations

import builtins
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from livekit._labels import MAX_NAME, escape, needs_escape, short_name
from livekit.trace._compact import Recorded
from livekit.trace.events import (
    MAX_LABEL,
    Activation,
    Event,
    Exit,
    Message,
    Participant,
    Spawn,
    participants_of,
)

_INDENT = "    "

_ARROWS = {"send": "->>", "call": "->>", "reply": "-->>"}
_PREFIXES = {"send": "", "call": "CALL: ", "reply": "REPLY: "}


class _ShortRepr(reprlib.Repr):
    """reprlib, except that a failing ``__repr__`` is reported, not hidden.

    (reprlib's own fallback prints the object's address, which changes on
    every run.)
    """

    def repr_instance(self, x: Any, level: int) -> str:
        return builtins.repr(x)


_repr = _ShortRepr()
_repr.maxstring = MAX_LABEL
_repr.maxother = MAX_LABEL
_repr.maxlong = MAX_LABEL

# Types whose repr is cheap and bounded once the value is cut: the common
# messages (ints, short strings) skip reprlib's slower dispatch.
_SIMPLE = (int, float, bool, type(None))

# `` at 0x7ff7c0a1b2c0`` in a default repr (``<Context object at 0x…>``).
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def shorten(text: str, limit: int = MAX_LABEL) -> str:
    """Cut ``text`` to ``limit`` characters, ending it with an ellipsis.

    Examples
    --------
    >>> shorten("short")
    'short'
    >>> shorten("x" * 50, 10)
    'xxxxxxxxx…'
    """
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def describe(value: object, message_label: Callable[[Any], str | None] | None = None) -> str:
    """Return the short label of a message: ``message_label(value)`` or its repr.

    ``message_label`` may return None to keep the default label.  A repr (or
    a ``message_label``) that raises still gives a label, naming the error,
    so that tracing never breaks the traced code.

    Examples
    --------
    >>> describe("ping")
    "'ping'"
    >>> describe(list(range(100)))
    '[0, 1, 2, 3, 4, 5, ...]'
    >>> describe(("ping", 1), lambda m: m[0] if isinstance(m, tuple) else None)
    'ping'
    >>> class Broken:
    ...     def __repr__(self):
    ...         raise ValueError("no")
    >>> describe(Broken())
    '<Broken: repr raised ValueError>'
    >>> describe(object())
    '<object object>'
    """
    if message_label is not None:
        try:
            custom = message_label(value)
        except Exception as error:  # a label must never break the traced code
            return shorten(f"<message_label raised {type(error).__name__}>")
        if custom is not None:
            return shorten(str(custom))
    kind = type(value)
    try:
        if kind in _SIMPLE or (kind is str and len(value) <= MAX_LABEL):  # type: ignore[arg-type]
            text = repr(value)
        else:
            # reprlib keeps a huge list or string from being rendered whole.
            text = _repr.repr(value)
    except Exception as error:  # same reason
        text = f"<{type(value).__name__}: repr raised {type(error).__name__}>"
    if " at 0x" in text:
        # An address changes on every run and says nothing to a reader.
        text = _ADDRESS.sub("", text)
    return shorten(text)


def participant_line(participant: Participant) -> str:
    """Declare a participant; a very long name is shortened (:func:`full_name_line`).

    Examples
    --------
    >>> participant_line(Participant(0, "caller (MainThread)", "caller"))
    '    participant p0 as caller (MainThread)'
    """
    return f"{_INDENT}participant p{participant.key} as {escape(short_name(participant.name))}"


def full_name_line(participant: Participant) -> str | None:
    """A note under a participant whose name is shortened in its box: the whole name.

    ``wrap:`` lets mermaid break the note's text into lines of the
    participant's width.

    Examples
    --------
    >>> full_name_line(Participant(1, "short", "thread")) is None
    True
    >>> full_name_line(Participant(1, "w" * 100, "thread"))  # doctest: +ELLIPSIS
    '    Note over p1: wrap: wwww...www'
    """
    if len(participant.name) <= MAX_NAME:
        return None
    return f"{_INDENT}Note over p{participant.key}: wrap: {escape(participant.name)}"


def spawn_lines(event: Spawn) -> list[str]:
    """The arrow from parent to child, and the start of the child's bar.

    Examples
    --------
    >>> a, b = Participant(0, "a", "caller"), Participant(1, "b", "thread")
    >>> spawn_lines(Spawn(a, b))
    ['    p0->>p1: SPAWN', '    activate p1']
    """
    return [
        f"{_INDENT}p{event.parent.key}->>p{event.child.key}: SPAWN",
        f"{_INDENT}activate p{event.child.key}",
    ]


def message_line(event: Message) -> str:
    """One arrow: solid for a message or a call, dashed for a reply.

    Examples
    --------
    >>> a, b = Participant(0, "a", "caller"), Participant(1, "b", "thread")
    >>> message_line(Message(a, b, "'ping'"))
    "    p0->>p1: 'ping'"
    >>> message_line(Message(b, a, "42", "reply"))
    '    p1-->>p0: REPLY: 42'
    """
    arrow = _ARROWS[event.kind]
    text = _PREFIXES[event.kind] + escape(event.label)
    return f"{_INDENT}p{event.sender.key}{arrow}p{event.receiver.key}: {text}"


def exit_lines(event: Exit, active: bool) -> list[str]:
    """A note saying why ``event.who`` ended, and the end of its bar.

    ``active`` says whether its bar was started (Mermaid refuses to end a
    bar that never began, which happens when the SPAWN was not recorded).

    Examples
    --------
    >>> exit_lines(Exit(Participant(1, "b", "thread"), "normal"), active=True)
    ['    Note over p1: EXIT: normal', '    deactivate p1']
    """
    lines = [f"{_INDENT}Note over p{event.who.key}: EXIT: {escape(event.reason)}"]
    if active:
        lines.append(f"{_INDENT}deactivate p{event.who.key}")
    return lines


def activation_line(event: Activation, busy: dict[int, int]) -> str | None:
    """The start of a worker's bar when it picks work up, or its end after the REPLY.

    ``busy`` counts the bars each participant has open, and is updated:
    an end whose start was not drawn gives None, since Mermaid refuses to
    end a bar that never began.

    Examples
    --------
    >>> worker, busy = Participant(1, "pool_0", "thread"), {}
    >>> activation_line(Activation(worker), busy)
    '    activate p1'
    >>> activation_line(Activation(worker, ends=True), busy)
    '    deactivate p1'
    >>> activation_line(Activation(worker, ends=True), busy) is None
    True
    """
    key = event.who.key
    if not event.ends:
        busy[key] = busy.get(key, 0) + 1
        return f"{_INDENT}activate p{key}"
    if not busy.get(key):
        return None
    busy[key] -= 1
    return f"{_INDENT}deactivate p{key}"


def omitted_line(omitted: int, first: Participant, last: Participant) -> str:
    """The closing note of a trace cut at ``max_messages``.

    Examples
    --------
    >>> a, b = Participant(0, "a", "caller"), Participant(3, "b", "thread")
    >>> omitted_line(7, a, b)
    '    Note over p0,p3: 7 more messages not shown (max_messages)'
    >>> omitted_line(1, a, a)
    '    Note over p0: 1 more message not shown (max_messages)'
    """
    noun = "message" if omitted == 1 else "messages"
    span = f"p{first.key}" if first == last else f"p{first.key},p{last.key}"
    return f"{_INDENT}Note over {span}: {omitted} more {noun} not shown (max_messages)"


def participants_in_order(caller: Participant, events: Iterable[Event]) -> list[Participant]:
    """The caller, then every other participant in order of first appearance.

    Examples
    --------
    >>> a, b, c = (Participant(i, n, "thread") for i, n in enumerate("abc"))
    >>> [p.name for p in participants_in_order(a, [Message(c, b, "x"), Spawn(a, b)])]
    ['a', 'c', 'b']
    """
    seen: dict[int, Participant] = {caller.key: caller}
    sender = receiver = None
    for event in events:
        if type(event) is Message:  # most events: no tuple of participants made
            # Runs of messages between the same two are common: looked up once.
            if event[0] is sender and event[1] is receiver:
                continue
            sender, receiver = event[0], event[1]
            if sender.key not in seen:
                seen[sender.key] = sender
            if receiver.key not in seen:
                seen[receiver.key] = receiver
            continue
        for participant in participants_of(event):
            seen.setdefault(participant.key, participant)
    return list(seen.values())


def sequence_diagram(caller: Participant, events: Sequence[Event], omitted: int = 0) -> str:
    """Return the Mermaid source of a whole trace.

    Parameters
    ----------
    caller
        The thread that ran the trace; always declared first.
    events
        What was recorded, in order.
    omitted
        How many messages were left out past ``max_messages``.

    Examples
    --------
    >>> main = Participant(0, "caller (MainThread)", "caller")
    >>> worker = Participant(1, "Thread-1 (pong)", "thread")
    >>> print(sequence_diagram(main, [
    ...     Spawn(main, worker),
    ...     Message(main, worker, "'ping'"),
    ...     Message(worker, main, "'pong'"),
    ...     Exit(worker, "normal"),
    ... ]))
    sequenceDiagram
        participant p0 as caller (MainThread)
        participant p1 as Thread-1 (pong)
        p0->>p1: SPAWN
        activate p1
        p0->>p1: 'ping'
        p1->>p0: 'pong'
        Note over p1: EXIT: normal
        deactivate p1

    Work handed to a pool: the CALL where it was submitted, the worker's
    bar from its pick-up to its REPLY.

    >>> pool = Participant(2, "pool_0", "thread")
    >>> print(sequence_diagram(main, [
    ...     Message(main, pool, "work(1)", "call"),
    ...     Activation(pool),
    ...     Message(pool, main, "2", "reply"),
    ...     Activation(pool, ends=True),
    ... ]))
    sequenceDiagram
        participant p0 as caller (MainThread)
        participant p2 as pool_0
        p0->>p2: CALL: work(1)
        activate p2
        p2-->>p0: REPLY: 2
        deactivate p2
    """
    return _diagram(caller, events, {}, omitted)


def _diagram(
    caller: Participant,
    records: Sequence[Recorded],
    participants: Mapping[int, Participant],
    omitted: int,
) -> str:
    """:func:`sequence_diagram` of a trace's records as it keeps them.

    Queue messages may be compact (:mod:`livekit.trace._compact`), their
    participants in ``participants`` by key: a trace that keeps a hundred
    thousand is drawn without a Message made for each.
    """
    # A Message, and a compact message alone in its run (a ping-pong's every
    # message), is written as it is, and its label looked at with all the
    # others once, at the end: most hold nothing to escape.  When one does,
    # the diagram is drawn again, escaping each.
    source, plain = _draw(caller, records, participants, omitted, escaped=False)
    return source if plain else _draw(caller, records, participants, omitted, escaped=True)[0]


def _draw(  # noqa: PLR0912, PLR0915 - one pass over every event, written out
    caller: Participant,
    records: Sequence[Recorded],
    participants: Mapping[int, Participant],
    omitted: int,
    *,
    escaped: bool,
) -> tuple[str, bool]:
    """:func:`_diagram`, and whether no label written as it is needs escaping.

    Those are the labels of Messages and of compact messages alone in their
    run.  With ``escaped``, each of them is escaped instead; a longer run's
    labels are looked at together, and escaped, in either case.
    """
    # participants_in_order(), written out in the one pass over the events:
    # their lines are put in front of the others when it ends.
    seen: dict[int, Participant] = {caller.key: caller}
    lines = ["sequenceDiagram"]
    active: set[int] = set()
    busy: dict[int, int] = {}  # bars opened by a pick-up, not yet ended
    append = lines.append
    # The labels written as they are (see _diagram); escaped, each once: a
    # protocol's labels repeat.
    singles: list[str] = []
    single = singles.append
    written: dict[str, str] = {}

    def one(text: str) -> str:
        if not escaped:
            single(text)
            return text
        label = written.get(text)
        if label is None:
            label = written[text] = escape(text)
        return label

    def joined(run: list[str]) -> str:
        # escape(), for a whole run: one C-level search over them all tells
        # whether any label holds something to escape.
        labels = map(escape, run) if needs_escape("".join(run)) else run
        return start + ("\n" + start).join(labels)

    # message_line, written out: a trace that keeps every message makes one
    # line per message, and its start depends only on the two ends and kind.
    # Consecutive messages with the same start are one run, joined at once;
    # a run of one (a request, then its answer) is the common case.
    starts: dict[tuple[int, int, str], str] = {}
    sender = receiver = kind = None
    # The ends of a run of compact messages (kind "send"), by key; -1 when
    # the run, if any, is of Messages.
    first = second = -1
    start = ""
    run: list[str] = []
    add = run.append

    def flush() -> None:
        append(start + one(run[0]) if len(run) == 1 else joined(run))
        run.clear()

    for event in records:
        if type(event) is tuple:  # compact: (sender key, receiver key, label, time, sent)
            if event[0] != first or event[1] != second:
                if run:  # flush(), written out: most runs are of one message
                    if len(run) == 1 and not escaped:
                        text = run.pop()
                        single(text)
                        append(start + text)
                    else:
                        flush()
                sender = receiver = kind = None  # a Message after it looks its start up
                first, second = event[0], event[1]  # type: ignore[assignment] # ints here
                key = (first, second, "send")
                found = starts.get(key)
                if found is None:  # a new pair: its ends may be new participants
                    if first not in seen:
                        seen[first] = participants[first]
                    if second not in seen:
                        seen[second] = participants[second]
                    found = starts[key] = f"{_INDENT}p{first}{_ARROWS['send']}p{second}: "
                start = found
            add(event[2])
            continue
        if type(event) is Message:
            # A Message's line is written at once, its label looked at with
            # those of the runs of one (see _diagram): a trace of Messages
            # (narrowed, or of sockets) keeps at most max_messages, and
            # they turn more often than not.
            if event[0] is not sender or event[1] is not receiver or event[3] is not kind:
                if run:  # compact messages before it
                    flush()
                first = second = -1  # a compact message after it looks its start up
                sender, receiver, kind = event[0], event[1], event[3]
                key = (sender.key, receiver.key, kind)
                found = starts.get(key)
                if found is None:  # a new pair: its ends may be new participants
                    seen.setdefault(key[0], sender)
                    seen.setdefault(key[1], receiver)
                    found = starts[key] = (
                        f"{_INDENT}p{key[0]}{_ARROWS[kind]}p{key[1]}: {_PREFIXES[kind]}"
                    )
                start = found
            text = event[2]
            if escaped:
                append(start + one(text))
            else:
                single(text)
                append(start + text)
            continue
        if run:
            flush()
        event = cast("Event", event)  # the compact records are all above
        for participant in participants_of(event):
            seen.setdefault(participant.key, participant)
        if isinstance(event, Spawn):
            active.add(event.child.key)
            lines.extend(spawn_lines(event))
        elif isinstance(event, Message):
            lines.append(message_line(event))
        elif isinstance(event, Activation):
            line = activation_line(event, busy)
            if line is not None:
                append(line)
        else:
            lines.extend(exit_lines(event, event.who.key in active))
            active.discard(event.who.key)
    if run:
        flush()
    order = list(seen.values())
    header = [participant_line(p) for p in order]
    header.extend(line for line in map(full_name_line, order) if line is not None)
    lines[1:1] = header
    if omitted:
        lines.append(omitted_line(omitted, order[0], order[-1]))
    return "\n".join(lines), escaped or not needs_escape("".join(singles))


def default_caption(target: str, events: Sequence[Event], omitted: int = 0) -> str:
    """The caption used when the caller gives none.

    Examples
    --------
    >>> default_caption("ping_pong", [])
    'Messages exchanged while ping_pong ran: none were recorded.'
    """
    return _caption(target, events, omitted)


def _caption(target: str, records: Sequence[Recorded], omitted: int) -> str:
    """:func:`default_caption` of a trace's records, queue messages compact or not."""
    if not records:
        return f"Messages exchanged while {target} ran: none were recorded."
    # Counted in C: a trace that keeps every message has a hundred thousand.
    # A plain tuple is a compact queue message, the commonest record, and
    # the quickest to count (list.count finds it by identity): when all
    # are, no other kind need be counted.
    kinds = list(map(type, records))
    messages = kinds.count(tuple)
    if messages < len(kinds):
        messages += kinds.count(Message)
    spawned = kinds.count(Spawn) if messages < len(kinds) else 0
    parts = [f"{messages} {'message' if messages == 1 else 'messages'}"]
    if spawned:
        parts.append(f"{spawned} {'start' if spawned == 1 else 'starts'}")
    text = f"Messages exchanged while {target} ran: {' and '.join(parts)}"
    if omitted:
        text += f", and {omitted} more not shown"
    return text + "."
