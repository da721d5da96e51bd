"""seq_trace across processes: starts, exits, multiprocessing Queue and Pipe messages.

Children are forked (the start method whose children inherit the trace),
except where a test says otherwise; each test joins every child it starts.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from livekit.trace import SequenceTrace
from livekit.trace.events import Event, Exit, Message, Participant, Spawn
from livekit.trace.processes import merge_by_time, pair_halves

BACKENDS = ["monitoring", "patching"] if sys.version_info >= (3, 12) else ["patching"]
fork = multiprocessing.get_context("fork")

# Forking is what these tests are about.  In a full test run, threads other
# test modules leave running (livekit's own supervisor, for one) make
# Python 3.12+ warn that forking a multi-threaded process may deadlock.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def no_child_left_running() -> Iterator[None]:
    yield
    assert multiprocessing.active_children() == []


def upper(inbox: Any, outbox: Any) -> None:
    outbox.put(inbox.get().upper())


def echo(conn: multiprocessing.connection.Connection) -> None:
    conn.send(("echo", conn.recv()))
    conn.close()


def fail() -> None:
    raise KeyError("in the child")


def quit_hard() -> None:
    os._exit(3)


def summary(events: tuple[Event, ...]) -> list[tuple[str, ...]]:
    """Events with process names made stable (their numbers are global)."""

    def name(p: Participant) -> str:
        return p.name.split(" ", 1)[1] if p.kind == "process" else p.name

    rows: list[tuple[str, ...]] = []
    for e in events:
        if isinstance(e, Spawn):
            rows.append(("SPAWN", name(e.parent), name(e.child)))
        elif isinstance(e, Message):
            rows.append((e.label, name(e.sender), name(e.receiver)))
        else:
            rows.append(("EXIT", name(e.who), e.reason))
    return rows


def test_queue_messages_to_and_from_a_child_process(backend: str) -> None:
    inbox, outbox = fork.Queue(), fork.Queue()
    child = fork.Process(target=upper, args=(inbox, outbox))
    with SequenceTrace(backend=backend) as trace:
        child.start()
        inbox.put("ping")
        answer = outbox.get()
        child.join()
    inbox.close()
    outbox.close()
    assert answer == "PING"
    assert summary(trace.events) == [
        ("SPAWN", "caller (MainThread)", "(upper)"),
        ("'ping'", "caller (MainThread)", "(upper)"),
        ("'PING'", "(upper)", "caller (MainThread)"),
        ("EXIT", "(upper)", "normal"),
    ]


def test_pipe_messages_to_and_from_a_child_process(backend: str) -> None:
    here, there = fork.Pipe()
    child = fork.Process(target=echo, args=(there,))
    with SequenceTrace(backend=backend) as trace:
        child.start()
        here.send(42)
        answer = here.recv()
        child.join()
    here.close()
    there.close()
    assert answer == ("echo", 42)
    assert summary(trace.events) == [
        ("SPAWN", "caller (MainThread)", "(echo)"),
        ("42", "caller (MainThread)", "(echo)"),
        ("('echo', 42)", "(echo)", "caller (MainThread)"),
        ("EXIT", "(echo)", "normal"),
    ]


def test_a_child_that_raises_exits_with_the_exception_type(
    backend: str, capfd: pytest.CaptureFixture[str]
) -> None:
    child = fork.Process(target=fail)
    with SequenceTrace(backend=backend) as trace:
        child.start()
        child.join()
    assert "KeyError: 'in the child'" in capfd.readouterr().err
    assert [(e.reason) for e in trace.events if isinstance(e, Exit)] == ["KeyError"]


def test_a_child_that_never_reports_exits_with_its_exit_code(backend: str) -> None:
    child = fork.Process(target=quit_hard)
    with SequenceTrace(backend=backend) as trace:
        child.start()
        child.join()
    assert [(e.reason) for e in trace.events if isinstance(e, Exit)] == ["exit code 3"]


def test_the_report_folder_is_removed_after_the_trace(backend: str) -> None:
    before = set(Path(tempfile.gettempdir()).glob("livekit-trace-*"))
    child = fork.Process(target=quit_hard)
    with SequenceTrace(backend=backend):
        child.start()
        child.join()
    assert set(Path(tempfile.gettempdir()).glob("livekit-trace-*")) == before


def test_processes_started_by_untraced_code_are_not_participants(backend: str) -> None:
    child = fork.Process(target=quit_hard)
    child.start()
    try:
        with SequenceTrace(backend=backend) as trace:
            pass
    finally:
        child.join()
    assert trace.events == ()


# forkserver (and spawn) children start from a fresh interpreter: they get
# no hooks, so their messages are not drawn, but their start and exit are.
# Their targets are standard-library functions, which any child can import.
FORKSERVER_CHILDREN = [
    (time.sleep, (0.01,), "(sleep)", "normal"),
    (os._exit, (3,), "(_exit)", "exit code 3"),
]


@pytest.mark.parametrize(("target", "args", "name", "reason"), FORKSERVER_CHILDREN)
def test_a_forkserver_child_shows_its_start_and_exit(
    backend: str, target: Any, args: tuple[Any, ...], name: str, reason: str
) -> None:
    child = multiprocessing.get_context("forkserver").Process(target=target, args=args)
    with SequenceTrace(backend=backend) as trace:
        child.start()
        child.join()
    assert summary(trace.events) == [
        ("SPAWN", "caller (MainThread)", name),
        ("EXIT", name, reason),
    ]


@pytest.mark.skipif(
    sys.version_info < (3, 14) or sys.platform != "linux",
    reason="forkserver is the default start method from Python 3.14, on Linux",
)
def test_the_default_start_method_of_3_14_shows_a_child_start_and_exit(backend: str) -> None:
    context = multiprocessing.get_context()
    assert context.get_start_method() == "forkserver"
    child = context.Process(target=os._exit, args=(0,))
    with SequenceTrace(backend=backend) as trace:
        child.start()
        child.join()
    assert summary(trace.events) == [
        ("SPAWN", "caller (MainThread)", "(_exit)"),
        ("EXIT", "(_exit)", "normal"),
    ]


A = Participant(0, "a", "caller")
B = Participant(1, "b", "process")
C = Participant(2, "c", "process")


def test_pair_halves_matches_each_receive_to_the_earliest_earlier_send() -> None:
    halves = [
        ("send", "'x'", 1.0, 0, 5),
        ("send", "'x'", 2.0, 2, 5),
        ("recv", "'x'", 3.0, 1, 5),
        ("recv", "'x'", 4.0, 1, 5),
    ]
    messages = pair_halves(halves, {0: A, 1: B, 2: C})
    assert [(m.sender.name, m.receiver.name, m.time) for m in messages] == [
        ("a", "b", 1.0),
        ("c", "b", 2.0),
    ]


def test_pair_halves_never_pairs_a_participant_with_itself() -> None:
    halves = [("send", "1", 1.0, 0, 5), ("recv", "1", 2.0, 0, 5)]
    assert pair_halves(halves, {0: A}) == []


def test_pair_halves_pairs_only_within_a_channel_unless_one_is_unknown() -> None:
    halves = [
        ("send", "None", 1.0, 0, 5),
        ("send", "None", 2.0, 2, 6),
        ("recv", "None", 3.0, 1, 6),
        ("recv", "None", 4.0, 1, 0),
    ]
    messages = pair_halves(halves, {0: A, 1: B, 2: C})
    assert [(m.sender.name, m.receiver.name) for m in messages] == [("a", "b"), ("c", "b")]


def test_merge_by_time_keeps_the_recorded_order_even_with_clock_jitter() -> None:
    recorded: list[Event] = [Exit(A, "first", 2.0), Exit(A, "second", 1.5), Exit(A, "third", 3.0)]
    merged = merge_by_time(recorded, [Exit(B, "inserted", 2.5)])
    assert [e.reason for e in merged] == ["first", "second", "inserted", "third"]
