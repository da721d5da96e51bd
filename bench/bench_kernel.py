"""livekit serve end to end: push() to the browser, points a page takes, memory, stop.

Runs ``livekit serve`` as a child process over a small book built for the
benchmark (one page: a live chart and two producers), and drives chromium
with Playwright.  Every row is a ratio against a baseline taken in the same
run:

* **push() to a drawn point**: median time from ``plot.push()`` in the
  page's kernel (each point carries ``time.time()``) to the chart's drawing
  of it (the widget's ``livekit-widget:drawn`` event), with a listener
  pushing every 50 ms, and again during the flood below.  The note splits
  it: kernel to server (a page that acks at once), to the page's socket,
  and the rest (a frame and the drawing).  Baseline: half the round trip
  of a ``ping`` between the same page and server (the WebSocket alone).
* **points a page takes, window 1,000**: a thread in the kernel pushes
  10,000 points a second into a window of 1,000; the page counts the rows it
  receives.  livekit: seconds per point received; baseline: seconds per
  point pushed.  1.0 means the page got every point.
* **server memory**: RSS of the ``livekit serve`` process (not the kernel)
  after ``LIVEKIT_BENCH_MINUTES`` minutes of streaming (default 3: the
  issue's 10 minutes, scaled down to fit a run) against after 1 minute.
  The two fields hold bytes, not seconds; the ratio is what counts.
* **stop**: seconds from SIGTERM to exit with a live page and its kernel,
  against the same server with no live page.

``LIVEKIT_BENCH_KERNEL`` names the rows to run besides the first three
(``memory,stop`` by default; ``none`` for neither).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import CHROMIUM_ARGS, MYSTNB_FRONT, row, sphinx_build, table

MINUTES = float(os.environ.get("LIVEKIT_BENCH_MINUTES", "3"))
#: Which measurements beyond latency and rate to run (comma-separated).
PARTS = set(os.environ.get("LIVEKIT_BENCH_KERNEL", "memory,stop").split(","))
RATE = 10_000

FRONT = MYSTNB_FRONT

CHART = """
```{code-cell} ipython3
import contextlib
import os
import threading
import time
import urllib.error
import urllib.request

import altair as alt

import livekit

SERVED = bool(os.environ.get("LIVEKIT_SERVE"))
plot = livekit.VegaLite(
    alt.Chart(title="Benchmark points")
    .mark_line()
    .encode(x=alt.X("i:Q", title="Point"), y=alt.Y("v:Q", title="Value (units)"))
)
plot
```
"""

#: A listener pushing a point every 50 ms (when served).
STREAM = (
    FRONT
    + "# Stream\n"
    + CHART
    + """
```{code-cell} ipython3
def sample(i):
    plot.push({"i": i, "v": i % 7, "t_ms": time.time() * 1000}, window=1000)


listener = livekit.listen(0.05, sample) if SERVED else None
```
"""
)

#: A thread pushing RATE points a second for 10 s (when served).
FLOOD = (
    FRONT
    + "# Flood\n"
    + CHART
    + f"""
```{{code-cell}} ipython3
def flood(seconds, rate):
    # Batches of rate/100 points every 10 ms.
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        for _ in range(rate // 100):
            plot.push({{"i": n, "v": n % 7, "t_ms": time.time() * 1000}}, window=1000)
            n += 1
        time.sleep(max(0.0, start + n / rate - time.perf_counter()))


if SERVED:
    threading.Thread(target=flood, args=(10, {RATE})).start()
```
"""
)


def build(folder: Path) -> tuple[Path, Path]:
    source = folder / "src"
    source.mkdir()
    (source / "index.md").write_text("# Bench\n\n```{toctree}\nstream\nflood\n```\n")
    (source / "stream.md").write_text(STREAM)
    (source / "flood.md").write_text(FLOOD)
    out = folder / "html"
    command, env = sphinx_build(source, out)
    subprocess.run(command, check=True, env=env, capture_output=True)  # noqa: S603
    return source, out


def serve(out: Path, source: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(  # noqa: S603 - our own interpreter
        [
            sys.executable,
            "-m",
            "livekit",
            "serve",
            str(out),
            "--source",
            str(source),
            "--port",
            "0",
            "--no-browser",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "?token=" in line:
            url = line.strip()
            # Listening: any answer (403 without the cookie) will do.
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(url.split("?")[0], timeout=30).close()  # noqa: S310
            return process, url
    raise RuntimeError("livekit serve printed no address")


def stop(process: subprocess.Popen[str]) -> float:
    start = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    return time.perf_counter() - start


#: Collects, per drawn update, ms from the push of its newest point to its drawing.
DRAWN = """
window.drawnLatencies = [];
document.addEventListener("livekit-widget:drawn", (event) => {
  for (const row of Object.values(event.detail)) {
    if (typeof row.t_ms === "number") window.drawnLatencies.push(Date.now() - row.t_ms);
  }
});
"""


def open_page(browser: Any, url: str, name: str) -> Any:
    """Open a page of the served book and run it live."""
    page = browser.new_page()
    page.goto(url.replace("/?", f"/{name}.html?"))
    page.wait_for_selector(".livekit-live-bar")
    page.evaluate(DRAWN)
    page.evaluate("window.livekitLive.ping()")  # the socket is open
    page.click(".livekit-live-run")
    return page


def main() -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    rows = []
    folder = Path(tempfile.mkdtemp(prefix="livekit-bench-kernel-"))
    try:
        source, out = build(folder)
        relay = _relay_latency()  # before Playwright, which runs an event loop here
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"),
                args=CHROMIUM_ARGS,
            )
            try:
                rows += _latency_and_rate(browser, out, source, relay)
                if "memory" in PARTS:
                    rows += _memory(browser, out, source)
                if "stop" in PARTS:
                    rows += _stop(browser, out, source)
            finally:
                browser.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def _latency_and_rate(browser: Any, out: Path, source: Path, relay: float) -> list[dict[str, Any]]:
    process, url = serve(out, source)
    # One browser profile for both pages: the printed address works once,
    # and a second page of the same profile has its cookie and live key.
    browser = browser.new_context()
    try:
        page = open_page(browser, url, "stream")
        page.wait_for_function("window.livekitLive.stats.latencies.length > 20", timeout=120_000)
        trips = [page.evaluate("window.livekitLive.ping()") / 1000 for _ in range(50)]
        one_way = statistics.median(trips) / 2
        page.evaluate("window.livekitLive.stats.latencies.length = 0")
        page.evaluate("window.drawnLatencies.length = 0")
        time.sleep(10)
        arrived = sorted(x / 1000 for x in page.evaluate("window.livekitLive.stats.latencies"))
        latencies = sorted(x / 1000 for x in page.evaluate("window.drawnLatencies"))
        page.close()
        # The flood: RATE points a second for 10 s, from a thread of the kernel.
        page = open_page(browser, url, "flood")
        page.wait_for_function("window.livekitLive.stats.points > 0", timeout=120_000)
        page.evaluate("window.drawnLatencies.length = 0")
        time.sleep(12)
        received = page.evaluate("window.livekitLive.stats.points")
        pushed = page.evaluate("window.livekitLive.stats.newest.i") + 1
        dropped = page.evaluate("window.livekitLive.stats.dropped")
        flooded = sorted(x / 1000 for x in page.evaluate("window.drawnLatencies"))
        page.close()
    finally:
        browser.close()
        stop(process)
    median, p95 = statistics.median(latencies), _p95(latencies)
    return [
        row(
            "serve: push() to a drawn point, median (a push every 50 ms)",
            median,
            one_way,
            None,
            f"p95 {p95 * 1e3:.0f} ms over {len(latencies)} draws (targets: median 30 ms, "
            f"p95 60 ms); where it goes: kernel to server {relay:.1f} ms (a page that acks "
            f"at once), to the page's socket {statistics.median(arrived) * 1e3:.1f} ms "
            f"(p95 {_p95(arrived) * 1e3:.0f}), the rest waits for a frame and draws",
        ),
        row(
            f"serve: push() to a drawn point, median, {RATE:,}/s into a window of 1,000",
            statistics.median(flooded),
            one_way,
            None,
            f"p95 {_p95(flooded) * 1e3:.0f} ms over {len(flooded)} draws",
        ),
        row(
            f"serve: seconds per point a page takes, window 1,000 ({RATE:,}/s pushed)",
            10 / max(received, 1),
            10 / pushed,
            1.1,
            f"{received:,} of {pushed:,} points pushed in 10 s reached the page; "
            f"the server dropped {dropped} messages",
        ),
    ]


def _p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95)]


def _relay_latency() -> float:
    """Median ms from push() to the server's relay, with a page that acks at once.

    Splits the end-to-end figure: what remains is the browser's drawing,
    which the widget's flow control waits for before sending more.
    """
    import asyncio

    from livekit.kernel.book import Cell
    from livekit.kernel.session import KernelSession

    chart = CHART.split("```{code-cell} ipython3\n")[1].split("```", maxsplit=1)[0]
    stream = STREAM.split("```{code-cell} ipython3\n")[2].split("```")[0]
    latencies: list[float] = []
    state: dict[str, Any] = {}

    def emit(event: dict[str, Any]) -> None:
        if event["type"] == "output":
            view = event["output"].get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if view:
                state["comm"] = view["model_id"]
        if event["type"] == "comm_msg":
            content = event["data"].get("content", {})
            if content.get("type") == "push":
                newest = max(row["t_ms"] for row in content["rows"])
                latencies.append(time.time() * 1000 - newest)
            if "seq" in content:
                ack = {"method": "custom", "content": {"type": "ack", "seq": content["seq"]}}
                state["session"].send_comm(event["comm_id"], ack)

    async def measure() -> None:
        session = state["session"] = KernelSession(Path.cwd(), emit)
        await session.start()
        try:
            session.run([Cell(1, chart)])
            while "comm" not in state:
                await asyncio.sleep(0.05)
            session.send_comm(state["comm"], {"method": "custom", "content": {"type": "ready"}})
            session.run([Cell(2, stream)])
            await asyncio.sleep(10)
        finally:
            await session.close()

    asyncio.run(measure())
    return statistics.median(latencies)


def _memory(browser: Any, out: Path, source: Path) -> list[dict[str, Any]]:
    process, url = serve(out, source)
    try:
        page = open_page(browser, url, "stream")
        page.wait_for_function("window.livekitLive.stats.points > 10", timeout=120_000)
        server = psutil.Process(process.pid)
        time.sleep(60)
        first = server.memory_info().rss
        time.sleep(60 * (MINUTES - 1))
        last = server.memory_info().rss
        points = page.evaluate("window.livekitLive.stats.points")
        page.close()
    finally:
        stop(process)
    return [
        row(
            f"serve: server RSS after {MINUTES:g} min of streaming / after 1 min (bytes)",
            last,
            first,
            1.1,
            f"{first / 1e6:.1f} MB then {last / 1e6:.1f} MB; {points:,} points reached the page; "
            f"10 min scaled down to {MINUTES:g}",
        )
    ]


def _stop(browser: Any, out: Path, source: Path) -> list[dict[str, Any]]:
    process, url = serve(out, source)
    page = open_page(browser, url, "stream")
    page.wait_for_function("window.livekitLive.stats.points > 0", timeout=120_000)
    live = stop(process)
    page.close()
    process, url = serve(out, source)
    idle = stop(process)
    return [
        row(
            "serve: SIGTERM to exit, with a live page and its kernel",
            live,
            idle,
            None,
            f"{live:.2f} s with a kernel, {idle:.2f} s without; the issue's bound is 2 s",
        )
    ]


if __name__ == "__main__":
    text, ok = table(main())
    print(text)
    sys.exit(0 if ok else 1)
