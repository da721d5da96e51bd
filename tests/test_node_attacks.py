"""Each attack on nodes that a review found, performed by another local user.

The attacker is ``node_attacker.py`` (standard library only), run as uid
65534 through ``setpriv`` from a world-readable folder, as an unprivileged
user of this machine would run it. The tests run as root, as CI does; where
that or ``setpriv`` is missing they are skipped, and under ``CI=true`` they
fail. Every attack runs on loopback or Unix sockets, bounded in count and
time.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import livekit
from livekit import rpc
from livekit.nodes import client, cookie, local, registry
from livekit.nodes._home import UnsafeHomeError
from livekit.nodes.server import MAX_UNAUTHENTICATED, NodeServer
from tests.conftest import python_for_another_user, require

ATTACKER = Path(__file__).with_name("node_attacker.py")
NOBODY = 65534
START_TIMEOUT = 60.0


def attacker_python() -> str | None:
    return python_for_another_user()


@pytest.fixture(scope="module")
def attack_dir() -> Iterator[Path]:
    """A world-readable folder holding the attacker's script, and one it owns."""
    require(hasattr(os, "getuid") and os.getuid() == 0, "attacks as uid 65534 need root")
    require(shutil.which("setpriv") is not None, "setpriv is missing (apt-get install util-linux)")
    require(attacker_python() is not None, "no Python that uid 65534 can run")
    folder = Path(tempfile.mkdtemp(prefix="livekit-attack-"))
    try:
        folder.chmod(0o755)
        script = folder / ATTACKER.name
        shutil.copyfile(ATTACKER, script)
        script.chmod(0o644)
        own = folder / "attacker"
        own.mkdir()
        os.chown(own, NOBODY, NOBODY)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Attack:
    """The attacker script running as uid 65534; :meth:`finish` returns its report."""

    def __init__(self, folder: Path, *args: object) -> None:
        python = attacker_python()
        assert python is not None
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        self.proc = subprocess.Popen(
            [*command, python, "-I", str(folder / ATTACKER.name), *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            _, err = self.proc.communicate(timeout=40)
            pytest.fail(f"the attacker did not start: {err}")
        self.ready: dict[str, Any] = json.loads(line)

    def finish(self) -> dict[str, Any]:
        out, err = self.proc.communicate(input="", timeout=40)
        assert self.proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}

    def __enter__(self) -> Attack:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=40)


@pytest.fixture(autouse=True)
def livekit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "livekit-home"
    monkeypatch.setenv("LIVEKIT_HOME", str(home))
    cookie._reset()
    cookie.get_cookie()  # one cookie file for this process and the nodes it starts
    yield home
    client.disconnect_all()
    livekit.stop_node()
    cookie._reset()


def killed_node(home: Path, name: str) -> registry.Entry:
    """Start ``livekit node --name NAME``, SIGKILL it, and return the entry it left."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "livekit", "node", "--name", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LIVEKIT_HOME": str(home)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"{name}@{registry.this_host()}"
    finally:
        proc.kill()  # no chance to remove its entry
        proc.communicate(timeout=30)
    entry = registry.read(name)
    assert entry is not None
    assert entry.pid == proc.pid
    return entry


# -- finding 2: a stale registry entry, then a relay ---------------------------------


def test_a_relay_on_a_dead_nodes_port_is_never_dialled_by_name(
    attack_dir: Path, livekit_home: Path
) -> None:
    victim = livekit.start_node("victim")
    dead = killed_node(livekit_home, "dead")
    victim_port = local._running.server.address[1]  # type: ignore[union-attr]
    with Attack(attack_dir, "relay", dead.port, victim_port) as attack:
        with pytest.raises(livekit.NodeError) as caught:
            rpc.call(f"dead@{registry.this_host()}", "os", "getpid")
        report = attack.finish()
    assert str(caught.value) == (
        f"unknown node dead@{registry.this_host()}: no node named 'dead' runs on this host"
    )
    assert report == {"connections": 0, "from_node": [], "from_client": []}
    # Whoever found it dead removed it, socket and all; the victim's entry stays.
    assert sorted(p.name for p in (livekit_home / "nodes").iterdir()) == [
        f"victim.{os.getpid()}.sock",
        "victim.json",
    ]
    assert rpc.call(victim, "os", "getpid") == os.getpid()


@pytest.mark.parametrize("rewrite", [False, True], ids=["as-is", "renamed"])
def test_a_relay_to_another_node_fails_even_for_a_name_with_a_port(
    attack_dir: Path, livekit_home: Path, rewrite: bool
) -> None:
    livekit.start_node("victim")
    dead = killed_node(livekit_home, "dead")
    victim_port = local._running.server.address[1]  # type: ignore[union-attr]
    dialled = f"dead@127.0.0.1:{dead.port}"
    args = (f"dead@{registry.this_host()}",) if rewrite else ()
    with Attack(attack_dir, "relay", dead.port, victim_port, *args) as attack:
        with pytest.raises(livekit.NodeError) as caught:
            rpc.call(dialled, "os", "getpid")
        report = attack.finish()
    where = f"node {dialled} at 127.0.0.1:{dead.port}"
    if rewrite:
        # The name passes, but the victim signs with its own: the MACs differ.
        assert str(caught.value) == (
            f"authentication failed for {where}: it has another cookie "
            f"(set the right one with livekit.set_cookie({dialled!r}, cookie))"
        )
        assert [line.split(" ")[0] for line in report["from_client"]] == ["livekit-answer"]
        assert [line.split(" ")[0] for line in report["from_node"]] == [
            "livekit-challenge",
            "livekit-refused",
        ]
    else:
        # The client sees the victim's own name and answers nothing.
        assert str(caught.value) == f"{where} is node victim@{registry.this_host()}"
        assert report["from_client"] == []
    assert report["connections"] == 1


def test_a_unix_socket_served_by_another_user_is_refused_before_a_byte(
    attack_dir: Path,
) -> None:
    path = attack_dir / "attacker" / "evil.sock"
    with Attack(attack_dir, "unix-listen", path) as attack:
        # As if the entry named a socket that another user serves.
        entry = registry.register("evil", "127.0.0.1", 9, path=str(path))
        try:
            with pytest.raises(livekit.NodeError) as caught:
                rpc.call(f"evil@{registry.this_host()}", "os", "getpid")
        finally:
            registry.unregister(entry)
        report = attack.finish()
    assert str(caught.value) == (
        f"refusing node 'evil': its socket {path} is served by another user "
        f"(uid {NOBODY}, process {attack.ready['pid']})"
    )
    assert report == {"connections": 1, "received": 0}


def test_a_unix_socket_served_by_another_process_of_the_user_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "other.sock"
    code = (
        "import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); "
        "s.listen(); print('ready', flush=True); sys.stdin.read()"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as other:
        assert other.stdout is not None
        assert other.stdout.readline() == "ready\n"
        entry = registry.register("other", "127.0.0.1", 9, path=str(path))
        try:
            with pytest.raises(livekit.NodeError) as caught:
                rpc.call(f"other@{registry.this_host()}", "os", "getpid")
        finally:
            registry.unregister(entry)
            other.communicate("", timeout=30)
    assert str(caught.value) == (
        f"refusing node 'other': its socket {path} is served by process {other.pid}, "
        f"not by the registered process {os.getpid()}"
    )


# -- finding 3: a home that others can write to --------------------------------------


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder like /tmp: root's, writable by all, sticky."""
    folder = Path(tempfile.mkdtemp(prefix="livekit-shared-"))
    folder.chmod(0o1777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_home_planted_by_another_user_is_refused(
    attack_dir: Path, shared_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = shared_tmp / "livekit-home"
    with Attack(attack_dir, "plant-home", home, "known-to-the-attacker") as attack:
        assert attack.ready["planted"] == [".known-cookie", "cookie", "nodes"]
        attack.finish()
    monkeypatch.setenv("LIVEKIT_HOME", str(home))
    cookie._reset()
    message = (
        f"{home} belongs to another user (uid {NOBODY}); it must be owned by you "
        f"(set LIVEKIT_HOME to a folder of your own)"
    )
    with pytest.raises(UnsafeHomeError) as caught:
        livekit.get_cookie()
    assert str(caught.value) == message
    with pytest.raises(PermissionError) as caught:
        livekit.start_node("victim")
    assert str(caught.value) == message
    assert local._running is None
    with pytest.raises(PermissionError) as caught:
        registry.lookup("victim")
    assert str(caught.value) == message


def test_a_home_inside_a_folder_another_user_owns_is_refused_before_it_is_made(
    attack_dir: Path, shared_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = shared_tmp / "shared"
    with Attack(attack_dir, "make-dir", parent) as attack:
        attack.finish()
    home = parent / "livekit-home"
    monkeypatch.setenv("LIVEKIT_HOME", str(home))
    cookie._reset()
    with pytest.raises(UnsafeHomeError) as caught:
        livekit.start_node("victim")
    assert str(caught.value) == (
        f"{parent} belongs to another user (uid {NOBODY}); it must be owned by you or by root"
    )
    assert not home.exists()  # nothing of ours was made where they could swap it


# -- finding 4: locked out without a cookie ------------------------------------------


def test_slow_cookieless_connections_cannot_lock_the_owner_out(attack_dir: Path) -> None:
    me = livekit.start_node("owner")
    server = local._running.server  # type: ignore[union-attr]
    by_port = f"owner@127.0.0.1:{server.address[1]}"
    with Attack(attack_dir, "slow", server.address[1], 300, 0.5) as attack:
        assert attack.ready["opened"] > MAX_UNAUTHENTICATED
        pending = []
        for _ in range(5):
            pending.append(server.unauthenticated_count())
            # A first call each time: a new link, with its own handshake.
            for name in (me, by_port):
                livekit.disconnect(name)
                assert rpc.call(name, "os", "getpid", timeout=30) == os.getpid()
            time.sleep(0.2)
        report = attack.finish()
    assert max(pending) <= MAX_UNAUTHENTICATED  # the TCP listener's cap; none on the other
    assert report["opened"] > 300  # the node closed old ones and the attacker came back
    print(f"slow-connection attack: {report}, pending handshakes sampled: {pending}")


# -- item 7: a peer that is not a node, and a frame of 2**62 bytes --------------------


def test_a_peer_that_is_not_a_node_raises_node_error_naming_its_address(
    attack_dir: Path,
) -> None:
    with Attack(attack_dir, "banner") as attack:
        port = attack.ready["port"]
        with pytest.raises(livekit.NodeError) as caught:
            rpc.call(f"sshd@127.0.0.1:{port}", "os", "getpid")
        assert attack.finish() == {"greeted": 1}
    # "SSH-" read as a frame header is 1,397,966,893 bytes.
    assert str(caught.value) == (
        f"node sshd@127.0.0.1:{port} at 127.0.0.1:{port} is not a livekit node: "
        "a frame declared 1397966893 bytes, more than the 1024 accepted"
    )


def test_a_frame_of_2_62_bytes_after_login_closes_only_that_link(
    attack_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="livekit.nodes")
    node = NodeServer("test@localhost", cookie=lambda: "shared-with-the-attacker")
    thread = threading.Thread(target=node.serve, name="test-node-server")
    thread.start()
    try:
        with Attack(attack_dir, "big-frame", node.address[1], "shared-with-the-attacker") as a:
            report = a.finish()
        assert report == {"welcomed": True, "closed": True}
        cookie.set_cookie("shared-with-the-attacker")
        name = f"test@127.0.0.1:{node.address[1]}"
        assert rpc.call(name, "os", "getpid") == os.getpid()
    finally:
        client.disconnect_all()
        node.close()
        thread.join(5)
    [record] = [r for r in caplog.records if r.name == "livekit.nodes"]
    assert record.getMessage().startswith("node test@localhost closed the link from 127.0.0.1:")
    assert record.getMessage().endswith(
        ": a frame declared 4611686018427387904 bytes, more than the 1073741824 accepted"
    )
