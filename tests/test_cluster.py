"""livekit.cluster on a real Dask cluster: two worker processes on loopback.

One ``LocalCluster`` serves the whole module (the machine is small); the
test that kills a worker runs last, since its nanny starts a new worker
process at a new address.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import distributed
import pytest

import livekit
from livekit import rpc
from livekit.clusters import core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker_state(dask_worker: Any) -> dict[str, Any]:
    """What must be the same on a worker before and after livekit watched it."""
    import logging

    return {
        "threads": sorted(t.name for t in threading.enumerate()),
        "plugins": sorted(dask_worker.plugins),
        "handlers": sorted(dask_worker.handlers),
        "stream_handlers": sorted(dask_worker.stream_handlers),
        "stdout": type(sys.stdout).__name__,
        "stderr": type(sys.stderr).__name__,
        "log_handlers": len(logging.getLogger().handlers),
    }


def _workers(client: Any) -> dict[str, Any]:
    """The scheduler's workers, asked directly (``Client.scheduler_info`` can race
    with the client's own periodic refresh, which lists none)."""
    workers: dict[str, Any] = client.sync(client.scheduler.identity, n_workers=-1)["workers"]
    return workers


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as local,
        distributed.Client(local, set_as_default=False) as client,
    ):
        client.wait_for_workers(2)
        # Warm up what Dask and livekit start once per process and keep
        # (Dask's offload thread, livekit's app supervisor), so that the
        # tests below see only what they start.
        for worker in _workers(client):
            client.submit(len, "warm up", workers=[worker], pure=False).result()
        client.run(_worker_state)
        livekit.cluster(client).memory_chart(every=0.05).stop()
        for attached in list(core._attached):
            attached.close()
        yield client
    _stop_dask_offload_thread()


def _stop_dask_offload_thread() -> None:
    """End the thread that a LocalCluster's in-process scheduler started in Dask's offload pool.

    Dask keeps that pool for the life of the interpreter; later tests that
    draw every thread of this interpreter must not find it.  A fresh pool
    takes its place (it starts no thread until used).
    """
    from concurrent.futures import ThreadPoolExecutor

    import distributed.utils

    distributed.utils._offload_executor.shutdown(wait=True)
    distributed.utils._offload_executor = ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="Dask-Offload"
    )


@pytest.fixture
def cluster(dask_client: Any) -> Iterator[livekit.Cluster]:
    attached = livekit.cluster(dask_client)
    yield attached
    attached.close()


def _wait_for(condition: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


# -- attaching ---------------------------------------------------------------


def test_import_livekit_does_not_import_distributed() -> None:
    code = "import sys, livekit; print('distributed' in sys.modules, 'dask' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert out.stdout.split() == ["False", "False"]


def test_cluster_without_distributed_names_the_extra_to_install() -> None:
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "import livekit\n"
        "try:\n"
        "    livekit.cluster('tcp://127.0.0.1:8786')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert out.stdout.startswith(
        "livekit.cluster needs Dask distributed: pip install 'livekit-introspect[dask]'"
    )


def test_nodes_are_the_workers_addresses_and_the_scheduler_is_one_too(
    cluster: livekit.Cluster, dask_client: Any
) -> None:
    workers = sorted(_workers(dask_client))
    assert cluster.nodes == workers
    assert len(workers) == 2
    assert all(node.startswith("tcp://127.0.0.1:") for node in workers)
    assert cluster.scheduler == dask_client.scheduler.address
    assert repr(cluster) == f"<Cluster {cluster.scheduler}: 2 workers>"


def test_attaching_the_same_client_twice_gives_the_same_cluster(
    cluster: livekit.Cluster, dask_client: Any
) -> None:
    assert livekit.cluster(dask_client) is cluster


def test_cluster_rejects_what_is_neither_a_client_nor_an_address() -> None:
    with pytest.raises(TypeError, match=r"expected a distributed.Client .* got str: 'demo@h'"):
        livekit.cluster("demo@h")


def test_the_scheduler_address_form_opens_its_own_client_and_closes_it(
    dask_client: Any, no_thread_left_behind: None
) -> None:
    attached = livekit.cluster(dask_client.scheduler.address)
    try:
        assert attached.client is not dask_client
        assert attached.nodes == sorted(_workers(dask_client))
        node = attached.nodes[0]
        assert rpc.call(node, "os", "getpid") == dask_client.run(os.getpid)[node]
    finally:
        attached.close()
    assert attached.client.status == "closed"
    assert dask_client.status == "running"  # the client that was handed in stays open


# -- rpc.call, spawn, connect -------------------------------------------------


def test_rpc_call_runs_in_the_worker_process(cluster: livekit.Cluster, dask_client: Any) -> None:
    pids = dask_client.run(os.getpid)
    for node in cluster.nodes:
        assert rpc.call(node, "os", "getpid") == pids[node]
    assert len(set(pids.values()) | {os.getpid()}) == 3


def test_rpc_call_passes_kwargs_and_dotted_names(cluster: livekit.Cluster) -> None:
    node = cluster.nodes[0]
    assert rpc.call(node, "builtins", "int", ("ff",), {"base": 16}) == 255
    assert rpc.call(node, "os.path", "join", ("a", "b")) == os.path.join("a", "b")


def test_rpc_call_on_the_scheduler(cluster: livekit.Cluster, dask_client: Any) -> None:
    # A LocalCluster's scheduler runs in this process.
    assert rpc.call(cluster.scheduler, "os", "getpid") == dask_client.run_on_scheduler(os.getpid)


def test_livekits_own_functions_answer_on_a_worker(cluster: livekit.Cluster) -> None:
    usage = rpc.call(cluster.nodes[0], "livekit", "memory")
    assert usage["total"] > 10_000_000


def test_a_worker_that_raises_raises_here_with_its_traceback(cluster: livekit.Cluster) -> None:
    node = cluster.nodes[0]
    # An error whose text every Python version shares (3.14 reworded math's).
    with pytest.raises(
        ValueError, match=r"invalid literal for int\(\) with base 10: 'four'"
    ) as caught:
        rpc.call(node, "builtins", "int", ("four",))
    assert caught.value.__notes__ == [f"(raised on node {node} in builtins.int())"]
    cause = caught.value.__cause__
    assert isinstance(cause, rpc.RemoteTraceback)
    assert cause.text.startswith("Traceback (most recent call last):")
    assert cause.text.rstrip().endswith(
        "ValueError: invalid literal for int() with base 10: 'four'"
    )


def test_a_timeout_raises_timeout_error_and_the_worker_goes_on(cluster: livekit.Cluster) -> None:
    node = cluster.nodes[0]
    with pytest.raises(TimeoutError, match=rf"node {node} did not answer time.sleep\(\) within"):
        rpc.call(node, "time", "sleep", (1.0,), timeout=0.05)
    # The call ran in a thread of its own: the worker answers meanwhile.
    assert rpc.call(node, "operator", "add", (2, 3), timeout=5) == 5


def test_an_address_that_is_not_a_worker_raises_node_error_naming_it(
    cluster: livekit.Cluster,
) -> None:
    with pytest.raises(livekit.NodeError) as caught:
        rpc.call("tcp://127.0.0.1:1", "os", "getpid")
    assert str(caught.value) == (
        "tcp://127.0.0.1:1 is not a worker or scheduler of the attached cluster "
        f"(scheduler {cluster.scheduler})"
    )
    with pytest.raises(livekit.NodeError, match=r"tcp://127.0.0.1:1 is not a worker"):
        livekit.spawn("tcp://127.0.0.1:1", lambda: None)
    with pytest.raises(livekit.NodeError, match=r"tcp://127.0.0.1:1 is not a worker"):
        livekit.connect("tcp://127.0.0.1:1")


def test_a_worker_address_without_an_attached_cluster_says_so(dask_client: Any) -> None:
    node = sorted(_workers(dask_client))[0]
    with pytest.raises(livekit.NodeError, match=rf"{node} is not a worker .*none is attached"):
        rpc.call(node, "os", "getpid")


def test_call_rejects_bad_arguments_as_for_nodes(cluster: livekit.Cluster) -> None:
    node = cluster.nodes[0]
    with pytest.raises(ValueError, match="expected a module name, got ''"):
        rpc.call(node, "", "getpid")
    with pytest.raises(ValueError, match="expected a timeout in seconds greater than 0, got 0"):
        rpc.call(node, "os", "getpid", timeout=0)


def test_connect_to_a_worker_and_to_the_scheduler(cluster: livekit.Cluster) -> None:
    assert livekit.connect(cluster.nodes[1]) is True
    assert livekit.connect(cluster.scheduler) is True


def test_spawn_prints_come_back_to_the_caller(
    cluster: livekit.Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    node = cluster.nodes[1]

    def hello() -> int:
        import os

        print("hello from", os.getpid())
        print("and once more", end="")
        return 42

    handle = livekit.spawn(node, hello)
    assert handle.result(timeout=30) == 42
    assert not handle.is_alive()
    pid = rpc.call(node, "os", "getpid")
    assert capsys.readouterr().out == f"hello from {pid}\nand once more"
    assert handle.name.startswith("livekit-spawn-")


def test_spawn_raises_what_the_function_raised(cluster: livekit.Cluster) -> None:
    handle = livekit.spawn(cluster.nodes[0], lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError) as caught:
        handle.result(timeout=30)
    assert caught.value.__notes__[0].startswith(f"(raised on node {cluster.nodes[0]} in spawned")


def test_spawn_join_does_not_hide_what_the_function_raised(cluster: livekit.Cluster) -> None:
    """As for a livekit node: join() raises once the function has ended."""
    handle = livekit.spawn(cluster.nodes[0], lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        handle.join(timeout=30)
    assert not handle.is_alive()


def test_spawn_result_times_out_while_the_function_runs(cluster: livekit.Cluster) -> None:
    handle = livekit.spawn(cluster.nodes[0], lambda: time.sleep(0.5))
    with pytest.raises(TimeoutError, match=r"still runs after 0\.05 s"):
        handle.result(timeout=0.05)
    assert handle.result(timeout=30) is None


def test_nothing_is_left_behind_on_the_workers(
    cluster: livekit.Cluster, dask_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def livekits_threads() -> list[str]:
        states = dask_client.run(_worker_state).values()
        return [name for state in states for name in state["threads"] if "livekit" in name]

    # An earlier test's timed-out call may still be sleeping on a worker.
    assert _wait_for(lambda: livekits_threads() == [])
    before = dask_client.run(_worker_state)
    node = cluster.nodes[0]
    rpc.call(node, "os", "getpid")
    livekit.spawn(node, lambda: print("out")).join(30)
    livekit.seq_trace(lambda: dask_client.submit(len, "abc", pure=False).result())
    livekit.sup_tree(cluster)
    cluster.memory()
    _wait_for(lambda: dask_client.run(_worker_state) == before)
    after = dask_client.run(_worker_state)
    assert sorted(after) == sorted(before)
    for address, state in after.items():
        for what, value in state.items():
            assert (address, what, value) == (address, what, before[address][what])
    assert capsys.readouterr().out == "out\n"


# -- memory ------------------------------------------------------------------


def test_memory_gives_dask_numbers_for_every_worker_in_one_call(
    cluster: livekit.Cluster, dask_client: Any
) -> None:
    node = cluster.nodes[0]
    usage = cluster.memory()
    assert sorted(usage) == cluster.nodes
    for numbers in usage.values():
        assert sorted(numbers) == ["managed", "spilled", "total", "unmanaged"]
        assert numbers["total"] == numbers["managed"] + numbers["unmanaged"]
        assert numbers["total"] > 10_000_000
    # 20 MB held by Dask on one worker shows as managed memory there (the
    # numbers come with the next heartbeat).
    data = dask_client.submit(lambda: b"x" * 20_000_000, workers=[node], pure=False)
    data.result()
    assert _wait_for(lambda: cluster.memory()[node]["managed"] >= 20_000_000)
    del data


def test_memory_chart_draws_one_line_per_worker_and_stops_on_close(
    dask_client: Any, no_thread_left_behind: None
) -> None:
    attached = livekit.cluster(dask_client)
    chart = attached.memory_chart(every=0.05, window=3)
    assert isinstance(chart, livekit.VegaLite)
    assert _wait_for(lambda: len(chart.data()) == 6)  # 3 samples of 2 workers
    time.sleep(0.3)
    rows = chart.data()
    assert len(rows) == 6
    assert sorted({row["worker"] for row in rows}) == attached.nodes
    assert chart.spec["encoding"]["color"]["field"] == "worker"
    assert chart.listener.running
    attached.close()
    assert not chart.listener.running


def test_memory_chart_rejects_bad_options(cluster: livekit.Cluster) -> None:
    with pytest.raises(ValueError, match="expected every to be a number of seconds > 0, got 0"):
        cluster.memory_chart(every=0)
    with pytest.raises(ValueError, match="expected window to be a number of samples >= 1, got 0"):
        cluster.memory_chart(window=0)


def test_closing_the_client_stops_its_listeners(
    dask_client: Any, no_thread_left_behind: None
) -> None:
    own = distributed.Client(dask_client.scheduler.address, set_as_default=False)
    attached = livekit.cluster(own)
    chart = attached.memory_chart(every=0.05)
    assert _wait_for(lambda: len(chart.data()) >= 2)
    own.close()
    assert _wait_for(lambda: not chart.listener.running, timeout=5)
    attached.close()


# -- trees ---------------------------------------------------------------------


def test_sup_tree_draws_client_scheduler_nannies_workers_and_threads(
    cluster: livekit.Cluster, dask_client: Any
) -> None:
    source = str(livekit.sup_tree(cluster))
    info = _workers(dask_client)
    pids = dask_client.run(os.getpid)
    threads = dask_client.run(lambda: [t.name for t in threading.enumerate()])
    me = os.getpid()
    # A LocalCluster's scheduler and nannies run in this process; each
    # nanny starts one worker process.
    expected = [
        f'  n0["client {dask_client.id} (pid {me})"]:::root',
        f'  n0 -->|connected| n1["scheduler {cluster.scheduler} (pid {me})"]:::owner',
    ]
    number = 2
    for node in cluster.nodes:
        name, nanny = info[node]["name"], info[node]["nanny"]
        expected += [
            f'  n1 -->|schedules| n{number}["nanny {nanny} (pid {me})"]:::supervisor',
            f"  n{number} -->|supervises| n{number + 1}"
            f'["worker {name} {node} (pid {pids[node]}, running)"]:::worker',
        ]
        expected += [
            f'  n{number + 1} -->|owns| n{number + 2 + i}["{thread}"]:::worker'
            for i, thread in enumerate(threads[node])
        ]
        number += 2 + len(threads[node])
    lines = source.splitlines()
    assert lines[0] == "graph TD"
    assert lines[1 : 1 + len(expected)] == expected
    assert all(line.startswith("  classDef ") for line in lines[1 + len(expected) :])


def test_a_paused_worker_is_drawn_grey_with_its_state(
    cluster: livekit.Cluster, dask_client: Any
) -> None:
    from distributed.core import Status

    node = cluster.nodes[0]

    def set_status(status: str, dask_worker: Any) -> None:
        # Dask's memory monitor would resume a worker paused by hand; for
        # this test, pausing is left to us (as if memory were short).
        manager = dask_worker.memory_manager
        if status == "paused":
            manager.saved_pause_fraction = manager.memory_pause_fraction
            manager.memory_pause_fraction = False
        else:
            manager.memory_pause_fraction = manager.saved_pause_fraction
        dask_worker.status = Status[status]

    dask_client.run(set_status, "paused", workers=[node])
    try:
        source = str(livekit.sup_tree(cluster))
        assert f"{node} (pid " in source
        line = next(line for line in source.splitlines() if f" {node} (pid " in line)
        assert line.endswith(', paused)"]:::notstarted')
    finally:
        dask_client.run(set_status, "running", workers=[node])


def test_a_cluster_as_a_cells_value_shows_its_tree(cluster: livekit.Cluster) -> None:
    data, _ = cluster._repr_mimebundle_()
    assert data["text/vnd.mermaid"].startswith('graph TD\n  n0["client ')
    assert data["text/plain"].startswith(f"%% The Dask cluster of scheduler {cluster.scheduler}.\n")
    only_text, _ = cluster._repr_mimebundle_(include=["text/plain"])
    assert list(only_text) == ["text/plain"]


# -- sequence traces ------------------------------------------------------------


def test_seq_trace_draws_submissions_assignments_transfers_and_results(
    cluster: livekit.Cluster, dask_client: Any
) -> None:
    first, second = cluster.nodes
    names = {a: i["name"] for a, i in _workers(dask_client).items()}

    def work() -> int:
        # Made on one worker, measured on the other: the data must move.
        text = dask_client.submit(lambda: "x" * 100_000, workers=[first], key="make-text")
        size = dask_client.submit(len, text, workers=[second], key="measure-text")
        return int(size.result())

    result, diagram = livekit.seq_trace(work)
    assert result == 100_000
    plugins = dask_client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.plugins))
    assert not [name for name in plugins if name.startswith("livekit-trace-")]
    lines = str(diagram).splitlines()
    assert lines[:5] == [
        "sequenceDiagram",
        "    participant p0 as caller (MainThread)",
        f"    participant p1 as scheduler ({cluster.scheduler})",
        f"    participant p2 as worker {names[first]} ({first})",
        f"    participant p3 as worker {names[second]} ({second})",
    ]
    # The text is 100,000 characters: its pickle is a little more.
    arrows = [line.split(" (9")[0] for line in lines[5:]]
    assert arrows == [
        "    p0->>p1: submit make-text",
        "    p1->>p2: make-text",
        "    p0->>p1: submit measure-text",
        "    p1->>p3: measure-text",
        "    p2->>p3: make-text",
        "    p3-->>p0: REPLY: measure-text (28 B)",
    ]
    assert lines[9].startswith("    p2->>p3: make-text (97.")
    assert lines[9].endswith(" KiB)")
    assert diagram.caption.endswith("<locals>.work ran: 6 messages.")


def test_seq_trace_without_a_cluster_draws_no_dask_messages(dask_client: Any) -> None:
    _, diagram = livekit.seq_trace(lambda: dask_client.submit(len, "ab", pure=False).result())
    assert str(diagram) == "sequenceDiagram\n    participant p0 as caller (MainThread)"


def test_a_trace_of_code_that_raises_removes_its_plugin(
    cluster: livekit.Cluster, dask_client: Any
) -> None:
    def fail() -> None:
        dask_client.submit(lambda: 1 / 0, key="divide").result()

    with pytest.raises(ZeroDivisionError) as caught:
        livekit.seq_trace(fail)
    partial = caught.value.livekit_seq_trace  # type: ignore[attr-defined]
    assert "p0->>p1: submit divide" in str(partial)
    plugins = dask_client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.plugins))
    assert not [name for name in plugins if name.startswith("livekit-trace-")]


# -- reliability -------------------------------------------------------------------


def test_no_thread_is_left_behind_after_close(
    dask_client: Any, no_thread_left_behind: None, capsys: pytest.CaptureFixture[str]
) -> None:
    attached = livekit.cluster(dask_client.scheduler.address)
    node = attached.nodes[0]
    rpc.call(node, "os", "getpid")
    livekit.spawn(node, lambda: print("hi")).join(30)
    chart = attached.memory_chart(every=0.05)
    livekit.seq_trace(lambda: attached.client.submit(len, "abc", pure=False).result())
    livekit.sup_tree(attached)
    attached.close()
    assert not chart.listener.running
    assert capsys.readouterr().out == "hi\n"


def test_a_worker_killed_during_a_call_raises_node_error_naming_it(
    cluster: livekit.Cluster, dask_client: Any
) -> None:
    # Last in this module: the nanny starts a new worker process in its place.
    node = cluster.nodes[1]
    pid = rpc.call(node, "os", "getpid")
    spawned = livekit.spawn(node, lambda: time.sleep(60))
    killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
    killer.start()
    try:
        with pytest.raises(livekit.NodeError) as caught:
            rpc.call(node, "time", "sleep", (60,), timeout=50)
    finally:
        killer.join()
    message = str(caught.value)
    assert message.startswith(f"lost worker {node} during time.sleep(): CommClosedError: ")
    with pytest.raises(livekit.NodeError, match=rf"worker {node} left while livekit-spawn-"):
        spawned.result(timeout=50)
    assert _wait_for(lambda: len(_workers(dask_client)) == 2, 60)
    assert node not in cluster.nodes  # its successor listens elsewhere


def test_closing_the_cluster_stops_its_listeners(
    cluster: livekit.Cluster, dask_client: Any
) -> None:
    # The very last test: it closes the module's LocalCluster.
    node = cluster.nodes[0]
    chart = cluster.memory_chart(every=0.05)
    assert _wait_for(lambda: len(chart.data()) >= 2)
    dask_client.cluster.close()
    assert _wait_for(lambda: not chart.listener.running, timeout=30)
    assert not cluster.usable
    with pytest.raises(livekit.NodeError, match=rf"{node} is not a worker"):
        rpc.call(node, "os", "getpid")


def test_a_cluster_starts_quietly_while_another_holds_dasks_default_dashboard_port() -> None:
    # Another cluster (another test run beside this one) may hold 8787: the
    # clusters the tests and the book start ask for any free port instead,
    # where Dask would warn (an error here) and move.
    holder = socket.socket()
    try:
        try:
            holder.bind(("127.0.0.1", 8787))
            holder.listen()
        except OSError:
            pass  # already held by someone else: the case itself
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with distributed.LocalCluster(
                n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
            ) as local:
                assert local.scheduler.http_server.port != 8787
    finally:
        holder.close()
