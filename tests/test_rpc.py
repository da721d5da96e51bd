"""rpc.call and spawn against this interpreter's own node (``node()`` connects to itself)."""

from __future__ import annotations

import datetime
import json
import os
import socket
import stat
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import livekit
from livekit import rpc
from livekit.nodes import client, cookie, local, registry


def node_threads() -> list[threading.Thread]:
    prefixes = ("livekit-node", "livekit-spawn", "node-server")
    return [t for t in threading.enumerate() if t.name.startswith(prefixes)]


@pytest.fixture(autouse=True)
def livekit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "livekit-home"
    monkeypatch.setenv("LIVEKIT_HOME", str(home))
    cookie._reset()
    yield home
    client.disconnect_all()
    livekit.stop_node()
    cookie._reset()
    for leftover in node_threads():
        leftover.join(5)
    assert node_threads() == []
    assert registry.entries() == []


def open_links() -> int:
    running = local._running
    assert running is not None
    return running.server.connection_count()


def test_node_starts_on_demand_and_connects_to_itself() -> None:
    me = livekit.node()
    assert me == f"python{os.getpid()}@{registry.this_host()}"
    assert livekit.connect(me) is True
    assert rpc.call(me, "os", "getpid") == os.getpid()


def test_start_node_names_the_node_and_registers_it(livekit_home: Path) -> None:
    me = livekit.start_node("alpha", cookie="alpha-cookie")
    assert me == f"alpha@{registry.this_host()}"
    assert livekit.get_cookie() == "alpha-cookie"
    assert livekit.start_node("alpha") == me  # already running: same node
    entry = registry.lookup("alpha")
    assert entry is not None
    assert entry.pid == os.getpid()
    assert livekit.stop_node() is True
    assert registry.lookup("alpha") is None
    assert livekit.stop_node() is False


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_same_host_calls_go_over_a_private_unix_socket(livekit_home: Path) -> None:
    me = livekit.start_node("alpha")
    entry = registry.lookup("alpha")
    assert entry is not None
    socket_file = Path(entry.path)
    assert socket_file == livekit_home / "nodes" / f"alpha.{os.getpid()}.sock"
    assert stat.S_ISSOCK(socket_file.stat().st_mode)
    assert stat.S_IMODE(socket_file.stat().st_mode) == 0o600
    assert rpc.call(me, "os", "getpid") == os.getpid()
    assert [link.sock.family for link in client._pools[me]._idle] == [socket.AF_UNIX]
    livekit.stop_node()
    assert not socket_file.exists()


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_a_node_whose_unix_socket_is_gone_is_not_reached_over_tcp_by_name() -> None:
    # A registry name never falls back to the entry's TCP port: once a node is
    # dead, anyone may bind that port (see test_node_attacks.py).
    me = livekit.start_node("alpha")
    entry = registry.lookup("alpha")
    assert entry is not None
    Path(entry.path).unlink()
    with pytest.raises(livekit.NodeError) as caught:
        rpc.call(me, "os", "getpid")
    assert str(caught.value) == (
        f"nothing is listening for node {me} at {entry.path}; a node found by name is reached "
        f"through its Unix socket only (to use TCP, connect to 'alpha@127.0.0.1:{entry.port}')"
    )
    by_port = f"alpha@127.0.0.1:{entry.port}"
    assert rpc.call(by_port, "os", "getpid") == os.getpid()
    assert [link.sock.family for link in client._pools[by_port]._idle] == [socket.AF_INET]


def test_the_node_server_runs_under_livekits_supervisor() -> None:
    from livekit.supervisor import ChildInfo, app_supervisor

    livekit.start_node("alpha")
    children = app_supervisor().which_children()
    assert ChildInfo("node-server", "worker", alive=True, restarts=0) in children
    livekit.stop_node()
    assert all(info.name != "node-server" for info in app_supervisor().which_children())


def test_start_node_under_another_name_while_running_is_refused() -> None:
    me = livekit.start_node("alpha")
    with pytest.raises(livekit.NodeError) as caught:
        livekit.start_node("beta")
    assert str(caught.value) == (
        f"this interpreter is already node {me}; "
        "stop_node() first to change its name, cookie, host or port"
    )
    with pytest.raises(livekit.NodeError, match="to change its name, cookie, host or port"):
        livekit.start_node("alpha", port=4370)


def test_a_node_that_fails_to_start_leaves_nothing_bound_or_registered(
    monkeypatch: pytest.MonkeyPatch, livekit_home: Path
) -> None:
    from livekit.supervisor import Supervisor

    def refuse(self: Supervisor, spec: object) -> str:
        raise RuntimeError("supervisor gave up")

    monkeypatch.setattr(Supervisor, "start_child", refuse)
    with pytest.raises(RuntimeError, match="supervisor gave up"):
        livekit.start_node("alpha")
    assert registry.lookup("alpha") is None
    assert list((livekit_home / "nodes").iterdir()) == []  # no entry, no socket file
    assert local._running is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 70000}, "expected a port between 0 and 65535, got 70000"),
        ({"port": True}, "expected a port between 0 and 65535, got True"),
        ({"host": ""}, "expected a host address to listen on, got ''"),
    ],
)
def test_start_node_rejects_bad_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=r"^expected a ") as caught:
        livekit.start_node("alpha", **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_call_passes_args_kwargs_and_dotted_function_names() -> None:
    me = livekit.node()
    assert rpc.call(me, "builtins", "sorted", ([3, 1, 2],), {"reverse": True}) == [3, 2, 1]
    assert rpc.call(me, "os.path", "join", ["a", "b"]) == os.path.join("a", "b")
    assert rpc.call(me, "datetime", "date.fromordinal", (1,)) == datetime.date(1, 1, 1)


def test_call_sends_lambdas_by_value() -> None:
    me = livekit.node()
    double = lambda x: x * 2  # noqa: E731 -- a lambda is what is being sent
    assert rpc.call(me, "builtins", "list", (map(double, range(3)),)) == [0, 2, 4]


def test_a_remote_exception_is_raised_here_with_the_remote_traceback() -> None:
    me = livekit.node()
    with pytest.raises(json.JSONDecodeError) as caught:
        rpc.call(me, "json", "loads", ("{oops",))
    error = caught.value
    assert error.__notes__ == [f"(raised on node {me} in json.loads())"]
    cause = error.__cause__
    assert isinstance(cause, rpc.RemoteTraceback)
    assert cause.text.startswith("Traceback (most recent call last):\n")
    assert f"json{os.sep}decoder.py" in cause.text
    assert "livekit" not in cause.text  # the node's own frames are left out
    assert cause.text.endswith(
        "json.decoder.JSONDecodeError: Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1)\n"
    )


def test_an_exception_that_cannot_travel_becomes_a_remote_error() -> None:
    class Unpicklable(Exception):  # noqa: N818 -- the name is what the test checks
        def __reduce__(self) -> tuple[object, ...]:
            raise TypeError("not today")

    def fail() -> None:
        raise Unpicklable("the sky fell")

    with pytest.raises(rpc.RemoteError) as caught:
        livekit.spawn(livekit.node(), fail).result(10)
    qualname = (
        f"{__name__}.test_an_exception_that_cannot_travel_becomes_a_remote_error"
        ".<locals>.Unpicklable"
    )
    assert str(caught.value).splitlines()[0] == f"{qualname}: the sky fell"
    assert ", in fail\n" in caught.value.__cause__.text  # type: ignore[union-attr]


def test_a_result_that_cannot_be_serialised_raises_a_clear_error() -> None:
    me = livekit.node()
    with pytest.raises(rpc.SerializationError) as caught:
        rpc.call(me, "threading", "Lock")
    assert str(caught.value) == (
        f"threading.Lock() on node {me}: cannot send back the result, a lock: "
        "cannot pickle '_thread.lock' object"
    )
    assert rpc.call(me, "operator", "add", (1, 2)) == 3  # the link is still good
    assert open_links() == 1


def test_arguments_that_cannot_be_serialised_raise_before_anything_is_sent() -> None:
    me = livekit.node()
    with pytest.raises(rpc.SerializationError) as caught:
        rpc.call(me, "builtins", "id", (threading.Lock(),))
    assert str(caught.value) == (
        f"cannot send the arguments of builtins.id() to node {me}: "
        "cannot pickle '_thread.lock' object"
    )


def test_a_timeout_raises_timeout_error_and_the_next_call_works() -> None:
    me = livekit.node()
    with pytest.raises(TimeoutError) as caught:
        rpc.call(me, "time", "sleep", (0.5,), timeout=0.05)
    assert str(caught.value) == f"node {me} did not answer time.sleep() within 0.05 s"
    assert rpc.call(me, "operator", "add", (1, 2), timeout=5) == 3


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("", "f"), ValueError, "expected a module name, got ''"),
        (("os", None), ValueError, "expected a function name, got None"),
        (("os", "getpid", "x"), TypeError, "expected args as a tuple or a list, got str"),
        (("os", "getpid", (), [1]), TypeError, "expected kwargs as a dict or None, got list"),
    ],
)
def test_call_rejects_bad_arguments_at_once(
    args: tuple[object, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        rpc.call("somewhere@localhost", *args)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_call_rejects_a_timeout_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="timeout") as caught:
        rpc.call("somewhere@localhost", "os", "getpid", timeout=0)
    assert str(caught.value) == "expected a timeout in seconds greater than 0, got 0"


def test_calls_reuse_one_link() -> None:
    me = livekit.node()
    for _ in range(5):
        rpc.call(me, "os", "getpid")
    assert open_links() == 1


def test_many_threads_can_call_one_node_at_once() -> None:
    me = livekit.node()
    count = 16
    start = threading.Barrier(count)
    results: dict[int, list[object]] = {}

    def worker(index: int) -> None:
        start.wait(10)
        results[index] = [rpc.call(me, "operator", "mul", (index, k)) for k in range(20)]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {i: [i * k for k in range(20)] for i in range(count)}
    assert open_links() <= count


def test_connect_to_an_unknown_name_says_so() -> None:
    with pytest.raises(livekit.NodeError) as caught:
        livekit.connect("nobody@localhost")
    assert str(caught.value) == (
        "unknown node nobody@localhost: no node named 'nobody' runs on this host"
    )


def test_connect_to_another_host_without_a_port_says_how() -> None:
    with pytest.raises(livekit.NodeError) as caught:
        livekit.connect("demo@elsewhere.invalid")
    assert str(caught.value) == (
        "unknown node demo@elsewhere.invalid: elsewhere.invalid is not this host, "
        "so give the node's port, as in 'demo@elsewhere.invalid:PORT'"
    )


def test_spawn_prints_come_back_to_the_caller(capsys: pytest.CaptureFixture[str]) -> None:
    def greet() -> str:
        print("hello from", threading.current_thread().name)
        print("to stderr too", file=__import__("sys").stderr)
        return "done"

    handle = livekit.spawn(livekit.node(), greet)
    assert handle.result(10) == "done"
    out, err = capsys.readouterr()
    assert out == f"hello from {handle.name}\n"
    assert err == "to stderr too\n"
    assert handle.name.startswith("livekit-spawn-")
    assert not handle.is_alive()


def test_spawn_runs_in_a_new_thread_and_its_exception_is_raised_by_result() -> None:
    handle = livekit.spawn(livekit.node(), lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        handle.result(10)


def test_spawn_join_raises_what_the_function_raised_instead_of_hiding_it() -> None:
    handle = livekit.spawn(livekit.node(), lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError) as caught:
        handle.join(10)
    assert caught.value.__notes__ == [f"(raised on node {livekit.node()} in spawned {handle.name})"]
    assert isinstance(caught.value.__cause__, rpc.RemoteTraceback)
    assert not handle.is_alive()


def test_spawn_join_raises_a_reason_when_the_link_is_lost() -> None:
    me = livekit.node()
    handle = livekit.spawn(me, lambda: __import__("time").sleep(0.5))
    assert livekit.disconnect(me)  # cuts the link the function's output comes on
    with pytest.raises(livekit.NodeError) as caught:
        handle.join(10)
    reason = str(caught.value).partition(f"while {handle.name} ran: ")[2]
    assert reason == "the node closed the link before the function ended (it stopped or died)"


def test_spawn_join_returns_quietly_when_its_timeout_passes_first() -> None:
    handle = livekit.spawn(livekit.node(), lambda: __import__("time").sleep(0.3))
    assert handle.join(0.01) is None
    assert handle.is_alive()
    handle.join(10)
    assert not handle.is_alive()


def test_spawn_result_times_out_while_the_function_runs() -> None:
    me = livekit.node()
    handle = livekit.spawn(me, lambda: __import__("time").sleep(0.3) or "slept")
    with pytest.raises(TimeoutError) as caught:
        handle.result(0.05)
    assert str(caught.value) == f"{handle.name} on node {me} still runs after 0.05 s"
    assert handle.is_alive()
    assert repr(handle) == f"<SpawnHandle {handle.name} on {me} running>"
    assert handle.result(10) == "slept"
    assert repr(handle) == f"<SpawnHandle {handle.name} on {me} done>"


def test_spawn_rejects_what_is_not_callable() -> None:
    with pytest.raises(TypeError) as caught:
        livekit.spawn("somewhere@localhost", 42)
    assert str(caught.value) == "expected a function to spawn, got int: 42"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_is_not_the_node_and_leaves_the_parents_links_alone() -> None:
    me = livekit.node()
    assert rpc.call(me, "os", "getpid") == os.getpid()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # the child: report by exit status only, never return into pytest
        ok = local._running is None and client._pools == {}
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert rpc.call(me, "os", "getpid") == os.getpid()  # the same link, still good
    assert open_links() == 1


def test_disconnect_closes_the_links_and_the_next_call_reconnects() -> None:
    me = livekit.node()
    rpc.call(me, "os", "getpid")
    assert livekit.disconnect(me) is True
    assert livekit.disconnect(me) is False
    assert rpc.call(me, "os", "getpid") == os.getpid()
