"""Benchmarks of livekit.seq_trace: traced code against the same code untraced.

Each benchmark runs its workload bare and under ``seq_trace``, alternately,
several times in the same process, and keeps the fastest run of each (the
machine is shared and noisy; the minimum is the least disturbed run).  The
ratio traced/bare is compared with the target of issue 3.

Run alone: ``python bench/bench_trace.py``; ``bench/run.py`` calls ``main()``.
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import livekit

REPEATS = 9


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def compute() -> None:
    fib(29)


def queue_pairs(n: int = 100_000) -> None:
    box: queue.Queue[int] = queue.Queue()
    put, get = box.put, box.get
    for i in range(n):
        put(i)
        get()


def thread_ping_pong(messages: int = 20_000) -> None:
    """``messages`` messages in all: half pings, half pongs."""
    pings: queue.Queue[str] = queue.Queue()
    pongs: queue.Queue[str] = queue.Queue()
    rounds = messages // 2

    def ponger() -> None:
        for _ in range(rounds):
            pings.get()
            pongs.put("pong")

    worker = threading.Thread(target=ponger, name="ponger")
    worker.start()
    for _ in range(rounds):
        pings.put("ping")
        pongs.get()
    worker.join()


def asyncio_ping_pong(messages: int = 20_000) -> None:
    rounds = messages // 2

    async def main() -> None:
        pings: asyncio.Queue[str] = asyncio.Queue()
        pongs: asyncio.Queue[str] = asyncio.Queue()

        async def ponger() -> None:
            for _ in range(rounds):
                await pings.get()
                await pongs.put("pong")

        async with asyncio.TaskGroup() as group:
            group.create_task(ponger())
            for _ in range(rounds):
                await pings.put("ping")
                await pongs.get()

    asyncio.run(main())


def _time(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(workload: Callable[[], None], **options: Any) -> tuple[float, float]:
    """Return (best traced seconds, best bare seconds)."""
    traced: list[float] = []
    bare: list[float] = []
    workload()  # warm up imports and caches
    for _ in range(REPEATS):
        bare.append(_time(workload))
        traced.append(_time(lambda: livekit.seq_trace(workload, **options)))
    return min(traced), min(bare)


def main() -> list[dict[str, Any]]:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    queue_target = 2.0 if sys.version_info >= (3, 12) else 2.5
    rows = []
    cases: list[tuple[str, Callable[[], None], float | None, dict[str, Any], str]] = [
        ("trace: recursive fib(29)", compute, 1.05, {}, "pure Python, no messages"),
        (
            "trace: 100,000 queue put+get, one thread",
            queue_pairs,
            queue_target,
            {},
            "default max_messages: the first 500 drawn, the rest counted",
        ),
        (
            "trace: 100,000 queue put+get, every one drawn",
            queue_pairs,
            2.5,
            {"max_messages": 200_000},
            "a label per message and the 100k-line diagram; 198 B per event (3.11), 190 (3.13)",
        ),
        ("trace: 20,000-message thread ping-pong", thread_ping_pong, 1.2, {}, "two threads"),
        ("trace: 20,000-message asyncio.Queue ping-pong", asyncio_ping_pong, 1.5, {}, "two tasks"),
    ]
    for name, workload, target, options, note in cases:
        traced, bare = compare(workload, **options)
        rows.append(
            {
                "name": f"{name} (Python {version})",
                "livekit": traced,
                "baseline": bare,
                "target": target,
                "note": note,
            }
        )
    turning, straight = diagram_turns()
    rows.append(
        {
            "name": f"format: 100,000-message ping-pong diagram (Python {version})",
            "livekit": turning,
            "baseline": straight,
            "target": 4.0,
            "note": "every message turns, against all one way; distinct labels, none to escape",
        }
    )
    return rows


def diagram_turns(messages: int = 100_000) -> tuple[float, float]:
    """Best seconds to draw ``messages`` compact messages that turn each time, and all one way."""
    from livekit.trace import format as trace_format
    from livekit.trace.events import Participant

    a, b = Participant(0, "caller (MainThread)", "caller"), Participant(1, "ponger", "thread")
    turning = [(i % 2, 1 - i % 2, repr(i), 0.0, 0.0) for i in range(messages)]
    straight = [(0, 1, repr(i), 0.0, 0.0) for i in range(messages)]
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(REPEATS):
        for which, records in enumerate((turning, straight)):
            times[which].append(
                _time(lambda r=records: trace_format._diagram(a, r, {0: a, 1: b}, 0))
            )
    return min(times[0]), min(times[1])


if __name__ == "__main__":
    print(f"{'benchmark':62} {'traced s':>9} {'bare s':>9} {'ratio':>6} {'target':>6}")
    for row in main():
        ratio = row["livekit"] / row["baseline"]
        target = row["target"]
        mark = "" if target is None else ("ok" if ratio <= target else "SLOW")
        print(
            f"{row['name']:62} {row['livekit']:9.4f} {row['baseline']:9.4f} "
            f"{ratio:6.2f} {target or '-':>6} {mark}"
        )
