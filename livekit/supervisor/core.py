"""The supervisor itself: child specifications, restarts, intensity, stopping.

A :class:`Supervisor` drives every child through the one interface of
:mod:`livekit.supervisor._child` (prepare, run, wake, shut down), so it
never needs to know whether a child is a function, an agent or another
supervisor.  See :mod:`livekit.supervisor` for the semantics.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from livekit.mermaid import Mermaid
from livekit.supervisor._child import (
    DEFAULT_SHUTDOWN,
    Child,
    Kind,
    as_child,
    enter,
    runs_current_thread,
    stopping,  # noqa: F401 - the examples in this module's docstrings use it
)
from livekit.supervisor.agent import Agent

if TYPE_CHECKING:
    from livekit.trees import TreeNode

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
Restart = Literal["permanent", "transient", "temporary"]

STRATEGIES: tuple[Strategy, ...] = ("one_for_one", "one_for_all", "rest_for_one")
RESTARTS: tuple[Restart, ...] = ("permanent", "transient", "temporary")

_log = logging.getLogger("livekit.supervisor")
_names = itertools.count(1)


class SupervisorExit(Exception):  # noqa: N818 - named after OTP's exit, not an error
    """Raised in a nested supervisor's thread when it gave up restarting.

    Its parent sees it as the child's crash, as OTP's parent sees the exit
    of a child supervisor that reached its restart intensity.
    """


@dataclasses.dataclass(frozen=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child.

    Build one with :func:`~livekit.child`; a supervisor turns a bare callable, an
    :class:`~livekit.Agent` or a :class:`~livekit.Supervisor` into one with the defaults.
    """

    target: Callable[[], object] | Agent[Any] | Supervisor
    name: str
    restart: Restart = "permanent"
    shutdown: float | None = DEFAULT_SHUTDOWN

    @property
    def kind(self) -> Kind:
        """``"supervisor"``, ``"agent"`` or ``"worker"``."""
        return self.target.kind if isinstance(self.target, Child) else "worker"


def child(
    target: Callable[[], object] | Agent[Any] | Supervisor,
    *,
    name: str | None = None,
    restart: Restart = "permanent",
    shutdown: float | None = None,
) -> ChildSpec:
    """Describe a supervised child, as an OTP child specification does.

    Parameters
    ----------
    target
        A function called with no arguments in the child's thread, an
        :class:`Agent`, or a :class:`Supervisor` (which nests).
    name
        The child's name, unique within its supervisor; also its thread's
        name.  Defaults to the function's ``__name__`` (or the agent's or
        supervisor's name).
    restart
        ``"permanent"``: always restarted.  ``"transient"``: restarted only
        when it raised.  ``"temporary"``: never restarted, and forgotten
        once it ends.
    shutdown
        Seconds :meth:`Supervisor.stop` waits for the child after setting
        its stop event (default 5; for a nested supervisor, long enough for
        all of its own children).

    Examples
    --------
    >>> from livekit import stopping
    >>> def poll():
    ...     stopping().wait()
    >>> spec = child(poll, name="poller", restart="transient")
    >>> spec.name, spec.restart, spec.kind
    ('poller', 'transient', 'worker')
    >>> child(42)
    Traceback (most recent call last):
    ...
    TypeError: expected a callable, an Agent or a Supervisor as a child, got int: 42
    """
    if not callable(target) and not isinstance(target, Child):
        raise TypeError(
            f"expected a callable, an Agent or a Supervisor as a child, "
            f"got {type(target).__name__}: {target!r}"
        )
    if restart not in RESTARTS:
        raise ValueError(
            f"expected restart 'permanent', 'transient' or 'temporary', got {restart!r}"
        )
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"expected a non-empty str as a child's name, got {name!r}")
    if shutdown is not None and not shutdown >= 0:
        raise ValueError(f"expected shutdown >= 0 seconds, got {shutdown!r}")
    if shutdown is None:
        shutdown = target.default_shutdown if isinstance(target, Child) else DEFAULT_SHUTDOWN
    return ChildSpec(target, name or _default_name(target), restart, shutdown)


def _default_name(target: object) -> str:
    if isinstance(target, Child):
        return target.name
    name = getattr(target, "__name__", None) or type(target).__name__
    return "lambda" if name == "<lambda>" else str(name)


def _as_spec(item: object) -> ChildSpec:
    if isinstance(item, ChildSpec):
        return item
    return child(item)  # type: ignore[arg-type]  # child() checks and names it


class ChildInfo(NamedTuple):
    """One row of :meth:`~livekit.Supervisor.which_children`.

    ``stopping`` is True while a copy of the child that was asked to stop
    has not returned yet (a thread cannot be killed); if the supervisor
    restarts the child meanwhile, the new copy waits until the old one
    has returned, and ``alive`` stays False until then.
    """

    name: str
    kind: Kind
    alive: bool
    restarts: int
    stopping: bool = False


class ChildState(NamedTuple):
    """What :mod:`livekit.trees` draws of one child."""

    spec: ChildSpec
    alive: bool
    restarts: int
    stopping: bool
    #: A new copy waits for the stopping one to return.
    waiting: bool
    #: How it ended, if that exit made the supervisor give up: "raised ...", "returned".
    ended: str | None = None


class GaveUp(NamedTuple):
    """Why a supervisor gave up; its ``str()`` is :attr:`Supervisor.exit_reason`."""

    child: str
    #: ``"raised ValueError('boom')"`` or ``"returned"``.
    how: str
    #: ``"more than 3 restarts in 5 s"``.
    limit: str

    def __str__(self) -> str:
        return f"child {self.child!r} {self.how}; {self.limit}"


@dataclasses.dataclass(eq=False)
class _Record:
    """A supervisor's record of one child; guarded by the supervisor's lock."""

    spec: ChildSpec
    runner: Child
    thread: threading.Thread | None = None
    stop_event: threading.Event = dataclasses.field(default_factory=threading.Event)
    generation: int = 0
    running: bool = False
    restarts: int = 0
    last_error: BaseException | None = None
    #: Set by the latest copy's thread once the child's code has returned.
    returned: threading.Event | None = None
    #: A new copy waits for the latest one to return (it ignored a stop request).
    waiting: bool = False

    @property
    def stopping(self) -> bool:
        """A copy asked to stop has not returned yet."""
        return not self.running and self.returned is not None and not self.returned.is_set()


class Supervisor(Child):
    """Start, watch and restart threads the way an OTP supervisor does.

    Parameters
    ----------
    children
        Callables (each run in its own daemon thread), :func:`child`
        specifications, :class:`Agent` objects and other supervisors,
        started in this order.
    strategy
        What a crash restarts: ``"one_for_one"`` the crashed child only;
        ``"one_for_all"`` every child (the others are stopped first, in
        reverse start order); ``"rest_for_one"`` the crashed child and the
        children started after it.
    max_restarts, max_seconds
        The restart intensity: more than ``max_restarts`` restarts within
        ``max_seconds`` stops every child in reverse start order and stops
        the supervisor; :attr:`alive` becomes False and
        :attr:`exit_reason` says which child crashed and how.
    name
        The supervisor's name, shown in trees and used as its thread's name.
    clock
        Monotonic seconds; tests pass a fake clock to control intensity.

    Notes
    -----
    One copy of a child at a time.  A thread cannot be killed, so a child
    that ignores its stop request keeps running after its ``shutdown``
    time (it is reported, see :meth:`stop`).  The supervisor never starts
    a new copy of that child beside it: a restart (by strategy, by
    :meth:`restart_child`, or by starting the supervisor again) waits
    until the old copy returns, and then starts the new one.  Meanwhile
    :meth:`which_children` reports the child with ``alive=False`` and
    ``stopping=True``, and its tree draws it as ``stopping (waiting for
    the old copy to return)``.

    Examples
    --------
    >>> import threading
    >>> ready = threading.Event()
    >>> def worker():
    ...     ready.set()
    ...     stopping().wait()
    >>> with Supervisor([worker, Agent(list)], name="demo") as sup:
    ...     _ = ready.wait(5)
    ...     for row in sup.which_children():
    ...         print(row)
    ChildInfo(name='worker', kind='worker', alive=True, restarts=0, stopping=False)
    ChildInfo(name='agent', kind='agent', alive=True, restarts=0, stopping=False)
    >>> sup.alive
    False
    """

    kind = "supervisor"
    default_shutdown = None  # as long as its own children's shutdown times add up to

    def __init__(
        self,
        children: Iterable[object] = (),
        *,
        strategy: str = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5,
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(
                f"expected strategy 'one_for_one', 'one_for_all' or 'rest_for_one', "
                f"got {strategy!r}"
            )
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            raise ValueError(f"expected max_restarts to be an int >= 0, got {max_restarts!r}")
        if not max_seconds > 0:
            raise ValueError(f"expected max_seconds > 0, got {max_seconds!r}")
        if isinstance(children, str | bytes) or not isinstance(children, Iterable):
            raise TypeError(f"expected a list of children, got {children!r}")
        self.name = name if name is not None else f"Supervisor-{next(_names)}"
        # A str in the signature (checked above), so the docs show it as text.
        self.strategy: Strategy = strategy
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self._clock = clock
        self._lock = threading.RLock()
        self._children: list[_Record] = []
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._restart_times: deque[float] = deque()
        self._loop_thread: threading.Thread | None = None
        self._running = False
        self._gave_up: GaveUp | None = None
        self._not_stopped: list[str] = []
        for item in children:
            self._add(_as_spec(item))

    # ── public API ────────────────────────────────────────────────────

    @property
    def alive(self) -> bool:
        """True from :meth:`start` until stopped or given up."""
        return self._running

    @property
    def exit_reason(self) -> str | None:
        """Why the supervisor gave up (None while alive or after :meth:`stop`)."""
        return None if self._gave_up is None else str(self._gave_up)

    def start(self) -> Supervisor:
        """Start the children in order, then watch them; return ``self``.

        Examples
        --------
        >>> sup = Supervisor([], name="empty").start()
        >>> sup.alive
        True
        >>> sup.stop()
        []
        """
        with self._lock:
            if self._parent is not None:
                raise RuntimeError(
                    f"supervisor {self.name!r} is a child of {self._parent.name!r}; "
                    "its parent starts it"
                )
            if self._running:
                raise RuntimeError(f"supervisor {self.name!r} is already running")
            self._inbox = queue.SimpleQueue()
            self._begin()
            # Started under the lock, and published only once started: a
            # stop() or wait() that gets the lock next can always join it.
            thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            thread.start()
            self._loop_thread = thread
        # Started on its own (not as a child): app_tree() finds it among the running roots.
        from livekit.trees.protocol import add_root

        add_root(self)
        return self

    def stop(self) -> list[str]:
        """Stop every child in reverse start order, then the supervisor.

        Each child gets its stop event set and up to its ``shutdown``
        seconds to end.  Returns the names of children that did not stop
        in time (they keep running as daemon threads, and a
        :class:`RuntimeWarning` names them); an empty list when all
        stopped.  Stopping a stopped supervisor does nothing.

        Called from inside its own tree (by one of its children, or theirs),
        it only asks: the caller cannot wait for its own end, so it returns
        ``[]`` at once, and the supervisor stops every child, the caller
        included, as soon as it can.

        Examples
        --------
        >>> sup = Supervisor([lambda: stopping().wait()], name="s").start()
        >>> sup.stop()
        []
        """
        if runs_current_thread(self):
            # No lock: the supervisor may hold it while it waits for this very thread.
            if self._running:
                self._inbox.put(("stop",))
            return []
        with self._lock:
            if not self._running:
                return []
            thread = self._loop_thread
            inbox = self._inbox
            bound = self._longest_stop()
        inbox.put(("stop",))
        if thread is not None and thread is not threading.current_thread():
            thread.join(bound)
        late = list(self._not_stopped)
        _warn_not_stopped(self.name, late)
        return late

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the supervisor stops or gives up; return True if it did.

        A script whose work runs under a supervisor calls this at the end,
        as an Erlang program's main process waits for its application.

        Examples
        --------
        >>> def crash():
        ...     raise ValueError("boom")
        >>> import logging; logging.getLogger("livekit.supervisor").disabled = True
        >>> sup = Supervisor([crash], max_restarts=1, name="fragile").start()
        >>> sup.wait(5)
        True
        >>> sup.exit_reason
        "child 'crash' raised ValueError('boom'); more than 1 restarts in 5 s"
        >>> logging.getLogger("livekit.supervisor").disabled = False
        """
        thread = self._loop_thread
        if thread is None:
            return not self._running
        if thread is not threading.current_thread():
            thread.join(timeout)
        return not self._running

    def __enter__(self) -> Supervisor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start_child(self, spec: object) -> str:
        """Add a child and, if the supervisor runs, start it; return its name.

        ``spec`` is anything a supervisor accepts as a child.  A name that
        another child already has raises :class:`ValueError`; a child left
        unnamed gets its function's name with a ``-2``, ``-3``... suffix
        when needed.

        Examples
        --------
        >>> with Supervisor([], name="s") as sup:
        ...     sup.start_child(lambda: stopping().wait())
        ...     sup.start_child(lambda: stopping().wait())
        ...     sup.count_children()
        'lambda'
        'lambda-2'
        {'specs': 2, 'active': 2, 'supervisors': 0, 'workers': 2}
        """
        with self._lock:
            record = self._add(_as_spec(spec))
            if self._running:
                self._start(record)
            return record.spec.name

    def terminate_child(self, name: str) -> bool:
        """Stop a running child; return True if it stopped in time.

        The child's stop event is set and the supervisor waits up to its
        ``shutdown`` seconds.  The child is not restarted and stays in
        :meth:`which_children` (not alive) until :meth:`restart_child` or
        :meth:`delete_child`; a temporary child is forgotten, as in OTP.
        A child that does not stop in time is reported with a
        :class:`RuntimeWarning` and False.

        Examples
        --------
        >>> with Supervisor([lambda: stopping().wait()], name="s") as sup:
        ...     sup.terminate_child("lambda")
        ...     sup.which_children()
        True
        [ChildInfo(name='lambda', kind='worker', alive=False, restarts=0, stopping=False)]
        """
        with self._lock:
            record = self._find(name)
            late = self._terminate(record)
            if record.spec.restart == "temporary":
                self._children.remove(record)
        _warn_not_stopped(self.name, late)
        return not late

    def restart_child(self, name: str) -> None:
        """Start again a child that was terminated or that ended.

        Raises :class:`RuntimeError` if the child is running, as OTP does.
        If its last copy ignored the stop request and still runs, the new
        copy starts when that one returns (see the class's Notes).

        Examples
        --------
        >>> with Supervisor([lambda: stopping().wait()], name="s") as sup:
        ...     _ = sup.terminate_child("lambda")
        ...     sup.restart_child("lambda")
        ...     sup.which_children()
        [ChildInfo(name='lambda', kind='worker', alive=True, restarts=0, stopping=False)]
        """
        with self._lock:
            record = self._find(name)
            if record.running:
                raise RuntimeError(f"child {name!r} of {self.name!r} is running")
            if not self._running:
                raise RuntimeError(f"supervisor {self.name!r} is not running")
            self._start(record)

    def delete_child(self, name: str) -> None:
        """Forget a child that is not running (terminate it first, as in OTP).

        Examples
        --------
        >>> with Supervisor([lambda: stopping().wait()], name="s") as sup:
        ...     _ = sup.terminate_child("lambda")
        ...     sup.delete_child("lambda")
        ...     sup.which_children()
        []
        """
        with self._lock:
            record = self._find(name)
            if record.running:
                raise RuntimeError(
                    f"child {name!r} of {self.name!r} is running; terminate_child() it first"
                )
            self._children.remove(record)
            record.runner._release()

    def which_children(self) -> list[ChildInfo]:
        """Return name, kind, alive and restart count of each child, in start order.

        Examples
        --------
        >>> Supervisor([Agent(dict)], name="s").which_children()
        [ChildInfo(name='agent', kind='agent', alive=False, restarts=0, stopping=False)]
        """
        with self._lock:
            return [
                ChildInfo(c.spec.name, c.spec.kind, c.running, c.restarts, c.stopping)
                for c in self._children
            ]

    def count_children(self) -> dict[str, int]:
        """Return OTP's totals: specs, active, supervisors and workers.

        Agents count as workers, as they do in OTP.

        Examples
        --------
        >>> Supervisor([Agent(dict), Supervisor(name="inner")], name="s").count_children()
        {'specs': 2, 'active': 0, 'supervisors': 1, 'workers': 1}
        """
        with self._lock:
            supervisors = sum(c.spec.kind == "supervisor" for c in self._children)
            return {
                "specs": len(self._children),
                "active": sum(c.running for c in self._children),
                "supervisors": supervisors,
                "workers": len(self._children) - supervisors,
            }

    def summary(self) -> str:
        """Return a readable text summary: the supervisor, then one line per child.

        Examples
        --------
        >>> print(Supervisor([Agent(dict), print], name="cache").summary())
        Supervisor 'cache' (one_for_one, stopped)
          agent   agent  stopped  permanent  restarts=0
          worker  print  stopped  permanent  restarts=0
        """
        with self._lock:
            state = "running" if self._running else "stopped"
            if self._gave_up is not None:
                state = f"gave up: {self._gave_up}"
            rows = [
                (
                    c.spec.kind,
                    c.spec.name,
                    "alive" if c.running else "stopping" if c.stopping else "stopped",
                    c.spec.restart,
                    f"restarts={c.restarts}",
                )
                for c in self._children
            ]
        lines = [f"Supervisor {self.name!r} ({self.strategy}, {state})"]
        widths = [max((len(row[i]) for row in rows), default=0) for i in range(4)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append("  " + "  ".join([*cells, row[4]]))
        return "\n".join(lines)

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<Supervisor {self.name!r} {self.strategy} {state}, {len(self._children)} children>"

    def tree(self, *, direction: str = "top_down", caption: str | None = None) -> Mermaid:
        """Return this supervisor's tree as a :class:`~livekit.Mermaid` (``sup_tree(self)``)."""
        from livekit.trees import sup_tree

        return sup_tree(self, direction=direction, caption=caption)

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Display as the supervision tree, with the summary as plain text."""
        data, metadata = self.tree()._repr_mimebundle_(include, exclude)
        if "text/plain" in data:
            data["text/plain"] = self.summary()
        return data, metadata

    # ── its tree (livekit.trees.protocol) ───────────────────────────────

    def __livekit_tree__(self) -> tuple[TreeNode, str]:
        """Its tree and default caption, for :func:`~livekit.sup_tree` (the tree protocol)."""
        from livekit.trees.supervisors import supervisor_tree

        return supervisor_tree(self)

    def __livekit_threads__(self) -> Iterator[threading.Thread]:
        """The live threads its tree draws, for the interpreter's tree."""
        return self._threads()

    def _tree_children(self) -> list[ChildState]:
        with self._lock:
            gave_up = self._gave_up
            return [
                ChildState(
                    c.spec,
                    c.running,
                    c.restarts,
                    c.stopping,
                    c.waiting,
                    gave_up.how if gave_up is not None and gave_up.child == c.spec.name else None,
                )
                for c in self._children
            ]

    def _tree_gave_up(self) -> GaveUp | None:
        """Why this supervisor gave up, or None."""
        return self._gave_up

    def _threads(self, thread: threading.Thread | None = None) -> Iterator[threading.Thread]:
        """Yield every live thread of this tree: the loop, then children, nested.

        ``thread`` is the loop's thread when this supervisor runs as a child.
        """
        loop = thread if thread is not None else self._loop_thread
        if loop is not None and loop.is_alive():
            yield loop
        with self._lock:
            records = [(c.runner, c.thread) for c in self._children]
        for runner, child_thread in records:
            yield from runner._threads(child_thread)

    # ── as a child of another supervisor (livekit.supervisor._child) ───

    def _adopt(self, parent: Child) -> None:
        if parent is self:
            raise ValueError(f"supervisor {self.name!r} cannot supervise itself")
        if self._parent is None and self._running:
            raise ValueError(f"{self!r} was started on its own; its parent must start it")
        super()._adopt(parent)

    def _prepare(self) -> None:
        # Under the parent's lock: start this supervisor's own children now,
        # so that, as in OTP, starting is synchronous: when the parent's
        # start() returns, the whole tree runs, nested agents included.
        with self._lock:
            self._inbox = queue.SimpleQueue()
            self._begin()

    def _run(self) -> None:
        self._loop_thread = threading.current_thread()
        reason = self._loop()
        if reason is not None:
            raise SupervisorExit(f"supervisor {self.name!r} gave up: {reason}")

    def _wake(self) -> None:
        self._inbox.put(("stop",))

    def _shutdown_bound(self, timeout: float | None) -> float | None:
        return self._longest_stop() if timeout is None else timeout

    def _shut_down(self, thread: threading.Thread, timeout: float | None) -> list[str] | None:
        if super()._shut_down(thread, timeout) is None:
            return None
        return list(self._not_stopped)

    # ── internals; callers hold self._lock unless said otherwise ───────

    def _add(self, spec: ChildSpec) -> _Record:
        taken = {c.spec.name for c in self._children}
        if spec.name in taken:
            if spec.name != _default_name(spec.target):
                raise ValueError(
                    f"supervisor {self.name!r} already has a child named {spec.name!r}"
                )
            for n in itertools.count(2):
                if f"{spec.name}-{n}" not in taken:
                    spec = dataclasses.replace(spec, name=f"{spec.name}-{n}")
                    break
        runner = as_child(spec.target, spec.name)
        runner._adopt(self)
        record = _Record(spec, runner)
        self._children.append(record)
        return record

    def _find(self, name: str) -> _Record:
        for c in self._children:
            if c.spec.name == name:
                return c
        names = ", ".join(repr(c.spec.name) for c in self._children) or "none"
        raise KeyError(f"supervisor {self.name!r} has no child named {name!r} (children: {names})")

    def _begin(self) -> None:
        # The inbox was made fresh by start() or by _prepare(), so that a
        # stop sent before the loop thread got to it is not lost.
        self._restart_times.clear()
        self._gave_up = None
        self._not_stopped = []
        self._running = True
        for record in list(self._children):
            self._start(record)

    def _start(self, record: _Record) -> None:
        if record.stopping:
            # Its last copy ignored a stop request and still runs.  A thread
            # cannot be killed, and two copies must never run at once: the
            # new one starts when that one's exit arrives (_on_exit).
            record.waiting = True
            return
        record.waiting = False
        record.generation += 1
        record.stop_event = threading.Event()
        record.returned = threading.Event()
        record.running = True
        record.runner._prepare()
        thread = threading.Thread(
            target=self._run_child,
            args=(record, record.generation, record.stop_event, record.returned),
            name=record.spec.name,
            daemon=True,
        )
        record.thread = thread
        thread.start()

    def _run_child(
        self,
        record: _Record,
        generation: int,
        stop_event: threading.Event,
        returned: threading.Event,
    ) -> None:
        """Body of every child thread (no lock held): run, then report the exit."""
        enter(stop_event, self)
        error: BaseException | None = None
        try:
            record.runner._run()
        except BaseException as exc:  # a crash is data for the supervisor
            error = exc
            if not stop_event.is_set():
                _log.error(
                    "child %r of supervisor %r crashed", record.spec.name, self.name, exc_info=exc
                )
        returned.set()  # before the exit message, which may start the next copy
        self._inbox.put(("exit", record, generation, error))

    def _terminate(self, record: _Record) -> list[str]:
        """Stop one child cooperatively; return the names that outlived their shutdown time.

        For a nested supervisor these are its own late children, as ``"inner/name"``.
        """
        if not record.running:
            record.waiting = False  # stopped before the new copy could start
            return []
        record.running = False
        record.generation += 1  # its exit message is now stale: not a crash
        record.stop_event.set()
        record.runner._wake()
        thread = record.thread
        if thread is None or thread is threading.current_thread():
            return []
        below = record.runner._shut_down(thread, record.spec.shutdown)
        if below is None:
            return [record.spec.name]
        return [f"{record.spec.name}/{name}" for name in below]

    def _longest_stop(self) -> float:
        """The longest an orderly stop of this supervisor can take, in seconds."""
        total = 1.0
        for c in self._children:
            total += c.runner._shutdown_bound(c.spec.shutdown) or 0.0
        return total

    def _terminate_all(self) -> list[str]:
        """Stop every child in reverse start order; return those that outlived their time."""
        late = [name for c in reversed(self._children) for name in self._terminate(c)]
        self._children = [c for c in self._children if c.spec.restart != "temporary"]
        return late

    def _loop(self) -> str | None:
        """Handle exits until stopped (returns None) or given up (returns the reason)."""
        while True:
            message = self._inbox.get()
            with self._lock:
                if message[0] == "stop":
                    self._not_stopped = self._terminate_all()
                    self._running = False
                    return None
                _, record, generation, error = message
                gave_up = self._on_exit(record, generation, error)
                if gave_up is not None:
                    self._not_stopped = self._terminate_all()
                    self._running = False
                    self._gave_up = gave_up
                    _log_not_stopped(self.name, self._not_stopped)
                    _log.error("supervisor %r gave up: %s", self.name, gave_up)
                    return str(gave_up)

    def _on_exit(
        self, record: _Record, generation: int, error: BaseException | None
    ) -> GaveUp | None:
        """Apply restart type, intensity and strategy to one exit; a reason means give up."""
        if generation != record.generation or not record.running:
            # Stopped on purpose, or already restarted; or the exit of a copy
            # that outlived its stop request, which a new copy waited for.
            if record.waiting and record in self._children:
                self._start(record)
            return None
        record.running = False
        record.last_error = error
        restart = record.spec.restart
        if restart == "temporary":
            self._children.remove(record)
            return None
        if restart == "transient" and error is None:
            return None
        now = self._clock()
        self._restart_times.append(now)
        while self._restart_times and self._restart_times[0] <= now - self.max_seconds:
            self._restart_times.popleft()
        if len(self._restart_times) > self.max_restarts:
            how = f"raised {error!r}" if error is not None else "returned"
            limit = f"more than {self.max_restarts} restarts in {self.max_seconds:g} s"
            return GaveUp(record.spec.name, how, limit)
        if self.strategy == "one_for_one":
            group = [record]
        elif self.strategy == "one_for_all":
            group = list(self._children)
        else:
            group = self._children[self._children.index(record) :]
        late = [n for c in reversed(group) if c is not record for n in self._terminate(c)]
        _log_not_stopped(self.name, late)
        for c in group:
            if c is not record and c.spec.restart == "temporary":
                self._children.remove(c)
                continue
            c.restarts += 1
            self._start(c)
        return None


def _not_stopped_message(supervisor: str, names: list[str]) -> str:
    return (
        f"supervisor {supervisor!r}: child {', '.join(map(repr, names))} did not stop in "
        "time and keeps running as a daemon thread; a Python thread cannot be killed, "
        "so it must check stopping()"
    )


def _warn_not_stopped(supervisor: str, names: list[str]) -> None:
    """Report late children to the caller of stop() or terminate_child()."""
    if names:
        warnings.warn(_not_stopped_message(supervisor, names), RuntimeWarning, stacklevel=3)


def _log_not_stopped(supervisor: str, names: list[str]) -> None:
    """Report late children from the supervisor's own thread, where no caller waits."""
    if names:
        _log.warning(_not_stopped_message(supervisor, names))
