"""The workload of bench_processes.py, in a module of its own.

A spawned worker runs its parent's main module again (as ``__mp_main__``)
to find ``square``: so this one imports only the standard library at the
top, and livekit only under ``if __name__ == "__main__"``.  Otherwise
every worker would import livekit, or whatever the benchmark runner
imports, and the untraced run would pay for it too.

``python pool_workload.py`` runs the workload once, ``--livekit`` once
under ``seq_trace``, ``--compare N`` both in turn N times and prints the
fastest of each as JSON (viztracer runs ``python -m viztracer ...
pool_workload.py``).
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time

TASKS = 1_000


def square(x: int) -> int:
    return x * x


def pool_map(tasks: int = TASKS, method: str = "spawn") -> None:
    """``Pool.map`` of ``tasks`` small tasks on two workers started with ``method``."""
    with multiprocessing.get_context(method).Pool(2) as pool:
        assert pool.map(square, range(tasks)) == [x * x for x in range(tasks)]


def compare(repeats: int) -> dict[str, float]:
    import livekit

    times: dict[str, list[float]] = {"bare": [], "livekit": []}
    pool_map()  # warm up: the first spawn reads every module from disk
    for _ in range(repeats):
        start = time.perf_counter()
        pool_map()
        times["bare"].append(time.perf_counter() - start)
        start = time.perf_counter()
        livekit.seq_trace(pool_map)
        times["livekit"].append(time.perf_counter() - start)
    return {name: min(found) for name, found in times.items()}


if __name__ == "__main__":
    if "--compare" in sys.argv:
        print(json.dumps(compare(int(sys.argv[sys.argv.index("--compare") + 1]))))
    elif "--livekit" in sys.argv:
        import livekit

        livekit.seq_trace(pool_map)
    else:
        pool_map()
