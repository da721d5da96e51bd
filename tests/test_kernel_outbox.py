"""The per-client outbox of ``livekit serve``: bounded, dropping only replaceable messages."""

from __future__ import annotations

import asyncio

import pytest

from livekit.kernel._outbox import Outbox


def test_a_full_outbox_drops_the_oldest_widget_update_and_counts_it() -> None:
    box = Outbox(limit=3)
    box.put({"type": "cell_start", "cell": 1})
    for i in range(4):
        box.put({"type": "comm_msg", "i": i})
    assert (len(box), box.dropped) == (3, 2)
    assert [box.get_nowait() for _ in range(4)] == [
        {"type": "dropped", "count": 2},
        {"type": "cell_start", "cell": 1},
        {"type": "comm_msg", "i": 2},
        {"type": "comm_msg", "i": 3},
    ]


def test_an_outbox_never_drops_what_changes_the_page_for_good() -> None:
    box = Outbox(limit=2)
    assert box.put({"type": "cell_start", "cell": 1})
    assert box.put({"type": "cell_done", "cell": 1, "status": "ok"})
    assert not box.put({"type": "output", "cell": 2})
    assert box.dropped == 0
    assert [box.get_nowait()["type"] for _ in range(2)] == ["cell_start", "cell_done"]


def test_an_outbox_stays_bounded_under_a_million_updates() -> None:
    box = Outbox(limit=256)
    for i in range(1_000_000):
        box.put({"type": "comm_msg", "i": i})
    assert (len(box), box.dropped) == (256, 1_000_000 - 256)


def test_a_reader_waits_for_the_next_message_and_stops_when_closed() -> None:
    async def scenario() -> list[object]:
        box = Outbox()
        got: list[object] = []

        async def reader() -> None:
            try:
                while True:
                    got.append(await box.get())
            except EOFError:
                got.append("closed")

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)
        box.put({"type": "pong"})
        await asyncio.sleep(0)
        box.close()
        await task
        assert not box.put({"type": "pong"})
        return got

    assert asyncio.run(scenario()) == [{"type": "pong"}, "closed"]


def test_an_outbox_needs_room_for_one_message() -> None:
    with pytest.raises(ValueError, match="expected a limit of at least 1, got 0"):
        Outbox(limit=0)
