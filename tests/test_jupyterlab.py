"""livekit's outputs in a real JupyterLab, driven by chromium, with no network.

One ``jupyter lab`` runs on 127.0.0.1 with a token, a temporary root and
temporary settings, news, update checks and the PyPI extension manager
turned off.  A notebook written with nbformat is opened in chromium and its
cells are run from the Run menu and with Shift+Enter, as a user would.  The
test then looks at what JupyterLab drew:

* a :class:`livekit.Mermaid` value becomes an SVG (JupyterLab's own
  ``text/vnd.mermaid`` renderer);
* an Altair chart with livekit's renderer becomes a vega SVG, drawn by the
  vendored vega that livekit inlines;
* a :class:`livekit.VegaLite` widget shows the points a cell pushed, then
  grows while :func:`livekit.listen` pushes more, never holding more than
  the window and never redrawing from scratch;
* charts follow JupyterLab's light theme although the OS prefers dark,
  turn dark when JupyterLab Dark is chosen from the Settings menu, and keep
  their titles inside the SVG;
* after the chart's cell runs again and the page reloads, everything draws
  again from the saved notebook and the widget from the kernel;
* neither the page nor the server reaches any host but the lab server, and
  the browser console has no errors.

Screenshots go to the test's temporary folder (``LIVEKIT_SHOTS=dir`` puts
them somewhere to look at).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require

pytestmark = pytest.mark.browser

#: Points the widget cell pushes, then the window every push keeps.
FIRST = 10
WINDOW = 40
#: Points the listener pushes after the first ones (one every 0.05 s).
MORE = 60

CELLS = [
    'import altair as alt\nimport livekit\n\n_ = alt.renderers.enable("livekit")',
    textwrap.dedent(
        """\
        livekit.Mermaid(
            "sequenceDiagram\\n    lab->>kernel: execute\\n    kernel->>lab: result",
            caption="JupyterLab asks the kernel to run a cell",
        )"""
    ),
    textwrap.dedent(
        """\
        alt.Chart(
            alt.Data(values=[{"step": s, "mb": 40 + 3 * s} for s in range(6)])
        ).mark_bar().encode(
            x=alt.X("step:O", title="Step"), y=alt.Y("mb:Q", title="Memory (MB)")
        ).properties(title="Memory per step")"""
    ),
    textwrap.dedent(
        """\
        plot = livekit.VegaLite(
            alt.Chart(title="Live points").mark_point().encode(
                x=alt.X("i:Q", title="Tick"), y=alt.Y("v:Q", title="Value (units)")
            )
        )
        plot"""
    ),
    f'for i in range({FIRST}):\n    plot.push({{"i": i, "v": i % 7}}, window={WINDOW})',
    textwrap.dedent(
        f"""\
        def more(tick):
            if tick < {MORE}:
                plot.push({{"i": {FIRST} + tick, "v": tick % 7}}, window={WINDOW})

        listener = livekit.listen(0.05, more)"""
    ),
]

#: An audit hook run in the server before JupyterLab starts: it writes every
#: host the server resolves or connects to that is not this machine.
SERVER_MAIN = textwrap.dedent(
    """\
    import sys

    LOCAL = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "", None}
    log = open(sys.argv.pop(1), "a", buffering=1)

    def hook(event, args):
        if event == "socket.getaddrinfo":
            host = args[0]
        elif event == "socket.connect":
            address = args[1]
            host = address[0] if isinstance(address, tuple) else None
        else:
            return
        if isinstance(host, bytes):
            host = host.decode()
        if host not in LOCAL:
            log.write(f"{event} {host!r}\\n")

    sys.addaudithook(hook)
    from jupyterlab.labapp import main

    sys.exit(main())
    """
)

#: JupyterLab's own settings: no news, no update check (both fetched by the
#: server from the internet when the page asks), no extension manager.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "checkForUpdates": False,
        "fetchNews": "false",
    },
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}


@dataclass
class Lab:
    """A running JupyterLab: where it listens, and what it tried to reach."""

    origin: str
    token: str
    root: Path
    outside: Path
    process: subprocess.Popen[bytes]

    def children(self) -> list[Any]:
        """The server's child processes (kernels, mostly), as psutil processes."""
        import psutil

        return list(psutil.Process(self.process.pid).children(recursive=True))

    def shutdown(self) -> None:
        """Ask the server to stop; it shuts its kernels down first."""
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            f"{self.origin}/api/shutdown",
            method="POST",
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass


def _clean_env(home: Path) -> dict[str, str]:
    # The kernel must see a plain JupyterLab: no book build, no VS Code, and
    # none of this machine's Jupyter or IPython configuration.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VSCODE_", "JUPYTER", "LIVEKIT_")) and k != "IPYTHONDIR"
    }
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONWARNINGS="ignore",
    )
    return env


def _prepare_home(home: Path) -> None:
    for folder in ("config", "runtime", "data", "settings", "workspaces", "ipython"):
        (home / folder).mkdir(parents=True)
    for name, values in LAB_SETTINGS.items():
        target = home / "settings" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values), encoding="utf-8")


def _lab_command(root: Path, token: str, outside: Path) -> list[str]:
    command = [
        sys.executable,
        "-c",
        SERVER_MAIN,
        str(outside),
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",  # the OS picks a free port; the server writes it down
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
        # What JupyterLab's server would fetch from the internet: news and
        # release checks (from github.com and pypi.org), and PyPI searches
        # for the extension manager.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:  # containers and CI runners often run as root
        command.append("--allow-root")
    return command


def _wait_for_origin(runtime: Path, process: subprocess.Popen[bytes], log: Path) -> str:
    info = runtime / f"jpserver-{process.pid}.json"
    deadline = time.monotonic() + 30
    while True:
        if info.exists():
            try:
                url = urllib.parse.urlsplit(json.loads(info.read_text(encoding="utf-8"))["url"])
            except (json.JSONDecodeError, KeyError):  # written, not yet complete
                pass
            else:
                return f"{url.scheme}://{url.netloc}"
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"jupyter lab did not start:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A ``jupyter lab`` on a free loopback port, stopped with its kernels."""
    require(shutil.which("chromium") is not None, "Debian's chromium is not installed")
    require(
        importlib.util.find_spec("jupyterlab") is not None,
        "jupyterlab is not installed (pip install 'livekit-introspect[test]')",
    )
    import psutil

    home, root = tmp_path / "home", tmp_path / "root"
    _prepare_home(home)
    root.mkdir()
    outside = tmp_path / "outside.log"
    outside.touch()
    token = secrets.token_hex(16)
    log = tmp_path / "lab.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            _lab_command(root, token, outside),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=_clean_env(home),
            cwd=root,
            start_new_session=True,
        )
    running = Lab("", token, root, outside, process)
    children: list[Any] = []
    try:
        running.origin = _wait_for_origin(home / "runtime", process, log)
        yield running
        children = running.children()
        running.shutdown()
        process.wait(timeout=20)
    finally:
        # However the test ended, the server and every kernel it started go.
        if process.poll() is None:
            children = children or running.children()
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _, alive = psutil.wait_procs(children, timeout=10)
        for leftover in alive:
            leftover.kill()
    assert alive == [], f"processes outlived the lab server: {alive}"


def _write_notebook(folder: Path) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    path = folder / "livekit.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``LIVEKIT_SHOTS``, or the test's temporary folder."""
    folder = Path(os.environ.get("LIVEKIT_SHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Watched:
    """What the page did while the test drove it."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def page(browser: Any, lab: Lab, shots: Path) -> Iterator[tuple[Any, Watched]]:
    """A chromium tab on the lab's notebook, recording requests and errors."""
    _write_notebook(lab.root)
    page = browser.new_page()
    page.set_viewport_size({"width": 1200, "height": 1400})
    # An OS in dark mode, JupyterLab in its default light theme: charts must
    # follow JupyterLab, not the OS.
    page.emulate_media(color_scheme="dark")
    watched = Watched()
    page.on("request", lambda request: watched.requests.append(request.url))
    page.on("websocket", lambda socket: watched.requests.append(socket.url))
    page.on("console", lambda m: watched.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
    try:
        with _explain_failure(page, shots):
            page.goto(f"{lab.origin}/lab/tree/livekit.ipynb?token={lab.token}")
            _open(page)
        yield page, watched
    finally:
        page.close()


@contextlib.contextmanager
def _explain_failure(page: Any, shots: Path) -> Iterator[None]:
    """On a failure, print the start of each output and take a screenshot."""
    try:
        yield
    except Exception:
        # For a failure on a machine nobody can look at (CI).
        print(page.evaluate(OUTLINE))
        page.screenshot(path=shots / "failure.png", full_page=True)
        raise


#: The start of each cell's output HTML.
OUTLINE = """
() => [...document.querySelectorAll(".jp-Notebook .jp-CodeCell .jp-OutputArea")]
  .map(area => area.innerHTML.slice(0, 600))
"""

#: What of a vega chart's axis titles lies outside its SVG (so is cut off).
CLIPPED = """
svg => {
  const box = svg.getBoundingClientRect();
  return [...svg.querySelectorAll(".role-axis-title text, .role-title-text")]
    .filter(t => {
      const r = t.getBoundingClientRect();
      return r.left < box.left - 0.5 || r.right > box.right + 0.5
        || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5;
    })
    .map(t => t.textContent);
}
"""

#: A chart's background colour, and vega's light and dark ones.
BACKGROUND = "svg => getComputedStyle(svg).backgroundColor"
LIGHT = "rgb(255, 255, 255)"
DARK = "rgb(51, 51, 51)"

#: Counts the live chart's points every frame, and notices a new SVG.
WATCH = """
() => {
  const state = { counts: [], replaced: false, svg: null, stop: false };
  window.__livekitWatch = state;
  const cell = document.querySelectorAll(".jp-Notebook .jp-CodeCell")[3];
  const tick = () => {
    const svg = cell.querySelector(".livekit-widget svg.marks");
    if (svg) {
      if (state.svg && state.svg !== svg) state.replaced = true;
      state.svg = svg;
      state.counts.push(svg.querySelectorAll(".mark-symbol.role-mark path").length);
    }
    if (!state.stop) requestAnimationFrame(tick);
  };
  tick();
}
"""

#: The live chart's points, by their aria labels ("Tick: 12; Value (units): 5").
POINTS = ".livekit-widget svg.marks .mark-symbol.role-mark path"
#: The kernel is idle (the notebook toolbar's indicator).
IDLE = ".jp-Notebook-ExecutionIndicator[data-status='idle']"


def _cell(page: Any, index: int) -> Any:
    return page.locator(".jp-Notebook .jp-CodeCell").nth(index)


def _open(page: Any) -> None:
    _cell(page, len(CELLS) - 1).wait_for(timeout=30_000)
    page.locator(IDLE).wait_for(timeout=30_000)


def _ticks(page: Any) -> list[int]:
    labels = (
        _cell(page, 3)
        .locator(POINTS)
        .evaluate_all("paths => paths.map(p => p.getAttribute('aria-label'))")
    )
    return sorted(int(label.split(";")[0].removeprefix("Tick: ")) for label in labels)


def _wait_for_tick(page: Any, tick: int) -> None:
    page.wait_for_function(
        f"""() => [...document.querySelectorAll(".jp-Notebook .jp-CodeCell")[3]
            .querySelectorAll("{POINTS}")]
            .some(p => (p.getAttribute("aria-label") || "").startsWith("Tick: {tick};"))""",
        timeout=20_000,
    )


def _check_static_outputs(page: Any, background: str = LIGHT) -> None:
    # (1) Mermaid: JupyterLab's own renderer draws text/vnd.mermaid, as an
    # <img> of the SVG with a data: URL.
    diagram = _cell(page, 1).locator(".jp-RenderedMermaid img[src^='data:image/svg+xml']")
    diagram.wait_for(timeout=60_000)  # the kernel starts and runs first
    assert diagram.evaluate("img => img.complete && img.naturalWidth > 0")
    svg = urllib.parse.unquote(diagram.get_attribute("src") or "")
    assert 'aria-roledescription="sequence"' in svg
    assert ">execute<" in svg
    # (2) Altair with livekit's renderer: the text/html output's vendored vega
    # draws an SVG (JupyterLab has no Vega-Lite 6 renderer of its own).
    chart = _cell(page, 2).locator(".livekit-vega svg.marks")
    chart.locator(".mark-rect.role-mark path").first.wait_for(timeout=20_000)
    assert chart.locator(".mark-rect.role-mark path").count() == 6
    assert chart.evaluate(CLIPPED) == []
    assert chart.evaluate(BACKGROUND) == background


def _run_all_but_the_listener(tab: Any) -> None:
    # From the Run menu, as a user would: "Run All Above Selected Cell".
    _cell(tab, len(CELLS) - 1).locator(".jp-InputPrompt").click()
    tab.locator(".lm-MenuBar-item", has_text="Run").first.click()
    tab.locator(".lm-Menu-item[data-command='notebook:run-all-above']").click()


def _check_first_points(tab: Any, shots: Path) -> None:
    # (3) The widget shows every point the cell after it pushed, and whole.
    _cell(tab, 3).scroll_into_view_if_needed()
    _wait_for_tick(tab, FIRST - 1)
    tab.locator(IDLE).wait_for()
    assert _ticks(tab) == list(range(FIRST))
    widget = _cell(tab, 3).locator(".livekit-widget svg.marks")
    assert widget.evaluate(CLIPPED) == []
    assert widget.evaluate(BACKGROUND) == LIGHT
    tab.screenshot(path=shots / "1-first-points.png", full_page=True)


def _run_the_listener(tab: Any, shots: Path) -> dict[str, Any]:
    # With the keyboard; it pushes one point per tick, up to FIRST + MORE - 1.
    tab.evaluate(WATCH)
    _cell(tab, len(CELLS) - 1).locator(".jp-InputPrompt").click()
    tab.keyboard.press("Shift+Enter")
    _wait_for_tick(tab, FIRST + MORE - 1)
    seen: dict[str, Any] = tab.evaluate(
        "() => { const s = window.__livekitWatch; s.stop = true; "
        "return { counts: s.counts, replaced: s.replaced }; }"
    )
    tab.screenshot(path=shots / "2-after-listen.png", full_page=True)
    assert _cell(tab, 3).locator(".livekit-widget svg.marks").evaluate(CLIPPED) == []
    # The window keeps the newest points.
    assert _ticks(tab) == list(range(FIRST + MORE - WINDOW, FIRST + MORE))
    return seen


def _switch_to_dark(tab: Any, shots: Path) -> None:
    # Settings > Theme > JupyterLab Dark: both charts draw again, dark, and
    # the widget keeps its points.
    tab.locator(".lm-MenuBar-item", has_text="Settings").first.click()
    tab.locator(".lm-Menu-itemLabel", has_text=re.compile("^Theme$")).first.hover()
    tab.locator(".lm-Menu-itemLabel", has_text=re.compile("^JupyterLab Dark$")).first.click()
    tab.locator("body[data-jp-theme-light='false']").wait_for(state="attached")
    tab.wait_for_function(
        f"""() => {{
            const cells = document.querySelectorAll(".jp-Notebook .jp-CodeCell");
            const svgs = [cells[2].querySelector(".livekit-vega svg.marks"),
                          cells[3].querySelector(".livekit-widget svg.marks")];
            return svgs.every(svg => svg && getComputedStyle(svg).backgroundColor === "{DARK}");
        }}""",
        timeout=20_000,
    )
    assert _ticks(tab) == list(range(FIRST + MORE - WINDOW, FIRST + MORE))
    assert _cell(tab, 3).locator(".livekit-widget svg.marks").evaluate(CLIPPED) == []
    tab.screenshot(path=shots / "3-dark.png", full_page=True)


def _check_reload(tab: Any, shots: Path) -> None:
    # Run the Altair chart's cell again (a new output replaces the first
    # one), then save and reload: the page draws everything again from the
    # saved outputs, and the widget asks the kernel for its state.
    _cell(tab, 2).locator(".jp-InputPrompt").click()
    tab.keyboard.press("Shift+Enter")
    tab.locator(IDLE).wait_for()
    _check_static_outputs(tab, DARK)
    tab.keyboard.press("Escape")
    tab.keyboard.press("Control+s")
    tab.locator(".jp-mod-dirty").wait_for(state="detached")
    tab.reload()
    _open(tab)
    _check_static_outputs(tab, DARK)
    _cell(tab, 3).scroll_into_view_if_needed()
    _wait_for_tick(tab, FIRST + MORE - 1)
    assert _ticks(tab) == list(range(FIRST + MORE - WINDOW, FIRST + MORE))
    widget = _cell(tab, 3).locator(".livekit-widget svg.marks")
    assert widget.evaluate(CLIPPED) == []
    assert widget.evaluate(BACKGROUND) == DARK
    tab.screenshot(path=shots / "4-reloaded.png", full_page=True)


def test_outputs_draw_in_jupyterlab_offline_and_the_chart_grows_live(
    lab: Lab, page: tuple[Any, Watched], shots: Path
) -> None:
    tab, watched = page
    with _explain_failure(tab, shots):
        _run_all_but_the_listener(tab)
        _check_static_outputs(tab)
        _check_first_points(tab, shots)
        seen = _run_the_listener(tab, shots)
        _switch_to_dark(tab, shots)
        _check_reload(tab, shots)

    # The chart grew from FIRST to the window a few points a frame and stayed
    # there, in the same SVG: no redraw, no frame with fewer points (flicker).
    counts = seen["counts"]
    assert (counts[0], max(counts), counts[-1]) == (FIRST, WINDOW, WINDOW)
    assert counts == sorted(counts), "the chart lost points while growing (a redraw)"
    assert len(set(counts)) > 4, f"the chart jumped instead of growing: {sorted(set(counts))}"
    assert not seen["replaced"], "the chart's SVG was replaced instead of updated"

    # (4) Nothing went anywhere but the lab server; the console stayed clean.
    ours = (lab.origin, lab.origin.replace("http://", "ws://"), "data:", "blob:")
    assert [url for url in watched.requests if not url.startswith(ours)] == []
    assert lab.outside.read_text() == ""
    assert watched.errors == []
    # One kernel (besides, maybe, JupyterLab's `node` build check), which the
    # lab fixture checks stops with the server.
    kernels = [p for p in lab.children() if "ipykernel_launcher" in " ".join(p.cmdline())]
    assert len(kernels) == 1


def test_the_servers_audit_hook_writes_hosts_off_this_machine(tmp_path: Path) -> None:
    # The check above trusts this hook: it must see a lookup it should report.
    outside = tmp_path / "outside.log"
    probe = SERVER_MAIN.replace(
        "from jupyterlab.labapp import main",
        "import socket\n"
        "def main():\n"
        "    socket.getaddrinfo('127.0.0.1', 80)\n"
        "    try:\n"
        "        socket.getaddrinfo('pypi.invalid', 443)\n"
        "    except OSError:\n"
        "        pass\n"
        "    return 0",
    )
    subprocess.run([sys.executable, "-c", probe, str(outside)], check=True, timeout=30)
    assert outside.read_text() == "socket.getaddrinfo 'pypi.invalid'\n"
