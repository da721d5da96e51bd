"""participants=, exclude= and collapse=: hand-made events, then a real trace."""

from __future__ import annotations

import itertools
import queue
import re
import threading

import pytest

from livekit.trace import SequenceTrace, seq_trace, tracing
from livekit.trace.events import Activation, Exit, Message, Participant, Spawn
from livekit.trace.narrow import Narrowing

CALLER = Participant(0, "caller (MainThread)", "caller")
CLIENT = Participant(1, "Task-1 (main)", "task", "app")
ACCEPT = Participant(2, "Task-2 (_accept_connection2)", "task", "asyncio.selector_events")
START = Participant(3, "Task-3 (start)", "task", "aiohttp.web_protocol")
HANDLER = Participant(4, "Task-4 (_handle_request)", "task", "aiohttp.web_protocol")
POOL = Participant(5, "Task-5 (_wait_for_close)", "task", "aiohttp.connector")
PEER = Participant(6, "127.0.0.1:8080", "peer")


def narrowing(**options: object) -> Narrowing:
    return Narrowing(new_key=itertools.count(100).__next__, **options)  # type: ignore[arg-type]


def lines(events: list[object]) -> list[str]:
    return [str(e) for e in events]


EVENTS = [
    Spawn(CALLER, CLIENT),
    Spawn(CALLER, ACCEPT),
    Spawn(ACCEPT, START),
    Message(CLIENT, START, "GET / HTTP/1.1 (40 bytes)"),
    Spawn(START, HANDLER),
    Message(START, HANDLER, "'request'"),
    Message(HANDLER, CLIENT, "HTTP/1.1 200 OK (40 bytes)"),
    Exit(HANDLER, "normal"),
    Message(POOL, CLIENT, "None", "reply"),
    Message(CLIENT, PEER, "GET / HTTP/1.1 (40 bytes)"),
    Exit(CLIENT, "normal"),
]


def test_collapse_draws_a_library_as_one_participant_and_hides_its_inside() -> None:
    narrowed = narrowing(collapse={"aiohttp.web*": "server"}, exclude=["asyncio", "aiohttp"])
    assert lines(narrowed.events(EVENTS)) == [
        "caller (MainThread) -> Task-1 (main): SPAWN",
        "Task-1 (main) -> server: GET / HTTP/1.1 (40 bytes)",
        "server -> Task-1 (main): HTTP/1.1 200 OK (40 bytes)",
        "Task-1 (main) -> 127.0.0.1:8080: GET / HTTP/1.1 (40 bytes)",
        "Task-1 (main): EXIT: normal",
    ]


def test_a_workers_bar_goes_with_the_worker_drawn_and_not_with_one_hidden() -> None:
    work = [
        Message(CLIENT, START, "handle()", "call"),
        Activation(START),
        Message(START, CLIENT, "None", "reply"),
        Activation(START, ends=True),
    ]
    assert lines(narrowing(exclude="asyncio").events(work)) == [
        "Task-1 (main) -> Task-3 (start): CALL: handle()",
        "Task-3 (start): PICK-UP",
        "Task-3 (start) -> Task-1 (main): REPLY: None",
        "Task-3 (start): DONE",
    ]
    # Hidden, or inside a group: neither the start of its bar nor the end.
    assert lines(narrowing(exclude="aiohttp").events(work)) == []
    assert lines(narrowing(collapse="aiohttp").events(work)) == [
        "Task-1 (main) -> aiohttp: CALL: handle()",
        "aiohttp -> Task-1 (main): REPLY: None",
    ]


def test_one_group_is_one_participant_with_one_key() -> None:
    narrowed = narrowing(collapse="aiohttp")
    groups = {narrowed.view(p) for p in (START, HANDLER, POOL)}
    assert groups == {Participant(100, "aiohttp", "group")}


def test_participants_keeps_only_what_it_names_and_the_caller() -> None:
    narrowed = narrowing(participants=["Task-1 *", "127.0.0.1:*"])
    assert lines(narrowed.events(EVENTS)) == [
        "caller (MainThread) -> Task-1 (main): SPAWN",
        "Task-1 (main) -> 127.0.0.1:8080: GET / HTTP/1.1 (40 bytes)",
        "Task-1 (main): EXIT: normal",
    ]


def test_a_module_pattern_names_the_package_not_a_prefix_of_its_name() -> None:
    narrowed = narrowing(exclude="aio")
    assert narrowed.view(START) is START
    assert narrowing(exclude="aiohttp").view(START) is None


def test_without_options_nothing_is_narrowed() -> None:
    narrowed = narrowing()
    assert not narrowed.active
    assert narrowed.events(EVENTS) == EVENTS


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"participants": 3},
            "expected participants to be a pattern or a list of patterns (str), got 3",
        ),
        (
            {"exclude": [b"x"]},
            "expected exclude to be a pattern or a list of patterns (str), got [b'x']",
        ),
        (
            {"collapse": {"x": 2}},
            "expected collapse to map patterns to names (str to str), got {'x': 2}",
        ),
    ],
)
def test_a_bad_option_raises_at_once_naming_the_value(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SequenceTrace(**options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        seq_trace(lambda: None, **options)  # type: ignore[arg-type]


def workers(count: int) -> None:
    inbox: queue.Queue[str] = queue.Queue()
    threads = [threading.Thread(target=inbox.get, name=f"worker-{i}") for i in range(count)]
    logger = threading.Thread(target=lambda: None, name="logger")
    logger.start()
    for thread in threads:
        thread.start()
    for i in range(count):
        inbox.put(f"job {i}")
    for thread in [logger, *threads]:
        thread.join()


def test_max_messages_counts_only_the_arrows_drawn() -> None:
    with tracing(exclude="worker-*", max_messages=2) as trace:
        workers(10)
    assert [str(e) for e in trace.events] == [
        "caller (MainThread) -> logger: SPAWN",
        "logger: EXIT: normal",
    ]
    assert trace.omitted == 0


def test_collapsed_threads_are_one_participant_in_a_real_trace() -> None:
    with tracing(collapse={"worker-*": "workers"}) as trace:
        workers(3)
    drawn = [str(e) for e in trace.events if isinstance(e, Message)]
    assert drawn == [
        "caller (MainThread) -> workers: 'job 0'",
        "caller (MainThread) -> workers: 'job 1'",
        "caller (MainThread) -> workers: 'job 2'",
    ]
    assert not [
        e for e in trace.events if isinstance(e, Spawn) and e.child.name.startswith("worker")
    ]


def test_an_excluded_helper_is_drawn_as_the_participant_that_started_it() -> None:
    helper = Participant(7, "Task-7 (write_bytes)", "task", "aiohttp.client_reqrep")
    narrowed = narrowing(collapse={"aiohttp.web*": "server"}, exclude="aiohttp")
    events = [
        Spawn(CLIENT, helper),
        Message(CLIENT, helper, "'body'"),
        Message(helper, START, "POST / HTTP/1.1 (52 bytes)"),
        Message(START, helper, "HTTP/1.1 201 Created (40 bytes)"),
        Exit(helper, "normal"),
    ]
    assert lines(narrowed.events(events)) == [
        "Task-1 (main) -> server: POST / HTTP/1.1 (52 bytes)",
        "server -> Task-1 (main): HTTP/1.1 201 Created (40 bytes)",
    ]


def test_an_excluded_participant_nobody_drawn_started_is_hidden() -> None:
    narrowed = narrowing(exclude="asyncio")
    assert narrowed.events([Message(ACCEPT, CLIENT, "x")]) == []


def test_tasks_named_after_they_start_keep_their_spawn_and_name_when_narrowed() -> None:
    import asyncio

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(asyncio.sleep(0), name="napper")

    with tracing(exclude="nothing-matches") as trace:
        asyncio.run(main())
    spawned = [e.child.name for e in trace.events if isinstance(e, Spawn)]
    exited = [e.who.name for e in trace.events if isinstance(e, Exit)]
    assert "napper" in spawned
    assert "napper" in exited


def _library_tasks() -> None:
    """main awaits a library task, which awaits another (inside); a third ends unawaited."""
    import asyncio

    async def lib_inner() -> int:
        return 2

    async def lib_outer() -> int:
        return await asyncio.create_task(lib_inner()) * 3

    async def lib_later() -> str:
        await asyncio.sleep(0)
        return "done"

    async def main() -> None:
        unawaited = asyncio.create_task(lib_later())
        assert await asyncio.create_task(lib_outer()) == 6
        while not unawaited.done():
            await asyncio.sleep(0)
        await asyncio.sleep(0)  # its done callbacks run

    asyncio.run(main())


def test_a_collapsed_task_replies_to_its_awaiter_or_its_starter_outside_the_group() -> None:
    """A group's task that ends draws a REPLY only out of the group, and no EXIT."""
    # By the coroutine's name: on 3.11 create_task(name=...) names a task after it starts.
    with tracing(collapse={"* (lib_*)": "library"}) as trace:
        _library_tasks()
    drawn = [re.sub(r"Task-\d+ ", "", str(e)) for e in trace.events]
    assert drawn == [
        "caller (MainThread) -> (main): SPAWN",
        "library -> (main): REPLY: 'done'",  # lib_later: nobody awaited it, to its starter
        "library -> (main): REPLY: 6",  # lib_outer, to main that awaited it
        "(main) -> caller (MainThread): REPLY: None",
        "(main): EXIT: normal",
    ]


def test_a_hidden_task_and_what_it_returned_are_let_go_when_it_ends() -> None:
    import asyncio
    import gc
    import weakref

    class Answer:
        pass

    async def main() -> tuple[bool, bool]:
        async def answer() -> Answer:
            return Answer()

        job = asyncio.create_task(answer(), name="answer")
        returned = weakref.ref(await job)
        ended = weakref.ref(job)
        del job
        await asyncio.sleep(0)  # the loop lets go of the wake-up that held it
        gc.collect()
        return ended() is None, returned() is None

    with tracing(participants="nothing-matches") as trace:
        gone = asyncio.run(main())
    assert gone == (True, True)
    assert trace.events == ()  # the caller alone is drawn, and it sent nothing
