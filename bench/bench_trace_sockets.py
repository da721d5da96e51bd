"""Benchmarks of socket tracing: traced against bare, and viztracer on the same work.

Two workloads, each run bare, under ``seq_trace`` and under viztracer,
alternately, several times in the same process; the fastest run of each
is kept (the machine is shared and noisy).  The aiohttp workload is short
(about 60 ms bare), and its fastest of 15 still moved by a tenth between
runs: it is run 40 times each.  The ratios against the bare
run are compared with the targets: a 20,000-message socket ping-pong
between two threads over TCP on loopback (at most 1.5x), and 200 aiohttp
requests from a client to a server in the same event loop (at most 1.3x).
viztracer's rows carry no target: they say what a general-purpose tracer,
which records every Python call, costs on the same work.

Run alone: ``python bench/bench_trace_sockets.py``; ``bench/run.py`` calls ``main()``.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import livekit

REPEATS = 15
#: A short workload's fastest run needs more tries to settle (see above).
SHORT_REPEATS = 40


def socket_ping_pong(messages: int = 20_000) -> None:
    """``messages`` messages in all over one TCP connection: half pings, half pongs."""
    rounds = messages // 2
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def ponger() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for _ in range(rounds):
                    conn.recv(16)
                    conn.sendall(b"pong")

        worker = threading.Thread(target=ponger, name="ponger")
        worker.start()
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(rounds):
                client.sendall(b"ping")
                client.recv(16)
        worker.join()


def aiohttp_requests(requests: int = 200) -> None:
    from aiohttp import ClientSession, web

    async def items(request: web.Request) -> web.Response:
        return web.json_response([1, 2, 3])

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/items", items)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with ClientSession() as session:
                for _ in range(requests):
                    async with session.get(f"http://127.0.0.1:{port}/items") as reply:
                        await reply.read()
        finally:
            await runner.cleanup()

    asyncio.run(main())


def _time(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _viztraced(workload: Callable[[], None]) -> Callable[[], None]:
    from viztracer import VizTracer

    def run() -> None:
        # viztracer's defaults, without writing the file: the cost of recording.
        tracer = VizTracer(verbose=0)
        tracer.start()
        try:
            workload()
        finally:
            tracer.stop()
            tracer.clear()

    return run


def compare(
    workload: Callable[[], None], repeats: int = REPEATS, **options: Any
) -> tuple[float, float, float]:
    """Return the best (livekit, bare, viztracer) seconds of ``repeats`` runs each, in turn."""
    traced: list[float] = []
    bare: list[float] = []
    viz: list[float] = []
    viztraced = _viztraced(workload)
    workload()  # warm up imports and caches
    for _ in range(repeats):
        bare.append(_time(workload))
        traced.append(_time(lambda: livekit.seq_trace(workload, **options)))
        viz.append(_time(viztraced))
    return min(traced), min(bare), min(viz)


def main() -> list[dict[str, Any]]:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    cases: list[tuple[str, Callable[[], None], float, int, dict[str, Any], str]] = [
        (
            "trace: 20,000-message socket ping-pong, two threads",
            socket_ping_pong,
            1.5,
            REPEATS,
            {},
            "TCP on loopback; the first 500 drawn, the rest counted",
        ),
        (
            "trace: 200 aiohttp requests over loopback",
            aiohttp_requests,
            1.3,
            SHORT_REPEATS,
            {"collapse": {"aiohttp.web*": "server"}, "exclude": ["asyncio", "aiohttp"]},
            "client and server in one loop, narrowed as the how-to does; best of 40",
        ),
    ]
    rows = []
    for name, workload, target, repeats, options, note in cases:
        traced, bare, viz = compare(workload, repeats, **options)
        rows.append(
            {
                "name": f"{name} (Python {version})",
                "livekit": traced,
                "baseline": bare,
                "target": target,
                "note": note,
            }
        )
        rows.append(
            {
                "name": f"viztracer: {name.removeprefix('trace: ')} (Python {version})",
                "livekit": viz,
                "baseline": bare,
                "target": None,
                "note": "information: viztracer's defaults on the same work",
            }
        )
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
    from run import table

    text, ok = table(main())
    print(text)
    sys.exit(0 if ok else 1)
