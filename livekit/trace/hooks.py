"""The functions a trace watches, as one table that both backends read.

Each row (a :class:`Hook`) says, in data, one fact such as "when
``Queue._put`` starts, its ``self`` and ``item`` are a message put by the
current participant": the function (an attribute of a class or module),
whether it is watched at its start or at its return, which values to read
(arguments by name, the value returned, the caller's locals), and which
event of which *sink* receives them.  The sinks are objects the trace
builds for itself: ``"recorder"`` (a :class:`~livekit.trace.recorder.Recorder`)
and ``"processes"`` (a :class:`~livekit.trace.processes.ProcessTracker`).
:mod:`livekit.trace.patching` turns each row into a wrapper,
:mod:`livekit.trace.monitoring` into a ``sys.monitoring`` handler; neither
knows what any row means.

Only pure-Python functions can be watched: ``_queue.SimpleQueue`` (the work
queue of ``ThreadPoolExecutor``) and ``_asyncio.Task`` are C, which is why
executor work is seen through ``Future``'s public methods and tasks through
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

Other modules, and users, add rows of their own with :func:`register`:

>>> import queue
>>> class Mailbox(queue.Queue):
...     def _put(self, item):
...         super()._put(item)
>>> rows = [Hook(Mailbox, "_put", "start", ("<gate>", "self", "item"),
...              "recorder.put_by", gate="recorder.sending")]
>>> register(rows)
>>> rows[0] in registered()
True
>>> unregister(rows), unregister(rows)
(True, False)
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.queues
import concurrent.futures
import functools
import inspect
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import CodeType, FunctionType
from typing import Any, Literal, TypeVar

__all__ = [
    "CALLER",
    "GATE",
    "RETURN",
    "STANDARD",
    "Backend",
    "Hook",
    "code_of",
    "register",
    "registered",
    "resolve",
    "unregister",
]

#: A read that names the value the function returned (rows ``at="return"``).
RETURN = "<return>"
#: A read that names the value the row's gate returned.
GATE = "<gate>"
#: Prefix of a read that names a local variable of the caller's frame.
CALLER = "<caller>."

When = Literal["start", "return"]
T = TypeVar("T")


@dataclass(frozen=True)
class Hook:
    """One watched function and what a call of it means.

    Parameters
    ----------
    owner
        The class or module that holds the function.
    name
        The attribute of ``owner`` that is the function (in its own
        ``__dict__``: a method inherited is watched on the class that
        defines it).
    at
        ``"start"``: when the function is entered, before its body runs;
        ``"return"``: when it returns normally.
    reads
        The values the event receives, in order: names of the function's
        parameters (``"self"``, ``"item"``), ``"<return>"`` (``RETURN``)
        for the value returned, ``"<gate>"`` (``GATE``) for what the gate
        returned, and ``"<caller>." + name`` for a local of the calling
        frame.
    event
        ``"sink.method"``: what receives the values, such as
        ``"recorder.put_by"``.
    gate
        ``"sink.method"`` called with no arguments before anything is read,
        or ``"sink.attribute"`` whose value is looked at: a false value
        means the call is of no interest (reading the values is the dearest
        step).  None: always read.
    called_from
        Only calls made directly by this code object count.
    not_from
        Calls made directly by this code object do not count (another row,
        of that code, counts them).
    adapt
        ``adapt(*values)`` returns the values the event receives instead:
        how a channel of another library is read (see
        :func:`livekit.trace.channel`).
    wrap
        Watch the function with a wrapper on every backend, as
        ``livekit.trace.patching`` does.  For a function that is always
        reached through its owner's attribute (``Queue.put`` calls
        ``self._put``) and returns at once, a wrapper sees every call that
        ``sys.monitoring`` would, even from a thread that was already
        waiting when the trace began, and it is handed the values that
        ``sys.monitoring`` would have to read from the watched frame's
        locals, the dearest step of a row that runs for every message.

    Examples
    --------
    >>> import threading
    >>> Hook(threading.Thread, "start", "start", ("self",), "recorder.thread_starting")
    Hook(Thread.start at start: recorder.thread_starting(self))
    """

    owner: Any
    name: str
    at: When
    reads: tuple[str, ...]
    event: str
    gate: str | None = None
    called_from: CodeType | None = None
    not_from: CodeType | None = None
    adapt: Callable[..., tuple[Any, ...]] | None = None
    wrap: bool = False

    def __post_init__(self) -> None:
        if self.at not in ("start", "return"):
            raise ValueError(f"expected at 'start' or 'return', got {self.at!r}")
        for what, value in (("event", self.event), ("gate", self.gate)):
            if value is not None and value.count(".") != 1:
                raise ValueError(f"expected {what} 'sink.method', got {value!r}")
        if RETURN in self.reads and self.at != "return":
            raise ValueError(f"{RETURN} can be read only at return, in {self!r}")
        if GATE in self.reads and self.gate is None:
            raise ValueError(f"{GATE} is read but the row has no gate, in {self!r}")
        if any(r.startswith(CALLER) for r in self.reads) and self.called_from is None:
            raise ValueError(f"a caller's locals are read without called_from, in {self!r}")
        # A function wrapped by a running trace names what it wraps.
        function = inspect.unwrap(self.function)
        if not isinstance(function, FunctionType):
            raise ValueError(
                f"expected a Python function at {_owner_name(self.owner)}.{self.name}, "
                f"got {type(function).__name__}"
            )
        names = _parameters(function.__code__)
        for read in self.reads:
            if read not in (RETURN, GATE) and not read.startswith(CALLER) and read not in names:
                raise ValueError(
                    f"expected a parameter of {_owner_name(self.owner)}.{self.name} "
                    f"({', '.join(names)}), got {read!r}"
                )

    @property
    def function(self) -> Any:
        """The function as it is now (the original, outside a trace)."""
        try:
            return vars(self.owner)[self.name]
        except KeyError:
            raise ValueError(
                f"expected {_owner_name(self.owner)} to define {self.name!r} itself"
            ) from None

    def __repr__(self) -> str:
        reads = ", ".join(self.reads)
        gate = f" if {self.gate}" if self.gate else ""
        wrapped = ", wrapped" if self.wrap else ""
        return (
            f"Hook({_owner_name(self.owner)}.{self.name} at {self.at}{gate}: "
            f"{self.event}({reads}){wrapped})"
        )


def code_of(hook: Hook) -> CodeType:
    """The code object of the function ``hook`` watches."""
    code: CodeType = hook.function.__code__
    return code


def resolve(reference: str, sinks: Mapping[str, object]) -> Any:
    """The bound method that ``"sink.method"`` names among ``sinks``.

    >>> resolve("text.upper", {"text": "abc"})()
    'ABC'
    """
    sink, method = _sink(reference, sinks)
    found = getattr(sink, method, None)
    if not callable(found):
        raise ValueError(f"expected {type(sink).__name__} to have a method {method!r}")
    return found


def resolve_gate(reference: str, sinks: Mapping[str, object]) -> Any:
    """What ``"sink.name"`` names among ``sinks``: a method, or a value looked at.

    A gate that is a value (a dict of the messages waiting, say) costs no
    call on the path that every message takes.

    >>> resolve_gate("box.pending", {"box": type("Box", (), {"pending": {}})()})
    {}
    """
    sink, name = _sink(reference, sinks)
    try:
        return getattr(sink, name)
    except AttributeError:
        raise ValueError(f"expected {type(sink).__name__} to have {name!r}") from None


def _sink(reference: str, sinks: Mapping[str, object]) -> tuple[object, str]:
    """The sink that ``"sink.name"`` names among ``sinks``, and the name after the dot."""
    sink_name, name = reference.split(".")
    try:
        return sinks[sink_name], name
    except KeyError:
        raise ValueError(
            f"expected a sink among {sorted(sinks)}, got {sink_name!r} (in {reference!r})"
        ) from None


def _parameters(code: CodeType) -> tuple[str, ...]:
    count = code.co_argcount + code.co_kwonlyargcount
    count += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)  # *args, **kwargs
    return code.co_varnames[:count]


def _owner_name(owner: Any) -> str:
    return str(getattr(owner, "__qualname__", None) or getattr(owner, "__name__", owner))


# -- the standard library's rows --------------------------------------------

#: Queue classes watched at ``_put``/``_get``; LIFO ones hand out the newest.
QUEUE_CLASSES: tuple[tuple[type[Any], bool], ...] = (
    (queue.Queue, False),
    (queue.LifoQueue, True),
    (queue.PriorityQueue, False),
    (asyncio.queues.Queue, False),
    (asyncio.queues.LifoQueue, True),
    (asyncio.queues.PriorityQueue, False),
)

_FUTURE = concurrent.futures.Future
#: The code of ``submit``: a Future made by it is executor work.
SUBMIT_CODE = concurrent.futures.ThreadPoolExecutor.submit.__code__


def _queue_rows() -> list[Hook]:
    rows = []
    for cls, newest_first in QUEUE_CLASSES:
        # Every message passes here: wrapped on every backend (see Hook.wrap),
        # the values cost nothing to read, so no gate is asked first.
        rows.append(Hook(cls, "_put", "start", ("self", "item"), "recorder.put", wrap=True))
        got = "recorder.got_newest" if newest_first else "recorder.got"
        rows.append(
            Hook(cls, "_get", "return", ("self", RETURN), got, "recorder.pending", wrap=True)
        )
    return rows


#: What threads, queues, executors and asyncio tasks mean to the recorder.
STANDARD: tuple[Hook, ...] = (
    *_queue_rows(),
    Hook(threading.Thread, "start", "start", ("self",), "recorder.thread_starting"),
    Hook(
        _FUTURE,
        "__init__",
        "return",
        ("self", CALLER + "fn", CALLER + "args", CALLER + "kwargs"),
        "recorder.work_submitted",
        called_from=SUBMIT_CODE,
    ),
    Hook(
        _FUTURE,
        "set_running_or_notify_cancel",
        "return",
        ("self", RETURN),
        "recorder.work_running",
    ),
    Hook(_FUTURE, "set_result", "start", ("self", "result"), "recorder.future_result"),
    Hook(_FUTURE, "set_exception", "start", ("self", "exception"), "recorder.future_exception"),
    Hook(
        asyncio.base_events.BaseEventLoop,
        "create_task",
        "return",
        (RETURN,),
        "recorder.task_created",
    ),
)


# -- rows added by others -----------------------------------------------------

_lock = threading.Lock()
_registered: list[Hook] = []


def register(rows: Iterable[Hook]) -> None:
    """Have every later trace watch ``rows`` too (each row once).

    Parameters
    ----------
    rows
        Rows of the hook table, such as those :func:`livekit.trace.channel` makes.

    Raises
    ------
    TypeError
        If one of ``rows`` is not a :class:`Hook`.

    Examples
    --------
    >>> register(["queue.Queue.put"])
    Traceback (most recent call last):
    ...
    TypeError: expected a Hook, got str: 'queue.Queue.put'
    """
    rows = list(rows)
    for row in rows:
        if not isinstance(row, Hook):
            raise TypeError(f"expected a Hook, got {type(row).__name__}: {row!r}")
    with _lock:
        for row in rows:
            if row not in _registered:
                _registered.append(row)


def unregister(rows: Iterable[Hook]) -> bool:
    """Stop watching ``rows``; return True if any of them was registered.

    Examples
    --------
    >>> unregister([])
    False
    """
    found = False
    with _lock:
        for row in rows:
            if row in _registered:
                _registered.remove(row)
                found = True
    return found


def registered() -> tuple[Hook, ...]:
    """The rows added with :func:`register`, oldest first."""
    with _lock:
        return tuple(_registered)


# -- what both backends need to interpret a row ------------------------------

#: One step of reading a row's values: (kind, name); kind is "local" (a
#: parameter of the watched function), "return", "gate" or "caller".
Read = tuple[Literal["local", "return", "gate", "caller"], str]


def per_row(function: Callable[..., T]) -> Callable[..., T]:
    """``function(row, ...)``, a pure function of its arguments, worked out once.

    Each trace starts by reading the whole table, and rows are frozen.  A
    row that cannot be hashed (its ``adapt`` cannot) is worked out each time.

    >>> import threading
    >>> row = Hook(threading.Thread, "start", "start", ("self",), "a.b")
    >>> plan(row) is plan(row)
    True
    """
    cached = functools.lru_cache(maxsize=512)(function)

    @functools.wraps(function)
    def once(*args: Any) -> T:
        try:
            return cached(*args)
        except TypeError:  # unhashable: not cached (function itself raises the same again)
            return function(*args)

    return once


@per_row
def plan(hook: Hook) -> tuple[Read, ...]:
    """How to read ``hook``'s values, one step per value.

    >>> import threading
    >>> plan(STANDARD[-1]), plan(Hook(threading.Thread, "start", "start", ("self",), "a.b"))
    ((('return', ''),), (('local', 'self'),))
    """
    steps: list[Read] = []
    for read in hook.reads:
        if read == RETURN:
            steps.append(("return", ""))
        elif read == GATE:
            steps.append(("gate", ""))
        elif read.startswith(CALLER):
            steps.append(("caller", read[len(CALLER) :]))
        else:
            steps.append(("local", read))
    return tuple(steps)


class Backend(ABC):
    """What turns the rows of the hook table into calls of their events.

    The two backends, :mod:`livekit.trace.monitoring` and
    :mod:`livekit.trace.patching`, are made from the same two things.

    Parameters
    ----------
    rows
        The hook table.
    sinks
        What the rows' events name: ``{"recorder": recorder, ...}``.
    """

    #: The name the trace's ``backend`` option gives it.
    name: str

    def __init__(self, rows: Sequence[Hook], sinks: Mapping[str, object]) -> None:
        self._rows = tuple(rows)
        self._sinks = sinks

    @abstractmethod
    def install(self) -> None:
        """Start calling the rows' events; on failure, leave nothing installed."""

    @abstractmethod
    def uninstall(self) -> None:
        """Stop calling them, leaving everything as it was before :meth:`install`."""


def grouped(rows: Iterable[Hook]) -> dict[tuple[int, str], list[Hook]]:
    """The rows by watched function (``(id(owner), name)``), in table order."""
    groups: dict[tuple[int, str], list[Hook]] = {}
    for row in rows:
        groups.setdefault((id(row.owner), row.name), []).append(row)
    return groups
