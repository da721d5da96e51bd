"""listen: ticks and items in the background, errors logged, stopping, re-runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from livekit import listen
from livekit.supervisor import app_supervisor, stopping
from livekit.widgets import listeners as listen_module
from livekit.widgets._cell import Cell


def children() -> dict[str, bool]:
    return {info.name: info.alive for info in app_supervisor().which_children()}


@pytest.fixture(autouse=True)
def nothing_left_running() -> Iterator[None]:
    before = set(children())
    yield
    assert set(children()) == before
    assert not [t for t in threading.enumerate() if t.name.startswith("listen-")]


def counter(until: int) -> tuple[list[Any], threading.Event, Any]:
    seen: list[Any] = []
    done = threading.Event()

    def fn(i: Any) -> None:
        seen.append(i)
        if len(seen) >= until:
            done.set()

    return seen, done, fn


def test_listen_calls_fn_with_tick_numbers_until_stopped() -> None:
    seen, done, fn = counter(3)
    listener = listen(0.001, fn)
    assert done.wait(5)
    assert listener.running
    assert children()[listener.name] is True
    assert listener.stop() is True
    assert not listener.running
    count = len(seen)
    assert seen == list(range(count))
    assert listener.name not in children()


def test_stop_twice_is_harmless() -> None:
    _, done, fn = counter(1)
    listener = listen(0.001, fn)
    assert done.wait(5)
    assert listener.stop() is True
    assert listener.stop() is True


def test_an_exception_in_fn_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen, done, _ = counter(3)

    def flaky(i: int) -> None:
        seen.append(i)
        if i == 0:
            raise ValueError("boom")
        if len(seen) >= 3:
            done.set()

    with caplog.at_level(logging.ERROR, logger="livekit.listen"):
        listener = listen(0.001, flaky)
        assert done.wait(5)
        listener.stop()
    assert seen[:3] == [0, 1, 2]
    (record,) = [r for r in caplog.records if r.name == "livekit.listen"]
    assert record.getMessage() == f"listen({listener.name}): flaky(0) raised; the loop goes on"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


def test_listen_calls_fn_with_each_item_of_an_iterable() -> None:
    seen, done, fn = counter(3)
    listener = listen(["a", "b", "c"], fn)
    assert done.wait(5)
    listener.stop()
    assert seen == ["a", "b", "c"]


def test_an_iterable_listener_stops_between_items() -> None:
    started, release = threading.Event(), threading.Event()
    stop_requested: list[threading.Event] = []
    seen: list[int] = []

    def items() -> Iterator[int]:
        yield 1
        # The generator runs in the listener's own thread: its stop event.
        stop_requested.append(stopping())
        started.set()
        release.wait(5)
        yield 2
        yield 3

    listener = listen(items(), seen.append)
    assert started.wait(5)
    stopper = threading.Thread(target=listener.stop)
    stopper.start()
    # Let the iterable go on only once the stop has been asked for.
    assert stop_requested[0].wait(5)
    release.set()
    stopper.join()
    assert seen == [1]


def test_rerunning_a_cell_stops_the_listener_it_started_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = iter([Cell("cell:a", 1), Cell("cell:a", 1), Cell("cell:a", 2)])
    monkeypatch.setattr(listen_module, "current_cell", lambda _frame: next(runs))
    first = listen(60, lambda _i: None)
    same_run = listen(60, lambda _i: None)
    assert first.running
    assert same_run.running
    rerun = listen(60, lambda _i: None)
    assert not first.running
    assert not same_run.running
    assert rerun.running
    rerun.stop()


@pytest.mark.parametrize(
    ("interval", "fn", "error", "message"),
    [
        (0, print, ValueError, "a number of seconds > 0 or an iterable, got 0"),
        (-1.5, print, ValueError, "got -1.5"),
        (float("nan"), print, ValueError, "got nan"),
        (True, print, TypeError, "expected interval to be seconds or an iterable, got True"),
        ("abc", print, TypeError, "got str: 'abc'"),
        (1, 42, TypeError, "expected fn to be callable, got int: 42"),
    ],
)  # fmt: skip
def test_bad_input_raises_naming_the_value(
    interval: Any, fn: Any, error: type, message: str
) -> None:
    with pytest.raises(error) as info:
        listen(interval, fn)
    assert message in str(info.value)


def failing_until(last: int) -> tuple[list[int], threading.Event, Any]:
    """A function that raises the same error for ticks up to ``last``, then returns."""
    seen: list[int] = []
    done = threading.Event()

    def sample(i: int) -> None:
        seen.append(i)
        if i > last:
            done.set()
            return
        raise ConnectionError(f"no node 'bad@vm' (try {i})")

    return seen, done, sample


def test_a_repeated_error_is_logged_once_in_full_then_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, done, sample = failing_until(19)
    with caplog.at_level(logging.WARNING, logger="livekit.listen"):
        listener = listen(0.001, sample)
        assert done.wait(10)
        listener.stop()
    records = [r for r in caplog.records if r.name == "livekit.listen"]
    assert [r.exc_info is not None for r in records] == [True] + [False] * 6
    name = listener.name
    assert [r.getMessage() for r in records] == [
        f"listen({name}): sample(0) raised; the loop goes on",
        *(
            f"{name}: the same error again, repeat {n} "
            f"(latest: sample({n}): ConnectionError: no node 'bad@vm' (try {n}))"
            for n in (1, 2, 4, 8, 16)
        ),
        f"{name}: the same error came back 19 times in all; then sample(20) returned",
    ]


def test_a_different_error_gets_its_own_traceback(caplog: pytest.LogCaptureFixture) -> None:
    done = threading.Event()

    def sample(i: int) -> None:
        if i < 3:
            raise ValueError("bad value")
        if i < 5:
            raise KeyError("node")
        done.set()

    with caplog.at_level(logging.WARNING, logger="livekit.listen"):
        listener = listen(0.001, sample)
        assert done.wait(10)
        listener.stop()
    records = [r for r in caplog.records if r.name == "livekit.listen"]
    name = listener.name
    assert [(r.getMessage(), r.exc_info is not None) for r in records] == [
        (f"listen({name}): sample(0) raised; the loop goes on", True),
        (
            f"{name}: the same error again, repeat 1 (latest: sample(1): ValueError: bad value)",
            False,
        ),
        (
            f"{name}: the same error again, repeat 2 (latest: sample(2): ValueError: bad value)",
            False,
        ),
        (f"listen({name}): sample(3) raised; the loop goes on", True),
        (f"{name}: the same error again, repeat 1 (latest: sample(4): KeyError: 'node')", False),
    ]
    # Each run ended at a count already logged, so nothing more was said.
    assert isinstance(records[3].exc_info[1], KeyError)  # type: ignore[index]


def test_errors_still_going_when_the_listener_stops_get_their_final_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = listen_module.Failures("listen-x", "sample", out=listen_module.LogCount())
    with caplog.at_level(logging.WARNING, logger="livekit.listen"):
        for i in range(4):
            try:
                raise ConnectionError("no node")
            except ConnectionError as error:
                failures.failed(i, error)
        failures.stopped()
        failures.stopped()  # nothing more to say
    assert [r.getMessage() for r in caplog.records][-2:] == [
        "listen-x: the same error again, repeat 2 (latest: sample(2): ConnectionError: no node)",
        "listen-x: the same error came back 3 times in all; then the listener stopped",
    ]


def test_in_a_live_page_a_repeated_error_shows_one_traceback_and_one_count_line() -> None:
    """The live tutorial's case: a listener calls a node that is not there."""
    from livekit.kernel.book import Cell
    from livekit.kernel.session import KernelSession
    from tests.test_kernel_session import Page, run_session

    start = (
        "import livekit\n"
        "calls = []\n"
        "def sample(i):\n"
        "    calls.append(i)\n"
        "    if i < 30:\n"
        "        raise ConnectionError(f\"no node 'bad@vm' (try {i})\")\n"
        "listener = livekit.listen(0.01, sample)\n"
    )
    wait = "import time\nwhile len(calls) < 32:\n    time.sleep(0.01)\nlistener.stop()\n"

    async def test(session: KernelSession, page: Page) -> None:
        session.run([Cell(1, start), Cell(2, wait)])
        assert (await page.done(2))["status"] == "ok"
        outputs = [e["output"] for e in page.events if e["type"] == "output"]
        errors = "".join(o["text"] for o in outputs if o.get("name") == "stderr")
        assert errors.count("Traceback (most recent call last)") == 1
        assert "listen(listen-1): sample(0) raised; the loop goes on" in errors
        assert "no node 'bad@vm' (try 0)" in errors
        assert "(try 1)" not in errors
        shown = [o for o in outputs if o["output_type"] == "display_data"]
        updates = [o for o in outputs if o["output_type"] == "update_display_data"]
        assert len(shown) == 1  # one line, then updated in place
        display_id = shown[0]["transient"]["display_id"]
        assert shown[0]["data"]["text/plain"].startswith("listen-1: the same error again, ")
        assert updates
        assert {u["transient"]["display_id"] for u in updates} == {display_id}
        assert updates[-1]["data"]["text/plain"] == (
            "listen-1: the same error again, repeat 29 (latest: sample(29): ConnectionError: "
            "no node 'bad@vm' (try 29)); then sample(30) returned"
        )

    run_session(test)
