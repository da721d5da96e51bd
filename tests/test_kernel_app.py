"""The routes and the guard of ``livekit serve``, through Starlette's TestClient.

Sessions are fakes here (no kernel process): they record what they were
asked and answer with the events a kernel would send.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse

from livekit.kernel._security import exchange_page
from livekit.kernel.app import cookie_name, create_app
from livekit.kernel.book import Cell
from tests.conftest import MYSTNB_FRONT

TOKEN = "test-token-1234"  # noqa: S105 - a test token, not a secret
PORT = 8765
ORIGIN = f"http://127.0.0.1:{PORT}"

PAGE = (
    MYSTNB_FRONT
    + """# Live

```{code-cell} ipython3
name = "world"
```

Some text.

```{code-cell} ipython3
other = 1
```

```{code-cell} ipython3
greeting = "hello " + name
print(greeting)
```

```{code-cell} ipython3
:tags: [skip-live]
stop_everything()
```

```{code-cell} ipython3
print("last")
```
"""
)


class FakeSession:
    """A session that runs nothing: it reports each cell as run, at once."""

    def __init__(self, cwd: Path, emit: Any, log: list[Any]) -> None:
        self.cwd = cwd
        self.emit = emit
        self.log = log
        self.ran: set[int] = set()
        self.comms = {"comm-1": 1}

    async def start(self) -> None:
        self.log.append(("start", self.cwd.name))

    def run(self, cells: list[Cell]) -> None:
        self.log.append(("run", [cell.index for cell in cells]))
        for cell in cells:
            self.emit({"type": "cell_start", "cell": cell.index})
            self.emit({"type": "cell_done", "cell": cell.index, "status": "ok"})
            self.ran.add(cell.index)

    def send_comm(self, comm_id: str, data: dict[str, Any]) -> int | None:
        if comm_id not in self.comms:
            raise LookupError(f"no widget {comm_id!r} in this session")
        self.log.append(("comm", comm_id, data))
        return self.comms[comm_id]

    async def interrupt(self) -> None:
        self.log.append(("interrupt",))

    async def restart(self) -> None:
        self.log.append(("restart",))
        self.ran.clear()

    async def close(self) -> None:
        self.log.append(("close",))


@pytest.fixture
def book(tmp_path: Path) -> tuple[Path, Path]:
    source = tmp_path / "docs"
    (source / "howto").mkdir(parents=True)
    (source / "live.md").write_text(PAGE)
    (source / "howto" / "deep.md").write_text(PAGE)
    (source / "plain.md").write_text("# Just text\n")
    (tmp_path / "secret.md").write_text(PAGE)
    build = tmp_path / "html"
    build.mkdir()
    (build / "index.html").write_text("<h1>The book</h1>")
    (build / "live.html").write_text("<h1>Live</h1>")
    # What sphinx-build leaves beside the pages, for itself alone.
    (build / ".buildinfo").write_text("config: 0123\n")
    (build / ".doctrees").mkdir()
    (build / ".doctrees" / "live.doctree").write_bytes(b"\x80\x04pickle")
    (build / "_static").mkdir()
    (build / "_static" / ".hidden.js").write_text("x")
    return build, source


@pytest.fixture
def log() -> list[Any]:
    return []


@pytest.fixture
def app(book: tuple[Path, Path], log: list[Any]) -> Any:
    build, source = book
    return create_app(
        build,
        source,
        token=TOKEN,
        port=PORT,
        session_factory=lambda cwd, emit: FakeSession(cwd, emit, log),
        outbox_limit=64,
    )


@pytest.fixture
def client(app: Any) -> Any:
    with TestClient(app, base_url=ORIGIN) as client:
        login(client)
        yield client


@pytest.fixture
def stranger(app: Any) -> Any:
    with TestClient(app, base_url=ORIGIN) as client:
        yield client


def login(client: Any) -> str:
    """Open the printed address as a browser does; keep the cookie, return the live key."""
    response = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert response.status_code == 200, response.text
    match = re.search(r'localStorage\.setItem\("livekit-live-key", "([^"]+)"\)', response.text)
    assert match is not None, response.text
    client.live_key = match.group(1)
    return client.live_key


def live_url(client: Any, page: str = "live") -> str:
    """The live socket's address for ``page``, with the client's live key."""
    return f"ws://127.0.0.1:{PORT}/_livekit/live?page={page}&key={client.live_key}"


def denial(client: Any, url: str, **kwargs: Any) -> int:
    """Return the status with which a WebSocket handshake is refused."""
    with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect(url, **kwargs):
        pass
    return int(denied.value.status_code)


def receive_until(ws: Any, kind: str) -> list[dict[str, Any]]:
    seen = []
    while True:
        message = json.loads(ws.receive_text())
        seen.append(message)
        if message["type"] == kind:
            return seen


# -- The token and its cookie ----------------------------------------------------


def test_first_visit_with_the_token_sets_a_strict_httponly_cookie_and_drops_the_token(
    stranger: Any, app: Any
) -> None:
    response = stranger.get(f"/live.html?token={TOKEN}&x=1", follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    # The page keeps the live key and opens the same address without the token.
    assert response.text == exchange_page("/live.html?x=1", app.live_key)
    cookie = response.headers["set-cookie"]
    # The cookie is not the token: the token is in an address, kept in histories.
    assert cookie.startswith(f"{cookie_name(PORT)}={app.cookie};")
    assert TOKEN not in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie


def test_the_cookie_from_the_token_opens_the_book(stranger: Any) -> None:
    login(stranger)
    response = stranger.get("/")
    assert response.status_code == 200
    assert response.text == "<h1>The book</h1>"


def test_the_token_works_once(stranger: Any, app: Any) -> None:
    login(stranger)
    # A fresh browser (no cookie) with the same address is refused...
    with TestClient(app, base_url=ORIGIN) as fresh:
        response = fresh.get(f"/?token={TOKEN}", follow_redirects=False)
        assert response.status_code == 403
        assert response.text == (
            "403 Forbidden: this address worked once and was used: "
            "restart livekit serve for a new one\n"
        )
        assert "set-cookie" not in response.headers
        assert fresh.get("/index.html").status_code == 403
    # ...while the browser that used it is sent on, without the token (and
    # without the live key, which it keeps already).
    again = stranger.get(f"/live.html?token={TOKEN}&x=1", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == "/live.html?x=1"
    assert app.live_key not in again.text


def test_the_token_exchange_encodes_the_query_again(stranger: Any) -> None:
    # The decoded "a&token=x" must stay one value of next, not forge a token.
    response = stranger.get(f"/live.html?token={TOKEN}&next=a%26token%3Dx", follow_redirects=False)
    assert 'location.replace("/live.html?next=a%26token%3Dx")' in response.text


def test_a_request_without_token_or_cookie_is_forbidden(stranger: Any) -> None:
    response = stranger.get("/index.html")
    assert response.status_code == 403
    assert response.text == "403 Forbidden: no token: open the address that livekit serve printed\n"


def test_a_wrong_token_is_forbidden_and_sets_no_cookie(stranger: Any) -> None:
    response = stranger.get("/?token=guess", follow_redirects=False)
    assert response.status_code == 403
    assert response.text == "403 Forbidden: wrong token\n"
    assert "set-cookie" not in response.headers


def test_a_wrong_cookie_is_forbidden(stranger: Any, app: Any) -> None:
    stranger.cookies.set(cookie_name(PORT), app.cookie[:-1] + "X")
    assert stranger.get("/index.html").status_code == 403


def test_the_token_itself_is_not_a_cookie(stranger: Any) -> None:
    stranger.cookies.set(cookie_name(PORT), TOKEN)
    assert stranger.get("/index.html").status_code == 403


def test_the_cookie_of_a_server_on_another_port_is_forbidden(stranger: Any, app: Any) -> None:
    stranger.cookies.set(cookie_name(PORT + 1), app.cookie)
    assert stranger.get("/index.html").status_code == 403


# -- Host: DNS rebinding ----------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "127.0.0.2:8765", "LOCALHOST:8765"]
)
def test_loopback_host_names_with_this_port_are_allowed(client: Any, host: str) -> None:
    assert client.get("/index.html", headers={"host": host}).status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example:8765",  # DNS rebinding: the attacker's name, pointed at 127.0.0.1
        "attacker.example",
        "127.0.0.1:8766",
        "127.0.0.1",
        "10.0.0.1:8765",
        "localhost.attacker.example:8765",
        "",
        "[::1:8765",
    ],
)
def test_a_host_that_is_not_this_server_on_loopback_is_forbidden_even_with_the_cookie(
    client: Any, host: str
) -> None:
    response = client.get("/index.html", headers={"host": host})
    assert response.status_code == 403
    assert response.text == "403 Forbidden: Host is not this server on a loopback address\n"


def test_a_host_check_also_guards_the_token_exchange(stranger: Any) -> None:
    response = stranger.get(
        f"/?token={TOKEN}", headers={"host": "attacker.example:8765"}, follow_redirects=False
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


# -- Origin -----------------------------------------------------------------------


def test_a_request_from_this_origin_is_allowed(client: Any) -> None:
    assert client.get("/_livekit/status", headers={"origin": ORIGIN}).status_code == 200


@pytest.mark.parametrize(
    "origin",
    ["http://attacker.example", "http://127.0.0.1:8766", "https://127.0.0.1:8765", "null", "x"],
)
def test_a_request_from_another_origin_is_forbidden_even_with_the_cookie(
    client: Any, origin: str
) -> None:
    response = client.get("/_livekit/status", headers={"origin": origin})
    assert response.status_code == 403
    assert response.text == "403 Forbidden: Origin is not this server\n"


# -- Routes -----------------------------------------------------------------------


def test_status_says_the_kernel_is_live(client: Any) -> None:
    from livekit import __version__

    response = client.get("/_livekit/status")
    assert response.json() == {"live": True, "version": __version__}


def test_every_answer_forbids_framing_and_referrers(client: Any) -> None:
    headers = client.get("/index.html").headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["content-security-policy"] == "frame-ancestors 'none'"
    assert headers["referrer-policy"] == "no-referrer"


def test_pages_lists_the_code_cells_of_a_page(client: Any) -> None:
    assert client.get("/_livekit/pages/live").json() == {"page": "live", "cells": [1, 3, 4, 5, 6]}
    assert client.get("/_livekit/pages/howto/deep").json()["cells"] == [1, 3, 4, 5, 6]


@pytest.mark.parametrize("page", ["nothing", "plain", "../secret", "..%2Fsecret", "live.md", ""])
def test_pages_answers_404_for_a_page_that_is_not_an_executable_page_of_the_book(
    client: Any, page: str
) -> None:
    assert client.get(f"/_livekit/pages/{page}").status_code == 404


def test_a_missing_file_of_the_book_is_404(client: Any) -> None:
    assert client.get("/nothing.html").status_code == 404


def test_the_book_is_served_without_the_sources_outside_it(client: Any) -> None:
    assert client.get("/../secret.md").status_code == 404


@pytest.mark.parametrize(
    "path", ["/.buildinfo", "/.doctrees/live.doctree", "/.doctrees/", "/_static/.hidden.js"]
)
def test_the_build_s_own_files_are_not_served(client: Any, path: str) -> None:
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("length", [253, 254, 255, 256, 1000])
def test_a_page_name_too_long_for_the_file_system_is_404(client: Any, length: int) -> None:
    name = "a" * length
    assert client.get(f"/_livekit/pages/{name}").status_code == 404
    assert client.get(f"/{name}.html").status_code == 404
    assert denial(client, live_url(client, name)) == 404


def test_the_favicon_is_livekit_s_icon(client: Any) -> None:
    from livekit.kernel.app import FAVICON

    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.content == FAVICON.read_bytes()
    assert response.content.startswith(b"<svg ")


# -- The live socket --------------------------------------------------------------


def test_the_socket_says_hello_with_the_page_cells(client: Any) -> None:
    with client.websocket_connect(live_url(client), headers={"origin": ORIGIN}) as ws:
        assert json.loads(ws.receive_text()) == {
            "type": "hello",
            "page": "live",
            "cells": [1, 3, 4, 5, 6],
        }


def test_the_socket_with_the_cookie_but_without_the_live_key_is_refused_with_403(
    client: Any,
) -> None:
    # Every server on 127.0.0.1 that the browser visits gets the cookie too.
    for url in [
        f"ws://127.0.0.1:{PORT}/_livekit/live?page=live",
        f"ws://127.0.0.1:{PORT}/_livekit/live?page=live&key=",
        f"ws://127.0.0.1:{PORT}/_livekit/live?page=live&key={client.live_key[:-1]}",
        f"ws://127.0.0.1:{PORT}/_livekit/live?page=live&token={TOKEN}&key={client.live_key}",
    ]:
        assert denial(client, url, headers={"origin": ORIGIN}) == 403


def test_the_socket_without_the_cookie_is_refused_with_403(stranger: Any) -> None:
    assert denial(stranger, f"ws://127.0.0.1:{PORT}/_livekit/live?page=live&key=k") == 403


def test_the_socket_from_another_origin_is_refused_with_403(client: Any) -> None:
    # Browsers send Origin on every WebSocket handshake: this is the check
    # that stops another site's script from driving the kernel.
    url = live_url(client)
    assert denial(client, url, headers={"origin": "http://attacker.example"}) == 403


def test_the_socket_for_an_unknown_page_is_refused_with_404(client: Any) -> None:
    assert denial(client, live_url(client, "../secret")) == 404


def test_running_a_cell_runs_the_cells_before_it_first(client: Any, log: list[Any]) -> None:
    with client.websocket_connect(live_url(client)) as ws:
        receive_until(ws, "hello")
        ws.send_text(json.dumps({"op": "run", "cell": 4}))
        events = receive_until(ws, "cell_done")
        events += receive_until(ws, "cell_done")
        events += receive_until(ws, "cell_done")
        ws.send_text(json.dumps({"op": "run", "cell": 4}))
        receive_until(ws, "cell_done")
    assert [e["cell"] for e in events if e["type"] == "cell_done"] == [1, 3, 4]
    assert log == [("start", "docs"), ("run", [1, 3, 4]), ("run", [4]), ("close",)]


def test_running_without_a_cell_runs_the_whole_page_but_cells_tagged_skip_live(
    client: Any, log: list[Any]
) -> None:
    with client.websocket_connect(live_url(client)) as ws:
        ws.send_text(json.dumps({"op": "run"}))
        receive_until(ws, "cell_done")
    assert log[1] == ("run", [1, 3, 4, 6])


def test_a_cell_tagged_skip_live_runs_only_when_named(client: Any, log: list[Any]) -> None:
    with client.websocket_connect(live_url(client)) as ws:
        ws.send_text(json.dumps({"op": "run", "cell": 6}))
        ws.send_text(json.dumps({"op": "run", "cell": 5}))
        ws.send_text(json.dumps({"op": "ping"}))
        receive_until(ws, "pong")
    assert log[1:3] == [("run", [1, 3, 4, 6]), ("run", [5])]


def test_the_session_of_a_page_in_a_subfolder_runs_in_that_folder(
    client: Any, log: list[Any]
) -> None:
    with client.websocket_connect(live_url(client, "howto/deep")) as ws:
        ws.send_text(json.dumps({"op": "run", "cell": 1}))
        receive_until(ws, "cell_done")
    assert log[0] == ("start", "howto")


def test_an_input_change_runs_again_the_cells_that_read_it(client: Any, log: list[Any]) -> None:
    with client.websocket_connect(live_url(client)) as ws:
        ws.send_text(json.dumps({"op": "run"}))
        receive_until(ws, "cell_done")
        change = {"method": "update", "state": {"value": "you"}}
        ws.send_text(json.dumps({"op": "comm", "comm_id": "comm-1", "data": change}))
        ws.send_text(json.dumps({"op": "comm", "comm_id": "comm-1", "data": {"method": "custom"}}))
        ws.send_text(json.dumps({"op": "interrupt"}))
        ws.send_text(json.dumps({"op": "ping"}))
        receive_until(ws, "pong")
    assert log[2:] == [
        ("comm", "comm-1", change),
        ("run", [1, 4]),
        ("comm", "comm-1", {"method": "custom"}),
        ("interrupt",),
        ("close",),
    ]


def test_typing_in_a_livekit_input_runs_again_the_cells_that_read_it(
    client: Any, log: list[Any]
) -> None:
    with client.websocket_connect(live_url(client)) as ws:
        ws.send_text(json.dumps({"op": "run"}))
        receive_until(ws, "cell_done")
        typed = {"method": "custom", "content": {"type": "input", "value": "you"}}
        ack = {"method": "custom", "content": {"type": "ack", "seq": 1}}
        ws.send_text(json.dumps({"op": "comm", "comm_id": "comm-1", "data": typed}))
        ws.send_text(json.dumps({"op": "comm", "comm_id": "comm-1", "data": ack}))
        ws.send_text(json.dumps({"op": "ping"}))
        receive_until(ws, "pong")
    assert log[2:] == [
        ("comm", "comm-1", typed),
        ("run", [1, 4]),
        ("comm", "comm-1", ack),
        ("close",),
    ]


def test_an_input_change_runs_again_what_a_deleting_cell_needs_but_no_skip_live_cell(
    client: Any, book: tuple[Path, Path], log: list[Any]
) -> None:
    _, source = book
    cells = [
        'node = read_text("Node")',
        'strings = ["cat"] * 3',
        "chart = plot(node)",
        "del strings\nchart",
        ":tags: [skip-live]\nchart.stop()",
    ]
    page = MYSTNB_FRONT + "# Spikes\n"
    page += "".join(f"\n```{{code-cell}} ipython3\n{code}\n```\n" for code in cells)
    (source / "spikes.md").write_text(page)
    with client.websocket_connect(live_url(client, "spikes")) as ws:
        ws.send_text(json.dumps({"op": "run"}))
        ws.send_text(json.dumps({"op": "run", "cell": 5}))
        change = {"method": "update", "state": {"value": "you"}}
        ws.send_text(json.dumps({"op": "comm", "comm_id": "comm-1", "data": change}))
        ws.send_text(json.dumps({"op": "ping"}))
        receive_until(ws, "pong")
    # (Cell 0 is the title.) Cell 4 deletes what cell 2 made, so cell 2 runs
    # again before it; the skip-live cell (5) reads the chart but runs only
    # when named.
    assert log[1:] == [
        ("run", [1, 2, 3, 4]),
        ("run", [5]),
        ("comm", "comm-1", change),
        ("run", [1, 2, 3, 4]),
        ("close",),
    ]


def test_restart_and_interrupt_reach_the_session(client: Any, log: list[Any]) -> None:
    with client.websocket_connect(live_url(client)) as ws:
        ws.send_text(json.dumps({"op": "interrupt"}))  # not live yet: nothing to interrupt
        ws.send_text(json.dumps({"op": "restart"}))
        ws.send_text(json.dumps({"op": "interrupt"}))
        ws.send_text(json.dumps({"op": "ping"}))
        receive_until(ws, "pong")
    assert log == [("start", "docs"), ("restart",), ("interrupt",), ("close",)]


def test_closing_the_socket_closes_the_page_session(client: Any, app: Any, log: list[Any]) -> None:
    with client.websocket_connect(live_url(client)) as ws:
        ws.send_text(json.dumps({"op": "run", "cell": 1}))
        receive_until(ws, "cell_done")
        assert len(app.app.state.sessions.live) == 1
    assert log[-1] == ("close",)
    assert app.app.state.sessions.live == set()


def test_stopping_the_server_closes_every_session(app: Any, log: list[Any]) -> None:
    client = TestClient(app, base_url=ORIGIN)
    with client:
        login(client)
        sessions = app.app.state.sessions
        closed: list[Any] = []

        class Lingering(FakeSession):
            async def close(self) -> None:
                closed.append(self)

        lingering = Lingering(Path("x"), print, [])
        sessions.live.add(lingering)
    assert closed == [lingering]
    assert sessions.live == set()


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ("not json", "Expecting value: line 1 column 1 (char 0)"),
        ("[1, 2]", "expected a JSON object, got list"),
        (
            '{"op": "exec", "code": "import os"}',
            "expected op in ['comm', 'interrupt', 'ping', 'restart', 'run'], got 'exec'",
        ),
        ('{"op": "run", "cell": "1"}', "expected cell to be an integer, got '1'"),
        ('{"op": "run", "cell": true}', "expected cell to be an integer, got True"),
        (
            '{"op": "comm", "comm_id": 3, "data": {}}',
            "expected comm_id (a string) and data (an object)",
        ),
        ('{"op": "comm", "comm_id": "c", "data": {}}', "no widget 'c': the page is not live"),
        ("x" * 70000, "message of 70000 characters is over 65536"),
    ],
)
def test_a_malformed_message_gets_an_error_reply_and_the_socket_goes_on(
    client: Any, message: str, reply: str
) -> None:
    with client.websocket_connect(live_url(client)) as ws:
        receive_until(ws, "hello")
        ws.send_text(message)
        assert json.loads(ws.receive_text()) == {"type": "error", "status": 400, "message": reply}
        ws.send_text(json.dumps({"op": "run", "cell": 1}))
        assert receive_until(ws, "cell_done")[-1] == {
            "type": "cell_done",
            "cell": 1,
            "status": "ok",
        }


def test_a_binary_message_gets_an_error_reply(client: Any) -> None:
    with client.websocket_connect(live_url(client)) as ws:
        receive_until(ws, "hello")
        ws.send_bytes(b"\x00\x01")
        assert json.loads(ws.receive_text()) == {
            "type": "error",
            "message": "expected a JSON text message",
        }


def test_an_unknown_cell_gets_a_404_error_reply(client: Any, log: list[Any]) -> None:
    with client.websocket_connect(live_url(client)) as ws:
        receive_until(ws, "hello")
        ws.send_text(json.dumps({"op": "run", "cell": 2}))  # a Markdown cell, not code
        assert json.loads(ws.receive_text()) == {
            "type": "error",
            "status": 404,
            "message": "page 'live' has no code cell 2",
        }
    assert ("run", [2]) not in log


def test_a_widget_message_for_an_unknown_widget_gets_an_error_reply(client: Any) -> None:
    with client.websocket_connect(live_url(client)) as ws:
        ws.send_text(json.dumps({"op": "run", "cell": 1}))
        receive_until(ws, "cell_done")
        ws.send_text(json.dumps({"op": "comm", "comm_id": "nope", "data": {}}))
        assert json.loads(ws.receive_text()) == {
            "type": "error",
            "status": 400,
            "message": "no widget 'nope' in this session",
        }


def test_a_session_that_fails_to_start_gets_an_error_reply_and_is_forgotten(
    book: tuple[Path, Path],
) -> None:
    class Broken(FakeSession):
        async def start(self) -> None:
            raise RuntimeError("no kernel")

    app = create_app(*book, token=TOKEN, port=PORT, session_factory=lambda c, e: Broken(c, e, []))
    with TestClient(app, base_url=ORIGIN) as client:
        login(client)
        with client.websocket_connect(live_url(client)) as ws:
            receive_until(ws, "hello")
            ws.send_text(json.dumps({"op": "run", "cell": 1}))
            assert json.loads(ws.receive_text()) == {
                "type": "error",
                "status": 500,
                "message": "server error: no kernel",
            }
        assert app.app.state.sessions.live == set()


def test_no_more_pages_go_live_than_the_limit(book: tuple[Path, Path]) -> None:
    app = create_app(
        *book,
        token=TOKEN,
        port=PORT,
        session_factory=lambda c, e: FakeSession(c, e, []),
        max_sessions=1,
    )
    with TestClient(app, base_url=ORIGIN) as client:
        login(client)
        with client.websocket_connect(live_url(client)) as first:
            first.send_text(json.dumps({"op": "run", "cell": 1}))
            receive_until(first, "cell_done")
            with client.websocket_connect(live_url(client)) as second:
                receive_until(second, "hello")
                second.send_text(json.dumps({"op": "run", "cell": 1}))
                assert json.loads(second.receive_text()) == {
                    "type": "error",
                    "status": 400,
                    "message": "1 pages are live already: close one first",
                }


def test_create_app_names_a_missing_build_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected a built book folder, got '/nonexistent'"):
        create_app("/nonexistent", tmp_path, token=TOKEN, port=PORT)
