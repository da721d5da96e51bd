"""seq_trace across processes, under every start method: real children, real pipes.

Each test that starts processes runs under ``fork``, ``spawn`` and
``forkserver`` and with each capture backend, and asserts every arrow's
sender, receiver and label.  The children's code is in
``tests/process_targets.py`` (standard library only, so that a spawned
child starts quickly); every test joins every child it starts.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from livekit.trace import SequenceTrace
from livekit.trace.events import Event, Exit, Message, Participant, Spawn
from livekit.trace.processes import merge_by_time, pair_halves
from tests import process_targets as targets

METHODS = ["fork", "spawn", "forkserver"]

# Forking is one of the methods under test.  In a full test run, threads
# other test modules leave running (livekit's own supervisor, for one) make
# Python 3.12+ warn that forking a multi-threaded process may deadlock.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)


@pytest.fixture(params=METHODS)
def context(request: pytest.FixtureRequest) -> Any:
    return multiprocessing.get_context(request.param)


@pytest.fixture(autouse=True)
def no_child_left_running() -> Iterator[None]:
    yield
    assert multiprocessing.active_children() == []


def summary(events: tuple[Event, ...]) -> list[tuple[str, ...]]:
    """Events with process names made stable (their numbers are global)."""

    def name(p: Participant) -> str:
        return p.name.split(" ", 1)[1] if p.kind == "process" else p.name

    rows: list[tuple[str, ...]] = []
    for e in events:
        if isinstance(e, Spawn):
            rows.append(("SPAWN", name(e.parent), name(e.child)))
        elif isinstance(e, Message):
            prefix = {"send": "", "call": "CALL ", "reply": "REPLY "}[e.kind]
            rows.append((prefix + e.label, name(e.sender), name(e.receiver)))
        else:
            rows.append(("EXIT", name(e.who), e.reason))
    return rows


CALLER = "caller (MainThread)"


def test_every_kind_of_queue_and_pipe_carries_messages_both_ways(
    context: Any, backend: str
) -> None:
    pairs = [
        (context.Queue(), context.Queue()),
        (context.SimpleQueue(), context.SimpleQueue()),
        (context.JoinableQueue(), context.JoinableQueue()),
    ]
    here, there = context.Pipe()
    child = context.Process(target=targets.echo_all, args=(pairs, there))
    with SequenceTrace(backend=backend) as trace:
        child.start()
        answers = []
        for (inbox, outbox), kind in zip(pairs, ["queue", "simple", "joinable"], strict=True):
            inbox.put(f"ping {kind}")
            answers.append(outbox.get())
        here.send("ping pipe")
        answers.append(here.recv())
        child.join()
    assert answers == ["PING QUEUE", "PING SIMPLE", "PING JOINABLE", "PING PIPE"]
    echo = "(echo_all)"
    assert summary(trace.events) == [
        ("SPAWN", CALLER, echo),
        ("'ping queue'", CALLER, echo),
        ("'PING QUEUE'", echo, CALLER),
        ("'ping simple'", CALLER, echo),
        ("'PING SIMPLE'", echo, CALLER),
        ("'ping joinable'", CALLER, echo),
        ("'PING JOINABLE'", echo, CALLER),
        ("'ping pipe'", CALLER, echo),
        ("'PING PIPE'", echo, CALLER),
        ("EXIT", echo, "normal"),
    ]


def test_messages_with_one_label_are_matched_by_identity(context: Any, backend: str) -> None:
    # Every message reads "msg": only the bytes on each pipe tell them apart.
    shared = context.Queue()
    children = [
        context.Process(target=targets.say, args=(name, shared), name=name) for name in "ab"
    ]
    with SequenceTrace(backend=backend, message_label=lambda m: "msg") as trace:
        for child in children:
            child.start()
        got = sorted([shared.get(), shared.get()])
        for child in children:
            child.join()
    assert got == ["a", "b"]
    arrows = [
        (e.sender.name, e.receiver.name, e.label) for e in trace.events if isinstance(e, Message)
    ]
    assert sorted(arrows) == [("a (say)", CALLER, "msg"), ("b (say)", CALLER, "msg")]


def test_a_child_that_outlives_the_trace_runs_only_the_original_code(
    context: Any, backend: str
) -> None:
    """After the trace a child has what an untraced child has: functions, threads, fds."""

    def run(traced: bool) -> tuple[dict[str, Any], tuple[Event, ...]]:
        inbox, outbox = context.Queue(), context.Queue()
        child = context.Process(target=targets.answer_then_report, args=(inbox, outbox))
        trace = SequenceTrace(backend=backend)
        if traced:
            with trace:
                child.start()
                inbox.put("ping")
                assert outbox.get() == "PING"
        else:
            child.start()
            inbox.put("ping")
            assert outbox.get() == "PING"
        inbox.put("report")
        found = outbox.get(timeout=60)
        child.join()
        assert "_livekit_trace" not in vars(child)
        # Each queue's feeder thread closes its pipe as it ends, some time
        # after the queue is collected: wait for that here, in both runs.
        for queue in (inbox, outbox):
            queue.close()
            queue.join_thread()
        return found, trace.events if traced else ()

    untraced, _ = run(traced=False)
    gc.collect()  # the first run's queues and pipes close when collected
    reports = set(Path(tempfile.gettempdir()).iterdir())
    fds, threads = sorted(os.listdir("/proc/self/fd")), set(threading.enumerate())
    traced, events = run(traced=True)
    gc.collect()
    assert ("'PING'", "(answer_then_report)", CALLER) in summary(events)
    if context.get_start_method() == "fork":
        # A forked child has the modules its parent had: the trace imported more.
        del traced["livekit"], untraced["livekit"]
    else:
        assert traced["livekit"] == []
    assert traced == untraced
    # Nothing left in the parent either.  (Other programs share /tmp.)
    new = set(Path(tempfile.gettempdir()).iterdir()) - reports
    assert [path for path in new if path.name.startswith("livekit-trace")] == []
    assert sorted(os.listdir("/proc/self/fd")) == fds
    assert set(threading.enumerate()) <= threads  # the first run's may have ended since


def test_a_child_killed_in_the_trace_still_shows_what_it_said(context: Any, backend: str) -> None:
    inbox, outbox = context.Queue(), context.Queue()
    child = context.Process(target=targets.answer_then_report, args=(inbox, outbox))
    with SequenceTrace(backend=backend) as trace:
        child.start()
        inbox.put("ping")
        assert outbox.get(timeout=60) == "PING"
        child.terminate()  # while it waits for its next message
        child.join()
    name = "(answer_then_report)"
    assert summary(trace.events) == [
        ("SPAWN", CALLER, name),
        ("'ping'", CALLER, name),
        ("'PING'", name, CALLER),
        ("EXIT", name, "killed by signal 15"),
    ]


@pytest.mark.parametrize(
    ("target", "reason"),
    [(targets.fail, "KeyError"), (targets.quit_hard, "exit code 3")],
)
def test_a_child_exits_with_its_exception_or_its_exit_code(
    context: Any, backend: str, target: Any, reason: str, capfd: pytest.CaptureFixture[str]
) -> None:
    child = context.Process(target=target)
    with SequenceTrace(backend=backend) as trace:
        child.start()
        child.join()
    capfd.readouterr()
    assert summary(trace.events) == [
        ("SPAWN", CALLER, f"({target.__name__})"),
        ("EXIT", f"({target.__name__})", reason),
    ]


def test_pool_tasks_are_calls_and_replies_between_the_caller_and_its_worker(
    context: Any, backend: str
) -> None:
    with SequenceTrace(backend=backend) as trace:
        pool = context.Pool(1)
        try:
            assert list(pool.imap(targets.square, [1, 2])) == [1, 4]
            assert pool.map(targets.square, range(4), chunksize=2) == [0, 1, 4, 9]
            assert pool.apply_async(targets.square, (7,)).get() == 49
            with pytest.raises(KeyError):
                pool.apply(targets.fail, (3,))
        finally:
            pool.close()
            pool.join()
    worker = "(worker)"
    rows = summary(trace.events)
    assert rows[0] == ("SPAWN", CALLER, worker)
    assert rows[-1] == ("EXIT", worker, "normal")
    calls = [row for row in rows if row[0].startswith("CALL")]
    replies = [row for row in rows if row[0].startswith("REPLY")]
    assert calls == [
        ("CALL square(1)", CALLER, worker),
        ("CALL square(2)", CALLER, worker),
        ("CALL square on 2 items", CALLER, worker),
        ("CALL square on 2 items", CALLER, worker),
        ("CALL square(7)", CALLER, worker),
        ("CALL fail(3)", CALLER, worker),
    ]
    assert replies == [
        ("REPLY 1", worker, CALLER),
        ("REPLY 4", worker, CALLER),
        ("REPLY [0, 1]", worker, CALLER),
        ("REPLY [4, 9]", worker, CALLER),
        ("REPLY 49", worker, CALLER),
        ("REPLY raised KeyError", worker, CALLER),
    ]
    # The pool sends tasks ahead of their results, but each reply follows its call.
    for call, reply in zip(calls, replies, strict=True):
        assert rows.index(call) < rows.index(reply)
    assert len(rows) == 2 + len(calls) + len(replies)


def test_process_pool_executor_work_is_calls_and_replies(context: Any, backend: str) -> None:
    with (
        SequenceTrace(backend=backend) as trace,
        ProcessPoolExecutor(1, mp_context=context) as executor,
    ):
        assert executor.submit(targets.square, 3).result() == 9
        assert isinstance(executor.submit(targets.fail).exception(), KeyError)
        assert list(executor.map(targets.square, [4])) == [16]
    worker = "(_process_worker)"
    assert summary(trace.events) == [
        ("SPAWN", CALLER, worker),
        ("CALL square(3)", CALLER, worker),
        ("REPLY 9", worker, CALLER),
        ("CALL fail()", CALLER, worker),
        ("REPLY raised KeyError", worker, CALLER),
        ("CALL square(4)", CALLER, worker),
        ("REPLY [16]", worker, CALLER),
        ("EXIT", worker, "normal"),
    ]


def test_processes_started_by_untraced_code_are_not_participants(backend: str) -> None:
    child = multiprocessing.get_context("fork").Process(target=targets.quit_hard)
    child.start()
    try:
        with SequenceTrace(backend=backend) as trace:
            pass
    finally:
        child.join()
    assert trace.events == ()


@pytest.mark.skipif(
    sys.version_info < (3, 14) or sys.platform != "linux",
    reason="forkserver is the default start method from Python 3.14, on Linux",
)
def test_the_default_start_method_of_3_14_shows_messages(backend: str) -> None:
    context = multiprocessing.get_context()
    assert context.get_start_method() == "forkserver"
    inbox, outbox = context.Queue(), context.Queue()
    child = context.Process(target=targets.upper, args=(inbox, outbox))
    with SequenceTrace(backend=backend) as trace:
        child.start()
        inbox.put("ping")
        assert outbox.get() == "PING"
        child.join()
    assert summary(trace.events) == [
        ("SPAWN", CALLER, "(upper)"),
        ("'ping'", CALLER, "(upper)"),
        ("'PING'", "(upper)", CALLER),
        ("EXIT", "(upper)", "normal"),
    ]


# -- pairing, with hand-made halves -------------------------------------

PIPE = (1, 7, False)
OTHER_PIPE = (1, 8, False)
END_A, END_B = (2, 10, True), (2, 11, True)


def test_a_receive_pairs_with_the_send_of_the_same_bytes_not_the_earliest_send() -> None:
    # Two messages on one pipe, taken in the other order: labels alike would
    # pair the first receive with the first send; the bytes tell the truth.
    halves = [
        ("send", 1.0, 0, PIPE, (111, 4), b"one"),
        ("send", 2.0, 2, PIPE, (222, 4), b"two"),
        ("recv", 3.0, 1, PIPE, (222, 4), None),
        ("recv", 4.0, 1, PIPE, (111, 4), None),
    ]
    assert [(s[2], r[2], r[1]) for s, r in pair_halves(halves)] == [(2, 1, 3.0), (0, 1, 4.0)]


def test_equal_bytes_pair_in_order_and_only_on_their_own_pipe() -> None:
    halves = [
        ("send", 1.0, 0, PIPE, (5, 3), b"x"),
        ("send", 2.0, 2, OTHER_PIPE, (5, 3), b"x"),
        ("recv", 3.0, 1, OTHER_PIPE, (5, 3), None),
        ("recv", 4.0, 3, PIPE, (5, 3), None),
    ]
    assert [(s[2], r[2]) for s, r in pair_halves(halves)] == [(2, 1), (0, 3)]


def test_a_socket_pair_made_in_the_trace_is_one_channel() -> None:
    halves = [("send", 1.0, 0, END_A, (5, 3), b"x"), ("recv", 2.0, 1, END_B, (5, 3), None)]
    assert len(pair_halves(halves, {END_B: END_A})) == 1
    # Ends of a pair made before the trace are unknown: any socket may be the peer.
    assert len(pair_halves(halves)) == 1
    # But a known pair's end does not pair with another socket.
    assert pair_halves(halves, {END_B: (2, 12, True)}) == []


def test_a_participant_never_pairs_with_itself() -> None:
    halves = [("send", 1.0, 0, PIPE, (5, 3), b"x"), ("recv", 2.0, 0, PIPE, (5, 3), None)]
    assert pair_halves(halves) == []


def test_a_receive_never_pairs_with_a_later_send() -> None:
    halves = [("recv", 1.0, 1, PIPE, (5, 3), None), ("send", 2.0, 0, PIPE, (5, 3), b"x")]
    assert pair_halves(halves) == []


A = Participant(0, "a", "caller")
B = Participant(1, "b", "process")


def test_merge_by_time_keeps_the_recorded_order_even_with_clock_jitter() -> None:
    recorded: list[Event] = [Exit(A, "first", 2.0), Exit(A, "second", 1.5), Exit(A, "third", 3.0)]
    merged = merge_by_time(recorded, [Exit(B, "inserted", 2.5)])
    assert [e.reason for e in merged] == ["first", "second", "inserted", "third"]
