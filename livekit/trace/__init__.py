"""Sequence traces: who sends what to whom while some code runs.

:func:`seq_trace` runs a function and records the messages that the calling
thread, and every thread, task and process it starts or messages, exchange:
``queue`` and ``asyncio.Queue`` messages, ``ThreadPoolExecutor`` calls and
replies, thread, task and process starts and exits, ``multiprocessing``
queue and pipe messages.  The result is a Mermaid sequence diagram, the
Python counterpart of Elixir's ``Kino.Process.seq_trace``.

Capture and formatting are separate: :mod:`livekit.trace.recorder` and its
backends record :mod:`livekit.trace.events`; :mod:`livekit.trace.format`
turns them into Mermaid text.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

from livekit import _display
from livekit.mermaid import Mermaid
from livekit.trace import channels as _channels
from livekit.trace import format as _format
from livekit.trace import hooks as _hooks
from livekit.trace import sources as _sources
from livekit.trace.channels import channel
from livekit.trace.events import Event, Exit, Participant
from livekit.trace.hooks import Hook, register, unregister
from livekit.trace.processes import HOOKS as _PROCESS_HOOKS
from livekit.trace.processes import ProcessTracker
from livekit.trace.recorder import Recorder

__all__ = [
    "Hook",
    "SequenceTrace",
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


class _Backend(Protocol):
    name: str

    def install(self) -> None: ...

    def uninstall(self) -> None: ...


def _make_backend(name: str | None, rows: Sequence[Hook], sinks: Mapping[str, object]) -> _Backend:
    from livekit.trace.patching import PatchingBackend

    if name is None:
        name = "monitoring" if sys.version_info >= (3, 12) else "patching"
    if name == "patching":
        return PatchingBackend(rows, sinks)
    if name == "monitoring" and sys.version_info >= (3, 12):
        from livekit.trace.monitoring import MonitoringBackend

        return MonitoringBackend(rows, sinks)
    raise ValueError(f"expected backend 'monitoring' (Python 3.12+) or 'patching', got {name!r}")


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
    message_label, caption, max_messages
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
    ) -> None:
        _check_options(message_label, caption, max_messages)
        self._message_label = message_label
        self._caption = caption
        self._max_messages = max_messages
        self._target = target
        self._backend_name = backend
        self._recorder: Recorder | None = None
        self._processes: ProcessTracker | None = None
        self._backend: _Backend | None = None
        self._events: tuple[Event, ...] = ()
        self._omitted = 0
        self._caller: Participant | None = None
        self._started: list[_sources.Source] = []

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
            # A forked child takes the hooks out before it reports on its own.
            processes.uninstall_in_child = backend.uninstall
            # Sources start before the hooks go in, and end after they come
            # out, so that their own round trips are not traced.
            started = _sources.start_all(recorder.new_participant, recorder.caller)
            try:
                backend.install()
            except BaseException:
                _sources.finish_all(started, [], 0)  # undo what they installed
                raise
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
        try:
            self._backend.uninstall()
        finally:
            recorder, processes = self._recorder, self._processes
            recorder.active = False
            try:
                # The children's messages, then tasks under their final names.
                events, overflow = processes.finish(
                    recorder.recorded(), recorder.room, recorder.shown
                )
                events = recorder.finish(events)
                self._omitted = recorder.omitted + overflow
                # Messages seen outside this interpreter (livekit.clusters).
                room = self._max_messages - sum(not isinstance(e, Exit) for e in events)
                events, overflow = _sources.finish_all(self._started, events, room)
                self._omitted += overflow
                self._events = tuple(events)
            finally:
                recorder.close()
                processes.close()
            with _running_lock:
                _running = None

    @property
    def events(self) -> tuple[Event, ...]:
        """The recorded events, in the order they happened."""
        if self._recorder is not None and self._recorder.active:
            return tuple(self._recorder.recorded())
        return self._events

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
          every message a flow from its send to its receive
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
        events, omitted = self.events, self.omitted
        caption = self._caption or _format.default_caption(self._target, events, omitted)
        source = _format.sequence_diagram(self._caller, events, omitted)
        return Mermaid(source, caption=caption)


def tracing(
    *,
    message_label: Callable[[Any], str | None] | None = None,
    caption: str | None = None,
    max_messages: int = DEFAULT_MAX_MESSAGES,
) -> SequenceTrace:
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
    return SequenceTrace(message_label=message_label, caption=caption, max_messages=max_messages)


def seq_trace(
    fn: Callable[[], T],
    *,
    message_label: Callable[[Any], str | None] | None = None,
    caption: str | None = None,
    max_messages: int = DEFAULT_MAX_MESSAGES,
) -> tuple[T, Mermaid]:
    """Run ``fn()`` and return its result with a diagram of the messages sent.

    The calling thread is traced, and so is everything it starts or
    messages while ``fn`` runs (like Erlang's ``seq_trace`` token):
    threads and their exits, ``queue.Queue``/``LifoQueue``/``PriorityQueue``
    messages, ``ThreadPoolExecutor`` calls and replies, asyncio tasks and
    ``asyncio.Queue`` messages, ``multiprocessing`` processes and their
    ``Queue``/``Pipe`` messages.

    Parameters
    ----------
    fn
        A function of no arguments.
    message_label
        ``message_label(message)`` returns the label of a message (or of a
        value sent back), or None to keep the default, a short ``repr``.
    caption
        The diagram's caption; by default a sentence naming ``fn``.
    max_messages
        Keep at most this many arrows; the diagram then ends with a note
        saying how many were not shown.

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
    trace = SequenceTrace(
        message_label=message_label, caption=caption, max_messages=max_messages, target=target
    )
    try:
        with trace:
            result = fn()
    except BaseException as error:
        _attach(error, trace)
        raise
    return result, trace.diagram


def render_seq_trace(
    fn: Callable[[], T],
    *,
    message_label: Callable[[Any], str | None] | None = None,
    caption: str | None = None,
    max_messages: int = DEFAULT_MAX_MESSAGES,
) -> T:
    """Run ``fn()``, display the diagram of its messages, and return its result.

    Takes the options of :func:`seq_trace`.  In a notebook the diagram is
    drawn; in a terminal its caption (as a ``%%`` comment) and Mermaid
    source are printed.  If ``fn`` raises, the diagram of what happened
    before is displayed, then the exception goes on.

    Examples
    --------
    >>> render_seq_trace(lambda: 6 * 7, caption="No messages")
    %% No messages
    sequenceDiagram
        participant p0 as caller (MainThread)
    42
    """
    try:
        result, diagram = seq_trace(
            fn, message_label=message_label, caption=caption, max_messages=max_messages
        )
    except BaseException as error:
        partial = getattr(error, EXCEPTION_ATTRIBUTE, None)
        if isinstance(partial, Mermaid):
            _display.show(partial)
        raise
    _display.show(diagram)
    return result


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
        f"livekit.seq_trace: the diagram of the {len(trace.events)} events recorded "
        f"before this error is in the exception's {EXCEPTION_ATTRIBUTE} attribute"
    )
