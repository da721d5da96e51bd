"""Narrowing a trace: which participants a diagram draws, and which it draws as one.

A real program has more participants than a reader wants: an aiohttp
exchange of five requests starts a task per connection, a resolver task,
a thread of the default executor, asyncio's own accept tasks.  The trace
options ``participants=``, ``exclude=`` and ``collapse=`` say what to
keep; :class:`Narrowing` applies them to each event as it is recorded,
so that ``max_messages`` counts only the arrows drawn.

A *pattern* matches a participant when it matches its name, shell-style
(``"worker-*"``, ``"127.0.0.1:*"``), or names its module or a package
that holds it (``"aiohttp"`` matches the tasks of ``aiohttp.web_protocol``
and the threads whose target is in ``aiohttp.resolver``).

Pure functions of events and participants: no clock, no threads.

>>> caller = Participant(0, "caller (MainThread)", "caller")
>>> server = Participant(1, "Task-3 (start)", "task", "aiohttp.web_protocol")
>>> handler = Participant(2, "Task-4 (_handle)", "task", "aiohttp.web_protocol")
>>> narrowing = Narrowing(collapse={"aiohttp.web*": "server"}, new_key=iter([9]).__next__)
>>> print(narrowing.event(Message(caller, server, "GET / HTTP/1.1 (38 bytes)")))
caller (MainThread) -> server: GET / HTTP/1.1 (38 bytes)
>>> narrowing.event(Message(server, handler, "'request'")) is None  # inside the group
True
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from livekit.trace.events import Event, Message, Participant, Spawn

_new_tuple = tuple.__new__  # a Message made without its Python-level __new__
_UNSEEN: Any = object()  # a participant whose view is not known yet

__all__ = ["Narrowing", "check_collapse", "check_patterns", "matches"]


def matches(participant: Participant, pattern: str) -> bool:
    """Whether ``pattern`` names ``participant``, by name or by module.

    Examples
    --------
    >>> task = Participant(4, "Task-4 (start)", "task", "aiohttp.web_protocol")
    >>> matches(task, "aiohttp"), matches(task, "aiohttp.web*"), matches(task, "Task-*")
    (True, True, True)
    >>> matches(task, "aio"), matches(task, "asyncio")
    (False, False)
    """
    if fnmatch.fnmatchcase(participant.name, pattern):
        return True
    module = participant.module
    if not module:
        return False
    return (
        module == pattern
        or module.startswith(pattern + ".")
        or fnmatch.fnmatchcase(module, pattern)
    )


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> Callable[[str], re.Match[str] | None]:
    """The match of a shell-style pattern, as fnmatch.fnmatchcase uses it (made once)."""
    return re.compile(fnmatch.translate(pattern)).match


def _matcher(pattern: str) -> Callable[[Participant], bool]:
    """:func:`matches` for one ``pattern``, compiled once (it runs for every participant)."""
    by_name = _compiled(pattern)
    package = pattern + "."

    def matcher(participant: Participant) -> bool:
        if by_name(participant.name) is not None:
            return True
        module = participant.module
        if not module:
            return False
        return module == pattern or module.startswith(package) or by_name(module) is not None

    return matcher


def check_patterns(option: str, value: object) -> tuple[str, ...] | None:
    """Return the patterns of ``participants=`` or ``exclude=`` as a tuple.

    A single string is one pattern.  Anything but a string or an iterable
    of strings raises ``ValueError`` naming the option and the value.

    Examples
    --------
    >>> check_patterns("exclude", "asyncio"), check_patterns("exclude", ["a*", "b"])
    (('asyncio',), ('a*', 'b'))
    >>> check_patterns("exclude", 3)
    Traceback (most recent call last):
    ...
    ValueError: expected exclude to be a pattern or a list of patterns (str), got 3
    """
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    patterns: tuple[object, ...] | None
    try:
        patterns = tuple(value) if isinstance(value, Iterable) else None
    except TypeError:
        patterns = None
    if patterns is None or not all(isinstance(p, str) for p in patterns):
        raise ValueError(
            f"expected {option} to be a pattern or a list of patterns (str), got {value!r}"
        )
    return patterns  # type: ignore[return-value]  # all str, checked above


def check_collapse(value: object) -> dict[str, str] | None:
    """Return ``collapse=`` as a mapping of pattern to participant name.

    A pattern, or a list of them, names its own group.

    Examples
    --------
    >>> check_collapse("aiohttp"), check_collapse({"aiohttp.web*": "server"})
    ({'aiohttp': 'aiohttp'}, {'aiohttp.web*': 'server'})
    >>> check_collapse({"aiohttp": 1})
    Traceback (most recent call last):
    ...
    ValueError: expected collapse to map patterns to names (str to str), got {'aiohttp': 1}
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValueError(
                f"expected collapse to map patterns to names (str to str), got {value!r}"
            )
        return dict(value)
    patterns = check_patterns("collapse", value)
    assert patterns is not None  # noqa: S101 - value is not None
    return {p: p for p in patterns}


class Narrowing:
    """Apply ``participants=``, ``exclude=`` and ``collapse=`` to events.

    Parameters
    ----------
    participants
        Patterns: only the participants they match are drawn (the caller
        always is).  None draws every participant.
    exclude
        Patterns: the participants they match are not drawn.  What one
        that a drawn participant started does is drawn as its starter's
        (a library's helper task writing a request for the caller); the
        messages between the two are not drawn.
    collapse
        Pattern to name: the participants a pattern matches are drawn as
        one participant of that name (the first pattern that matches
        wins, over ``exclude`` and ``participants`` too).  Messages
        between them are not drawn, nor are their starts and ends: a
        library's inside stays inside.
    new_key
        Gives the key of each group's participant (the recorder's counter).
    """

    def __init__(
        self,
        *,
        participants: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        collapse: Mapping[str, str] | str | Iterable[str] | None = None,
        new_key: Callable[[], int],
    ) -> None:
        self._only = check_patterns("participants", participants)
        self._exclude = check_patterns("exclude", exclude) or ()
        self._collapse = check_collapse(collapse) or {}
        self._only_matchers = [_matcher(p) for p in self._only or ()]
        self._exclude_matchers = [_matcher(p) for p in self._exclude]
        self._collapse_matchers = [(_matcher(p), name) for p, name in self._collapse.items()]
        self._new_key = new_key
        self._groups: dict[str, Participant] = {}
        self._views: dict[int, Participant | None] = {}

    @property
    def active(self) -> bool:
        """Whether any option narrows the trace at all."""
        return self._only is not None or bool(self._exclude) or bool(self._collapse)

    def view(self, participant: Participant) -> Participant | None:
        """How ``participant`` is drawn: itself, its group, or None (not at all)."""
        # By key: hashing a frozen dataclass runs Python code, an int does not.
        try:
            return self._views[participant.key]
        except KeyError:
            pass
        found = self._views[participant.key] = self._view(participant)
        return found

    def _view(self, participant: Participant) -> Participant | None:
        if participant.kind in ("caller", "group"):
            return participant
        # A group is named on purpose: it wins over an exclude pattern that
        # also matches (exclude "aiohttp", collapse "aiohttp.web*").
        for match, name in self._collapse_matchers:
            if match(participant):
                group = self._groups.get(name)
                if group is None:
                    group = self._groups[name] = Participant(self._new_key(), name, "group")
                return group
        if self.excluded(participant):
            return None
        if self._only is not None and not any(match(participant) for match in self._only_matchers):
            return None
        return participant

    def excluded(self, participant: Participant) -> bool:
        """Whether an ``exclude=`` pattern matches ``participant``."""
        return any(match(participant) for match in self._exclude_matchers)

    def event(self, event: Event) -> Event | None:
        """``event`` as drawn, or None when it is not drawn."""
        if isinstance(event, Message):
            return self.message(event)
        if isinstance(event, Spawn):
            return self._spawn(event)
        # Keys, not identity: a task renamed at the end is a new object.
        if self.hides(event.who):
            return None  # a group's member, or folded into its parent, or hidden
        return event

    def message(self, event: Message) -> Message | None:
        """What :meth:`event` makes of a :class:`Message` (its own step: every arrow takes it)."""
        sender, receiver = event[0], event[1]  # by index: no property calls
        drawn = self.drawn_pair(sender, receiver)
        if drawn is None:
            return None
        if drawn[0] is sender and drawn[1] is receiver:
            return event
        # Not dataclasses.replace: it costs ten times as much, on every arrow.
        return _new_tuple(Message, (*drawn, *event[2:]))

    def drawn_pair(
        self, sender: Participant, receiver: Participant
    ) -> tuple[Participant, Participant] | None:
        """Who a message from ``sender`` to ``receiver`` is drawn between, or None.

        What :meth:`message` makes of the message's two ends, asked before
        the message is made: a socket's arrow is made once, as drawn.

        Examples
        --------
        >>> a = Participant(0, "caller (MainThread)", "caller")
        >>> b = Participant(1, "Task-2 (serve)", "task", "aiohttp.web_protocol")
        >>> c = Participant(2, "Task-3", "task")
        >>> keep = Narrowing(collapse={"aiohttp.web*": "server"}, new_key=iter([9]).__next__)
        >>> [p.name for p in keep.drawn_pair(a, b)], keep.drawn_pair(a, c) == (a, c)
        (['caller (MainThread)', 'server'], True)
        """
        views = self._views  # view(), written out: this runs for every arrow
        drawn_sender = views.get(sender.key, _UNSEEN)
        if drawn_sender is _UNSEEN:
            drawn_sender = self.view(sender)
        drawn_receiver = views.get(receiver.key, _UNSEEN)
        if drawn_receiver is _UNSEEN:
            drawn_receiver = self.view(receiver)
        if drawn_sender is None or drawn_receiver is None:
            return None
        if drawn_sender.key == drawn_receiver.key and sender.key != receiver.key:
            return None  # inside a collapsed library, or with a folded helper
        # By key: a task renamed at the end is a new object, and the message
        # keeps its own ends (as message() keeps the event).
        return (
            sender if drawn_sender.key == sender.key else drawn_sender,
            receiver if drawn_receiver.key == receiver.key else drawn_receiver,
        )

    def _spawn(self, event: Spawn) -> Spawn | None:
        parent = self.spawned(event.parent, event.child)
        if parent is None:
            return None
        if parent.key == event.parent.key:
            return event
        return Spawn(parent, event.child, event.time)

    def spawned(self, parent: Participant, child: Participant) -> Participant | None:
        """Who a SPAWN of ``child`` by ``parent`` is drawn from, or None if it is not drawn.

        What :meth:`event` makes of ``Spawn(parent, child)``, asked before
        the event is made: most of a library's tasks are not drawn.
        """
        drawn_parent, drawn_child = self.started(parent, child)
        if drawn_parent is None or drawn_child is None or drawn_child.key != child.key:
            return None
        return drawn_parent

    def started(
        self, parent: Participant, child: Participant
    ) -> tuple[Participant | None, Participant | None]:
        """How ``parent`` and ``child`` are drawn (:meth:`view`), as ``child`` starts.

        What :meth:`spawned` decides from: the SPAWN is drawn when both
        are, and ``child`` as itself.  A task's start asks both at once:
        its view says what its end can draw (nothing when hidden; no EXIT,
        and only replies out of its group, when drawn as another).

        Examples
        --------
        >>> caller = Participant(0, "caller (MainThread)", "caller")
        >>> helper = Participant(1, "Task-1 (connect)", "task", "aiohttp.connector")
        >>> narrowing = Narrowing(exclude="aiohttp", new_key=iter([]).__next__)
        >>> [p.name for p in narrowing.started(caller, helper)]  # folded into its starter
        ['caller (MainThread)', 'caller (MainThread)']
        """
        views = self._views  # view(), written out: this runs for every task
        drawn_parent = views.get(parent.key, _UNSEEN)
        if drawn_parent is _UNSEEN:
            drawn_parent = self.view(parent)
        key = child.key
        drawn_child = views.get(key, _UNSEEN)
        if drawn_child is _UNSEEN:
            drawn_child = self._view(child)
            if drawn_child is None and drawn_parent is not None and self.excluded(child):
                # An excluded helper's work is drawn as its starter's: a
                # library's task that writes a request for the caller.
                drawn_child = drawn_parent
            views[key] = drawn_child
        return drawn_parent, drawn_child

    def drawn(self, sender: Participant, receiver: Participant) -> bool:
        """Whether a message from ``sender`` to ``receiver`` is drawn.

        What :meth:`message` tells by returning None or not, without a
        message made to ask (:meth:`drawn_to` asks it of many receivers).
        """
        drawn_sender, drawn_receiver = self.view(sender), self.view(receiver)
        if drawn_sender is None or drawn_receiver is None:
            return False
        return drawn_sender.key != drawn_receiver.key or sender.key == receiver.key

    def drawn_to(self, sender: Participant, receivers: list[Participant]) -> list[Participant]:
        """The ``receivers`` that a message from ``sender`` is drawn to (see :meth:`drawn`).

        A task's end asks it of its awaiters: its own view is looked up once.

        Examples
        --------
        >>> caller = Participant(0, "caller (MainThread)", "caller")
        >>> start = Participant(1, "Task-1 (start)", "task", "aiohttp.web_protocol")
        >>> handler = Participant(2, "Task-2 (_handle_request)", "task", "aiohttp.web_protocol")
        >>> narrowing = Narrowing(collapse={"aiohttp.web*": "server"}, new_key=iter([9]).__next__)
        >>> [p.name for p in narrowing.drawn_to(handler, [start, caller])]  # not inside the group
        ['caller (MainThread)']
        """
        views = self._views  # view(), written out: this runs for every task's end
        drawn_sender = views.get(sender.key, _UNSEEN)
        if drawn_sender is _UNSEEN:
            drawn_sender = self.view(sender)
        if drawn_sender is None:
            return []
        key, own = drawn_sender.key, sender.key
        out = []
        for receiver in receivers:
            drawn_receiver = views.get(receiver.key, _UNSEEN)
            if drawn_receiver is _UNSEEN:
                drawn_receiver = self.view(receiver)
            if drawn_receiver is not None and (drawn_receiver.key != key or receiver.key == own):
                out.append(receiver)
        return out

    def hides(self, participant: Participant) -> bool:
        """Whether ``participant``'s own notes (its EXIT) are not drawn: it is
        hidden, in a group, or folded into its starter."""
        drawn = self.view(participant)
        return drawn is None or drawn.key != participant.key

    def events(self, events: Iterable[Event]) -> list[Event]:
        """Every event of ``events`` as drawn, leaving out those not drawn.

        Examples
        --------
        >>> from livekit.trace.events import Exit
        >>> a = Participant(0, "caller (MainThread)", "caller")
        >>> b, c = Participant(1, "worker", "thread"), Participant(2, "logger", "thread")
        >>> keep = Narrowing(exclude="log*", new_key=iter([]).__next__)
        >>> [str(e) for e in keep.events([Spawn(a, b), Spawn(a, c), Exit(c, "normal")])]
        ['caller (MainThread) -> worker: SPAWN']
        """
        out = []
        for event in events:
            kept = self.event(event)
            if kept is not None:
                out.append(kept)
        return out
