"""A traced child process's side of a trace: standard library only.

Every message between processes passes through
``multiprocessing.connection.Connection._send_bytes`` in the sender and
``_recv_bytes`` in the receiver, as the bytes of one pickle.  Each side
records a *half*: when, who, on which channel (the pipe or socket,
named by its device and inode, the same in every process that holds an
end), and the message's digest.  The parent pairs the halves when the
trace ends (:mod:`livekit.trace.processes`): a receive is the earliest
earlier send of the same bytes on the same channel, so that each arrow
joins the very message sent to the one taken, whatever its label.

A child started during a trace gets this module one of two ways:

- ``fork``: the child is a copy of the parent, with the trace's hooks in
  place; when it starts running, it takes them out and calls
  :meth:`Child.watch` itself.
- ``spawn`` and ``forkserver``: the child is a fresh interpreter that
  unpickles its ``Process`` object.  The parent adds a ticket to that
  object, which unpickles as ``exec(source of this module, {"TICKET":
  ...})``: the child runs this file without importing livekit (an import
  of livekit costs about 0.3 s, more than a spawn), and nothing of it is
  left in ``sys.modules``.

The child reports to the parent with plain system calls (no
multiprocessing connection, so the report is not itself traced).  As it
starts, it passes the parent a file with no name (a ``memfd``) over a
socket pair made for it, and appends each half to that file as it
happens, so that a child killed later still told its part.  When the
parent says the trace ended, or when the process ends, whichever comes
first, it appends how it ended, puts back every function it wrapped and
closes the file and the socket: after the trace the child runs exactly
the standard library's code, with no extra file descriptor or thread.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import multiprocessing.process
import multiprocessing.util
import os
import pickle
import socket
import stat
import struct
import threading
import time
import zlib
from typing import Any

#: (device, inode, is a socket) of a pipe or socket; (0, 0, False) when unknown.
Channel = tuple[int, int, bool]
#: ("send" or "recv", time, participant key or None, channel, (crc32, size),
#: the pickle's bytes (sends up to MAX_PAYLOAD bytes) or None).
Half = tuple[str, float, "int | None", Channel, tuple[int, int], "bytes | None"]

#: A sent message's bytes are kept up to this size, to label it later.
MAX_PAYLOAD = 64 * 1024
UNKNOWN_CHANNEL: Channel = (0, 0, False)
_LENGTH = struct.Struct("!Q")
_CONNECTION: Any = multiprocessing.connection.Connection


def channel_of(connection: Any) -> Channel:
    """The pipe or socket under ``connection``, named the same in every process."""
    try:
        info = os.fstat(connection.fileno())
    except (OSError, ValueError):
        return UNKNOWN_CHANNEL
    return (info.st_dev, info.st_ino, stat.S_ISSOCK(info.st_mode))


def half(kind: str, key: int | None, connection: Any, data: Any) -> Half:
    """One half of a message: ``data`` is the bytes sent or the BytesIO received."""
    now = time.monotonic()
    with memoryview(data.getbuffer() if kind == "recv" else data) as view:
        size = view.nbytes
        digest = (zlib.crc32(view), size)
        payload = bytes(view) if kind == "send" and size <= MAX_PAYLOAD else None
    return (kind, now, key, channel_of(connection), digest, payload)


def report_file() -> int:
    """A file with no name on any file system, for the child's report.

    It is ``memfd_create`` on Linux (an unlinked temporary file
    elsewhere): nothing is left behind once its last descriptor closes.
    """
    if hasattr(os, "memfd_create"):
        return os.memfd_create("livekit-trace-report", os.MFD_CLOEXEC)
    import tempfile  # pragma: no cover - macOS

    with tempfile.TemporaryFile() as file:  # pragma: no cover
        return os.dup(file.fileno())


def write_record(fd: int, record: object) -> None:
    """Append one record (its length, then its pickle) in one ``write``."""
    data = pickle.dumps(record)
    os.write(fd, _LENGTH.pack(len(data)) + data)


def read_report(fd: int) -> tuple[list[Half], tuple[Any, ...] | None]:
    """The halves a child recorded in the file ``fd``, and its end record if it wrote one.

    A child killed while writing leaves its last record cut short: it is
    left out, and so is the end.
    """
    chunks = []
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    data = b"".join(chunks)
    halves: list[Half] = []
    end = None
    offset = 0
    while offset + _LENGTH.size <= len(data):
        (size,) = _LENGTH.unpack_from(data, offset)
        start = offset + _LENGTH.size
        if start + size > len(data):
            break
        # Written by our own child, in a file only it and we hold.
        record = pickle.loads(data[start : start + size])  # noqa: S301
        if record[0] == "end":
            end = record
        else:
            halves.append(record)
        offset = start + size
    return halves, end


class Child:
    """This process as one participant of its parent's trace.

    Parameters
    ----------
    process
        The ``Process`` object being run here.
    fd
        This side of the socket pair to the parent.
    key
        The participant key the parent gave this process.
    cap
        How many halves to keep at most.
    """

    def __init__(self, process: Any, fd: int, key: int, cap: int) -> None:
        self._process = process
        self._socket = socket.socket(fileno=fd)
        self._fd = fd
        self._key = key
        self._cap = cap
        self._count = 0
        self._file = -1
        self._reason: str | None = None
        self._lock = threading.Lock()
        self._done = False
        self._saved: list[tuple[Any, str, Any]] = []
        self._finalizer: Any = None
        self._thread: threading.Thread | None = None

    def watch(self) -> None:
        """Record from the moment the process's ``run`` starts."""
        original = self._process.run
        process = self._process

        def run() -> None:
            self._begin()
            reason = "normal"
            try:
                original()
            except SystemExit as error:
                reason = "normal" if error.code in (None, 0) else f"exit code {error.code}"
                raise
            except BaseException as error:
                reason = type(error).__name__
                raise
            finally:
                self._reason = reason
                vars(process).pop("run", None)

        process.run = run

    def _begin(self) -> None:
        # Every half goes to the report file as it happens, and the file
        # goes to the parent at once: the halves of a child killed later
        # (Pool.terminate) still reach it.
        self._file = report_file()
        with contextlib.suppress(OSError):
            socket.send_fds(self._socket, [b"f"], [self._file])

        # Wrap the two functions every message goes through.
        def _send_bytes(connection: Any, buf: Any, *args: Any, **kwargs: Any) -> Any:
            self._record("send", connection, buf)
            return send(connection, buf, *args, **kwargs)

        def _recv_bytes(connection: Any, *args: Any, **kwargs: Any) -> Any:
            data = recv(connection, *args, **kwargs)
            self._record("recv", connection, data)
            return data

        send = _CONNECTION.__dict__["_send_bytes"]
        recv = _CONNECTION.__dict__["_recv_bytes"]
        for name, wrapper, original in (
            ("_send_bytes", _send_bytes, send),
            ("_recv_bytes", _recv_bytes, recv),
        ):
            self._saved.append((_CONNECTION, name, original))
            setattr(_CONNECTION, name, wrapper)
        # Runs after the process's queues have flushed (their finalizers
        # have higher priorities), so that every message sent is on record.
        self._finalizer = multiprocessing.util.Finalize(None, self.stop, (True,), exitpriority=-100)
        self._thread = threading.Thread(target=self._wait, name="livekit-trace", daemon=True)
        self._thread.start()

    def _record(self, kind: str, connection: Any, data: Any) -> None:
        if self._count < self._cap and not self._done:
            self._count += 1
            # Recording must never break the traced code.
            with contextlib.suppress(Exception):
                write_record(self._file, half(kind, self._key, connection, data))

    def _wait(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self._fd, 1)  # one byte: the trace ended; nothing: our end shut
        self.stop(False)

    def stop(self, ended: bool) -> None:
        """Report, put everything back, close the socket (once)."""
        with self._lock:
            if self._done:
                return
            self._done = True
            while self._saved:
                owner, name, original = self._saved.pop()
                setattr(owner, name, original)
            vars(self._process).pop("run", None)
            if not ended and self._finalizer is not None:
                self._finalizer.cancel()
            # The thread that answers the parent ends right after: its id
            # lets the parent wait until it has (see processes.py).
            helper = threading.current_thread() is self._thread
            tid = threading.get_native_id() if helper else None
            if self._file >= 0:
                end = ("end", self._reason if ended else None, time.monotonic(), tid)
                with contextlib.suppress(OSError):
                    write_record(self._file, end)
                os.close(self._file)
        # Outside the lock: the waiting thread wakes up and finds us done.
        if threading.current_thread() is not self._thread:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
            if self._thread is not None:
                self._thread.join(5)
        self._socket.close()


def arm(dup: Any, key: int, cap: int) -> None:
    """In a spawned child, while its ``Process`` unpickles: watch it when it starts."""
    fd = dup.detach()
    owner = multiprocessing.process.BaseProcess
    original = owner.__dict__["_bootstrap"]

    def _bootstrap(process: Any, *args: Any, **kwargs: Any) -> Any:
        owner._bootstrap = original  # type: ignore[attr-defined] # runs once
        vars(process).pop("_livekit_trace", None)
        Child(process, fd, key, cap).watch()
        return original(process, *args, **kwargs)

    owner._bootstrap = _bootstrap  # type: ignore[attr-defined]


if "TICKET" in globals():  # run by exec() in a spawned child (see the docstring)
    arm(*globals()["TICKET"])
