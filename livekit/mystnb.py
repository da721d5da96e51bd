"""myst-nb MIME render plugins and livekit's Altair renderer.

myst-nb renders every MIME type of a cell's output while it parses a page,
then keeps the one its priority list prefers.  livekit registers (entry point
group ``myst_nb.mime_renderers``):

* :class:`MermaidRenderPlugin`: ``text/vnd.mermaid`` becomes a
  sphinxcontrib-mermaid node, drawn by the vendored mermaid;
* :class:`VegaLiteRenderPlugin`: Vega-Lite v5 and v6 JSON become a block that
  the vendored vega-embed draws, offline.

Altair's stock renderers do not fit the book: ``mimetype`` emits
``application/vnd.vegalite.v6.json`` (no ``+``), which nbformat rejects, and
``html`` loads vega from a CDN.  :func:`altair_renderer` (entry point
``altair.vegalite.v6.renderer``, name ``"livekit"``) emits the valid MIME
type instead; the book enables it, user notebooks keep their own choice.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any, ClassVar

from livekit import _assets, _display
from livekit.mermaid import MIME_TYPE as MERMAID_MIME_TYPE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from docutils import nodes

VEGALITE_V6 = "application/vnd.vegalite.v6+json"
VEGALITE_V5 = "application/vnd.vegalite.v5+json"
VEGALITE_MIME_TYPES = (VEGALITE_V6, VEGALITE_V5)

#: Set on the HTML element that holds a chart, for the page's script to find.
CHART_CLASS = "livekit-vega"

#: The global each vendored script defines, so a page runs each one once.
_GLOBALS = {_assets.VEGA: "vega", _assets.VEGA_LITE: "vegaLite", _assets.VEGA_EMBED: "vegaEmbed"}


class MermaidRenderPlugin:
    """Render ``text/vnd.mermaid`` outputs as sphinxcontrib-mermaid nodes."""

    # Prefer the diagram to any HTML or text form of the same output.
    mime_priority_overrides: ClassVar[Sequence[tuple[str, str, int | None]]] = [
        ("html", MERMAID_MIME_TYPE, 1),
        ("dirhtml", MERMAID_MIME_TYPE, 1),
        ("singlehtml", MERMAID_MIME_TYPE, 1),
    ]

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list[nodes.Element] | None:
        if data.mime_type != MERMAID_MIME_TYPE:
            return None
        from docutils import nodes
        from sphinxcontrib.mermaid import mermaid

        node = mermaid()
        node["code"] = data.string
        node["options"] = {}
        caption = _caption(data.output_metadata, MERMAID_MIME_TYPE)
        if not caption:
            return [node]
        figure = nodes.figure("", node, classes=["livekit-diagram"])
        figure += nodes.caption(caption, caption)
        return [figure]


class VegaLiteRenderPlugin:
    """Render Vega-Lite v5 and v6 JSON as an offline vega-embed block."""

    mime_priority_overrides: ClassVar[Sequence[tuple[str, str, int | None]]] = [
        (builder, mime, 2)
        for builder in ("html", "dirhtml", "singlehtml")
        for mime in VEGALITE_MIME_TYPES
    ]

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list[nodes.Element] | None:
        if data.mime_type not in VEGALITE_MIME_TYPES:
            return None
        from docutils import nodes

        spec = data.content if isinstance(data.content, dict) else json.loads(data.string)
        caption = _caption(data.output_metadata, data.mime_type) or chart_caption(spec)
        return [nodes.raw("", chart_html(spec, caption), format="html")]


def chart_html(spec: dict[str, Any], caption: str | None) -> str:
    """Return the HTML block that ``livekit-vega.js`` turns into a chart.

    The spec travels in a JSON ``<script>`` element, so no page script has to
    be generated per chart.

    Examples
    --------
    >>> print(chart_html({"mark": "point"}, "Points").replace("><", ">\\n<"))
    <figure class="livekit-chart">
    <div class="livekit-vega" role="img" aria-label="Points">
    <script type="application/json">{"mark": "point"}</script>
    </div>
    <figcaption>Points</figcaption>
    </figure>
    """
    payload = json.dumps(spec).replace("</", "<\\/")
    label = f' aria-label="{html.escape(caption)}"' if caption else ""
    figcaption = f"\n<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (
        '<figure class="livekit-chart">\n'
        f'<div class="{CHART_CLASS}" role="img"{label}>'
        f'<script type="application/json">{payload}</script></div>'
        f"{figcaption}\n</figure>"
    )


def chart_caption(spec: dict[str, Any]) -> str | None:
    """Return a caption for a chart from its description or title.

    Examples
    --------
    >>> chart_caption({"title": {"text": "Memory"}, "description": "RSS over time"})
    'RSS over time'
    >>> chart_caption({"title": "Memory"})
    'Memory'
    """
    for key in ("description", "title"):
        value = spec.get(key)
        if isinstance(value, dict):
            value = value.get("text")
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        if isinstance(value, str) and value.strip():
            return value
    return None


def vegalite_bundle(spec: dict[str, Any]) -> dict[str, Any]:
    """Return the MIME bundle for a Vega-Lite spec, as livekit displays it.

    The bundle holds the spec under its versioned MIME type (what the book
    draws) and a short ``text/plain``.  In Jupyter and VS Code, which draw
    Vega-Lite MIME only up to v5, it also holds ``text/html`` that draws the
    chart offline with the vendored vega, inlined in the first chart of each
    cell run (a page that has vega already skips running it again).

    Examples
    --------
    >>> bundle = vegalite_bundle({"$schema": "https://vega.github.io/schema/vega-lite/v6.json"})
    >>> sorted(bundle)
    ['application/vnd.vegalite.v6+json', 'text/plain']
    """
    mime = VEGALITE_V5 if "/v5" in str(spec.get("$schema", "")) else VEGALITE_V6
    caption = chart_caption(spec)
    bundle: dict[str, Any] = {
        mime: spec,
        "text/plain": f"<Vega-Lite chart{': ' + caption if caption else ''}>",
    }
    if _display.host() in {"jupyter", "vscode"}:
        scripts = ""
        if _display.library_due("vega"):
            scripts = "\n".join(
                _assets.inline_script(
                    f"if (window.{_GLOBALS[a]}) return;\n{_assets.read(a)}", hide_amd=True
                )
                for a in _assets.VEGA_STACK
            )
        boot = _assets.inline_script(_assets.read(_assets.VEGA_BOOT))
        bundle["text/html"] = f"{chart_html(spec, caption)}\n{scripts}\n{boot}"
    return bundle


def altair_renderer(spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    """Altair renderer ``"livekit"``: valid Vega-Lite MIME, drawn offline.

    Enable it with ``altair.renderers.enable("livekit")``; the book does so
    for every page.

    Examples
    --------
    >>> import altair as alt
    >>> with alt.renderers.enable("livekit"):
    ...     bundle = alt.Chart().mark_point()._repr_mimebundle_()
    >>> "application/vnd.vegalite.v6+json" in bundle
    True
    """
    return vegalite_bundle(spec)


def _caption(metadata: dict[str, Any], mime_type: str) -> str | None:
    value = (metadata.get(mime_type) or {}).get("caption")
    return value if isinstance(value, str) and value else None
