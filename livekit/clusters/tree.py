"""The tree of a Dask cluster: client, scheduler, nannies, worker processes, threads.

:func:`capture` asks the cluster (three round trips: the scheduler's
worker list, each worker's process and threads, each nanny's process) and
returns plain facts; :func:`cluster_tree` (pure) turns them into
:class:`~livekit.trees.TreeNode` values for :func:`livekit.sup_tree`.

The edges say what is true.  The client is ``connected`` to the
scheduler; the scheduler ``schedules`` work on each worker (it does not
restart them); a nanny ``supervises`` its worker process (it starts a new
one when the process dies); a worker process ``owns`` its threads.  A
worker that is not running (``paused``, ``closing``) is drawn grey.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from livekit.trees import NodeClass, TreeNode

if TYPE_CHECKING:
    from livekit.clusters.core import Cluster


@dataclass(frozen=True)
class WorkerFacts:
    """One worker as the tree shows it."""

    address: str
    name: str
    status: str
    pid: int | None = None
    threads: tuple[str, ...] = ()
    nanny: str | None = None
    nanny_pid: int | None = None


@dataclass(frozen=True)
class ClusterFacts:
    """What :func:`capture` found."""

    client: str
    client_pid: int
    scheduler: str
    scheduler_pid: int | None
    workers: tuple[WorkerFacts, ...] = field(default=())


def capture(cluster: Cluster) -> ClusterFacts:
    """Ask the cluster what its tree is made of."""
    from livekit.clusters import _remote

    client = cluster.client
    workers = cluster._refresh()
    facts = client.run(_remote.worker_facts, on_error="return")
    nannies = {a: info["nanny"] for a, info in workers.items() if info.get("nanny")}
    nanny_pids = (
        client.run(os.getpid, workers=list(nannies), nanny=True, on_error="return")
        if nannies
        else {}
    )
    try:
        scheduler_pid: int | None = client.run_on_scheduler(os.getpid)
    except Exception:  # the scheduler went away meanwhile: the tree goes on without it
        scheduler_pid = None
    found = []
    for address, info in sorted(workers.items()):
        mine: Any = facts.get(address)
        mine = mine if isinstance(mine, dict) else {}
        nanny_pid = nanny_pids.get(address)
        found.append(
            WorkerFacts(
                address=address,
                name=str(info.get("name", "")),
                status=str(mine.get("status") or info.get("status", "unknown")),
                pid=mine.get("pid"),
                threads=tuple(t["name"] for t in mine.get("threads", ())),
                nanny=nannies.get(address),
                nanny_pid=nanny_pid if isinstance(nanny_pid, int) else None,
            )
        )
    return ClusterFacts(
        client=str(client.id),
        client_pid=os.getpid(),
        scheduler=cluster.scheduler,
        scheduler_pid=scheduler_pid,
        workers=tuple(found),
    )


def _pid(pid: int | None) -> str:
    return f"pid {pid}" if pid is not None else "pid unknown"


def worker_node(worker: WorkerFacts) -> TreeNode:
    """A worker process with its threads; grey unless it is running.

    Examples
    --------
    >>> node = worker_node(WorkerFacts("tcp://h:1", "0", "paused", 42, ("MainThread",)))
    >>> node.label, node.kind, [t.label for t in node.children]
    ('worker 0 tcp://h:1 (pid 42, paused)', 'notstarted', ['MainThread'])
    """
    kind: NodeClass = "worker" if worker.status == "running" else "notstarted"
    name = f"worker {worker.name} " if worker.name else "worker "
    label = f"{name}{worker.address} ({_pid(worker.pid)}, {worker.status})"
    node = TreeNode(label, kind, "supervises" if worker.nanny else "schedules")
    node.children = [TreeNode(thread, "worker", "owns") for thread in worker.threads]
    return node


def cluster_tree(facts: ClusterFacts) -> TreeNode:
    """The tree of a cluster, from the facts :func:`capture` found.

    Examples
    --------
    >>> from livekit.trees import format_tree
    >>> facts = ClusterFacts("Client-1", 10, "tcp://h:8786", 10, (
    ...     WorkerFacts("tcp://h:1", "0", "running", 11, ("MainThread",), "tcp://h:2", 10),
    ... ))
    >>> print(format_tree(cluster_tree(facts)))  # doctest: +ELLIPSIS
    graph TD
      n0["client Client-1 (pid 10)"]:::root
      n0 -->|connected| n1["scheduler tcp://h:8786 (pid 10)"]:::owner
      n1 -->|schedules| n2["nanny tcp://h:2 (pid 10)"]:::supervisor
      n2 -->|supervises| n3["worker 0 tcp://h:1 (pid 11, running)"]:::worker
      n3 -->|owns| n4["MainThread"]:::worker
      ...
    """
    scheduler = TreeNode(
        f"scheduler {facts.scheduler} ({_pid(facts.scheduler_pid)})", "owner", "connected"
    )
    for worker in facts.workers:
        node = worker_node(worker)
        if worker.nanny:
            nanny = TreeNode(
                f"nanny {worker.nanny} ({_pid(worker.nanny_pid)})", "supervisor", "schedules"
            )
            nanny.children = [node]
            node = nanny
        scheduler.children.append(node)
    root = TreeNode(f"client {facts.client} (pid {facts.client_pid})", "root")
    root.children = [scheduler]
    return root
