"""Channels of other libraries: real anyio streams, a real janus queue, a user's own."""

from __future__ import annotations

import asyncio
import collections
import re
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import janus
import pytest

from livekit.trace import SequenceTrace, channel, register, unregister
from livekit.trace.events import Event, Message


def plain(name: str) -> str:
    """A task's name without its running number or its function's qualified path.

    asyncio names a task ``Task-7 (main)``; anyio names it after the
    function: ``tests.test_x.test_y.<locals>.main``.
    """
    return re.sub(r"^Task-\d+ |^.*<locals>\.", "", name)


def arrows(events: tuple[Event, ...]) -> list[tuple[str, str, str]]:
    """The messages sent (not the calls and replies)."""
    return [
        (plain(e.sender.name), plain(e.receiver.name), e.label)
        for e in events
        if isinstance(e, Message) and e.kind == "send"
    ]


def test_anyio_memory_stream_messages_have_both_ends(backend: str) -> None:
    async def main() -> list[str]:
        send, receive = anyio.create_memory_object_stream[str](1)
        got: list[str] = []

        async def consumer() -> None:
            async with receive:
                async for item in receive:
                    got.append(item)

        async with anyio.create_task_group() as group:
            group.start_soon(consumer, name="consumer")
            async with send:
                for word in ("one", "two", "three"):
                    await send.send(word)
        return got

    with SequenceTrace(backend=backend) as trace:
        result = anyio.run(main)
    assert result == ["one", "two", "three"]
    sent = [a for a in arrows(trace.events) if a[2] in {"'one'", "'two'", "'three'"}]
    assert sent == [
        ("main", "consumer", "'one'"),
        ("main", "consumer", "'two'"),
        ("main", "consumer", "'three'"),
    ]


def test_an_item_handed_to_a_waiting_receiver_is_one_arrow(backend: str) -> None:
    async def main() -> str:
        send, receive = anyio.create_memory_object_stream[str](0)
        answer: list[str] = []

        async def waiter() -> None:
            answer.append(await receive.receive())

        with send, receive:
            async with anyio.create_task_group() as group:
                group.start_soon(waiter, name="waiter")
                await anyio.sleep(0.01)  # the waiter is waiting: no buffer in between
                await send.send("direct")
        return answer[0]

    with SequenceTrace(backend=backend) as trace:
        assert anyio.run(main) == "direct"
    assert [a for a in arrows(trace.events) if a[2] == "'direct'"] == [
        ("main", "waiter", "'direct'")
    ]


def test_anyio_to_thread_labels_show_no_object_address(backend: str) -> None:
    def square(n: int) -> int:
        return n * n

    async def main() -> int:
        return await anyio.to_thread.run_sync(square, 7)

    with SequenceTrace(backend=backend) as trace:
        assert anyio.run(main) == 49
    labels = [m.label for m in trace.events if isinstance(m, Message)]
    assert labels, "the hand-over to anyio's worker thread is drawn"
    assert not [label for label in labels if re.search(r"0x[0-9a-f]{4}", label)]
    assert any(label.startswith("(<_contextvars.Context object>") for label in labels)


def test_a_janus_queue_carries_messages_from_a_thread_to_a_task(backend: str) -> None:
    async def main() -> list[int]:
        box: janus.Queue[int] = janus.Queue()

        def producer() -> None:
            for n in (1, 2):
                box.sync_q.put(n)

        thread = threading.Thread(target=producer, name="producer")
        thread.start()
        got = [await box.async_q.get(), await box.async_q.get()]
        thread.join()
        await box.aclose()
        return got

    with SequenceTrace(backend=backend) as trace:
        assert asyncio.run(main()) == [1, 2]
    assert [a for a in arrows(trace.events) if a[2] in {"1", "2"}] == [
        ("producer", "(main)", "1"),
        ("producer", "(main)", "2"),
    ]


class Pigeonhole:
    """A user's own channel: not a queue that livekit knows."""

    def __init__(self) -> None:
        self.slots: collections.deque[Any] = collections.deque()
        self.lock = threading.Lock()

    def leave(self, note: Any) -> None:
        with self.lock:
            self.slots.append(note)

    def collect(self) -> Any:
        with self.lock:
            return self.slots.popleft()


@pytest.fixture
def pigeonhole_rows() -> Iterator[None]:
    rows = channel(Pigeonhole.leave, Pigeonhole.collect, item="note")
    register(rows)
    try:
        yield
    finally:
        unregister(rows)


def test_a_declared_channel_is_drawn_sender_to_receiver(
    backend: str, pigeonhole_rows: None
) -> None:
    box = Pigeonhole()
    with SequenceTrace(backend=backend) as trace:
        helper = threading.Thread(target=lambda: box.leave({"at": "noon"}), name="colleague")
        helper.start()
        helper.join()
        note = box.collect()
    assert note == {"at": "noon"}
    assert arrows(trace.events) == [("colleague", "caller (MainThread)", "{'at': 'noon'}")]


def test_an_undeclared_channel_draws_nothing(backend: str) -> None:
    box = Pigeonhole()
    with SequenceTrace(backend=backend) as trace:
        helper = threading.Thread(target=lambda: box.leave("x"), name="colleague")
        helper.start()
        helper.join()
        box.collect()
    assert arrows(trace.events) == []


def test_channel_refuses_a_function_it_cannot_find_and_a_wrong_item_name() -> None:
    def local_send(self: Any, item: Any) -> None:
        pass

    with pytest.raises(ValueError, match="defined at the top of a module or class"):
        channel(local_send, Pigeonhole.collect)
    with pytest.raises(ValueError, match=r"\(self, note\), got 'item'"):
        channel(Pigeonhole.leave, Pigeonhole.collect)
