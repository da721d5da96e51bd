"""The one interface through which a supervisor drives each of its children.

A supervisor has three kinds of children: a bare function, an
:class:`~livekit.Agent` and another :class:`~livekit.Supervisor`.  It does
not branch on their types.  Each kind implements :class:`Child` once (an
agent and a supervisor are children; a function is wrapped in
:class:`Worker`), and the supervisor only calls these methods:

``_prepare()``
    Before each start, under the supervisor's lock: make fresh per-run
    state.  A nested supervisor starts its own children here, so that
    starting a tree is synchronous, as in OTP.
``_run()``
    The body of the child's thread.  Returning is a normal exit; raising is
    a crash, which the supervisor handles by its restart rules.
``_wake()``
    After the child's stop event is set: unblock a child that waits on
    something else (an agent on its requests, a supervisor on its inbox).
``_shut_down(thread, timeout)``
    Wait for ``_run()`` to return after a stop request, and say what did
    not stop in time (``_shutdown_bound()`` says how long that can take).

and, for ownership, ``_adopt(parent)`` and ``_release()``; for the trees,
``_threads()``.  The methods
start with an underscore only to stay out of the public API of
:class:`~livekit.Supervisor` and :class:`~livekit.Agent`.

The thread-local state every child thread carries (its stop event, and the
supervisor that runs it) lives here too, with :func:`stopping`, which reads it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import ClassVar, Literal

Kind = Literal["worker", "supervisor", "agent"]

#: How long :meth:`Supervisor.stop` waits for a worker or an agent, in seconds.
DEFAULT_SHUTDOWN = 5.0

_local = threading.local()


def stopping() -> threading.Event:
    """Return the stop event of the supervised child running this code.

    A child checks it (``while not stopping().is_set(): ...``) or waits on
    it (``stopping().wait(0.5)`` instead of ``time.sleep(0.5)``) so that
    :meth:`Supervisor.stop` and :meth:`Supervisor.terminate_child` can stop
    it.  A thread cannot be killed in Python: a child that never looks at
    this event runs until it returns on its own.

    Raises
    ------
    RuntimeError
        When called outside a thread started by a :class:`Supervisor`.

    Examples
    --------
    >>> from livekit import Supervisor
    >>> seen = []
    >>> def poller():
    ...     event = stopping()
    ...     seen.append(event.is_set())
    ...     event.wait()          # returns when the supervisor stops us
    >>> with Supervisor([poller], name="demo") as sup:
    ...     pass
    >>> seen
    [False]
    """
    event: threading.Event | None = getattr(_local, "stop_event", None)
    if event is None:
        raise RuntimeError(
            f"stopping() called outside a supervised child, "
            f"in thread {threading.current_thread().name!r}"
        )
    return event


def enter(stop_event: threading.Event, owner: Child) -> None:
    """Mark the current thread as a child that ``owner`` runs, stopped by ``stop_event``."""
    _local.stop_event = stop_event
    _local.owner = owner


def runs_current_thread(ancestor: Child) -> bool:
    """True in a child thread that ``ancestor`` runs, directly or through nested supervisors."""
    owner: Child | None = getattr(_local, "owner", None)
    while owner is not None:
        if owner is ancestor:
            return True
        owner = owner._parent
    return False


class Child:
    """What a supervisor asks of one child; each kind of child implements it once.

    See the module's docstring for when the supervisor calls each method.
    """

    kind: ClassVar[Kind] = "worker"
    #: The ``shutdown`` time of a :func:`~livekit.child` spec that gives none.
    default_shutdown: ClassVar[float | None] = DEFAULT_SHUTDOWN
    name: str
    #: The supervisor this child belongs to, set by :meth:`_adopt`.
    _parent: Child | None = None

    def _adopt(self, parent: Child) -> None:
        """Become ``parent``'s child; a child has one supervisor."""
        if self._parent is not None:
            raise ValueError(f"{self!r} already has a supervisor, {self._parent.name!r}")
        self._parent = parent

    def _release(self) -> None:
        """Forget the supervisor (it deleted this child)."""
        self._parent = None

    def _prepare(self) -> None:
        """Make fresh per-run state, just before the child's thread starts."""

    def _run(self) -> None:
        """The body of the child's thread."""
        raise NotImplementedError

    def _wake(self) -> None:
        """Unblock the child after its stop event was set."""

    def _shutdown_bound(self, timeout: float | None) -> float | None:
        """The longest :meth:`_shut_down` waits, given the child's ``shutdown`` time."""
        return timeout

    def _shut_down(self, thread: threading.Thread, timeout: float | None) -> list[str] | None:
        """Wait up to ``timeout`` for ``thread`` to return; None if it did not.

        Otherwise the names, relative to this child, of what it left
        running (always none for a worker or an agent).
        """
        thread.join(self._shutdown_bound(timeout))
        return None if thread.is_alive() else []

    def _threads(self, thread: threading.Thread | None) -> Iterator[threading.Thread]:
        """The live threads of this child, run in ``thread``: its own, and any below it."""
        if thread is not None and thread.is_alive():
            yield thread


class Worker(Child):
    """The adapter for a bare function: a worker that calls it with no arguments.

    One per supervised record, so one function can be several children.

    Examples
    --------
    >>> Worker(print, "printer").kind
    'worker'
    """

    def __init__(self, fn: Callable[[], object], name: str) -> None:
        self._fn = fn
        self.name = name

    def __repr__(self) -> str:
        return f"<Worker {self.name!r}>"

    def _run(self) -> None:
        self._fn()


def as_child(target: Callable[[], object] | Child, name: str) -> Child:
    """The child itself, or a :class:`Worker` adapter for a bare function."""
    return target if isinstance(target, Child) else Worker(target, name)
