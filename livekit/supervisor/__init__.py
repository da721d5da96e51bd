"""Supervisors for threads, with OTP's semantics.

Python has threads but no supervisors.  A :class:`~livekit.Supervisor` starts its
children (functions run in threads, :class:`~livekit.Agent` state holders, and other
supervisors), watches them, and restarts them the way an Erlang/OTP
supervisor does: by ``strategy`` (``one_for_one``, ``one_for_all``,
``rest_for_one``), by each child's ``restart`` type (``permanent``,
``transient``, ``temporary``), and within a restart intensity
(``max_restarts`` in ``max_seconds``).  See
https://www.erlang.org/doc/system/sup_princ.html for OTP's definitions.

Stopping is cooperative: a Python thread cannot be killed.  Each child has
a stop event, :func:`~livekit.stopping` returns it inside the child, and a child that
checks it stops when asked.  A child that does not stop within its
``shutdown`` timeout is reported (a :class:`RuntimeWarning` and the return
value of :meth:`~livekit.Supervisor.stop`), never waited on forever.

livekit's own background work (live charts, the node server, the local
kernel) runs under :func:`app_supervisor`, the supervisor named
``"livekit"``, which is what ``app_tree("livekit")`` draws.

The package's modules: ``core`` (the supervisor, child specifications and
restarts), ``agent`` (:class:`~livekit.Agent`), ``app`` (livekit's own root
supervisor) and ``_child`` (the one interface a supervisor drives each
child through).
"""

from __future__ import annotations

from livekit.supervisor._child import DEFAULT_SHUTDOWN, Kind, stopping
from livekit.supervisor.agent import Agent, R, S
from livekit.supervisor.app import app_supervisor
from livekit.supervisor.core import (
    RESTARTS,
    STRATEGIES,
    ChildInfo,
    ChildSpec,
    Restart,
    Strategy,
    Supervisor,
    SupervisorExit,
    child,
)

__all__ = [
    "DEFAULT_SHUTDOWN",
    "RESTARTS",
    "STRATEGIES",
    "Agent",
    "ChildInfo",
    "ChildSpec",
    "Kind",
    "R",
    "Restart",
    "S",
    "Strategy",
    "Supervisor",
    "SupervisorExit",
    "app_supervisor",
    "child",
    "stopping",
]
