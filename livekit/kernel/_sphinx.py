"""Build-time marks that let ``livekit-live.js`` find a page's cells.

Each code cell of a myst-nb page gets an empty, hidden element naming its
page and its cell index (myst-nb's, the same :class:`livekit.kernel.Book`
reads from the source), so the served page can ask the kernel for exactly
that cell, and the page script added to every page knows where outputs go.
"""

from __future__ import annotations

import html
from typing import Any

#: The class of the hidden element that names a cell's page and index.
CELL_REF_CLASS = "livekit-cell-ref"

#: The page script, added to every page of the book.
LIVE_JS = "livekit-live.js"


def cell_ref_html(page: str, cell: int) -> str:
    """Return the hidden element that marks a code cell.

    Examples
    --------
    >>> print(cell_ref_html("a/b", 3))
    <span class="livekit-cell-ref" data-livekit-page="a/b" data-livekit-cell="3" hidden></span>
    """
    return (
        f'<span class="{CELL_REF_CLASS}" data-livekit-page="{html.escape(page)}" '
        f'data-livekit-cell="{int(cell)}" hidden></span>'
    )


def mark_cells(app: Any, doctree: Any, docname: str) -> None:
    """Sphinx ``doctree-resolved`` handler: mark every code cell of the page."""
    from docutils import nodes

    for node in doctree.findall(nodes.container):
        if node.get("nb_element") == "cell_code" and isinstance(node.get("cell_index"), int):
            marker = nodes.raw("", cell_ref_html(docname, node["cell_index"]), format="html")
            node.insert(0, marker)
