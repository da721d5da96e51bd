"""One-liners for notebooks: ``from livekit.shorts import *``.

The counterpart of ``import Kino.Shorts``: short names over livekit's real
modules, nothing more.  :func:`read_text` is defined here; the rest
(``render_seq_trace``, ``render_sup_tree``, ...) are livekit's own functions,
re-exported when the modules that define them are present.
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import Any

from livekit import _display
from livekit.widgets._cell import current_cell
from livekit.widgets.inputs import Text

# name -> module that defines it; re-exported lazily, only if it exists there.
_REEXPORTS = {
    "render_seq_trace": "livekit",
    "seq_trace": "livekit",
    "render_sup_tree": "livekit",
    "render_app_tree": "livekit",
    "processes": "livekit.runtime",
    "process_info": "livekit.runtime",
    "memory": "livekit.runtime",
    "threads": "livekit.runtime",
    "VegaLite": "livekit.widgets",
    "listen": "livekit.widgets",
}

_inputs: dict[tuple[str, str], Text] = {}
_inputs_lock = threading.Lock()


def read_text(label: str, *, default: str = "") -> str:
    """Show a text input and return what it holds.

    The first run of a cell returns ``default``; running the cell again
    returns what the reader typed meanwhile, as ``Kino.Shorts.read_text``
    does.  In the book, the input is shown disabled with its default (there
    is no reader to type); in a script, ``default`` is returned.

    Parameters
    ----------
    label
        What to ask for, shown beside the input.
    default
        The value before anything is typed.

    Examples
    --------
    >>> read_text("Node", default="demo@localhost")
    'demo@localhost'
    >>> read_text("Node", default=42)
    Traceback (most recent call last):
    ...
    TypeError: expected default to be a str, got int: 42
    """
    if not isinstance(label, str):
        raise TypeError(f"expected label to be a str, got {type(label).__name__}: {label!r}")
    if not isinstance(default, str):
        raise TypeError(f"expected default to be a str, got {type(default).__name__}: {default!r}")
    where = _display.host()
    if where in {"terminal", "ipython"}:
        return default
    cell = current_cell(sys._getframe(1))
    key = (cell.key if cell is not None else "", label)
    with _inputs_lock:
        widget = _inputs.get(key) if where != "book" else None
        if widget is None:
            widget = Text(label, default=default)
            if where != "book":
                _inputs[key] = widget
    _display.show(widget)
    return widget.value


def __getattr__(name: str) -> Any:
    module = _REEXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'livekit.shorts' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise AttributeError(
            f"livekit.shorts.{name} needs {module}.{name}, which this livekit lacks"
        ) from None
    globals()[name] = value
    return value


def _available() -> list[str]:
    names = ["read_text"]
    for name, module in _REEXPORTS.items():
        try:
            if hasattr(importlib.import_module(module), name):
                names.append(name)
        except ImportError:
            continue
    return names


def __dir__() -> list[str]:
    return sorted({*globals(), *_available()})


# `from livekit.shorts import *` reads __all__: only names that exist now.
__all__ = _available()  # noqa: PLE0605 - computed on purpose, see above
