"""Open every built page from disk in chromium: everything draws, offline.

Each Mermaid block and each chart must become an <svg>; the page must log no
console error and make no request that leaves the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import open_chromium

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
            // Drawn, and fitted to the page (the toolbar comes first).
            const drawn = (el) => el.querySelector('svg') && el.closest('.livekit-diagram-frame');
            return blocks.every(drawn) && charts.every((el) => el.querySelector('svg'));
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


@pytest.fixture(scope="module")
def every_page(built_book: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every built page, opened once from disk and drawn: what the tests read of it.

    One visit a page for both tests below (drawing the whole book takes
    most of a minute); the browser is closed before the first test runs.
    """
    seen: list[dict[str, Any]] = []
    with open_chromium(tmp_path_factory) as browser:
        for path in book_pages(built_book):
            page, errors, remote = visit(browser, path.as_uri())
            try:
                counts = wait_until_drawn(page)
                diagrams = page.evaluate(DIAGRAM_TEXT_SIZES) if counts["mermaid"] else []
            finally:
                page.close()
            seen.append(
                {
                    "path": path,
                    "name": path.relative_to(built_book).as_posix(),
                    "counts": counts,
                    "diagrams": diagrams,
                    "errors": errors,
                    "remote": remote,
                }
            )
    return seen


def test_every_page_draws_its_diagrams_and_charts_offline(every_page: list[dict[str, Any]]) -> None:
    drawn = {"mermaid": 0, "charts": 0}
    for seen in every_page:
        path, counts, errors, remote = seen["path"], seen["counts"], seen["errors"], seen["remote"]
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


# The rendered size of each text of each diagram: its font size times the
# scale the page draws the SVG at (foreignObject labels use their box's).
DIAGRAM_TEXT_SIZES = """() => [...document.querySelectorAll('pre.mermaid svg')].map((svg) => {
    let smallest = Infinity, text = '';
    const texts = svg.querySelectorAll(
        'text, foreignObject div, foreignObject span, foreignObject p');
    for (const t of texts) {
        if (!t.textContent.trim()) continue;
        const owner = t instanceof SVGElement ? t : t.closest('foreignObject');
        const m = owner.getScreenCTM();
        const px = parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
        if (px < smallest) { smallest = px; text = t.textContent.trim().slice(0, 40); }
    }
    const frame = svg.closest('.livekit-diagram-frame');
    const pre = svg.closest('pre');
    return {
        smallest, text,
        scrolls: pre.scrollWidth > pre.clientWidth + 1,
        says_so: !!frame && frame.classList.contains('livekit-diagram-scrolls')
            && getComputedStyle(frame.querySelector('.livekit-diagram-note')).display !== 'none',
    };
})"""


def test_no_diagram_text_is_drawn_smaller_than_11_px(every_page: list[dict[str, Any]]) -> None:
    smallest: dict[str, float] = {}
    for seen in every_page:
        if seen["counts"]["mermaid"] == 0:
            continue
        name, diagrams, errors = seen["name"], seen["diagrams"], seen["errors"]
        for index, diagram in enumerate(diagrams):
            where = f"{name} diagram {index + 1} ({diagram['text']!r})"
            size = diagram["smallest"]
            assert size >= 10.99, f"{where}: text drawn at {size:.2f} px"  # 0.01: rounding
            # Scrolling is the last resort, and the page then says so.
            assert diagram["says_so"] == diagram["scrolls"], where
            smallest[where] = diagram["smallest"]
        assert errors == [], f"{name}: {errors}"
    # The interpreter's tree is drawn on both pages; the test saw it.
    assert any("tutorial.html" in where for where in smallest)
    assert any("trees.html" in where for where in smallest)


def test_a_tree_too_wide_for_the_column_spans_the_margin_legibly(
    built_book: Path, browser: Any
) -> None:
    page, errors, _ = visit(browser, (built_book / "tutorial.html").as_uri())
    try:
        wait_until_drawn(page)
        wide = page.evaluate(
            """() => [...document.querySelectorAll('.livekit-diagram-wide')].map((frame) => ({
                column: frame.closest('.cell_output, .output').getBoundingClientRect().width,
                frame: frame.getBoundingClientRect().width,
                right: frame.getBoundingClientRect().right,
                window: document.documentElement.clientWidth,
            }))"""
        )
    finally:
        page.close()
    # The whole interpreter's tree, at least, is wider than the column.
    assert wide, "no diagram on the tutorial is wider than its column"
    for frame in wide:
        assert frame["frame"] > frame["column"]
        assert frame["right"] <= frame["window"]
    assert errors == []


# Where each captioned diagram's figure ends against its drawing.
FIGURE_FIT = """() => [...document.querySelectorAll('figure.livekit-diagram')].map((figure) => {
    const box = (el) => el.getBoundingClientRect();
    const f = box(figure), s = box(figure.querySelector('svg'));
    const bar = box(figure.querySelector('.livekit-diagram-toolbar'));
    const caption = figure.querySelector('figcaption');
    // The caption's width on one line, up to the column's.
    const range = document.createRange();
    range.selectNodeContents(caption);
    caption.style.whiteSpace = 'nowrap';
    const text = Math.min(range.getBoundingClientRect().width, figure.parentElement.clientWidth);
    caption.style.whiteSpace = '';
    return {
        above: s.top - f.top,
        between: bar.top - s.bottom,
        below: f.bottom - box(caption).bottom,
        width: f.width,
        content: Math.max(Math.min(s.width, figure.querySelector('pre').clientWidth), text),
    };
})"""


def test_each_diagram_figure_fits_its_drawing(built_book: Path, browser: Any) -> None:
    seen = 0
    for name in ("first-look.html", "tutorial.html", "traces.html", "trees.html"):
        page, errors, _ = visit(browser, (built_book / name).as_uri())
        try:
            wait_until_drawn(page)
            figures = page.evaluate(FIGURE_FIT)
        finally:
            page.close()
        for index, fit in enumerate(figures):
            where = f"{name} figure {index + 1}: {fit}"
            # Mermaid's drawing has its own 8 px margin; the figure adds none.
            assert fit["above"] <= 1, where
            assert fit["between"] <= 4, where
            assert fit["below"] <= 1, where
            # As wide as the drawing or the caption, whichever is wider.
            assert fit["width"] <= fit["content"] + 2, where
            seen += 1
        assert errors == []
    assert seen >= 10
