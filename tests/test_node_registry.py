"""Node names and the per-user registry that finds this host's nodes by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from livekit.nodes import registry
from livekit.nodes.errors import NodeError
from livekit.nodes.registry import Entry, NodeAddress, parse_node


@pytest.fixture(autouse=True)
def livekit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "livekit-home"
    monkeypatch.setenv("LIVEKIT_HOME", str(home))
    return home


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(child.stdout)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ("demo@localhost", NodeAddress("demo", "localhost", None)),
        ("demo@build-box.example.org:4370", NodeAddress("demo", "build-box.example.org", 4370)),
        ("a_b.c-1@10.0.0.7:1", NodeAddress("a_b.c-1", "10.0.0.7", 1)),
    ],
)
def test_parse_node_splits_name_host_and_port(node: str, expected: NodeAddress) -> None:
    assert parse_node(node) == expected


@pytest.mark.parametrize("node", ["demo", "@host", "demo@", "demo@host:", "demo@host:x", "de mo@h"])
def test_parse_node_rejects_malformed_names(node: str) -> None:
    with pytest.raises(ValueError, match="expected a node name") as caught:
        parse_node(node)
    assert str(caught.value) == (
        f"expected a node name like 'name@host' or 'name@host:port', got {node!r}"
    )


def test_parse_node_rejects_a_port_out_of_range() -> None:
    with pytest.raises(ValueError, match="between 1 and 65535"):
        parse_node("demo@host:70000")


def test_register_then_lookup_finds_this_process(livekit_home: Path) -> None:
    entry = registry.register("demo", "127.0.0.1", 4370)
    assert entry.pid == os.getpid()
    assert registry.lookup("demo") == entry
    assert registry.entries() == [entry]
    path = livekit_home / "nodes" / "demo.json"
    if os.name != "nt":
        assert livekit_home.stat().st_mode & 0o777 == 0o700  # created by the registry
        assert path.parent.stat().st_mode & 0o777 == 0o700
    assert json.loads(path.read_text())["port"] == 4370
    assert [p.name for p in path.parent.iterdir()] == ["demo.json"]  # no draft left behind
    registry.unregister(entry)
    assert registry.lookup("demo") is None
    assert not path.exists()


def test_unregister_removes_the_entry_from_the_home_it_was_registered_in(
    livekit_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = registry.register("demo", "127.0.0.1", 4370)
    path = livekit_home / "nodes" / "demo.json"
    assert entry.file == str(path)
    # The file holds where the node is, not where the file is.
    stored = sorted(json.loads(path.read_text()))
    assert stored == ["host", "name", "path", "pid", "port", "started"]
    later = tmp_path / "later-home"
    monkeypatch.setenv("LIVEKIT_HOME", str(later))
    registry.unregister(entry)
    assert list(path.parent.iterdir()) == []
    assert not later.exists()


def test_register_and_lookup_use_the_home_they_are_given(
    livekit_home: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-home"
    entry = registry.register("demo", "127.0.0.1", 4370, home=other)
    assert entry.file == str(other / "nodes" / "demo.json")
    assert registry.lookup("demo") is None  # not in the current home
    assert registry.lookup("demo", home=other) == entry
    assert registry.entries(home=other) == [entry]
    assert not livekit_home.exists()
    registry.unregister(entry)
    assert registry.entries(home=other) == []


def test_unregister_refuses_an_entry_that_names_no_file() -> None:
    made = Entry("demo", "127.0.0.1", 4370, os.getpid(), 0.0)
    with pytest.raises(ValueError, match="names no file") as caught:
        registry.unregister(made)
    assert str(caught.value) == (
        "expected an entry read from or written to the registry, got one that names no file: "
        f"Entry(name='demo', host='127.0.0.1', port=4370, pid={os.getpid()}, started=0.0, path='')"
    )


def test_a_name_held_by_a_live_process_cannot_be_registered_again() -> None:
    registry.register("demo", "127.0.0.1", 4370)
    with pytest.raises(NodeError) as caught:
        registry.register("demo", "127.0.0.1", 4371)
    assert str(caught.value) == (
        f"the node name 'demo' is in use by process {os.getpid()} on this host"
    )


def test_a_stale_entry_is_ignored_deleted_and_its_name_reusable(livekit_home: Path) -> None:
    directory = livekit_home / "nodes"
    directory.mkdir(parents=True)
    stale = Entry("demo", "127.0.0.1", 4370, dead_pid(), 1.0)
    (directory / "demo.json").write_text(json.dumps(stale.__dict__))
    assert registry.entries() == []
    assert not (directory / "demo.json").exists()
    (directory / "demo.json").write_text(json.dumps(stale.__dict__))
    fresh = registry.register("demo", "127.0.0.1", 4371)
    assert registry.lookup("demo") == fresh


def test_an_entry_whose_pid_was_reused_by_another_process_is_stale(livekit_home: Path) -> None:
    me = psutil.Process()
    reused = Entry("demo", "127.0.0.1", 4370, me.pid, me.create_time() - 3600)
    directory = livekit_home / "nodes"
    directory.mkdir(parents=True)
    (directory / "demo.json").write_text(json.dumps(reused.__dict__))
    assert registry.lookup("demo") is None


def test_a_torn_entry_is_treated_as_stale(livekit_home: Path) -> None:
    directory = livekit_home / "nodes"
    directory.mkdir(parents=True)
    (directory / "demo.json").write_text('{"name": "de')
    assert registry.lookup("demo") is None
    assert not (directory / "demo.json").exists()


def test_this_host_and_loopback_names_are_local() -> None:
    assert registry.is_this_host(registry.this_host().upper())
    assert registry.is_this_host("127.0.0.1")
    assert not registry.is_this_host("elsewhere.invalid")


def test_an_entry_listening_on_every_address_is_dialled_on_loopback() -> None:
    assert Entry("demo", "0.0.0.0", 1, 1, 0.0).connect_host() == "127.0.0.1"  # noqa: S104
    assert Entry("demo", "10.1.2.3", 1, 1, 0.0).connect_host() == "10.1.2.3"
