"""Run livekit's ratio benchmarks and print one table.

Each ``bench/bench_*.py`` module has ``main() -> list[dict]``; every dict is
one measurement of livekit against a baseline taken in the same run (these
machines are shared and noisy, so only ratios are compared with targets):

    {"name": str, "livekit": seconds, "baseline": seconds,
     "target": max ratio or None, "note": str}

Usage: ``python bench/run.py [NAME ...]`` runs the modules whose name
contains one of the NAMEs (all of them by default).  ``--json FILE`` also
writes the rows.  Exit status 1 if a ratio misses its target.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# The browser flags the tests use (Debian's chromium, no background traffic):
# one list for tests and benchmarks.
sys.path.insert(0, str(ROOT))
from tests.conftest import CHROMIUM_ARGS, MYSTNB_FRONT  # noqa: E402

__all__ = ["CHROMIUM_ARGS", "MYSTNB_FRONT", "best_of", "row", "sphinx_build", "table"]


def sphinx_build(
    source: Path, out: Path, *extra: str, execution: str = "force"
) -> tuple[list[str], dict[str, str]]:
    """Return the command and environment that build a book with livekit's conf.

    Without ``-n -W``: a benchmark measures time; the build's strictness is
    tested by the test suite.  A failing cell still fails the build.
    """
    command = [sys.executable, "-m", "sphinx", "-q", "-c", str(ROOT / "conf"), *extra]
    env = {**os.environ, "LIVEKIT_NB_EXECUTION": execution, "PYTHONWARNINGS": "ignore"}
    return [*command, str(source), str(out)], env


def best_of(fn: Callable[[], object], *, repeat: int = 5, number: int = 1) -> float:
    """Return the fastest of ``repeat`` timings of ``number`` calls, per call."""
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        timings.append((time.perf_counter() - start) / number)
    return min(timings)


def row(
    name: str, livekit: float, baseline: float, target: float | None, note: str = ""
) -> dict[str, Any]:
    """Build one result row (the shape every bench module returns)."""
    return {"name": name, "livekit": livekit, "baseline": baseline, "target": target, "note": note}


def format_seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.2f} ms"
    return f"{value * 1e6:.1f} µs"


def table(rows: Iterable[dict[str, Any]]) -> tuple[str, bool]:
    """Return the table text and whether every ratio met its target."""
    lines = [f"{'benchmark':<58} {'livekit':>10} {'baseline':>10} {'ratio':>7} {'target':>7}  ok"]
    ok = True
    for r in rows:
        ratio = r["livekit"] / r["baseline"] if r["baseline"] else float("inf")
        target = r.get("target")
        passed = target is None or ratio <= target
        ok &= passed
        lines.append(
            f"{r['name'][:58]:<58} {format_seconds(r['livekit']):>10} "
            f"{format_seconds(r['baseline']):>10} {ratio:>6.2f}x "
            f"{(f'{target:.2f}x' if target else '-'):>7}  {'yes' if passed else 'NO'}"
            + (f"  ({r['note']})" if r.get("note") else "")
        )
    return "\n".join(lines), ok


def discover(names: Sequence[str]) -> list[Path]:
    modules = sorted(HERE.glob("bench_*.py"))
    if names:
        modules = [m for m in modules if any(n in m.stem for n in names)]
    return modules


def load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="run only bench modules whose name contains these")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    rows: list[dict[str, Any]] = []
    for path in discover(args.names):
        print(f"running {path.stem} ...", file=sys.stderr, flush=True)
        rows.extend(load(path).main())
    text, ok = table(rows)
    print(f"Python {sys.version.split()[0]}")
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
