"""Targets for the attach tests: plain scripts that never import livekit.

Each one runs in its own process, started with :class:`Target`, and is told
to finish by a file appearing: its main thread keeps running Python code
(``sys.remote_exec`` needs that to get in), and when it ends it prints what
its work added up to, so that a test can check the work went right.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

#: A shared library that keeps a descriptor of its own file once loaded:
#: libffi 3.5 (Debian sid) does, for its trampolines, when ctypes is
#: imported. It lives as long as the module that loaded it; no detach can close it.
LIBRARY = re.compile(r".*/lib[^/]*\.so(\.[\d.]+)?\Z")

#: Threads named as the target names them; the tests look for these names.
PLAIN = """\
import sys, threading, time
from pathlib import Path

stop_file = Path(sys.argv[1])
stop = threading.Event()
laps = []

def work():
    while not stop.is_set():
        laps.append(1)
        time.sleep(0.005)

worker = threading.Thread(target=work, name="worker-1")
worker.start()
print("ready", flush=True)
while not stop_file.exists():
    time.sleep(0.02)
stop.set()
worker.join()
print("done", len(laps) > 0, flush=True)
"""

#: A thread holds the GIL inside C code (libc's sleep through ctypes.PyDLL,
#: which does not release it) for a few seconds: nobody else gets the GIL.
GIL_HOG = """\
import ctypes, sys, threading, time
from pathlib import Path

stop_file = Path(sys.argv[1])

def hog():
    # "ready" goes out while this thread holds the GIL, which it keeps from here on.
    sys.stdout.write("ready\\n")
    sys.stdout.flush()
    ctypes.PyDLL(None).sleep(int(sys.argv[2]))

threading.Thread(target=hog, name="hog").start()
while not stop_file.exists():
    time.sleep(0.02)
print("done", True, flush=True)
"""

#: Not dumpable: a process of the same user may not trace it (root still may).
UNDUMPABLE = """\
import ctypes, sys, time
from pathlib import Path

PR_SET_DUMPABLE = 4
ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
stop_file = Path(sys.argv[1])
print("ready", flush=True)
while not stop_file.exists():
    time.sleep(0.02)
print("done", True, flush=True)
"""


class Target:
    """A plain Python script running in a child process until :meth:`finish`.

    Its script and stop file live in a directory of their own under the
    system's temporary directory, open to all, because some targets run
    as another user.
    """

    def __init__(
        self,
        source: str,
        *args: str,
        python: str = sys.executable,
        prefix: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="livekit-attach-target-"))
        # Open to all: some targets run as another user.
        os.chmod(self.directory, 0o755)  # noqa: S103
        script = self.directory / "target.py"
        script.write_text(source, encoding="utf-8")
        os.chmod(script, 0o644)
        self.stop_file = self.directory / "stop"
        self.proc = subprocess.Popen(
            [*prefix, python, str(script), str(self.stop_file), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            _, err = self.proc.communicate()
            raise RuntimeError(f"the target did not start: {line!r} {err}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def counts(self) -> tuple[int, int]:
        """OS threads and open file descriptors."""
        proc = psutil.Process(self.pid)
        return proc.num_threads(), proc.num_fds()

    def descriptors(self) -> list[str]:
        """What each open file descriptor points at, sorted (a socket, a pipe, a path)."""
        found = []
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                found.append(os.readlink(f"/proc/{self.pid}/fd/{fd}"))
            except OSError:
                continue  # closed while listed
        return sorted(found)

    def kept_open(self, before: list[str], timeout: float = 10.0) -> list[str]:
        """Wait for the descriptors opened since ``before`` to close; return those that stay.

        Only libraries may stay (see :data:`LIBRARY`); anything else still open
        at the deadline fails the test.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                return left_by_imports(before, self.descriptors())
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.02)

    def settle(self, expected: tuple[int, int], timeout: float = 10.0) -> tuple[int, int]:
        """Wait until the counts are ``expected`` (threads end a moment after they say so)."""
        deadline = time.monotonic() + timeout
        while (now := self.counts()) != expected and time.monotonic() < deadline:
            time.sleep(0.02)
        return now

    def finish(self, timeout: float = 30.0) -> tuple[int, str, str]:
        """Tell the script to stop; return its exit status, output and errors."""
        self.stop_file.touch()
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
        shutil.rmtree(self.directory, ignore_errors=True)


#: This interpreter's version, as ``3.11``.
MINE = f"{sys.version_info[0]}.{sys.version_info[1]}"

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def nobody_python(env: dict[str, str] | None = None, module: str = "") -> str | None:
    """Return an interpreter that uid 65534 can run (and import ``module`` with ``env``).

    The first of: this one, the system's of the same version, the system's
    ``python3`` (only when no module is asked for: it may be another version).
    """
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        return None
    candidates = [sys.executable, f"/usr/bin/python{MINE}"]
    if not module:
        candidates.append("/usr/bin/python3")
    for python in candidates:
        if not os.path.exists(python):
            continue
        probe = subprocess.run(
            [*NOBODY, python, "-c", f"import {module}" if module else "pass"],
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        if probe.returncode == 0:
            return python
    return None


def left_by_imports(before: list[str], after: list[str]) -> list[str]:
    """The descriptors that libraries livekit loaded keep open; fail on any other new one."""
    new = list(after)
    for path in before:
        new.remove(path)
    kept = [path for path in new if LIBRARY.match(path)]
    # Sockets, pipes, epoll and livekit's own files must all be closed by the detach.
    assert len(kept) == len(new), f"the detach left {sorted(set(new) - set(kept))} open"
    return kept
