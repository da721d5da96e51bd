"""Runtime data: processes, process_info, threads and memory."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

import livekit
from livekit import runtime

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def test_processes_have_the_documented_keys_and_types() -> None:
    rows = runtime.processes()
    me = next(row for row in rows if row["pid"] == os.getpid())
    assert list(me) == ["pid", "ppid", "name", "cpu_time", "memory", "status"]
    assert me["ppid"] == os.getppid()
    assert isinstance(me["name"], str)
    assert isinstance(me["cpu_time"], float)
    assert isinstance(me["memory"], int)
    assert me["status"] == "running"


def test_processes_lists_children_until_they_are_killed(children: list[Any]) -> None:
    for _ in range(4):
        children.append(subprocess.Popen(SLEEPER))
    pids = {proc.pid for proc in children}
    assert pids <= {row["pid"] for row in runtime.processes()}

    for proc in children[:2]:
        proc.kill()
        proc.wait()
    listed = {row["pid"] for row in runtime.processes()}
    assert {p.pid for p in children[2:]} <= listed
    assert not {p.pid for p in children[:2]} & listed


def test_processes_survives_processes_coming_and_going(children: list[Any]) -> None:
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            proc = subprocess.Popen([sys.executable, "-c", "pass"])
            proc.wait()

    churner = threading.Thread(target=churn, name="churn")
    churner.start()
    try:
        for _ in range(20):
            for row in runtime.processes():
                assert list(row) == list(runtime.PROCESS_KEYS)
                assert None not in row.values()
    finally:
        stop.set()
        churner.join()


def test_processes_leaves_out_a_process_it_may_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    times = SimpleNamespace(user=1.0, system=0.5)
    mem = SimpleNamespace(rss=4096)
    readable = {"pid": 1, "ppid": 0, "name": "init", "cpu_times": times,
                "memory_info": mem, "status": "sleeping"}  # fmt: skip
    denied = {**readable, "pid": 2, "cpu_times": None, "memory_info": None}
    fake = [SimpleNamespace(info=readable), SimpleNamespace(info=denied)]
    monkeypatch.setattr(psutil, "process_iter", lambda attrs, ad_value: iter(fake))
    assert runtime.processes() == [
        {"pid": 1, "ppid": 0, "name": "init", "cpu_time": 1.5, "memory": 4096, "status": "sleeping"}
    ]


def test_process_info_returns_the_keys_asked_for_in_order() -> None:
    info = runtime.process_info(os.getpid(), ["status", "pid"])
    assert info == {"status": "running", "pid": os.getpid()}
    assert list(info) == ["status", "pid"]


def test_process_info_returns_none_for_a_process_that_is_gone(children: list[Any]) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert runtime.process_info(proc.pid) is None


def test_process_info_rejects_unknown_keys_and_bad_pids() -> None:
    with pytest.raises(ValueError, match="unknown process key 'reductions'"):
        runtime.process_info(os.getpid(), ["reductions"])
    with pytest.raises(TypeError, match="keys must be a list of names, got the string 'pid'"):
        runtime.process_info(os.getpid(), "pid")
    with pytest.raises(TypeError, match="pid must be an int, got str: '1'"):
        runtime.process_info("1")  # type: ignore[arg-type]


def test_threads_shows_each_thread_and_where_it_waits() -> None:
    release = threading.Event()

    def wait_here() -> None:
        release.wait()

    worker = threading.Thread(target=wait_here, name="waiter", daemon=True)
    worker.start()
    try:
        row = next(t for t in runtime.threads() if t["name"] == "waiter")
    finally:
        release.set()
        worker.join()
    assert row["ident"] == worker.ident
    assert row["native_id"] == worker.native_id
    assert row["daemon"] is True
    assert isinstance(row["cpu_time"], float)
    # The innermost Python frame is inside threading's Event.wait.
    assert row["where"].split(" ")[-1] in {"wait", "wait_here"}


def test_threads_reports_the_caller_not_livekit_for_the_calling_thread() -> None:
    me = next(t for t in runtime.threads() if t["ident"] == threading.get_ident())
    file_line, function = me["where"].rsplit(" ", 1)
    assert function == "test_threads_reports_the_caller_not_livekit_for_the_calling_thread"
    assert file_line.startswith(__file__ + ":")


def test_memory_returns_integer_byte_counts_with_total_rss() -> None:
    sample = runtime.memory()
    assert list(sample) == ["total", "private", "shared", "malloc"]
    assert all(type(value) is int and value >= 0 for value in sample.values())
    assert sample["total"] == sample["private"] + sample["shared"]
    assert abs(sample["total"] - psutil.Process().memory_info().rss) < 64 * 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallinfo2 is glibc's")
def test_memory_malloc_grows_with_a_big_string() -> None:
    before = runtime.memory()["malloc"]
    big = "cat" * 10_000_000
    after = runtime.memory()["malloc"]
    assert after - before >= 29_000_000
    del big


def test_runtime_functions_are_livekit_top_level_names() -> None:
    for name in ("processes", "process_info", "threads", "memory"):
        assert getattr(livekit, name) is getattr(runtime, name)
