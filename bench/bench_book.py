"""How long the book takes to build, executing every page.

Targets (on a quiet 2-core machine):

* a clean full build, every page executed from scratch
  (``LIVEKIT_NB_EXECUTION=force``, as tox and CI build it): at most 30 s;
* a rebuild with nothing changed (``LIVEKIT_NB_EXECUTION=cache``, the local
  default, jupyter-cache warm): at most 5 s.

``python bench/bench_book.py --pages`` says where a clean build's time
goes instead: it executes each page on its own, one after another, as the
build would, and prints the kernel's start-up, the cells' time, the CPU the
kernel used and the slowest cells.

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

Two more rows: the clean build with ``sphinx -j 2`` (two pages' kernels
at once), and a fresh output folder over a warm cache.  Notes give CPU
seconds too (sphinx plus its kernels), which a loaded machine stretches
far less than wall time, and the load average at the end.

Every build writes to a temporary folder, with its own jupyter-cache, so
running this never touches ``build/``.  Set ``LIVEKIT_BENCH_BOOK_REPEAT`` to
build more than once and keep the fastest (default 1: a full build is long).
"""

from __future__ import annotations

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
            "two pages' kernels at once",
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


def pages() -> None:
    """Print, page by page, where executing the book's pages takes its time."""
    from datetime import datetime

    from myst_nb.core.read import read_myst_markdown_notebook
    from nbclient import NotebookClient

    from livekit import _book_kernels, _display

    def seconds(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    # The environment livekit.sphinxext gives the book's kernels.
    home = Path(tempfile.mkdtemp(prefix="livekit-bench-pages-"))
    os.environ.update(
        {
            _display.BOOK_ENV: "1",
            "PYTHONSTARTUP": str(ROOT / "livekit" / "_book_startup.py"),
            "LIVEKIT_HOME": str(home),
        }
    )
    if _book_kernels.registered():
        os.environ["JUPYTER_DEFAULT_PROVISIONER_NAME"] = _book_kernels.NAME
    total = [0.0, 0.0, 0.0]
    for md in sorted((ROOT / "docs").rglob("*.md")):
        text = md.read_text(encoding="utf-8")
        if "file_format: mystnb" not in text:
            continue
        notebook = read_myst_markdown_notebook(text)
        where = {"metadata": {"path": str(md.parent)}}
        client = NotebookClient(notebook, timeout=180, record_timing=True, resources=where)
        before, start = os.times(), time.perf_counter()
        with client.setup_kernel():
            ready = time.perf_counter()
            for index, cell in enumerate(notebook.cells):
                if cell.cell_type == "code":
                    client.execute_cell(cell, index)
        done, after = time.perf_counter(), os.times()
        cpu = (after.children_user - before.children_user) + (
            after.children_system - before.children_system
        )
        cells = []
        for cell in notebook.cells:
            stamps = cell.get("metadata", {}).get("execution", {})
            if "shell.execute_reply" in stamps and "iopub.execute_input" in stamps:
                took = seconds(stamps["shell.execute_reply"])
                took -= seconds(stamps["iopub.execute_input"])
                cells.append((took, cell.source.splitlines()[0][:50]))
        slowest = "; ".join(f"{took:.2f} s {first!r}" for took, first in sorted(cells)[::-1][:2])
        name = md.relative_to(ROOT / "docs").as_posix()
        print(
            f"{name:30} start {ready - start:5.2f} s  cells {done - ready:5.2f} s  "
            f"kernel CPU {cpu:5.2f} s  slowest: {slowest}",
            flush=True,
        )
        for i, value in enumerate((ready - start, done - ready, cpu)):
            total[i] += value
    print(
        f"{'all pages':30} start {total[0]:5.2f} s  cells {total[1]:5.2f} s  "
        f"kernel CPU {total[2]:5.2f} s  load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--pages"]:
        pages()
    else:
        print(table(main())[0])
