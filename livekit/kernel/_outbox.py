"""A bounded queue of messages for one browser, that never grows without end.

The kernel can produce updates faster than a browser reads them (a chart fed
every millisecond, a tab in the background, a client that stopped reading).
Each connection gets an :class:`Outbox` of at most ``limit`` messages.  When
it is full, the oldest *droppable* message (a widget update or a stream
chunk: the next one supersedes it) is dropped and counted; the page is told
how many were dropped with the next message it gets.  Messages that change
what the page shows for good (a cell starting or finishing, an error) are
never dropped; if the queue is full of them the client is too far behind and
:meth:`Outbox.put` reports it, so that the server closes the connection.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

#: Message types that a later message of the same kind makes up for.
DROPPABLE = frozenset({"comm_msg", "stream", "status"})


class Outbox:
    """Messages waiting to be sent to one client, at most ``limit`` of them.

    Examples
    --------
    >>> box = Outbox(limit=2)
    >>> for i in range(5):
    ...     _ = box.put({"type": "comm_msg", "n": i})
    >>> len(box), box.dropped
    (2, 3)
    >>> box.get_nowait()
    {'type': 'dropped', 'count': 3}
    >>> box.get_nowait(), box.get_nowait()
    ({'type': 'comm_msg', 'n': 3}, {'type': 'comm_msg', 'n': 4})
    """

    def __init__(self, *, limit: int = 256) -> None:
        if limit < 1:
            raise ValueError(f"expected a limit of at least 1, got {limit!r}")
        self.limit = limit
        self.dropped = 0
        self._unreported = 0
        self._items: collections.deque[dict[str, Any]] = collections.deque()
        self._ready = asyncio.Event()
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: dict[str, Any]) -> bool:
        """Queue ``message``; return False when the client is hopelessly behind."""
        if self.closed:
            return False
        if len(self._items) >= self.limit and not self._drop_one():
            return False
        self._items.append(message)
        self._ready.set()
        return True

    def _drop_one(self) -> bool:
        for position, item in enumerate(self._items):
            if item.get("type") in DROPPABLE:
                del self._items[position]
                self.dropped += 1
                self._unreported += 1
                return True
        return False

    def get_nowait(self) -> dict[str, Any]:
        """Return the next message; a ``dropped`` notice comes first if any were."""
        if self._unreported:
            count, self._unreported = self._unreported, 0
            return {"type": "dropped", "count": count}
        message = self._items.popleft()
        if not self._items:
            self._ready.clear()
        return message

    async def get(self) -> dict[str, Any]:
        """Wait for the next message."""
        while not self._items and not self._unreported:
            if self.closed:
                raise EOFError("outbox closed")
            self._ready.clear()
            await self._ready.wait()
        return self.get_nowait()

    def close(self) -> None:
        """Stop accepting messages and wake the reader."""
        self.closed = True
        self._ready.set()
