"""How long the book takes to build, executing every page.

Targets (on a quiet 2-core machine):

* a clean full build, every page executed from scratch
  (``LIVEKIT_NB_EXECUTION=force``, as tox and CI build it): at most 30 s;
* a rebuild with nothing changed (``LIVEKIT_NB_EXECUTION=cache``, the local
  default, jupyter-cache warm): at most 5 s.

``python bench/bench_book.py --pages`` says where a clean build's time
goes instead: it builds the book once with the documented command and
prints the build's phases, then a table of every page: when its kernel
started, the kernel's start-up, the cells' time, the CPU the kernel used,
and how long Sphinx took to parse the page.  With ``--estimates`` it also
writes each page's time into ``conf/page-times.json``, the estimates a
build without timings of its own (a fresh machine) schedules the pages by.

Both are absolute budgets, but this machine is shared: other builds and
test runs stretch wall time, sometimes fivefold.  So each build is compared
with a baseline measured in the same run, the same book built from scratch
with execution off (``-D nb_execution_mode=off``), which costs everything
but the kernels; the ratio of the two wall times stays put when the load
stretches both.  A row's ``target`` turns the budget into a ratio: the
budget divided by what the baseline would take on an idle machine, which is
its CPU time (it is one single-threaded process).  Kernel start-up and the
pages' own waits do not stretch with the load the way the baseline does, so
the ratio is a guide, not an exact correction: on a quiet machine the wall
time in the note is the number to hold against the budget.

Two more rows: the clean build with ``sphinx -j 2`` (two readers; the
kernels run ahead of reading, a few at a time, either way), and a fresh
output folder over a warm cache.  Notes give CPU
seconds too (sphinx plus its kernels), which a loaded machine stretches
far less than wall time, and the load average at the end.

Every build writes to a temporary folder, with its own jupyter-cache, so
running this never touches ``build/``; like any build of the book, each
keeps its pages' times in the user's cache, which the next clean build
schedules the pages by.  Set ``LIVEKIT_BENCH_BOOK_REPEAT`` to
build more than once and keep the fastest (default 1: a full build is long).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ROOT, row, sphinx_build, table

FULL_BUILD_BUDGET = 30.0
REBUILD_BUDGET = 5.0


class Timing(NamedTuple):
    wall: float
    #: CPU seconds of sphinx and every kernel it started: on a loaded machine
    #: wall time stretches, this does not.
    cpu: float


def build(out: Path, cache: Path, *, execution: str, extra: tuple[str, ...] = ()) -> Timing:
    """Build docs/ into ``out`` and return the wall time.

    Without ``-n -W``: this measures time, and the build's strictness is
    tested elsewhere (a page that is not yet clean should not stop the
    benchmark).  A failing cell still fails the build.
    """
    command, env = sphinx_build(
        ROOT / "docs", out, "-D", f"nb_execution_cache_path={cache}", *extra, execution=execution
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # Our own interpreter running sphinx on this repository's docs.
    result = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, env=env, check=False
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        log = result.stdout[-3000:] + result.stderr[-6000:]
        raise RuntimeError(f"the book did not build:\n{log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(elapsed, cpu)


def main() -> list[dict[str, Any]]:
    repeat = int(os.environ.get("LIVEKIT_BENCH_BOOK_REPEAT", "1"))
    worst = Timing(float("inf"), float("inf"))
    off = force = parallel = cached = warm = worst
    with tempfile.TemporaryDirectory(prefix="livekit-bench-book-") as tmp:
        folder = Path(tmp)
        for n in range(repeat):
            # Interleaved, so that a noisy neighbour slows every side alike.
            run = folder / str(n)
            off = min(off, build(run / "off" / "html", run / "off-cache", execution="off"))
            force = min(force, build(run / "force" / "html", run / "f-cache", execution="force"))
            parallel = min(
                parallel,
                build(run / "j2" / "html", run / "j2-cache", execution="force", extra=("-j", "2")),
            )
            # Fill a jupyter-cache, then build again with nothing changed.
            cache, out = run / "cache", run / "cache-build" / "html"
            build(out, cache, execution="cache")
            cached = min(cached, build(out, cache, execution="cache"))
            # A fresh output folder over a warm cache: every page is read
            # again, no kernel is started (what `rm -rf build/html` costs).
            warm = min(warm, build(run / "warm" / "html", cache, execution="cache"))
    pages = len(list((ROOT / "docs").rglob("*.md")))
    idle_off = off.cpu  # what the baseline would take with both cores free

    def budget(name: str, timing: Timing, seconds: float | None, what: str) -> dict[str, Any]:
        target = seconds / idle_off if seconds is not None else None
        limit = f", budget {seconds:.0f} s" if seconds is not None else ""
        return row(
            name,
            timing.wall,
            off.wall,
            target,
            f"{timing.wall:.1f} s wall{limit}, {timing.cpu:.1f} s CPU; {what}",
        )

    return [
        budget(
            "book: clean full build, every page executed",
            force,
            FULL_BUILD_BUDGET,
            f"baseline: the same {pages} pages with execution off, {off.wall:.1f} s wall, "
            f"{off.cpu:.1f} s CPU, load average {os.getloadavg()[0]:.1f}",
        ),
        budget(
            "book: clean full build, sphinx -j 2",
            parallel,
            FULL_BUILD_BUDGET,
            "two readers; the pages' kernels run ahead of reading either way",
        ),
        budget(
            "book: rebuild with nothing changed (jupyter-cache)",
            cached,
            REBUILD_BUDGET,
            "no page read again",
        ),
        budget(
            "book: fresh output folder over a warm jupyter-cache",
            warm,
            None,
            "every page read again, no kernel started",
        ),
    ]


#: The line of a build's log that starts each phase, and the phase's name,
#: in the order they come.
PHASES = (
    ("updating environment", "reading: pages parsed, while the kernels execute theirs"),
    ("pickling environment", "pickling, consistency checks, static files"),
    ("copying assets: done", "resolving references, writing the pages"),
    ("generating indices", "indices, then viewcode's [source] pages, one after another"),
    ("writing additional pages", "search page, search index, inventory"),
)


def stamped_build(out: Path) -> tuple[Timing, list[tuple[float, str]]]:
    """Build the book with the documented command and note when each log line came."""
    command = [
        sys.executable,
        "-m",
        "sphinx",
        *("-n", "-W", "--keep-going", "-j", "auto"),
        *("-c", str(ROOT / "conf"), str(ROOT / "docs"), str(out)),
    ]
    env = {**os.environ, "LIVEKIT_NB_EXECUTION": "force", "PYTHONWARNINGS": "ignore"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    lines: list[tuple[float, str]] = []
    # Our own interpreter running sphinx on this repository's docs.
    with subprocess.Popen(  # noqa: S603
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as build:
        assert build.stdout is not None
        for line in build.stdout:
            lines.append((time.perf_counter() - start, line.rstrip()))
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if build.returncode != 0:
        log = "\n".join(line for _, line in lines[-60:])
        raise RuntimeError(f"the book did not build:\n{log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(elapsed, cpu), lines


def phase_rows(lines: list[tuple[float, str]], total: float) -> list[tuple[str, float]]:
    """Return each phase of a build and its wall seconds, from its stamped log."""
    starts: list[tuple[float, str]] = [(0.0, "python, sphinx, extensions and theme start")]
    rest = iter(lines)
    for prefix, name in PHASES:
        at = next((stamp for stamp, line in rest if line.startswith(prefix)), None)
        if at is None:
            break
        starts.append((at, name))
    ends = [stamp for stamp, _ in starts[1:]] + [total]
    return [(name, end - at) for (at, name), end in zip(starts, ends, strict=True)]


def pages(estimates: bool = False) -> None:
    """Build the book once, as tox does, and print where its time went, page by page.

    The phases come from the build's log; the pages from the timings the
    build keeps beside its doctrees (``livekit._book_execution``): when
    each page's kernel was started, how long it took to start and to run
    the cells, the CPU it used (with its child processes), and how long
    Sphinx then took to parse the page.
    """
    from livekit import _book_execution

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="livekit-bench-pages-") as tmp:
        out = Path(tmp) / "html"
        timing, lines = stamped_build(out)
        record = json.loads((out / ".doctrees" / _book_execution.TIMINGS).read_text())
    if estimates:
        write_estimates(record)
    print(f"Where the time goes: one clean build, {timing.wall:.1f} s wall, {timing.cpu:.1f} s CPU")
    for name, seconds in phase_rows(lines, timing.wall):
        print(f"  {seconds:5.1f} s  {name}")
    executed = {name: p for name, p in record["pages"].items() if "wall" in p}
    kernels = sum(p["kernel_cpu"] for p in executed.values())
    sphinx = timing.cpu - kernels - record["executor_cpu"]
    print(
        f"CPU: kernels {kernels:.1f} s ({len(executed)} pages, "
        f"{record['kernels_at_once']} at a time), executor {record['executor_cpu']:.1f} s, "
        f"sphinx {sphinx:.1f} s; load average {load:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print()
    header = ("page", "queued", "start", "cells", "executed", "kernel CPU", "of it start", "parse")
    print("{:32} {:>7} {:>6} {:>6} {:>9} {:>11} {:>12} {:>6}".format(*header))

    def order(item: tuple[str, dict[str, float]]) -> tuple[float, float]:
        return (-item[1].get("wall", 0.0), -item[1].get("read", 0.0))

    for name, page in sorted(record["pages"].items(), key=order):
        if "wall" in page:
            cells = (
                f"{page['queued']:7.1f} {page['kernel_start']:6.2f} {page['cells']:6.2f} "
                f"{page['wall']:9.2f} {page['kernel_cpu']:11.2f} {page['kernel_start_cpu']:12.2f}"
            )
        else:
            cells = f"{'':7} {'':6} {'':6} {'':>9} {'':11} {'':12}"
        print(f"{name:32} {cells} {page.get('read', 0.0):6.2f}")
    reads = sum(p.get("read", 0.0) for p in record["pages"].values())
    walls = sum(p["wall"] for p in executed.values())
    print(
        f"{'all pages':32} {'':7} {'':6} {'':6} {walls:9.2f} {kernels:11.2f} {'':12} {reads:6.2f}"
    )
    print(
        "queued: seconds after the executor started; start: the kernel's start-up; "
        "executed: start + cells, wall; parse: Sphinx reading the page, outputs included"
    )


#: The book's committed estimates of each page's time (``livekit_book_estimates``).
ESTIMATES = ROOT / "conf" / "page-times.json"


def write_estimates(record: dict[str, Any]) -> None:
    """Write each executed page's time in ``record`` into :data:`ESTIMATES`."""
    walls = {name: page["wall"] for name, page in record["pages"].items() if "wall" in page}
    content = json.loads(ESTIMATES.read_text(encoding="utf-8"))
    content["pages"] = {name: round(walls[name], 1) for name in sorted(walls, key=walls.get)[::-1]}
    ESTIMATES.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(walls)} pages' times into {ESTIMATES.relative_to(ROOT)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--pages"] and set(sys.argv[2:]) <= {"--estimates"}:
        pages(estimates="--estimates" in sys.argv)
    else:
        print(table(main())[0])
