"""The scheduler plugin that a sequence trace installs, and removes after.

It runs inside the Dask scheduler and keeps, for one client's graphs
submitted while the trace runs, plain records of what the scheduler did:

- ``("submit", time, keys, tasks)``: the client sent a graph
  (``update_graph``);
- ``("assign", time, key, worker, dependencies)``: the scheduler gave a
  task to a worker (the transition to ``processing``);
- ``("done", time, key, worker)``: the worker reported the task finished
  (``processing`` to ``memory``);
- ``("erred", time, key, worker)``: the task raised.

Times are the scheduler's ``time()``.  At most ``limit`` records are kept.
Importing this module imports ``distributed``; livekit imports it only
when a trace starts with a cluster attached.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.metrics import time


class TracePlugin(SchedulerPlugin):
    """Record one client's submissions and the scheduler's decisions about them."""

    def __init__(self, name: str, client: str, limit: int) -> None:
        self.name = name
        self.client = client
        self.limit = limit
        self.records: list[tuple[Any, ...]] = []
        self.keys: set[Any] = set()
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def update_graph(
        self, scheduler: Any, *, client: str, keys: Iterable[Any], tasks: Iterable[Any], **_: Any
    ) -> None:
        if client != self.client:
            return
        # A graph also names the tasks it depends on that exist already (in
        # memory, say); the new ones are still "released" at this point.
        new = [
            key
            for key in tasks
            if key not in self.keys
            and getattr(scheduler.tasks.get(key), "state", "released") == "released"
        ]
        self.keys.update(new)
        self._keep(("submit", time(), list(keys), new))

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if key not in self.keys:
            return
        if finish == "processing":
            task = self.scheduler.tasks.get(key)
            worker = getattr(getattr(task, "processing_on", None), "address", None)
            if worker is not None:
                dependencies = [d.key for d in task.dependencies]
                self._keep(("assign", time(), key, worker, dependencies))
        elif finish in ("memory", "erred") and start == "processing":
            action = "done" if finish == "memory" else "erred"
            self._keep((action, time(), key, kwargs.get("worker")))

    def _keep(self, record: tuple[Any, ...]) -> None:
        if len(self.records) < self.limit:
            self.records.append(record)


def collect(name: str, dask_scheduler: Any) -> dict[str, Any]:
    """Remove the plugin ``name`` and return its records, with the scheduler's clock."""
    plugin = dask_scheduler.plugins.get(name)
    if plugin is not None:
        dask_scheduler.remove_plugin(name=name)
    return {
        "records": list(plugin.records) if plugin is not None else [],
        "now": time(),
    }
