"""Send what a spawned function prints back to the caller, like Erlang's group leader.

``sys.stdout`` and ``sys.stderr`` are shared by every thread, so a node that
runs spawned functions puts a small router in front of them: a write from a
thread that has a sink goes to that sink (the caller's link); any other
write goes to the stream that was there before.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

Sink = Callable[[str, str], None]

_local = threading.local()
_install_lock = threading.Lock()


class _Router:
    def __init__(self, original: TextIO, kind: str) -> None:
        self.original = original
        self.kind = kind

    def write(self, text: str) -> int:
        sink: Sink | None = getattr(_local, "sink", None)
        if sink is None:
            return self.original.write(text)
        # Send whole lines: print() writes its arguments, separators and
        # newline one by one, and a message per piece reaches a notebook as
        # many stream outputs, which some front ends show on separate lines.
        pending = _local.pending.setdefault(self.kind, [])
        pending.append(text)
        if "\n" in text:
            whole, _, rest = "".join(pending).rpartition("\n")
            pending[:] = [rest] if rest else []
            sink(self.kind, whole + "\n")
        return len(text)

    def flush(self) -> None:
        sink: Sink | None = getattr(_local, "sink", None)
        if sink is None:
            self.original.flush()
            return
        _flush_pending(sink, self.kind)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


def install() -> None:
    """Put routers in front of ``sys.stdout`` and ``sys.stderr`` (idempotent)."""
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout, "out")
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr, "err")


def uninstall() -> None:
    """Remove the routers, unless someone replaced them since."""
    with _install_lock:
        if isinstance(sys.stdout, _Router):
            sys.stdout = sys.stdout.original
        if isinstance(sys.stderr, _Router):
            sys.stderr = sys.stderr.original


def route_current_thread(sink: Sink | None) -> None:
    """Send this thread's prints to ``sink`` (``None``: back to the real streams).

    Ending the routing sends what is left of an unfinished line.
    """
    previous: Sink | None = getattr(_local, "sink", None)
    if previous is not None:
        for kind in ("out", "err"):
            _flush_pending(previous, kind)
    _local.sink = sink
    _local.pending = {}


def _flush_pending(sink: Sink, kind: str) -> None:
    pending = getattr(_local, "pending", {}).get(kind)
    if pending:
        text = "".join(pending)
        pending.clear()
        if text:
            sink(kind, text)
