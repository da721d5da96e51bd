"""A live chart takes 10,000 points a second into a window of 1,000, in bounded memory.

livekit: ``VegaLite.push(point, window=1000)`` with one connected front end,
a fake browser that acknowledges each message as it takes it and spends
1/60 s drawing what it took (livekit-widget.js acknowledges on arrival and
draws once per animation frame, merging what arrived meanwhile).
Baseline: the least any Python chart could do per point, copying the point
into a ``deque(maxlen=1000)``.

The seed needs 10,000 points a second, 100 µs per push: the note gives the
rate reached, how many messages the browser got, the longest queue it ever
had, and the memory the widget holds after 20,000 pushes and after 100,000
(bounded: the same).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import tracemalloc
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import best_of, row, table

from livekit import VegaLite

WINDOW = 1000
POINTS = [{"iter": i, "total": 1000.0 + i, "private": 500.0 + i} for i in range(20_000)]


class Browser:
    """A front end that acknowledges what it takes, then draws it in a frame."""

    def __init__(self, plot: VegaLite) -> None:
        self.inbox: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self.messages = 0
        self.longest_queue = 0
        self.connection = plot.attach(self.receive)
        self.thread = threading.Thread(target=self.draw, name="bench-browser")
        self.thread.start()
        self.connection.handle({"type": "ready"})

    def receive(self, msg: dict[str, Any]) -> None:
        self.inbox.put(msg)
        self.longest_queue = max(self.longest_queue, self.inbox.qsize())

    def draw(self) -> None:
        while (msg := self.inbox.get()) is not None:
            self.messages += 1
            self.connection.handle({"type": "ack", "seq": msg["seq"]})
            time.sleep(1 / 60)

    def close(self) -> None:
        self.connection.detach()
        self.inbox.put(None)
        self.thread.join()


def push_all(plot: VegaLite, points: list[dict[str, Any]]) -> None:
    for point in points:
        plot.push(point, window=WINDOW)


def held_bytes(count: int) -> int:
    """Memory still allocated by a widget after ``count`` pushes."""
    tracemalloc.start()
    try:
        plot = VegaLite({"mark": "line"})
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            plot.push({"iter": i, "total": float(i)}, window=WINDOW)
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def main() -> list[dict[str, Any]]:
    def baseline_push() -> None:
        data: deque[dict[str, Any]] = deque(maxlen=WINDOW)
        for point in POINTS:
            data.append(dict(point))

    baseline = best_of(baseline_push, repeat=5) / len(POINTS)

    plot = VegaLite({"mark": "line"})
    browser = Browser(plot)
    try:
        livekit = best_of(lambda: push_all(plot, POINTS), repeat=5) / len(POINTS)
        plot.flush(timeout=2)
    finally:
        browser.close()
        plot.close()
    small, large = held_bytes(20_000), held_bytes(100_000)
    if large > 1.5 * small + 100_000:
        raise AssertionError(f"memory grows with pushes: {small} B after 20k, {large} B after 100k")
    return [
        row(
            "VegaLite.push, window 1,000, one front end",
            livekit,
            baseline,
            None,
            f"{1 / livekit:,.0f} points/s (need 10,000); {browser.messages} messages, "
            f"longest queue {browser.longest_queue}; held {small / 1e3:.0f} kB after 20k "
            f"pushes, {large / 1e3:.0f} kB after 100k",
        )
    ]


if __name__ == "__main__":
    print(table(main())[0])
