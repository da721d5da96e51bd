"""Messages recorded outside this interpreter, merged into a trace.

Some messages are never seen by this process's hooks: those between the
processes of a Dask cluster, say.  A *source* records them its own way
while a trace runs and hands them over when it ends; the trace merges
them with its own events in time order.  :func:`livekit.cluster` is one:
an attached cluster adds itself with :func:`add_source` and removes
itself with :func:`remove_source`.

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

from livekit.trace.events import Event, Exit, Participant, ParticipantKind

log = logging.getLogger("livekit.trace")

NewParticipant = Callable[[str, ParticipantKind], Participant]


class Source(Protocol):
    """What a trace asks of a source of outside messages."""

    def start(self, new_participant: NewParticipant, caller: Participant) -> None:
        """A trace begins; ``new_participant(name, kind)`` makes its participants."""

    def finish(self) -> Sequence[Event]:
        """The trace ended: the events seen, their ``time`` on ``time.monotonic()``."""


_lock = threading.Lock()
_sources: list[Source] = []


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


def start_all(new_participant: NewParticipant, caller: Participant) -> list[Source]:
    """Tell every source that a trace begins; return those that started.

    A source that fails is logged and left out: tracing must never break
    the traced code.
    """
    with _lock:
        sources = list(_sources)
    started = []
    for source in sources:
        try:
            source.start(new_participant, caller)
        except Exception:
            log.warning("a trace source failed to start and is left out", exc_info=True)
        else:
            started.append(source)
    return started


def finish_all(
    started: Sequence[Source], events: Sequence[Event], room: int
) -> tuple[list[Event], int]:
    """Merge the sources' events into ``events`` by time; at most ``room`` more arrows.

    Returns the merged events and how many arrows did not fit.
    """
    extra: list[Event] = []
    for source in started:
        try:
            extra.extend(source.finish())
        except Exception:
            log.warning("a trace source failed to report and is left out", exc_info=True)
    if not extra:
        return list(events), 0
    extra.sort(key=lambda e: e.time)
    kept: list[Event] = []
    overflow = 0
    for event in extra:
        if isinstance(event, Exit):
            kept.append(event)
        elif room > 0:
            kept.append(event)
            room -= 1
        else:
            overflow += 1
    return list(heapq.merge(events, kept, key=lambda e: e.time)), overflow
