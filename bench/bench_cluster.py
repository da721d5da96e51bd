"""A Dask cluster as livekit nodes: what livekit adds to Dask's own costs.

* A small ``rpc.call`` to a worker against a bare
  ``Client.run(os.getpid, workers=[address])`` round trip, on the same
  ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``: at
  most 1.5x.  Both go client → scheduler → worker and back; livekit adds a
  thread on the worker (so that the call does not block the worker's event
  loop) and the node protocol's reply.
* The scheduler's CPU for the 1 Hz memory chart with 8 workers: under 1%
  of one core.  The scheduler runs in a process of its own (``dask
  scheduler``), so its CPU time is its own.  One sample is one
  ``identity`` round trip to the scheduler; its cost is measured over a burst of
  samples (the scheduler's idle CPU during the burst subtracted), which is
  what one sample a second costs per second.  The row's baseline is the
  budget, 10 ms of CPU per second, so its ratio is the share of the budget
  used.  A plain 1 Hz run against the same time idle is given as a note.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import best_of, row

import livekit
from livekit import rpc

#: Workers for the memory chart's cost (the issue's target).
CHART_WORKERS = 8
#: Samples in the burst that measures one sample's cost on the scheduler.
BURST = 200
#: Seconds of each window of the plain 1 Hz run (and of its idle baseline).
WINDOW = 20.0


def main() -> list[dict[str, Any]]:
    return [_small_call(), *_chart_cost()]


def _small_call() -> dict[str, Any]:
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as local,
        distributed.Client(local, set_as_default=False) as client,
        livekit.cluster(client) as cluster,
    ):
        node = cluster.nodes[0]
        for _ in range(20):  # warm both paths up (imports on the worker, connections)
            rpc.call(node, "os", "getpid")
            client.run(os.getpid, workers=[node])
        livekit_times, bare_times = [], []
        for _ in range(7):  # interleaved: the machine is shared and noisy
            livekit_times.append(best_of(lambda: rpc.call(node, "os", "getpid"), number=20))
            bare_times.append(best_of(lambda: client.run(os.getpid, workers=[node]), number=20))
    return row(
        "cluster: rpc.call to a Dask worker vs bare Client.run",
        min(livekit_times),
        min(bare_times),
        1.5,
        "LocalCluster, 2 worker processes",
    )


def _chart_cost() -> list[dict[str, Any]]:
    import distributed

    with tempfile.TemporaryDirectory() as folder:
        scheduler_file = str(Path(folder) / "scheduler.json")
        scheduler = subprocess.Popen(  # noqa: S603 -- our own interpreter, fixed arguments
            [
                sys.executable, "-m", "distributed.cli.dask_scheduler",
                "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                "--scheduler-file", scheduler_file,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        workers: list[subprocess.Popen[bytes]] = []
        try:
            while not Path(scheduler_file).exists():
                time.sleep(0.1)
            # One process per worker: --no-nanny takes one worker a process.
            command = [
                sys.executable, "-m", "distributed.cli.dask_worker",
                "--scheduler-file", scheduler_file, "--nthreads", "1",
                "--no-nanny", "--no-dashboard", "--memory-limit", "0",
            ]  # fmt: skip
            workers = [
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603 -- as above
                for _ in range(CHART_WORKERS)
            ]
            with distributed.Client(scheduler_file=scheduler_file, set_as_default=False) as client:
                client.wait_for_workers(CHART_WORKERS, timeout=120)
                time.sleep(5)  # let start-up settle
                return _measure(client, psutil.Process(scheduler.pid))
        finally:
            # Workers first: a worker whose scheduler is gone retries it for a while.
            for proc in workers:
                proc.terminate()
            for proc in [*workers, scheduler]:
                if proc is scheduler:
                    proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:  # a worker stuck closing: end it
                    proc.kill()
                    proc.wait(30)


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _measure(client: Any, scheduler: psutil.Process) -> list[dict[str, Any]]:
    with livekit.cluster(client) as cluster:
        assert len(cluster.memory()) == CHART_WORKERS
        # The scheduler's CPU while idle (8 workers heartbeating), per second.
        start, cpu = time.monotonic(), _cpu(scheduler)
        time.sleep(WINDOW)
        idle_rate = (_cpu(scheduler) - cpu) / (time.monotonic() - start)
        # A burst of samples: what one sample costs the scheduler.
        start, cpu = time.monotonic(), _cpu(scheduler)
        for _ in range(BURST):
            cluster.memory()
        elapsed = time.monotonic() - start
        per_sample = max(0.0, (_cpu(scheduler) - cpu) - idle_rate * elapsed) / BURST
        # The chart itself at 1 Hz, against the idle rate.
        chart = cluster.memory_chart(every=1.0)
        start, cpu = time.monotonic(), _cpu(scheduler)
        time.sleep(WINDOW)
        chart_rate = (_cpu(scheduler) - cpu) / (time.monotonic() - start)
        chart.stop()
        points = len(chart.data())
    note = (
        f"{CHART_WORKERS} workers, scheduler in its own process; one sample costs "
        f"{per_sample * 1e3:.2f} ms of scheduler CPU; a {WINDOW:.0f} s run at 1 Hz "
        f"({points} points): {chart_rate * 100:.2f}% of a core, idle {idle_rate * 100:.2f}%"
    )
    name = "cluster: scheduler CPU of the 1 Hz memory chart vs 1%"
    return [row(name, per_sample, 0.01, 1.0, note)]


if __name__ == "__main__":
    from run import table

    text, ok = table(main())
    print(text)
    sys.exit(0 if ok else 1)
