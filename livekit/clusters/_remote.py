"""What livekit runs inside a Dask worker or scheduler, through ``Client.run``.

Every function here travels by reference (``livekit.clusters._remote.name``),
so livekit must be installed where the cluster runs, as it must be for
``rpc.call(worker, "livekit", "memory")`` anyway.  Each one starts what
it needs and leaves nothing behind: a call's thread ends with the call, a
spawned function's thread with the function, and the print routers are
taken down when the last spawned function on that process ends.

Replies use the node protocol's own format
(:func:`livekit.nodes.protocol.reply_ok` and ``reply_raise``), so the
caller rebuilds a worker's exception exactly as it rebuilds a node's.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

_call_ids = itertools.count(1)
_spawn_ids = itertools.count(1)
_spawns_lock = threading.Lock()
_spawns_running = 0
_routers_ours = False


def _resolve(module: str, function: str) -> Callable[..., Any]:
    import importlib

    target: Any = sys.modules.get(module) or importlib.import_module(module)
    for part in function.split("."):
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]


def _answer(module: str, function: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    from livekit.nodes import protocol

    try:
        result = _resolve(module, function)(*args, **kwargs)
    except BaseException as error:  # every failure goes back to the caller
        return protocol.reply_raise(error)
    return protocol.reply_ok(result)


async def call(module: str, function: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """Run ``module.function(*args, **kwargs)`` in a thread of its own; the pickled reply.

    ``Client.run`` runs a plain function on the process's event loop, which
    a slow call would block (heartbeats, transfers, results).  The call
    runs in its own short-lived thread instead, and the loop goes on.  The
    scheduler runs it the same way (``Client.run_on_scheduler``).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()

    def run() -> None:
        reply = _answer(module, function, args, kwargs)
        # The caller may have given up (timeout): its loop is still there.
        loop.call_soon_threadsafe(_settle, done, reply)

    threading.Thread(target=run, name=f"livekit-call-{next(_call_ids)}", daemon=True).start()
    return await done


def _settle(future: asyncio.Future[bytes], reply: bytes) -> None:
    if not future.done():
        future.set_result(reply)


def spawn(fn: Callable[[], Any], topic: str, ident: str, dask_worker: Any) -> str:
    """Start ``fn()`` in a new thread of this worker; its prints go to ``topic``.

    Each line printed by that thread, then its outcome, is logged as a
    Dask event on ``topic`` (``Worker.log_event`` queues it on the worker's
    loop from any thread); the caller's ``Client.subscribe_topic`` handler
    receives them in order.  Returns the thread's name.
    """
    from livekit.nodes import _output, protocol

    global _spawns_running, _routers_ours  # noqa: PLW0603 -- one router pair per process
    with _spawns_lock:
        if _spawns_running == 0:
            # Ours to remove later only if nobody (a node server) put them up first.
            _routers_ours = not isinstance(sys.stdout, _output._Router)
            _output.install()
        _spawns_running += 1

    def sink(kind: str, text: str) -> None:
        dask_worker.log_event(topic, {"spawn": ident, "stream": kind, "text": text})

    def run() -> None:
        global _spawns_running  # noqa: PLW0603
        _output.route_current_thread(sink)
        try:
            reply = protocol.reply_ok(fn())
        except BaseException as error:  # reported to the caller
            reply = protocol.reply_raise(error)
        finally:
            _output.route_current_thread(None)
            with _spawns_lock:
                _spawns_running -= 1
                if _spawns_running == 0 and _routers_ours:
                    _output.uninstall()
        dask_worker.log_event(topic, {"spawn": ident, "done": reply})

    thread = threading.Thread(target=run, name=f"livekit-spawn-{next(_spawn_ids)}", daemon=True)
    thread.start()
    return thread.name


def worker_facts(dask_worker: Any) -> dict[str, Any]:
    """The process id, the threads and the state of this worker, for its tree."""
    threads = [
        {"name": t.name, "daemon": t.daemon}
        for t in threading.enumerate()
        if not t.name.startswith("livekit-call-")  # the call asking is not the worker's
    ]
    return {"pid": os.getpid(), "threads": threads, "status": dask_worker.status.name}


def transfer_logs(since: float, dask_worker: Any) -> dict[str, list[dict[str, Any]]]:
    """This worker's transfer records that started at ``since`` or later.

    ``transfer_incoming_log`` says which peer sent which keys, with their
    sizes; ``transfer_outgoing_log`` says which keys this worker sent, and
    to whom (``None``: not a worker, that is the scheduler or a client
    gathering results).  Their times are on the scheduler's clock.
    """
    return {
        "incoming": [dict(e) for e in dask_worker.transfer_incoming_log if e["start"] >= since],
        "outgoing": [dict(e) for e in dask_worker.transfer_outgoing_log if e["start"] >= since],
    }
