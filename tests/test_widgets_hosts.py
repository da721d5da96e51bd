"""How a live widget shows itself: anywidget in Jupyter, a static bundle in the book."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import IPython.display
import pytest

from livekit import VegaLite, _display
from livekit.widgets import Text, _live
from livekit.widgets._live import WIDGET_JS, LiveWidget, _anywidget_class

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SPEC = {"title": "Points", "mark": "point"}


@pytest.fixture(autouse=True)
def no_book_widgets_left() -> Iterator[None]:
    yield
    _live._book_widgets.clear()


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    calls: list[tuple[Any, dict[str, Any]]] = []

    class Handle:
        display_id = "d1"

    def display(value: Any, **kwargs: Any) -> Handle:
        calls.append((value, kwargs))
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(
        IPython.display, "update_display", lambda value, **kw: calls.append((value, kw))
    )
    return calls


def host(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(_display, "host", lambda: name)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    monkeypatch.setattr(
        _anywidget_class(WIDGET_JS), "send", lambda _self, msg, buffers=None: messages.append(msg)
    )
    return messages


@pytest.fixture
def plot() -> Iterator[VegaLite]:
    widget = VegaLite(SPEC)
    yield widget
    widget.close()


def custom(model: Any, content: dict[str, Any]) -> None:
    """Deliver a message from the front end, as the kernel's comm does."""
    model._handle_msg(
        {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
    )


def test_in_the_book_a_chart_is_a_static_vegalite_bundle_never_a_widget_view(
    monkeypatch: pytest.MonkeyPatch, shown: list[Any], plot: VegaLite
) -> None:
    host(monkeypatch, "book")
    plot.push({"x": 1})
    plot._ipython_display_()
    ((bundle, kwargs),) = shown
    assert kwargs == {"raw": True, "display_id": True}
    assert WIDGET_VIEW not in bundle
    assert bundle["application/vnd.vegalite.v6+json"]["datasets"] == {"livekit": [{"x": 1}]}
    assert bundle["text/plain"] == "<Vega-Lite chart: Points>"


def test_in_the_book_a_chart_shows_the_data_it_had_when_its_cell_ended(
    monkeypatch: pytest.MonkeyPatch, shown: list[Any], plot: VegaLite
) -> None:
    host(monkeypatch, "book")
    plot._ipython_display_()
    plot.push({"x": 2})
    _live._after_cell()  # the end of the cell that showed it
    bundle, kwargs = shown[-1]
    assert kwargs == {"raw": True, "display_id": "d1"}
    assert bundle["application/vnd.vegalite.v6+json"]["datasets"] == {"livekit": [{"x": 2}]}
    plot.push({"x": 3})
    _live._after_cell()  # a later cell: that output stays as it was
    assert len(shown) == 2


def test_in_the_book_a_text_input_is_static_and_disabled(
    monkeypatch: pytest.MonkeyPatch, shown: list[Any]
) -> None:
    host(monkeypatch, "book")
    Text("Node <name>", default='a"b')._ipython_display_()
    ((bundle, _),) = shown
    assert bundle == {
        "text/html": '<label class="livekit-input"><span>Node &lt;name&gt;</span> '
        '<input type="text" value="a&quot;b" disabled></label>',
        "text/plain": 'Node <name>: a"b',
    }


def test_in_jupyter_a_chart_is_one_anywidget_running_livekit_widget_js(
    monkeypatch: pytest.MonkeyPatch, shown: list[Any], sent: list[Any], plot: VegaLite
) -> None:
    host(monkeypatch, "jupyter")
    plot._ipython_display_()
    plot._ipython_display_()
    (model, _), (again, _) = shown
    assert model is again
    assert model._esm == WIDGET_JS.read_text(encoding="utf-8")
    assert model.kind == "vegalite"
    assert plot.connections == 1


def test_in_jupyter_the_comm_carries_the_protocol_both_ways(
    monkeypatch: pytest.MonkeyPatch, shown: list[Any], sent: list[Any], plot: VegaLite
) -> None:
    host(monkeypatch, "jupyter")
    plot._ipython_display_()
    ((model, _),) = shown
    plot.push({"x": 1})
    assert sent == []
    custom(model, {"type": "ready"})
    assert [m["type"] for m in sent] == ["replay"]
    assert sent[0]["datasets"] == {"livekit": [{"x": 1}]}
    custom(model, {"type": "ack", "seq": 1})
    plot.push({"x": 2})
    assert plot.flush()
    assert sent[-1] == {
        "type": "push",
        "dataset": "livekit",
        "rows": [{"x": 2}],
        "window": 2,
        "seq": 2,
    }


def test_in_a_terminal_a_chart_prints_its_repr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], plot: VegaLite
) -> None:
    host(monkeypatch, "terminal")
    plot._ipython_display_()
    assert capsys.readouterr().out == "<VegaLite 'Points': 0 points>\n"


class Gauge(LiveWidget):
    """A custom widget: one number, drawn by a front-end module of its own."""

    kind = "gauge"
    esm = "export default { render({ model, el }) { model.send({ type: 'ready' }); } };"

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def set(self, value: int) -> None:
        with self._lock:
            self.value = value
            self.changed()

    def _replay(self) -> dict[str, Any]:
        return {"type": "replay", "kind": self.kind, "value": self.value}


def test_a_custom_widget_runs_its_own_module_in_jupyter(
    monkeypatch: pytest.MonkeyPatch, shown: list[Any], sent: list[Any]
) -> None:
    host(monkeypatch, "jupyter")
    gauge = Gauge()
    gauge._ipython_display_()
    ((model, _),) = shown
    assert model._esm == Gauge.esm
    assert model.kind == "gauge"
    gauge.close()


def test_a_custom_widgets_changes_are_coalesced_into_its_latest_state() -> None:
    gauge = Gauge()
    messages: list[dict[str, Any]] = []
    connection = gauge.attach(messages.append)
    connection.handle({"type": "ready"})
    for value in range(1, 50):
        gauge.set(value)
    assert messages == [{"type": "replay", "kind": "gauge", "value": 0, "seq": 1}]
    connection.handle({"type": "ack", "seq": 1})
    assert gauge.flush()
    assert messages[-1] == {"type": "replay", "kind": "gauge", "value": 49, "seq": 2}
    gauge.close()
