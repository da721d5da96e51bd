"""The Python-level functions a trace watches, shared by both backends.

Each hook names a function of the standard library and what it means for
the :class:`~livekit.trace.recorder.Recorder`.  Only pure-Python functions
can be watched: ``_queue.SimpleQueue`` (the work queue of
``ThreadPoolExecutor``) and ``_asyncio.Task`` are C, which is why executor
work is seen through ``Future``'s public methods and tasks through
``loop.create_task``.

Executor work is read only through public names, so that it reads the
same on every Python: a ``Future`` made by ``ThreadPoolExecutor.submit(fn,
/, *args, **kwargs)`` is a call of ``fn``; the worker that gets ``True``
from ``Future.set_running_or_notify_cancel()`` runs it; ``set_result`` or
``set_exception`` is its reply.  (The private ``_WorkItem`` held ``fn``,
``args`` and ``kwargs`` up to 3.13; 3.14 folds them into a ``task`` and
passes its ``run`` a context.)

A queue is watched at its ``_put``/``_get`` methods, which run under the
queue's own lock: the sender is on record before any receiver can take the
item, and a thread that was already blocked in ``get()`` when the trace
began is seen too.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.queues
import concurrent.futures
import queue
import threading
from typing import Any

#: Queue classes watched at ``_put``/``_get``; LIFO ones hand out the newest.
QUEUE_CLASSES: tuple[tuple[type[Any], bool], ...] = (
    (queue.Queue, False),
    (queue.LifoQueue, True),
    (queue.PriorityQueue, False),
    (asyncio.queues.Queue, False),
    (asyncio.queues.LifoQueue, True),
    (asyncio.queues.PriorityQueue, False),
)

THREAD = threading.Thread
FUTURE = concurrent.futures.Future
#: The code of ``submit``: a Future made by it is executor work.
SUBMIT_CODE = concurrent.futures.ThreadPoolExecutor.submit.__code__
EVENT_LOOP = asyncio.base_events.BaseEventLoop
