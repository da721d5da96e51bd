"""Inputs a reader types into: the widgets behind :func:`livekit.shorts.read_text`."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from livekit.widgets._live import Connection, LiveWidget, Message


class Text(LiveWidget):
    """A one-line text input whose value lives in Python.

    Parameters
    ----------
    label
        What the input asks for, shown beside it.
    default
        The value before the reader types anything.

    Examples
    --------
    >>> node = Text("Node", default="demo@localhost")
    >>> node.value
    'demo@localhost'
    >>> node
    <Text 'Node': 'demo@localhost'>
    """

    kind = "text"

    def __init__(self, label: str, *, default: str = "") -> None:
        if not isinstance(label, str):
            raise TypeError(f"expected label to be a str, got {type(label).__name__}: {label!r}")
        if not isinstance(default, str):
            raise TypeError(
                f"expected default to be a str, got {type(default).__name__}: {default!r}"
            )
        super().__init__()
        self.label = label
        self._value = default

    def __repr__(self) -> str:
        return f"<Text {self.label!r}: {self.value!r}>"

    @property
    def value(self) -> str:
        """The text in the input now (the default until the reader types)."""
        with self._lock:
            return self._value

    def _replay(self) -> Message:
        return {"type": "replay", "kind": self.kind, "label": self.label, "value": self._value}

    def _on_message(self, connection: Connection, msg: Mapping[str, Any]) -> None:
        if msg.get("type") == "input" and isinstance(msg.get("value"), str):
            self._value = msg["value"]

    def _static_bundle(self) -> dict[str, Any]:
        # The book has no kernel to type into: show the default, disabled.
        return {
            "text/html": (
                '<label class="livekit-input">'
                f"<span>{html.escape(self.label)}</span> "
                f'<input type="text" value="{html.escape(self._value)}" disabled>'
                "</label>"
            ),
            "text/plain": f"{self.label}: {self._value}",
        }
