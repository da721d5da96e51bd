"""Sequence traces that follow rpc.call and spawn to a real second node and back."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import livekit
from livekit import rpc
from livekit.nodes import client, cookie, registry

COOKIE = "trace-cookie"
START_TIMEOUT = 60.0
HERE = Path(__file__).resolve().parent
HOST = registry.this_host()

# A node whose server says nothing of traces, as a livekit from before them:
# its welcome has no features, and it refuses a "traced" request.
OLDER_NODE = (
    "import sys\n"
    "from livekit.nodes.server import NodeServer\n"
    "NodeServer.features = {}\n"
    "from livekit.__main__ import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


class Node:
    """A second node: another Python process, with this folder on its path."""

    def __init__(self, home: Path, name: str, *, older: bool = False) -> None:
        command = ["-c", OLDER_NODE] if older else ["-m", "livekit"]
        path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, *command, "node", "--name", name, "--cookie", COOKIE],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "LIVEKIT_HOME": str(home), "PYTHONPATH": path},
        )
        assert self.proc.stdout is not None
        self.name = self.proc.stdout.readline().strip()
        assert self.name == f"{name}@{HOST}"

    def state(self) -> dict[str, Any]:
        """What of a trace is installed on the node now (asked untraced)."""
        return rpc.call(self.name, "node_targets", "tracing_state")  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.communicate(timeout=30)


@pytest.fixture
def livekit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "livekit-home"
    monkeypatch.setenv("LIVEKIT_HOME", str(home))
    cookie._reset()
    cookie.set_cookie(COOKIE)
    yield home
    client.disconnect_all()
    livekit.stop_node()
    cookie._reset()


@pytest.fixture
def start(livekit_home: Path) -> Iterator[Callable[..., Node]]:
    started: list[Node] = []

    def make(name: str, *, older: bool = False) -> Node:
        node = Node(livekit_home, name, older=older)
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


@pytest.fixture
def beta(start: Callable[..., Node]) -> Node:
    return start("beta")


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Prober:
    """Asks a node for its trace state from a thread no trace follows.

    It is started before the trace, and talks with the test through events
    (which a trace does not draw), so its own calls stay out of the diagram.
    """

    def __init__(self, node: Node) -> None:
        self._node = node
        self._ask, self._answered = threading.Event(), threading.Event()
        self._answer: dict[str, Any] = {}
        self._done = False
        self._thread = threading.Thread(target=self._run, name="prober")
        self._thread.start()

    def _run(self) -> None:
        while self._ask.wait(30) and not self._done:
            self._ask.clear()
            self._answer = self._node.state()
            self._answered.set()

    def state(self) -> dict[str, Any]:
        self._answered.clear()
        self._ask.set()
        assert self._answered.wait(30)
        return self._answer

    def close(self) -> None:
        self._done = True
        self._ask.set()
        self._thread.join(30)


@pytest.fixture
def prober(beta: Node) -> Iterator[Prober]:
    probe = Prober(beta)
    yield probe
    probe.close()


def nothing_installed(state: dict[str, Any]) -> bool:
    monitoring = state.get("monitoring", [None] * 6)
    return not state["running"] and not state["queue patched"] and set(monitoring) == {None}


def test_a_traced_call_draws_the_nodes_messages_between_call_and_reply(beta: Node) -> None:
    result, diagram = livekit.seq_trace(
        lambda: rpc.call(beta.name, "node_targets", "ping_pong", ("hi",))
    )
    assert result == "HI"
    assert str(diagram).splitlines() == [
        "sequenceDiagram",
        "    participant p0 as caller (MainThread)",
        f"    participant p1 as beta@{HOST}",
        f"    participant p2 as pong@beta@{HOST}",
        "    p0->>p1: CALL: node_targets.ping_pong('hi')",
        "    p1->>p2: SPAWN",
        "    activate p2",
        "    p1->>p2: 'hi'",
        "    p2->>p1: 'HI'",
        "    Note over p2: EXIT: normal",
        "    deactivate p2",
        "    p1-->>p0: REPLY: 'HI'",
    ]
    assert nothing_installed(beta.state())


def test_the_nodes_messages_are_merged_with_the_callers_in_time_order(beta: Node) -> None:
    def work() -> str:
        inbox: queue.Queue[str] = queue.Queue()
        worker = threading.Thread(target=lambda: [inbox.get(), inbox.get()], name="worker")
        worker.start()
        inbox.put("before")
        answer: str = rpc.call(beta.name, "node_targets", "ping_pong", ("x",))
        inbox.put("after")
        worker.join()
        return answer

    _, diagram = livekit.seq_trace(work)
    arrows = [line for line in str(diagram).splitlines() if "->>" in line]
    assert arrows == [
        "    p0->>p1: SPAWN",
        "    p0->>p1: 'before'",
        "    p0->>p2: CALL: node_targets.ping_pong('x')",
        "    p2->>p3: SPAWN",
        "    p2->>p3: 'x'",
        "    p3->>p2: 'X'",
        "    p2-->>p0: REPLY: 'X'",
        "    p0->>p1: 'after'",
    ]
    assert f"    participant p3 as pong@beta@{HOST}" in str(diagram)


def test_a_call_that_raises_on_the_node_replies_with_the_error(beta: Node) -> None:
    def work() -> None:
        rpc.call(beta.name, "node_targets", "fail", ("no such user: bob",))

    with pytest.raises(ValueError, match=r"^no such user: bob") as caught:
        livekit.seq_trace(work)
    assert str(caught.value) == "no such user: bob"
    diagram = caught.value.livekit_seq_trace  # type: ignore[attr-defined]
    assert str(diagram).splitlines() == [
        "sequenceDiagram",
        "    participant p0 as caller (MainThread)",
        f"    participant p1 as beta@{HOST}",
        "    p0->>p1: CALL: node_targets.fail('no such user: bob')",
        "    p1-->>p0: REPLY: raised ValueError: no such user: bob",
    ]


def test_a_traced_spawn_draws_spawn_the_work_there_its_reply_and_exit(beta: Node) -> None:
    def remote() -> str:
        import node_targets  # on the node's path

        return node_targets.ping_pong("spawned")  # type: ignore[no-any-return]

    result, diagram = livekit.seq_trace(lambda: livekit.spawn(beta.name, remote).result(30))
    assert result == "SPAWNED"
    lines = str(diagram).splitlines()
    assert lines[:3] == [
        "sequenceDiagram",
        "    participant p0 as caller (MainThread)",
        f"    participant p1 as livekit-spawn-1@beta@{HOST}",
    ]
    assert lines[3:] == [
        f"    participant p2 as pong@beta@{HOST}",
        "    p0->>p1: SPAWN",
        "    activate p1",
        "    p1->>p2: SPAWN",
        "    activate p2",
        "    p1->>p2: 'spawned'",
        "    p2->>p1: 'SPAWNED'",
        "    Note over p2: EXIT: normal",
        "    deactivate p2",
        "    p1-->>p0: REPLY: 'SPAWNED'",
        "    Note over p1: EXIT: normal",
        "    deactivate p1",
    ]


def test_a_spawn_that_raises_replies_with_the_error_and_exits_with_it(beta: Node) -> None:
    def work() -> None:
        livekit.spawn(beta.name, lambda: 1 / 0).join(30)

    with pytest.raises(ZeroDivisionError) as caught:
        livekit.seq_trace(work)
    lines = str(caught.value.livekit_seq_trace).splitlines()  # type: ignore[attr-defined]
    assert lines[3:] == [
        "    p0->>p1: SPAWN",
        "    activate p1",
        "    p1-->>p0: REPLY: raised ZeroDivisionError: division by z…",
        "    Note over p1: EXIT: ZeroDivisionError",
        "    deactivate p1",
    ]


def test_an_older_node_is_called_as_before_and_drawn_without_its_inside(
    start: Callable[..., Node],
) -> None:
    older = start("older", older=True)
    result, diagram = livekit.seq_trace(
        lambda: rpc.call(older.name, "node_targets", "ping_pong", ("hi",))
    )
    assert result == "HI"
    assert str(diagram).splitlines() == [
        "sequenceDiagram",
        "    participant p0 as caller (MainThread)",
        f"    participant p1 as older@{HOST}",
        "    p0->>p1: CALL: node_targets.ping_pong('hi')",
        "    p1-->>p0: REPLY: 'HI'",
    ]


def test_a_call_to_this_interpreters_own_node_draws_call_and_reply(livekit_home: Path) -> None:
    # The node is the tracing process itself: it cannot run a second trace,
    # so the call is served untraced there, and drawn from the caller's side.
    me = livekit.node()
    result, diagram = livekit.seq_trace(lambda: rpc.call(me, "math", "sqrt", (16,)))
    assert result == 4.0
    assert str(diagram).splitlines()[2:] == [
        f"    participant p1 as {me}",
        "    p0->>p1: CALL: math.sqrt(16)",
        "    p1-->>p0: REPLY: 4.0",
    ]


def test_an_untraced_threads_calls_are_not_drawn(beta: Node) -> None:
    answers: queue.Queue[str] = queue.Queue()
    ready, go = threading.Event(), threading.Event()

    def outsider() -> None:
        ready.set()
        go.wait(10)
        answers.put(rpc.call(beta.name, "node_targets", "ping_pong", ("out",)))

    thread = threading.Thread(target=outsider)
    thread.start()  # before the trace: not one of its participants
    ready.wait(10)
    with livekit.tracing() as trace:
        go.set()
        thread.join(30)
    assert answers.get_nowait() == "OUT"
    assert trace.events == ()


def test_a_trace_that_ends_during_a_call_ends_the_nodes_side_at_once(
    beta: Node, prober: Prober
) -> None:
    got: list[float] = []
    with livekit.tracing() as trace:
        caller = threading.Thread(
            target=lambda: got.append(rpc.call(beta.name, "node_targets", "wait", (4.0,))),
            name="slow caller",
        )
        caller.start()
        assert wait_until(lambda: prober.state()["running"])
    # The node's trace is over while its call still runs.
    assert nothing_installed(beta.state())
    assert caller.is_alive()
    caller.join(30)
    assert got == [4.0]
    arrows = [str(e) for e in trace.events]
    assert arrows == [
        "caller (MainThread) -> slow caller: SPAWN",
        f"slow caller -> beta@{HOST}: CALL: node_targets.wait(4.0)",
    ]


def test_a_spawn_still_running_when_the_trace_ends_is_untraced_on_the_node(
    beta: Node, prober: Prober
) -> None:
    with livekit.tracing() as trace:
        handle = livekit.spawn(beta.name, lambda: time.sleep(4.0) or "slept")
        assert wait_until(lambda: prober.state()["running"])
    assert nothing_installed(beta.state())
    assert handle.is_alive()
    assert handle.result(30) == "slept"
    assert [str(e) for e in trace.events] == [
        f"caller (MainThread) -> livekit-spawn-1@beta@{HOST}: SPAWN"
    ]


CALLER = """
import os, sys
import livekit
from livekit import rpc
livekit.set_cookie({cookie!r})
print("calling", flush=True)
livekit.seq_trace(lambda: rpc.call({node!r}, "node_targets", "wait", (30,)))
"""


def test_a_caller_that_dies_mid_call_leaves_nothing_traced_on_the_node(
    beta: Node, livekit_home: Path
) -> None:
    caller = subprocess.Popen(
        [sys.executable, "-c", CALLER.format(cookie=COOKIE, node=beta.name)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "LIVEKIT_HOME": str(livekit_home)},
    )
    try:
        assert caller.stdout is not None
        assert caller.stdout.readline() == "calling\n"
        assert wait_until(lambda: beta.state()["running"])
        caller.kill()
        caller.wait(30)
        assert wait_until(lambda: nothing_installed(beta.state()))
        # The call itself still runs there (a Python thread cannot be stopped).
        assert len([n for n in beta.state()["threads"] if n.startswith("livekit-node-link")]) == 2
    finally:
        if caller.poll() is None:
            caller.kill()
        caller.communicate(timeout=30)


def test_a_call_the_node_makes_to_a_third_node_is_drawn_with_that_nodes_names(
    beta: Node, start: Callable[..., Node]
) -> None:
    gamma = start("gamma")
    result, diagram = livekit.seq_trace(
        lambda: rpc.call(beta.name, "node_targets", "relay", (gamma.name, "on"))
    )
    assert result == "ON"
    assert str(diagram).splitlines() == [
        "sequenceDiagram",
        "    participant p0 as caller (MainThread)",
        f"    participant p1 as beta@{HOST}",
        f"    participant p2 as gamma@{HOST}",
        f"    participant p3 as pong@gamma@{HOST}",
        f"    p0->>p1: CALL: node_targets.relay('gamma@{HOST}', 'on')",
        "    p1->>p2: CALL: node_targets.ping_pong('on')",
        "    p2->>p3: SPAWN",
        "    activate p3",
        "    p2->>p3: 'on'",
        "    p3->>p2: 'ON'",
        "    Note over p3: EXIT: normal",
        "    deactivate p3",
        "    p2-->>p1: REPLY: 'ON'",
        "    p1-->>p0: REPLY: 'ON'",
    ]
    assert nothing_installed(beta.state())
    assert nothing_installed(gamma.state())


def test_a_workers_pick_up_and_its_end_cross_the_wire_with_their_times() -> None:
    from livekit.nodes.tracing import encode_events, remote_events
    from livekit.trace.events import Activation, Message, Participant

    me, pool = Participant(0, "caller (link)", "caller"), Participant(1, "pool_0", "thread")
    sent = [
        Message(me, pool, "abs(-1)", "call", 1.2, 1.1),
        Activation(pool, False, 1.2),
        Message(pool, me, "1", "reply", 1.3),
        Activation(pool, True, 1.4),
    ]
    participants, events = encode_events(sent)
    frame = ("trace", "t1", 1.0, 2.0, participants, events, 0, None)
    keys = iter(range(2, 10))
    got, _ = remote_events(
        frame,
        target=Participant(1, "beta@host", "process"),
        node="beta@host",
        new_participant=lambda name, kind: Participant(next(keys), name, kind),
        clock=lambda t: t + 100,
    )
    assert [(str(e), round(e.time, 6)) for e in got] == [
        ("beta@host -> pool_0@beta@host: CALL: abs(-1)", 101.2),
        ("pool_0@beta@host: PICK-UP", 101.2),
        ("pool_0@beta@host -> beta@host: REPLY: 1", 101.3),
        ("pool_0@beta@host: DONE", 101.4),
    ]
