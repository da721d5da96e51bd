"""Node calls cost about one bare round trip, and a first call connects in well under 5 ms.

* A small ``rpc.call`` on an open link against a bare
  ``multiprocessing.connection`` round trip (``send`` / ``recv`` of a small
  tuple) to an echo process, over the same loopback TCP: at most 2x.
  For scale, Erlang's ``erpc:call`` between two local nodes takes ~81 µs here.
* A first call to a node, connect included (registry lookup, TCP connect,
  the two-way cookie handshake, the name check, then the call), against the
  same work done by hand with ``multiprocessing.connection`` over a socket
  with TCP_NODELAY: at most 3x (the node starts a thread per link and adds
  a round trip to check its name), and under the 5 ms budget.  Without
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
from livekit.nodes import client, cookie

COOKIE = "bench-cookie"

# An echo server with multiprocessing.connection and nothing else.
ECHO = """
import socket, sys
from multiprocessing.connection import Connection, Listener, deliver_challenge, answer_challenge
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    sock, _ = listener.accept()
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
    with tempfile.TemporaryDirectory() as home:
        os.environ["LIVEKIT_HOME"] = home
        env = {**os.environ, "LIVEKIT_HOME": home}
        cookie.set_cookie(COOKIE)
        name = f"bench{os.getpid()}"
        node = subprocess.Popen(  # noqa: S603 -- our own interpreter, fixed arguments
            [sys.executable, "-m", "livekit", "node", "--name", name, "--cookie", COOKIE],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        echo = subprocess.Popen(  # noqa: S603 -- our own interpreter, fixed arguments
            [sys.executable, "-c", ECHO, COOKIE], stdout=subprocess.PIPE, text=True
        )
        try:
            assert node.stdout is not None
            assert echo.stdout is not None
            full = node.stdout.readline().strip()
            port = int(echo.stdout.readline())
            return _measure(full, port)
        finally:
            client.disconnect_all()
            for proc in (node, echo):
                proc.terminate()
                proc.wait(30)
            cookie._reset()
            if saved is None:
                os.environ.pop("LIVEKIT_HOME", None)
            else:
                os.environ["LIVEKIT_HOME"] = saved


def _measure(node: str, port: int) -> list[dict[str, Any]]:
    bare = Client(("127.0.0.1", port), authkey=COOKIE.encode())
    message = ("call", "operator", "add", (1, 2), {})

    def bare_round_trip() -> None:
        bare.send(message)
        bare.recv()

    def small_call() -> None:
        rpc.call(node, "operator", "add", (1, 2))

    def first_call() -> None:
        livekit.disconnect(node)
        rpc.call(node, "operator", "add", (1, 2))

    small_call()
    bare_round_trip()
    # Interleave the two sides so that a noisy neighbour hurts both alike.
    baseline = ours = float("inf")
    for _ in range(7):
        baseline = min(baseline, best_of(bare_round_trip, repeat=3, number=1000))
        ours = min(ours, best_of(small_call, repeat=3, number=1000))
    bare.close()
    rows = [
        row(
            "rpc.call, small, on an open link",
            ours,
            baseline,
            2.0,
            f"vs bare multiprocessing.connection round trip; {ours * 1e6:.0f} µs "
            "(erpc:call here: 81 µs)",
        )
    ]
    by_hand = first = float("inf")
    for _ in range(5):
        by_hand = min(by_hand, best_of(lambda: _bare_connect_and_call(port), repeat=3, number=20))
        first = min(first, best_of(first_call, repeat=3, number=20))
    rows.append(
        row(
            "first rpc.call to a node, connect included",
            first,
            by_hand,
            3.0,
            "vs connect + handshake + call by hand with TCP_NODELAY; "
            "the node also starts a thread per link and checks its name",
        )
    )
    rows.append(
        row(
            "first rpc.call to a node, against the 5 ms budget",
            first,
            0.005,
            1.0,
            f"budget, not measured; {first * 1e3:.2f} ms",
        )
    )
    return rows


if __name__ == "__main__":
    print(table(main())[0])
