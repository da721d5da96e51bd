"""An attached Dask cluster, and the node operations on its processes.

:func:`cluster` attaches a ``distributed.Client`` (or opens one on a
scheduler address) and keeps the :class:`Cluster` in a small table, so
that a worker's address works wherever a node name does:
:func:`call`, :func:`spawn` and :func:`connect` below are what
``livekit.rpc.call``, ``livekit.spawn`` and ``livekit.connect`` do for a
name with a URL scheme (``tcp://``, ``tls://``, ...).
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from livekit.clusters.memory import MemoryChart
from livekit.mermaid import Mermaid
from livekit.nodes.client import SpawnHandle, check_call, check_timeout, unwrap
from livekit.nodes.errors import NodeError, SerializationError

if TYPE_CHECKING:
    from livekit.trees import TreeNode
    from livekit.widgets.listeners import Listener

#: Seconds :func:`connect` waits for the scheduler by default.
CONNECT_TIMEOUT = 5.0
#: Seconds between checks that a spawned function's worker is still there.
RECHECK_WORKER_EVERY = 1.0

EXTRA_HINT = "livekit.cluster needs Dask distributed: pip install 'livekit-introspect[dask]'"

_attached_lock = threading.Lock()
_attached: list[Cluster] = []


def _distributed() -> Any:
    """Import ``distributed``, or say which extra brings it."""
    try:
        import distributed
    except ImportError as error:
        raise ImportError(f"{EXTRA_HINT} (importing it failed: {error})") from error
    return distributed


def is_cluster_node(node: object) -> bool:
    """Whether ``node`` names a process of a cluster (it has a URL scheme).

    Examples
    --------
    >>> is_cluster_node("tcp://127.0.0.1:8786"), is_cluster_node("demo@localhost")
    (True, False)
    """
    return isinstance(node, str) and "://" in node


class Cluster:
    """A Dask cluster attached to livekit: its workers are nodes.

    Made by :func:`livekit.cluster`.  Shown as a cell's value, it draws its
    tree (:func:`livekit.sup_tree`).

    Attributes
    ----------
    client
        The ``distributed.Client`` livekit talks to the cluster through.

    Examples
    --------
    >>> import livekit
    >>> cluster = livekit.cluster(client)
    >>> cluster  # doctest: +ELLIPSIS
    <Cluster tcp://127.0.0.1:...: 1 worker>
    >>> cluster.close()
    """

    def __init__(self, client: Any, *, owns_client: bool) -> None:
        # A distributed.Client, typed Any: several of its methods carry no annotations.
        self.client: Any = client
        # Kept: a closed client forgets it.
        self._scheduler = str(self.client.scheduler.address)
        self._owns_client = owns_client
        self._workers: dict[str, dict[str, Any]] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._closed = False
        from livekit.clusters.tracing import TraceSource

        self._trace_source = TraceSource(self)
        self._spawn_topic = f"livekit-spawn-{uuid.uuid4().hex[:12]}"
        self._spawns: dict[str, ClusterSpawnHandle] = {}
        self._subscribed = threading.Event()
        self._spawn_ids = itertools.count(1)

    def __repr__(self) -> str:
        if self._closed:
            return f"<Cluster {self.scheduler}: detached>"
        count = len(self._workers)
        return f"<Cluster {self.scheduler}: {count} worker{'s' if count != 1 else ''}>"

    # -- what it is made of ----------------------------------------------

    @property
    def scheduler(self) -> str:
        """The scheduler's address, which is a node name for ``rpc.call`` too.

        Examples
        --------
        >>> import livekit
        >>> livekit.cluster(client).scheduler.startswith("tcp://127.0.0.1:")
        True
        """
        return self._scheduler

    @property
    def nodes(self) -> list[str]:
        """The workers' addresses, sorted; each is a node name.

        Asks the scheduler, so a worker that joined or left since is seen.

        Examples
        --------
        >>> import livekit
        >>> [node.split(":")[0] for node in livekit.cluster(client).nodes]
        ['tcp']
        """
        return sorted(self._refresh())

    def _refresh(self) -> dict[str, dict[str, Any]]:
        # The scheduler's identity call itself: Client.scheduler_info returns
        # an attribute that the client's own periodic refresh overwrites
        # with a copy that lists no workers, so two threads can race on it.
        info = self.client.sync(self.client.scheduler.identity, n_workers=-1)
        workers: dict[str, dict[str, Any]] = dict(info.get("workers", {}))
        with self._lock:
            self._workers = workers
        return workers

    def _worker_names(self) -> dict[str, str]:
        with self._lock:
            workers = dict(self._workers)
        return {address: str(info.get("name", "")) for address, info in workers.items()}

    def _role(self, node: str, *, refresh: bool = True) -> str | None:
        """``"scheduler"``, ``"worker"`` or None: what ``node`` is in this cluster."""
        if node == self.scheduler:
            return "scheduler"
        with self._lock:
            if node in self._workers:
                return "worker"
        if refresh and self.usable and node in self._refresh():
            return "worker"
        return None

    @property
    def usable(self) -> bool:
        """True while attached and while its client is connected."""
        return not self._closed and self.client.status == "running"

    # -- memory ------------------------------------------------------------

    def memory(self) -> dict[str, dict[str, int]]:
        """Each worker's memory, in bytes, as Dask measures it: one round trip.

        ``total`` is the process's RSS; ``managed`` the size of the data
        Dask holds in memory; ``unmanaged`` the rest of ``total``;
        ``spilled`` what Dask wrote to disk.  The numbers come from the
        workers' last heartbeats to the scheduler (about once a second),
        so they lag by up to a heartbeat.

        Examples
        --------
        >>> import livekit
        >>> (usage,) = livekit.cluster(client).memory().values()
        >>> sorted(usage), usage["total"] == usage["managed"] + usage["unmanaged"]
        (['managed', 'spilled', 'total', 'unmanaged'], True)
        """
        return {address: _memory_of(info) for address, info in self._refresh().items()}

    def memory_chart(self, every: float = 1.0, window: int = 600) -> MemoryChart:
        """A live chart of each worker's memory, one line per worker.

        A :func:`livekit.listen <livekit.widgets.listen>` loop samples
        :meth:`memory` every ``every`` seconds and pushes one point per
        worker.  It stops like any listener (``chart.stop()``, or running
        the cell again), and by itself when the cluster is closed or
        detached.

        Parameters
        ----------
        every
            Seconds between samples.
        window
            Samples kept per worker (600 at 1 s: ten minutes).

        Examples
        --------
        >>> import livekit
        >>> chart = livekit.cluster(client).memory_chart(every=0.1)
        >>> chart.listener.stop()
        True
        """
        from livekit.clusters.memory import chart_for

        if self._closed:
            raise RuntimeError(f"{self!r} is detached: attach it again with livekit.cluster()")
        plot, listener = chart_for(self, every=every, window=window)
        with self._lock:
            self._listeners = [each for each in self._listeners if each.running]
            self._listeners.append(listener)
        return plot

    def ticks(self, every: float) -> Iterator[int]:
        """0, 1, 2, ... every ``every`` seconds while the cluster is usable.

        Meant for :func:`livekit.listen <livekit.widgets.listen>`: it waits
        on the listener's stop event, so a stop is immediate.
        """
        from livekit.supervisor import stopping

        stop = stopping()
        for i in itertools.count():
            if not self.usable:
                return
            yield i
            if stop.wait(every):
                return

    # -- trees ---------------------------------------------------------

    def __livekit_tree__(self) -> tuple[TreeNode, str]:
        """Its tree and default caption, for :func:`livekit.sup_tree` (the tree protocol)."""
        from livekit.clusters.tree import capture, cluster_tree

        facts = capture(self)
        return cluster_tree(facts), f"The Dask cluster of scheduler {self.scheduler}."

    def tree(self, *, direction: str = "top_down", caption: str | None = None) -> Mermaid:
        """Its tree, as :func:`livekit.sup_tree` draws it."""
        from livekit.trees import sup_tree

        return sup_tree(self, direction=direction, caption=caption)

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        bundle: tuple[dict[str, Any], dict[str, Any]] = self.tree()._repr_mimebundle_(
            include=include, exclude=exclude
        )
        return bundle

    # -- the node operations --------------------------------------------

    def call(
        self,
        node: str,
        module: str,
        function: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        timeout: float | None,
    ) -> Any:
        from livekit.clusters import _remote

        role = self._role(node)
        what = f"{module}.{function}()"
        distributed = _distributed()
        try:
            if role == "scheduler":
                raw = self.client.run_on_scheduler(
                    _remote.call, module, function, args, kwargs, callback_timeout=timeout
                )
            elif role == "worker":
                # Client.sync takes callback_timeout; Client.run hands it on.
                replies = self.client.run(
                    _remote.call, module, function, args, kwargs,
                    workers=[node], callback_timeout=timeout,
                )  # fmt: skip
                raw = replies[node]
            else:
                raise _not_ours(node)
        except TimeoutError:
            raise TimeoutError(f"node {node} did not answer {what} within {timeout:g} s") from None
        except (OSError, distributed.comm.CommClosedError) as error:
            raise NodeError(
                f"lost {_describe(role, node)} during {what}: {_reason(error)}"
            ) from None
        except KeyError:  # gone from the scheduler between our check and the call
            raise NodeError(f"{_describe(role, node)} left the cluster during {what}") from None
        return unwrap(raw, node, what)

    def spawn(self, node: str, fn: Callable[[], Any]) -> ClusterSpawnHandle:
        from livekit.clusters import _remote

        role = self._role(node)
        if role != "worker":
            raise (
                _not_ours(node)
                if role is None
                else NodeError(f"spawn runs on a worker; {node} is the scheduler")
            )
        from livekit.nodes import protocol

        try:
            protocol.dumps((fn,))  # fails here, plainly, rather than inside Dask
        except Exception as error:
            raise SerializationError(f"cannot send {fn!r:.60} to node {node}: {error}") from error
        self._subscribe()
        ident = f"{next(self._spawn_ids)}"
        handle = ClusterSpawnHandle(self, node, ident, stdout=sys.stdout, stderr=sys.stderr)
        with self._lock:
            self._spawns[ident] = handle
        distributed = _distributed()
        try:
            names = self.client.run(_remote.spawn, fn, self._spawn_topic, ident, workers=[node])
        except BaseException as error:
            self._spawn_ended(ident)
            lost = isinstance(error, OSError | distributed.comm.CommClosedError)
            reason = f"lost worker {node} during spawn(): {_reason(error)}"
            handle._finish(None, NodeError(reason if lost else f"spawn() failed: {error!r}"))
            if lost:
                raise NodeError(reason) from None
            raise
        handle.name = names[node]
        return handle

    def _subscribe(self) -> None:
        """Receive the spawned functions' events, from now on and until :meth:`close`.

        ``subscribe_topic`` reaches the scheduler on the client's batched
        stream, not in order with ``Client.run``: an event logged before it
        arrived would be lost.  A probe event, logged until one comes back,
        proves that the subscription is in place.
        """
        with self._lock:
            if self._subscribed.is_set():
                return
            self.client.subscribe_topic(self._spawn_topic, self._on_spawn_event)
            deadline = time.monotonic() + CONNECT_TIMEOUT
            while not self._subscribed.is_set():
                if time.monotonic() > deadline:
                    raise NodeError(
                        f"the scheduler {self.scheduler} did not confirm the subscription "
                        f"to {self._spawn_topic} within {CONNECT_TIMEOUT:g} s"
                    )
                self.client.log_event(self._spawn_topic, {"probe": True})
                self._subscribed.wait(0.05)

    def _on_spawn_event(self, event: tuple[float, Mapping[str, Any]]) -> None:
        """A spawned function's line or outcome (on the client's event loop)."""
        _, message = event
        if "probe" in message:
            self._subscribed.set()
            return
        with self._lock:
            handle = self._spawns.get(str(message.get("spawn")))
        if handle is None:
            return
        if "done" in message:
            handle._finish(message["done"], None)
            self._spawn_ended(handle.ident)
        else:
            handle._write(str(message.get("stream")), str(message.get("text", "")))

    def _spawn_ended(self, ident: str) -> None:
        with self._lock:
            self._spawns.pop(ident, None)

    # -- detaching ------------------------------------------------------

    def close(self) -> None:
        """Detach: stop this cluster's listeners and forget it.

        A client that :func:`livekit.cluster` opened on an address is
        closed too; a client that was handed in is left open.  Closing
        twice is harmless.
        """
        from livekit.trace.sources import remove_source

        with self._lock:
            if self._closed:
                return
            self._closed = True
            listeners, self._listeners = self._listeners, []
            spawns = list(self._spawns.values())
        for listener in listeners:
            listener.stop()
        remove_source(self._trace_source)
        with _attached_lock:
            if self in _attached:
                _attached.remove(self)
        for handle in spawns:
            handle._finish(None, NodeError(f"detached from the cluster while {handle.name} ran"))
        if self._subscribed.is_set() and self.client.status == "running":
            with contextlib.suppress(Exception):  # closing meanwhile
                self.client.unsubscribe_topic(self._spawn_topic)
        if self._owns_client:
            with contextlib.suppress(Exception):  # already closed, or its scheduler is gone
                self.client.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class ClusterSpawnHandle(SpawnHandle):
    """A function running in its own thread on a Dask worker, from :func:`livekit.spawn`.

    The same interface as :class:`livekit.SpawnHandle`: its prints come
    back to the caller's output, :meth:`join` waits for it (and raises
    what it raised, or why the worker was lost) and :meth:`result`
    returns its value.

    Dask delivers the function's lines on the client's event-loop thread;
    a thread of this handle, started by the caller, writes them out.  In
    Jupyter that puts them under the cell that called ``spawn`` (a
    kernel sends a thread's output to the cell that started the thread).
    The same thread notices a worker that leaves the cluster meanwhile.
    """

    def __init__(
        self, cluster: Cluster, node: str, ident: str, *, stdout: TextIO, stderr: TextIO
    ) -> None:
        super().__init__(node, f"livekit-spawn ({ident})")
        self.ident = ident
        self._cluster = cluster
        self._streams = {"out": stdout, "err": stderr}
        self._inbox: queue.SimpleQueue[tuple[str, Any, Any]] = queue.SimpleQueue()
        # SpawnHandle's join, result and is_alive wait for this thread and
        # read what it leaves in _raw, or _lost.
        self._reader = threading.Thread(
            target=self._pump, name=f"livekit-spawn-output-{ident}", daemon=True
        )
        self._reader.start()

    def _write(self, kind: str, text: str) -> None:
        self._inbox.put(("text", kind, text))

    def _finish(self, reply: bytes | None, error: NodeError | None) -> None:
        self._inbox.put(("end", reply, error))

    def _pump(self) -> None:
        while True:
            try:
                what, first, second = self._inbox.get(timeout=RECHECK_WORKER_EVERY)
            except queue.Empty:
                self._check_worker()
                continue
            if what == "text":
                stream = self._streams.get(first)
                if stream is not None:
                    stream.write(second)
                    stream.flush()
                continue
            self._raw, self._lost = first, second
            self._done.set()
            return

    def _check_worker(self) -> None:
        try:
            if not self._cluster.usable:
                error = NodeError(f"lost the cluster while {self.name} ran")
            elif self.node not in self._cluster._refresh():
                error = NodeError(f"worker {self.node} left while {self.name} ran")
            else:
                return
        except Exception as lost:  # the scheduler went away meanwhile
            error = NodeError(f"lost the cluster while {self.name} ran: {_reason(lost)}")
        self._finish(None, error)
        self._cluster._spawn_ended(self.ident)


def _describe(role: str | None, node: str) -> str:
    return f"the scheduler {node}" if role == "scheduler" else f"worker {node}"


def _reason(error: BaseException) -> str:
    text = str(error) or "the connection closed"
    return f"{type(error).__name__}: {text}"


def _not_ours(node: str) -> NodeError:
    with _attached_lock:
        schedulers = [each.scheduler for each in _attached]
    if not schedulers:
        return NodeError(
            f"{node} is not a worker of an attached cluster: none is attached "
            "(attach one with livekit.cluster(client_or_address))"
        )
    return NodeError(
        f"{node} is not a worker or scheduler of the attached cluster"
        f"{'s' if len(schedulers) > 1 else ''} (scheduler {', '.join(schedulers)})"
    )


def _memory_of(info: Mapping[str, Any]) -> dict[str, int]:
    """Dask's memory numbers of one worker, from its last heartbeat's metrics.

    The same sums as ``distributed.scheduler.MemoryState``: managed is at
    most the process's RSS, unmanaged is the rest.
    """
    metrics = info.get("metrics", {})
    total = int(metrics.get("memory") or 0)
    managed = min(total, int(metrics.get("managed_bytes") or 0))
    spilled = int((metrics.get("spilled_bytes") or {}).get("disk") or 0)
    return {"total": total, "managed": managed, "unmanaged": total - managed, "spilled": spilled}


def _owner(node: str) -> tuple[Cluster, str]:
    """The attached cluster that ``node`` belongs to, and its role there."""
    with _attached_lock:
        clusters = [each for each in _attached if each.usable]
    for each in clusters:  # known addresses first: no round trip
        role = each._role(node, refresh=False)
        if role is not None:
            return each, role
    for each in clusters:
        role = each._role(node)
        if role is not None:
            return each, role
    raise _not_ours(node)


def cluster(client_or_address: Any, **client_options: Any) -> Cluster:
    """Attach a Dask cluster: its workers become nodes.

    Each worker's address (``Cluster.nodes``) then works wherever a node
    name does: :func:`livekit.rpc.call`, :func:`livekit.spawn`,
    :func:`livekit.connect`; so does the scheduler's
    (``Cluster.scheduler``).  While it is attached, :func:`livekit.seq_trace`
    draws the Dask messages of the traced code.  livekit opens no port of
    its own: everything goes through the client, with Dask's own security
    (TLS certificates) as configured.

    Parameters
    ----------
    client_or_address
        A ``distributed.Client``, or a scheduler address such as
        ``"tcp://127.0.0.1:8786"`` to open one on.
    **client_options
        Passed to ``distributed.Client`` when given an address
        (``security=``, ``timeout=``, ...).

    Returns
    -------
    Cluster
        Attaching the same client again returns the same one.

    Raises
    ------
    ImportError
        If Dask distributed is not installed; it names the extra to install.
    TypeError
        If ``client_or_address`` is neither a client nor an address.

    Examples
    --------
    >>> import livekit
    >>> cluster = livekit.cluster(client)
    >>> cluster is livekit.cluster(client)
    True
    >>> livekit.cluster(8786)
    Traceback (most recent call last):
    ...
    TypeError: expected a distributed.Client or a scheduler address ..., got int: 8786
    """
    distributed = _distributed()
    if isinstance(client_or_address, distributed.Client):
        if client_options:
            raise TypeError(
                f"client options apply to an address, not to a client: got {sorted(client_options)}"
            )
        with _attached_lock:
            for each in _attached:
                if each.client is client_or_address and not each._closed:
                    return each
        attached = Cluster(client_or_address, owns_client=False)
    elif is_cluster_node(client_or_address):
        with _attached_lock:
            for each in _attached:
                if each.scheduler == client_or_address and each.usable:
                    return each
        client = distributed.Client(client_or_address, set_as_default=False, **client_options)
        attached = Cluster(client, owns_client=True)
    else:
        raise TypeError(
            "expected a distributed.Client or a scheduler address such as "
            f"'tcp://127.0.0.1:8786', got {type(client_or_address).__name__}: "
            f"{client_or_address!r}"
        )
    from livekit.trace.sources import add_source

    attached._refresh()
    with _attached_lock:
        _attached.append(attached)
    add_source(attached._trace_source)
    return attached


# -- what livekit.rpc.call, livekit.spawn and livekit.connect do for a cluster's node --


def call(
    node: str,
    module: str,
    function: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    *,
    timeout: float | None,
) -> Any:
    """``livekit.rpc.call`` on a worker or the scheduler of an attached cluster.

    :func:`livekit.rpc.call` hands a cluster's node here with its own
    arguments, so this takes them all, in its order and without defaults.
    The function runs in a thread of its own on that process (the worker's
    event loop goes on meanwhile).  What it raises is raised here with the
    worker's traceback, as for any node.
    """
    check_call(module, function, args, kwargs, timeout)
    owner, _ = _owner(node)
    return owner.call(node, module, function, tuple(args), dict(kwargs or {}), timeout=timeout)


def spawn(node: str, fn: Callable[[], Any]) -> SpawnHandle:
    """``livekit.spawn`` on a worker of an attached cluster; its prints come back."""
    if not callable(fn):
        raise TypeError(f"expected a function to spawn, got {type(fn).__name__}: {fn!r:.60}")
    owner, _ = _owner(node)
    return owner.spawn(node, fn)


def connect(node: str, *, timeout: float = CONNECT_TIMEOUT) -> bool:
    """``livekit.connect`` to a worker or the scheduler: True once it has answered."""
    check_timeout(timeout)
    owner, _ = _owner(node)
    owner.call(node, "os", "getpid", (), {}, timeout=timeout)
    return True
