"""VegaLite's window, replay and dataset semantics, through a fake client.

The fake client applies messages the way livekit-widget.js does (insert the
rows, keep the last ``window``), so each test checks both what Python holds
and what a browser following the protocol would hold.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import altair as alt
import pytest

from livekit import VegaLite
from livekit.widgets import _live
from livekit.widgets._live import LiveWidget
from livekit.widgets.vegalite import empty_state

CHART = alt.Chart(title="Memory").mark_line().encode(x="iter:Q", y="total:Q")


ACKERS: list[threading.Thread] = []


@pytest.fixture(autouse=True)
def acks_all_delivered() -> Iterator[None]:
    yield
    while ACKERS:
        ACKERS.pop().join()


class FakeClient:
    """A front end: records messages, applies them, acknowledges on demand."""

    def __init__(self, widget: LiveWidget, *, auto_ack: bool = True) -> None:
        self.messages: list[dict[str, Any]] = []
        self.datasets: dict[str, list[dict[str, Any]]] = {}
        self.auto_ack = auto_ack
        self.connection = widget.attach(self.receive)

    def receive(self, msg: dict[str, Any]) -> None:
        self.messages.append(msg)
        if msg["type"] == "replay":
            self.datasets = {name: list(rows) for name, rows in msg["datasets"].items()}
        elif msg["type"] == "clear":
            self.datasets[msg["dataset"]] = []
        elif msg["type"] == "push":
            rows = self.datasets.setdefault(msg["dataset"], []) + msg["rows"]
            self.datasets[msg["dataset"]] = rows[len(rows) - msg["window"] :]
        if self.auto_ack and "seq" in msg:
            # Acknowledge from another thread, as a browser's reply arrives.
            acker = threading.Thread(target=self.ack, args=(msg["seq"],), name="fake-ack")
            ACKERS.append(acker)
            acker.start()

    def ack(self, seq: int | None = None) -> None:
        self.connection.handle({"type": "ack", "seq": seq or self.messages[-1]["seq"]})

    def ready(self) -> None:
        self.connection.handle({"type": "ready"})

    def types(self) -> list[str]:
        return [m["type"] for m in self.messages]


@pytest.fixture
def no_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    # Unit tests wait on flush(), not on the clock: send as soon as acked.
    monkeypatch.setattr(_live, "MIN_INTERVAL", 0.0)


@pytest.fixture
def plot(no_stall: None) -> Iterator[VegaLite]:
    widget = VegaLite(CHART)
    yield widget
    widget.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("livekit-vegalite")]


def points(start: int, stop: int) -> list[dict[str, int]]:
    return [{"iter": i, "total": i * 10} for i in range(start, stop)]


def test_push_keeps_every_point_without_a_window(plot: VegaLite) -> None:
    for point in points(0, 3):
        plot.push(point)
    assert plot.data() == points(0, 3)


def test_push_drops_points_outside_window(plot: VegaLite) -> None:
    for point in points(0, 10):
        plot.push(point, window=4)
    assert plot.data() == points(6, 10)


def test_window_applies_after_each_push_as_in_kino(plot: VegaLite) -> None:
    plot.push_many(points(0, 5))
    plot.push({"iter": 5, "total": 50}, window=2)
    assert plot.data() == points(4, 6)
    plot.push({"iter": 6, "total": 60})
    assert plot.data() == points(4, 7)


def test_window_zero_keeps_nothing(plot: VegaLite) -> None:
    plot.push_many(points(0, 3), window=0)
    assert plot.data() == []


def test_push_copies_the_point(plot: VegaLite) -> None:
    point = {"iter": 1, "total": 1}
    plot.push(point)
    point["total"] = 99
    assert plot.data() == [{"iter": 1, "total": 1}]


def test_client_gets_nothing_before_it_says_ready(plot: VegaLite) -> None:
    client = FakeClient(plot)
    plot.push_many(points(0, 3))
    assert client.messages == []


def test_late_client_gets_a_replay_of_the_windowed_data(plot: VegaLite) -> None:
    plot.push_many(points(0, 10), window=3)
    client = FakeClient(plot, auto_ack=False)
    client.ready()
    assert client.messages == [
        {
            "type": "replay",
            "kind": "vegalite",
            "spec": client.messages[0]["spec"],
            "empty": empty_state(client.messages[0]["spec"]),
            "datasets": {"empty": points(7, 10)},
            "seq": 1,
        }
    ]
    spec = client.messages[0]["spec"]
    assert spec["data"] == {"name": "empty"}
    assert spec["datasets"] == {"empty": []}
    assert spec["title"] == "Memory"


def test_a_reloaded_client_says_ready_again_and_gets_everything(plot: VegaLite) -> None:
    client = FakeClient(plot)
    client.ready()
    plot.push_many(points(0, 4))
    assert plot.flush()
    client.datasets = {}  # the page reloaded
    client.ready()
    assert client.datasets == {"empty": points(0, 4)}


def test_pushes_reach_a_connected_client_as_changesets(plot: VegaLite) -> None:
    client = FakeClient(plot, auto_ack=False)
    client.ready()
    client.ack()
    plot.push({"iter": 0, "total": 0}, window=2)
    assert client.messages[-1] == {
        "type": "push",
        "dataset": "empty",
        "rows": points(0, 1),
        "window": 1,
        "seq": 2,
    }


def test_pushes_faster_than_the_client_are_coalesced_exactly(plot: VegaLite) -> None:
    client = FakeClient(plot, auto_ack=False)
    client.ready()
    for point in points(0, 100):
        plot.push(point, window=5)
    # The first pushes went out until IN_FLIGHT messages waited for their
    # ack; nothing more went out while none came.
    assert _live.IN_FLIGHT == 3
    assert client.types() == ["replay", "push", "push"]
    client.ack()
    assert client.types() == ["replay", "push", "push", "push"]
    assert client.messages[-1]["rows"] == points(95, 100)
    assert client.datasets == {"empty": points(95, 100)}


def test_coalesced_pushes_after_a_clear_send_clear_then_rows(plot: VegaLite) -> None:
    client = FakeClient(plot, auto_ack=False)
    plot.push_many(points(0, 3))
    client.ready()
    plot.clear()
    plot.push_many(points(10, 12))
    client.ack()
    assert client.types() == ["replay", "clear", "push"]
    assert client.datasets == {"empty": points(10, 12)}


def test_a_client_that_never_acks_still_gets_updates_after_the_stall(plot: VegaLite) -> None:
    client = FakeClient(plot, auto_ack=False)
    client.ready()
    plot.push_many(points(0, 3))
    assert plot.flush(timeout=5 * _live.STALL)
    assert client.datasets == {"empty": points(0, 3)}


def test_concurrent_pushes_end_with_the_same_data_on_both_sides(plot: VegaLite) -> None:
    client = FakeClient(plot)
    client.ready()
    start = threading.Barrier(4)

    def pusher(k: int) -> None:
        start.wait()
        for i in range(500):
            plot.push({"iter": k * 1000 + i, "total": i}, window=50)

    threads = [threading.Thread(target=pusher, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert plot.flush(timeout=5)
    assert len(plot.data()) == 50
    assert client.datasets == {"empty": plot.data()}


def test_clear_empties_a_named_dataset_only(no_stall: None) -> None:
    spec = {
        "layer": [
            {"mark": "line", "data": {"name": "cpu"}},
            {"mark": "point", "data": {"name": "memory"}},
        ]
    }
    plot = VegaLite(spec)
    plot.push({"x": 1}, dataset="cpu")
    plot.push({"x": 2}, dataset="memory")
    plot.clear(dataset="cpu")
    assert plot.data("cpu") == []
    assert plot.data("memory") == [{"x": 2}]
    plot.close()


def test_each_dataset_keeps_its_own_window_for_the_client(no_stall: None) -> None:
    spec = {
        "layer": [{"mark": "line", "data": {"name": "a"}}, {"mark": "line", "data": {"name": "b"}}]
    }
    plot = VegaLite(spec)
    client = FakeClient(plot)
    client.ready()
    plot.push_many([{"x": i} for i in range(5)], dataset="a", window=2)
    plot.push_many([{"x": i} for i in range(5)], dataset="b")
    assert plot.flush()
    assert client.datasets["a"] == [{"x": 3}, {"x": 4}]
    assert client.datasets["b"] == [{"x": i} for i in range(5)]
    plot.close()


def test_pushes_go_to_the_one_dataset_a_repeated_chart_names_inside() -> None:
    line = (
        alt.Chart()
        .mark_line()
        .encode(x="iter:Q", y=alt.Y(alt.repeat("layer"), type="quantitative"))
    )
    plot = VegaLite(line.repeat(layer=["total", "private"]))
    plot.push({"iter": 0, "total": 1, "private": 2})
    assert plot.data("empty") == [{"iter": 0, "total": 1, "private": 2}]
    assert "data" not in plot.spec
    assert plot.spec["spec"]["data"] == {"name": "empty"}


def test_inline_values_become_the_starting_data() -> None:
    plot = VegaLite({"data": {"values": [{"x": 1}]}, "mark": "point"})
    plot.push({"x": 2})
    assert plot.data() == [{"x": 1}, {"x": 2}]


def test_the_book_gets_a_static_spec_with_the_data() -> None:
    plot = VegaLite(CHART)
    plot.push_many(points(0, 2))
    bundle = plot._static_bundle()
    spec = bundle["application/vnd.vegalite.v6+json"]
    assert spec["datasets"] == {"empty": points(0, 2)}
    assert spec["data"] == {"name": "empty"}
    assert "application/vnd.jupyter.widget-view+json" not in bundle


def test_the_book_shows_a_chart_without_points_in_its_empty_state() -> None:
    plot = VegaLite(CHART)
    spec = plot._static_bundle()["application/vnd.vegalite.v6+json"]
    assert spec == empty_state(plot._replay()["spec"])
    assert spec["title"] == {"text": "Memory", "subtitle": "No data yet"}
    plot.push({"iter": 0, "total": 0})
    assert plot._static_bundle()["application/vnd.vegalite.v6+json"]["title"] == "Memory"


def test_detached_client_gets_nothing_more(plot: VegaLite) -> None:
    client = FakeClient(plot, auto_ack=False)
    client.ready()
    client.connection.detach()
    client.ack(1)
    plot.push({"iter": 1, "total": 1})
    assert client.types() == ["replay"]
    assert plot.connections == 0


def test_assets_request_gets_the_vendored_vega_stack(plot: VegaLite) -> None:
    client = FakeClient(plot, auto_ack=False)
    client.connection.handle({"type": "assets"})
    (msg,) = client.messages
    assert msg["type"] == "assets"
    assert len(msg["scripts"]) == 3
    assert "vegaEmbed" in msg["scripts"][2]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p: p.push([1, 2]), TypeError, "as a mapping such as a dict, got list: [1, 2]"),
        (lambda p: p.push_many([{"x": 1}, 3]), TypeError, "got int: 3"),
        (lambda p: p.push({"x": 1}, window=-1), ValueError, "None or an int >= 0, got -1"),
        (lambda p: p.clear(dataset="nope"), ValueError, "dataset 'nope'; this chart has 'empty'"),
        (lambda p: p.push({"x": 1}, dataset="nope"), ValueError, "unknown dataset 'nope'"),
        (lambda p: p.push_many({"x": 1}), TypeError, "expected an iterable of points, got dict"),
    ],
)  # fmt: skip
def test_bad_input_raises_naming_the_value(call: Any, error: type, message: str) -> None:
    plot = VegaLite(CHART)
    with pytest.raises(error) as info:
        call(plot)
    assert message in str(info.value)
    assert plot.data() == []


def test_a_chart_that_is_neither_altair_nor_a_dict_is_refused() -> None:
    with pytest.raises(
        TypeError, match="expected an Altair chart or a Vega-Lite spec dict, got str: 'line'"
    ):
        VegaLite("line")


def test_repr_says_how_many_points() -> None:
    plot = VegaLite(CHART)
    plot.push({"iter": 0, "total": 0})
    assert repr(plot) == "<VegaLite 'Memory': 1 point>"


def test_a_stalled_client_costs_one_wake_up_timer_however_many_pushes(plot: VegaLite) -> None:
    # Every push into a connection waiting for its ack asks to be woken
    # at the same moment (its last send + STALL), computed from two clock
    # readings: the nanoseconds that arithmetic moves it by start no new
    # timer.  (Each replaced timer was a thread that close() did not wait
    # for: one outlived the widget.)
    started: list[str] = []

    def first_call(frame: object, event: str, arg: object) -> None:
        sys.setprofile(None)
        started.append(threading.current_thread().name)

    client = FakeClient(plot, auto_ack=False)
    client.ready()
    threading.setprofile(first_call)
    try:
        for point in points(0, 200):
            plot.push(point, window=5)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    plot.close()
    assert started.count("livekit-vegalite-flush") == 1
