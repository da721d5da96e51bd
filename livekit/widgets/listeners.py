"""``listen``: call a function every so often, in the background, supervised."""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from livekit import _display
from livekit.widgets._cell import Cell, current_cell

log = logging.getLogger("livekit.listen")

_names = itertools.count(1)
_by_cell: dict[str, list[Listener]] = {}
_by_cell_lock = threading.Lock()


class Listener:
    """A running :func:`listen` loop.  ``stop()`` ends it.

    Attributes
    ----------
    name
        Its child's name under livekit's supervisor (``app_tree("livekit")``
        shows it).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._cell: Cell | None = None
        self._stopped = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running"
        return f"<Listener {self.name!r} {state}>"

    @property
    def running(self) -> bool:
        """True until :meth:`stop` is called or the loop runs out of items."""
        from livekit.supervisor import app_supervisor

        if self._stopped:
            return False
        alive = {info.name: info.alive for info in app_supervisor().which_children()}
        return alive.get(self.name, False)

    def stop(self) -> bool:
        """Stop the loop and wait for the call in progress to return.

        Returns True if it stopped within the supervisor's shutdown time.
        Stopping twice is harmless.
        """
        from livekit.supervisor import app_supervisor

        with self._lock:
            if self._stopped:
                return True
            self._stopped = True
        supervisor = app_supervisor()
        stopped = True
        # A fresh app supervisor (the old one gave up) no longer knows the child.
        with contextlib.suppress(KeyError):
            stopped = supervisor.terminate_child(self.name)
        with contextlib.suppress(KeyError, RuntimeError):
            supervisor.delete_child(self.name)
        if self._cell is not None:
            with _by_cell_lock:
                mine = _by_cell.get(self._cell.key, [])
                if self in mine:
                    mine.remove(self)
        return stopped


def listen(interval: float | Iterable[Any], fn: Callable[[Any], object]) -> Listener:
    """Call ``fn`` in the background: every ``interval`` seconds, or per item.

    With a number, ``fn(i)`` is called with i = 0, 1, 2, ... every
    ``interval`` seconds (a call that overruns delays the next one; missed
    ticks are skipped, not bunched up).  With an iterable, ``fn(item)`` is
    called for each item, as Kino's ``listen`` does with a stream.

    The loop runs as a child of livekit's supervisor.  An exception in
    ``fn`` is logged with its traceback (logger ``livekit.listen``) and the
    loop goes on.  The same exception again (same type, raised from the
    same lines) is not logged in full but counted: in Jupyter one line under
    the traceback says how many times it came back, updated in place;
    elsewhere the count is logged at 1, 2, 4, 8, ... repeats and once more
    when the run of failures ends (see
    :class:`~livekit.widgets.listeners.Failures`).  In a
    notebook, running the same cell again stops the listeners it started
    the last time, so a re-run never leaves two loops pushing to a chart.

    Parameters
    ----------
    interval
        Seconds between calls (Kino uses milliseconds: ``Kino.listen(200,
        ...)`` is ``listen(0.2, ...)``), or an iterable of items.
    fn
        Called with one argument: the tick number or the item.

    Returns
    -------
    Listener
        Call its ``stop()`` to end the loop.

    Examples
    --------
    >>> import threading
    >>> seen, done = [], threading.Event()
    >>> def tick(i):
    ...     seen.append(i)
    ...     if i == 2:
    ...         done.set()
    >>> listener = listen(0.01, tick)
    >>> done.wait(5)
    True
    >>> listener.stop()
    True
    >>> seen[:3]
    [0, 1, 2]
    >>> listen(0, tick)
    Traceback (most recent call last):
    ...
    ValueError: expected interval to be a number of seconds > 0 or an iterable, got 0
    """
    from livekit.supervisor import app_supervisor, child, stopping

    if not callable(fn):
        raise TypeError(f"expected fn to be callable, got {type(fn).__name__}: {fn!r}")
    period, items = _schedule(interval)

    cell = current_cell(sys._getframe(1))
    if cell is not None:
        _stop_earlier_runs(cell)

    label = getattr(fn, "__name__", "fn")
    name = f"listen-{next(_names)}"
    failures = Failures(name, label)

    def call(arg: Any) -> None:
        try:
            fn(arg)
        except Exception as error:
            failures.failed(arg, error)
        else:
            failures.returned(arg)

    def every() -> None:
        stop = stopping()
        deadline = time.monotonic()
        try:
            for i in itertools.count():
                if stop.is_set():
                    return
                call(i)
                deadline += period
                now = time.monotonic()
                if deadline < now:  # overran: skip the missed ticks
                    deadline = now + period - (now - deadline) % period
                if stop.wait(deadline - now):
                    return
        finally:
            failures.stopped()  # a run of failures in progress gets its final count

    def each() -> None:
        stop = stopping()
        assert items is not None  # noqa: S101 - set above when this loop is chosen
        try:
            for item in items:
                if stop.is_set():
                    return
                call(item)
        finally:
            failures.stopped()

    listener = Listener(name)
    listener._cell = cell
    app_supervisor().start_child(
        child(every if items is None else each, name=name, restart="transient")
    )
    if cell is not None:
        with _by_cell_lock:
            _by_cell.setdefault(cell.key, []).append(listener)
    return listener


def _schedule(interval: float | Iterable[Any]) -> tuple[float, Iterable[Any] | None]:
    """Check ``listen``'s first argument: (seconds, None) or (0.0, items)."""
    if isinstance(interval, bool):
        raise TypeError(f"expected interval to be seconds or an iterable, got {interval!r}")
    if isinstance(interval, int | float):
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError(
                f"expected interval to be a number of seconds > 0 or an iterable, got {interval!r}"
            )
        return float(interval), None
    if isinstance(interval, Iterable) and not isinstance(interval, str | bytes):
        return 0.0, interval
    raise TypeError(
        f"expected interval to be seconds or an iterable, "
        f"got {type(interval).__name__}: {interval!r}"
    )


def _stop_earlier_runs(cell: Cell) -> None:
    with _by_cell_lock:
        earlier = [listener for listener in _by_cell.get(cell.key, []) if listener._cell != cell]
    for listener in earlier:
        listener.stop()


class Failures:
    """How a listener reports the exceptions of its function, without floods.

    A listener calling a broken function five times a second would print
    the same traceback five times a second.  Instead, the first exception
    of a kind is logged in full (logger ``livekit.listen``); the same
    exception again (same type, raised from the same lines) only counts,
    and the count is shown by ``out``; a different exception, a call that
    returns, or the loop's end closes the run with its final count.

    Parameters
    ----------
    name
        The listener's name, which starts every line.
    label
        The function's name.
    out
        Where the counts go: by default
        :class:`~livekit.widgets.listeners.DisplayCount` in a Jupyter kernel
        (one line, updated in place) and
        :class:`~livekit.widgets.listeners.LogCount` elsewhere.

    Examples
    --------
    >>> import logging, sys
    >>> handler = logging.StreamHandler(sys.stdout)
    >>> handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    >>> log.addHandler(handler)
    >>> failures = Failures("listen-0", "sample", out=LogCount())
    >>> for i in range(6):
    ...     try:
    ...         {}["node"]
    ...     except KeyError as error:
    ...         failures.failed(i, error)  # doctest: +ELLIPSIS
    ERROR listen(listen-0): sample(0) raised; the loop goes on
    Traceback (most recent call last):
    ...
    KeyError: 'node'
    WARNING listen-0: the same error again, repeat 1 (latest: sample(1): KeyError: 'node')
    WARNING listen-0: the same error again, repeat 2 (latest: sample(2): KeyError: 'node')
    WARNING listen-0: the same error again, repeat 4 (latest: sample(4): KeyError: 'node')
    >>> failures.returned(6)
    WARNING listen-0: the same error came back 5 times in all; then sample(6) returned
    >>> log.removeHandler(handler)
    """

    def __init__(self, name: str, label: str, *, out: Count | None = None) -> None:
        self.name = name
        self.label = label
        self._out = out
        self._kind: tuple[object, ...] | None = None
        self._count = 0
        self._lock = threading.Lock()

    def failed(self, arg: Any, error: Exception) -> None:
        """Report that ``fn(arg)`` raised ``error``."""
        kind = _kind_of(error)
        with self._lock:
            if kind == self._kind:
                self._count += 1
                latest = f"{self.label}({arg!r}): {_one_line(error)}"
                self._count_out().again(self.name, self._count, latest)
                return
            self._end(f"then {self.label}({arg!r}) raised another error")
            self._kind = kind
        log.error(
            "listen(%s): %s(%r) raised; the loop goes on",
            self.name,
            self.label,
            arg,
            exc_info=error,
        )

    def returned(self, arg: Any) -> None:
        """Report that ``fn(arg)`` returned: a run of failures ends."""
        if self._kind is None:  # the common case, without the lock
            return
        with self._lock:
            self._end(f"then {self.label}({arg!r}) returned")

    def stopped(self) -> None:
        """Report that the loop ended."""
        with self._lock:
            self._end("then the listener stopped")

    def _end(self, then: str) -> None:
        if self._kind is not None and self._count:
            self._count_out().ended(self.name, self._count, then)
        self._kind, self._count = None, 0

    def _count_out(self) -> Count:
        if self._out is None:
            self._out = DisplayCount() if _display.host() in {"jupyter", "vscode"} else LogCount()
        return self._out


class Count(Protocol):
    """Where :class:`~livekit.widgets.listeners.Failures` shows how often an error came back."""

    def again(self, name: str, count: int, latest: str) -> None:
        """The same error came back: ``count`` repeats so far."""

    def ended(self, name: str, count: int, then: str) -> None:
        """The run of ``count`` repeats ended; ``then`` says how."""


class LogCount:
    """Log the count at 1, 2, 4, 8, ... repeats, and at the end of the run.

    For logs and terminals, where a line cannot change once written.
    """

    def __init__(self) -> None:
        self._logged = 0

    def again(self, name: str, count: int, latest: str) -> None:
        if count & (count - 1) == 0:  # a power of two
            self._logged = count
            log.warning("%s: the same error again, repeat %d (latest: %s)", name, count, latest)

    def ended(self, name: str, count: int, then: str) -> None:
        if count != self._logged:
            log.warning("%s: the same error came back %d times in all; %s", name, count, then)
        self._logged = 0


class DisplayCount:
    """Show the count in a notebook as one output line that is updated in place.

    It lands in the cell whose output the listener's thread writes to, under
    the traceback.  Updated at most every ``every`` seconds while the errors
    go on, and once more when they end.
    """

    def __init__(self, *, every: float = 0.25) -> None:
        self.every = every
        self._display_id: str | None = None
        self._shown = -float("inf")
        self._text = ""

    def again(self, name: str, count: int, latest: str) -> None:
        self._text = f"{name}: the same error again, repeat {count} (latest: {latest})"
        if self._display_id is None or time.monotonic() - self._shown >= self.every:
            self._show()

    def ended(self, name: str, count: int, then: str) -> None:
        self._text += f"; {then}"
        self._show()
        self._display_id = None  # the next run of errors gets a line of its own

    def _show(self) -> None:
        from IPython.display import display, update_display

        bundle = {"text/plain": self._text}
        try:
            if self._display_id is None:
                handle = display(bundle, raw=True, display_id=True)  # type: ignore[no-untyped-call]
                self._display_id = handle.display_id if handle is not None else None
            else:
                update_display(bundle, raw=True, display_id=self._display_id)  # type: ignore[no-untyped-call]
        except Exception:  # showing a count must never stop the loop
            log.warning("%s", self._text, exc_info=True)
        self._shown = time.monotonic()


def _kind_of(error: BaseException) -> tuple[object, ...]:
    # The same type raised from the same lines: a retry of the same failure,
    # even when its message differs in a detail (an address, a counter).
    where = traceback.extract_tb(error.__traceback__)
    return (type(error), tuple((frame.filename, frame.lineno) for frame in where))


def _one_line(error: BaseException) -> str:
    text = traceback.format_exception_only(type(error), error)[-1].strip()
    return text if len(text) <= 200 else text[:199] + "…"
