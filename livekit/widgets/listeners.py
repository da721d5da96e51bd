"""``listen``: call a function every so often, in the background, supervised."""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

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
    ``fn`` is logged (logger ``livekit.listen``) and the loop goes on.  In a
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
    items: Iterable[Any] | None = None
    period = 0.0
    if isinstance(interval, bool):
        raise TypeError(f"expected interval to be seconds or an iterable, got {interval!r}")
    if isinstance(interval, int | float):
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError(
                f"expected interval to be a number of seconds > 0 or an iterable, got {interval!r}"
            )
        period = float(interval)
    elif isinstance(interval, Iterable) and not isinstance(interval, str | bytes):
        items = interval
    else:
        raise TypeError(
            f"expected interval to be seconds or an iterable, "
            f"got {type(interval).__name__}: {interval!r}"
        )

    cell = current_cell(sys._getframe(1))
    if cell is not None:
        _stop_earlier_runs(cell)

    label = getattr(fn, "__name__", "fn")

    def call(arg: Any) -> None:
        try:
            fn(arg)
        except Exception:
            log.exception("listen(%s): %s(%r) raised; the loop goes on", name, label, arg)

    def every() -> None:
        stop = stopping()
        deadline = time.monotonic()
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

    def each() -> None:
        stop = stopping()
        assert items is not None  # noqa: S101 - set above when this loop is chosen
        for item in items:
            if stop.is_set():
                return
            call(item)

    name = f"listen-{next(_names)}"
    listener = Listener(name)
    listener._cell = cell
    app_supervisor().start_child(
        child(every if items is None else each, name=name, restart="transient")
    )
    if cell is not None:
        with _by_cell_lock:
            _by_cell.setdefault(cell.key, []).append(listener)
    return listener


def _stop_earlier_runs(cell: Cell) -> None:
    with _by_cell_lock:
        earlier = [listener for listener in _by_cell.get(cell.key, []) if listener._cell != cell]
    for listener in earlier:
        listener.stop()
