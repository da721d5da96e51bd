"""multiprocessing: processes as participants, and the messages between them.

A message between processes is two halves, the sender's and the
receiver's, each seen in its own process at the two functions that every
``multiprocessing`` message goes through (``Connection._send_bytes`` and
``_recv_bytes``; see :mod:`livekit.trace._child`).  The parent records
its halves as they happen.  A child started during the trace, under any
start method, records its own and reports them to the parent, which
pairs them when the trace ends: each receive with the earliest earlier
send of the same bytes on the same pipe (:func:`pair_halves`).

Who sent a half is the participant running the code, with two
exceptions, both threads of ``multiprocessing``'s own:

- a ``Queue``'s feeder thread writes what ``put()`` queued: the half
  belongs to whoever called ``put()``, in order;
- the threads of a ``Pool`` and of a ``ProcessPoolExecutor`` move the
  caller's tasks and results: those are drawn as CALL (caller to the
  worker process that took the task) and REPLY (that worker to the
  caller), with the caller known from the job or work id in the task.

The hooks are the rows :data:`HOOKS` adds to the table of
:mod:`livekit.trace.hooks`.
"""

from __future__ import annotations

import collections
import concurrent.futures.process
import contextlib
import functools
import logging
import multiprocessing.connection
import multiprocessing.pool
import multiprocessing.process
import multiprocessing.queues
import os
import select
import socket
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.trace import _child
from livekit.trace._child import Channel, Half, channel_of
from livekit.trace._compact import Recorded, expand
from livekit.trace._rebuild import Placeholder, name_of, rebuild
from livekit.trace.events import (
    Event,
    Exit,
    Message,
    Participant,
    Spawn,
    fit_in_room,
    participants_of,
)
from livekit.trace.hooks import RETURN, Hook
from livekit.trace.recorder import Recorder, call_label

log = logging.getLogger("livekit.trace")

_PROCESS = multiprocessing.process.BaseProcess
_CONNECTION = multiprocessing.connection.Connection
_POOL_WORKER = vars(multiprocessing.pool)["worker"]  # not in typeshed
_EXECUTOR = concurrent.futures.process.ProcessPoolExecutor

#: How long the end of a trace waits for the children's reports, in all.
REPORT_TIMEOUT = 5.0

#: Roles of the channels that ``Pool`` and ``ProcessPoolExecutor`` move work on.
POOL_TASKS, POOL_RESULTS = "pool tasks", "pool results"
EXECUTOR_CALLS, EXECUTOR_RESULTS = "executor calls", "executor results"


class _Ticket:
    """What a child started during the trace needs to report to it.

    It rides in the ``Process`` object.  A forked child finds it there; a
    spawned one unpickles it, which runs :mod:`livekit.trace._child` from
    its source with the socket's descriptor passed along (``DupFd``, the
    way ``multiprocessing`` passes a ``Connection`` to a child).
    """

    def __init__(self, sock: socket.socket, key: int, cap: int) -> None:
        self.sock, self.key, self.cap = sock, key, cap

    def __reduce__(self) -> tuple[Any, ...]:
        from multiprocessing import reduction

        ticket = (reduction.DupFd(self.sock.fileno()), self.key, self.cap)
        namespace = {"__name__": "livekit.trace._child", "TICKET": ticket}
        return (exec, (_child_source(), namespace))


_source: str | None = None


def _child_source() -> str:
    global _source  # noqa: PLW0603 - read once per parent
    if _source is None:
        _source = Path(_child.__file__).read_text(encoding="utf-8")
    return _source


@dataclass
class _Link:
    """A child started during the trace, and the socket pair to it."""

    process: Any
    participant: Participant
    ours: socket.socket
    theirs: socket.socket
    report: Any = None


@dataclass
class _Work:
    """The caller of a task, and the label of its CALL when it is known up front."""

    caller: Participant
    label: str | None = None
    worker: Participant | None = field(default=None)


class ProcessTracker:
    """The multiprocessing part of one trace, in the parent."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self.active = True
        #: Puts back the trace's hooks: a forked child calls it first thing.
        self.uninstall_in_child: Callable[[], None] | None = None
        self._links: dict[Any, _Link] = {}
        self._known: dict[int, Participant] = {}
        self._halves: list[Half] = []
        # Halves kept: each arrow needs two, and memory stays bounded.
        self._cap = 2 * recorder.max_messages
        # id(writer Connection) -> (the writer, (key, time) of each put() not yet written).
        self._feeds: dict[int, tuple[Any, collections.deque[tuple[int | None, float]]]] = {}
        # The two ends of a socket pair made during the trace are one channel.
        self._peers: dict[Channel, Channel] = {}
        self._roles: dict[Channel, str] = {}
        self._jobs: dict[int, Participant] = {}  # Pool job id -> caller
        self._works: dict[tuple[Channel, int], _Work] = {}  # (call channel, work id)
        self._calls_of: dict[Channel, Channel] = {}  # executor result channel -> its calls

    # -- the hooks (see ROWS) --------------------------------------------

    def starting(self, process: Any) -> None:
        """``process.start()`` was called: SPAWN, and a ticket for the child."""
        recorder = self._recorder
        parent = recorder.who()
        if parent is None or not self.active:
            return
        target = getattr(process, "_target", None)
        name = process.name
        if target is not None and getattr(target, "__name__", None):
            name = f"{name} ({target.__name__})"
        child = recorder.new_participant(name, "process")
        ours, theirs = socket.socketpair()
        self._links[process] = _Link(process, child, ours, theirs)
        self._known[child.key] = child
        process._livekit_trace = _Ticket(theirs, child.key, self._cap)
        if target is _POOL_WORKER and len(process._args) >= 2:
            inqueue, outqueue = process._args[:2]
            self._roles[channel_of(inqueue._writer)] = POOL_TASKS
            self._roles[channel_of(outqueue._reader)] = POOL_RESULTS
        recorder.emit(Spawn(parent, child, time.monotonic()))

    def started(self, process: Any) -> None:
        """``process.start()`` returned: the child holds its end now."""
        link = self._links.get(process)
        if link is not None:
            vars(process).pop("_livekit_trace", None)
            link.theirs.close()

    def bootstrapping(self, process: Any) -> None:
        """In a forked child, as it starts running: the child's own recording."""
        ticket = vars(process).pop("_livekit_trace", None)
        if not isinstance(ticket, _Ticket) or not self.active:
            return
        # Everything below runs in the child, on its copy of the trace.
        self.active = False
        if self.uninstall_in_child is not None:
            self.uninstall_in_child()
        for link in self._links.values():
            link.ours.close()
            if link.theirs is not ticket.sock:
                link.theirs.close()
        _child.Child(process, ticket.sock.detach(), ticket.key, ticket.cap).watch()

    def sent(self, connection: Any, buf: Any) -> None:
        """``Connection._send_bytes(buf)``: a message leaves this process."""
        key, when = self._sender(connection)
        self._record("send", connection, buf, key, when)

    def received(self, connection: Any, data: Any) -> None:
        """``Connection._recv_bytes()`` returned ``data`` (a BytesIO)."""
        participant = self._recorder.who()
        self._record("recv", connection, data, None if participant is None else participant.key)

    def queued(self, queue: Any) -> None:
        """``Queue.put``: its feeder thread will write the item, in this order."""
        if not self.active:
            return
        writer = queue._writer
        participant = self._recorder.who()
        feed = self._feeds.get(id(writer))
        if feed is None:
            feed = self._feeds[id(writer)] = (writer, collections.deque())
        if participant is not None:
            self._known[participant.key] = participant
        feed[1].append((None if participant is None else participant.key, time.monotonic()))

    def pipe_made(self, ends: tuple[Any, Any]) -> None:
        """``multiprocessing.Pipe()`` returned: both ends are one channel."""
        first, second = channel_of(ends[0]), channel_of(ends[1])
        if first != second:  # a socket pair: each end has its own inode
            self._peers[second] = first

    def job_made(self, result: Any) -> None:
        """A ``Pool`` job (``ApplyResult``, ``MapResult``, ``IMapIterator``) was made."""
        caller = self._recorder.who()
        if caller is not None and self.active:
            self._jobs[result._job] = caller

    def executor_used(self, executor: Any) -> None:
        """``ProcessPoolExecutor.submit`` starts: name the channels work moves on.

        Before the work is queued: its manager thread may pass it on, and
        a worker answer, before ``submit`` returns.
        """
        if self.active and self._recorder.who() is not None:
            calls = channel_of(executor._call_queue._writer)
            results = channel_of(executor._result_queue._reader)
            self._roles[calls], self._roles[results] = EXECUTOR_CALLS, EXECUTOR_RESULTS
            self._calls_of[results] = calls

    def work_submitted(
        self, executor: Any, future: Any, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """``ProcessPoolExecutor.submit`` returned ``future``."""
        caller = self._recorder.who()
        if caller is None or not self.active:
            return
        pending = executor._pending_work_items
        work_id = executor._queue_count - 1
        # Another thread may have submitted since: look back for our future.
        while work_id >= 0 and getattr(pending.get(work_id), "future", future) is not future:
            work_id -= 1
        calls = channel_of(executor._call_queue._writer)
        self._works[(calls, work_id)] = _Work(caller, _submit_label(fn, args, kwargs))

    # -- recording -------------------------------------------------------

    def _sender(self, connection: Any) -> tuple[int | None, float | None]:
        """Who sends on ``connection``, and when if it was earlier (a queue's put)."""
        participant = self._recorder.who()
        if participant is not None:
            return participant.key, None
        feed = self._feeds.get(id(connection))
        if feed is not None and feed[1]:
            return feed[1].popleft()
        return None, None

    def _record(
        self, kind: str, connection: Any, data: Any, key: int | None, when: float | None = None
    ) -> None:
        if not self.active or len(self._halves) >= self._cap:
            return
        if key is None and not self._roles:
            return
        recorded = _child.half(kind, key, connection, data)
        if when is not None:  # sent by a queue's feeder thread: drawn at the put
            recorded = (kind, when, *recorded[2:])
        if key is None and recorded[3] not in self._roles:
            return
        if key is not None and key not in self._known:
            found = self._recorder.who()
            if found is not None:
                self._known[key] = found
        self._halves.append(recorded)

    # -- the end ---------------------------------------------------------

    def finish(
        self, events: list[Recorded], room: int, shown: frozenset[int]
    ) -> tuple[list[Recorded], int]:
        """Merge the children's reports into ``events``; return them and the overflow.

        ``events`` are the recorder's (queue messages compact); ``room`` is
        how many more arrows fit under ``max_messages``; ``shown`` the
        participants whose SPAWN is in ``events``.
        """
        self.active = False
        if not self._links and not self._halves:
            return events, 0
        self._collect_reports()
        # Merged by time, each with its participants: Messages again.
        expanded = expand(events, self._recorder.participants)
        participants = dict(self._known)
        for event in expanded:
            for p in participants_of(event):
                participants.setdefault(p.key, p)
        halves = list(self._halves)
        exits: list[Exit] = []
        for link in self._links.values():
            if link.report is not None:
                halves.extend(link.report[0])
            ended = _ending(link)
            if ended is not None:
                exits.append(ended)
        pairs = pair_halves(halves, self._peers)
        messages = self._messages(pairs, participants)
        extra: list[Event] = [*messages, *exits]
        extra.sort(key=lambda e: e.time)
        kept, overflow = fit_in_room(extra, room, lambda exit: exit.who.key in shown)
        return merge_by_time(expanded, kept), overflow  # type: ignore[return-value] # events are records

    def _collect_reports(self) -> None:
        """Tell every child the trace ended, and read what each reported.

        A child passed its report file as it started, and closes its end of
        the socket once it has written how it ended and put everything
        back: waiting for that end to close means that when the trace is
        over, so is the child's part in it.  A child killed meanwhile
        closes it too, its halves written up to then.
        """
        waiting = {}
        for link in self._links.values():
            with contextlib.suppress(OSError):  # the child ended: its report is waiting
                os.write(link.ours.fileno(), b"s")
            waiting[link.ours.fileno()] = link
        deadline = time.monotonic() + REPORT_TIMEOUT
        files: dict[int, int] = {}  # socket fd -> report file
        try:
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("%d traced processes did not report in time", len(waiting))
                    break
                ready, _, _ = select.select(list(waiting), [], [], left)
                for fd in ready:
                    try:
                        data, fds, _, _ = socket.recv_fds(waiting[fd].ours, 1, 1)
                    except OSError:
                        data, fds = b"", []
                    for passed in fds:
                        files.setdefault(fd, passed)
                    if not data:  # the child closed its end
                        link = waiting.pop(fd)
                        if fd in files:
                            link.report = _child.read_report(files[fd])
                        _wait_for_thread(link, deadline)
            for fd, link in waiting.items():  # late: what they wrote so far
                if fd in files:
                    link.report = _child.read_report(files[fd])
        finally:
            for passed in files.values():
                os.close(passed)

    def _messages(
        self, pairs: list[tuple[Half, Half]], participants: dict[int, Participant]
    ) -> list[Message]:
        messages = []
        for sent, got in pairs:
            role = self._roles.get(_canonical(sent[3], self._peers))
            sender = participants.get(sent[2]) if sent[2] is not None else None
            receiver = participants.get(got[2]) if got[2] is not None else None
            value = rebuild(sent[5]) if sent[5] is not None else None
            message: Message | None = None
            if role is not None and sender is None and receiver is not None:
                message = self._call(role, sent, value, receiver)
            elif role is not None and receiver is None and sender is not None:
                message = self._reply(role, sent, value, sender)
            elif sender is not None and receiver is not None:
                label = self._label(sent, value)
                message = Message(sender, receiver, label, "send", sent[1])
            if message is not None:
                messages.append(message)
        return messages

    def _label(self, sent: Half, value: Any) -> str:
        if sent[5] is None:
            return f"<{sent[4][1]:,} bytes>"
        return self._recorder.label(value)

    def _call(self, role: str, sent: Half, value: Any, worker: Participant) -> Message | None:
        """A task taken by ``worker``: CALL from the task's caller."""
        if role == POOL_TASKS and _is_pool_task(value):
            job, _, func, args, kwargs = value
            caller = self._jobs.get(job)
            if caller is not None:
                return Message(caller, worker, _task_label(func, args, kwargs), "call", sent[1])
        elif role == EXECUTOR_CALLS and isinstance(value, Placeholder):
            work_id = value.fields.get("work_id")
            work = self._works.get((_canonical(sent[3], self._peers), work_id))  # type: ignore[arg-type]
            if work is not None:
                work.worker = worker
                label = work.label or "call"
                return Message(work.caller, worker, label, "call", sent[1])
        return None

    def _reply(self, role: str, sent: Half, value: Any, worker: Participant) -> Message | None:
        """A result sent by ``worker``: REPLY to the task's caller."""
        if role == POOL_RESULTS and _is_pool_result(value):
            job, _, (ok, result) = value
            caller = self._jobs.get(job)
            if caller is not None:
                label = self._recorder.label(result) if ok else f"raised {_error_name(result)}"
                return Message(worker, caller, label, "reply", sent[1])
        elif role == EXECUTOR_RESULTS and isinstance(value, Placeholder):
            fields = value.fields
            calls = self._calls_of.get(_canonical(sent[3], self._peers))
            work = self._works.get((calls, fields.get("work_id")))  # type: ignore[arg-type]
            if work is not None and work.worker == worker:
                error = fields.get("exception")
                label = (
                    f"raised {_error_name(error)}"
                    if error is not None
                    else self._recorder.label(fields.get("result"))
                )
                return Message(worker, work.caller, label, "reply", sent[1])
        return None

    def close(self) -> None:
        """Forget the processes; close the sockets to the children."""
        self.active = False
        for link in self._links.values():
            vars(link.process).pop("_livekit_trace", None)
            link.theirs.close()
            link.ours.close()
        self._links.clear()
        self._feeds.clear()


def _ending(link: _Link) -> Exit | None:
    """How a child ended: as it reported, or by its exit code; None if it runs on."""
    end = link.report[1] if link.report is not None else None
    if end is not None and end[1] is not None:
        return Exit(link.participant, end[1], end[2])
    code = link.process.exitcode
    if code is not None:
        return Exit(link.participant, _exit_reason(code), time.monotonic())
    return None


def _wait_for_thread(link: _Link, deadline: float) -> None:
    """Wait until the child's helper thread, which sent the report, has ended."""
    end = link.report[1] if link.report is not None else None
    tid = end[3] if end is not None else None
    task = Path(f"/proc/{link.process.pid}/task/{tid}")
    while tid is not None and task.exists() and time.monotonic() < deadline:
        time.sleep(0.001)


def _canonical(channel: Channel, peers: dict[Channel, Channel]) -> Channel:
    return peers.get(channel, channel)


def _compatible(sent: Channel, got: Channel, peers: dict[Channel, Channel]) -> bool:
    """Whether a message sent on ``sent`` can be taken on ``got``.

    A pipe (``Queue``, ``SimpleQueue``, ``Pipe(duplex=False)``) is one
    inode at both ends.  The ends of a socket pair (``Pipe()``) have
    inodes of their own: one made during the trace is known; one made
    before is paired with any socket.
    """
    sent, got = _canonical(sent, peers), _canonical(got, peers)
    if sent == got:
        return True
    if sent[2] and got[2]:
        return sent not in peers.values() and got not in peers.values()
    return False


def pair_halves(
    halves: Iterable[Half], peers: dict[Channel, Channel] | None = None
) -> list[tuple[Half, Half]]:
    """Pair each receive with the earliest earlier send of the same bytes on its channel.

    A pipe delivers in order, so the first receive of some bytes is the
    first send of them.  Two halves of one participant never pair.

    Examples
    --------
    >>> pipe = (1, 7, False)
    >>> halves = [("recv", 4.0, 0, pipe, (22, 9), None), ("send", 1.0, 0, pipe, (11, 9), b"ping"),
    ...           ("recv", 2.0, 1, pipe, (11, 9), None), ("send", 3.0, 1, pipe, (22, 9), b"PING")]
    >>> [(s[2], r[2], s[5]) for s, r in pair_halves(halves)]
    [(0, 1, b'ping'), (1, 0, b'PING')]
    """
    peers = peers or {}
    sends: dict[tuple[int, int], list[Half]] = {}
    pairs: list[tuple[Half, Half]] = []
    for half in sorted(halves, key=lambda h: h[1]):
        if half[0] == "send":
            sends.setdefault(half[4], []).append(half)
            continue
        waiting = sends.get(half[4], [])
        for index, sent in enumerate(waiting):
            same = sent[2] is not None and sent[2] == half[2]
            if not same and _compatible(sent[3], half[3], peers):
                del waiting[index]
                pairs.append((sent, half))
                break
    return pairs


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


def _is_pool_task(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 5 and isinstance(value[0], int)


def _is_pool_result(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 3
        and isinstance(value[0], int)
        and isinstance(value[2], tuple)
        and len(value[2]) == 2
    )


def _task_label(func: Any, args: Any, kwargs: Any) -> str:
    """``square(3)``; a chunk of ``Pool.map`` reads ``square on 32 items``."""
    name = name_of(func)
    if name in {"mapstar", "starmapstar"} and isinstance(args, tuple) and len(args) == 1:
        fn, chunk = args[0]
        return _chunk_label(fn, chunk, star=name == "starmapstar")
    return call_label(func, tuple(args), dict(kwargs) if isinstance(kwargs, dict) else {})


def _submit_label(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The label of ``submit(fn, ...)``; ``ProcessPoolExecutor.map`` submits chunks."""
    if (
        isinstance(fn, functools.partial)
        and fn.func is concurrent.futures.process._process_chunk
        and fn.args
        and len(args) == 1
    ):
        return _chunk_label(fn.args[0], args[0], star=True)
    return call_label(fn, args, kwargs)


def _chunk_label(fn: Any, chunk: Any, *, star: bool) -> str:
    items = list(chunk) if isinstance(chunk, tuple | list) else []
    if len(items) == 1:
        single = tuple(items[0]) if star else (items[0],)
        return call_label(fn, single, {})
    return f"{name_of(fn)} on {len(items)} items"


def _error_name(error: Any) -> str:
    # Pools send an exception wrapped with its traceback as text.
    if isinstance(error, Placeholder) and error.args and "rebuild_exc" in type(error).__name__:
        error = error.args[0]
    return type(error).__name__


def _exit_reason(code: int) -> str:
    if code == 0:
        return "normal"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


# -- the rows of the hook table -------------------------------------------

#: What processes, pipes, queues and pools mean to the :class:`ProcessTracker`
#: (the sink ``"processes"``).
HOOKS: tuple[Hook, ...] = (
    Hook(_PROCESS, "start", "start", ("self",), "processes.starting"),
    Hook(_PROCESS, "start", "return", ("self",), "processes.started"),
    Hook(_PROCESS, "_bootstrap", "start", ("self",), "processes.bootstrapping"),
    Hook(_CONNECTION, "_send_bytes", "start", ("self", "buf"), "processes.sent"),
    Hook(_CONNECTION, "_recv_bytes", "return", ("self", RETURN), "processes.received"),
    Hook(multiprocessing.queues.Queue, "put", "start", ("self",), "processes.queued"),
    Hook(multiprocessing.queues.JoinableQueue, "put", "start", ("self",), "processes.queued"),
    Hook(multiprocessing.connection, "Pipe", "return", (RETURN,), "processes.pipe_made"),
    Hook(multiprocessing.pool.ApplyResult, "__init__", "return", ("self",), "processes.job_made"),
    Hook(multiprocessing.pool.IMapIterator, "__init__", "return", ("self",), "processes.job_made"),
    Hook(_EXECUTOR, "submit", "start", ("self",), "processes.executor_used"),
    Hook(
        _EXECUTOR,
        "submit",
        "return",
        ("self", RETURN, "fn", "args", "kwargs"),
        "processes.work_submitted",
    ),
)

__all__ = ["HOOKS", "ProcessTracker", "merge_by_time", "pair_halves"]
