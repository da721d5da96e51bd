"""Benchmark of tracing processes: ``Pool.map`` of 1,000 small tasks under ``spawn``.

The workload (bench/pool_workload.py) starts a pool of two spawned
workers and maps 1,000 tasks over it; starting the workers is most of
its time, as in real programs that make a pool for a job.  Three
comparisons, each against the same workload run bare in the same run:

- ``seq_trace`` against the bare workload, in turn in one fresh process
  whose main module is the light pool_workload.py (the target: at most
  1.5x; a spawned worker re-runs its parent's main module, so a heavy
  one would slow the bare runs as much as the traced ones);
- the same, each run as a fresh ``python`` process (importing livekit
  is then part of the cost: information);
- viztracer's command line, which follows spawned children too, against
  the bare fresh process (information: viztracer records every call,
  livekit only the messages).

Run alone: ``python bench/bench_processes.py``; ``bench/run.py`` calls ``main()``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

REPEATS = 5
TARGET = 1.5


def _time(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _script(*before: str, after: tuple[str, ...] = ()) -> Callable[[], None]:
    """Run pool_workload.py as a fresh process: ``*before`` is the interpreter's part."""
    command = [*before, str(HERE / "pool_workload.py"), *after]
    env = _env()

    def run() -> None:
        # Our own interpreter, on our own script.
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, cwd=HERE)  # noqa: S603

    return run


def best(workloads: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """The fastest of REPEATS runs of each workload, taken in turn."""
    times: dict[str, list[float]] = {name: [] for name in workloads}
    for _ in range(REPEATS):
        for name, workload in workloads.items():
            times[name].append(_time(workload))
    return {name: min(found) for name, found in times.items()}


def main() -> list[dict[str, Any]]:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    name = f"trace: Pool.map of 1,000 tasks, spawn (Python {version})"
    compared = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(HERE / "pool_workload.py"), "--compare", str(REPEATS)],
        check=True,
        env=_env(),
        cwd=HERE,
        capture_output=True,
        text=True,
    )
    inside = json.loads(compared.stdout)
    # viztracer comes with the bench extra; where it cannot be installed
    # (a new Python before its wheels), its row says so instead of a number.
    has_viztracer = importlib.util.find_spec("viztracer") is not None
    with tempfile.TemporaryDirectory(prefix="bench-viztracer-") as folder:
        output = str(Path(folder) / "trace.json")
        workloads = {
            "bare process": _script(sys.executable),
            "livekit process": _script(sys.executable, after=("--livekit",)),
        }
        if has_viztracer:
            workloads["viztracer process"] = _script(
                sys.executable, "-m", "viztracer", "--quiet", "-o", output
            )
        found = best(workloads)
    return [
        {
            "name": name,
            "livekit": inside["livekit"],
            "baseline": inside["bare"],
            "target": TARGET,
            "note": "in one process, in turn; two spawned workers",
        },
        {
            "name": f"{name}, fresh process",
            "livekit": found["livekit process"],
            "baseline": found["bare process"],
            "target": None,
            "note": "information: python pool_workload.py --livekit",
        },
        {
            "name": f"{name}, viztracer",
            "livekit": found.get("viztracer process", float("nan")),
            "baseline": found["bare process"],
            "target": None,
            "note": "information: viztracer's ratio (it follows the workers too)"
            if has_viztracer
            else "not measured: viztracer is not installed (pip install .[bench])",
        },
    ]


if __name__ == "__main__":
    print(f"{'benchmark':66} {'traced s':>9} {'bare s':>9} {'ratio':>6} {'target':>6}")
    for row in main():
        ratio = row["livekit"] / row["baseline"]
        target = row["target"]
        mark = "" if target is None else ("ok" if ratio <= target else "SLOW")
        print(
            f"{row['name']:66} {row['livekit']:9.4f} {row['baseline']:9.4f} "
            f"{ratio:6.2f} {target or '-':>6} {mark}"
        )
