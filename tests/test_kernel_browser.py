"""The served book in chromium: Run live, a streaming chart, an input, errors,
interrupt, restart, closing the tab, and nothing left running afterwards.

The book is ``tests/kernel_book`` (an input, a cell reading it, a live chart
fed by a listener, a cell that raises, a cell that runs long when served),
built with livekit's own configuration.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from livekit.kernel.server import BookServer
from tests.conftest import build_book

pytestmark = pytest.mark.browser

BOOK = Path(__file__).resolve().parent / "kernel_book"

HINT = (
    "Outputs as built. To make this page live, run livekit serve in the book's project"
    " (tox -e serve if you built it with tox)."
)


@pytest.fixture(scope="module")
def kernel_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kernel-book") / "html"
    result = build_book(BOOK, out)
    if result.returncode != 0:
        pytest.fail(f"the test book did not build:\n{result.stdout}\n{result.stderr[-6000:]}")
    return out


@pytest.fixture
def server(kernel_book: Path) -> Iterator[BookServer]:
    server = BookServer(kernel_book, BOOK, port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()
    # Stopping the server leaves no thread and no kernel process behind.
    assert [t.name for t in threading.enumerate() if t.name == "livekit-serve"] == []
    _, alive = psutil.wait_procs(kernels(), timeout=5)
    assert alive == []


def kernels() -> list[psutil.Process]:
    """The kernel processes this test process started (not chromium's)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def open_page(page: Any, server: BookServer, name: str = "live") -> None:
    """Open the printed address, pointed at a page, as the reader does (once)."""
    page.goto(server.url.replace("/?", f"/{name}.html?"))
    page.wait_for_url(f"**/{name}.html")
    page.wait_for_load_state()


def cell(page: Any, index: int) -> Any:
    return page.locator(f".cell:has(> .livekit-cell-ref[data-livekit-cell='{index}'])")


def test_a_page_opened_from_disk_keeps_its_snapshot_and_says_how_to_go_live(
    browser: Any, kernel_book: Path
) -> None:
    page = browser.new_page()
    try:
        page.goto((kernel_book / "live.html").as_uri())
        page.wait_for_selector(".livekit-live-hint")
        assert page.locator(".livekit-live-hint").all_inner_texts() == [HINT]
        assert page.locator(".livekit-live-bar").count() == 0
        # The build-time outputs are still there.
        assert "hello world" in cell(page, 2).inner_text()
        assert page.locator(".livekit-cell-ref").count() == 6
    finally:
        page.close()


def test_the_served_page_goes_live(browser: Any, server: BookServer) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        open_page(page, server)
        assert page.url.endswith("/live.html")  # the token is gone from the address
        page.wait_for_selector(".livekit-live-bar")
        assert page.locator(".livekit-live-hint").count() == 0

        # Run live: the whole page runs; the chart streams.
        page.click(".livekit-live-run")
        page.wait_for_function("window.livekitLive.stats.points > 0", timeout=60_000)
        seen = page.evaluate("window.livekitLive.stats.points")
        page.wait_for_function(f"window.livekitLive.stats.points > {seen}", timeout=2_000)
        assert cell(page, 4).locator(".livekit-live-widget svg.marks").count() == 1

        # A cell that raises shows its error, and the run goes on to the long cell.
        cell(page, 7).locator(".livekit-live-error").wait_for()
        assert "ZeroDivisionError: division by zero" in cell(page, 7).inner_text()
        page.wait_for_function("window.livekitLive.kernel === 'busy'")
        page.locator(".cell.livekit-running:has(> [data-livekit-cell='9'])").wait_for()

        # Stop interrupts it; the kernel goes on.
        page.click(".livekit-live-stop")
        cell(page, 9).locator(".livekit-live-error").wait_for()
        assert "KeyboardInterrupt" in cell(page, 9).inner_text()
        page.wait_for_function("window.livekitLive.kernel === 'idle'")

        # Typing in the input re-runs the cell that reads it; the input keeps focus.
        field = cell(page, 1).locator(".livekit-input input")
        field.fill("Ada")
        cell(page, 2).locator("text=hello Ada").wait_for()
        assert page.evaluate("document.activeElement.value") == "Ada"
        # Only the cells that read the input ran again, not the long one.
        assert cell(page, 9).locator("[data-livekit-stream]").count() == 0
        assert "KeyboardInterrupt" in cell(page, 9).locator(".cell_output").inner_text()

        # Restart: a fresh kernel; running a cell runs the ones before it first.
        page.click(".livekit-live-restart")
        page.wait_for_function("window.livekitLive.kernel === 'idle'")
        cell(page, 2).locator(".livekit-cell-run").click()
        cell(page, 2).locator("text=hello world").wait_for()

        # Closing the tab ends the page's session and its kernel.
        sessions = server.app.app.state.sessions  # type: ignore[attr-defined]
        assert len(sessions.live) == 1
    finally:
        page.close()
    deadline_ok = _wait(lambda: not sessions.live)
    assert deadline_ok
    assert errors == []


def _wait(condition: Any, timeout: float = 10.0) -> bool:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_typing_fast_the_cell_runs_with_what_the_box_finally_shows(
    browser: Any, server: BookServer
) -> None:
    page = browser.new_page()
    try:
        open_page(page, server)
        page.wait_for_selector(".livekit-live-bar")
        cell(page, 2).locator(".livekit-cell-run").click()  # runs the input's cell first
        cell(page, 2).locator("text=hello world").wait_for(timeout=60_000)
        field = cell(page, 1).locator(".livekit-input input")
        for typed in ["zz", "abcdefghij"]:
            field.click()
            field.press("End")
            # A key every 30 ms: faster than a cell runs, so re-runs overlap.
            field.press_sequentially(typed, delay=30)
            shown = field.input_value()
            assert shown.endswith(typed)  # the box kept every key
            # The cell that reads the input ends up printing what the box shows.
            cell(page, 2).locator(f"text=hello {shown}").wait_for(timeout=60_000)
            page.wait_for_function("window.livekitLive.kernel === 'idle'")
            assert cell(page, 2).locator(".cell_output").inner_text().strip() == f"hello {shown}"
            assert field.input_value() == shown
    finally:
        page.close()


def handed_over(request: Any) -> bool:
    """Whether a failed request is the token's page cut short by its own hand-over.

    The page that answers the printed address opens the book at once
    (``location.replace``), which may abort the last bytes of its own
    document: that is the hand-over, not a failure.
    """
    return request.failure == "net::ERR_ABORTED" and "token=" in request.url


def test_a_served_page_has_livekit_s_icon_and_no_console_error(
    browser: Any, server: BookServer
) -> None:
    page = browser.new_page()
    errors: list[str] = []
    failed: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("requestfailed", lambda r: None if handed_over(r) else failed.append(f"failed {r.url}"))
    try:
        open_page(page, server)
        page.wait_for_selector(".livekit-live-bar")
        icon = page.locator("link[rel='icon']")
        assert icon.get_attribute("href") == "_static/livekit-favicon.svg"
        # What a browser asks for when a page names no icon.
        origin = server.url.split("/?")[0]
        answer = page.request.get(f"{origin}/favicon.ico")
        assert answer.status == 200
        assert answer.headers["content-type"] == "image/svg+xml"
        answer = page.request.get(f"{origin}/_static/livekit-favicon.svg")
        assert answer.status == 200
        page.wait_for_timeout(500)  # late requests (the icon) and their errors
    finally:
        page.close()
    assert errors == []
    assert failed == []


def test_another_server_the_browser_visits_gets_the_cookie_but_cannot_run_a_cell(
    browser: Any, server: BookServer
) -> None:
    from tests.test_kernel_server import start_attacker

    page = browser.new_page()
    attacker, port = start_attacker(server.port, server.token)
    try:
        open_page(page, server)
        page.wait_for_selector(".livekit-live-bar")
        # The reader then opens another local server's page (run by
        # another user): chromium sends it livekit's cookie, ports aside.
        page.goto(f"http://127.0.0.1:{port}/")
        out, _ = attacker.communicate(timeout=120)
        found = json.loads(out)
        assert "livekit-token-" in found["stolen"]
        assert found["socket"] == 403
        assert found["socket_empty_key"] == 403
        assert found["socket_token_as_key"] == 403
        assert found["token_again_without_cookie"] == 403
        assert found["key_given_again"] is False
        sessions = server.app.app.state.sessions  # type: ignore[attr-defined]
        assert sessions.live == set()
        # The reader's own tab still goes live: its key is in its origin's storage.
        page.go_back()
        page.wait_for_selector(".livekit-live-bar")
        cell(page, 2).locator(".livekit-cell-run").click()
        cell(page, 2).locator("text=hello world").wait_for(timeout=60_000)
    finally:
        page.close()
        if attacker.poll() is None:
            attacker.kill()
            attacker.communicate()
