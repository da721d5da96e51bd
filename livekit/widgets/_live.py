"""The server side of a live widget: state, clients, and flow control.

A :class:`LiveWidget` keeps its state in Python.  Each front end that shows
it is a :class:`Connection`, made by :meth:`LiveWidget.attach` with a
``send`` function; the protocol is in :mod:`livekit.widgets`.  Jupyter
attaches one connection per anywidget model; ``livekit serve`` attaches one
per page that shows the widget.

Flow control, so that a fast producer never builds a queue: a connection
has at most ``IN_FLIGHT`` messages on their way until the browser
acknowledges one.  The browser
acknowledges a message when it arrives, not once drawn: it merges what
arrives into what it draws next (at most a window of rows per dataset), so
a busy page still holds bounded data, and a push need not wait behind the
drawing of the one before.  More than one message in flight lets a push go
out while the last one's acknowledgement is still crossing the kernel: on
a loaded machine that round trip often took longer than the 50 ms between
a listener's pushes.
Changes made meanwhile are not queued but *marked* (which datasets changed,
how many rows came in); the next message is computed from the widget's
state when it goes, so its size is bounded by the widget's data.  A browser
that does not acknowledge (a kernel busy running a cell cannot read its
replies) still gets a message every :data:`STALL` seconds.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from livekit import _display
from livekit.outputs import vegalite

Message = dict[str, Any]
Send = Callable[[Message], None]

#: The front-end module that draws every livekit widget.
WIDGET_JS = Path(__file__).resolve().parent.parent / "static" / "livekit-widget.js"

#: At most one message per connection this often (seconds), even when acked.
MIN_INTERVAL = 0.02
#: Send anyway when the last message has not been acknowledged for this long.
STALL = 0.25
#: At most this many messages per connection wait for their acknowledgement
#: (each holds at most a window of rows per dataset).
IN_FLIGHT = 3
#: A wake-up asked for less than this much earlier (seconds) than the one
#: already set is the same wake-up: the arithmetic of two clock readings
#: moves a deadline by nanoseconds, and no timer is replaced for that.
_SAME_WAKE_UP = 0.001


class Connection:
    """One front end of a live widget.

    Made by :meth:`LiveWidget.attach`.  Pass every message the front end
    sends to :meth:`handle`; call :meth:`detach` (or the connection itself)
    when it goes away.
    """

    def __init__(self, widget: LiveWidget, send: Callable[[dict[str, Any]], None]) -> None:
        self._widget = widget
        self._send = send
        self.ready = False
        self.sent_seq = 0
        self.acked_seq = 0
        self.last_send = -float("inf")
        #: What changed since the last message; the widget decides its shape.
        self.pending: dict[str, Any] = {}
        self.attached = True

    def handle(self, msg: Mapping[str, Any]) -> None:
        """Take one message from this front end (``ready``, ``ack``, ...)."""
        self._widget._handle(self, msg)

    def detach(self) -> None:
        """Forget this front end; nothing more is sent to it."""
        self._widget._detach(self)

    __call__ = detach

    @property
    def in_flight(self) -> bool:
        """True while the last message sent is not yet acknowledged."""
        return self.sent_seq > self.acked_seq

    @property
    def full(self) -> bool:
        """True while ``IN_FLIGHT`` (3) messages wait for acknowledgement.

        Then nothing more is sent until one is acknowledged, or for
        ``STALL`` (0.25) seconds.
        """
        return self.sent_seq - self.acked_seq >= IN_FLIGHT

    def send(self, msg: Message) -> None:
        # Called with the widget's lock held, so messages leave in order.
        self.sent_seq += 1
        msg["seq"] = self.sent_seq
        self.last_send = time.monotonic()
        self._send(msg)


class LiveWidget:
    """Base of livekit's live widgets: server-side state, any number of clients.

    Subclasses set ``kind`` (and ``esm``, for a front end of their own) and
    implement ``_replay()`` (the whole state as one message, for a front
    end that is new or reloaded) and ``_static_bundle()`` (the MIME bundle
    a book page shows).  They call :meth:`changed` when the state changes;
    by default that re-sends ``_replay()``, and a widget with big state
    (:class:`VegaLite`) overrides ``_changes(connection)`` to send only what
    changed.  ``_on_message(connection, msg)`` receives the front end's
    own messages (anything but ``ready``, ``ack`` and ``assets``).  See
    "Writing your own live widget" in the book.
    """

    #: Names the widget in ``replay`` messages and thread names.
    kind: ClassVar[str] = ""
    #: The front-end ES module that draws it (JavaScript source, or the path
    #: of a ``.js`` file); None for livekit's own ``livekit-widget.js``.
    esm: ClassVar[str | Path | None] = None

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._connections: list[Connection] = []
        self._timer: threading.Timer | None = None
        self._timer_deadline = 0.0
        # Every timer started that may still be running (a replaced one is
        # cancelled, and its thread ends soon after): close() joins them all.
        self._timers: list[threading.Timer] = []
        self._model: Any = None
        self._book_displays: list[str] = []

    # ── the transport-agnostic API (livekit serve uses it) ──

    def attach(self, send: Callable[[dict[str, Any]], None]) -> Connection:
        """Connect a front end; ``send`` delivers one JSON message to it.

        ``send`` is called from any thread, one message at a time, in order,
        with the widget's lock held: it must not block for long and must not
        call back into the widget.  Nothing is sent until the front end
        says ``{"type": "ready"}``.

        Returns
        -------
        Connection
            Pass the front end's messages to its ``handle``; call it (or its
            ``detach``) when the front end goes away.
        """
        connection = Connection(self, send)
        with self._lock:
            self._connections.append(connection)
        return connection

    def close(self) -> None:
        """Detach every front end and stop sending."""
        with self._lock:
            for connection in self._connections:
                connection.attached = False
            self._connections.clear()
            self._timer = None
            timers, self._timers = self._timers, []
            for timer in timers:
                timer.cancel()
            model, self._model = self._model, None
        for timer in timers:
            if timer is not threading.current_thread():
                timer.join()  # cancelled: it returns at once, and no thread outlives the widget
        if model is not None:
            model.close()

    def changed(self) -> None:
        """Tell every front end that the state changed.

        For subclasses: call it after changing the state (with or without
        the lock held).  Front ends get ``_changes()`` when they can take
        it, so many changes in a row cost one message.
        """
        with self._lock:
            for connection in self._connections:
                connection.pending.setdefault("state", True)
            self._changed()

    @property
    def connections(self) -> int:
        """How many front ends are attached."""
        with self._lock:
            return len(self._connections)

    # ── subclass hooks ──

    def _replay(self) -> Message:
        raise NotImplementedError

    def _changes(self, connection: Connection) -> list[Message]:
        # By default a change re-sends the whole (small) state.
        return [self._replay()]

    def _static_bundle(self) -> dict[str, Any]:
        raise NotImplementedError

    def _on_message(self, connection: Connection, msg: Mapping[str, Any]) -> None:
        return None

    # ── protocol and flow control ──

    def _handle(self, connection: Connection, msg: Mapping[str, Any]) -> None:
        kind = msg.get("type") if isinstance(msg, Mapping) else None
        with self._lock:
            if not connection.attached:
                return
            if kind == "ready":
                connection.ready = True
                connection.pending.clear()
                connection.send(self._replay())
            elif kind == "assets":
                # Outside flow control: the page needs it before drawing anything.
                connection._send({"type": "assets", "scripts": vegalite.live_scripts()})
            elif kind == "ack":
                seq = msg.get("seq")
                if isinstance(seq, int) and connection.acked_seq < seq <= connection.sent_seq:
                    connection.acked_seq = seq
                self._flush(connection, time.monotonic())
            else:
                self._on_message(connection, msg)

    def _detach(self, connection: Connection) -> None:
        with self._lock:
            connection.attached = False
            if connection in self._connections:
                self._connections.remove(connection)

    def _changed(self) -> None:
        """Send what changed to every ready connection that may have it now.

        Call with the lock held, after marking ``connection.pending``.
        """
        now = time.monotonic()
        for connection in self._connections:
            if connection.ready:
                self._flush(connection, now)

    def _flush(self, connection: Connection, now: float) -> None:
        if not connection.pending or not connection.ready:
            return
        waited = now - connection.last_send
        if waited < MIN_INTERVAL or (connection.full and waited < STALL):
            delay = STALL - waited if connection.full else MIN_INTERVAL - waited
            self._wake_in(max(delay, 0.001))
            return
        for msg in self._changes(connection):
            connection.send(msg)
        connection.pending.clear()

    def _wake_in(self, delay: float) -> None:
        # One short-lived timer per widget at most, for the earliest wake-up
        # anyone needs; it ends once nothing is pending, so an idle widget
        # holds no thread.
        deadline = time.monotonic() + delay
        if self._timer is not None:
            if self._timer_deadline <= deadline + _SAME_WAKE_UP:
                return
            self._timer.cancel()
        timer = threading.Timer(delay, self._on_timer)
        timer.name = f"livekit-{self.kind}-flush"
        timer.daemon = True
        self._timer = timer
        self._timers = [t for t in self._timers if t.is_alive()]
        self._timers.append(timer)
        self._timer_deadline = deadline
        timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            if self._timer is not threading.current_thread():
                return  # replaced by an earlier one, or the widget closed
            self._timer = None
            self._changed()

    def flush(self, timeout: float = 1.0) -> bool:
        """Wait until every ready front end has been sent all changes.

        Returns False if something is still pending after ``timeout``
        seconds (a front end that does not acknowledge gets its next message
        only after ``STALL`` seconds).
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                self._changed()
                if not any(c.pending for c in self._connections if c.ready):
                    return True
                timer = self._timer
            if time.monotonic() >= deadline:
                return False
            if timer is not None:
                timer.join(max(0.0, deadline - time.monotonic()))

    # ── display ──

    def _ipython_display_(self) -> None:
        where = _display.host()
        from IPython.display import display

        if where == "book":
            # A static chart with the data it has when this cell ends: pushes
            # later in the cell reach it through update_display_data, which
            # nbclient applies to the output with the same display id.
            handle = display(self._static_bundle(), raw=True, display_id=True)  # type: ignore[no-untyped-call]
            if handle is not None:
                with self._lock:
                    self._book_displays.append(handle.display_id)
                _book_widgets.add(self)
                _register_book_hook()
            return
        if where in {"jupyter", "vscode"}:
            display(self._jupyter_model())  # type: ignore[no-untyped-call]
            return
        print(repr(self))

    def _update_book_displays(self) -> None:
        from IPython.display import update_display

        with self._lock:
            ids, self._book_displays = self._book_displays, []
        bundle = self._static_bundle()
        for display_id in ids:
            update_display(bundle, raw=True, display_id=display_id)  # type: ignore[no-untyped-call]

    def _jupyter_model(self) -> Any:
        with self._lock:
            if self._model is None:
                model = _anywidget_class(self.esm or WIDGET_JS)(kind=self.kind)
                connection = self.attach(model.send)
                model.on_msg(lambda _widget, content, _buffers: connection.handle(content))
                self._model = model
            return self._model


_book_widgets: set[LiveWidget] = set()
_hook_registered = False


def _register_book_hook() -> None:
    global _hook_registered  # noqa: PLW0603 - one hook per kernel
    if _hook_registered:
        return
    shell = _display._ipython()
    if shell is None:
        return
    shell.events.register("post_run_cell", _after_cell)
    _hook_registered = True


def _after_cell(*_args: object) -> None:
    widgets = list(_book_widgets)
    _book_widgets.clear()
    for widget in widgets:
        widget._update_book_displays()


@functools.cache
def _anywidget_class(esm: str | Path) -> type:
    import anywidget
    import traitlets

    class LivekitWidget(anywidget.AnyWidget):
        """The Jupyter side of a livekit widget: messages in and out, no state."""

        _esm = esm
        kind = traitlets.Unicode("").tag(sync=True)

    return LivekitWidget


_ids = itertools.count(1)


def next_id() -> int:
    """Return a number unique in this process, for names."""
    return next(_ids)
