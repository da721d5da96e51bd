"""What a trace remembers, and what each observed operation means.

The capture backends (:mod:`livekit.trace.monitoring` on Python 3.12+,
:mod:`livekit.trace.patching` on 3.11) only notice that a queue received an
item or that a thread is starting; the rows of the hook table
(:mod:`livekit.trace.hooks`) name the :class:`Recorder` methods below that
they then call, which decide who the participants are and append plain
events (:mod:`livekit.trace.events`).

Who is traced follows Erlang's ``seq_trace`` token: the caller is traced;
a thread, task or process it starts is traced; anyone who receives a
message from a traced participant becomes traced.  Messages between
untraced threads are ignored.

Memory: each recorded queue message is a plain tuple of its participants'
keys, a label of at most :data:`~livekit.trace.events.MAX_LABEL` characters
and two floats (:mod:`livekit.trace._compact`, which the garbage collector
stops tracking): about 200 bytes with a short ASCII label, at most about 390
with four-byte characters (``tracemalloc``); other events
hold references to shared participants instead; and at most ``max_messages`` arrows
(and the EXIT notes of the participants they started) are kept.  A message
put but not yet taken is held (a strong reference, so that its identity
cannot be reused) until it is taken or the trace ends.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from itertools import compress, repeat
from operator import length_hint
from typing import TYPE_CHECKING, Any

from livekit.trace._compact import Recorded, expand
from livekit.trace.events import (
    MAX_LABEL,
    Activation,
    Exit,
    Message,
    Participant,
    ParticipantKind,
    Spawn,
)
from livekit.trace.format import describe, shorten

if TYPE_CHECKING:
    from livekit.trace.events import Event
    from livekit.trace.narrow import Narrowing


class _Unreceived:
    """The place of a message sent but not yet taken."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unreceived>"


UNRECEIVED = _Unreceived()
#: The types of what :attr:`Recorder.events` holds that are not events
#: (places held, records of messages not yet taken), mapped to False.
_NOT_EVENTS: dict[type, bool] = {list: False, _Unreceived: False}
#: The place given when the diagram is full but narrowing may still hide
#: the message: it is counted when its receiver is known (see reserve).
UNCOUNTED = -2
#: The place of a message that narrowing left out (see livekit.trace.narrow).
_DROPPED = _Unreceived()

#: A message put and not yet taken, with narrowing options: (sender,
#: place, item, "send", channel, when sent), as a :data:`_Record`.
_Waiting = tuple[Participant, int, Any, str, Any, float]
#: A queue message put and not yet taken, without narrowing options:
#: ``[sender, place, item, "send", channel, when sent]``, a list that also
#: holds its place among the events until its :class:`Message` does.
_Record = list[Any]

_get_running_loop = asyncio.events._get_running_loop
_Task = asyncio.Task
_current_task: Callable[[Any], asyncio.Task[Any] | None] = asyncio.current_task
if isinstance(asyncio.current_task, types.FunctionType):
    # Up to 3.11 it is Python, and reads this dict: asked for every event.
    _current_task = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]
# A participant is made for every task: a frozen dataclass's __init__ sets
# each field through object.__setattr__, in Python; its slots' own setters
# are C.  (The fields are checked once, here.)
_new_object = object.__new__
_set_key, _set_name, _set_kind, _set_module = (
    Participant.__dict__[field].__set__ for field in ("key", "name", "kind", "module")
)
assert tuple(Participant.__dataclass_fields__) == ("key", "name", "kind", "module")  # noqa: S101 - the fields set above
_get_ident = threading.get_ident
_monotonic = time.monotonic
_new_tuple = tuple.__new__
# An int below this has a repr of at most MAX_LABEL characters, and one
# that never raises (a huge int's repr can: sys.set_int_max_str_digits).
_BIG_INT = 10 ** (MAX_LABEL - 1)
_SMALL_INT = -_BIG_INT

# Threads that the standard library (and livekit's nodes, which read a
# spawn's output) start for their own plumbing: they carry messages, they
# are not participants.
_PLUMBING_MODULES = ("multiprocessing.", "concurrent.futures.process", "livekit.nodes.")
# The code of asyncio.run's own clean-up (shutting down generators, executors):
# its tasks are not the program's.
_ASYNCIO_CLEANUP = frozenset(
    getattr(asyncio.base_events.BaseEventLoop, name).__code__
    for name in ("shutdown_asyncgens", "shutdown_default_executor")
)


class Recorder:
    """The state of one trace, shared by every thread while it runs.

    Parameters
    ----------
    caller
        The thread that starts the trace.
    message_label
        ``message_label(message)`` returns a label, or None for the default.
    max_messages
        How many arrows (messages and SPAWNs) to keep; later ones are
        only counted.
    narrowing
        Given ``new_key`` (the counter of participant keys), builds what
        draws or leaves out each event (:class:`livekit.trace.narrow.Narrowing`);
        arrows left out do not count towards ``max_messages``.
    """

    def __init__(
        self,
        caller: threading.Thread,
        *,
        message_label: Callable[[Any], str | None] | None,
        max_messages: int,
        narrowing: Callable[[Callable[[], int]], Narrowing] | None = None,
    ) -> None:
        self.active = True
        self.events: list[Recorded | _Unreceived | _Record] = []
        self._shown: set[int] = set()  # participants whose SPAWN is kept
        self.max_messages = max_messages
        # Without narrowing, an arrow takes one of max_messages places, and
        # one left out is counted, with no lock: next() of a range iterator
        # is one step in C, which the GIL does not split, so two threads
        # never take the same place.  (A free-threaded build could give two
        # the last place: one arrow too many.)  With narrowing, an arrow
        # left out later gives its place back: counted under the lock.
        self._places = iter(range(max_messages))
        self._overflow = iter(range(sys.maxsize))
        self._arrows = 0  # with narrowing
        self._omitted = 0
        self.message_label = message_label
        self._keys = itertools.count(1)
        self._lock = threading.Lock()
        made = narrowing(self._keys.__next__) if narrowing is not None else None
        self._narrowing = made if made is not None and made.active else None
        self.caller = Participant(0, f"caller ({caller.name})", "caller")
        #: Every participant of the trace by key, under its final name once
        #: the trace ends (see finish): a :data:`Compact` message names its
        #: two by key.
        self.participants: dict[int, Participant] = {0: self.caller}
        # Threads by ident; an ident is only valid while its thread lives,
        # so a thread is removed as soon as it ends.
        self._threads: dict[int, Participant] = {_get_ident(): self.caller}
        #: The participants of tasks; the socket tracker reads it on every
        #: write (who(), written out there); only the recorder changes it.
        self.tasks: dict[asyncio.Task[Any], Participant] = {}
        self._task_parents: dict[asyncio.Task[Any], Participant] = {}
        # Tasks that ended under another name than they were made with.
        self._ended_renames: dict[int, Participant] = {}
        # Event loops whose callbacks were seen -> their participant.
        self._loops: dict[Any, Participant] = {}
        #: Messages put and not yet taken, by id(item), with their channel
        #: (at index 4 of each entry); the strong references in each entry
        #: keep both ids from being reused meanwhile.  The gate of a get:
        #: empty, there is nothing to look for.  One dict for the whole
        #: trace, since the backends hold it.
        self.pending: dict[int, _Record | _Waiting | deque[Any]] = {}
        # Executor work submitted, not yet started: Future -> (submitter,
        # label, when, place of its CALL).
        self._calls: dict[Any, tuple[Participant, str, float, int]] = {}
        # Futures being run: Future -> (worker, submitter, shown).
        self._running: dict[Any, tuple[Participant, Participant, bool]] = {}
        # In a notebook the caller is itself a task of the kernel's loop.
        loop = _get_running_loop()
        if loop is not None:
            task = _current_task(loop)
            if task is not None:
                self.tasks[task] = self.caller

    # -- bookkeeping -----------------------------------------------------

    def emit(self, event: Event) -> None:
        """Keep ``event``, or count it once ``max_messages`` arrows are kept.

        Arrows (messages and SPAWNs) count towards ``max_messages``.  An
        EXIT note is kept when its participant's SPAWN was, so that every
        bar drawn also ends, and dropped otherwise; a worker's pick-up and
        its end (:class:`Activation`) are kept, the caller having checked
        that the work's CALL was.
        """
        if self._narrowing is not None:
            narrowed = self._narrowing.event(event)
            if narrowed is None:
                return
            event = narrowed
        with self._lock:
            if isinstance(event, Exit):
                if event.who.key in self._shown:
                    self.events.append(event)
            elif isinstance(event, Activation):
                # Not an arrow: work_started keeps it only when its CALL is kept.
                self.events.append(event)
            elif self._take_place():
                self.events.append(event)
                if isinstance(event, Spawn):
                    self._shown.add(event.child.key)
            else:
                self._omitted += 1

    def _take_place(self) -> bool:
        """Take the place of one more arrow; False once the diagram is full.

        With narrowing, the caller holds the lock.
        """
        if self._narrowing is None:
            return next(self._places, None) is not None
        if self._arrows >= self.max_messages:
            return False
        self._arrows += 1
        return True

    @property
    def arrows(self) -> int:
        """Arrows kept so far (messages, and SPAWNs), at most ``max_messages``."""
        if self._narrowing is None:
            return self.max_messages - length_hint(self._places)
        return self._arrows

    @property
    def omitted(self) -> int:
        """Messages counted, not kept, because the diagram was full."""
        return self._omitted + sys.maxsize - length_hint(self._overflow)

    def reserve(self, if_full: int | None = None) -> int:
        """Hold the place of a message whose receiver is not known yet.

        An arrow is drawn where the message was sent, so that the diagram
        reads in the order things were done; its receiver fills the place
        in.  Returns -1 (and counts the message) once the diagram is full;
        with narrowing options, :data:`UNCOUNTED` instead: :meth:`fill`
        counts it, unless it is not to be drawn anyway.

        Given ``if_full``, a diagram already full returns it instead and
        counts nothing: the caller (a socket's common write) then takes
        the way that knows what to count.  Asked without the lock, so the
        last place can still go to another thread meanwhile: the answer is
        then -1 or :data:`UNCOUNTED` as above.
        """
        if if_full is not None and (
            self._arrows >= self.max_messages
            if self._narrowing is not None
            else not length_hint(self._places)
        ):
            return if_full
        events = self.events
        with self._lock:
            if self._narrowing is not None:  # _take_place(), written out
                if self._arrows >= self.max_messages:
                    # Whether it would be drawn is known once its receiver is:
                    # fill() counts it then, unless narrowing leaves it out.
                    return UNCOUNTED
                self._arrows += 1
                # With narrowing options every append holds this lock (see
                # _put_narrowed): the place is the end.
                events.append(UNRECEIVED)
                return len(events) - 1
            if next(self._places, None) is None:
                self._omitted += 1
                return -1
            slot = _Unreceived()
            events.append(slot)
            # A put appends its record without this lock (see put), and the
            # list only grows: the slot is at the end, or just before it.
            place = len(events) - 1
            while events[place] is not slot:
                place -= 1
            return place

    def fill(self, place: int, event: Event) -> None:
        """Put ``event`` in the place :meth:`reserve` kept (again, if it changed)."""
        narrowing = self._narrowing
        if narrowing is None or place < 0:
            if place >= 0:
                self.events[place] = event
            elif place == UNCOUNTED:
                self.count_unless_hidden(event)
            return
        # event(), without its dispatch in the common case: a message.
        narrowed = narrowing.message(event) if type(event) is Message else narrowing.event(event)
        if narrowed is not None:
            self.events[place] = narrowed
            return
        with self._lock:
            if self.events[place] is not _DROPPED:
                self.events[place] = _DROPPED
                self._arrows -= 1  # not drawn: it leaves room for another

    def fill_message(  # noqa: PLR0917 - a message's fields, as Message takes them
        self,
        place: int,
        sender: Participant,
        receiver: Participant,
        label: str,
        time: float,
        sent: float,
    ) -> None:
        """``fill(place, Message(sender, receiver, label, "send", time, sent))``, made once.

        With narrowing options the message is made as it is drawn, or not
        at all when it is not: a socket's arrow takes this, one call each.
        """
        narrowing = self._narrowing
        if narrowing is None or place < 0:
            self.fill(place, _new_tuple(Message, (sender, receiver, label, "send", time, sent)))
            return
        drawn = narrowing.drawn_pair(sender, receiver)
        if drawn is not None:
            self.events[place] = _new_tuple(Message, (*drawn, label, "send", time, sent))
            return
        with self._lock:
            if self.events[place] is not _DROPPED:
                self.events[place] = _DROPPED
                self._arrows -= 1  # not drawn: it leaves room for another

    def count_unless_hidden(self, event: Event) -> None:
        """Count ``event`` as not shown (the diagram is full), unless narrowing hides it."""
        if self._narrowing is not None and self._narrowing.event(event) is None:
            return
        with self._lock:
            self._omitted += 1

    @property
    def narrowed(self) -> bool:
        """Whether narrowing options apply: a full diagram must still follow messages."""
        return self._narrowing is not None

    def recorded(self) -> list[Recorded]:
        """The events so far, without the places of messages not yet taken.

        Queue messages are :data:`Compact` records (``expand`` them with
        :attr:`participants`).
        """
        events = self.events
        with self._lock:
            # A message waits (its record holds a place): one pass leaves
            # the places out.  Otherwise a pass in C tells whether any place
            # is left (a socket's write, a dropped arrow): a trace that ends
            # with none has nothing to leave out, and a copy is five times
            # faster.
            if not self.pending:
                kinds = set(map(type, events))
                if list not in kinds and _Unreceived not in kinds:
                    return events.copy()  # type: ignore[return-value] # none is a place
            # [e for e in events if not isinstance(e, (list, _Unreceived))], in C.
            kept = compress(events, map(_NOT_EVENTS.get, map(type, events), repeat(True)))
            return list(kept)  # type: ignore[arg-type]  # only events pass

    def _new(self, name: str, kind: ParticipantKind, module: str = "") -> Participant:
        # Participant(key, name, kind, module), without its Python-level __init__.
        key = next(self._keys)
        participant = _new_object(Participant)
        _set_key(participant, key)
        _set_name(participant, name)
        _set_kind(participant, kind)
        _set_module(participant, module)
        self.participants[key] = participant
        return participant

    def new_participant(self, name: str, kind: ParticipantKind) -> Participant:
        """A participant of this trace seen elsewhere (see :mod:`livekit.trace.sources`)."""
        return self._new(name, kind)

    def task_on_stack(self) -> Participant | None:
        """The traced task whose coroutine is running below this code, if any.

        A task started eagerly (Python 3.12+, ``eager_start=True``) runs its
        first step inside its creator's call, without ``create_task``: its
        creator's coroutine is then on the stack.  Walks the stack, so it
        is for rare cases only.
        """
        frames = {}
        for task, participant in list(self.tasks.items()):
            frame = getattr(task.get_coro(), "cr_frame", None)
            if frame is not None:
                frames[id(frame)] = participant
        frame = sys._getframe(1)
        while frame is not None:
            found = frames.get(id(frame))
            if found is not None:
                return found
            frame = frame.f_back
        return None

    def thread_participant(self) -> Participant | None:
        """The traced participant of this thread, whatever task it runs."""
        return self._threads.get(_get_ident())

    def who(self) -> Participant | None:
        """The traced participant running this code, or None.

        Code that an event loop runs outside any task (a callback of
        ``call_soon``, a protocol's ``connection_made``) is the loop's.
        """
        loop = _get_running_loop()
        if loop is not None:
            task = _current_task(loop)
            if task is None:
                return self._loop(loop, adopt=False)
            if self.tasks:
                return self.tasks.get(task)
        return self._threads.get(_get_ident())

    def _loop(self, loop: object, *, adopt: bool) -> Participant | None:
        """The participant of ``loop``'s callbacks, in a traced thread (or adopted)."""
        found = self._loops.get(loop)
        if found is None:
            ident = _get_ident()
            thread = self._threads.get(ident)
            if thread is None:
                if not adopt:
                    return None
                thread = self._threads[ident] = self._new(threading.current_thread().name, "thread")
            found = self._loops[loop] = self._new(f"event loop ({_thread_name(thread)})", "thread")
        return found

    def adopt(self) -> Participant | None:
        """The participant running this code, traced from now on.

        None in a thread of the standard library's plumbing (a
        ``ProcessPoolExecutor``'s manager thread takes work from a queue):
        it carries messages, it is not a participant.
        """
        loop = _get_running_loop()
        if loop is not None:
            task = _current_task(loop)
            if task is None:
                loop_participant = self._loop(loop, adopt=True)
                assert loop_participant is not None  # noqa: S101 - adopt=True makes one
                return loop_participant
            found = self.tasks.get(task)
            if found is None:
                coro = task.get_coro()
                found = self.tasks[task] = self._new(
                    _task_name(task, coro), "task", _task_module(coro)
                )
            return found
        ident = _get_ident()
        found = self._threads.get(ident)
        if found is None:
            thread = threading.current_thread()
            if _is_plumbing(thread):
                return None
            found = self._threads[ident] = self._new(thread.name, "thread", _thread_module(thread))
        return found

    def label(self, value: object) -> str:
        return describe(value, self.message_label)

    # -- queues (queue.Queue and asyncio.Queue alike) --------------------

    def put(self, queue: object, item: object, sender: Participant | None = None) -> None:
        """``item`` went into ``queue``, put by ``sender`` or the code running.

        The message's place is kept at once, in the order of the puts, so
        that its arrow is drawn where it was sent: its :data:`_Record`
        holds it until the get puts the :class:`Message` there.
        This runs for every message of the traced program, so it takes no
        lock: a place is taken in one step (see ``_places``), a list
        appended to in another, and a put and a get of one channel are
        serialized by the channel's own lock (the hook rows watch
        ``Queue._put``/``_get``, which run under it), and one dict
        operation is atomic.
        """
        if sender is None:
            # who(), written out: this runs for every message put.
            loop = _get_running_loop()
            if loop is None:
                sender = self._threads.get(_get_ident())
            else:
                task = _current_task(loop)
                if task is None:
                    sender = self._loop(loop, adopt=False)
                elif self.tasks:
                    sender = self.tasks.get(task)
                else:
                    sender = self._threads.get(_get_ident())
            if sender is None:
                return
        if self._narrowing is not None:
            self._put_narrowed(sender, queue, item)
            return
        if next(self._places, None) is None:
            # The diagram is full: the message is counted, not followed.
            next(self._overflow)
            return
        # The record holds the queue: a strong reference, so that its id is
        # not reused while the message waits (see got).
        record = [sender, 0, item, "send", queue, _monotonic()]
        events = self.events
        events.append(record)
        # Other threads append without a lock too, and the list only grows:
        # the record is at the end, or just before it.
        place = len(events) - 1
        while events[place] is not record:
            place -= 1
        record[1] = place
        # _wait(), written out: one dict call when nothing waits under its id.
        key = id(item)
        if self.pending.setdefault(key, record) is not record:
            self._wait(record, key)

    def _wait(self, entry: _Record | _Waiting, key: int) -> None:
        """Keep ``entry``, a message put, until its item is taken (see :meth:`got`)."""
        pending = self.pending
        waiting = pending.get(key)
        if waiting is None:
            pending[key] = entry
        elif type(waiting) is deque:
            waiting.append(entry)
        else:
            # The same object put again (here or in another channel) before it was taken.
            pending[key] = deque((waiting, entry))

    def sending(self) -> Participant | None:
        """The gate of a put: the traced sender, if its message will be drawn.

        None when the code running is not traced, or when the diagram is
        full (the message is then counted): the put need not be read.  With
        narrowing options a full diagram still follows the message, whose
        receiver decides whether it counts (see :meth:`reserve`).
        """
        sender = self.who()
        if sender is None:
            return None
        if self._narrowing is None and self.full:
            self.count()
            return None
        return sender

    def put_by(self, sender: Participant, queue: object, item: object) -> None:
        """``sender`` put ``item`` into ``queue`` (the event of a row gated by :meth:`sending`)."""
        self.put(queue, item, sender)

    def _put_narrowed(self, sender: Participant, queue: object, item: object) -> None:
        """put_by with narrowing options: whether the arrow counts is known at the get."""
        events = self.events
        with self._lock:
            if self._take_place():
                place = len(events)
                events.append(UNRECEIVED)
            else:
                # Its receiver decides whether it counts (see reserve).
                place = UNCOUNTED
        self._wait((sender, place, item, "send", queue, _monotonic()), id(item))

    @property
    def full(self) -> bool:
        return self.arrows >= self.max_messages

    def count(self, messages: int = 1) -> None:
        """Count messages that the full diagram will not show (one by default)."""
        with self._lock:
            self._omitted += messages

    def waiting(self) -> bool:
        """The gate of a get: whether any sent message waits for its receiver."""
        return bool(self.pending)

    def got_newest(self, queue: object, item: object) -> None:
        """``item`` came out of a LIFO ``queue``, which hands out the newest."""
        self.got(queue, item, newest_first=True)

    def got(self, queue: object, item: object, newest_first: bool = False) -> None:  # noqa: PLR0912 - written out: runs for every message
        """``item`` came out of ``queue``: one arrow from whoever put it."""
        key = id(item)
        waiting = self.pending.pop(key, None)  # see put: no lock needed
        if waiting is None:
            return
        if type(waiting) is deque or waiting[4] is not queue:
            found = self._taken(key, waiting, queue, newest_first=newest_first)
            if found is None:
                return
            entry = found
        else:
            entry = waiting  # type: ignore[assignment] # a deque is taken above
        # describe(), written out for the commonest messages.
        kind = type(item)
        if kind is int and _SMALL_INT < item < _BIG_INT and self.message_label is None:
            label = repr(item)  # short enough
        elif kind is str and len(item) <= MAX_LABEL and self.message_label is None:  # type: ignore[arg-type]
            label = repr(item)
            if len(label) > MAX_LABEL:
                label = shorten(label)
        else:
            label = describe(item, self.message_label)
        # adopt(), written out for a thread that runs no event loop.
        receiver = self._threads.get(_get_ident()) if _get_running_loop() is None else None
        if receiver is None:
            receiver = self.adopt()
        if receiver is None:
            if type(entry) is list:  # plumbing: the record stays untaken, and holds nothing
                entry[2] = entry[4] = None
            return
        sender, place, _, _, _, sent = entry
        if type(entry) is list:
            # In the record's place, compact: the collector lets it go (see
            # livekit.trace._compact); both are in self.participants (the
            # caller, or made by _new: every participant the dicts hold is).
            self.events[place] = (sender.key, receiver.key, label, _monotonic(), sent)
        else:
            # tuple.__new__ skips the named tuple's Python-level __new__.
            self.fill(
                place, _new_tuple(Message, (sender, receiver, label, "send", _monotonic(), sent))
            )

    def _taken(
        self, key: int, waiting: Any, queue: object, *, newest_first: bool
    ) -> _Record | _Waiting | None:
        """The entry of ``queue`` among those waiting under ``key``; the others wait on.

        The item was put more than once, or into another channel too: a
        LIFO channel hands out the newest of its own.
        """
        several = list(waiting) if type(waiting) is deque else [waiting]
        mine = [entry for entry in several if entry[4] is queue]
        taken: _Record | _Waiting | None = None
        if mine:
            taken = mine[-1] if newest_first else mine[0]
            several = [entry for entry in several if entry is not taken]
        if several:
            self.pending[key] = several[0] if len(several) == 1 else deque(several)
        return taken

    # -- threads ---------------------------------------------------------

    def thread_starting(self, thread: threading.Thread) -> None:
        """``thread.start()`` was called: SPAWN, and watch how it ends."""
        parent = self.who()
        if parent is None or _is_plumbing(thread):
            return
        child = self._new(thread.name, "thread", _thread_module(thread))
        self.emit(Spawn(parent, child, time.monotonic()))
        _watch_run(self, thread, child)

    def thread_running(self, participant: Participant) -> None:
        self._threads[_get_ident()] = participant

    def thread_ended(self, participant: Participant, reason: str) -> None:
        self._threads.pop(_get_ident(), None)
        if self.active:
            self.emit(Exit(participant, reason, time.monotonic()))

    # -- concurrent.futures ----------------------------------------------

    def work_submitted(
        self, future: Any, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """``executor.submit(fn, *args, **kwargs)`` made ``future`` (in the submitter)."""
        submitter = self.who()
        if submitter is not None:
            # The CALL is drawn here, where submit() ran; the worker that
            # picks it up fills in its receiver (see work_started).
            place = self.reserve()
            label = call_label(fn, args, kwargs)
            self._calls[future] = (submitter, label, time.monotonic(), place)

    def work_running(self, future: Any, running: bool) -> None:
        """``future.set_running_or_notify_cancel()`` returned ``running``."""
        if running:
            self.work_started(future)

    def work_started(self, future: Any) -> None:
        """A worker thread picked up the work of ``future``: the CALL's receiver.

        The arrow stands where ``submit()`` ran; its ``time`` is the
        pick-up, its ``sent`` the submit.
        """
        call = self._calls.pop(future, None)
        if call is None:
            return
        submitter, label, submitted, place = call
        worker = self.adopt()
        if worker is None:
            return
        now = time.monotonic()
        self.fill(place, Message(submitter, worker, label, "call", now, submitted))
        kept = place >= 0 and self.events[place] is not _DROPPED
        if kept:
            # Its bar starts here, at the pick-up, and ends after its REPLY.
            self.emit(Activation(worker, False, now))
        self._running[future] = (worker, submitter, kept)

    def future_result(self, future: object, result: object) -> None:
        """``future.set_result(result)``."""
        self.future_settled(future, result, None)

    def future_exception(self, future: object, exception: BaseException) -> None:
        """``future.set_exception(exception)``."""
        self.future_settled(future, None, exception)

    def future_settled(self, future: object, result: object, error: BaseException | None) -> None:
        """``set_result`` or ``set_exception``: the REPLY arrow."""
        running = self._running.pop(future, None)
        if running is None:
            return
        worker, submitter, shown = running
        if not shown:
            self.count_unless_hidden(Message(worker, submitter, "", "reply"))
            return
        text = f"raised {type(error).__name__}" if error is not None else self.label(result)
        self.emit(Message(worker, submitter, text, "reply", time.monotonic()))
        self.emit(Activation(worker, True, time.monotonic()))

    # -- asyncio ---------------------------------------------------------

    def task_created(self, task: asyncio.Task[Any]) -> None:  # noqa: PLR0912 - who() written out
        """``loop.create_task`` returned ``task``: SPAWN, and watch how it ends.

        With narrowing options, what its end can draw is decided here, once
        (its view is fixed when it starts), and the done callback that
        watches it does only that: nothing for a hidden task but letting it
        go; for one drawn as its group or its starter, no EXIT, only the
        replies to awaiters drawn apart from it.
        """
        # who(), written out (as in put): this runs for every task made.
        loop = _get_running_loop()
        if loop is None:
            parent = self._threads.get(_get_ident())
        else:
            current = _current_task(loop)
            if current is None:
                parent = self._loop(loop, adopt=False)
            elif self.tasks:
                parent = self.tasks.get(current)
            else:
                parent = self._threads.get(_get_ident())
        if parent is None:
            return
        coro = task.get_coro()
        if getattr(coro, "cr_code", None) in _ASYNCIO_CLEANUP:
            return  # asyncio.run's own clean-up (shutting down generators, executors)
        # _task_module() and _task_name(), written out.  A task whose
        # coroutine is gone (started eagerly and already done: aiohttp's
        # request handlers on 3.14) is named after its maker's code.
        frame = getattr(coro, "cr_frame", None)
        module = str(frame.f_globals.get("__name__", "")) if frame is not None else ""
        name = task.get_name()
        target = getattr(coro, "__name__", None)
        if target and name.startswith("Task-"):
            name = f"{name} ({target})"
        child = self._new(name, "task", module or parent.module)
        self.tasks[task] = child
        narrowing = self._narrowing
        if narrowing is None:
            self._task_parents[task] = parent
            self.emit(Spawn(parent, child, time.monotonic()))
            task.add_done_callback(self._task_done)
            return
        # emit(), with the narrowing it would redo already done.
        drawn_parent, drawn = narrowing.started(parent, child)
        if drawn is None:
            task.add_done_callback(self._hidden_task_done)
            return
        if drawn.key == child.key:
            if drawn_parent is not None:  # narrowing.spawned(parent, child), written out
                spawn = Spawn(
                    parent if drawn_parent.key == parent.key else drawn_parent, child, _monotonic()
                )
                with self._lock:
                    if self._take_place():
                        self.events.append(spawn)
                        self._shown.add(child.key)
                    else:
                        self._omitted += 1
            self._task_parents[task] = parent
            task.add_done_callback(self._task_done)
            return
        # Its parent is its receiver when nobody awaits it: kept only if
        # that reply is drawn (narrowing.drawn(child, parent), written out).
        if drawn_parent is not None and drawn_parent.key != drawn.key:
            self._task_parents[task] = parent
        task.add_done_callback(self._member_task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """A task drawn as itself ended: its replies and its EXIT."""
        if not self.active:
            return
        child = self.tasks.get(task)
        if child is None:
            return
        try:
            self._task_ended(task, child)
        finally:
            # Let the ended task go: the trace keeps neither it nor what it
            # returned.  The name it ended with is the one drawn (see
            # finish).  The last task is kept, so that who() goes on telling
            # a traced program's untraced tasks from its threads (``tasks``
            # is never empty again).
            name = task.get_name()
            # _renamed_to's test, written out: it is seldom true.
            if name != child.name and not child.name.startswith(name + " ("):
                renamed = _renamed_to(child, name)
                if renamed is not None:
                    self._ended_renames[child.key] = renamed
            if len(self.tasks) > 1:
                del self.tasks[task]
                self._task_parents.pop(task, None)

    def _task_ended(self, task: asyncio.Task[Any], child: Participant) -> None:
        now = time.monotonic()
        if task.cancelled():
            self.emit(Exit(child, "cancelled", now))
            return
        error = _exception_of(task)
        receivers = self._awaiters(task) or [self._task_parents[task]]
        narrowing = self._narrowing
        if narrowing is not None:
            # A reply that will not be drawn needs no label (a repr can cost).
            receivers = narrowing.drawn_to(child, receivers)
        if receivers:
            text = (
                f"raised {type(error).__name__}" if error is not None else self.label(task.result())
            )
            for receiver in receivers:
                self.emit(Message(child, receiver, text, "reply", now))
        self.emit(Exit(child, "normal" if error is None else type(error).__name__, now))

    def _member_task_done(self, task: asyncio.Task[Any]) -> None:
        """A task drawn as its group, or as its starter, ended: only its replies out of it.

        Its EXIT is not drawn, nor are replies to awaiters drawn as it is
        (the group's inside); its own name is never drawn, so a rename
        does not matter.
        """
        tasks = self.tasks
        child = tasks.get(task)
        if child is None:
            return
        try:
            if self.active and not task.cancelled():  # a cancelled task draws only its EXIT
                awaiters = self._awaiters(task)
                if awaiters:
                    narrowing = self._narrowing
                    assert narrowing is not None  # noqa: S101 - only narrowed tasks get here
                    receivers = narrowing.drawn_to(child, awaiters)
                else:
                    parent = self._task_parents.get(task)  # kept when the reply is drawn
                    receivers = [parent] if parent is not None else []
                if receivers:
                    now = _monotonic()
                    error = _exception_of(task)
                    text = (
                        f"raised {type(error).__name__}"
                        if error is not None
                        else self.label(task.result())
                    )
                    for receiver in receivers:
                        self.emit(Message(child, receiver, text, "reply", now))
        finally:
            if len(tasks) > 1:  # the last is kept (see _task_done)
                del tasks[task]
                self._task_parents.pop(task, None)

    def _hidden_task_done(self, task: asyncio.Task[Any]) -> None:
        """A task that narrowing hides ended: it draws nothing, and is let go."""
        tasks = self.tasks
        if len(tasks) > 1:  # the last is kept (see _task_done)
            tasks.pop(task, None)

    def _awaiters(self, task: asyncio.Task[Any]) -> list[Participant]:
        """Tasks woken by ``task``'s end: those that awaited it.

        Our done callback was added first, so it runs before the awaiting
        tasks wake up and stop being recorded as awaiting.  Python 3.14
        says who awaits a task (``asyncio.capture_call_graph``, a gather's
        caller among them); only the direct awaiters are needed, so the
        set that graph is built from is read (``_asyncio_awaited_by``, the
        graph's first level: the whole graph costs ~140 bytecodes per
        ended task), with the public call as its fallback.  Up to 3.13 the
        wake-up calls that the loop has just queued are read instead
        (``loop._ready``; private, hence the fallback to the parent), all
        of them: another thread's ``call_soon_threadsafe`` may come between
        two of a task's done callbacks as they are queued.  A copy is read:
        such a call, while the queue is read, would break its iteration.
        """
        if sys.version_info >= (3, 14):
            try:
                owners = task._asyncio_awaited_by  # type: ignore[attr-defined]
            except AttributeError:  # pragma: no cover - another Task implementation
                graph = asyncio.capture_call_graph(task, limit=0)
                owners = [g.future for g in graph.awaited_by] if graph is not None else []
            if not owners:
                return []
            found = [
                participant
                for owner in owners
                if isinstance(owner, asyncio.Task) and (participant := self.tasks.get(owner))
            ]
        else:
            found = []
            tasks = self.tasks
            try:
                for handle in list(task.get_loop()._ready):  # type: ignore[attr-defined]
                    args = handle._args
                    if args and args[0] is task:  # a done callback of task's end
                        owner = getattr(handle._callback, "__self__", None)
                        if isinstance(owner, _Task) and (participant := tasks.get(owner)):
                            found.append(participant)
            except AttributeError:  # pragma: no cover - another loop implementation
                return []
        return sorted(found, key=lambda p: p.key) if len(found) > 1 else found

    # -- end -------------------------------------------------------------

    @property
    def room(self) -> int:
        """How many more arrows fit under ``max_messages``."""
        return self.max_messages - self.arrows

    @property
    def shown(self) -> frozenset[int]:
        """The keys of the participants whose SPAWN is kept."""
        with self._lock:
            return frozenset(self._shown)

    def finish(self, events: list[Recorded], *, narrowed: bool = False) -> list[Recorded]:
        """The final form of ``events``: tasks renamed after they were made.

        ``events`` are :meth:`recorded`, with what others saw merged in;
        ``narrowed`` says that nothing was merged in, so that narrowing,
        applied as each event was recorded, has nothing left to do.
        :attr:`participants` gets the new names too: the :data:`Compact`
        records read them there.
        """
        renames = self._task_renames()
        self.participants.update(renames)
        events = _renamed(events, renames)
        return events if narrowed else self.narrow(events)

    def narrow(self, events: list[Recorded]) -> list[Recorded]:
        """``events`` as the trace's narrowing options draw them (kept ones are unchanged)."""
        if self._narrowing is None:
            return events
        # With narrowing options no record is compact (see put): this
        # expands only what others saw, merged in.
        return self._narrowing.events(expand(events, self.participants))  # type: ignore[return-value] # events are records

    def _task_renames(self) -> dict[int, Participant]:
        """Tasks named after they were created (``create_task(name=...)`` on 3.11).

        A task that ended keeps the name it ended with (see ``_task_done``).
        """
        renames = dict(self._ended_renames)
        for task, participant in list(self.tasks.items()):
            # The name alone, not the coroutine: 3.12.0 and 3.12.1 crash in
            # get_coro() of an eagerly started task that has ended.
            name = task.get_name()
            # _renamed_to's test, written out: tasks a trace never saw start
            # (eager ones, 3.12+) stay here, one per aiohttp request.
            if name != participant.name and not participant.name.startswith(name + " ("):
                renamed = _renamed_to(participant, name)
                if renamed is not None:
                    renames[participant.key] = renamed
        return renames

    def close(self) -> None:
        """Stop recording and drop every reference to the traced program.

        The events go too: the trace holds what :meth:`recorded` returned,
        and its Messages once they are read, which need not be held twice.
        The list keeps its length: a thread still inside a hook as the
        trace ends may yet write its message's place (see got).
        """
        self.active = False
        with self._lock:
            # The list only grows: what another thread appends meanwhile stays.
            kept = len(self.events)
            self.events[:kept] = [UNRECEIVED] * kept
            # A record never taken holds its item and channel (see put_by).
            for waiting in self.pending.values():
                for entry in waiting if type(waiting) is deque else (waiting,):
                    if type(entry) is list:
                        entry[2] = entry[4] = None
            self.pending.clear()
        self._calls.clear()
        self._running.clear()
        self.tasks.clear()
        self._task_parents.clear()
        self._ended_renames.clear()
        self._loops.clear()


def _renamed_to(participant: Participant, name: str) -> Participant | None:
    """``participant`` as a task now named ``name``, or None if that is its name."""
    if participant.kind != "task" or participant.name == name:
        return None
    if participant.name.startswith(f"{name} ("):
        return None  # the name it had, with its coroutine's (see _task_name)
    return replace(participant, name=name)


def _renamed(events: list[Recorded], renames: dict[int, Participant]) -> list[Recorded]:
    """``events`` with the participants of ``renames`` (by key) renamed.

    A :data:`Compact` record names its participants by key: it is kept.
    """
    if not renames:
        return events

    def new(p: Participant) -> Participant:
        return renames.get(p.key, p)

    out: list[Recorded] = []
    for event in events:
        if type(event) is tuple:
            out.append(event)
        elif isinstance(event, Spawn):
            out.append(replace(event, parent=new(event.parent), child=new(event.child)))
        elif isinstance(event, Message):
            out.append(event._replace(sender=new(event.sender), receiver=new(event.receiver)))
        else:
            out.append(replace(event, who=new(event.who)))  # type: ignore[type-var,union-attr] # an Exit or an Activation
    return out


def _exception_of(task: asyncio.Task[Any]) -> BaseException | None:
    """The exception ``task`` (done, not cancelled) raised, or None.

    Read without marking it retrieved, as ``task.exception()`` would: asyncio
    still reports an exception that the traced program never retrieved.
    """
    try:
        return task._exception
    except AttributeError:  # pragma: no cover - another Task implementation
        return task.exception()


def _task_module(coro: object) -> str:
    """The module of a task's coroutine ``coro`` (what narrowing patterns can name)."""
    frame = getattr(coro, "cr_frame", None)
    return str(frame.f_globals.get("__name__", "")) if frame is not None else ""


def _thread_module(thread: threading.Thread) -> str:
    """The module of a thread's target, or of its class when it overrides ``run``."""
    target = getattr(thread, "_target", None)
    if target is not None:
        return str(getattr(target, "__module__", None) or "")
    return type(thread).__module__ if type(thread) is not threading.Thread else ""


def _task_name(task: asyncio.Task[Any], coro: object) -> str:
    """``task``'s name, with its coroutine's (``coro``) when asyncio made the name up."""
    name = task.get_name()
    target = getattr(coro, "__name__", None)
    if target and name.startswith("Task-"):
        return f"{name} ({target})"
    return name


def call_label(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    name = getattr(fn, "__name__", None) or describe(fn)
    parts = [describe(a) for a in args[:4]]
    parts += [f"{k}={describe(v)}" for k, v in list(kwargs.items())[:4]]
    if len(args) + len(kwargs) > len(parts):
        parts.append("…")
    return shorten(f"{name}({', '.join(parts)})")


def _is_plumbing(thread: threading.Thread) -> bool:
    # A thread of a subclass (3.13's executor manager thread) has no target.
    target = getattr(thread, "_target", None)
    module = getattr(target, "__module__", None) or type(thread).__module__
    return module.startswith(_PLUMBING_MODULES)


def _watch_run(recorder: Recorder, thread: threading.Thread, participant: Participant) -> None:
    """Wrap this one thread's ``run`` to learn its ident and how it ended.

    The wrapper is an attribute of the instance only, and removes itself
    when the thread ends, so the class and other threads are untouched.
    """
    had_own = "run" in thread.__dict__
    own = thread.__dict__.get("run")
    original = thread.run

    def run() -> None:
        recorder.thread_running(participant)
        reason = "normal"
        try:
            original()
        except BaseException as error:
            reason = type(error).__name__
            raise
        finally:
            if had_own:
                thread.__dict__["run"] = own
            else:
                thread.__dict__.pop("run", None)
            recorder.thread_ended(participant, reason)

    thread.run = run  # type: ignore[method-assign]


def _thread_name(participant: Participant) -> str:
    """The thread's own name: ``caller (MainThread)`` is ``MainThread``."""
    if participant.kind == "caller" and participant.name.startswith("caller ("):
        return participant.name[len("caller (") : -1]
    return participant.name
