"""Node calls cost about one bare round trip, and a first call connects in well under 5 ms.

* A small ``rpc.call`` on an open link against a bare
  ``multiprocessing.connection`` round trip (``send`` / ``recv`` of a small
  tuple) to an echo process, over the same transport: at most 2x, over
  loopback TCP (a node named ``name@host:port``) and over the Unix socket
  that same-host nodes found by name use.  For scale, Erlang's
  ``erpc:call`` between two local nodes takes ~81 µs here.
* A first call to a node, connect included (TCP connect, livekit's
  cookie handshake with both names, then the call), against the same work
  done by hand with ``multiprocessing.connection``'s two-way challenge over
  a socket with TCP_NODELAY: at most 3x (the node starts a thread per
  link), and under the 5 ms budget.  Without
  TCP_NODELAY, Nagle's algorithm and delayed ACKs make that ~44 ms.

Both servers are separate processes, so neither side shares a GIL with
the caller.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from multiprocessing.connection import Client, Connection, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import best_of, row, table

import livekit
from livekit import rpc
from livekit.nodes import client, cookie, registry

COOKIE = "bench-cookie"

# An echo server with multiprocessing.connection and nothing else, on TCP
# (no argument) or on a Unix socket (its path as the second argument).
ECHO = """
import socket, sys
from multiprocessing.connection import Connection, Listener, deliver_challenge, answer_challenge
if len(sys.argv) > 2:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(sys.argv[2])
    listener.listen()
    print(sys.argv[2], flush=True)
else:
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
while True:
    sock, _ = listener.accept()
    if sock.family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(sock.detach())
    deliver_challenge(conn, sys.argv[1].encode())
    answer_challenge(conn, sys.argv[1].encode())
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except EOFError:
        conn.close()
"""


def _bare_connect_and_call(port: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(sock.detach())
    answer_challenge(conn, COOKIE.encode())
    deliver_challenge(conn, COOKIE.encode())
    conn.send(("call", "operator", "add", (1, 2), {}))
    conn.recv()
    conn.close()


def main() -> list[dict[str, Any]]:
    saved = os.environ.get("LIVEKIT_HOME")
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        proc = subprocess.Popen(  # noqa: S603 -- our own interpreter, fixed arguments
            [sys.executable, *args], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
        )
        procs.append(proc)
        assert proc.stdout is not None
        return proc.stdout.readline().strip()

    with tempfile.TemporaryDirectory() as home:
        os.environ["LIVEKIT_HOME"] = home
        cookie.set_cookie(COOKIE)
        try:
            name = start("-m", "livekit", "node", "--name", "bench", "--cookie", COOKIE)
            echo_port = int(start("-c", ECHO, COOKIE))
            echo_path = start("-c", ECHO, COOKIE, str(Path(home) / "echo.sock"))
            entry = registry.lookup("bench")
            assert entry is not None
            assert entry.path, "the node has no Unix socket"
            by_port = f"bench@127.0.0.1:{entry.port}"
            return [
                _small_call("TCP", by_port, ("127.0.0.1", echo_port)),
                _small_call("Unix socket", name, echo_path),
                *_first_call(by_port, echo_port),
            ]
        finally:
            client.disconnect_all()
            for proc in procs:
                proc.terminate()
                proc.wait(30)
            cookie._reset()
            if saved is None:
                os.environ.pop("LIVEKIT_HOME", None)
            else:
                os.environ["LIVEKIT_HOME"] = saved


def _small_call(transport: str, node: str, echo: tuple[str, int] | str) -> dict[str, Any]:
    bare = Client(echo, authkey=COOKIE.encode())
    message = ("call", "operator", "add", (1, 2), {})

    def bare_round_trip() -> None:
        bare.send(message)
        bare.recv()

    def small_call() -> None:
        rpc.call(node, "operator", "add", (1, 2))

    small_call()
    bare_round_trip()
    # Interleave the two sides so that a noisy neighbour hurts both alike.
    baseline = ours = float("inf")
    for _ in range(7):
        baseline = min(baseline, best_of(bare_round_trip, repeat=3, number=1000))
        ours = min(ours, best_of(small_call, repeat=3, number=1000))
    bare.close()
    return row(
        f"rpc.call, small, on an open link, {transport}",
        ours,
        baseline,
        2.0,
        f"vs bare multiprocessing.connection round trip; {ours * 1e6:.0f} µs "
        "(erpc:call here: 81 µs)",
    )


def _first_call(node: str, echo_port: int) -> list[dict[str, Any]]:
    def first_call() -> None:
        livekit.disconnect(node)
        rpc.call(node, "operator", "add", (1, 2))

    by_hand = first = float("inf")
    for _ in range(5):
        by_hand = min(
            by_hand, best_of(lambda: _bare_connect_and_call(echo_port), repeat=3, number=20)
        )
        first = min(first, best_of(first_call, repeat=3, number=20))
    return [
        row(
            "first rpc.call to a node, connect included, TCP",
            first,
            by_hand,
            3.0,
            "vs connect + handshake + call by hand with TCP_NODELAY; "
            "the node also starts a thread per link",
        ),
        row(
            "first rpc.call to a node, against the 5 ms budget",
            first,
            0.005,
            1.0,
            f"budget, not measured; {first * 1e3:.2f} ms",
        ),
    ]


if __name__ == "__main__":
    print(table(main())[0])
