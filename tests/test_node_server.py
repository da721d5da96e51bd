"""Bad peers do not hurt a node: each is answered or dropped, and the others are served.

The node here is a :class:`NodeServer` in this process, so that the tests
can look at its links; ``test_node_process.py`` uses a separate process.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livekit import rpc
from livekit.nodes import client, cookie, protocol
from livekit.nodes.errors import NodeError
from livekit.nodes.protocol import Link
from livekit.nodes.server import NodeServer

COOKIE = "test-cookie"


def node_threads() -> list[threading.Thread]:
    prefixes = ("livekit-node", "livekit-spawn", "node-server", "test-node-server")
    return [t for t in threading.enumerate() if t.name.startswith(prefixes)]


@pytest.fixture(autouse=True)
def livekit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "livekit-home"
    monkeypatch.setenv("LIVEKIT_HOME", str(home))
    cookie._reset()
    cookie.set_cookie(COOKIE)
    yield home
    client.disconnect_all()
    cookie._reset()


@pytest.fixture
def server() -> Iterator[NodeServer]:
    node = NodeServer("test@localhost", cookie=lambda: COOKIE, handshake_timeout=0.5)
    thread = threading.Thread(target=node.serve, name="test-node-server")
    thread.start()
    yield node
    client.disconnect_all()
    node.close()
    thread.join(5)
    for leftover in node_threads():
        leftover.join(5)
    assert node_threads() == []
    assert node.connection_count() == 0


def name_of(server: NodeServer) -> str:
    host, port = server.address
    return f"test@{host}:{port}"


def raw_socket(server: NodeServer) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=5)
    protocol.tune(sock)
    return sock


def authenticated(server: NodeServer) -> Link:
    sock = raw_socket(server)
    sock.settimeout(None)
    link = Link(sock)
    protocol.client_handshake(link, COOKIE)
    return link


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the node sends until it closes the connection (5 s at most).

    A node that closes a link with unread bytes in it resets the connection,
    which may discard what it sent last: that still counts as closed.
    """
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def test_a_wrong_cookie_is_refused_and_the_node_keeps_serving(server: NodeServer) -> None:
    node = name_of(server)
    cookie.set_cookie(node, "wrong-cookie")
    with pytest.raises(NodeError) as caught:
        client.connect(node)
    assert str(caught.value) == (
        f"authentication failed for node {node} at {server.address[0]}:{server.address[1]}: "
        f"it has another cookie (set the right one with livekit.set_cookie({node!r}, cookie))"
    )
    cookie.set_cookie(node, COOKIE)
    assert rpc.call(node, "os", "getpid") == os.getpid()


def test_garbage_bytes_are_dropped_without_being_unpickled(
    server: NodeServer, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"

    class Bomb:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.mkdir, (str(marker),))

    bomb = pickle.dumps(Bomb())
    with raw_socket(server) as sock:
        sock.sendall(len(bomb).to_bytes(4, "big") + bomb)
        received = read_until_closed(sock)
    assert received.startswith(b"\x00\x00\x00")
    assert b"livekit-challenge 1 " in received
    assert b"livekit-welcome" not in received
    assert not marker.exists()
    assert rpc.call(name_of(server), "os", "getpid") == os.getpid()


def test_an_oversized_frame_is_refused_before_it_is_read(server: NodeServer) -> None:
    with raw_socket(server) as sock:
        sock.sendall(b"\x7f\xff\xff\xff" + b"x" * 1000)
        received = read_until_closed(sock)
    assert b"livekit-welcome" not in received
    assert rpc.call(name_of(server), "os", "getpid") == os.getpid()


@pytest.mark.parametrize("sent", [b"", b"\x00\x00"], ids=["silent", "half-a-header"])
def test_a_half_open_connection_is_dropped_while_others_are_served(
    server: NodeServer, sent: bytes
) -> None:
    with raw_socket(server) as sock:
        sock.sendall(sent)
        # While it stalls, another client is served.
        assert rpc.call(name_of(server), "os", "getpid") == os.getpid()
        received = read_until_closed(sock)  # the handshake deadline (0.5 s) drops it
    assert b"livekit-challenge 1 " in received
    assert b"livekit-welcome" not in received


def test_one_deadline_covers_the_whole_handshake_however_slowly_bytes_come(
    server: NodeServer,
) -> None:
    # A byte every 0.1 s would reset a per-read timeout forever; the node's
    # deadline is 0.5 s for the whole handshake, so it closes the link while
    # the trickle still has seconds to go.
    with raw_socket(server) as sock:
        sock.settimeout(None)
        challenge = sock.recv(4096)
        assert b"livekit-challenge 1 " in challenge
        sent = 0
        closed = False
        while sent < 60:  # 6 s of trickle at most
            ready, _, _ = select.select([sock], [], [], 0.1)
            if ready:
                try:
                    closed = sock.recv(4096) == b""
                except ConnectionResetError:
                    closed = True
                if closed:
                    break
            try:
                sock.send(b"\x00")
            except OSError:
                closed = True
                break
            sent += 1
    assert closed
    assert sent < 60
    assert rpc.call(name_of(server), "os", "getpid") == os.getpid()


def test_the_oldest_unauthenticated_connection_gives_way_to_a_new_one() -> None:
    node = NodeServer("test@localhost", cookie=lambda: COOKIE, max_unauthenticated=2)
    thread = threading.Thread(target=node.serve, name="test-node-server")
    thread.start()
    try:
        with raw_socket(node) as first, raw_socket(node) as second:
            assert first.recv(64).startswith(b"\x00\x00\x00")
            assert second.recv(64).startswith(b"\x00\x00\x00")
            with raw_socket(node) as third:
                assert third.recv(64).startswith(b"\x00\x00\x00")
                # The oldest was closed: the rest of its challenge, then nothing.
                assert read_until_closed(first).endswith(b" test@localhost")
                # The owner still gets in: evicting the second, not refused.
                cookie.set_cookie(f"test@127.0.0.1:{node.address[1]}", COOKIE)
                assert rpc.call(f"test@127.0.0.1:{node.address[1]}", "os", "getpid") > 0
                assert read_until_closed(second).endswith(b" test@localhost")
                third.sendall(b"\x00")
                assert node.unauthenticated_count() == 1  # the third, still pending
    finally:
        client.disconnect_all()
        node.close()
        thread.join(5)
    assert not thread.is_alive()


def test_a_peer_that_disconnects_mid_call_does_not_hurt_the_node(server: NodeServer) -> None:
    link = authenticated(server)
    link.send(protocol.dumps(("call", "time", "sleep", (0.2,), {})))
    link.close()  # gone before the answer: the node's reply finds no one
    node = name_of(server)
    assert rpc.call(node, "time", "sleep", (0.3,)) is None
    assert rpc.call(node, "os", "getpid") == os.getpid()


def test_a_hundred_concurrent_clients_are_all_served(server: NodeServer) -> None:
    count = 100
    ready = threading.Barrier(count)
    answers: list[object] = [None] * count

    def one_client(index: int) -> None:
        link = authenticated(server)
        try:
            ready.wait(10)  # all 100 links are open at once
            link.send(protocol.dumps(("call", "operator", "mul", (index, 2), {})))
            answers[index] = link.recv()
        finally:
            link.close()

    threads = [threading.Thread(target=one_client, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [("ok", 2 * i) for i in range(count)]


def test_links_beyond_the_limit_are_closed_at_once() -> None:
    node = NodeServer("test@localhost", cookie=lambda: COOKIE, max_connections=1)
    thread = threading.Thread(target=node.serve, name="test-node-server")
    thread.start()
    try:
        with raw_socket(node) as first, raw_socket(node) as second:
            assert first.recv(64).startswith(b"\x00\x00\x00")  # the first gets a challenge
            assert read_until_closed(second) == b""  # the second is closed unread
    finally:
        node.close()
        thread.join(5)
    assert not thread.is_alive()


def test_a_request_the_node_does_not_know_is_answered_and_the_link_kept(
    server: NodeServer,
) -> None:
    link = authenticated(server)
    try:
        link.send(protocol.dumps(("reboot", "now")))
        assert link.recv() == (
            "unsendable",
            "cannot answer the request ('reboot', 'now')",
        )
        link.send(protocol.dumps(("hello", "test")))
        assert link.recv() == ("welcome", "test@localhost", os.getpid(), {"trace": 1})
    finally:
        link.close()


def test_a_request_that_cannot_be_unpickled_is_answered_and_the_link_kept(
    server: NodeServer,
) -> None:
    link = authenticated(server)
    try:
        link.send(b"\x80\x05not a pickle")
        kind, message = link.recv()
        assert kind == "unsendable"
        assert message.startswith("could not unpickle the request: ")
        link.send(protocol.dumps(("call", "operator", "add", (1, 2), {})))
        assert link.recv() == ("ok", 3)
    finally:
        link.close()


def test_a_serve_loop_that_fails_leaves_the_node_open_for_a_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = NodeServer("test@localhost", cookie=lambda: COOKIE)
    sock = raw_socket(other)  # queued in the listener until a loop accepts it
    sock.settimeout(None)
    link = Link(sock)
    failed: list[BaseException] = []

    def crash(listener: socket.socket) -> None:
        raise RuntimeError("accept failed")

    def run_and_record() -> None:
        try:
            other.serve()
        except RuntimeError as error:
            failed.append(error)

    monkeypatch.setattr(other, "_accept", crash)
    first = threading.Thread(target=run_and_record, name="test-node-server-first")
    first.start()
    first.join(5)
    assert [str(error) for error in failed] == ["accept failed"]
    monkeypatch.undo()
    restarted = threading.Thread(target=other.serve, name="test-node-server-restarted")
    restarted.start()  # what a supervisor's restart does
    try:
        protocol.client_handshake(link, COOKIE)
        link.send(protocol.dumps(("hello", "test")))
        assert link.recv() == ("welcome", "test@localhost", os.getpid(), {"trace": 1})
    finally:
        link.close()
        other.close()
        restarted.join(5)
    assert not restarted.is_alive()


def test_a_unix_socket_path_too_long_for_the_os_is_left_to_tcp(tmp_path: Path) -> None:
    long_path = tmp_path / ("x" * 100) / "node.sock"
    node = NodeServer("test@localhost", cookie=lambda: COOKIE, unix_path=str(long_path))
    try:
        assert node.unix_path is None
        assert node.address[1] > 0
    finally:
        node.close()


def test_close_ends_every_link_thread_and_the_listener() -> None:
    node = NodeServer("test@localhost", cookie=lambda: COOKIE)
    thread = threading.Thread(target=node.serve, name="test-node-server")
    thread.start()
    links = [authenticated(node) for _ in range(3)]
    try:
        for link in links:
            link.send(protocol.dumps(("hello", "test")))
            link.recv()
        assert node.connection_count() == 3
        node.close()
        thread.join(5)
        assert node_threads() == []
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(node.address, timeout=5).close()
    finally:
        for link in links:
            link.close()


def test_a_node_that_never_answers_the_handshake_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, says nothing
        port = silent.getsockname()[1]
        with pytest.raises(NodeError) as caught:
            client.connect(f"mute@127.0.0.1:{port}", timeout=0.2)
    assert str(caught.value) == (
        f"timed out after 0.2 s authenticating with node mute@127.0.0.1:{port} at 127.0.0.1:{port}"
    )


def test_nothing_listening_is_reported_as_such() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    with pytest.raises(NodeError) as caught:
        client.connect(f"gone@127.0.0.1:{port}")
    assert str(caught.value) == (
        f"nothing is listening for node gone@127.0.0.1:{port} at 127.0.0.1:{port}"
    )


# -- frames of every shape, before and after the handshake -------------------------

FRAMES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FRAMES
@given(
    data=st.one_of(
        st.binary(max_size=64),
        st.binary(max_size=64).map(lambda b: len(b).to_bytes(4, "big") + b),
        st.builds(
            lambda fields: len(b" ".join(fields)).to_bytes(4, "big") + b" ".join(fields),
            st.lists(
                st.sampled_from([b"livekit-answer", b"1", b"0" * 64, b"me@x", b"f" * 64, b""]),
                max_size=6,
            ),
        ),
    )
)
def test_any_bytes_before_the_handshake_never_log_in(server: NodeServer, data: bytes) -> None:
    with raw_socket(server) as sock:
        received = b""
        with contextlib.suppress(OSError):  # the node may close it first
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # the node sees the end: no waiting for a deadline
            received = read_until_closed(sock)
    assert b"livekit-welcome" not in received
    assert rpc.call(name_of(server), "operator", "add", (1, 2)) == 3


@FRAMES
@given(payload=st.binary(max_size=256), declared=st.sampled_from([None, 0, 2**31 - 1]))
def test_any_frame_after_the_handshake_is_answered_or_closes_only_its_link(
    server: NodeServer, payload: bytes, declared: int | None
) -> None:
    link = authenticated(server)
    try:
        if declared is None:
            link.send(payload)  # a well-framed request that may be anything
            kind = link.recv()[0]
            assert kind in {"unsendable", "ok", "raise", "welcome"}
        else:  # a header that lies about what follows
            with contextlib.suppress(OSError):  # the node may close it first
                link.sock.sendall(declared.to_bytes(4, "big") + payload)
                link.sock.shutdown(socket.SHUT_WR)
                read_until_closed(link.sock)
    finally:
        link.close()
    assert rpc.call(name_of(server), "operator", "add", (1, 2)) == 3


def test_a_node_that_mirrors_the_clients_proof_is_not_believed() -> None:
    # Without the cookie, a fake node can only send the client's own proof back
    # as its welcome: the direction is signed, so the client refuses it.
    with socket.create_server(("127.0.0.1", 0)) as fake:
        port = fake.getsockname()[1]
        seen: list[bytes] = []

        def mirror() -> None:
            sock, _ = fake.accept()
            with sock:
                nonce = os.urandom(32).hex().encode()
                sock.sendall(protocol.frame(b"livekit-challenge 1 " + nonce + b" mirror@localhost"))
                answer = protocol.recv_frame(sock, 1024)
                seen.append(answer)
                proof = answer.rpartition(b" ")[2]
                sock.sendall(protocol.frame(b"livekit-welcome 1 " + proof))
                read_until_closed(sock)

        thread = threading.Thread(target=mirror)
        thread.start()
        node = f"mirror@127.0.0.1:{port}"
        try:
            with pytest.raises(NodeError) as caught:
                client.connect(node)
        finally:
            thread.join(10)
    assert str(caught.value) == (
        f"authentication failed for node {node} at 127.0.0.1:{port}: it has another cookie "
        f"(set the right one with livekit.set_cookie({node!r}, cookie))"
    )
    assert [answer.split(b" ")[0] for answer in seen] == [b"livekit-answer"]


def test_a_new_cookie_for_a_connected_node_counts_only_after_disconnect(
    server: NodeServer,
) -> None:
    node = name_of(server)
    assert client.connect(node)
    cookie.set_cookie(node, "wrong-cookie")
    # The open link was proved with the old cookie, and is kept (as in Erlang).
    assert client.connect(node)
    assert rpc.call(node, "operator", "add", (1, 2)) == 3
    assert client.disconnect(node)
    with pytest.raises(NodeError, match=r"^authentication failed for node test@"):
        client.connect(node)


def test_calls_that_race_a_modules_first_import_wait_for_it(
    server: NodeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The node runs each request in a thread of its own: the second call
    # arrives while the first is still importing, and the module is then
    # in sys.modules without its functions yet.
    (tmp_path / "slow_to_import.py").write_text(
        "import time\ntime.sleep(0.5)\ndef answer():\n    return 42\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slow_to_import", raising=False)
    results: list[object] = []

    def call() -> None:
        try:
            results.append(rpc.call(name_of(server), "slow_to_import", "answer", timeout=10))
        except Exception as error:  # the test reports what the call raised
            results.append(error)

    callers = [threading.Thread(target=call, name=f"caller-{n}") for n in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(15)
    assert results == [42] * 4
