"""Functions that tests call on a second node by name (``rpc.call(node, "node_targets", ...)``).

The node process has this folder on its path; each function does a little
traced work there, so the caller's diagram can show it.
"""

from __future__ import annotations

import queue
import sys
import threading
import time

import livekit.trace


def ping_pong(message: str) -> str:
    """Send ``message`` to a new thread named ``pong`` and return its answer."""
    inbox: queue.Queue[str] = queue.Queue()
    outbox: queue.Queue[str] = queue.Queue()

    def pong() -> None:
        outbox.put(inbox.get().upper())

    worker = threading.Thread(target=pong, name="pong")
    worker.start()
    inbox.put(message)
    answer = outbox.get()
    worker.join()
    return answer


def fail(reason: str) -> None:
    """Raise ``ValueError(reason)`` on the node."""
    raise ValueError(reason)


def wait(seconds: float) -> float:
    """Block for ``seconds`` (a call still running when its caller leaves)."""
    time.sleep(seconds)
    return seconds


def tracing_state() -> dict[str, object]:
    """What of a trace is installed on this node now: nothing, once every trace ended."""
    state: dict[str, object] = {
        "running": livekit.trace._running is not None,
        # The patching backend's wrappers carry __wrapped__ (functools.wraps).
        "queue patched": hasattr(queue.Queue._put, "__wrapped__"),
        "threads": sorted(t.name for t in threading.enumerate()),
    }
    if sys.version_info >= (3, 12):
        state["monitoring"] = [
            sys.monitoring.get_tool(tool)
            for tool in range(6)  # type: ignore[attr-defined,unused-ignore]
        ]
    return state


def relay(node: str, message: str) -> str:
    """Pass ``message`` on to :func:`ping_pong` on yet another node."""
    from livekit import rpc

    return rpc.call(node, "node_targets", "ping_pong", (message,))  # type: ignore[no-any-return]
