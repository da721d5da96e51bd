"""The Mermaid value, as :mod:`livekit.outputs.mermaid` defines it.

Kept so that ``from livekit.mermaid import Mermaid`` goes on working.
"""

from __future__ import annotations

# Callers reach the front-end check as livekit.mermaid._display, as before.
from livekit import _display  # noqa: F401
from livekit.outputs.mermaid import (
    MIME_TYPE,
    SAVE_HINT,
    TERMINAL_ENV,
    Mermaid,
    terminal_form,
)

__all__ = ["MIME_TYPE", "SAVE_HINT", "TERMINAL_ENV", "Mermaid", "terminal_form"]
