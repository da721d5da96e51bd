"""``livekit serve`` over real sockets: many clients, a client that stops reading,
and the command stopping cleanly on SIGTERM and Ctrl-C.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from livekit.kernel.app import cookie_name
from livekit.kernel.book import Cell
from livekit.kernel.server import BookServer

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


@pytest.fixture
def server(built: Path) -> Iterator[BookServer]:
    server = BookServer(built, BOOK, port=0, session_factory=Flood)
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert not any(t.name == "livekit-serve" for t in threading.enumerate())


def handshake(server: BookServer, *, cookie: bool = True) -> tuple[socket.socket, int]:
    """Open a WebSocket to the live page by hand, and read nothing more."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /_livekit/live?page=live HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        f"Origin: http://127.0.0.1:{server.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie_name(server.port)}={server.token}")
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


def test_a_client_that_stops_reading_gets_a_bounded_queue_and_drops(server: BookServer) -> None:
    sock, status = handshake(server)
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


def test_fifty_concurrent_clients_each_get_their_page(server: BookServer) -> None:
    import websockets

    url = f"ws://127.0.0.1:{server.port}/_livekit/live?page=live"
    headers = {
        "Origin": f"http://127.0.0.1:{server.port}",
        "Cookie": f"{cookie_name(server.port)}={server.token}",
    }

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
    sock, status = handshake(server, cookie=False)
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

    base, token = url.split("/?token=")
    port = int(base.rsplit(":", 1)[1])
    with connect(
        f"ws://127.0.0.1:{port}/_livekit/live?page=live",
        additional_headers={"Origin": base, "Cookie": f"{cookie_name(port)}={token}"},
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
