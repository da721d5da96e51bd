"""A live chart with no points yet, in a built book: from disk, and served live.

The book is ``tests/widgets_book``: the tutorial's memory chart (a repeated
line chart, four categories) made without data, and two cells that a served
page runs only when asked (two points, then a clear).  Before its first
point a chart shows its empty state, "No data yet", and the browser logs no
warning: Vega warned "Infinite extent for field ..." for each empty field
and drew a lone ``0.000000`` tick.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from livekit.kernel.server import BookServer
from livekit.widgets.vegalite import NO_DATA
from tests.conftest import build_book

pytestmark = pytest.mark.browser

BOOK = Path(__file__).resolve().parent / "widgets_book"


@pytest.fixture(scope="module")
def widgets_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("widgets-book") / "html"
    result = build_book(BOOK, out)
    if result.returncode != 0:
        pytest.fail(f"the test book did not build:\n{result.stdout}\n{result.stderr[-6000:]}")
    return out


@pytest.fixture
def server(widgets_book: Path) -> Iterator[BookServer]:
    server = BookServer(widgets_book, BOOK, port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def watch_console(page: Any) -> list[str]:
    """Collect the page's warnings and errors as they come."""
    seen: list[str] = []

    def on_console(message: Any) -> None:
        if message.type not in {"warning", "error"}:
            return
        # livekit serve has no favicon yet: its 404 is not this test's concern.
        if message.location.get("url", "").endswith("/favicon.ico"):
            return
        seen.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.append(f"pageerror: {error}"))
    return seen


def chart_text(chart: Any) -> list[str]:
    return [t for t in chart.locator("svg text").all_text_contents() if t.strip()]


def axis_labels(chart: Any) -> list[str]:
    return chart.locator("svg .role-axis-label text").all_text_contents()


def code_cell(page: Any, nth: int) -> Any:
    """The page's ``nth`` code cell, counting from 0."""
    return page.locator(".cell:has(> .livekit-cell-ref)").nth(nth)


def test_an_empty_chart_in_the_book_says_no_data_yet_without_warnings(
    browser: Any, widgets_book: Path
) -> None:
    page = browser.new_page()
    seen = watch_console(page)
    try:
        page.goto((widgets_book / "empty.html").as_uri())
        chart = page.locator(".livekit-vega[data-livekit-drawn='true']")
        chart.wait_for()
        page.wait_for_timeout(300)  # any late warning of the first render
        text = chart_text(chart)
        assert NO_DATA in text
        assert "Memory" in text
        assert "Memory usage (MB)" in text
        assert axis_labels(chart) == []  # no made-up numbers, no lone 0.000000
        assert seen == []
    finally:
        page.close()


def test_an_empty_live_chart_says_no_data_yet_until_its_first_point(
    browser: Any, server: BookServer
) -> None:
    page = browser.new_page()
    seen = watch_console(page)
    try:
        page.goto(server.url.replace("/?", "/empty.html?"))
        page.wait_for_selector(".livekit-live-bar")
        page.click(".livekit-live-run")
        chart = code_cell(page, 0).locator(".livekit-live-widget")
        chart.locator(f"svg text:text-is('{NO_DATA}')").wait_for(timeout=60_000)
        page.wait_for_function("window.livekitLive.kernel === 'idle'")
        assert axis_labels(chart) == []

        code_cell(page, 1).locator(".livekit-cell-run").click()
        chart.locator("svg .role-axis-label text").first.wait_for()
        assert NO_DATA not in chart_text(chart)
        assert chart.locator("svg .mark-line path").count() == 4  # one line per category

        code_cell(page, 2).locator(".livekit-cell-run").click()
        chart.locator(f"svg text:text-is('{NO_DATA}')").wait_for()
        assert axis_labels(chart) == []
        page.wait_for_timeout(300)
        assert seen == []
    finally:
        page.close()
