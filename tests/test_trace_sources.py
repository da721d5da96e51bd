"""Outside sources of trace messages (livekit.trace.sources), with hand-made sources."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

import livekit
from livekit.trace import sources
from livekit.trace.events import Event, Message, Participant
from livekit.trace.sources import NewParticipant


class Remote:
    """A source that saw one message to the caller and one from it."""

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0

    def start(self, new_participant: NewParticipant, caller: Participant) -> None:
        self.started += 1
        self.caller = caller
        self.far = new_participant("far away", "process")
        self.begin = time.monotonic()

    def finish(self) -> Sequence[Event]:
        self.finished += 1
        return [
            Message(self.far, self.caller, "late", "send", time.monotonic() + 1),
            Message(self.caller, self.far, "early", "send", self.begin),
        ]


class Broken:
    def start(self, new_participant: NewParticipant, caller: Participant) -> None:
        raise RuntimeError("cannot reach it")

    def finish(self) -> Sequence[Event]:  # pragma: no cover - never started
        return []


@pytest.fixture
def remote() -> Iterator[Remote]:
    source = Remote()
    sources.add_source(source)
    yield source
    sources.remove_source(source)


def test_a_sources_messages_are_merged_in_time_order(remote: Remote) -> None:
    def ping() -> str:
        inbox: queue.Queue[str] = queue.Queue()
        worker = threading.Thread(target=lambda: inbox.put("pong"), name="worker")
        worker.start()
        worker.join()
        return inbox.get()

    result, diagram = livekit.seq_trace(ping)
    assert result == "pong"
    assert (remote.started, remote.finished) == (1, 1)
    assert str(diagram).splitlines() == [
        "sequenceDiagram",
        "    participant p0 as caller (MainThread)",
        "    participant p1 as far away",
        "    participant p2 as worker",
        "    p0->>p1: early",
        "    p0->>p2: SPAWN",
        "    activate p2",
        "    p2->>p0: 'pong'",
        "    Note over p2: EXIT: normal",
        "    deactivate p2",
        "    p1->>p0: late",
    ]


def test_a_sources_messages_count_towards_max_messages(remote: Remote) -> None:
    _, diagram = livekit.seq_trace(lambda: None, max_messages=1)
    lines = str(diagram).splitlines()
    assert lines[-2:] == [
        "    p0->>p1: early",
        "    Note over p0,p1: 1 more message not shown (max_messages)",
    ]


def test_a_source_that_fails_to_start_is_left_out_and_logged(
    remote: Remote, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Broken()
    sources.add_source(broken)
    try:
        with caplog.at_level(logging.WARNING, logger="livekit.trace"):
            result, diagram = livekit.seq_trace(lambda: 42)
    finally:
        sources.remove_source(broken)
    assert result == 42
    assert "p0->>p1: early" in str(diagram)
    assert [r.getMessage() for r in caplog.records] == [
        "a trace source failed to start and is left out"
    ]


def test_a_source_is_finished_even_when_the_traced_code_raises(remote: Remote) -> None:
    with pytest.raises(ZeroDivisionError) as caught:
        livekit.seq_trace(lambda: 1 / 0)
    assert remote.finished == 1
    assert "p0->>p1: early" in str(caught.value.livekit_seq_trace)  # type: ignore[attr-defined]


def test_a_removed_source_is_not_asked_again(remote: Remote) -> None:
    assert sources.remove_source(remote) is True
    livekit.seq_trace(lambda: None)
    assert remote.started == 0
