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
