"""Nodes that are real separate Python processes, started with ``python -m livekit node``."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import altair as alt
import psutil
import pytest

import livekit
from livekit import rpc
from livekit.nodes import client, cookie, registry

START_TIMEOUT = 60.0


class NodeProcess:
    """A ``livekit node`` child process; :meth:`stop` ends it with a signal."""

    def __init__(self, home: Path, name: str, *options: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "livekit", "node", "--name", name, *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "LIVEKIT_HOME": str(home)},
        )
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        try:
            self.name = lines.get(timeout=START_TIMEOUT).strip()
        except queue.Empty:
            self.proc.kill()
            raise
        finally:
            reader.join(START_TIMEOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err


@pytest.fixture(autouse=True)
def livekit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "livekit-home"
    monkeypatch.setenv("LIVEKIT_HOME", str(home))
    cookie._reset()
    cookie.get_cookie()  # create the shared cookie file before any node races for it
    yield home
    client.disconnect_all()
    livekit.stop_node()
    cookie._reset()


@pytest.fixture
def start(livekit_home: Path) -> Iterator[type[NodeProcess]]:
    started: list[NodeProcess] = []

    class Started(NodeProcess):
        def __init__(self, name: str, *options: str) -> None:
            super().__init__(livekit_home, name, *options)
            started.append(self)

    yield Started
    for node in started:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.communicate(timeout=30)


def test_the_node_command_prints_its_name_and_stops_cleanly_on_sigterm(
    start: type[NodeProcess], livekit_home: Path
) -> None:
    node = start("alpha")
    assert node.name == f"alpha@{registry.this_host()}"
    entry = registry.lookup("alpha")
    assert entry is not None
    assert entry.pid == node.pid
    assert node.stop(signal.SIGTERM) == (0, "", "")
    assert registry.lookup("alpha") is None
    assert list((livekit_home / "nodes").iterdir()) == []


def test_the_node_command_stops_cleanly_on_ctrl_c(start: type[NodeProcess]) -> None:
    node = start("alpha")
    assert rpc.call(node.name, "os", "getpid") == node.pid
    assert node.stop(signal.SIGINT) == (0, "", "")
    assert registry.lookup("alpha") is None


def test_the_node_command_refuses_a_name_in_use(start: type[NodeProcess]) -> None:
    first = start("alpha")
    second = subprocess.run(
        [sys.executable, "-m", "livekit", "node", "--name", "alpha"],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert (second.returncode, second.stdout) == (1, "")
    assert second.stderr == (
        f"livekit node: the node name 'alpha' is in use by process {first.pid} on this host\n"
    )


def test_the_right_cookie_connects_and_a_wrong_one_is_refused(start: type[NodeProcess]) -> None:
    node = start("alpha", "--cookie", "alpha-secret")
    with pytest.raises(livekit.NodeError, match=r"^authentication failed for node alpha@"):
        livekit.connect(node.name)
    livekit.set_cookie(node.name, "alpha-secret")
    assert livekit.connect(node.name) is True
    assert rpc.call(node.name, "os", "getpid") == node.pid


def test_spawn_on_another_process_prints_in_the_caller(
    start: type[NodeProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    node = start("alpha")
    handle = livekit.spawn(node.name, lambda: print("running in", os.getpid()))
    handle.join(30)
    assert capsys.readouterr().out == f"running in {node.pid}\n"
    # Nothing of it reached the node's own stdout.
    assert node.stop() == (0, "", "")


def test_a_remote_exception_from_another_process_carries_its_traceback(
    start: type[NodeProcess],
) -> None:
    node = start("alpha")
    with pytest.raises(FileNotFoundError) as caught:
        rpc.call(node.name, "shutil", "copyfile", ("/no/such/file", "/no/such/copy"))
    cause = caught.value.__cause__
    assert isinstance(cause, rpc.RemoteTraceback)
    assert f"{os.sep}shutil.py" in cause.text
    assert caught.value.__notes__ == [f"(raised on node {node.name} in shutil.copyfile())"]


def test_a_timeout_on_another_process_leaves_the_node_serving(start: type[NodeProcess]) -> None:
    node = start("alpha")
    with pytest.raises(TimeoutError):
        rpc.call(node.name, "time", "sleep", (1.0,), timeout=0.1)
    assert rpc.call(node.name, "os", "getpid", timeout=30) == node.pid


def test_a_node_that_dies_during_a_call_raises_node_error(start: type[NodeProcess]) -> None:
    node = start("alpha")
    handle = livekit.spawn(node.name, lambda: __import__("time").sleep(60))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            rpc.call(node.name, "time", "sleep", (60,))
        except livekit.NodeError as error:
            errors.append(error)

    def both_sleeping() -> bool:
        # A thread that is just starting has no frame yet: its "where" is None.
        where = [row["where"] or "" for row in rpc.call(node.name, "livekit", "threads")]
        # Two calls are being answered (this one and the sleeping one), and the
        # spawned lambda runs.
        # A thread that has just started has no frame yet: its "where" is None.
        answering = sum((w or "").endswith(" _answer") for w in where)
        return answering >= 2 and any((w or "").endswith(" <lambda>") for w in where)

    caller = threading.Thread(target=call)
    caller.start()
    while not both_sleeping():
        pass
    node.proc.kill()
    node.proc.communicate(timeout=30)
    caller.join(30)
    assert [str(error).partition(": ")[0] for error in errors] == [
        f"lost the link to node {node.name} during time.sleep()"
    ]
    with pytest.raises(livekit.NodeError, match=r"^lost the link to node alpha@"):
        handle.result(30)
    # join() does not hide it either, and the reason is never empty.
    with pytest.raises(livekit.NodeError) as caught:
        handle.join(30)
    assert str(caught.value) == (
        f"lost the link to node {node.name} while {handle.name} ran: "
        "the node closed the link before the function ended (it stopped or died)"
    )


def test_a_node_restarted_under_the_same_name_is_found_again(start: type[NodeProcess]) -> None:
    first = start("alpha")
    assert rpc.call(first.name, "os", "getpid") == first.pid
    assert first.stop()[0] == 0
    second = start("alpha")
    assert second.name == first.name
    # The kept link to the first process is seen dead and replaced.
    assert rpc.call(second.name, "os", "getpid") == second.pid


def test_a_killed_nodes_stale_entry_is_ignored_and_cleaned(
    start: type[NodeProcess], livekit_home: Path
) -> None:
    node = start("alpha")
    node.proc.kill()  # SIGKILL: no chance to remove its registry entry
    node.proc.communicate(timeout=30)
    assert (livekit_home / "nodes" / "alpha.json").exists()
    with pytest.raises(livekit.NodeError) as caught:
        livekit.connect(node.name)
    assert str(caught.value) == (
        f"unknown node {node.name}: no node named 'alpha' runs on this host"
    )
    assert list((livekit_home / "nodes").iterdir()) == []  # entry and socket file
    assert start("alpha").name == node.name  # the name is free again


def test_the_seeds_flow_lists_processes_then_info_then_plots(start: type[NodeProcess]) -> None:
    node = start("alpha")
    livekit.set_cookie(node.name, livekit.get_cookie())
    assert livekit.connect(node.name)
    rows = rpc.call(node.name, "livekit.runtime", "processes")
    pids = [row["pid"] for row in rows]
    assert node.pid in pids
    keys = ["cpu_time", "memory", "status"]
    infos = [
        {"pid": pid, **info}
        for pid in pids
        if (info := rpc.call(node.name, "livekit.runtime", "process_info", (pid, keys)))
    ]
    mine = next(info for info in infos if info["pid"] == node.pid)
    assert mine["memory"] == pytest.approx(psutil.Process(node.pid).memory_info().rss, rel=0.5)
    chart = (
        alt.Chart(alt.Data(values=infos), title=f"Processes seen by {node.name}")
        .mark_point(tooltip=True)
        .encode(
            x=alt.X("cpu_time:Q", scale=alt.Scale(type="symlog"), title="CPU time (s)"),
            y=alt.Y("memory:Q", scale=alt.Scale(type="log"), title="Memory (bytes)"),
            color="status:N",
            tooltip=["pid:N"],
        )
    )
    spec = chart.to_dict()
    assert spec["data"]["values"] == infos
    assert spec["encoding"]["x"]["field"] == "cpu_time"
    assert len(infos) >= len(pids) // 2  # a few may exit while we ask


def test_links_to_another_process_are_kept_and_shared_by_threads(
    start: type[NodeProcess],
) -> None:
    node = start("alpha")
    count = 8
    barrier = threading.Barrier(count)
    seen: list[int] = []

    def worker() -> None:
        barrier.wait(30)
        seen.extend(rpc.call(node.name, "os", "getpid") for _ in range(10))

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert seen == [node.pid] * (count * 10)
    links = rpc.call(node.name, "livekit.nodes.local", "_running.server.connection_count")
    assert 1 <= links <= count + 1


def test_a_node_in_a_plain_script_removes_its_entry_on_sigterm_and_still_dies_of_it(
    livekit_home: Path,
) -> None:
    # SIGTERM is taken only over the default handler; the process still dies of it.
    code = "import livekit, sys; print(livekit.start_node('plain'), flush=True); sys.stdin.read()"
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("plain@")
        assert registry.lookup("plain") is not None
        assert len(list((livekit_home / "nodes").iterdir())) == 2  # entry and socket
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM
    assert list((livekit_home / "nodes").iterdir()) == []


def test_a_node_in_a_plain_script_removes_its_entry_when_it_exits(livekit_home: Path) -> None:
    code = "import livekit; print(livekit.start_node('plain'), flush=True)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.startswith("plain@")
    assert list((livekit_home / "nodes").iterdir()) == []


def test_nothing_is_left_after_livekit_serve_kills_a_kernel_that_was_a_node(
    livekit_home: Path,
) -> None:
    # The way `livekit serve` stops a page's kernel: KernelSession.close(),
    # which interrupts it and then kills it (SIGKILL) with its process group.
    import asyncio

    pytest.importorskip("jupyter_client")
    from livekit.kernel.book import Cell
    from livekit.kernel.session import KernelSession

    events: list[dict[str, object]] = []
    seen: list[list[str]] = []

    async def main() -> None:
        session = KernelSession(Path.cwd(), events.append)
        try:
            await session.start()
            session.run([Cell(1, "import livekit\nprint(livekit.node())")])
            async with asyncio.timeout(60):
                while not any(e.get("type") == "cell_done" for e in events):
                    await asyncio.sleep(0.05)
            seen.append(sorted(p.suffix for p in (livekit_home / "nodes").iterdir()))
        finally:
            await session.close()

    asyncio.run(main())
    assert [e for e in events if e.get("type") == "cell_done"] == [
        {"type": "cell_done", "cell": 1, "status": "ok"}
    ]
    assert seen == [[".json", ".sock"]]  # the kernel was a node
    assert list((livekit_home / "nodes").iterdir()) == []


# A node started under home A, in a script that then points LIVEKIT_HOME at
# home B and leaves as the parameter says. What it wrote must be removed from
# A, and nothing may appear in B (but the second node of "restart", which
# starts under B and is gone from it when the script ends).
MOVED_HOME_SCRIPT = """
import os, sys, threading
import livekit

home_a, home_b, how = sys.argv[1:]
os.environ["LIVEKIT_HOME"] = home_a
name = livekit.start_node("moved")
os.environ["LIVEKIT_HOME"] = home_b
print(name, sorted(os.listdir(os.path.join(home_a, "nodes"))), flush=True)
if how == "stop":
    assert livekit.stop_node()
elif how == "stop from another thread":
    stopper = threading.Thread(target=livekit.stop_node)
    stopper.start()
    stopper.join()
elif how == "start again under its name":
    assert livekit.start_node("moved") == name == livekit.node()  # the same node
elif how == "restart":
    assert livekit.stop_node()
    livekit.start_node("moved")
    print(sorted(os.listdir(os.path.join(home_b, "nodes"))), flush=True)
elif how == "sigterm":
    sys.stdin.read()
# "exit": atexit stops the node
"""


#: How the script above ends its node, once LIVEKIT_HOME names home B.
ENDINGS = [
    "stop",
    "stop from another thread",
    "start again under its name",
    "restart",
    "exit",
    "sigterm",
]


@pytest.mark.parametrize("how", ENDINGS)
def test_a_node_removes_its_entry_from_the_home_it_started_in_after_livekit_home_changes(
    tmp_path: Path, how: str
) -> None:
    home_a, home_b = tmp_path / "home-a", tmp_path / "home-b"
    with subprocess.Popen(
        [sys.executable, "-c", MOVED_HOME_SCRIPT, str(home_a), str(home_b), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        own = [f"moved.{proc.pid}.sock", "moved.json"]
        assert proc.stdout.readline() == f"moved@{registry.this_host()} {own}\n"
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGTERM if how == "sigterm" else 0)
    assert list((home_a / "nodes").iterdir()) == []
    if how == "restart":  # a new node: it starts, and ends, under the home of its own start
        assert out == f"{own}\n"
        assert list((home_b / "nodes").iterdir()) == []
    else:
        assert out == ""
        assert not home_b.exists()


def test_this_interpreters_node_stops_in_its_home_after_the_test_that_set_it_is_over(
    livekit_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a test suite does: one test starts the node under its LIVEKIT_HOME,
    # a later one, with its own LIVEKIT_HOME, stops it.
    livekit.start_node("moved")
    nodes = livekit_home / "nodes"
    assert sorted(p.name for p in nodes.iterdir()) == [f"moved.{os.getpid()}.sock", "moved.json"]
    later = tmp_path / "later-home"
    monkeypatch.setenv("LIVEKIT_HOME", str(later))
    assert livekit.stop_node() is True
    assert list(nodes.iterdir()) == []
    assert not later.exists()


def test_a_node_under_a_relative_livekit_home_stops_in_it_after_a_change_of_directory(
    tmp_path: Path,
) -> None:
    script = (
        "import os, sys, livekit\n"
        "os.environ['LIVEKIT_HOME'] = 'relative-home'\n"
        "livekit.start_node('moved')\n"
        "os.chdir(sys.argv[1])\n"
        "livekit.stop_node()\n"
    )
    (tmp_path / "start").mkdir()
    (tmp_path / "elsewhere").mkdir()
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "elsewhere")],
        cwd=tmp_path / "start",
        timeout=60,
        check=True,
    )
    assert list((tmp_path / "start" / "relative-home" / "nodes").iterdir()) == []
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_this_interpreter_calls_its_own_node_by_name_after_livekit_home_changes(
    livekit_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The node lives in the home it started in; the name still reaches it
    # from here once LIVEKIT_HOME names another (empty) home.
    node = livekit.start_node("own")
    try:
        monkeypatch.setenv("LIVEKIT_HOME", str(tmp_path / "other-home"))
        assert rpc.call(node, "os", "getpid") == os.getpid()
    finally:
        livekit.stop_node()
    assert list((livekit_home / "nodes").iterdir()) == []
