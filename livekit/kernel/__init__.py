"""``livekit serve``: the built book, served locally, with its cells live.

The server serves the built HTML book on 127.0.0.1 and runs the cells of the
book's own pages, read from disk, in one IPython kernel per open page.  The
page asks to run a cell by its page and index; it never sends code.  The
how-to page "Run the book live" shows its use; ``docs/design/kernel.md``
explains the design.

The web stack (Starlette, uvicorn) is the optional ``serve`` extra, so the
names here load on first use and ``import livekit.kernel`` works without it.

Examples
--------
>>> from livekit.kernel import Book
>>> Book.__name__
'Book'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from livekit.kernel.app import create_app
    from livekit.kernel.book import Book, Cell, UnknownCellError, UnknownPageError
    from livekit.kernel.server import BookServer
    from livekit.kernel.session import KernelSession

__all__ = [
    "Book",
    "BookServer",
    "Cell",
    "KernelSession",
    "UnknownCellError",
    "UnknownPageError",
    "create_app",
]

_HOMES = {
    "Book": "book",
    "BookServer": "server",
    "Cell": "book",
    "KernelSession": "session",
    "UnknownCellError": "book",
    "UnknownPageError": "book",
    "create_app": "app",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'livekit.kernel' has no attribute {name!r}")
    return getattr(importlib.import_module(f"livekit.kernel.{_HOMES[name]}"), name)
