"""livekit.shorts: read_text as Kino.Shorts has it, and the one-line re-exports."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import IPython.display
import pytest

import livekit
from livekit import _display, shorts
from livekit.widgets import Text
from livekit.widgets._cell import Cell


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    calls: list[Any] = []
    monkeypatch.setattr(IPython.display, "display", lambda value, **_kw: calls.append(value))
    yield calls
    shorts._inputs.clear()


def in_cell(monkeypatch: pytest.MonkeyPatch, host: str, run: int) -> None:
    monkeypatch.setattr(_display, "host", lambda: host)
    monkeypatch.setattr(shorts, "current_cell", lambda _frame: Cell("cell:node", run))


def test_read_text_returns_the_default_in_a_script(shown: list[Any]) -> None:
    assert shorts.read_text("Node", default="demo@localhost") == "demo@localhost"
    assert shown == []


def test_read_text_returns_what_the_reader_typed_when_the_cell_runs_again(
    monkeypatch: pytest.MonkeyPatch, shown: list[Any]
) -> None:
    in_cell(monkeypatch, "jupyter", 1)
    assert shorts.read_text("Node", default="demo@localhost") == "demo@localhost"
    (widget,) = shown
    assert isinstance(widget, Text)
    widget.attach(lambda _msg: None).handle({"type": "input", "value": "other@host"})

    in_cell(monkeypatch, "jupyter", 2)
    assert shorts.read_text("Node", default="demo@localhost") == "other@host"
    assert shown == [widget, widget]  # the same input, shown again
    assert shorts.read_text("Cookie", default="secret") == "secret"


def test_read_text_in_the_book_shows_a_fresh_input_with_the_default(
    monkeypatch: pytest.MonkeyPatch, shown: list[Any]
) -> None:
    in_cell(monkeypatch, "book", 1)
    assert shorts.read_text("Node", default="a") == "a"
    assert shorts.read_text("Node", default="b") == "b"
    assert shown[0] is not shown[1]


def test_read_text_rejects_a_label_or_default_that_is_not_a_string() -> None:
    with pytest.raises(TypeError, match="expected label to be a str, got int: 1"):
        shorts.read_text(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected default to be a str, got NoneType: None"):
        shorts.read_text("Node", default=None)  # type: ignore[arg-type]


def test_star_import_gives_read_text_and_livekits_one_liners() -> None:
    names: dict[str, Any] = {}
    exec("from livekit.shorts import *", names)  # noqa: S102 - the import under test
    assert names["read_text"] is shorts.read_text
    assert names["VegaLite"] is livekit.VegaLite
    assert names["listen"] is livekit.listen
    assert names["memory"] is livekit.memory
    # The rest only where the module that defines them has them.
    for name, module in shorts._REEXPORTS.items():
        assert (name in names) == hasattr(importlib.import_module(module), name)


def test_a_name_shorts_does_not_have_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = shorts.nope
