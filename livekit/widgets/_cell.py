"""Which notebook cell is running, so that a re-run can replace what it made.

Kino stops a cell's old listener and keeps what the reader typed into its
inputs when the cell runs again; Livebook knows its cells.  In Jupyter the
front end names the cell in the execute request's metadata (``cellId``:
JupyterLab, Notebook 7, VS Code); without it, the cell's code object is
compiled from a file name that ipykernel derives from the cell's source,
which is the same for a re-run of an unchanged cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import FrameType

from livekit import _display


@dataclass(frozen=True)
class Cell:
    """Where a widget or listener was made: a cell, and which run of it."""

    #: Stable across re-runs of the same cell.
    key: str
    #: Different for each run (IPython's execution count).
    run: int


def current_cell(frame: FrameType | None) -> Cell | None:
    """Return the notebook cell running ``frame``, or None outside IPython.

    A plain script has no cells: there, every call is its own.
    """
    shell = _display._ipython()
    if shell is None:
        return None
    run = int(getattr(shell, "execution_count", 0) or 0)
    cell_id = _cell_id(shell)
    if cell_id is not None:
        return Cell(f"cell:{cell_id}", run)
    # The cell's own code runs as a "<module>" frame; functions it defines
    # and calls sit inside it.
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            return Cell(f"file:{frame.f_code.co_filename}", run)
        frame = frame.f_back
    return None


def _cell_id(shell: object) -> str | None:
    kernel = getattr(shell, "kernel", None)
    get_parent = getattr(kernel, "get_parent", None)
    if get_parent is None:
        return None
    try:
        parent = get_parent("shell")
    except TypeError:  # ipykernel < 6.0 takes no channel
        parent = get_parent()
    metadata = (parent or {}).get("metadata") or {}
    value = metadata.get("cellId") or metadata.get("cell_id")
    return str(value) if value else None
