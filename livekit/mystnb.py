"""myst-nb MIME render plugins and livekit's Altair renderer.

myst-nb renders every MIME type of a cell's output while it parses a page,
then keeps the one its priority list prefers.  Each kind of output
(:mod:`livekit.outputs`) has its own plugin; :class:`RenderPlugin`
(entry point group ``myst_nb.mime_renderers``) hands each output to the
plugin of its kind, so a new kind needs no new entry point:

* ``text/vnd.mermaid`` becomes a sphinxcontrib-mermaid node, drawn by the
  vendored mermaid (:class:`livekit.outputs.mermaid.RenderPlugin`);
* Vega-Lite v5 and v6 JSON become a block that the vendored vega-embed
  draws, offline (:class:`livekit.outputs.vegalite.RenderPlugin`).

The names this module had before the kinds had a home of their own
(``MermaidRenderPlugin``, ``vegalite_bundle``, ...) are kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

# Callers reach the front-end check as livekit.mystnb._display, as before.
from livekit import _display  # noqa: F401
from livekit.outputs import kinds
from livekit.outputs.mermaid import RenderPlugin as MermaidRenderPlugin
from livekit.outputs.vegalite import (
    CHART_CLASS,
    VEGALITE_MIME_TYPES,
    VEGALITE_V5,
    VEGALITE_V6,
    altair_renderer,
    chart_caption,
    chart_html,
    vegalite_bundle,
)
from livekit.outputs.vegalite import RenderPlugin as VegaLiteRenderPlugin

if TYPE_CHECKING:
    from collections.abc import Sequence

    from docutils import nodes

__all__ = [
    "CHART_CLASS",
    "VEGALITE_MIME_TYPES",
    "VEGALITE_V5",
    "VEGALITE_V6",
    "MermaidRenderPlugin",
    "RenderPlugin",
    "VegaLiteRenderPlugin",
    "altair_renderer",
    "chart_caption",
    "chart_html",
    "vegalite_bundle",
]


class RenderPlugin:
    """Render every kind's outputs: each goes to the plugin of its kind."""

    mime_priority_overrides: ClassVar[Sequence[tuple[str, str, int | None]]] = [
        override for kind in kinds() for override in kind.RenderPlugin.mime_priority_overrides
    ]

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list[nodes.Element] | None:
        for kind in kinds():
            if data.mime_type in kind.MIME_TYPES:
                result: list[nodes.Element] | None = kind.RenderPlugin.handle_mime(
                    renderer, data, inline
                )
                return result
        return None
