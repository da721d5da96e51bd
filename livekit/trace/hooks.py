"""The Python-level functions a trace watches, shared by both backends.

Each hook names a function of the standard library and what it means for
the :class:`~livekit.trace.recorder.Recorder`.  Only pure-Python functions
can be watched: ``_queue.SimpleQueue`` (the work queue of
``ThreadPoolExecutor``) and ``_asyncio.Task`` are C, which is why executor
work is seen at the ``_WorkItem``/``Future`` level and tasks through
``loop.create_task``.

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
import concurrent.futures.thread
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
WORK_ITEM: type[Any] = concurrent.futures.thread._WorkItem
FUTURE = concurrent.futures.Future
EVENT_LOOP = asyncio.base_events.BaseEventLoop
