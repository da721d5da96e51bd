"""50 attach/detach cycles on a busy process: its work goes on and adds up.

The target passes numbers through a ``queue.Queue`` between threads, runs
an asyncio loop that serves a TCP echo socket to a client thread, and has
a thread blocked in C (``os.read`` on a pipe nobody writes to). Each cycle
attaches, calls into the node, and detaches. At the end the target's
threads and descriptors are what they were after the first cycle (the
first one loads livekit's modules for good), and its own checks pass.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import livekit
from livekit import rpc
from livekit.nodes import client, cookie
from tests.attach_targets import Target
from tests.conftest import require

CYCLES = 50

BUSY = """\
import asyncio, os, queue, socket, sys, threading, time
from pathlib import Path

stop_file = Path(sys.argv[1])
stop = threading.Event()
items = queue.Queue(maxsize=100)
sums = {"sent": 0, "got": 0, "echoes": 0, "bad_echoes": 0}

def produce():
    n = 0
    while not stop.is_set():
        n += 1
        items.put(n)
        sums["sent"] += n
        if n % 50 == 0:
            time.sleep(0.001)  # busy, but leaving the two cores of CI to the rest
    items.put(None)

def consume():
    while (n := items.get()) is not None:
        sums["got"] += n

open_connections = []

async def echo(reader, writer):
    open_connections.append(writer)
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()
    open_connections.remove(writer)

def serve(ready, port):
    async def main():
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        # Serve until told to stop and the client has hung up.
        while not stop.is_set() or open_connections:
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
    asyncio.run(main())

talking = threading.Event()

def talk(port):
    with socket.create_connection(("127.0.0.1", port)) as conn:
        lines = conn.makefile("rwb")
        n = 0
        while not stop.is_set():
            n += 1
            lines.write(b"%d\\n" % n)
            lines.flush()
            sums["echoes"] += 1
            if lines.readline() != b"%d\\n" % n:
                sums["bad_echoes"] += 1
            talking.set()  # every socket of the target is open by now
            time.sleep(0.001)

blocked_r, blocked_w = os.pipe()

def blocked_in_c():
    os.read(blocked_r, 1)  # waits in the kernel until the end

ready, port = threading.Event(), []
threads = [
    threading.Thread(target=produce, name="producer"),
    threading.Thread(target=consume, name="consumer"),
    threading.Thread(target=serve, args=(ready, port), name="event-loop"),
    threading.Thread(target=blocked_in_c, name="blocked-in-c"),
]
for t in threads:
    t.start()
ready.wait()
talker = threading.Thread(target=talk, args=(port[0],), name="echo-client")
talker.start()
talking.wait()
print("ready", flush=True)
while not stop_file.exists():
    time.sleep(0.01)
stop.set()
talker.join()
os.write(blocked_w, b"x")
for t in threads:
    t.join()
ok = sums["sent"] == sums["got"] and sums["echoes"] > 0 and sums["bad_echoes"] == 0
print("done", ok, flush=True)
"""


@pytest.fixture(autouse=True)
def livekit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "livekit-home"
    monkeypatch.setenv("LIVEKIT_HOME", str(home))
    cookie._reset()
    yield home
    client.disconnect_all()
    cookie._reset()


@pytest.mark.slow
def test_fifty_attach_detach_cycles_on_a_busy_target(livekit_home: Path) -> None:
    if sys.version_info < (3, 14):
        require(shutil.which("gdb") is not None, "gdb is not installed (apt-get install gdb)")
    target = Target(BUSY)
    try:
        threads, files = target.counts()[0], target.descriptors()
        for _ in range(CYCLES):
            name = livekit.attach(target.pid, timeout=30)
            assert rpc.call(name, "os", "getpid") == target.pid
            names = {row["name"] for row in rpc.call(name, "livekit", "threads")}
            assert {"producer", "consumer", "event-loop", "blocked-in-c"} <= names
            livekit.detach(name)
        # No thread, socket, pipe or file more than before the first attach;
        # only libraries that keep their own file open (see attach_targets.LIBRARY).
        kept = target.kept_open(files)
        expected = (threads, len(files) + len(kept))
        assert target.settle(expected) == expected
        assert target.finish(timeout=60) == (0, "done True\n", "")
    finally:
        target.kill()
    assert not (livekit_home / "attach").exists() or not any((livekit_home / "attach").iterdir())
