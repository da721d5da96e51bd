"""Sequence traces of a Dask cluster, from Dask's own records.

While a trace runs with a cluster attached, a scheduler plugin
(``livekit.clusters._plugin``) records the client's submissions and the
scheduler's assignments; when it ends, livekit removes the plugin, reads
the workers' transfer logs (``transfer_incoming_log`` and
``transfer_outgoing_log``, which Dask keeps anyway) and turns both into
trace events:

- client → scheduler: ``submit KEY`` for each graph the client sent;
- scheduler → worker: ``KEY`` for each task given to a worker;
- worker → worker: ``KEY (SIZE)`` for each piece of data one worker
  fetched from another;
- worker → client: ``REPLY: KEY (SIZE)`` for each result the client
  gathered (Dask's client gathers through the scheduler unless it was made
  with ``direct_to_workers=True``: the data goes from the worker to the
  scheduler and on to the client).

The client is the trace's caller.  :func:`cluster_events` is pure: it is
tested with hand-made records.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from livekit.trace.events import MAX_LABEL, Event, Message, MessageKind, Participant
from livekit.trace.format import shorten
from livekit.trace.sources import NewParticipant

if TYPE_CHECKING:
    from livekit.clusters.core import Cluster

#: Records the scheduler plugin keeps at most, per trace.
RECORD_LIMIT = 10_000
#: Seconds before the first submission that the workers' logs are read from.
CLOCK_MARGIN = 1.0
#: How far before the event it must precede a transfer is put (seconds).
_BEFORE = 1e-6


def size_label(nbytes: int) -> str:
    """A byte count for a label: ``"28 B"``, ``"97.7 KiB"``, ``"1.5 MiB"``.

    Examples
    --------
    >>> size_label(28), size_label(100_049), size_label(3 * 2**29)
    ('28 B', '97.7 KiB', '1.5 GiB')
    """
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def key_label(key: object, room: int = MAX_LABEL) -> str:
    """A Dask key as text, cut to ``room`` characters.

    Examples
    --------
    >>> key_label("inc-5d1f"), key_label(("sum-9a3c", 0))
    ('inc-5d1f', "('sum-9a3c', 0)")
    >>> key_label("x" * 50, 10)
    'xxxxxxxxx…'
    """
    return shorten(key if isinstance(key, str) else repr(key), max(room, 2))


def sized_label(key: object, nbytes: int, prefix: str = "") -> str:
    """``KEY (SIZE)``, the key cut so that the whole fits a label.

    Examples
    --------
    >>> sized_label("make-a", 100_049)
    'make-a (97.7 KiB)'
    >>> sized_label("a-very-long-key-name-that-goes-on-and-on", 28)
    'a-very-long-key-name-that-goes-o… (28 B)'
    """
    size = f" ({size_label(nbytes)})"
    return prefix + key_label(key, MAX_LABEL - len(prefix) - len(size)) + size


def submit_label(keys: Sequence[Any], tasks: Sequence[Any]) -> str:
    """The label of a submission: the key asked for, and how many tasks came.

    Examples
    --------
    >>> submit_label(["len-b"], ["len-b"])
    'submit len-b'
    >>> submit_label(["sum-1"], ["sum-1", "inc-1", "inc-2"])
    'submit sum-1 (3 tasks)'
    >>> submit_label(["a", "b"], ["a", "b"])
    'submit a, b (2 tasks)'
    """
    wanted = ", ".join(key_label(k) for k in list(keys)[:2]) + (", …" if len(keys) > 2 else "")
    count = f" ({len(tasks)} tasks)" if len(tasks) > 1 else ""
    return shorten(f"submit {wanted}{count}")


def cluster_events(
    records: Iterable[Sequence[Any]],
    transfers: Mapping[str, Mapping[str, Iterable[Mapping[str, Any]]]],
    *,
    client: Participant,
    scheduler: Participant,
    worker: Callable[[str], Participant],
    clock: Callable[[float], float],
) -> list[Event]:
    """Turn the plugin's records and the workers' transfer logs into events.

    Parameters
    ----------
    records
        The scheduler plugin's records (see ``livekit.clusters._plugin``).
    transfers
        ``{worker address: {"incoming": [...], "outgoing": [...]}}``, the
        entries of each worker's transfer logs.
    client, scheduler
        Their participants; ``worker(address)`` gives a worker's.
    clock
        Turns a time on the scheduler's clock into this process's
        ``time.monotonic()``.

    Returns
    -------
    list
        The events, in time order.  A transfer is put after the task that
        made the data finished and the task that needs it was assigned, and
        before that task finished; a result after its task finished.  The
        workers' clocks follow the scheduler's only to within a few
        milliseconds, so their own times cannot be trusted for this.

    Examples
    --------
    >>> me = Participant(0, "caller (MainThread)", "caller")
    >>> boss = Participant(1, "scheduler", "process")
    >>> names = {"tcp://a": Participant(2, "worker a", "process"),
    ...          "tcp://b": Participant(3, "worker b", "process")}
    >>> records = [("submit", 1.0, ["x"], ["x"]), ("assign", 1.1, "x", "tcp://a", []),
    ...            ("done", 1.2, "x", "tcp://a"), ("submit", 1.3, ["y"], ["y", "x"]),
    ...            ("assign", 1.4, "y", "tcp://b", ["x"]), ("done", 1.6, "y", "tcp://b")]
    >>> logs = {"tcp://b": {"incoming": [{"start": 1.5, "who": "tcp://a", "keys": {"x": 80}}],
    ...                     "outgoing": [{"start": 1.7, "who": None, "keys": {"y": 28}}]}}
    >>> for event in cluster_events(records, logs, client=me, scheduler=boss,
    ...                             worker=names.__getitem__, clock=lambda t: t):
    ...     print(event)
    caller (MainThread) -> scheduler: submit x
    scheduler -> worker a: x
    caller (MainThread) -> scheduler: submit y (2 tasks)
    scheduler -> worker b: y
    worker a -> worker b: x (80 B)
    worker b -> caller (MainThread): REPLY: y (28 B)
    """
    timeline = _Timeline(clock)
    for record in records:
        kind, at = record[0], float(record[1])
        if kind == "submit":
            _, _, keys, tasks = record
            timeline.ours.update(tasks)
            timeline.ours.update(keys)
            label = submit_label(keys, tasks)
            timeline.message(at, client, scheduler, label)
        elif kind == "assign":
            _, _, key, address, dependencies = record
            for dependency in dependencies:
                timeline.assigned.setdefault((address, dependency), at)
                timeline.needs.setdefault((address, dependency), []).append(key)
            timeline.ours.add(key)
            label = key_label(key)
            timeline.message(at, scheduler, worker(address), label)
        elif kind == "done":
            timeline.done.setdefault(record[2], at)
    for address, logs in transfers.items():
        for entry in logs.get("incoming", ()):
            _fetched(timeline, entry, receiver=worker(address), address=address, worker=worker)
        for entry in logs.get("outgoing", ()):
            _gathered(timeline, entry, worker(address), client)
    return timeline.events()


class _Timeline:
    """Events being gathered, with what the later ones are checked against."""

    def __init__(self, clock: Callable[[float], float]) -> None:
        self._clock = clock
        self._events: list[tuple[float, int, Event]] = []
        #: key -> when its task finished
        self.done: dict[Any, float] = {}
        #: (worker, key it needs) -> when the first task that needs it went there
        self.assigned: dict[tuple[str, Any], float] = {}
        #: (worker, key) -> the traced tasks on that worker that need the key
        self.needs: dict[tuple[str, Any], list[Any]] = {}
        #: the keys of the traced client's tasks
        self.ours: set[Any] = set()

    def message(
        self,
        at: float,
        sender: Participant,
        receiver: Participant,
        label: str,
        kind: MessageKind = "send",
    ) -> None:
        """A message sent at ``at`` on the cluster's clock."""
        event = Message(sender, receiver, label, kind, self._clock(at))
        self._events.append((at, len(self._events), event))

    def events(self) -> list[Event]:
        return [event for _, _, event in sorted(self._events, key=lambda item: item[:2])]


def _fetched(
    timeline: _Timeline,
    entry: Mapping[str, Any],
    *,
    receiver: Participant,
    address: str,
    worker: Callable[[str], Participant],
) -> None:
    """One entry of a worker's incoming log: the data it fetched from a peer."""
    sender = entry.get("who")
    if sender is None:
        return
    for key, nbytes in _moved(entry):
        needed = timeline.assigned.get((address, key))
        if key not in timeline.ours and needed is None:
            continue  # another client's data
        at = max(float(entry["start"]), timeline.done.get(key, 0.0), needed or 0.0)
        # ... and before the task that needed it finished (whose result may follow).
        finished = [
            timeline.done[t] for t in timeline.needs.get((address, key), ()) if t in timeline.done
        ]
        if finished:
            at = min(at, min(finished) - _BEFORE)
        timeline.message(at, worker(sender), receiver, sized_label(key, nbytes))


def _gathered(
    timeline: _Timeline,
    entry: Mapping[str, Any],
    sender: Participant,
    client: Participant,
) -> None:
    """One entry of a worker's outgoing log to no worker: results gathered for a client."""
    if entry.get("who") is not None:
        return  # to a worker: drawn from that worker's incoming log
    for key, nbytes in _moved(entry):
        if key in timeline.ours:
            at = max(float(entry["start"]), timeline.done.get(key, 0.0))
            timeline.message(at, sender, client, sized_label(key, nbytes), "reply")


def _moved(entry: Mapping[str, Any]) -> list[tuple[Any, int]]:
    """The keys one entry of a worker's transfer log moved, each with its size in bytes."""
    return [(key, int(nbytes or 0)) for key, nbytes in dict(entry.get("keys") or {}).items()]


class TraceSource:
    """An attached cluster as a source of messages for :func:`livekit.seq_trace`.

    Starting installs the scheduler plugin (one round trip); finishing
    removes it and reads the records and the workers' transfer logs (two
    more).  Nothing is installed on the workers.
    """

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._name: str | None = None
        self._new: NewParticipant | None = None
        self._caller: Participant | None = None

    def start(self, new_participant: NewParticipant, caller: Participant) -> None:
        from livekit.clusters._plugin import TracePlugin

        self._name = None
        client: Any = self._cluster.client
        if client.status != "running":
            return
        name = f"livekit-trace-{uuid.uuid4().hex[:12]}"
        client.register_plugin(TracePlugin(name, client.id, RECORD_LIMIT), name=name)
        self._name, self._new, self._caller = name, new_participant, caller

    def finish(self) -> list[Event]:
        from livekit.clusters import _plugin, _remote

        name, self._name = self._name, None
        if name is None or self._new is None or self._caller is None:
            return []
        client = self._cluster.client
        before = time.monotonic()
        got = client.run_on_scheduler(_plugin.collect, name)
        after = time.monotonic()
        records = got["records"]
        if not records:
            return []
        # A worker's log times follow the scheduler's clock only to within
        # its latest heartbeat's estimate: look a little earlier (the keys
        # still have to be the trace's own).
        since = min(float(r[1]) for r in records) - CLOCK_MARGIN
        logs = client.run(_remote.transfer_logs, since, on_error="ignore")
        offset = float(got["now"]) - (before + after) / 2
        new = self._new
        names = self._cluster._worker_names()
        participants: dict[str, Participant] = {}

        def worker(address: str) -> Participant:
            found = participants.get(address)
            if found is None:
                label = names.get(address)
                title = f"worker {label} ({address})" if label else f"worker {address}"
                found = participants[address] = new(title, "process")
            return found

        scheduler = new(f"scheduler ({self._cluster.scheduler})", "process")
        return cluster_events(
            records,
            logs,
            client=self._caller,
            scheduler=scheduler,
            worker=worker,
            clock=lambda at: at - offset,
        )
