"""Agent: a small thread-safe state holder, run as a supervised child."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from livekit.supervisor._child import Child

S = TypeVar("S")
R = TypeVar("R")


class Agent(Child, Generic[S]):
    """A small thread-safe state holder, run as a supervised child.

    The counterpart of Elixir's ``Agent``: the state lives in the agent's
    own thread, and every function you pass runs there, one at a time.  A
    function that raises crashes the agent (the caller gets the exception)
    and its supervisor restarts it with a fresh state from ``initial``.

    Parameters
    ----------
    initial
        A function that returns the initial state, called in the agent's
        thread at every (re)start, as Elixir's ``fn -> [] end``; for
        example ``list``, ``dict`` or ``lambda: 0``.
    name
        The child name and thread name (default ``"agent"``).

    Examples
    --------
    >>> from livekit import Supervisor
    >>> cart = Agent(list, name="cart")
    >>> with Supervisor([cart], name="shop"):
    ...     cart.update(lambda items: [*items, "apple"])
    ...     cart.get_and_update(lambda items: (len(items), [*items, "pear"]))
    ...     cart.get(lambda items: items)
    1
    ['apple', 'pear']
    """

    def __init__(self, initial: Callable[[], S], *, name: str = "agent") -> None:
        if not callable(initial):
            raise TypeError(
                f"Agent expects a function that returns the initial state, such as Agent(list) "
                f"or Agent(lambda: 0), got {type(initial).__name__}: {initial!r}"
            )
        self.name = name
        self._initial = initial
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[tuple[Callable[[Any], Any], Future[Any]] | None]
        self._requests = queue.SimpleQueue()
        self._accepting = False

    def __repr__(self) -> str:
        return f"<Agent {self.name!r}>"

    def get(self, fn: Callable[[S], R], *, timeout: float | None = 5.0) -> R:
        """Return ``fn(state)``, computed in the agent's thread."""
        return self._call(lambda state: (fn(state), state), timeout)  # type: ignore[no-any-return]

    def update(self, fn: Callable[[S], S], *, timeout: float | None = 5.0) -> None:
        """Replace the state with ``fn(state)``."""
        self._call(lambda state: (None, fn(state)), timeout)

    def get_and_update(self, fn: Callable[[S], tuple[R, S]], *, timeout: float | None = 5.0) -> R:
        """Call ``fn(state)``, which returns ``(reply, new_state)``; return the reply."""
        return self._call(fn, timeout)  # type: ignore[no-any-return]

    def _call(self, fn: Callable[[Any], tuple[Any, Any]], timeout: float | None) -> Any:
        future: Future[Any] = Future()
        with self._lock:
            if not self._accepting:
                raise RuntimeError(f"agent {self.name!r} is not running; start its supervisor")
            self._requests.put((fn, future))
        return future.result(timeout)

    # ── as a supervised child (livekit.supervisor._child) ─────────────

    kind = "agent"

    def _prepare(self) -> None:
        with self._lock:
            self._requests = queue.SimpleQueue()
            self._accepting = True

    def _wake(self) -> None:
        with self._lock:
            self._requests.put(None)

    def _run(self) -> None:
        requests = self._requests
        try:
            state = self._initial()
            while (request := requests.get()) is not None:
                fn, future = request
                try:
                    reply, state = fn(state)
                except BaseException as exc:
                    future.set_exception(exc)
                    raise
                future.set_result(reply)
        finally:
            with self._lock:
                # A late run must not close the queue of the run that replaced it.
                if self._requests is requests:
                    self._accepting = False
            # Fail the calls still queued, so that no caller waits for a dead agent.
            while True:
                try:
                    pending = requests.get_nowait()
                except queue.Empty:
                    break
                if pending is not None:
                    pending[1].set_exception(RuntimeError(f"agent {self.name!r} stopped"))
