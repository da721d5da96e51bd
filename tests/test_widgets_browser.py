"""livekit-widget.js in a real browser, driven by a real VegaLite over a fake model.

The page imports the module as ``livekit serve`` will, with a model object
of its own (no anywidget); Python relays messages both ways, as a kernel
does.  The page has no vega, so the module must ask for it (``assets``).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from livekit import VegaLite
from livekit.widgets import Text
from livekit.widgets._live import WIDGET_JS
from livekit.widgets.vegalite import NO_DATA
from tests.conftest import CHROMIUM_ARGS, chromium_path, require

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<div id="widget"></div>
<script type="module">
import widget from "./livekit-widget.js";
const handlers = new Set();
window.sent = [];
const model = {
  on(event, callback) { if (event === "msg:custom") handlers.add(callback); },
  off(event, callback) { handlers.delete(callback); },
  send(msg) { window.sent.push(msg); },
};
window.deliver = (msg) => { for (const callback of [...handlers]) callback(msg); };
window.cleanup = widget.render({ model, el: document.getElementById("widget") });
</script>
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "index.html").write_text(PAGE, encoding="utf-8")
    shutil.copy(WIDGET_JS, tmp_path / "livekit-widget.js")
    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-http")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page(site: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    chromium = chromium_path()
    require(chromium is not None, "Debian's chromium is not installed (apt-get install chromium)")
    assert chromium is not None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # Warnings too: Vega warns about an empty chart's fields, for one.
            page.on(
                "console",
                lambda m: errors.append(m.text) if m.type in {"error", "warning"} else None,
            )
            page.goto(site)
            yield page
            assert errors == []
        finally:
            browser.close()


def relay(page: Any, plot: VegaLite | Text) -> Callable[[Callable[[], bool]], None]:
    """Connect the page to the widget; return a pump that runs until a condition."""
    outbox: list[dict[str, Any]] = []
    connection = plot.attach(outbox.append)

    def pump_until(done: Callable[[], bool]) -> None:
        for _ in range(400):
            for msg in page.evaluate("window.sent.splice(0)"):
                connection.handle(msg)
            plot.flush(timeout=0)
            while outbox:
                page.evaluate("msg => window.deliver(msg)", outbox.pop(0))
            if done():
                return
            page.wait_for_timeout(25)
        raise AssertionError("the page did not reach the expected state")

    return pump_until


def marks(page: Any) -> int:
    return int(
        page.evaluate("document.querySelectorAll('#widget .mark-symbol.role-mark path').length")
    )


def test_the_module_draws_pushes_and_drops_points_outside_the_window(page: Any) -> None:
    plot = VegaLite(
        {
            "title": "Pushed points",
            "mark": "point",
            "encoding": {
                "x": {"field": "i", "type": "quantitative"},
                "y": {"field": "v", "type": "quantitative"},
            },
        }
    )
    plot.push_many([{"i": i, "v": i * i} for i in range(4)])  # before the page connects
    pump = relay(page, plot)
    pump(lambda: marks(page) == 4)
    assert page.evaluate("typeof window.vegaEmbed") == "function"  # loaded via "assets"

    for i in range(4, 10):
        plot.push({"i": i, "v": i * i}, window=3)
    pump(lambda: marks(page) == 3)
    # Drawn by changesets into the first view, never embedded again.
    assert page.evaluate("document.querySelectorAll('#widget .vega-embed').length") == 1

    plot.clear()
    pump(lambda: marks(page) == 0)
    plot.push({"i": 1, "v": 1})
    pump(lambda: marks(page) == 1)
    page.evaluate("window.cleanup()")
    plot.close()


def test_the_module_draws_a_text_input_and_sends_what_the_reader_types(page: Any) -> None:
    node = Text("Node", default="demo@localhost")
    pump = relay(page, node)
    pump(lambda: page.locator("#widget input").count() == 1)
    assert page.locator("#widget label").inner_text().strip() == "Node"
    assert page.locator("#widget input").input_value() == "demo@localhost"
    page.locator("#widget input").fill("other@localhost")
    pump(lambda: node.value == "other@localhost")
    page.evaluate("window.cleanup()")
    node.close()


def test_a_repeated_altair_chart_draws_the_points_pushed_into_its_inner_dataset(
    page: Any,
) -> None:
    import altair as alt

    layer = alt.repeat("layer")
    points = (
        alt.Chart()
        .mark_point()
        .encode(x="iter:Q", y=alt.Y(layer, type="quantitative"), color=alt.datum(layer))
    )
    plot = VegaLite(points.repeat(layer=["total", "private"]).properties(title="Memory"))
    pump = relay(page, plot)
    pump(lambda: page.locator("#widget .vega-embed").count() == 1)
    for i in range(3):
        plot.push({"iter": i, "total": 10 + i, "private": 5 + i}, window=1000)
    pump(lambda: marks(page) == 6)  # one symbol per point and category
    page.evaluate("window.cleanup()")
    plot.close()


def texts(page: Any) -> list[str]:
    return [t for t in page.locator("#widget svg text").all_text_contents() if t.strip()]


def test_an_empty_chart_says_no_data_yet_until_a_point_arrives_and_after_a_clear(
    page: Any,
) -> None:
    plot = VegaLite(
        {
            "title": "Pushed points",
            "mark": "point",
            "encoding": {
                "x": {"field": "i", "type": "quantitative"},
                "y": {"field": "v", "type": "quantitative"},
            },
        }
    )
    page.evaluate(
        "window.drawn = [];"
        "document.addEventListener('livekit-widget:drawn', (e) => window.drawn.push(e.detail))"
    )
    pump = relay(page, plot)
    pump(lambda: NO_DATA in texts(page))
    assert sorted(texts(page)) == sorted(["Pushed points", NO_DATA, "i", "v"])  # no tick labels
    assert marks(page) == 0

    plot.push({"i": 1, "v": 10})
    plot.push({"i": 2, "v": 20})
    pump(lambda: marks(page) == 2)
    assert NO_DATA not in texts(page)
    # The page hears what was drawn: each dataset's newest row.
    assert page.evaluate("window.drawn.at(-1)") == {"livekit": {"i": 2, "v": 20}}

    plot.clear()
    pump(lambda: NO_DATA in texts(page))
    assert marks(page) == 0
    plot.push({"i": 3, "v": 30})
    pump(lambda: marks(page) == 1)
    page.evaluate("window.cleanup()")
    plot.close()
