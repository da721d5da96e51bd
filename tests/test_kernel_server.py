"""``livekit serve`` over real sockets: many clients, a client that stops reading,
one that never reads, attacks on the login, and the command stopping cleanly
on SIGTERM and Ctrl-C.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from livekit.kernel.app import cookie_name
from livekit.kernel.book import Cell
from livekit.kernel.server import BookServer
from tests.conftest import MYSTNB_FRONT, python_for_another_user, require

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "tests" / "kernel_book"


class Flood:
    """A fake session whose every run sends ``count`` widget updates of 1 kB."""

    count = 20_000
    made: queue.Queue[Flood] = queue.Queue()

    def __init__(self, cwd: Path, emit: Any) -> None:
        self.emit = emit
        self.ran: set[int] = set()
        self.sent = threading.Event()
        self.task: asyncio.Task[None] | None = None
        Flood.made.put(self)

    async def start(self) -> None:
        pass

    def run(self, cells: list[Cell]) -> None:
        self.task = asyncio.get_running_loop().create_task(self._flood())

    async def _flood(self) -> None:
        for i in range(self.count):
            self.emit({"type": "comm_msg", "comm_id": "c", "data": {"i": i, "pad": "x" * 1000}})
            if i % 100 == 0:
                await asyncio.sleep(0)  # let the sender run, as a kernel's reader does
        self.emit({"type": "cell_done", "cell": 1, "status": "ok"})
        self.sent.set()

    def send_comm(self, comm_id: str, data: dict[str, Any]) -> int | None:
        return None

    async def interrupt(self) -> None:
        pass

    async def restart(self) -> None:
        pass

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()


@pytest.fixture
def built(tmp_path: Path) -> Path:
    out = tmp_path / "html"
    out.mkdir()
    (out / "index.html").write_text("<h1>The book</h1>")
    return out


@dataclass(frozen=True)
class Login:
    """What a browser keeps after opening the printed address."""

    cookie: str  # the Cookie header's value: name=value
    key: str  # the live key the page stores


def login(url: str) -> Login:
    """Open the printed address once, as a browser does (the token works once)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}")
        response = connection.getresponse()
        page = response.read().decode()
        assert response.status == 200, page
        cookie = response.getheader("set-cookie", "").split(";")[0]
    finally:
        connection.close()
    match = re.search(r'localStorage\.setItem\("livekit-live-key", "([^"]+)"\)', page)
    assert match is not None, page
    return Login(cookie, match.group(1))


def serving(built: Path, **options: Any) -> Iterator[BookServer]:
    server = BookServer(built, BOOK, port=0, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert not any(t.name == "livekit-serve" for t in threading.enumerate())


@pytest.fixture
def server(built: Path) -> Iterator[BookServer]:
    # A long send timeout: the flood below must not be cut off however slow
    # this machine is (the test of the cut sets its own).
    yield from serving(built, session_factory=Flood, send_timeout=120)


@pytest.fixture
def logged_in(server: BookServer) -> Login:
    return login(server.url)


def handshake(
    server: BookServer, login: Login | None, *, key: str | None = None
) -> tuple[socket.socket, int]:
    """Open a WebSocket to the live page by hand, and read nothing more."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    nonce = base64.b64encode(os.urandom(16)).decode()
    key = key if key is not None else (login.key if login else "")
    lines = [
        f"GET /_livekit/live?page=live&key={key} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        f"Origin: http://127.0.0.1:{server.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {nonce}",
        "Sec-WebSocket-Version: 13",
    ]
    if login is not None:
        lines.append(f"Cookie: {login.cookie}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)
    return sock, int(answer.split()[1])


def send_frame(sock: socket.socket, text: str) -> None:
    """Send one masked text frame (clients must mask)."""
    payload = text.encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    header = bytes([0x81, 0x80 | len(payload)]) + mask
    sock.sendall(header + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def test_a_client_that_stops_reading_gets_a_bounded_queue_and_drops(
    server: BookServer, logged_in: Login
) -> None:
    sock, status = handshake(server, logged_in)
    try:
        assert status == 101
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        send_frame(sock, json.dumps({"op": "run", "cell": 1}))
        # 20 MB of updates for a client that reads none of them.
        flood = Flood.made.get(timeout=60)
        assert flood.sent.wait(60)
        connection = flood.emit.__self__
        assert len(connection.outbox) <= connection.outbox.limit
        assert connection.outbox.dropped > Flood.count // 2
    finally:
        sock.close()


def test_fifty_concurrent_clients_each_get_their_page(server: BookServer, logged_in: Login) -> None:
    import websockets

    url = f"ws://127.0.0.1:{server.port}/_livekit/live?page=live&key={logged_in.key}"
    headers = {"Origin": f"http://127.0.0.1:{server.port}", "Cookie": logged_in.cookie}

    async def client(n: int) -> list[str]:
        async with websockets.connect(url, additional_headers=headers) as ws:
            hello = json.loads(await ws.recv())
            await ws.send(json.dumps({"op": "ping"}))
            await ws.send(json.dumps({"op": "nonsense"}))
            replies = [json.loads(await ws.recv())["type"] for _ in range(2)]
            return [hello["type"], *replies]

    async def all_clients() -> list[list[str]]:
        return await asyncio.gather(*(client(n) for n in range(50)))

    assert asyncio.run(all_clients()) == [["hello", "pong", "error"]] * 50


def test_a_handshake_without_the_cookie_is_refused_over_a_real_socket(
    server: BookServer,
) -> None:
    sock, status = handshake(server, None, key="anything")
    sock.close()
    assert status == 403


def test_the_server_refuses_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="Address already in use"):
            BookServer(BOOK, BOOK, port=port)


# -- The command ---------------------------------------------------------------


def start_command(built: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "livekit",
            "serve",
            str(built),
            "--source",
            str(BOOK),
            "--port",
            "0",
            "--no-browser",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "?token=" in line:
            process.url = line.strip()  # type: ignore[attr-defined]
            return process
    process.kill()
    raise AssertionError(f"no address printed: {process.communicate()}")


@contextlib.contextmanager
def a_cell_run(url: str) -> Iterator[Any]:
    """Open the live page and run a cell, so that a kernel process exists.

    The connection stays open: the server must close it when it stops.
    """
    from websockets.sync.client import connect

    base = url.split("/?token=", maxsplit=1)[0]
    port = int(base.rsplit(":", 1)[1])
    browser = login(url)
    with connect(
        f"ws://127.0.0.1:{port}/_livekit/live?page=live&key={browser.key}",
        additional_headers={"Origin": base, "Cookie": browser.cookie},
        open_timeout=60,  # the command's first handshake, on a loaded machine
    ) as ws:
        ws.send(json.dumps({"op": "run", "cell": 2}))
        while True:
            event = json.loads(ws.recv(timeout=60))
            if event["type"] == "cell_done" and event["cell"] == 2:
                break
        yield ws


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_command_stops_with_its_kernels_and_leaves_no_process(
    built: Path, sig: signal.Signals
) -> None:
    process = start_command(built)
    try:
        with a_cell_run(process.url):  # type: ignore[attr-defined]
            children = psutil.Process(process.pid).children(recursive=True)
            assert len(children) >= 1  # the page's kernel
            process.send_signal(sig)
            out, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        assert out.endswith("livekit serve: stopped\n")
        _, alive = psutil.wait_procs(children, timeout=5)
        assert alive == []
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_the_printed_address_names_the_address_bound(built: Path) -> None:
    for host, start in [("127.0.0.1", "http://127.0.0.1:"), ("::1", "http://[::1]:")]:
        server = BookServer(built, BOOK, host=host, port=0, token="t")  # noqa: S106 - a test token
        try:
            assert server.url == f"{start}{server.port}/?token=t"
        finally:
            server.close()


# -- A client that never reads ---------------------------------------------------

NEVER_READ_PAGE = (
    MYSTNB_FRONT
    + """# A page that prints without end

```{code-cell} ipython3
while True:
    print("x" * 1000)
```
"""
)


def kernels() -> list[psutil.Process]:
    """The kernel processes this test process started."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if "ipykernel_launcher" in " ".join(child.cmdline()):
                found.append(child)
    return found


def server_side_of(server: BookServer, client: socket.socket) -> list[Any]:
    """The server's end of ``client``'s connection, if the server still holds it."""
    mine = client.getsockname()
    return [
        c
        for c in psutil.Process().net_connections(kind="tcp")
        if c.laddr and c.laddr.port == server.port and c.raddr and tuple(c.raddr) == mine
    ]


def test_a_client_that_never_reads_is_cut_off_and_its_kernel_stopped(tmp_path: Path) -> None:
    source = tmp_path / "docs"
    source.mkdir()
    (source / "live.md").write_text(NEVER_READ_PAGE)
    built = tmp_path / "html"
    built.mkdir()
    (built / "index.html").write_text("<h1>The book</h1>")
    server = BookServer(built, source, port=0, send_timeout=1.0)
    server.start()
    sock = None
    try:
        browser = login(server.url)
        sock, status = handshake(server, browser)
        assert status == 101
        # A client that never reads: its receive buffer fills, then the
        # server's, then every send waits.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        send_frame(sock, json.dumps({"op": "run", "cell": 1}))
        sessions = server.app.app.state.sessions  # type: ignore[attr-defined]
        assert wait_until(lambda: len(kernels()) == 1 and len(sessions.live) == 1)
        kernel = kernels()[0]
        # Cut off: the session is closed and its kernel gone, as if the tab closed...
        assert wait_until(lambda: not sessions.live, timeout=180)
        _, alive = psutil.wait_procs([kernel], timeout=10)
        assert alive == []
        # ...and the server dropped its end of the socket at once, unsent data
        # and all, rather than waiting for a reader that never comes.
        assert wait_until(lambda: server_side_of(server, sock) == [])
        with pytest.raises(ConnectionResetError):
            drain(sock)
    finally:
        if sock is not None:
            sock.close()
        server.stop()
    assert kernels() == []


def drain(sock: socket.socket) -> None:
    """Read until the end of the stream."""
    while sock.recv(65536):
        pass


def wait_until(condition: Any, timeout: float = 30.0) -> bool:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


# -- Attacks on the login ----------------------------------------------------------

#: Another server on 127.0.0.1, run by another user, that a browser logged in
#: to livekit serve visits.  Cookies ignore ports, so the browser sends it
#: livekit's login cookie; it then tries that cookie (and the printed token,
#: should it have learned it) on livekit serve.  Standard library only: it
#: runs under Debian's own python3, as uid 65534.
ATTACKER = r"""
import base64, http.client, http.server, json, os, socket, sys

port, token = int(sys.argv[1]), sys.argv[2]
stolen = {}

class Steal(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        stolen["cookie"] = self.headers.get("Cookie", "")
        body = b"<!doctype html><title>another server</title><p>Hello.</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Steal)
print(server.server_address[1], flush=True)
while "livekit" not in stolen.get("cookie", ""):
    server.handle_request()
server.server_close()
cookie = stolen["cookie"]
here = f"127.0.0.1:{port}"

def get(path, cookie=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Cookie": cookie} if cookie else {}
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    body = r.read().decode("utf8", "replace")
    c.close()
    return r.status, body

def live_socket(query):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    nonce = base64.b64encode(os.urandom(16)).decode()
    s.sendall((
        f"GET /_livekit/live?{query} HTTP/1.1\r\nHost: {here}\r\n"
        f"Origin: http://{here}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n"
        f"Cookie: {cookie}\r\n\r\n"
    ).encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = s.recv(1)
        if not chunk:
            break
        answer += chunk
    status = int(answer.split()[1])
    if status == 101:  # in: run the page's first cell
        frame = json.dumps({"op": "run", "cell": 1}).encode()
        mask = os.urandom(4)
        s.sendall(bytes([0x81, 0x80 | len(frame)]) + mask
                  + bytes(b ^ mask[i % 4] for i, b in enumerate(frame)))
        s.recv(65536)
    s.close()
    return status

page_status, page = get(f"/?token={token}", cookie)
print(json.dumps({
    "uid": os.getuid(),
    "stolen": cookie,
    "socket": live_socket("page=live"),
    "socket_empty_key": live_socket("page=live&key="),
    "socket_token_as_key": live_socket(f"page=live&key={token}"),
    "status_with_cookie": get("/_livekit/status", cookie)[0],
    "token_again_without_cookie": get(f"/?token={token}")[0],
    "token_again_with_cookie": page_status,
    "key_given_again": "localStorage" in page,
}), flush=True)
"""


def attacker_command(port: int, token: str) -> list[str]:
    """The attacker's server, as another local user where we can become one."""
    python = python_for_another_user()
    assert python is not None  # start_attacker required one
    command = [python, "-I", "-c", ATTACKER, str(port), token]
    if os.geteuid() == 0:
        return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return command


def start_attacker(port: int, token: str) -> tuple[subprocess.Popen[str], int]:
    require(python_for_another_user() is not None, "no Python that uid 65534 can run")
    require(
        os.geteuid() != 0 or shutil.which("setpriv") is not None,
        "setpriv is missing: cannot become another user (apt-get install util-linux)",
    )
    attacker = subprocess.Popen(
        attacker_command(port, token), stdout=subprocess.PIPE, text=True, cwd="/"
    )
    assert attacker.stdout is not None
    return attacker, int(attacker.stdout.readline())


def test_another_server_on_loopback_with_the_stolen_cookie_cannot_open_the_live_socket(
    built: Path,
) -> None:
    opened: list[Flood] = []

    def factory(cwd: Path, emit: Any) -> Flood:
        session = Flood(cwd, emit)
        opened.append(session)
        return session

    for server in serving(built, session_factory=factory):
        browser = login(server.url)
        attacker, attacker_port = start_attacker(server.port, server.token)
        try:
            # The reader's browser visits the other server: it sends every
            # cookie of 127.0.0.1, livekit's login cookie among them.
            connection = http.client.HTTPConnection("127.0.0.1", attacker_port, timeout=30)
            connection.request("GET", "/", headers={"Cookie": browser.cookie})
            assert connection.getresponse().status == 200
            connection.close()
            out, _ = attacker.communicate(timeout=120)
        finally:
            if attacker.poll() is None:
                attacker.kill()
                attacker.communicate()
        found = json.loads(out)
        assert found["uid"] == (65534 if os.geteuid() == 0 else os.getuid())
        assert found["stolen"] == browser.cookie
        assert found["stolen"].startswith(f"{cookie_name(server.port)}=")
        # The cookie alone opens the book's files, not its live socket: no
        # session was started, so no cell ran.
        assert found["status_with_cookie"] == 200
        assert found["socket"] == 403
        assert found["socket_empty_key"] == 403
        assert found["socket_token_as_key"] == 403
        # The printed address worked once; with the cookie it only redirects,
        # and never hands out the live key again.
        assert found["token_again_without_cookie"] == 403
        assert found["token_again_with_cookie"] == 303
        assert found["key_given_again"] is False
        assert opened == []


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("//evil.example/", "/evil.example/"),
        ("///evil.example/", "/evil.example/"),
        ("//evil.example/live.html?x=1", "/evil.example/live.html?x=1"),
        ("/%2F%2Fevil.example/", "/evil.example/"),
        ("/%5Cevil.example/", "/%5Cevil.example/"),
    ],
)
def test_the_token_exchange_redirects_only_to_a_path_on_this_server(
    built: Path, target: str, location: str
) -> None:
    for server in serving(built, session_factory=Flood):
        path, _, query = target.partition("?")
        query = f"token={server.token}" + (f"&{query}" if query else "")
        first = raw_get(server, f"{path}?{query}")
        # The first answer is the page that opens the target (location.replace).
        assert first.status == 200
        assert f'location.replace("{location}")' in first.body
        cookie = first.getheader("set-cookie").split(";")[0]
        # The same browser again gets a redirect to the same path.
        again = raw_get(server, f"{path}?{query}", cookie=cookie)
        assert again.status == 303
        assert again.getheader("location") == location


class Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.getheader = response.getheader
        self.body = response.read().decode()


def raw_get(server: BookServer, target: str, *, cookie: str | None = None) -> Answer:
    """GET ``target`` as written (http.client sends it unnormalised)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {"Cookie": cookie} if cookie else {}
        connection.request("GET", target, headers=headers)
        return Answer(connection.getresponse())
    finally:
        connection.close()


def test_without_the_serve_extra_the_command_says_how_to_install_it(built: Path) -> None:
    # The extra is installed here: make its import fail as it would without it.
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from livekit.__main__ import main\n"
        f"sys.exit(main(['serve', {str(built)!r}, '--no-browser']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "livekit serve needs the serve extra (uvicorn is missing). Install it from a clone: "
        'python -m pip install -e ".[serve]"; from the repository: '
        'python -m pip install "livekit-introspect[serve] @ git+<repository URL>"\n'
    )


def test_the_server_sends_a_pages_small_messages_without_waiting(tmp_path: Path) -> None:
    """A page's socket has TCP_NODELAY.

    With Nagle's algorithm every widget update waited ~40 ms for the
    browser's delayed ACK (asyncio sets the option only on sockets whose
    proto says TCP).
    """
    server = BookServer(tmp_path, tmp_path, port=0)
    server.start()
    client = socket.create_connection(("127.0.0.1", server.port))
    try:
        mine = client.getsockname()[1]
        nodelay = 0
        for _ in range(1000):  # until the server has accepted: 10 s at most
            for conn in psutil.Process().net_connections("tcp"):
                if conn.fd == -1 or not conn.raddr or conn.raddr.port != mine:
                    continue
                if conn.laddr.port != server.port:
                    continue
                accepted = socket.socket(fileno=os.dup(conn.fd))
                try:
                    nodelay = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                finally:
                    accepted.close()  # the duplicate only
            if nodelay:
                break
            threading.Event().wait(0.01)
        assert nodelay, "the accepted socket has Nagle's algorithm on"
    finally:
        client.close()
        server.stop()
