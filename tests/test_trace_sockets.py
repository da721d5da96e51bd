"""Traces of real sockets on loopback: threads, asyncio streams, aiohttp.

Each test runs under both capture backends where the interpreter has them.
Every arrow is asserted by sender, receiver and label.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from livekit.trace import SequenceTrace, seq_trace
from livekit.trace.events import Event, Exit, Message, Spawn

pytestmark = pytest.mark.usefixtures("no_thread_left_running")


REQUEST = b"GET /items HTTP/1.1\r\nHost: localhost\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture(autouse=True)
def socket_methods_come_back() -> Iterator[None]:
    """After every trace, socket.socket calls the C methods again."""
    yield
    shadowed = {"send", "sendall", "sendto", "recv", "recv_into", "recvfrom", "sendmsg"}
    assert not shadowed & set(socket.socket.__dict__)
    assert socket.socketpair.__module__ == "socket"


def traced(fn: Any, backend: str, **options: Any) -> tuple[Any, SequenceTrace]:
    trace = SequenceTrace(backend=backend, **options)
    with trace:
        result = fn()
    return result, trace


def arrows(events: tuple[Event, ...]) -> list[tuple[str, str, str]]:
    """(sender, receiver, label) of every message, SPAWN and EXIT, in order."""
    out = []
    for e in events:
        if isinstance(e, Message):
            out.append((e.sender.name, e.receiver.name, e.label))
        elif isinstance(e, Spawn):
            out.append((e.parent.name, e.child.name, "SPAWN"))
        elif isinstance(e, Exit):
            out.append((e.who.name, "", f"EXIT: {e.reason}"))
    return out


def http_like_exchange(chunks: int = 1, read: int = 4096) -> bytes:
    """A server thread answers one request over TCP; the client sends it in ``chunks``."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                got = b""
                while not got.endswith(b"\r\n\r\n"):
                    got += conn.recv(read)
                conn.sendall(RESPONSE)

        server = threading.Thread(target=serve, name="server")
        server.start()
        with socket.create_connection(("127.0.0.1", port)) as client:
            size = -(-len(REQUEST) // chunks)
            for i in range(0, len(REQUEST), size):
                client.send(REQUEST[i : i + size])
            answer = b""
            while len(answer) < len(RESPONSE):
                answer += client.recv(4096)
        server.join()
    return answer


def test_a_request_and_its_response_are_arrows_between_two_threads(backend: str) -> None:
    answer, trace = traced(http_like_exchange, backend)
    assert answer == RESPONSE
    assert arrows(trace.events) == [
        ("caller (MainThread)", "server", "SPAWN"),
        ("caller (MainThread)", "server", "GET /items HTTP/1.1 (40 bytes)"),
        ("server", "caller (MainThread)", "HTTP/1.1 200 OK (40 bytes)"),
        ("server", "", "EXIT: normal"),
    ]


def test_chunks_of_one_write_read_in_pieces_are_one_arrow(backend: str) -> None:
    _, trace = traced(lambda: http_like_exchange(chunks=4, read=5), backend)
    assert arrows(trace.events)[1:3] == [
        ("caller (MainThread)", "server", "GET /items HTTP/1.1 (40 bytes)"),
        ("server", "caller (MainThread)", "HTTP/1.1 200 OK (40 bytes)"),
    ]


def test_each_ping_of_a_ping_pong_is_its_own_arrow(backend: str) -> None:
    def run() -> None:
        left, right = socket.socketpair()
        with left, right:

            def pong() -> None:
                for _ in range(3):
                    right.recv(16)
                    right.sendall(b"pong\n")

            worker = threading.Thread(target=pong, name="pong")
            worker.start()
            for _ in range(3):
                left.sendall(b"ping\n")
                left.recv(16)
            worker.join()

    _, trace = traced(run, backend)
    assert arrows(trace.events) == [
        ("caller (MainThread)", "pong", "SPAWN"),
        *[
            ("caller (MainThread)", "pong", "ping (5 bytes)"),
            ("pong", "caller (MainThread)", "pong (5 bytes)"),
        ]
        * 3,
        ("pong", "", "EXIT: normal"),
    ]


def test_datagrams_and_recv_into_are_arrows_too(backend: str) -> None:
    def run() -> None:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
        ):
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.1", 0))

            def echo() -> None:
                data, sender = b.recvfrom(100)
                b.sendto(data.upper(), sender)

            worker = threading.Thread(target=echo, name="echo")
            worker.start()
            a.sendto(b"hello", b.getsockname())
            buffer = bytearray(100)
            size = a.recv_into(buffer)
            worker.join()
            assert buffer[:size] == b"HELLO"

    _, trace = traced(run, backend)
    assert arrows(trace.events)[1:3] == [
        ("caller (MainThread)", "echo", "hello (5 bytes)"),
        ("echo", "caller (MainThread)", "HELLO (5 bytes)"),
    ]


ECHO_SERVER = """
import socket, sys
with socket.create_server(("127.0.0.1", 0)) as listener:
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    with conn:
        conn.recv(4096)
        conn.sendall(b"\\x00\\x01binary")
"""


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    """ECHO_SERVER in a process of its own, outside every trace: yields its port."""
    with subprocess.Popen(
        [sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True
    ) as server:
        try:
            assert server.stdout is not None
            yield int(server.stdout.readline())
        finally:
            server.kill()


def test_the_other_end_outside_the_trace_is_named_by_its_address(backend: str) -> None:
    with echo_server() as port:

        def run() -> bytes:
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(REQUEST)
                return client.recv(100)

        answer, trace = traced(run, backend)
    assert answer == b"\x00\x01binary"
    peer = f"127.0.0.1:{port}"
    assert arrows(trace.events) == [
        ("caller (MainThread)", peer, "GET /items HTTP/1.1 (40 bytes)"),
        (peer, "caller (MainThread)", "8 bytes"),
    ]
    assert {e.sender.kind for e in trace.events if isinstance(e, Message)} == {"caller", "peer"}


def test_a_socket_made_where_a_freed_one_was_is_drawn_as_itself(backend: str) -> None:
    """A freed socket's id is soon another's: the new socket is not taken for the old one."""
    with echo_server() as port:

        def run() -> bool:
            left, right = socket.socketpair()
            freed = {id(left), id(right)}
            with left, right:
                left.sendall(b"ping\n")
                right.recv(100)
            del left, right
            with socket.socket() as client:
                reused = id(client) in freed
                client.connect(("127.0.0.1", port))
                client.sendall(REQUEST)
                client.recv(100)
            return reused

        reused, trace = traced(run, backend)
    assert reused  # CPython gives the freed memory to the next socket: the case tested
    peer = f"127.0.0.1:{port}"
    assert arrows(trace.events) == [
        ("caller (MainThread)", "caller (MainThread)", "ping (5 bytes)"),
        ("caller (MainThread)", peer, "GET /items HTTP/1.1 (40 bytes)"),
        (peer, "caller (MainThread)", "8 bytes"),
    ]


def test_the_trace_lets_go_of_the_sockets_the_program_freed(backend: str) -> None:
    """A long trace of many short connections holds nothing of those that ended."""
    trace = SequenceTrace(backend=backend)
    with trace:
        for _ in range(50):
            left, right = socket.socketpair()
            with left, right:
                left.sendall(b"ping\n")
                right.recv(100)
            del left, right
        held = len(trace._sockets.ends)  # what the trace keeps of each socket it saw
    assert held == 0
    assert len([e for e in trace.events if isinstance(e, Message)]) == 50


def test_max_messages_bounds_a_socket_ping_pong_and_counts_the_rest(backend: str) -> None:
    def run() -> None:
        left, right = socket.socketpair()
        with left, right:

            def pong() -> None:
                for _ in range(50):
                    right.recv(16)
                    right.sendall(b"pong")

            worker = threading.Thread(target=pong, name="pong")
            worker.start()
            for _ in range(50):
                left.sendall(b"ping")
                left.recv(16)
            worker.join()

    _, trace = traced(run, backend, max_messages=10)
    drawn = [e for e in trace.events if not isinstance(e, Exit)]
    assert len(drawn) == 10  # the SPAWN and nine messages
    assert trace.omitted == 100 - 9


def test_asyncio_streams_are_arrows_between_the_two_tasks(backend: str) -> None:
    async def main() -> bytes:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello\n")
            await writer.drain()
            answer = await reader.read()
            writer.close()
            await writer.wait_closed()
        return answer

    answer, trace = traced(lambda: asyncio.run(main()), backend, exclude="asyncio")
    assert answer == b"HELLO\n"
    messages = [a for a in arrows(trace.events) if "bytes" in a[2]]
    assert len(messages) == 2
    (client, server, request), (server_back, client_back, response) = messages
    assert client == client_back
    assert client.endswith(" (main)")
    assert server == server_back
    assert server.endswith("(handle)")
    assert (request, response) == ("hello (6 bytes)", "HELLO (6 bytes)")


def test_asyncio_wake_ups_from_another_thread_are_not_messages(backend: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()
        helper = threading.Thread(
            target=lambda: loop.call_soon_threadsafe(woken.set), name="helper"
        )
        helper.start()
        await woken.wait()
        helper.join()

    _, trace = traced(lambda: asyncio.run(main()), backend)
    assert not [e for e in trace.events if isinstance(e, Message) and "byte" in e.label]


# -- aiohttp: a real server and client over loopback --------------------


async def five_requests() -> list[Any]:
    from aiohttp import ClientSession, web

    async def items(request: web.Request) -> web.Response:
        return web.json_response([1, 2])

    app = web.Application()
    app.router.add_get("/items", items)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with ClientSession() as session:
            replies = []
            for _ in range(5):
                async with session.get(f"http://127.0.0.1:{port}/items") as reply:
                    replies.append(await reply.json())
            return replies
    finally:
        await runner.cleanup()


def test_an_aiohttp_exchange_reads_as_requests_and_responses(backend: str) -> None:
    pytest.importorskip("aiohttp")  # in the test extra: present wherever the suite runs
    replies, trace = traced(
        lambda: asyncio.run(five_requests()),
        backend,
        collapse={"aiohttp.web*": "aiohttp server"},
        exclude=["asyncio", "aiohttp"],
    )
    assert replies == [[1, 2]] * 5
    messages = [a for a in arrows(trace.events) if "HTTP" in a[2]]
    request, response = messages[0][2], messages[1][2]
    assert request.startswith("GET /items HTTP/1.1 (")
    assert response.startswith("HTTP/1.1 200 OK (")
    client = messages[0][0]
    assert client.startswith("Task-")
    assert client.endswith(" (five_requests)")
    assert (
        messages
        == [
            (client, "aiohttp server", request),
            ("aiohttp server", client, response),
        ]
        * 5
    )
    names = {p for a in arrows(trace.events) for p in a[:2] if p}
    assert names == {"caller (MainThread)", client, "aiohttp server"}


def test_without_narrowing_each_aiohttp_request_has_its_handler_task(backend: str) -> None:
    pytest.importorskip("aiohttp")
    _, trace = traced(lambda: asyncio.run(five_requests()), backend)
    messages = [a for a in arrows(trace.events) if "HTTP" in a[2]]
    assert len(messages) == 10
    handlers = [receiver for _, receiver, label in messages if label.startswith("GET")]
    responders = [sender for sender, _, label in messages if label.startswith("HTTP/1.1 200")]
    assert handlers == responders  # each request is read by the task that answers it
    assert len(set(handlers)) == 5
    assert all(name.endswith("(_handle_request)") for name in handlers)


def test_seq_trace_takes_the_narrowing_options() -> None:
    pytest.importorskip("aiohttp")
    _, diagram = seq_trace(
        lambda: asyncio.run(five_requests()),
        participants="*(five_requests)",
        collapse={"aiohttp.web*": "aiohttp server"},
    )
    lines = str(diagram).splitlines()
    participants = [line.split(" as ")[1] for line in lines if " participant " in line]
    assert participants[0] == "caller (MainThread)"
    assert participants[1].endswith(" (five_requests)")
    assert participants[2:] == ["aiohttp server"]
    assert sum("GET /items HTTP/1.1" in line for line in lines) == 5
    assert sum("HTTP/1.1 200 OK" in line for line in lines) == 5


def test_a_post_written_by_an_aiohttp_helper_task_starts_at_the_client(backend: str) -> None:
    pytest.importorskip("aiohttp")
    from aiohttp import ClientSession, web

    async def main() -> str:
        async def echo(request: web.Request) -> web.Response:
            return web.Response(text=await request.text(), status=201)

        app = web.Application()
        app.router.add_post("/echo", echo)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            async with ClientSession() as session:
                url = f"http://127.0.0.1:{runner.addresses[0][1]}/echo"
                async with session.post(url, data="pear") as reply:
                    return await reply.text()
        finally:
            await runner.cleanup()

    answer, trace = traced(
        lambda: asyncio.run(main()),
        backend,
        collapse={"aiohttp.web*": "server"},
        exclude=["asyncio", "aiohttp"],
    )
    assert answer == "pear"
    messages = [
        (s, r, label.rsplit(" (", 1)[0]) for s, r, label in arrows(trace.events) if "HTTP" in label
    ]
    client = messages[0][0]
    assert client.endswith(" (main)")
    assert messages == [
        (client, "server", "POST /echo HTTP/1.1"),
        ("server", client, "HTTP/1.1 201 Created"),
    ]


@pytest.mark.skipif(not hasattr(socket.socket, "sendmsg"), reason="no sendmsg on Windows")
def test_sendmsg_of_several_buffers_is_one_arrow_with_their_total_size(backend: str) -> None:
    def run() -> bytes:
        left, right = socket.socketpair()
        with left, right:
            got: list[bytes] = []
            reader = threading.Thread(target=lambda: got.append(right.recv(100)), name="reader")
            reader.start()
            left.sendmsg([b"HTTP/1.1 200", b" OK\r\n", b"\r\n"])
            reader.join()
        return got[0]

    answer, trace = traced(run, backend)
    assert answer == b"HTTP/1.1 200 OK\r\n\r\n"
    assert arrows(trace.events)[1] == (
        "caller (MainThread)",
        "reader",
        "HTTP/1.1 200 OK (19 bytes)",
    )


@pytest.mark.parametrize("narrowed", [False, True])
def test_a_full_diagram_answers_a_common_write_without_counting_it(narrowed: bool) -> None:
    """reserve(if_full): the wrappers' common write leaves a full diagram to sending()."""
    from livekit.trace.narrow import Narrowing
    from livekit.trace.recorder import UNCOUNTED, Recorder

    def narrowing(new_key: Any) -> Narrowing:
        return Narrowing(exclude="nobody", new_key=new_key)

    recorder = Recorder(
        threading.current_thread(),
        message_label=None,
        max_messages=2,
        narrowing=narrowing if narrowed else None,
    )
    assert [recorder.reserve(-3), recorder.reserve(-3)] == [0, 1]
    assert recorder.reserve(-3) == -3
    assert recorder.omitted == 0
    assert recorder.reserve() == (UNCOUNTED if narrowed else -1)
    assert recorder.omitted == (0 if narrowed else 1)  # narrowed: counted once received
