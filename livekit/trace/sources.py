"""Messages recorded outside this interpreter, merged into a trace.

Some messages are never seen by this process's hooks: those between the
processes of a Dask cluster, say.  A *source* records them its own way
while a trace runs and hands them over when it ends; the trace merges
them with its own events in time order.  :func:`livekit.cluster` is one:
an attached cluster adds itself with :func:`add_source` and removes
itself with :func:`remove_source`.

A source can also join a trace that is already running, when it first
meets the trace: :func:`running` returns the running trace (or None), and
:meth:`Running.join` starts the source in it.  livekit's nodes do this on
the first ``rpc.call`` made inside a trace (``livekit.nodes.tracing``).

>>> class Nothing:
...     def start(self, new_participant, caller):
...         self.caller = caller
...     def finish(self):
...         return []
>>> source = Nothing()
>>> add_source(source)
>>> remove_source(source), remove_source(source)
(True, False)
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from livekit.trace._compact import Recorded, when
from livekit.trace.events import Event, Participant, ParticipantKind, fit_in_room
from livekit.trace.format import describe

log = logging.getLogger("livekit.trace")

NewParticipant = Callable[[str, ParticipantKind], Participant]
Who = Callable[[], Participant | None]


class Source(Protocol):
    """What a trace asks of a source of outside messages."""

    def start(self, new_participant: NewParticipant, caller: Participant) -> None:
        """A trace begins; ``new_participant(name, kind)`` makes its participants."""

    def finish(self) -> Sequence[Event]:
        """The trace ended: the events seen, their ``time`` on ``time.monotonic()``.

        A source that had to leave messages out may say how many in an
        ``omitted`` attribute, read after this returns.
        """


class Running:
    """The running trace, as a source that joins it late sees it.

    Parameters
    ----------
    new_participant
        Makes a participant of this trace.
    caller
        The participant that started the trace.
    who
        Returns the traced participant running the calling code, or None
        when that code is not traced.
    label
        Turns a value into a message label, honouring the trace's
        ``message_label``.
    max_messages
        The trace's ``max_messages``.

    Examples
    --------
    >>> import itertools
    >>> keys = itertools.count(1)
    >>> me = Participant(0, "caller (MainThread)", "caller")
    >>> trace = Running(lambda name, kind: Participant(next(keys), name, kind), me)
    >>> trace.who() is me, trace.label("ping")
    (True, "'ping'")
    >>> class Late:
    ...     def start(self, new_participant, caller):
    ...         self.far = new_participant("far away", "process")
    ...     def finish(self):
    ...         return []
    >>> late = Late()
    >>> trace.join(late), late.far
    (True, Participant(key=1, name='far away', kind='process', module=''))
    >>> trace.end() == [late], trace.join(Late())
    (True, False)
    """

    def __init__(
        self,
        new_participant: NewParticipant,
        caller: Participant,
        who: Who | None = None,
        label: Callable[[object], str] | None = None,
        max_messages: int = 500,
    ) -> None:
        self.new_participant = new_participant
        self.max_messages = max_messages
        self.caller = caller
        self.who: Who = who or (lambda: caller)
        self.label: Callable[[object], str] = label or describe
        #: The sources started in this trace, in the order they started.
        self.started: list[Source] = []
        self._lock = threading.Lock()
        self._ended = False

    def join(self, source: Source) -> bool:
        """Start ``source`` in this trace; return False if it is over or the source failed."""
        with self._lock:
            if self._ended:
                return False
            if not _start(source, self.new_participant, self.caller):
                return False
            self.started.append(source)
            return True

    def end(self) -> list[Source]:
        """No source joins any more; return those that started."""
        with self._lock:
            self._ended = True
            return list(self.started)


_lock = threading.Lock()
_sources: list[Source] = []
_running: Running | None = None


def running() -> Running | None:
    """The trace running in this process, or None.

    Examples
    --------
    >>> running() is None
    True
    """
    return _running


def add_source(source: Source) -> None:
    """Have every later trace ask ``source`` for its messages."""
    with _lock:
        if source not in _sources:
            _sources.append(source)


def remove_source(source: Source) -> bool:
    """Stop asking ``source``; return True if it was there."""
    with _lock:
        if source in _sources:
            _sources.remove(source)
            return True
        return False


def _start(source: Source, new_participant: NewParticipant, caller: Participant) -> bool:
    # A source that fails is logged and left out: tracing must never break
    # the traced code.
    try:
        source.start(new_participant, caller)
    except Exception:
        log.warning("a trace source failed to start and is left out", exc_info=True)
        return False
    return True


def start_all(
    new_participant: NewParticipant,
    caller: Participant,
    *,
    who: Who | None = None,
    label: Callable[[object], str] | None = None,
    max_messages: int = 500,
) -> Running:
    """Tell every source that a trace begins; return the running trace.

    Its ``started`` lists the sources that started; a source that fails
    is logged and left out.  Until :func:`finish_all`, :func:`running`
    returns it, so that other sources can join.
    """
    global _running  # noqa: PLW0603 - one trace per process, as in livekit.trace
    trace = Running(new_participant, caller, who, label, max_messages)
    with _lock:
        sources = list(_sources)
    for source in sources:
        trace.join(source)
    _running = trace
    return trace


def finish_all(
    started: Running | Sequence[Source], events: Sequence[Recorded], room: int
) -> tuple[list[Recorded], int]:
    """Merge the sources' events into ``events`` by time; at most ``room`` more arrows.

    ``events`` may hold queue messages in their compact form, as the
    recorder keeps them (``livekit.trace._compact``): they are merged as
    they are.  Returns the merged events and how many arrows did not fit
    (or that the sources said they left out).
    """
    global _running  # noqa: PLW0603
    if isinstance(started, Running):
        if _running is started:
            _running = None
        started = started.end()
    extra: list[Event] = []
    overflow = 0
    for source in started:
        try:
            extra.extend(source.finish())
            overflow += int(getattr(source, "omitted", 0))
        except Exception:
            log.warning("a trace source failed to report and is left out", exc_info=True)
    if not extra:
        return list(events), overflow
    # A trace draws an arrow where its message was sent (Message.time is
    # when it was taken), so merge by that.
    extra.sort(key=when)
    kept, left_out = fit_in_room(extra, room)
    return list(heapq.merge(events, kept, key=when)), overflow + left_out
