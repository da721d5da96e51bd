"""How long the book takes to build, executing every page.

Targets (issue 7, on a 2-core machine):

* a clean full build, every page executed from scratch
  (``LIVEKIT_NB_EXECUTION=force``, as tox and CI build it): under 120 s;
* a rebuild with nothing changed (``LIVEKIT_NB_EXECUTION=cache``, the local
  default, jupyter-cache warm): under 15 s.

Both are absolute budgets.  To compare like with like on a shared, noisy
machine, each is also reported against a baseline measured in the same run:
the same book built from scratch with execution off
(``-D nb_execution_mode=off``), which costs everything but the kernels.  A
row's ``target`` is its absolute budget divided by that baseline, so the
ratio meets its target exactly when the build meets its budget.

Every build writes to a temporary folder, with its own jupyter-cache, so
running this never touches ``build/``.  Set ``LIVEKIT_BENCH_BOOK_REPEAT`` to
build more than once and keep the fastest (default 1: a full build is long).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import row, table

ROOT = Path(__file__).resolve().parent.parent
FULL_BUILD_BUDGET = 120.0
REBUILD_BUDGET = 15.0


def build(out: Path, cache: Path, *, execution: str, extra: tuple[str, ...] = ()) -> float:
    """Build docs/ into ``out`` and return the wall time.

    Without ``-n -W``: this measures time, and the build's strictness is
    tested elsewhere (a page that is not yet clean should not stop the
    benchmark).  A failing cell still fails the build.
    """
    env = {**os.environ, "LIVEKIT_NB_EXECUTION": execution, "PYTHONWARNINGS": "ignore"}
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-q",
        "-c",
        str(ROOT / "conf"),
        "-D",
        f"nb_execution_cache_path={cache}",
        *extra,
        str(ROOT / "docs"),
        str(out),
    ]
    start = time.perf_counter()
    # Our own interpreter running sphinx on this repository's docs.
    result = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, env=env, check=False
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        log = result.stdout[-3000:] + result.stderr[-6000:]
        raise RuntimeError(f"the book did not build:\n{log}")
    return elapsed


def main() -> list[dict[str, Any]]:
    repeat = int(os.environ.get("LIVEKIT_BENCH_BOOK_REPEAT", "1"))
    off = force = cached = warm = float("inf")
    with tempfile.TemporaryDirectory(prefix="livekit-bench-book-") as tmp:
        folder = Path(tmp)
        for n in range(repeat):
            # Interleaved, so that a noisy neighbour slows both sides alike.
            run = folder / str(n)
            off = min(off, build(run / "off" / "html", run / "off-cache", execution="off"))
            force = min(
                force, build(run / "force" / "html", run / "force-cache", execution="force")
            )
            # Fill a jupyter-cache, then build again with nothing changed.
            cache, out = run / "cache", run / "cache-build" / "html"
            build(out, cache, execution="cache")
            cached = min(cached, build(out, cache, execution="cache"))
            # A fresh output folder over a warm cache: every page is read
            # again, no kernel is started (what `rm -rf build/html` costs).
            warm = min(warm, build(run / "warm" / "html", cache, execution="cache"))
    pages = len(list((ROOT / "docs").rglob("*.md")))
    return [
        row(
            "book: clean full build, every page executed",
            force,
            off,
            FULL_BUILD_BUDGET / off,
            f"{force:.1f} s, budget {FULL_BUILD_BUDGET:.0f} s; baseline: the same "
            f"{pages} pages built with execution off ({off:.1f} s)",
        ),
        row(
            "book: rebuild with nothing changed (jupyter-cache)",
            cached,
            off,
            REBUILD_BUDGET / off,
            f"{cached:.1f} s, budget {REBUILD_BUDGET:.0f} s; same baseline",
        ),
        row(
            "book: fresh output folder over a warm jupyter-cache",
            warm,
            off,
            None,
            f"{warm:.1f} s: every page re-read, no kernel started; same baseline",
        ),
    ]


if __name__ == "__main__":
    print(table(main())[0])
