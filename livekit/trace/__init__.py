"""Sequence traces: who sends what to whom while some code runs.

:func:`seq_trace` runs a function and records the messages that the calling
thread, and every thread, task and process it starts or messages, exchange:
``queue`` and ``asyncio.Queue`` messages, ``ThreadPoolExecutor`` calls and
replies, thread, task and process starts and exits, ``multiprocessing``
queue and pipe messages, and the bytes sent over sockets
(``livekit.trace.sockets``).  ``participants=``, ``exclude=`` and
``collapse=`` narrow what is drawn (``livekit.trace.narrow``).  The
result is a Mermaid sequence diagram, the Python counterpart of Elixir's
``Kino.Process.seq_trace``.

Capture and formatting are separate: :mod:`livekit.trace.recorder` and its
backends record :mod:`livekit.trace.events`; :mod:`livekit.trace.format`
turns them into Mermaid text.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict, TypeVar, Unpack

from livekit import _display
from livekit.mermaid import Mermaid
from livekit.trace import channels as _channels
from livekit.trace import format as _format
from livekit.trace import hooks as _hooks
from livekit.trace import sources as _sources
from livekit.trace._compact import Recorded, expand
from livekit.trace.channels import channel
from livekit.trace.events import Activation, Event, Exit, Participant
from livekit.trace.hooks import Backend, Hook, register, unregister
from livekit.trace.narrow import Narrowing, check_collapse, check_patterns
from livekit.trace.processes import HOOKS as _PROCESS_HOOKS
from livekit.trace.processes import ProcessTracker
from livekit.trace.recorder import Recorder
from livekit.trace.sockets import SocketPatches, SocketTracker

__all__ = [
    "Hook",
    "SequenceTrace",
    "TraceOptions",
    "channel",
    "register",
    "render_seq_trace",
    "seq_trace",
    "tracing",
    "unregister",
]

T = TypeVar("T")

#: How many messages a diagram shows unless told otherwise; Mermaid stays
#: readable, and quick to draw, well below a thousand arrows.
DEFAULT_MAX_MESSAGES = 500

#: Name of the attribute that carries the partial diagram on an exception
#: raised by the traced function.
EXCEPTION_ATTRIBUTE = "livekit_seq_trace"

_running_lock = threading.Lock()
_running: SequenceTrace | None = None


def _make_backend(name: str | None, rows: Sequence[Hook], sinks: Mapping[str, object]) -> Backend:
    from livekit.trace.patching import PatchingBackend

    if name is None:
        name = "monitoring" if sys.version_info >= (3, 12) else "patching"
    if name == "patching":
        return PatchingBackend(rows, sinks)
    if name == "monitoring" and sys.version_info >= (3, 12):
        from livekit.trace.monitoring import MonitoringBackend

        return MonitoringBackend(rows, sinks)
    raise ValueError(f"expected backend 'monitoring' (Python 3.12+) or 'patching', got {name!r}")


class _Narrow:
    """The narrowing options, checked at once, for the recorder to build."""

    def __init__(self, participants: object, exclude: object, collapse: object) -> None:
        self.participants = check_patterns("participants", participants)
        self.exclude = check_patterns("exclude", exclude)
        self.collapse = check_collapse(collapse)

    def __call__(self, new_key: Callable[[], int]) -> Narrowing:
        return Narrowing(
            participants=self.participants,
            exclude=self.exclude,
            collapse=self.collapse,
            new_key=new_key,
        )


class TraceOptions(TypedDict, total=False):
    """The options that :func:`~livekit.seq_trace` and its kin take.

    :func:`~livekit.render_seq_trace`, :func:`~livekit.tracing` and
    :class:`~livekit.SequenceTrace` take them too.  Each is described
    under :func:`~livekit.seq_trace`; the defaults are those of
    :class:`~livekit.SequenceTrace`.  Type checkers and
    editors read them from here: ``seq_trace(fn, max_messages=50)``.
    """

    message_label: Callable[[Any], str | None] | None
    caption: str | None
    max_messages: int
    participants: str | Iterable[str] | None
    exclude: str | Iterable[str] | None
    collapse: Mapping[str, str] | str | Iterable[str] | None


def _options(function: str, options: TraceOptions) -> TraceOptions:
    """``options`` if each is one of :class:`TraceOptions`, else a TypeError naming it."""
    for name in options:
        if name not in TraceOptions.__optional_keys__:
            known = ", ".join(sorted(TraceOptions.__optional_keys__))
            raise TypeError(
                f"{function}() got an unexpected keyword argument {name!r} (its options: {known})"
            )
    return options


def _check_options(message_label: object, caption: object, max_messages: object) -> None:
    if message_label is not None and not callable(message_label):
        raise ValueError(f"expected message_label to be a callable or None, got {message_label!r}")
    if caption is not None and not isinstance(caption, str):
        raise ValueError(f"expected caption to be a str or None, got {caption!r}")
    if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
        raise ValueError(f"expected max_messages to be a positive int, got {max_messages!r}")


class SequenceTrace:
    """A trace of the code run inside a ``with`` block; see :func:`tracing`.

    After the block, :attr:`diagram` is the Mermaid diagram and
    :attr:`events` the recorded events; inside it they show what has been
    recorded so far.  A ``SequenceTrace`` is used once.

    Parameters
    ----------
    message_label, caption, max_messages, participants, exclude, collapse
        As for :func:`seq_trace`.
    target
        What the default caption says was traced.
    backend
        ``"monitoring"`` (``sys.monitoring``, Python 3.12+) or
        ``"patching"``; None picks the first on 3.12+ and the second on
        3.11.  Other values raise ``ValueError`` when the block starts.

    Examples
    --------
    >>> with SequenceTrace(backend="patching", target="nothing") as trace:
    ...     pass
    >>> trace.events, trace.diagram.caption
    ((), 'Messages exchanged while nothing ran: none were recorded.')
    """

    def __init__(
        self,
        *,
        message_label: Callable[[Any], str | None] | None = None,
        caption: str | None = None,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        target: str = "the traced block",
        backend: str | None = None,
        participants: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        collapse: Mapping[str, str] | str | Iterable[str] | None = None,
    ) -> None:
        _check_options(message_label, caption, max_messages)
        self._narrow = _Narrow(participants, exclude, collapse)
        self._message_label = message_label
        self._caption = caption
        self._max_messages = max_messages
        self._target = target
        self._backend_name = backend
        self._recorder: Recorder | None = None
        self._processes: ProcessTracker | None = None
        self._backend: Backend | None = None
        # After the trace: what it kept (queue messages compact, see
        # livekit.trace._compact) and its participants by key; the events
        # are made from them when first read.
        self._records: Sequence[Recorded] = ()
        self._participants: dict[int, Participant] = {}
        self._events: tuple[Event, ...] | None = ()
        self._omitted = 0
        self._caller: Participant | None = None
        self._started: _sources.Running | None = None
        self._socket_patches: SocketPatches | None = None
        self._sockets: SocketTracker | None = None

    def __enter__(self) -> SequenceTrace:
        global _running  # noqa: PLW0603 - one trace per process, on purpose
        with _running_lock:
            if _running is not None:
                owner = _running._caller.name if _running._caller else "another thread"
                raise RuntimeError(
                    f"a sequence trace is already running in this process (started by {owner}); "
                    "livekit records one trace at a time: end it first"
                )
            if self._recorder is not None:
                raise RuntimeError("this SequenceTrace was already used; make a new one")
            recorder = Recorder(
                threading.current_thread(),
                message_label=self._message_label,
                max_messages=self._max_messages,
                narrowing=self._narrow,
            )
            processes = ProcessTracker(recorder)
            # The trace builds its sinks and hands them, with the table of
            # hooks that name them, to the backend.
            rows = (
                *_hooks.STANDARD,
                *_PROCESS_HOOKS,
                *_channels.library_rows(),
                *_hooks.registered(),
            )
            sinks = {"recorder": recorder, "processes": processes}
            backend = _make_backend(self._backend_name, rows, sinks)
            sockets = SocketTracker(recorder)
            # Socket methods are C, which no row of the table can name: both
            # backends shadow them the same way (livekit.trace.sockets).
            socket_patches = SocketPatches(sockets)
            # A forked child takes the hooks out before it reports on its own.
            processes.uninstall_in_child = backend.uninstall
            # Sources start before the hooks go in, and end after they come
            # out, so that their own round trips are not traced.
            started = _sources.start_all(
                recorder.new_participant,
                recorder.caller,
                who=recorder.who,
                label=recorder.label,
                max_messages=self._max_messages,
            )
            try:
                backend.install()
                try:
                    socket_patches.install()
                except BaseException:
                    backend.uninstall()
                    raise
            except BaseException:
                _sources.finish_all(started, [], 0)  # undo what they installed
                raise
            self._socket_patches, self._sockets = socket_patches, sockets
            self._recorder, self._backend, self._caller = recorder, backend, recorder.caller
            self._processes = processes
            self._started = started
            _running = self
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        global _running  # noqa: PLW0603
        assert self._recorder is not None  # noqa: S101 - __enter__ ran
        assert self._backend is not None  # noqa: S101
        assert self._processes is not None  # noqa: S101
        # Put the standard library back before anything else, whatever the
        # traced code did: other threads keep running through these methods.
        assert self._socket_patches is not None  # noqa: S101
        assert self._sockets is not None  # noqa: S101
        try:
            try:
                self._socket_patches.uninstall()
            finally:
                self._backend.uninstall()
        finally:
            recorder, processes = self._recorder, self._processes
            recorder.active = False
            try:
                self._sockets.finish()  # arrows still open get their receivers
                # The children's messages, then tasks under their final names.
                recorded = recorder.recorded()
                events, overflow = processes.finish(recorded, recorder.room, recorder.shown)
                # The recorder narrowed its events as it recorded them: only
                # what the children reported still needs it.
                events = recorder.finish(events, narrowed=len(events) == len(recorded))
                self._omitted = recorder.omitted + overflow
                # Messages seen outside this interpreter (livekit.clusters).
                # Counted in C: a trace has thousands (list.count is faster than
                # Counter, and quickest for compact messages, found by identity:
                # when every event is one, there is no note to count).
                kinds = list(map(type, events))
                notes = 0
                if kinds.count(tuple) < len(kinds):
                    notes = kinds.count(Exit) + kinds.count(Activation)
                room = self._max_messages - (len(events) - notes)
                assert self._started is not None  # noqa: S101 - __enter__ ran
                merged, overflow = _sources.finish_all(self._started, events, room)
                self._omitted += overflow
                if len(merged) != len(events):  # messages seen outside were merged in
                    merged = recorder.narrow(merged)
                self._records, self._participants = merged, recorder.participants
                self._events = None  # made when read
            finally:
                recorder.close()
                processes.close()
                self._sockets.close()
            with _running_lock:
                _running = None

    @property
    def events(self) -> tuple[Event, ...]:
        """The recorded events, in the order they happened."""
        recorder = self._recorder
        if recorder is not None and recorder.active:
            return tuple(expand(recorder.recorded(), recorder.participants))
        events = self._events
        if events is None:
            # Made once, on the first read; the records go, the events
            # hold the same labels and times.
            events = self._events = tuple(expand(self._records, self._participants))
            self._records = events
        return events

    def _recorded(self) -> tuple[Sequence[Recorded], dict[int, Participant]]:
        """What the trace kept, queue messages compact, and its participants by key."""
        recorder = self._recorder
        if recorder is not None and recorder.active:
            return recorder.recorded(), dict(recorder.participants)
        return self._records, self._participants

    @property
    def omitted(self) -> int:
        """How many messages were not kept because of ``max_messages``."""
        if self._recorder is not None and self._recorder.active:
            return self._recorder.omitted
        return self._omitted

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the trace to ``path`` and return the path.

        The format follows the suffix:

        - ``.html``: one self-contained page that draws the diagram offline,
          with its caption and copy and download buttons;
        - ``.mmd``: the Mermaid source, with the caption as a comment;
        - ``.json``: the Trace Event Format that Perfetto
          (``ui.perfetto.dev``) and ``chrome://tracing`` open: a track per
          thread, task and process, spawns and exits as instant events,
          a pool worker's work as a slice, every message a flow from its send to its receive
          (:mod:`livekit.trace.export`).

        Examples
        --------
        >>> import json, pathlib, tempfile, threading
        >>> with SequenceTrace(target="a thread") as trace:
        ...     worker = threading.Thread(target=lambda: None, name="worker")
        ...     worker.start()
        ...     worker.join()
        >>> path = trace.save(pathlib.Path(tempfile.mkdtemp()) / "trace.json")
        >>> sorted({e["ph"] for e in json.loads(path.read_text())["traceEvents"]})
        ['M', 'i']
        """
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix == ".json":
            from livekit.trace.export import write_trace_events

            events, omitted = self.events, self.omitted
            with target.open("w", encoding="utf-8") as file:
                write_trace_events(events, file, omitted=omitted)
            return target
        if suffix not in {".html", ".mmd"}:
            raise ValueError(f"expected a path ending in .html, .mmd or .json, got {str(path)!r}")
        return self.diagram.save(target)

    @property
    def diagram(self) -> Mermaid:
        """The Mermaid sequence diagram of :attr:`events`."""
        if self._caller is None:
            raise RuntimeError("the trace has not started: use it in a with block")
        # The records as kept: a hundred thousand queue messages are drawn
        # without a Message made for each.
        records, participants = self._recorded()
        omitted = self.omitted
        caption = self._caption or _format._caption(self._target, records, omitted)
        source = _format._diagram(self._caller, records, participants, omitted)
        return Mermaid(
            source, caption=caption, text=lambda: _drawing(expand(records, participants), omitted)
        )


def tracing(**options: Unpack[TraceOptions]) -> SequenceTrace:
    """Trace the messages sent while a ``with`` block runs.

    The form of :func:`seq_trace` for code that is not one function, such
    as a notebook cell that awaits.  The options are those of
    :func:`seq_trace`.  An exception raised in the block goes on
    unchanged; the diagram of what happened before it stays available.

    Examples
    --------
    >>> import queue, threading
    >>> inbox = queue.Queue()
    >>> with tracing(caption="One message to a worker") as trace:
    ...     worker = threading.Thread(target=inbox.get, name="worker")
    ...     worker.start()
    ...     inbox.put("hello")
    ...     worker.join()
    >>> print(trace.diagram)
    sequenceDiagram
        participant p0 as caller (MainThread)
        participant p1 as worker
        p0->>p1: SPAWN
        activate p1
        p0->>p1: 'hello'
        Note over p1: EXIT: normal
        deactivate p1
    """
    return SequenceTrace(**_options("tracing", options))


def seq_trace(fn: Callable[[], T], **options: Unpack[TraceOptions]) -> tuple[T, Mermaid]:
    """Run ``fn()`` and return its result with a diagram of the messages sent.

    The calling thread is traced, and so is everything it starts or
    messages while ``fn`` runs (like Erlang's ``seq_trace`` token):
    threads and their exits, ``queue.Queue``/``LifoQueue``/``PriorityQueue``
    messages, ``ThreadPoolExecutor`` calls and replies, asyncio tasks and
    ``asyncio.Queue`` messages, ``multiprocessing`` processes and their
    ``Queue``/``Pipe`` messages, and the bytes they send over sockets,
    asyncio streams and transports (``livekit.trace.sockets``): an
    arrow per write, labelled with its byte count and first line, to the
    reader, or to a participant named by the peer's address when the
    other end is outside the trace.

    Parameters
    ----------
    fn
        A function of no arguments.
    **options
        Any of the six below (:class:`~livekit.trace.TraceOptions`), by keyword; another
        name raises ``TypeError``.
    message_label
        ``message_label(message)`` returns the label of a message (or of a
        value sent back), or None to keep the default, a short ``repr``.
    caption
        The diagram's caption; by default a sentence naming ``fn``.
    max_messages
        Keep at most this many arrows; the diagram then ends with a note
        saying how many were not shown.  Arrows that the options below
        leave out do not count.
    participants
        A pattern, or a list of them: draw only the participants they
        match, and the caller.  A pattern matches a participant's name
        shell-style (``"worker-*"``, ``"127.0.0.1:*"``) or names the
        module of its code or a package holding it (``"aiohttp"``).
    exclude
        Patterns of participants not to draw.
    collapse
        Patterns of participants to draw as one, such as a library's
        internal tasks: a mapping of pattern to the name to draw
        (``{"aiohttp.web*": "server"}``), or patterns that name their own
        group.  Messages inside a group, and its members' starts and
        ends, are not drawn.

    Returns
    -------
    tuple
        ``(fn(), diagram)``, the diagram a :class:`~livekit.Mermaid`.

    Raises
    ------
    TypeError
        If ``fn`` is not callable.
    ValueError
        If an option has a bad value.
    RuntimeError
        If another trace is running in this process.

    Notes
    -----
    If ``fn`` raises, the exception reaches the caller unchanged, with the
    diagram of what happened before it in its ``livekit_seq_trace``
    attribute (and a note saying so).

    Examples
    --------
    >>> import queue, threading
    >>> def ping_pong():
    ...     inbox, outbox = queue.Queue(), queue.Queue()
    ...     def pong():
    ...         if inbox.get() == "ping":
    ...             outbox.put("pong")
    ...     threading.Thread(target=pong, name="pong").start()
    ...     inbox.put("ping")
    ...     return outbox.get()
    >>> result, diagram = seq_trace(ping_pong)
    >>> result
    'pong'
    >>> print(diagram)  # doctest: +ELLIPSIS
    sequenceDiagram
        participant p0 as caller (MainThread)
        participant p1 as pong
        p0->>p1: SPAWN
        activate p1
        p0->>p1: 'ping'
        p1->>p0: 'pong'
        ...
    """
    if not callable(fn):
        raise TypeError(f"seq_trace expects a callable, got {type(fn).__name__}: {fn!r}")
    target = getattr(fn, "__qualname__", None) or type(fn).__name__
    trace = SequenceTrace(target=target, **_options("seq_trace", options))
    try:
        with trace:
            result = fn()
    except BaseException as error:
        _attach(error, trace)
        raise
    return result, trace.diagram


def render_seq_trace(fn: Callable[[], T], **options: Unpack[TraceOptions]) -> T:
    """Run ``fn()``, display the diagram of its messages, and return its result.

    Takes the options of :func:`seq_trace`.  In a notebook the diagram is
    drawn.  In a terminal its caption is printed, then a plain-text drawing,
    one line per message in the order they were sent, then how to save the
    picture as a page; with the environment variable ``LIVEKIT_TERMINAL``
    set to ``mermaid``, the caption (as a ``%%`` comment) and the Mermaid
    source instead.  If ``fn`` raises, the diagram of what happened before
    is displayed, then the exception goes on.

    Examples
    --------
    >>> import queue, threading
    >>> def hello():
    ...     inbox = queue.Queue()
    ...     worker = threading.Thread(target=inbox.get, name="worker")
    ...     worker.start()
    ...     inbox.put("hello")
    ...     worker.join()
    ...     return 42
    >>> render_seq_trace(hello, caption="One message to a worker")
    One message to a worker
    <BLANKLINE>
    caller (MainThread) → worker: SPAWN
    caller (MainThread) → worker: 'hello'
    worker              : EXIT: normal
    <BLANKLINE>
    Save it as a page: diagram.save("diagram.html")
    42
    """
    try:
        result, diagram = seq_trace(fn, **_options("render_seq_trace", options))
    except BaseException as error:
        partial = getattr(error, EXCEPTION_ATTRIBUTE, None)
        if isinstance(partial, Mermaid):
            _display.show(partial)
        raise
    _display.show(diagram)
    return result


def _drawing(events: Sequence[Event], omitted: int) -> str:
    """The terminal drawing of a trace, as wide as the terminal it goes to."""
    from livekit.trace.text import sequence_text

    width = shutil.get_terminal_size((100, 24)).columns
    return sequence_text(events, omitted, width=width)


def _attach(error: BaseException, trace: SequenceTrace) -> None:
    """Give the traced function's exception the diagram of what led to it."""
    if trace._caller is None:  # the trace never started (bad input, another trace)
        return
    diagram = trace.diagram
    try:
        setattr(error, EXCEPTION_ATTRIBUTE, diagram)
    except AttributeError:  # pragma: no cover - an exception type with __slots__
        return
    error.add_note(
        f"livekit.seq_trace: the diagram of the {len(trace._recorded()[0])} events recorded "
        f"before this error is in the exception's {EXCEPTION_ATTRIBUTE} attribute"
    )
