"""seq_trace on real threads, queues, executors and asyncio tasks.

Each test runs under both capture backends where the interpreter has them
(sys.monitoring on 3.12+, patching everywhere).  Arrows and their counts
are asserted; their order only where the code makes it deterministic.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import inspect
import queue
import random
import re
import sys
import threading
import time
import typing
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import livekit
from livekit.trace import SequenceTrace, TraceOptions, render_seq_trace, seq_trace, tracing
from livekit.trace.events import Activation, Event, Exit, Message, Spawn
from livekit.trace.text import sequence_text

pytestmark = pytest.mark.usefixtures("no_thread_left_running")


def traced(fn: Any, backend: str, **options: Any) -> tuple[Any, SequenceTrace]:
    trace = SequenceTrace(backend=backend, **options)
    with trace:
        result = fn()
    return result, trace


def arrows(events: tuple[Event, ...]) -> list[tuple[str, str, str]]:
    return [(e.sender.name, e.receiver.name, e.label) for e in events if isinstance(e, Message)]


def unnumbered(name: str) -> str:
    """A task's name without asyncio's running number: ``Task-7 (main)`` is ``(main)``."""
    return re.sub(r"^Task-\d+ ", "", name)


def ping_pong() -> str:
    inbox: queue.Queue[str] = queue.Queue()
    outbox: queue.Queue[str] = queue.Queue()

    def pong() -> None:
        if inbox.get() == "ping":
            outbox.put("pong")

    worker = threading.Thread(target=pong, name="pong")
    worker.start()
    inbox.put("ping")
    answer = outbox.get()
    worker.join()
    return answer


def test_ping_pong_diagram_is_exact(backend: str) -> None:
    result, trace = traced(ping_pong, backend)
    assert result == "pong"
    assert str(trace.diagram) == (
        "sequenceDiagram\n"
        "    participant p0 as caller (MainThread)\n"
        "    participant p1 as pong\n"
        "    p0->>p1: SPAWN\n"
        "    activate p1\n"
        "    p0->>p1: 'ping'\n"
        "    p1->>p0: 'pong'\n"
        "    Note over p1: EXIT: normal\n"
        "    deactivate p1"
    )


def test_seq_trace_returns_the_result_and_a_captioned_diagram() -> None:
    result, diagram = seq_trace(ping_pong)
    assert result == "pong"
    assert isinstance(diagram, livekit.Mermaid)
    assert diagram.caption == ("Messages exchanged while ping_pong ran: 2 messages and 1 start.")


def test_caption_option_replaces_the_default() -> None:
    _, diagram = seq_trace(ping_pong, caption="Ping, then pong")
    assert diagram.caption == "Ping, then pong"


def test_render_seq_trace_prints_the_diagram_and_returns_the_result(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert render_seq_trace(ping_pong) == "pong"
    assert "pong                → caller (MainThread): 'pong'\n" in capsys.readouterr().out


def test_render_seq_trace_prints_mermaid_source_when_the_environment_asks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEKIT_TERMINAL", "mermaid")
    assert render_seq_trace(ping_pong) == "pong"
    assert "p1->>p0: 'pong'" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kind", "expected"),
    [(queue.LifoQueue, [1, 3, 2]), (queue.PriorityQueue, [1, 2, 3])],
)
def test_lifo_and_priority_queues_give_one_arrow_per_message(
    backend: str, kind: type[queue.Queue[int]], expected: list[int]
) -> None:
    box = kind()
    received: list[int] = []
    loaded = threading.Event()

    def consumer() -> None:
        loaded.wait()
        received.extend(box.get() for _ in range(3))

    def run() -> None:
        worker = threading.Thread(target=consumer, name="consumer")
        worker.start()
        for number in (2, 3, 1):
            box.put(number)
        loaded.set()
        worker.join()

    _, trace = traced(run, backend)
    assert received == expected
    assert sorted(arrows(trace.events)) == [
        ("caller (MainThread)", "consumer", "1"),
        ("caller (MainThread)", "consumer", "2"),
        ("caller (MainThread)", "consumer", "3"),
    ]


def test_a_message_is_matched_to_its_put_by_identity(backend: str) -> None:
    """Two equal messages from two senders: each arrow starts at its own sender."""
    box: queue.Queue[list[int]] = queue.Queue()
    first, second = [1], [1]
    a_done = threading.Event()

    def sender(message: list[int], after: threading.Event | None) -> None:
        if after is not None:
            after.wait()
        box.put(message)
        if after is None:
            a_done.set()

    def run() -> list[list[int]]:
        a = threading.Thread(target=sender, args=(first, None), name="a")
        b = threading.Thread(target=sender, args=(second, a_done), name="b")
        a.start()
        b.start()
        got = [box.get(), box.get()]
        a.join()
        b.join()
        return got

    got, trace = traced(run, backend)
    assert got[0] is first
    assert got[1] is second
    assert arrows(trace.events) == [
        ("a", "caller (MainThread)", "[1]"),
        ("b", "caller (MainThread)", "[1]"),
    ]


@pytest.mark.parametrize("options", [{}, {"exclude": ["no_such_module"]}])
def test_a_message_never_taken_leaves_no_place_among_the_events(
    backend: str, options: dict[str, Any]
) -> None:
    """Put and still waiting when the trace ends: not drawn, and no place is left for it."""
    box: queue.Queue[int] = queue.Queue()

    def run() -> None:
        box.put(1)
        box.put(2)
        box.get()

    _, trace = traced(run, backend, **options)
    assert all(type(e) is Message for e in trace.events)
    assert arrows(trace.events) == [("caller (MainThread)", "caller (MainThread)", "1")]
    assert "p0->>p0: 1" in str(trace.diagram)
    assert box.get_nowait() == 2


def test_one_object_in_two_queues_is_matched_to_the_put_into_the_queue_it_left(
    backend: str,
) -> None:
    """The same object waits in two queues, put by two senders, and in a LIFO queue twice."""
    left: queue.Queue[list[int]] = queue.Queue()
    right: queue.Queue[list[int]] = queue.Queue()
    stack: queue.LifoQueue[list[int]] = queue.LifoQueue()
    shared = [7]

    def run() -> list[str]:
        a = threading.Thread(target=lambda: (left.put(shared), stack.put(shared)), name="a")
        a.start()
        a.join()
        b = threading.Thread(target=lambda: (right.put(shared), stack.put(shared)), name="b")
        b.start()
        b.join()
        taken = [right.get(), left.get(), stack.get(), stack.get()]
        return ["shared" if item is shared else "other" for item in taken]

    got, trace = traced(run, backend)
    assert got == ["shared"] * 4
    assert [a[:2] for a in arrows(trace.events) if a[0] != "caller (MainThread)"] == [
        ("a", "caller (MainThread)"),
        ("a", "caller (MainThread)"),
        ("b", "caller (MainThread)"),
        ("b", "caller (MainThread)"),
    ]
    received = [m for m in trace.events if isinstance(m, Message) and m.kind == "send"]
    # Arrows stand where they were sent; each is received where its own queue gave it out:
    # right (b's first) first, then left (a's first), then the stack's newest (b's), then a's.
    order = sorted(range(4), key=lambda i: received[i].time)
    assert [received[i].sender.name for i in order] == ["b", "a", "b", "a"]


def test_a_thread_blocked_in_get_before_the_trace_is_seen(backend: str) -> None:
    inbox: queue.Queue[str] = queue.Queue()
    outbox: queue.Queue[str] = queue.Queue()
    waiting = threading.Event()

    def echo() -> None:
        waiting.set()
        outbox.put(inbox.get())

    worker = threading.Thread(target=echo, name="echo")
    worker.start()
    waiting.wait()
    try:
        _, trace = traced(lambda: (inbox.put("hi"), outbox.get()), backend)
    finally:
        worker.join()
    assert arrows(trace.events) == [
        ("caller (MainThread)", "echo", "'hi'"),
        ("echo", "caller (MainThread)", "'hi'"),
    ]


def test_messages_between_untraced_threads_are_not_recorded(backend: str) -> None:
    box: queue.Queue[int] = queue.Queue()
    go = threading.Event()

    def untraced_sender() -> None:
        go.wait()
        box.put(1)
        box.get()

    worker = threading.Thread(target=untraced_sender)
    worker.start()

    def run() -> None:
        go.set()
        worker.join()

    _, trace = traced(run, backend)
    assert trace.events == ()


def test_a_thread_that_raises_exits_with_the_exception_type(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[type[BaseException] | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_type))

    def fail() -> None:
        raise KeyError("boom")

    def run() -> None:
        worker = threading.Thread(target=fail, name="failing")
        worker.start()
        worker.join()

    _, trace = traced(run, backend)
    assert seen == [KeyError]
    exits = [(e.who.name, e.reason) for e in trace.events if isinstance(e, Exit)]
    assert exits == [("failing", "KeyError")]


def test_a_started_thread_gets_its_own_run_back(backend: str) -> None:
    worker = threading.Thread(target=lambda: None)
    traced(lambda: (worker.start(), worker.join()), backend)
    assert "run" not in worker.__dict__


def test_executor_work_gives_a_call_and_a_reply_per_item(backend: str) -> None:
    def work(i: int) -> int:
        time.sleep(random.uniform(0, 0.01))  # noqa: S311 - only a shuffle of timings
        if i == 3:
            raise ValueError(i)
        return i * 10

    def run() -> list[int | str]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(work, i) for i in range(4)]
            return [f.result() if f.exception() is None else "error" for f in futures]

    result, trace = traced(run, backend)
    assert result == [0, 10, 20, "error"]
    messages = [e for e in trace.events if isinstance(e, Message)]
    calls = sorted(m.label for m in messages if m.kind == "call")
    replies = sorted(m.label for m in messages if m.kind == "reply")
    assert calls == ["work(0)", "work(1)", "work(2)", "work(3)"]
    assert replies == ["0", "10", "20", "raised ValueError"]
    assert {m.sender.name for m in messages if m.kind == "reply"} <= {
        "ThreadPoolExecutor-0_0",
        "ThreadPoolExecutor-0_1",
    } | {t.name for t in threading.enumerate()} | {m.receiver.name for m in messages}
    spawns = [e for e in trace.events if isinstance(e, Spawn)]
    exits = [e for e in trace.events if isinstance(e, Exit)]
    assert len(spawns) == len(exits) == 2


def test_executor_map_with_random_sleeps_gives_four_calls_and_four_replies(backend: str) -> None:
    def nap(i: int) -> int:
        time.sleep(random.uniform(0.001, 0.02))  # noqa: S311 - only a shuffle of timings
        return i

    def run() -> list[int]:
        with concurrent.futures.ThreadPoolExecutor() as pool:
            return list(pool.map(nap, range(1, 5)))

    result, trace = traced(run, backend)
    assert result == [1, 2, 3, 4]
    kinds = Counter(e.kind for e in trace.events if isinstance(e, Message))
    assert kinds == {"call": 4, "reply": 4}
    # Each call comes before its own reply.
    messages = [e for e in trace.events if isinstance(e, Message)]
    for i in range(1, 5):
        call = next(n for n, m in enumerate(messages) if m.label == f"nap({i})")
        reply = next(n for n, m in enumerate(messages) if m.kind == "reply" and m.label == str(i))
        assert call < reply


async def producer_consumer() -> list[str]:
    box: asyncio.Queue[str] = asyncio.Queue()
    got: list[str] = []

    async def consumer() -> int:
        for _ in range(2):
            got.append(await box.get())
        return len(got)

    async with asyncio.TaskGroup() as group:
        task = group.create_task(consumer(), name="consumer")
        await box.put("a")
        await box.put("b")
    assert await task == 2
    return got


def test_asyncio_tasks_are_participants_with_spawn_messages_and_reply(backend: str) -> None:
    result, trace = traced(lambda: asyncio.run(producer_consumer()), backend)
    assert result == ["a", "b"]
    assert str(trace.diagram) == (
        "sequenceDiagram\n"
        "    participant p0 as caller (MainThread)\n"
        "    participant p1 as Task-1 (producer_consumer)\n"
        "    participant p2 as consumer\n"
        "    p0->>p1: SPAWN\n"
        "    activate p1\n"
        "    p1->>p2: SPAWN\n"
        "    activate p2\n"
        "    p1->>p2: 'a'\n"
        "    p1->>p2: 'b'\n"
        "    p2-->>p1: REPLY: 2\n"
        "    Note over p2: EXIT: normal\n"
        "    deactivate p2\n"
        "    p1-->>p0: REPLY: ['a', 'b']\n"
        "    Note over p1: EXIT: normal\n"
        "    deactivate p1"
    ).replace("Task-1", trace.events[0].child.name.split(" ")[0])  # type: ignore[union-attr]


def test_an_awaited_task_replies_to_its_awaiter_not_its_creator(backend: str) -> None:
    async def main() -> int:
        async def answer() -> int:
            await asyncio.sleep(0)
            return 42

        job = asyncio.create_task(answer(), name="answer")

        async def waiter() -> int:
            return await job

        return await asyncio.create_task(waiter(), name="waiter")

    result, trace = traced(lambda: asyncio.run(main()), backend)
    assert result == 42
    replies = [
        (m.sender.name, m.receiver.name, m.label) for m in trace.events if isinstance(m, Message)
    ]
    assert ("answer", "waiter", "42") in replies


def test_an_ended_task_and_what_it_returned_are_not_kept_by_the_trace(backend: str) -> None:
    class Answer:
        pass

    async def main() -> tuple[bool, bool]:
        async def answer() -> Answer:
            return Answer()

        job = asyncio.create_task(answer(), name="answer")
        returned = weakref.ref(await job)  # the trace saw it end before this wakes up
        ended = weakref.ref(job)
        del job
        await asyncio.sleep(0)  # the loop lets go of the wake-up that held it
        gc.collect()
        return ended() is None, returned() is None

    (task_gone, answer_gone), trace = traced(lambda: asyncio.run(main()), backend)
    assert (task_gone, answer_gone) == (True, True)
    replies = [(m.sender.name, m.label) for m in trace.events if isinstance(m, Message)]
    assert len(replies) == 2  # answer's REPLY to main, then main's to the caller
    assert replies[0][0] == "answer"
    assert replies[0][1].startswith("<tests.test_trace.")  # the Answer's repr, cut short


def test_a_task_exception_nobody_retrieved_is_still_reported_by_asyncio(backend: str) -> None:
    """The trace reads how a task ended without marking its exception retrieved."""
    reported: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: reported.append(context["message"]))

        async def fail() -> None:
            raise ValueError("lost")

        job = asyncio.create_task(fail(), name="fails")
        while not job.done():
            await asyncio.sleep(0)
        await asyncio.sleep(0)  # its done callbacks run
        del job
        gc.collect()  # asyncio reports it as the task goes

    _, trace = traced(lambda: asyncio.run(main()), backend)
    assert reported == ["Task exception was never retrieved"]
    drawn = [re.sub(r"Task-\d+ ", "", str(e)) for e in trace.events if "fails" in str(e)]
    assert drawn == [
        "(main) -> fails: SPAWN",
        "fails -> (main): REPLY: raised ValueError",
        "fails: EXIT: ValueError",
    ]


def test_a_task_renamed_before_it_ends_is_drawn_under_its_new_name(backend: str) -> None:
    async def main() -> None:
        async def work() -> None:
            asyncio.current_task().set_name("renamed")  # type: ignore[union-attr]
            await asyncio.sleep(0)

        await asyncio.create_task(work(), name="first")
        await asyncio.sleep(0)  # it ended, and was let go, well before the trace does

    _, trace = traced(lambda: asyncio.run(main()), backend)
    spawned = [e.child.name for e in trace.events if isinstance(e, Spawn)]
    exited = [e.who.name for e in trace.events if isinstance(e, Exit)]
    assert "renamed" in spawned
    assert "renamed" in exited
    assert "first" not in spawned + exited


def test_a_renamed_task_s_queue_messages_name_it_under_its_new_name(backend: str) -> None:
    """Its messages, kept compact, find its final name as its SPAWN and EXIT do."""

    async def main() -> None:
        box: asyncio.Queue[str] = asyncio.Queue()

        async def work() -> None:
            await box.put("before")
            asyncio.current_task().set_name("renamed")  # type: ignore[union-attr]
            await box.put("after")

        await asyncio.create_task(work(), name="first")
        await box.get()
        await box.get()

    _, trace = traced(lambda: asyncio.run(main()), backend)
    messages = [e for e in trace.events if isinstance(e, Message) and e.kind == "send"]
    assert [(m.sender.name, m.label) for m in messages] == [
        ("renamed", "'before'"),
        ("renamed", "'after'"),
    ]
    spawn = next(e for e in trace.events if isinstance(e, Spawn) and e.child.name == "renamed")
    assert all(m.sender is spawn.child for m in messages)  # one participant object
    diagram = str(trace.diagram)
    assert f"participant p{spawn.child.key} as renamed" in diagram
    assert "first" not in diagram


def test_a_trace_that_keeps_every_message_leaves_the_collector_none_to_walk(
    backend: str,
) -> None:
    """Queue messages are kept as records the garbage collector stops tracking.

    A Message, a tuple subclass holding participants, would be walked by
    every older-generation pass while the program runs; the events read
    after the trace are Messages all the same, made once.
    """
    box: queue.Queue[int] = queue.Queue()

    def run() -> None:
        for i in range(5000):
            box.put(i)
            box.get()

    gc.collect()
    before = len(gc.get_objects())
    _, trace = traced(run, backend, max_messages=10_000)
    gc.collect()
    assert len(gc.get_objects()) - before < 500  # 5,000 Messages were 5,000 more
    events = trace.events
    assert events is trace.events
    assert len(events) == 5000
    assert all(type(e) is Message for e in events)
    first, last = events[0], events[-1]
    assert (first.sender.name, first.receiver.name, first.label, first.kind) == (
        "caller (MainThread)",
        "caller (MainThread)",
        "0",
        "send",
    )
    assert first.sender is last.receiver
    assert first.sent is not None
    assert last.sent is not None
    assert first.sent <= first.time <= last.sent <= last.time
    assert last.label == "4999"
    assert str(trace.diagram).count("p0->>p0: ") == 5000


def test_a_cancelled_task_exits_cancelled(backend: str) -> None:
    async def main() -> None:
        sleeper = asyncio.create_task(asyncio.Event().wait(), name="sleeper")
        await asyncio.sleep(0)
        sleeper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeper

    _, trace = traced(lambda: asyncio.run(main()), backend)
    assert next((e.who.name, e.reason) for e in trace.events if isinstance(e, Exit)) == (
        "sleeper",
        "cancelled",
    )


def test_context_manager_exposes_events_and_diagram_after_the_block(backend: str) -> None:
    with SequenceTrace(backend=backend) as trace:
        ping_pong()
    assert len(trace.events) == 4
    assert "p1->>p0: 'pong'" in str(trace.diagram)
    assert trace.diagram.caption == (
        "Messages exchanged while the traced block ran: 2 messages and 1 start."
    )


def test_tracing_is_the_public_context_manager() -> None:
    with tracing(caption="block") as trace:
        ping_pong()
    assert trace.diagram.caption == "block"
    assert trace.omitted == 0


def test_max_messages_keeps_the_first_and_counts_the_rest(backend: str) -> None:
    def run() -> None:
        box: queue.Queue[int] = queue.Queue()

        def drain() -> None:
            for _ in range(10):
                box.get()

        worker = threading.Thread(target=drain, name="drain")
        worker.start()
        for i in range(10):
            box.put(i)
        worker.join()

    _, trace = traced(run, backend, max_messages=4)
    # Four arrows: the SPAWN and three messages; the EXIT closes the bar.
    kinds = [type(e).__name__ for e in trace.events]
    assert kinds == ["Spawn", "Message", "Message", "Message", "Exit"]
    assert trace.omitted == 7
    assert str(trace.diagram).endswith(
        "    deactivate p1\n    Note over p0,p1: 7 more messages not shown (max_messages)"
    )


def test_an_exit_whose_spawn_was_cut_is_left_out(backend: str) -> None:
    box: queue.Queue[int] = queue.Queue()

    def run() -> None:
        box.put(1)
        box.get()
        worker = threading.Thread(target=lambda: None, name="late")
        worker.start()
        worker.join()

    _, trace = traced(run, backend, max_messages=1)
    assert [type(e).__name__ for e in trace.events] == ["Message"]
    assert trace.omitted == 1


def test_message_label_sets_labels_and_none_keeps_the_default(backend: str) -> None:
    def label(message: Any) -> str | None:
        return "PING!" if message == "ping" else None

    _, trace = traced(ping_pong, backend, message_label=label)
    assert [m.label for m in trace.events if isinstance(m, Message)] == ["PING!", "'pong'"]


def test_a_message_whose_repr_raises_still_gets_a_label(backend: str) -> None:
    class Opaque:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    box: queue.Queue[Opaque] = queue.Queue()

    def run() -> None:
        worker = threading.Thread(target=box.get, name="taker")
        worker.start()
        box.put(Opaque())
        worker.join()

    _, trace = traced(run, backend)
    assert arrows(trace.events) == [
        ("caller (MainThread)", "taker", "<Opaque: repr raised RuntimeError>")
    ]


def test_the_exception_of_fn_reaches_the_caller_with_the_partial_diagram() -> None:
    class StopError(Exception):
        pass

    def run() -> None:
        ping_pong()
        raise StopError("after the pong")

    with pytest.raises(StopError) as caught:
        seq_trace(run)
    diagram = caught.value.livekit_seq_trace  # type: ignore[attr-defined]
    assert "p1->>p0: 'pong'" in str(diagram)
    assert caught.value.__notes__ == [
        "livekit.seq_trace: the diagram of the 4 events recorded before this error "
        "is in the exception's livekit_seq_trace attribute"
    ]
    assert str(caught.value) == "after the pong"


def test_render_seq_trace_shows_the_partial_diagram_then_raises(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")

    def run() -> None:
        ping_pong()
        raise ValueError("late")

    with pytest.raises(ValueError, match="late"):
        render_seq_trace(run)
    assert "pong                → caller (MainThread): 'pong'\n" in capsys.readouterr().out


def test_everything_is_restored_after_a_trace_even_when_fn_raises(backend: str) -> None:
    watched = [
        (queue.Queue, "_put"),
        (queue.Queue, "_get"),
        (asyncio.Queue, "_put"),
        (threading.Thread, "start"),
        (concurrent.futures.Future, "set_result"),
    ]
    before = [cls.__dict__[name] for cls, name in watched]

    def fail_after_ping_pong() -> None:
        with SequenceTrace(backend=backend):
            ping_pong()
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        fail_after_ping_pong()
    assert [cls.__dict__[name] for cls, name in watched] == before
    if sys.version_info >= (3, 12):
        tools = [sys.monitoring.get_tool(i) for i in range(6)]  # type: ignore[attr-defined,unused-ignore]
        assert "livekit.seq_trace" not in tools
        code = queue.Queue._put.__code__
        assert all(
            sys.monitoring.get_local_events(i, code) == 0  # type: ignore[attr-defined,unused-ignore]
            for i in range(6)
            if tools[i] is None
        )


def test_a_trace_inside_a_trace_raises_a_clear_error() -> None:
    with tracing(), pytest.raises(RuntimeError, match="already running"):
        seq_trace(ping_pong)
    # The outer trace ended normally: a new one can start.
    assert seq_trace(ping_pong)[0] == "pong"


def test_a_trace_in_another_thread_at_the_same_time_raises_a_clear_error() -> None:
    errors: list[BaseException] = []

    def other() -> None:
        try:
            seq_trace(lambda: None)
        except RuntimeError as error:
            errors.append(error)

    with tracing():
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert len(errors) == 1
    assert "started by caller (MainThread)" in str(errors[0])


def test_a_non_callable_raises_type_error() -> None:
    with pytest.raises(TypeError, match="seq_trace expects a callable, got int: 42"):
        seq_trace(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_messages": 0}, "expected max_messages to be a positive int, got 0"),
        ({"max_messages": True}, "expected max_messages to be a positive int, got True"),
        ({"max_messages": "10"}, "expected max_messages to be a positive int, got '10'"),
        ({"message_label": "repr"}, "expected message_label to be a callable or None, got 'repr'"),
        ({"caption": 3}, "expected caption to be a str or None, got 3"),
    ],
)
def test_a_bad_option_raises_value_error_naming_the_value(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        seq_trace(ping_pong, **options)
    with pytest.raises(ValueError, match=message):
        tracing(**options)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: seq_trace(ping_pong, max_mesages=3), "seq_trace"),
        (lambda: render_seq_trace(ping_pong, backend="patching"), "render_seq_trace"),
        (lambda: tracing(target="a block"), "tracing"),
    ],
)
def test_an_unknown_option_raises_type_error_naming_it(call: Callable[[], Any], name: str) -> None:
    with pytest.raises(TypeError, match=rf"^{name}\(\) got an unexpected keyword argument '\w+'"):
        call()
    assert livekit.trace._running is None  # nothing was started


def test_the_trace_options_are_the_keywords_of_sequence_trace() -> None:
    keywords = inspect.signature(SequenceTrace).parameters.keys() - {"target", "backend"}
    assert TraceOptions.__optional_keys__ == keywords
    hints = typing.get_type_hints(TraceOptions)
    init = typing.get_type_hints(SequenceTrace.__init__, vars(livekit.trace))
    assert {name: init[name] for name in keywords} == hints


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="got 'dtrace'"), SequenceTrace(backend="dtrace"):
        pass


def test_workers_started_before_the_trace_join_it_when_they_get_work(backend: str) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="old") as pool:
        pool.submit(int).result()  # the worker thread now exists, untraced
        _, trace = traced(lambda: pool.submit(abs, -5).result(), backend)
    assert [str(e) for e in trace.events] == [
        "caller (MainThread) -> old_0: CALL: abs(-5)",
        "old_0: PICK-UP",
        "old_0 -> caller (MainThread): REPLY: 5",
        "old_0: DONE",
    ]


def test_gathered_tasks_reply_to_the_task_that_created_them(backend: str) -> None:
    async def double(i: int) -> int:
        await asyncio.sleep(0)
        return 2 * i

    async def main() -> list[int]:
        return await asyncio.gather(double(1), double(2))

    result, trace = traced(lambda: asyncio.run(main()), backend)
    assert result == [2, 4]
    replies = sorted(
        (m.sender.name.split(" ")[1], m.receiver.name.split(" ")[1], m.label)
        for m in trace.events
        if isinstance(m, Message) and m.receiver.kind == "task"
    )
    assert replies == [("(double)", "(main)", "2"), ("(double)", "(main)", "4")]


def test_executor_calls_are_drawn_where_submit_ran_not_in_lockstep_with_replies(
    backend: str,
) -> None:
    release = threading.Event()

    def step(i: int) -> int:
        release.wait(5)
        return i

    def run() -> list[int]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="w") as pool:
            futures = [pool.submit(step, i) for i in range(6)]
            release.set()  # every submit has returned before any work ends
            return [f.result() for f in futures]

    result, trace = traced(run, backend)
    assert result == [0, 1, 2, 3, 4, 5]
    # (The first pick-up races the later submits; its place is checked below.)
    assert [str(e) for e in trace.events if not isinstance(e, Activation)] == [
        "caller (MainThread) -> w_0: CALL: step(0)",
        "caller (MainThread) -> w_0: SPAWN",
        *(f"caller (MainThread) -> w_0: CALL: step({i})" for i in range(1, 6)),
        *(f"w_0 -> caller (MainThread): REPLY: {i}" for i in range(6)),
        "w_0: EXIT: normal",
    ]
    calls = [e for e in trace.events if isinstance(e, Message) and e.kind == "call"]
    # Each arrow keeps when it was submitted and when the worker took it.
    assert all(c.sent is not None and c.sent <= c.time for c in calls)
    # Each piece of work: picked up after the SPAWN, then its REPLY, then done.
    work = [
        str(e)
        for e in trace.events
        if not isinstance(e, Spawn) and not (isinstance(e, Message) and e.kind == "call")
    ]
    assert work == [
        *(
            line
            for i in range(6)
            for line in ("w_0: PICK-UP", f"w_0 -> caller (MainThread): REPLY: {i}", "w_0: DONE")
        ),
        "w_0: EXIT: normal",
    ]


def _six_submits_to_a_held_worker(backend: str, **options: Any) -> SequenceTrace:
    """Six fast submits to a pool whose one worker is busy until all returned."""
    gate = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="held") as pool:
        pool.submit(gate.wait, 5)  # the worker exists, and waits, before the trace

        def run() -> list[int]:
            futures = [pool.submit(abs, -i) for i in range(6)]
            gate.set()
            return [f.result() for f in futures]

        result, trace = traced(run, backend, **options)
    assert result == [0, 1, 2, 3, 4, 5]
    return trace


def test_a_workers_pick_up_is_its_activation_and_its_reply_ends_it(backend: str) -> None:
    trace = _six_submits_to_a_held_worker(backend)
    assert trace.diagram.source.splitlines() == [
        "sequenceDiagram",
        "    participant p0 as caller (MainThread)",
        "    participant p1 as held_0",
        *(f"    p0->>p1: CALL: abs({-i})" for i in range(6)),
        *(
            line
            for i in range(6)
            for line in ("    activate p1", f"    p1-->>p0: REPLY: {i}", "    deactivate p1")
        ),
    ]
    picked = [e for e in trace.events if isinstance(e, Activation) and not e.ends]
    calls = [e for e in trace.events if isinstance(e, Message) and e.kind == "call"]
    # The activation is the moment the CALL was taken.
    assert [p.time for p in picked] == [c.time for c in calls]
    assert sequence_text(trace.events).splitlines()[6:9] == [
        "held_0              : PICK-UP",
        "held_0              ⇢ caller (MainThread): REPLY: 0",
        "held_0              : DONE",
    ]


def test_work_whose_call_was_not_kept_draws_no_bar(backend: str) -> None:
    trace = _six_submits_to_a_held_worker(backend, max_messages=3)
    assert trace.diagram.source.splitlines() == [
        "sequenceDiagram",
        "    participant p0 as caller (MainThread)",
        "    participant p1 as held_0",
        *(f"    p0->>p1: CALL: abs({-i})" for i in range(3)),
        # Their REPLYs are past max_messages, but every bar begun also ends.
        *(line for _ in range(3) for line in ("    activate p1", "    deactivate p1")),
        "    Note over p0,p1: 9 more messages not shown (max_messages)",
    ]


def test_a_task_started_by_a_loop_callback_is_the_loops_not_the_callers(backend: str) -> None:
    async def handled() -> str:
        await asyncio.sleep(0)  # main awaits it by the time it ends
        return "done"

    async def main() -> str:
        loop = asyncio.get_running_loop()
        started: asyncio.Future[asyncio.Task[str]] = loop.create_future()
        loop.call_soon(lambda: started.set_result(loop.create_task(handled(), name="handler")))
        return await (await started)

    result, trace = traced(lambda: asyncio.run(main()), backend)
    assert result == "done"
    spawns = [
        (e.parent.name, unnumbered(e.child.name)) for e in trace.events if isinstance(e, Spawn)
    ]
    assert spawns == [
        ("caller (MainThread)", "(main)"),
        ("event loop (MainThread)", "handler"),
    ]
    assert [(unnumbered(s), unnumbered(r), label) for s, r, label in arrows(trace.events)] == [
        ("handler", "(main)", "'done'"),
        ("(main)", "caller (MainThread)", "'done'"),
    ]


def test_a_connection_task_of_a_server_is_started_by_the_event_loop(backend: str) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> bytes:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello\n")
            answer = await reader.readline()
            writer.close()
            await writer.wait_closed()
        return answer

    result, trace = traced(lambda: asyncio.run(main()), backend)
    assert result == b"hello\n"
    spawns = [
        (e.parent.name, unnumbered(e.child.name)) for e in trace.events if isinstance(e, Spawn)
    ]
    assert spawns[0] == ("caller (MainThread)", "(main)")
    assert [parent for parent, child in spawns if child == "(serve)"] == ["event loop (MainThread)"]
