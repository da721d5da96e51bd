"""Fixtures shared by livekit's tests: a built book and a headless browser.

The browser is Debian's chromium driven by Playwright (``playwright install``
cannot download browsers on these machines).  Without chromium a browser test
is skipped with the reason, except under ``CI=true``, where a missing browser
fails the run: a green CI must mean the pages were really looked at.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# sphinx.testing: the `app` fixture and `@pytest.mark.sphinx` for test books.
pytest_plugins = ["sphinx.testing.fixtures"]

ROOT = Path(__file__).resolve().parent.parent

#: The front matter of a page of code cells that myst-nb executes.
MYSTNB_FRONT = """---
file_format: mystnb
kernelspec:
  name: python3
  display_name: Python 3
---
"""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session", autouse=True)
def _livekit_home_of_the_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point ``LIVEKIT_HOME`` at a folder of this run's own when it is unset.

    tox sets it for each env; a plain ``pytest`` would otherwise write the
    nodes, registry entries and cookies of its tests (and of the processes
    they start, which inherit the environment) into the user's real
    ``~/.livekit``. A test that needs another home sets its own.
    """
    if os.environ.get("LIVEKIT_HOME"):
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LIVEKIT_HOME", str(tmp_path_factory.mktemp("run") / "livekit-home"))
        yield


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` is false, but fail under CI=true."""
    if condition:
        return
    if on_ci():
        pytest.fail(f"{reason} (CI=true: a missing tool is a failure, not a skip)")
    pytest.skip(reason)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless chromium for one test, closed at its end.

    Not shared across tests: while Playwright's sync API is open it keeps an
    asyncio loop marked running on the main thread, and every later test
    that calls ``asyncio.run()`` would fail.  (A fixture wider than one test
    may use :func:`open_chromium` if it is closed before it returns.)
    """
    with open_chromium(tmp_path_factory) as context:
        yield context


@contextlib.contextmanager
def open_chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless chromium (a Playwright browser context), closed on exit."""
    executable = chromium_path()
    require(executable is not None, "Debian's chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the test extra installs it
        require(False, "playwright is not installed (pip install playwright)")
        raise
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1200, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def python_for_another_user() -> str | None:
    """An interpreter that uid 65534 can run, for attackers' scripts (stdlib only).

    Debian's ``/usr/bin/python3`` where it exists, else this one, unless it
    lives under ``/root`` (pyenv's do), where another user cannot reach it.
    """
    for candidate in ("/usr/bin/python3", sys.executable):
        if os.access(candidate, os.X_OK) and not candidate.startswith("/root"):
            return candidate
    return None


def mermaid_page(folder: Path) -> Path:
    """Write a blank page that loads the vendored mermaid, ready to render with.

    A test opens it in the ``browser`` and calls ``mermaid.parse`` or
    ``mermaid.render`` on the sources it checks.
    """
    from livekit import _assets
    from livekit.outputs.mermaid import MERMAID

    page = folder / "mermaid-page.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        f"<script>{_assets.read(MERMAID)}</script>"
        "<script>mermaid.initialize({startOnLoad: false});</script></body></html>",
        encoding="utf-8",
    )
    return page


def build_book(
    source: Path,
    out: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Build a book with livekit's configuration, executing every page.

    ``env`` adds to the environment of the build and of its kernels; ``cwd``
    is the folder the build runs in (this one by default).  The build keeps
    its pages' run times beside ``out``, not in the user's cache.
    """
    env = {
        **os.environ,
        "LIVEKIT_NB_EXECUTION": "force",
        "PYTHONWARNINGS": "ignore",
        # The pages' run times, which a build keeps in the user's cache.
        "LIVEKIT_BOOK_TIMINGS": str(out.parent / "page-times.json"),
        **(env or {}),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-n",
            "-W",
            "--keep-going",
            "-q",
            "-j",
            "auto",  # pages execute in parallel: about 40% faster on 2 cores
            "-c",
            str(ROOT / "conf"),
            str(source),
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=900,
        check=False,
    )


_book_lock = threading.Lock()


# Run in every kernel of the book's build, after each cell: note the cookies
# in force (this interpreter's own, and the cookie file of its livekit home),
# so that a test can look for them in the built pages.
_COOKIE_RECORDER = """
import json, os, sys

def _livekit_record_cookies(*_):
    cookies = sys.modules.get("livekit.nodes.cookie")
    own = getattr(cookies, "_own", None)
    home = os.environ.get("LIVEKIT_HOME") or os.path.expanduser("~/.livekit")
    try:
        with open(os.path.join(home, "cookie")) as file:
            stored = file.read().strip()
    except OSError:
        stored = None
    with open(os.environ["LIVEKIT_TEST_COOKIE_RECORD"], "a") as record:
        record.write(json.dumps({"pid": os.getpid(), "own": own, "file": stored}) + "\\n")

get_ipython().events.register("post_run_cell", _livekit_record_cookies)
"""


def book_cookie_record(book: Path) -> Path:
    """Where :func:`built_book` noted the cookies its kernels had in force, one JSON a line."""
    return book.parent / "cookies-in-force.jsonl"


@pytest.fixture(scope="session")
def built_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole book built from docs/ into a temporary folder (once a session).

    Every kernel of the build notes the cookies it had in force after each
    cell (see :func:`book_cookie_record`), through an IPython startup file.
    """
    with _book_lock:
        base = tmp_path_factory.mktemp("book")
        out = base / "html"
        startup = base / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-record-cookies.py").write_text(_COOKIE_RECORDER)
        env = {
            "IPYTHONDIR": str(base / "ipython"),
            "LIVEKIT_TEST_COOKIE_RECORD": str(book_cookie_record(out)),
        }
        result = build_book(ROOT / "docs", out, env=env)
        if result.returncode != 0:
            pytest.fail(
                f"the book did not build:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
            )
        # Beside the book, for the tests that read what the build printed.
        (out.parent / "build.log").write_text(result.stdout + result.stderr, encoding="utf-8")
        return out


#: The trace's capture backends on this Python (sys.monitoring from 3.12).
BACKENDS = ["monitoring", "patching"] if sys.version_info >= (3, 12) else ["patching"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each capture backend a trace test runs under."""
    return str(request.param)


@pytest.fixture
def no_thread_left_running() -> Iterator[None]:
    """Every thread a test starts is joined before the test ends (no grace)."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert left == []


@pytest.fixture
def no_thread_left_behind() -> Iterator[None]:
    """Fail a test that leaves a thread it started still running."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for t in left:
        t.join(10.0)
    assert [t.name for t in left if t.is_alive()] == []


@pytest.fixture
def quiet_crash_reports(caplog: pytest.LogCaptureFixture) -> None:
    """Keep the crashes a test provokes on purpose out of the log."""
    caplog.set_level(logging.CRITICAL, logger="livekit.supervisor")
