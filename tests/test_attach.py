"""livekit attach on real processes: plain scripts that never imported livekit.

Every failure is checked as it happens for real (no gdb on PATH, a process
already traced, another user's process, another CPython, a thread that
holds the GIL), and after each one the target must still run and finish
its work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import livekit
from livekit import rpc
from livekit.attaching import AttachError, inject
from livekit.attaching import _bootstrap as bootstrap
from livekit.attaching import dump as dump_process
from livekit.nodes import client, cookie, registry
from tests.attach_targets import (
    GIL_HOG,
    MINE,
    NOBODY,
    PLAIN,
    UNDUMPABLE,
    Target,
    nobody_python,
)
from tests.conftest import require

GDB = sys.version_info < (3, 14)
ROOT = Path(__file__).resolve().parent.parent
needs_gdb = pytest.mark.skipif(not GDB, reason="gdb is the way in below 3.14 only")


@pytest.fixture(autouse=True)
def livekit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "livekit-home"
    monkeypatch.setenv("LIVEKIT_HOME", str(home))
    cookie._reset()
    yield home
    client.disconnect_all()
    cookie._reset()


@pytest.fixture
def start() -> Iterator[type[Target]]:
    """Start targets that are killed at the end of the test if still running."""
    started: list[Target] = []

    class Started(Target):
        def __init__(self, source: str, *args: str, **options: Any) -> None:
            super().__init__(source, *args, **options)
            started.append(self)

    yield Started
    for target in started:
        target.kill()


@pytest.fixture(autouse=True)
def _gdb_present() -> None:
    if GDB:
        require(shutil.which("gdb") is not None, "gdb is not installed (apt-get install gdb)")


def attach_files(home: Path) -> list[str]:
    directory = home / "attach"
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def run_livekit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livekit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_attach_makes_a_plain_script_a_node_that_answers_calls(start: type[Target]) -> None:
    target = start(PLAIN)
    done = inject(target.pid, timeout=30)
    assert done.name == f"python{target.pid}@{registry.this_host()}"
    assert done.method == ("gdb" if GDB else "remote_exec")
    assert not done.existing
    assert rpc.call(done.name, "os", "getpid") == target.pid
    tree = str(rpc.call(done.name, "livekit", "app_tree"))
    assert '["MainThread"]' in tree
    assert '["worker-1"]' in tree  # the target's own thread, by the name it gave it
    assert '["node-server"]' in tree
    livekit.detach(done.name)
    assert target.finish() == (0, "done True\n", "")


def test_spawned_code_runs_there_and_its_prints_come_back(
    start: type[Target], capsys: pytest.CaptureFixture[str]
) -> None:
    target = start(PLAIN)
    name = livekit.attach(target.pid, timeout=30)

    def census() -> int:
        import os
        import threading

        print(f"in {os.getpid()}:", sorted(t.name for t in threading.enumerate())[:3])
        return os.getpid()

    assert livekit.spawn(name, census).result(timeout=30) == target.pid
    assert (
        f"in {target.pid}: ['MainThread', 'livekit', 'livekit-node-link" in capsys.readouterr().out
    )
    memory = rpc.call(name, "livekit", "memory")
    assert memory["total"] > 0
    livekit.detach(name)
    assert target.finish() == (0, "done True\n", "")


def test_detach_leaves_the_threads_and_descriptors_of_before(
    start: type[Target], livekit_home: Path
) -> None:
    target = start(PLAIN)
    before, files = target.counts(), target.descriptors()
    name = livekit.attach(target.pid, timeout=30)
    assert target.counts()[0] > before[0]  # the node's threads run there now
    state = rpc.call(name, "livekit.attaching._agent", "state")
    assert state["attached"]
    assert state["node"] == name
    livekit.detach(name)
    kept = target.kept_open(files)
    assert target.settle((before[0], before[1] + len(kept))) == (before[0], before[1] + len(kept))
    assert target.descriptors() == sorted(files + kept)
    assert registry.lookup(f"python{target.pid}") is None
    assert attach_files(livekit_home) == []
    with pytest.raises(livekit.NodeError):
        rpc.call(name, "os", "getpid", timeout=5)
    assert target.finish() == (0, "done True\n", "")


def test_attaching_again_returns_the_same_node(start: type[Target]) -> None:
    target = start(PLAIN)
    first = livekit.attach(target.pid, name="again", timeout=30)
    again = inject(target.pid, timeout=30)
    assert (again.name, again.existing, again.method) == (first, True, "existing")
    livekit.detach(first)
    assert target.finish()[0] == 0


def test_another_interpreter_of_the_same_user_reaches_the_node(start: type[Target]) -> None:
    target = start(PLAIN)
    name = livekit.attach(target.pid, timeout=30)
    # A fresh interpreter has no cookie for it: attach() finds the node and its cookie file.
    code = (
        "import sys, livekit; "
        "name = livekit.attach(int(sys.argv[1])); "
        "print(name, livekit.rpc.call(name, 'os', 'getpid'))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(target.pid)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (other.returncode, other.stdout, other.stderr) == (0, f"{name} {target.pid}\n", "")
    livekit.detach(name)
    assert target.finish()[0] == 0


def test_the_cookie_is_fresh_random_and_only_the_attacher_can_read_it(
    start: type[Target], livekit_home: Path
) -> None:
    target = start(PLAIN)
    name = livekit.attach(target.pid, timeout=30)
    path = livekit_home / "attach" / f"python{target.pid}.cookie"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct((livekit_home / "attach").stat().st_mode & 0o777) == "0o700"
    secret = path.read_text().strip()
    assert len(secret) >= 32
    assert secret != cookie.get_cookie()  # not the user's shared cookie
    # Without that cookie the node admits nobody.
    cookie.set_cookie(name, "not-the-cookie")
    client.disconnect_all()
    with pytest.raises(livekit.NodeError):
        rpc.call(name, "os", "getpid", timeout=5)
    livekit.detach(name)
    assert not path.exists()
    assert target.finish()[0] == 0


def test_the_cli_attaches_prints_the_name_and_the_pause_then_detaches(
    start: type[Target],
) -> None:
    target = start(PLAIN)
    attached = run_livekit("attach", str(target.pid), "--name", "cli-node", "--timeout", "30")
    assert attached.returncode == 0, attached.stderr
    assert attached.stdout == f"cli-node@{registry.this_host()}\n"
    assert f"attached to process {target.pid}" in attached.stderr
    assert "held it for" in attached.stderr
    detached = run_livekit("detach", attached.stdout.strip())
    assert (detached.returncode, detached.stderr) == (0, "")
    assert target.finish() == (0, "done True\n", "")


# ── refusals: each leaves the target running as before ────────────────


def test_another_users_process_is_refused_without_side_effects(
    start: type[Target], livekit_home: Path
) -> None:
    python = nobody_python()
    require(python is not None, "needs root, setpriv and a Python that uid 65534 can run")
    assert python is not None
    target = start(PLAIN, python=python, prefix=NOBODY)
    with pytest.raises(AttachError) as refused:
        livekit.attach(target.pid)
    assert refused.value.reason == "other-user"
    assert "uid 65534" in str(refused.value)
    assert "root included" in str(refused.value)
    assert not livekit_home.exists()  # not even the attach directory was made
    assert target.finish() == (0, "done True\n", "")


def test_a_process_that_is_not_cpython_is_refused(start: type[Target]) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with pytest.raises(AttachError) as refused:
            livekit.attach(sleeper.pid)
        assert refused.value.reason == "not-cpython"
        assert "(sleep) is not a CPython interpreter" in str(refused.value)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_no_such_process() -> None:
    with pytest.raises(AttachError) as refused:
        livekit.attach(2**22 + 1)
    assert refused.value.reason == "no-process"


def other_python() -> tuple[str, str] | None:
    """An interpreter of another CPython minor version and its version, if one runs here."""
    mine = MINE
    for minor in (11, 12, 13, 14, 15):
        for name in (f"python3.{minor}", f"/usr/bin/python3.{minor}"):
            found = shutil.which(name)
            if found is None:
                continue
            probe = subprocess.run(
                [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
            )
            version = probe.stdout.strip()
            if probe.returncode == 0 and version != mine:
                return found, version
    return None


def test_another_python_version_is_refused_naming_both(start: type[Target]) -> None:
    other = other_python()
    require(other is not None, "no interpreter of another Python version on PATH")
    assert other is not None
    python, theirs = other
    target = start(PLAIN, python=python)
    with pytest.raises(AttachError) as refused:
        livekit.attach(target.pid)
    mine = MINE
    assert refused.value.reason == "version"
    assert f"runs Python {theirs} but this livekit runs on Python {mine}" in str(refused.value)
    assert target.finish() == (0, "done True\n", "")


def test_the_bootstrap_itself_refuses_another_python(tmp_path: Path) -> None:
    """The check the attacher makes from outside is made again inside, before sys.path changes."""
    other = other_python()
    require(other is not None, "no interpreter of another Python version on PATH")
    assert other is not None
    python, theirs = other
    mine = MINE
    result = tmp_path / "result.json"
    script = tmp_path / "bootstrap.py"
    request = {
        "python": mine,
        "deadline": time.time() + 60,
        "script": str(script),
        "result": str(result),
        "paths": [str(tmp_path / "must-not-be-added")],
    }
    script.write_text(bootstrap.script(request) + "\nimport sys; print(sys.path[-1])\n")
    ran = subprocess.run([python, str(script)], capture_output=True, text=True, check=True)
    answer = json.loads(result.read_text())
    assert answer["ok"] is False
    assert answer["reason"] == "version"
    assert f"runs Python {theirs} (" in answer["message"]
    assert f"but the attaching livekit runs on Python {mine}" in answer["message"]
    assert "must-not-be-added" not in ran.stdout
    assert not script.exists()  # the bootstrap removes itself once read


@needs_gdb
def test_without_gdb_the_cli_says_how_to_install_it(
    start: type[Target], tmp_path: Path, livekit_home: Path
) -> None:
    target = start(PLAIN)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    failed = run_livekit("attach", str(target.pid), env=env)
    assert failed.returncode == 1
    assert failed.stderr.startswith("livekit attach: no-gdb: gdb is not installed")
    assert "apt-get install gdb" in failed.stderr
    assert attach_files(livekit_home) == []
    assert target.finish() == (0, "done True\n", "")


@needs_gdb
def test_a_process_another_debugger_traces_is_refused_with_the_ptrace_rules(
    start: type[Target], livekit_home: Path
) -> None:
    target = start(PLAIN)
    # A second process seizes the target (PTRACE_SEIZE does not stop it): one tracer at a time.
    seize = (
        "import ctypes, sys, time\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "PTRACE_SEIZE = 0x4206\n"
        "if libc.ptrace(PTRACE_SEIZE, int(sys.argv[1]), 0, 0) != 0:\n"
        "    sys.exit('seize failed: %d' % ctypes.get_errno())\n"
        "print('seized', flush=True)\n"
        "time.sleep(60)\n"
    )
    tracer = subprocess.Popen(
        [sys.executable, "-c", seize, str(target.pid)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert tracer.stdout is not None
        assert tracer.stdout.readline() == "seized\n"
        with pytest.raises(AttachError) as refused:
            livekit.attach(target.pid, timeout=30)
        message = str(refused.value)
        assert refused.value.reason == "ptrace"
        assert f"already traced by process {tracer.pid}" in message
        assert attach_files(livekit_home) == []
    finally:
        tracer.kill()
        tracer.communicate()  # reaps it and closes its pipe
    assert target.finish() == (0, "done True\n", "")


def nobody_env(home: Path) -> dict[str, str]:
    """An environment in which uid 65534 imports this very livekit and its dependencies."""
    paths = [str(ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
        "LIVEKIT_HOME": str(home),
        "HOME": str(home),
    }


def test_a_process_that_forbids_tracing_is_refused_with_the_ptrace_rules(
    start: type[Target], tmp_path: Path
) -> None:
    """As an ordinary user, attach to one's own process that made itself non-dumpable."""
    home = tmp_path / "nobody-home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    env = nobody_env(home)
    python = nobody_python(env, "livekit.attaching")
    if python is None:
        pytest.skip(
            "uid 65534 cannot run this interpreter with livekit (it lives in a private "
            "directory); the ptrace refusal is also tested with a traced target"
        )
    target = start(UNDUMPABLE, python=python, prefix=NOBODY, env=env)
    failed = subprocess.run(
        [*NOBODY, python, "-m", "livekit", "attach", str(target.pid), "--timeout", "30"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith("livekit attach: ptrace: ")
    assert f"process {target.pid} is not dumpable" in failed.stderr
    assert "only root (CAP_SYS_PTRACE) may trace" in failed.stderr
    assert target.finish() == (0, "done True\n", "")


def test_a_target_that_cannot_let_the_bootstrap_in_times_out_and_runs_on(
    start: type[Target], livekit_home: Path
) -> None:
    # A thread holds the GIL in C: gdb waits for it to be released, and
    # remote_exec for the main thread, which waits for the GIL.  (A main
    # thread asleep in time.sleep is let in by 3.15, not by 3.14.)
    target = start(GIL_HOG, "6")
    began = time.monotonic()
    with pytest.raises(AttachError) as refused:
        livekit.attach(target.pid, timeout=1.5)
    assert refused.value.reason == "timeout"
    assert time.monotonic() - began < 20
    assert target.finish() == (0, "done True\n", "")
    # A bootstrap that ran late saw the deadline had passed: no node, and it removed itself.
    assert registry.lookup(f"python{target.pid}") is None
    assert attach_files(livekit_home) == []


# ── the read-only view ───────────────────────────────────────────────


def test_dump_draws_the_threads_and_their_stacks_without_running_code(
    start: type[Target],
) -> None:
    target = start(PLAIN)
    before = target.counts()
    drawn = run_livekit("attach", "--dump", str(target.pid))
    assert drawn.returncode == 0, drawn.stderr
    text = drawn.stdout
    assert text.startswith("graph TD\n")
    assert f'n0["python {MINE} (pid {target.pid}), read-only"]' in text
    assert "MainThread (tid" in text
    assert "worker-1 (tid" in text
    assert "work target.py:" in text  # the worker's own function, where it is
    assert target.counts() == before
    assert target.finish() == (0, "done True\n", "")


def test_dump_reads_another_users_process_that_attach_refuses(start: type[Target]) -> None:
    # py-spy reads any version; 3.14's unwinder only its own.
    python = nobody_python() if GDB else nobody_python(module="sys")
    require(python is not None, "needs root, setpriv and a Python that uid 65534 can run")
    assert python is not None
    target = start(PLAIN, python=python, prefix=NOBODY)
    with pytest.raises(AttachError):
        livekit.attach(target.pid)
    text = str(dump_process(target.pid))
    assert "worker-1 (tid" in text
    assert target.finish() == (0, "done True\n", "")


def test_dump_refuses_what_is_not_cpython() -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with pytest.raises(AttachError) as refused:
            dump_process(sleeper.pid)
        assert refused.value.reason == "not-cpython"
    finally:
        sleeper.kill()
        sleeper.wait()


ASYNC_SERVER = """\
import asyncio, sys, threading, time
from pathlib import Path

stop_file = Path(sys.argv[1])

async def handle(reader, writer):
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()

async def watch_stop():
    while not stop_file.exists():
        await asyncio.sleep(0.02)

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        serving = asyncio.create_task(server.serve_forever(), name="serve")
        watching = asyncio.create_task(watch_stop(), name="watch-stop")
        await asyncio.sleep(0.05)  # both tasks started, and waiting, before "ready"
        print("ready", flush=True)
        await watching
        serving.cancel()

asyncio.run(main())
print("done", True, flush=True)
"""


@pytest.mark.skipif(sys.version_info < (3, 14), reason="the remote unwinder is 3.14's")
def test_dump_draws_asyncio_tasks_on_314(start: type[Target]) -> None:
    from livekit.attaching import stacks

    target = start(ASYNC_SERVER)
    text = str(stacks.dump(target.pid))
    assert "task watch-stop: watch_stop target.py:" in text
    assert "task serve:" in text
    assert target.finish() == (0, "done True\n", "")
