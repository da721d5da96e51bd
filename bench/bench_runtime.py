"""Runtime data costs about what psutil costs alone.

* ``memory()`` against psutil's ``memory_info()`` alone: the extra
  categories must stay cheap (the whole call under 100 µs, so that sampling
  every 200 ms costs nothing measurable).
* ``processes()`` per process against a bare ``psutil.process_iter`` over
  the same fields: at most 1.2x.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil
from run import best_of, row, table

from livekit import runtime


def _bare_process_iter() -> int:
    count = 0
    for proc in psutil.process_iter(runtime._PSUTIL_ATTRS, ad_value=None):
        info = proc.info
        count += info["pid"] > 0
    return count


def main() -> list[dict[str, Any]]:
    me = psutil.Process()
    # Interleave the two sides so that a noisy neighbour hurts both alike.
    baseline = livekit = float("inf")
    for _ in range(5):
        baseline = min(baseline, best_of(me.memory_info, repeat=3, number=2000))
        livekit = min(livekit, best_of(runtime.memory, repeat=3, number=2000))
    rows = [
        row(
            "memory() per call",
            livekit,
            baseline,
            2.0,
            f"vs psutil memory_info() alone; {livekit * 1e6:.1f} µs (budget 100 µs)",
        )
    ]

    count = len(runtime.processes())
    bare = ours = float("inf")
    for _ in range(7):
        bare = min(bare, best_of(_bare_process_iter, repeat=1, number=3))
        ours = min(ours, best_of(runtime.processes, repeat=1, number=3))
    rows.append(
        row(
            "processes() per process",
            ours / count,
            bare / count,
            1.2,
            f"vs bare psutil.process_iter, same fields; {count} processes",
        )
    )
    return rows


if __name__ == "__main__":
    print(table(main())[0])
