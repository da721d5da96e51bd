"""Which notebook cell made a widget or listener, so that a re-run can replace it."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest

from livekit import _display
from livekit.widgets._cell import Cell, current_cell


def fake_shell(metadata: dict[str, Any] | None, count: int) -> SimpleNamespace:
    parent = {"metadata": metadata} if metadata is not None else {}
    kernel = SimpleNamespace(get_parent=lambda channel="shell": parent)
    return SimpleNamespace(kernel=kernel, execution_count=count)


def test_outside_ipython_there_is_no_cell() -> None:
    assert current_cell(sys._getframe()) is None


def test_the_front_ends_cell_id_names_the_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_display, "_ipython", lambda: fake_shell({"cellId": "abc-123"}, 7))
    assert current_cell(sys._getframe()) == Cell("cell:abc-123", 7)


def test_without_a_cell_id_the_cells_code_file_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_display, "_ipython", lambda: fake_shell(None, 3))
    # ipykernel compiles each cell from a file named after its source.
    namespace: dict[str, Any] = {"current_cell": current_cell, "sys": sys}
    code = compile("cell = current_cell(sys._getframe())", "ipykernel_1/123.py", "exec")
    exec(code, namespace)  # noqa: S102 - runs a cell as ipykernel does
    assert namespace["cell"] == Cell("file:ipykernel_1/123.py", 3)
