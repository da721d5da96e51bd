"""multiprocessing: processes as participants, and their queue and pipe messages.

A message between processes is two halves: the sender's ``put``/``send``
and the receiver's ``get``/``recv``, each seen in its own process.  The
parent records its halves as they happen.  A child started with the
``fork`` method (Linux's default up to Python 3.13) inherits the trace's
hooks; when it starts running its target it switches to *child mode*,
records its own halves and how it ended, and writes them to a report file
just before it exits.  When the trace ends, the parent reads the reports
and pairs each receive with the earliest earlier send of the same label
from another participant (objects cross a process boundary as copies, so
identity cannot be used).

Processes started with ``spawn`` or ``forkserver`` run without the hooks:
the diagram shows their start and their exit code, not their messages.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import multiprocessing.process
import multiprocessing.queues
import pickle
import shutil
import tempfile
import threading
import time
from bisect import bisect_right
from pathlib import Path
from typing import Any

from livekit.trace.events import Event, Exit, Message, Participant, Spawn, participants_of
from livekit.trace.hooks import RETURN, Hook
from livekit.trace.recorder import Recorder

#: (kind, label, time, participant key, channel): one half of a message.
#: The channel is the id of the queue, or of a pipe's first end; a forked
#: child sees its parent's objects at the same addresses.  0: unknown (a
#: pipe made before the trace), which pairs with any channel.
Half = tuple[str, str, float, int, int]

_PROCESS = multiprocessing.process.BaseProcess
_QUEUES = (multiprocessing.queues.Queue, multiprocessing.queues.SimpleQueue)
_CONNECTION = multiprocessing.connection._ConnectionBase


class ProcessTracker:
    """The multiprocessing part of one trace (in the parent, or in a child).

    The sink ``"processes"`` of the hook table: the rows of :data:`HOOKS`
    name its methods.
    """

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._lock = threading.Lock()
        self._processes: dict[Any, Participant] = {}
        self._by_key: dict[int, Participant] = {}
        self._known: dict[int, Participant] = {}
        self._pipes: dict[int, int] = {}
        self._pipe_ends: list[tuple[Any, Any]] = []
        # Halves kept: each arrow needs two, and memory stays bounded.
        self._cap = 2 * recorder.max_messages
        self._halves: list[Half] = []
        self._folder: Path | None = None
        self._child: Participant | None = None
        self._child_reason = "normal"

    # -- parent side -----------------------------------------------------

    def starting(self, process: Any) -> None:
        """``process.start()`` was called."""
        recorder = self._recorder
        if self._child is not None:
            return  # a grandchild: not followed (see the module docstring)
        parent = recorder.who()
        if parent is None:
            return
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="livekit-trace-"))
        target = getattr(process, "_target", None)
        name = process.name
        if target is not None and getattr(target, "__name__", None):
            name = f"{name} ({target.__name__})"
        child = recorder.new_participant(name, "process")
        self._processes[process] = child
        self._by_key[child.key] = child
        recorder.emit(Spawn(parent, child, time.monotonic()))

    def pipe_made(self, ends: tuple[Any, Any]) -> None:
        """``multiprocessing.Pipe()`` returned: both ends are one channel."""
        channel = id(ends[0])
        self._pipe_ends.append(ends)  # keep the ids from being reused
        for end in ends:
            self._pipes[id(end)] = channel

    def sent(self, endpoint: object, value: object) -> None:
        """``value`` was put into a queue or sent on a pipe's end."""
        self.half("send", endpoint, value)

    def received(self, endpoint: object, value: object) -> None:
        """``value`` came out of a queue or a pipe's end."""
        self.half("recv", endpoint, value)

    def half(self, kind: str, endpoint: object, value: object) -> None:
        """A ``put``/``send`` (kind "send") or ``get``/``recv`` ("recv")."""
        if self._child is not None:
            participant: Participant | None = self._child
        else:
            participant = self._recorder.who()
        if participant is None or len(self._halves) >= self._cap:
            return
        if isinstance(endpoint, _CONNECTION):
            channel = self._pipes.get(id(endpoint), 0)
        else:
            channel = id(endpoint)
        label = self._recorder.label(value)
        half = (kind, label, time.monotonic(), participant.key, channel)
        self._known[participant.key] = participant
        with self._lock:
            self._halves.append(half)

    def finish(
        self, events: list[Event], room: int, shown: frozenset[int]
    ) -> tuple[list[Event], int]:
        """Merge the children's reports into ``events``; return them and the overflow.

        ``room`` is how many more arrows fit under ``max_messages``;
        ``shown`` the participants whose SPAWN is in ``events``.
        """
        if not self._processes:
            return events, 0
        participants = dict(self._known)
        participants.update(self._by_key)
        for event in events:
            for p in participants_of(event):
                participants.setdefault(p.key, p)
        halves = list(self._halves)
        exits: list[Exit] = []
        reported: set[int] = set()
        for key, child in self._by_key.items():
            report = self._read(key)
            if report is not None:
                child_halves, reason, ended = report
                halves.extend(child_halves)
                exits.append(Exit(child, reason, ended))
                reported.add(key)
        for process, child in self._processes.items():
            if child.key not in reported and process.exitcode is not None:
                exits.append(Exit(child, _exit_reason(process.exitcode), time.monotonic()))
        extra: list[Event] = [*pair_halves(halves, participants), *exits]
        extra.sort(key=lambda e: e.time)
        kept: list[Event] = []
        overflow = 0
        for event in extra:
            if isinstance(event, Exit):
                if event.who.key in shown:
                    kept.append(event)
            elif room > 0:
                kept.append(event)
                room -= 1
            else:
                overflow += 1
        return merge_by_time(events, kept), overflow

    def close(self) -> None:
        self._processes.clear()
        self._pipe_ends.clear()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _read(self, key: int) -> tuple[list[Half], str, float] | None:
        if self._folder is None:
            return None
        path = self._folder / f"{key}.pickle"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        # The file was written by our own child, in a folder only we know.
        report: tuple[list[Half], str, float] = pickle.loads(data)  # noqa: S301
        return report

    # -- child side (after fork) -----------------------------------------

    def bootstrapping(self, process: Any) -> None:
        """In a forked child, as it starts running: switch to child mode."""
        child = self._processes.get(process)
        recorder = self._recorder
        if child is None or self._child is not None or not recorder.active:
            return
        self._lock = threading.Lock()  # the parent's may have been held at fork
        recorder.become_child(child)
        self._child = child
        self._halves = []
        _watch_process_run(self, process)

    def bootstrapped(self) -> None:
        """In the child, as it returns from ``_bootstrap``: write the report."""
        if self._child is None or self._folder is None:
            return
        report = (self._halves, self._child_reason, time.monotonic())
        final = self._folder / f"{self._child.key}.pickle"
        partial = final.with_suffix(".part")
        with contextlib.suppress(OSError):
            partial.write_bytes(pickle.dumps(report))
            partial.replace(final)

    def run_raised(self, error: BaseException) -> None:
        self._child_reason = type(error).__name__


def pair_halves(halves: list[Half], participants: dict[int, Participant]) -> list[Message]:
    """Pair each receive with the earliest earlier send of the same label.

    The send must come from another participant, on the same channel (or
    on an unknown one).  The message is placed at the time it was sent.

    Examples
    --------
    >>> a, b = Participant(0, "a", "caller"), Participant(1, "b", "process")
    >>> halves = [("recv", "'pong'", 4.0, 0, 7), ("send", "'ping'", 1.0, 0, 7),
    ...           ("recv", "'ping'", 2.0, 1, 7), ("send", "'pong'", 3.0, 1, 7)]
    >>> [(m.sender.name, m.receiver.name, m.label) for m in pair_halves(halves, {0: a, 1: b})]
    [('a', 'b', "'ping'"), ('b', 'a', "'pong'")]
    """
    sends: dict[str, list[Half]] = {}
    messages: list[Message] = []
    for half in sorted(halves, key=lambda h: h[2]):
        kind, label, _, key, channel = half
        if kind == "send":
            sends.setdefault(label, []).append(half)
            continue
        waiting = sends.get(label, [])
        for index, (_, _, sent, sender, sent_on) in enumerate(waiting):
            same_channel = sent_on == channel or not sent_on or not channel
            if same_channel and sender != key and sender in participants and key in participants:
                del waiting[index]
                messages.append(
                    Message(participants[sender], participants[key], label, "send", sent)
                )
                break
    return sorted(messages, key=lambda m: m.time)


def merge_by_time(events: list[Event], extra: list[Event]) -> list[Event]:
    """Insert ``extra`` (sorted by time) into ``events``, keeping the order of ``events``.

    Examples
    --------
    >>> a = Participant(0, "a", "caller")
    >>> merged = merge_by_time([Exit(a, "x", 1.0), Exit(a, "z", 3.0)], [Exit(a, "y", 2.0)])
    >>> [e.reason for e in merged]
    ['x', 'y', 'z']
    """
    times = [e.time for e in events]
    # The recorded events are in the order they happened; their clocks were
    # read a little before or after, so only ever move forward through them.
    for i in range(1, len(times)):
        times[i] = max(times[i], times[i - 1])
    merged: list[Event] = []
    start = 0
    for event in extra:
        cut = bisect_right(times, event.time, lo=start)
        merged.extend(events[start:cut])
        merged.append(event)
        start = cut
    merged.extend(events[start:])
    return merged


def _exit_reason(code: int) -> str:
    if code == 0:
        return "normal"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _watch_process_run(tracker: ProcessTracker, process: Any) -> None:
    """In the child, wrap this process's ``run`` to learn how it ended."""
    original = process.run

    def run() -> None:
        try:
            original()
        except BaseException as error:
            tracker.run_raised(error)
            raise

    process.run = run


# -- the hooks, for both backends ----------------------------------------

#: What processes, pipes and multiprocessing queues mean to the tracker.
HOOKS: tuple[Hook, ...] = (
    Hook(multiprocessing.connection, "Pipe", "return", (RETURN,), "processes.pipe_made"),
    Hook(_PROCESS, "start", "start", ("self",), "processes.starting"),
    Hook(_PROCESS, "_bootstrap", "start", ("self",), "processes.bootstrapping"),
    Hook(_PROCESS, "_bootstrap", "return", (), "processes.bootstrapped"),
    Hook(_CONNECTION, "send", "start", ("self", "obj"), "processes.sent"),
    Hook(_CONNECTION, "recv", "return", ("self", RETURN), "processes.received"),
    *(
        row
        for queue_class in _QUEUES
        for row in (
            Hook(queue_class, "put", "start", ("self", "obj"), "processes.sent"),
            Hook(queue_class, "get", "return", ("self", RETURN), "processes.received"),
        )
    ),
)

__all__ = ["HOOKS", "ProcessTracker", "merge_by_time", "pair_halves"]
