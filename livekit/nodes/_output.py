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
        sink(self.kind, text)
        return len(text)

    def flush(self) -> None:
        if getattr(_local, "sink", None) is None:
            self.original.flush()

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
    """Send this thread's prints to ``sink`` (``None``: back to the real streams)."""
    _local.sink = sink
