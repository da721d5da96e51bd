"""The kinds of output: each owns its MIME types, scripts and plugin; the rest loop over them."""

from __future__ import annotations

import json
import re

from myst_nb.core.render import MimeData

from livekit import _assets, mystnb
from livekit.outputs import _html, kinds, mermaid, vegalite


def test_there_is_one_kind_for_diagrams_and_one_for_charts() -> None:
    assert kinds() == (mermaid, vegalite)
    assert [kind.MIME_TYPES for kind in kinds()] == [
        ("text/vnd.mermaid",),
        ("application/vnd.vegalite.v6+json", "application/vnd.vegalite.v5+json"),
    ]


def test_each_kinds_page_script_draws_the_mime_types_its_module_names() -> None:
    for kind in kinds():
        script = _assets.read(kind.BOOT)
        declared = re.search(r"var MIME_TYPES = (\[.*?\]);", script)
        assert declared is not None, kind.BOOT
        assert tuple(json.loads(declared[1])) == kind.MIME_TYPES
        assert "page.register(" in script


def test_the_live_page_script_names_no_mime_type_of_a_kind() -> None:
    live = (_assets.STATIC / "livekit-live.js").read_text(encoding="utf-8")
    for kind in kinds():
        for mime in kind.MIME_TYPES:
            assert mime not in live


def test_every_page_script_of_a_kind_uses_the_shared_page_boot() -> None:
    boot = _assets.read(_html.PAGE_BOOT)
    assert "window.livekitPage = window.livekitPage ||" in boot
    for kind in kinds():
        script = _assets.read(kind.BOOT)
        assert "var page = window.livekitPage;" in script
        assert "function isDark" not in script  # the theme is followed in one place


def test_the_mystnb_plugin_takes_the_priorities_of_every_kind() -> None:
    expected = [o for kind in kinds() for o in kind.RenderPlugin.mime_priority_overrides]
    assert mystnb.RenderPlugin.mime_priority_overrides == expected
    assert ("html", "text/vnd.mermaid", 1) in expected
    assert ("singlehtml", "application/vnd.vegalite.v5+json", 2) in expected


def test_the_mystnb_plugin_hands_each_output_to_its_kind() -> None:
    diagram = MimeData(
        "text/vnd.mermaid",
        "graph TD\n  a --> b",
        output_metadata={"text/vnd.mermaid": {"caption": "a to b"}},
    )
    (figure,) = mystnb.RenderPlugin.handle_mime(None, diagram, False) or []
    assert figure.tagname == "figure"
    assert figure[0]["code"] == "graph TD\n  a --> b"
    assert figure[1].astext() == "a to b"
    chart = MimeData("application/vnd.vegalite.v6+json", json.dumps({"title": "Points"}))
    (raw,) = mystnb.RenderPlugin.handle_mime(None, chart, False) or []
    assert raw.astext() == vegalite.chart_html({"title": "Points"}, "Points")
    assert mystnb.RenderPlugin.handle_mime(None, MimeData("text/plain", "x"), False) is None


def test_both_kinds_build_their_figures_the_same_way() -> None:
    diagram = mermaid._figure_html("graph TD\n  a", "A <b>")
    chart = vegalite.chart_html({}, "A <b>")
    for block in (diagram, chart):
        assert block.endswith("\n<figcaption>A &lt;b&gt;</figcaption>\n</figure>")
        assert 'aria-label="A &lt;b&gt;"' in block
