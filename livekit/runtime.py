"""What the machine and this interpreter are doing right now.

Erlang answers ``Process.list()``, ``Process.info(pid, keys)`` and
``:erlang.memory()`` from inside its VM.  Python has no processes of its
own, so livekit answers the same questions about the OS processes of this
host (through psutil), about the threads of this interpreter, and about the
memory of this process:

* :func:`processes` and :func:`process_info`: OS processes, with CPU seconds
  standing in for Erlang's reductions and RSS for its memory;
* :func:`threads`: the threads of this interpreter and where each one is now;
* :func:`memory`: cheap byte counts of this process, ``total`` being RSS.

Every function returns plain dicts, ready to chart with Altair or to push
into a live :class:`livekit.widgets.VegaLite`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any

import psutil

#: The fields of one process, in the order :func:`processes` returns them.
PROCESS_KEYS = ("pid", "ppid", "name", "cpu_time", "memory", "status")

# psutil reads all of these from /proc/<pid>/stat and /proc/<pid>/statm on
# Linux; asking for more (username, cmdline, open files) costs a file each.
_PSUTIL_ATTRS = ["pid", "ppid", "name", "cpu_times", "memory_info", "status"]


def processes() -> list[dict[str, Any]]:
    """Return one dict per OS process on this host.

    Each dict has the keys of :data:`PROCESS_KEYS`: ``pid``, ``ppid``,
    ``name``, ``cpu_time`` (user plus system CPU seconds: Python's stand-in
    for Erlang's reductions), ``memory`` (resident set size in bytes) and
    ``status`` (psutil's status: ``"running"``, ``"sleeping"``, ...).

    A process that exits, or that the operating system will not let this one
    read, while the list is being built is left out rather than raised.
    The cost is that of one ``psutil.process_iter`` over the same fields
    (see ``bench/bench_runtime.py``).

    Examples
    --------
    >>> rows = processes()
    >>> me = next(row for row in rows if row["pid"] == os.getpid())
    >>> list(me) == list(PROCESS_KEYS)
    True
    >>> me["memory"] > 0 and me["cpu_time"] >= 0
    True
    """
    rows = []
    for proc in psutil.process_iter(_PSUTIL_ATTRS, ad_value=None):
        row = _row(proc.info)
        if row is not None:
            rows.append(row)
    return rows


def process_info(pid: int, keys: Iterable[str] | None = None) -> dict[str, Any] | None:
    """Return the fields of one OS process, or None when it is gone.

    Parameters
    ----------
    pid
        The process id, such as ``os.getpid()``.
    keys
        The fields to return, a subset of :data:`PROCESS_KEYS`; all of them
        when None.  Like Erlang's ``Process.info(pid, keys)``.

    Returns
    -------
    dict or None
        The fields, in the order asked for; None when no process has this
        pid or it cannot be read.

    Examples
    --------
    >>> info = process_info(os.getpid(), ["pid", "status"])
    >>> info == {"pid": os.getpid(), "status": "running"}
    True
    >>> process_info(os.getpid(), ["reductions"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown process key 'reductions'; expected some of pid, ppid, name, ...
    """
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise TypeError(f"pid must be an int, got {type(pid).__name__}: {pid!r}")
    wanted = _keys(keys)
    try:
        proc = psutil.Process(pid)
        info = proc.as_dict(_PSUTIL_ATTRS, ad_value=None)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None
    row = _row(info)
    if row is None:
        return None
    return {key: row[key] for key in wanted}


def _keys(keys: Iterable[str] | None) -> tuple[str, ...]:
    if keys is None:
        return PROCESS_KEYS
    if isinstance(keys, str):
        raise TypeError(f"keys must be a list of names, got the string {keys!r}")
    wanted = tuple(keys)
    for key in wanted:
        if key not in PROCESS_KEYS:
            raise ValueError(
                f"unknown process key {key!r}; expected some of {', '.join(PROCESS_KEYS)}"
            )
    return wanted


def _row(info: dict[str, Any]) -> dict[str, Any] | None:
    times = info["cpu_times"]
    mem = info["memory_info"]
    if times is None or mem is None or info["name"] is None or info["status"] is None:
        return None  # denied: leave it out rather than report a half-row
    return {
        "pid": info["pid"],
        "ppid": info["ppid"],
        "name": info["name"],
        "cpu_time": times.user + times.system,
        "memory": mem.rss,
        "status": info["status"],
    }


def threads() -> list[dict[str, Any]]:
    """Return one dict per thread of this interpreter.

    Each dict has ``name``, ``ident`` (Python's thread id), ``native_id``
    (the operating system's), ``daemon``, ``cpu_time`` (user plus system CPU
    seconds of that thread, or None where the OS does not say) and ``where``:
    its innermost Python frame as ``file:line function``.

    Examples
    --------
    >>> main = next(t for t in threads() if t["ident"] == threading.get_ident())
    >>> sorted(main)
    ['cpu_time', 'daemon', 'ident', 'name', 'native_id', 'where']
    >>> main["where"].endswith(" <module>")
    True
    """
    frames = sys._current_frames()
    try:
        return _thread_rows(frames)
    finally:
        # The dict holds this very frame, whose locals hold the dict: a cycle
        # that would keep every thread's last frame (and what its locals hold,
        # sockets included) alive until a full collection. Break it now.
        frames.clear()


def _thread_rows(frames: dict[int, FrameType]) -> list[dict[str, Any]]:
    try:
        cpu = {t.id: t.user_time + t.system_time for t in _self().threads()}
    except (psutil.Error, OSError):
        cpu = {}
    rows = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident) if thread.ident is not None else None
        # The calling thread is inside this function: show where it called from.
        while frame is not None and frame.f_code.co_filename == __file__:
            frame = frame.f_back
        where = None
        if frame is not None:
            code = frame.f_code
            where = f"{code.co_filename}:{frame.f_lineno} {code.co_name}"
        rows.append(
            {
                "name": thread.name,
                "ident": thread.ident,
                "native_id": thread.native_id,
                "daemon": thread.daemon,
                "cpu_time": cpu.get(thread.native_id) if thread.native_id is not None else None,
                "where": where,
            }
        )
    return rows


#: The keys of :func:`memory`, in order.
MEMORY_KEYS = ("total", "private", "shared", "malloc")


def memory() -> dict[str, int]:
    """Return byte counts of this process's memory, like ``:erlang.memory()``.

    ``total``
        Resident set size (RSS): every page of this process that is in RAM.
        The number the operating system and ``top`` show.
    ``private``
        ``total`` minus ``shared``: anonymous memory only this process uses,
        which is where Python objects, C heaps and thread stacks live.  It
        grows when a program builds data (a big dict, many strings).
    ``shared``
        Resident pages backed by files: the interpreter, shared libraries,
        extension modules and memory-mapped files.  Mostly code; it grows
        when a module with a C extension is imported.
    ``malloc``
        Bytes the C allocator has handed out and not had back (glibc's
        ``mallinfo2``: in-use heap plus mmapped blocks).  Python keeps
        objects of up to 512 bytes in its own arenas; bigger ones come from
        malloc: long strings and bytes, the storage of big lists and dicts,
        numpy arrays.  It is the nearest thing to Erlang's ``binary``.  It is
        0 where the C library cannot tell (macOS, Windows, musl).

    Each category costs a few microseconds: the whole call stays well under
    100 µs, so sampling every 200 ms costs nothing measurable.  Counts that
    cost more are left out on purpose: ``gc.get_objects()`` takes
    milliseconds on a big heap, tracemalloc slows every allocation, and
    psutil's ``memory_full_info()`` (USS, PSS) reads every mapping.

    Examples
    --------
    >>> sample = memory()
    >>> list(sample) == list(MEMORY_KEYS)
    True
    >>> sample["total"] == sample["private"] + sample["shared"]
    True
    """
    info = _self().memory_info()
    rss = int(info.rss)
    shared = min(int(getattr(info, "shared", 0)), rss)
    return {
        "total": rss,
        "private": rss - shared,
        "shared": shared,
        "malloc": _malloc_in_use(),
    }


def _self() -> psutil.Process:
    # Keyed by pid so that a forked child does not read its parent.
    return _process(os.getpid())


@functools.cache
def _process(pid: int) -> psutil.Process:
    return psutil.Process(pid)


class _MallInfo2(ctypes.Structure):
    # struct mallinfo2 from glibc >= 2.33, <malloc.h>: ten size_t fields.
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


@functools.cache
def _mallinfo2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        function = libc.mallinfo2
    except (OSError, AttributeError):
        return None  # not glibc, or glibc older than 2.33
    function.restype = _MallInfo2
    function.argtypes = []
    return function


def _malloc_in_use() -> int:
    function = _mallinfo2()
    if function is None:
        return 0
    info = function()
    return int(info.uordblks + info.hblkhd)
