"""Vega-Lite charts, static and live: everything about showing one.

* the MIME types, :data:`MIME_TYPES` (v6 and v5);
* the bundle for each front end, :func:`vegalite_bundle`: JupyterLab and VS
  Code draw Vega-Lite MIME only up to v5, so there the chart also travels as
  HTML that draws it with the vendored vega (:data:`HTML_HOSTS`);
* the figure HTML, :func:`chart_html`, that ``livekit-vega.js`` draws;
* the vendored vega, vega-lite and vega-embed (``VENDORED``);
* the myst-nb plugin, :class:`RenderPlugin`, and the Altair renderer
  ``"livekit"``, :func:`altair_renderer`.

Altair's stock renderers do not fit the book: ``mimetype`` emits
``application/vnd.vegalite.v6.json`` (no ``+``), which nbformat rejects, and
``html`` loads vega from a CDN.  :func:`altair_renderer` (entry point
``altair.vegalite.v6.renderer``, name ``"livekit"``) emits the valid MIME
type instead; the book enables it, user notebooks keep their own choice.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from livekit import _assets, _display
from livekit.outputs import _html

if TYPE_CHECKING:
    from collections.abc import Sequence

    from docutils import nodes

VEGALITE_V6 = "application/vnd.vegalite.v6+json"
VEGALITE_V5 = "application/vnd.vegalite.v5+json"
#: The types a chart's bundle holds, the first preferred.
MIME_TYPES = (VEGALITE_V6, VEGALITE_V5)
VEGALITE_MIME_TYPES = MIME_TYPES

#: The front ends that get the chart as HTML too (they draw only v5 MIME).
HTML_HOSTS = frozenset({"jupyter", "vscode"})

#: Set on the HTML element that holds a chart, for the page's script to find.
CHART_CLASS = "livekit-vega"

VEGA = _assets.Asset("vega", "6.4.0", "build/vega.min.js")
VEGA_LITE = _assets.Asset("vega-lite", "6.5.0", "build/vega-lite.min.js")
VEGA_EMBED = _assets.Asset("vega-embed", "7.3.0", "build/vega-embed.min.js")
#: Load order matters: vega-embed needs vega and vega-lite as globals.
VENDORED = (VEGA, VEGA_LITE, VEGA_EMBED)
#: livekit's own script that draws every chart block of a page.
BOOT = _assets.Asset("", "", "livekit-vega.js")

#: The global each vendored script defines, so a page runs each one once.
_GLOBALS = {VEGA: "vega", VEGA_LITE: "vegaLite", VEGA_EMBED: "vegaEmbed"}


class RenderPlugin:
    """myst-nb: render Vega-Lite v5 and v6 JSON as an offline vega-embed block."""

    mime_priority_overrides: ClassVar[Sequence[tuple[str, str, int | None]]] = [
        (builder, mime, 2) for builder in _html.BUILDERS for mime in MIME_TYPES
    ]

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list[nodes.Element] | None:
        if data.mime_type not in MIME_TYPES:
            return None
        from docutils import nodes

        spec = data.content if isinstance(data.content, dict) else json.loads(data.string)
        caption = _html.caption_of(data.output_metadata, data.mime_type) or chart_caption(spec)
        return [nodes.raw("", chart_html(spec, caption), format="html")]


def drawn_on(doctree: Any) -> bool:
    """Return True if a page's doctree holds a chart (its scripts go on the page).

    Examples
    --------
    >>> from docutils import nodes
    >>> drawn_on(nodes.section("", nodes.raw("", chart_html({}, None), format="html")))
    True
    >>> drawn_on(nodes.section("", nodes.paragraph("", "text")))
    False
    """
    from docutils import nodes

    return any(CHART_CLASS in node.astext() for node in doctree.findall(nodes.raw))


def live_scripts() -> list[str]:
    """Return the vendored scripts a live page asks for, in load order.

    Examples
    --------
    >>> [len(script) > 50_000 for script in live_scripts()]
    [True, True, True]
    """
    return [_assets.read(asset) for asset in VENDORED]


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
    body = (
        f'<div class="{CHART_CLASS}" role="img"{_html.aria_label(caption)}>'
        f'<script type="application/json">{payload}</script></div>'
    )
    return _html.figure("livekit-chart", body, caption)


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
    if _display.host() in HTML_HOSTS:
        scripts = ""
        if _display.library_due("vega"):
            scripts = "\n".join(
                _assets.inline_script(
                    f"if (window.{_GLOBALS[a]}) return;\n{_assets.read(a)}", hide_amd=True
                )
                for a in VENDORED
            )
        boot = _html.boot_scripts(BOOT)
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
