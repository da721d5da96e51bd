"""Open every built page from disk in chromium: everything draws, offline.

Each Mermaid block and each chart must become an <svg>; the page must log no
console error and make no request that leaves the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.docs]


def book_pages(book: Path) -> list[Path]:
    skip = {"genindex.html", "search.html", "py-modindex.html"}
    return sorted(
        p for p in book.rglob("*.html") if p.name not in skip and "_static" not in p.parts
    )


def visit(browser: Any, url: str) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page()
    errors: list[str] = []
    remote: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "request",
        lambda r: (
            remote.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None
        ),
    )
    page.goto(url)
    page.wait_for_load_state("load")
    return page, errors, remote


def wait_until_drawn(page: Any) -> dict[str, int]:
    page.wait_for_function(
        """() => {
            const blocks = [...document.querySelectorAll('pre.mermaid')];
            const charts = [...document.querySelectorAll('.livekit-vega')];
            const drawn = (el) => el.querySelector('svg');
            return blocks.every(drawn) && charts.every(drawn);
        }""",
        timeout=30_000,
    )
    return page.evaluate(
        """() => ({
            mermaid: document.querySelectorAll('pre.mermaid').length,
            mermaid_svg: document.querySelectorAll('pre.mermaid svg').length,
            charts: document.querySelectorAll('.livekit-vega').length,
            chart_svg: document.querySelectorAll('.livekit-vega svg.marks').length,
        })"""
    )


def test_every_page_draws_its_diagrams_and_charts_offline(built_book: Path, browser: Any) -> None:
    drawn = {"mermaid": 0, "charts": 0}
    for path in book_pages(built_book):
        page, errors, remote = visit(browser, path.as_uri())
        try:
            counts = wait_until_drawn(page)
        finally:
            page.close()
        assert counts["mermaid_svg"] == counts["mermaid"], path.name
        assert counts["chart_svg"] == counts["charts"], path.name
        assert errors == [], f"{path.name}: {errors}"
        assert remote == [], f"{path.name} requested {remote}"
        drawn["mermaid"] += counts["mermaid"]
        drawn["charts"] += counts["charts"]
    # The first-look page alone has a diagram and a chart.
    assert drawn["mermaid"] >= 1
    assert drawn["charts"] >= 1


def test_diagrams_offer_their_source_and_svg(built_book: Path, browser: Any) -> None:
    page, errors, _ = visit(browser, (built_book / "first-look.html").as_uri())
    try:
        wait_until_drawn(page)
        buttons = page.locator(".livekit-diagram-toolbar button").all_text_contents()
        source = page.locator("pre.mermaid").first.get_attribute("data-livekit-source")
        with page.expect_download() as download:
            page.locator(".livekit-diagram-toolbar button", has_text="Download SVG").first.click()
        svg = Path(download.value.path()).read_text(encoding="utf-8")
    finally:
        page.close()
    assert buttons[:2] == ["Copy source", "Download SVG"]
    assert source is not None
    assert source.startswith("sequenceDiagram")
    assert svg.startswith("<svg")
    assert "ping" in svg
    assert errors == []


def test_diagrams_redraw_in_dark_mode(built_book: Path, browser: Any) -> None:
    page, errors, _ = visit(browser, (built_book / "first-look.html").as_uri())
    try:
        wait_until_drawn(page)
        light = page.locator("pre.mermaid svg").first.inner_html()
        page.evaluate("document.documentElement.setAttribute('data-theme', 'dark')")
        page.wait_for_function(
            """(before) => {
                const svg = document.querySelector('pre.mermaid svg');
                return svg && svg.innerHTML !== before;
            }""",
            arg=light,
            timeout=10_000,
        )
    finally:
        page.close()
    assert errors == []


def test_a_saved_html_diagram_draws_from_disk(tmp_path: Path, browser: Any) -> None:
    from livekit import Mermaid

    path = Mermaid("sequenceDiagram\n  a->>b: ping", caption="ping").save(tmp_path / "t.html")
    page, errors, remote = visit(browser, path.as_uri())
    try:
        counts = wait_until_drawn(page)
    finally:
        page.close()
    assert counts["mermaid_svg"] == 1
    assert errors == []
    assert remote == []
