"""What the child processes of the process-trace tests run.

Standard library only: a ``spawn`` or ``forkserver`` child imports this
module to find its target, and should not pay for importing livekit or
pytest (a traced child never imports livekit: that is under test).
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import multiprocessing.process
import multiprocessing.queues
import os
import sys
import threading
from typing import Any


def upper(inbox: Any, outbox: Any) -> None:
    outbox.put(inbox.get().upper())


def echo_all(pairs: list[tuple[Any, Any]], conn: multiprocessing.connection.Connection) -> None:
    """Answer each queue pair's message in upper case, then the pipe's."""
    for inbox, outbox in pairs:
        message = inbox.get()
        outbox.put(message.upper())
        if hasattr(inbox, "task_done"):
            inbox.task_done()
    conn.send(conn.recv().upper())


def say(name: str, outbox: Any) -> None:
    outbox.put(name)


def square(x: int) -> int:
    return x * x


def fail(x: object = None) -> None:
    raise KeyError("in the child")


def quit_hard() -> None:
    os._exit(3)


def facts() -> dict[str, Any]:
    """What a trace could leave behind in this process."""
    connection = multiprocessing.connection.Connection
    functions = {
        "_send_bytes": connection.__dict__["_send_bytes"],
        "_recv_bytes": connection.__dict__["_recv_bytes"],
        "_bootstrap": multiprocessing.process.BaseProcess.__dict__["_bootstrap"],
        "Queue.put": multiprocessing.queues.Queue.__dict__["put"],
        "SimpleQueue.get": multiprocessing.queues.SimpleQueue.__dict__["get"],
    }
    tools = []
    if sys.version_info >= (3, 12):
        tools = [sys.monitoring.get_tool(i) for i in range(6)]
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        # The kind of each open file ("pipe", "socket", a path); the
        # listing's own descriptor is gone by the time it is read.
        with contextlib.suppress(FileNotFoundError):
            fds.append(os.readlink(f"/proc/self/fd/{fd}").split(":")[0])
    return {
        "functions": {name: f.__code__.co_filename for name, f in functions.items()},
        "run": "run" in vars(multiprocessing.process.current_process()),
        "threads": sorted(t.name for t in threading.enumerate()),
        "fds": sorted(fds),
        "tools": tools,
        "livekit": sorted(m for m in sys.modules if m.startswith("livekit")),
    }


def answer_then_report(inbox: Any, outbox: Any) -> None:
    """Answer one message, then, when asked, report :func:`facts`."""
    outbox.put(inbox.get().upper())
    inbox.get()
    outbox.put(facts())
