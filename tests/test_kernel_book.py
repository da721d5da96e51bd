"""Every input of the book, edited on a served page: the re-run never fails.

The pages are read with :class:`livekit.kernel.Book`, the reader the server
uses.  Each page that makes an input runs live in a real kernel behind a
real :class:`~livekit.kernel.BookServer`, and then each of its inputs is
edited once: the cells the server runs again must all finish.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from livekit.kernel.app import SKIP_LIVE
from livekit.kernel.book import Book, Cell, UnknownPageError, dependents
from livekit.kernel.server import BookServer
from tests.test_kernel_server import kernels, login

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

#: The functions that show an input (livekit.shorts).
INPUT_MAKERS = frozenset({"read_text"})

#: Seconds a page gets to run, or to run again (the tutorial builds a dict
#: of a million users on a loaded machine).
PATIENCE = 300


def makes_input(cell: Cell) -> bool:
    """Whether the cell calls an input maker with a label, as ``read_text("Node")``."""
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            label = node.args[0] if node.args else None
            if name in INPUT_MAKERS and isinstance(label, ast.Constant):
                return True
    return False


def pages_with_inputs() -> list[str]:
    book = Book(DOCS)
    found = []
    for path in sorted(DOCS.rglob("*.md")):
        page = path.relative_to(DOCS).with_suffix("").as_posix()
        try:
            cells = book.cells(page)
        except UnknownPageError:
            continue  # plain Markdown: nothing runs
        if any(makes_input(cell) for cell in cells):
            found.append(page)
    return found


def test_the_book_has_inputs_to_edit() -> None:
    # The test below covers these pages: it must not pass by finding none.
    assert "tutorial" in pages_with_inputs()


class Page:
    """One live page over a real socket: its events, and waiting for them."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def wait_for(self, predicate: Any) -> dict[str, Any]:
        while True:
            event = json.loads(self.ws.recv(timeout=PATIENCE))
            self.events.append(event)
            if predicate(event):
                return event

    def done(self, cells: set[int]) -> dict[int, str]:
        """Wait until every cell of ``cells`` finished; return each one's status."""
        status: dict[int, str] = {}
        while set(status) < cells:
            event = self.wait_for(lambda e: e["type"] in {"cell_done", "error"})
            assert event["type"] == "cell_done", event
            if event["cell"] in cells:
                status[event["cell"]] = event["status"]
        return status


@pytest.mark.parametrize("page", pages_with_inputs())
def test_editing_any_input_of_a_page_re_runs_its_readers_without_an_error(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from websockets.sync.client import connect

    # The page's kernel makes itself a node: give it a home of its own.
    monkeypatch.setenv("LIVEKIT_HOME", str(tmp_path / "home"))
    built = tmp_path / "html"
    built.mkdir()
    cells = Book(DOCS).cells(page)
    implicit = {c.index for c in cells if SKIP_LIVE not in c.tags}
    raises = {c.index for c in cells if c.raises}
    server = BookServer(built, DOCS, port=0)
    server.start()
    try:
        browser = login(server.url)
        with connect(
            f"ws://127.0.0.1:{server.port}/_livekit/live?page={page}&key={browser.key}",
            additional_headers={
                "Origin": f"http://127.0.0.1:{server.port}",
                "Cookie": browser.cookie,
            },
            open_timeout=60,
        ) as ws:
            live = Page(ws)
            live.send({"op": "run"})
            first = live.done(implicit)
            assert {i: s for i, s in first.items() if s != "ok" and i not in raises} == {}
            # livekit's inputs among the widgets (an anywidget has helper models too).
            inputs = [
                e
                for e in live.events
                if e["type"] == "comm_open" and e["data"].get("state", {}).get("kind") == "text"
            ]
            assert {e["cell"] for e in inputs} == {c.index for c in cells if makes_input(c)}
            for opened in inputs:
                comm = opened["comm_id"]
                live.send({"op": "comm", "comm_id": comm, "data": custom({"type": "ready"})})
                replay = live.wait_for(
                    lambda e, comm=comm: (
                        e["type"] == "comm_msg"
                        and e["comm_id"] == comm
                        and e["data"]["content"]["type"] == "replay"
                    )
                )
                value = replay["data"]["content"]["value"]
                again = set(dependents(cells, opened["cell"], ran=implicit)) & implicit
                # The edit: the reader types the value the box shows, again.
                typed = custom({"type": "input", "value": value})
                live.send({"op": "comm", "comm_id": comm, "data": typed})
                status = live.done(again)
                failed = {i: s for i, s in status.items() if s != "ok" and i not in raises}
                assert failed == {}, [e for e in live.events if e["type"] == "output"][-3:]
    finally:
        server.stop()
    assert kernels() == []


def custom(content: dict[str, Any]) -> dict[str, Any]:
    return {"method": "custom", "content": content}
