"""Channels of other libraries: where a message is sent, where it is received.

A trace draws the messages of the standard library's queues by itself.  A
library with a channel of its own (anyio's memory object streams, janus'
queues, or a class of yours) declares it with :func:`channel`: the function
that sends, the function(s) that receive, and how to read them.  That
gives rows of the hook table (:mod:`livekit.trace.hooks`), which every
later trace watches once they are registered:

>>> import collections, threading
>>> from livekit.trace import tracing
>>> class Pigeonhole:
...     def __init__(self):
...         self.slots = collections.deque()
...     def leave(self, note):
...         self.slots.append(note)
...     def collect(self):
...         return self.slots.popleft()
>>> rows = channel(Pigeonhole.leave, Pigeonhole.collect, item="note")
>>> register(rows)
>>> box = Pigeonhole()
>>> def colleague():
...     box.leave("lunch?")
>>> with tracing() as trace:
...     helper = threading.Thread(target=colleague, name="colleague")
...     helper.start()
...     helper.join()
...     answer = box.collect()
>>> [str(e) for e in trace.events if "SPAWN" not in str(e) and "EXIT" not in str(e)]
["colleague -> caller (MainThread): 'lunch?'"]
>>> unregister(rows)
True

A send is matched to its receive by the identity of the item and of the
channel, as for a queue: the send and the receive of one item must not
race each other outside the channel's own lock (anyio's streams run on one
event loop; janus takes its lock).

livekit declares the channels of anyio and janus itself
(:func:`library_rows`), for the libraries the traced program has imported
when the trace starts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from livekit.trace.hooks import GATE, RETURN, Hook, register, unregister

__all__ = ["channel", "library_rows", "register", "unregister"]


def channel(
    send: Callable[..., Any],
    receive: Callable[..., Any] | Sequence[Callable[..., Any]],
    *,
    item: str = "item",
    via: Callable[[Any], object] | None = None,
    not_from: Callable[..., Any] | None = None,
) -> tuple[Hook, ...]:
    """The hook rows of a channel: ``send`` puts a message in, ``receive`` returns one.

    Parameters
    ----------
    send
        A method (a function defined in a class of a module, or in a
        module) whose parameter ``item`` is the message sent.  It is watched
        as it starts.
    receive
        One such method, or several, whose return value is the message
        received (a coroutine function's awaited value).
    item
        The name of ``send``'s parameter that holds the message.
    via
        ``via(self)`` returns what identifies the channel, given the
        ``self`` of ``send`` or ``receive``; by default the ``self`` itself.
        anyio's send and receive streams are two objects that share one
        state, for example.
    not_from
        A receive called directly by this function is not counted: the
        row of that function counts it (a ``receive`` that calls
        ``receive_nowait``).

    Returns
    -------
    tuple of Hook
        Rows for :func:`register`.

    Raises
    ------
    ValueError
        If a function cannot be found where its name says, or ``item`` is
        not a parameter of ``send``.

    Examples
    --------
    >>> import queue
    >>> rows = channel(queue.Queue.put, queue.Queue.get, via=lambda q: q)
    >>> [(row.name, row.at) for row in rows]
    [('put', 'start'), ('get', 'return')]
    >>> channel(queue.Queue.put, queue.Queue.get, item="message")
    Traceback (most recent call last):
    ...
    ValueError: expected a parameter of Queue.put (self, item, block, timeout), got 'message'
    """
    receivers = [receive] if callable(receive) else list(receive)
    identify = via if via is not None else _same
    owner, name = _place(send)
    rows = [
        Hook(
            owner,
            name,
            "start",
            (GATE, "self", item),
            "recorder.put_by",
            gate="recorder.sending",
            adapt=lambda sender, this, value: (sender, identify(this), value),
        )
    ]
    skipped = getattr(not_from, "__code__", None)
    for receiver in receivers:
        owner, name = _place(receiver)
        rows.append(
            Hook(
                owner,
                name,
                "return",
                ("self", RETURN),
                "recorder.got",
                gate="recorder.waiting",
                not_from=skipped,
                adapt=lambda this, value: (identify(this), value),
            )
        )
    return tuple(rows)


def _same(value: object) -> object:
    return value


def _place(function: Callable[..., Any]) -> tuple[Any, str]:
    """The class (or module) that holds ``function``, and its name there."""
    qualname = getattr(function, "__qualname__", None)
    names = getattr(function, "__globals__", None)  # the module it was defined in
    if names is None or not qualname or "<locals>" in qualname:
        raise ValueError(
            f"expected a Python function defined at the top of a module or class, got {function!r}"
        )
    *path, name = qualname.split(".")
    owner: Any = None
    if path and path[0] in names:
        owner = names[path[0]]
        for part in path[1:]:
            owner = getattr(owner, part, None)
    elif not path:
        owner = sys.modules.get(function.__module__)
    if owner is None or vars(owner).get(name) is not function:
        raise ValueError(f"expected {qualname} where its name says, got {function!r}")
    return owner, name


# -- the channels livekit knows ---------------------------------------------


def _anyio_rows() -> tuple[Hook, ...]:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    # The two ends of a memory object stream share its _state.  receive()
    # takes a buffered item through receive_nowait(), or is handed one by a
    # sender while it waits.
    return channel(
        MemoryObjectSendStream.send_nowait,
        [MemoryObjectReceiveStream.receive_nowait, MemoryObjectReceiveStream.receive],
        via=lambda stream: stream._state,
        not_from=MemoryObjectReceiveStream.receive,
    )


def _janus_rows() -> tuple[Hook, ...]:
    import janus

    # Like queue.Queue, a janus queue keeps its items behind _put and _get,
    # which both of its sides call under the queue's own lock.
    rows: list[Hook] = []
    for cls in (janus.Queue, janus.PriorityQueue, janus.LifoQueue):
        newest = "recorder.got_newest" if cls is janus.LifoQueue else "recorder.got"
        rows.append(
            Hook(
                cls, "_put", "start", (GATE, "self", "item"), "recorder.put_by", "recorder.sending"
            )
        )
        rows.append(Hook(cls, "_get", "return", ("self", RETURN), newest, "recorder.waiting"))
    return tuple(rows)


#: Library module -> the rows of its channels.
_LIBRARIES: dict[str, Callable[[], tuple[Hook, ...]]] = {
    "anyio.streams.memory": _anyio_rows,
    "janus": _janus_rows,
}


def library_rows() -> tuple[Hook, ...]:
    """The rows of the known libraries' channels, for those already imported.

    A library is not imported for a trace: a program that uses it has
    imported it by the time it runs.

    Examples
    --------
    >>> import janus
    >>> sorted({row.owner.__name__ for row in library_rows() if row.owner.__module__ == "janus"})
    ['LifoQueue', 'PriorityQueue', 'Queue']
    """
    rows: list[Hook] = []
    for module, make in _LIBRARIES.items():
        if module in sys.modules:
            rows.extend(make())
    return tuple(rows)
