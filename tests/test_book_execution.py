"""A book's pages execute ahead of reading, several kernels at a time."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import psutil
import pytest

from livekit import _book_execution
from tests.conftest import MYSTNB_FRONT, ROOT, build_book

# Each page notes when its cell ran and in which kernel, and waits 3 s.
FRONT = MYSTNB_FRONT

PAGE = (
    FRONT
    + """
# Page {n}

```{{code-cell}} ipython3
import json, os, time
start = time.time()
time.sleep(3)
with open({record!r}, "a") as f:
    run = {{"page": {n}, "pid": os.getpid(), "start": start, "end": time.time()}}
    f.write(json.dumps(run) + "\\n")
print("page", {n}, "is", {n} * 7)
```
"""
)

# A page's first lines: its kernel's pid goes to {record}.
NOTES_ITS_KERNEL = """
```{{code-cell}} ipython3
import os, time
with open({record!r}, "w") as f:
    f.write(str(os.getpid()))
"""

FAILING = (
    FRONT
    + "\n# Fails\n"
    + NOTES_ITS_KERNEL
    + """raise ValueError("the page's own failure")
```
"""
)


def write_book(source: Path, pages: dict[str, str]) -> None:
    source.mkdir()
    toctree = "\n".join(pages)
    (source / "index.md").write_text(f"# Pages\n\n```{{toctree}}\n{toctree}\n```\n")
    for name, text in pages.items():
        (source / f"{name}.md").write_text(text)


def test_the_longest_page_starts_first_and_the_pool_fills_in_behind_it() -> None:
    costs = {"short": 1.0, "cluster": 7.0, "mid": 3.0, "tiny": 0.5, "other": 2.0}
    # Two kernels: cluster alone on one (7 s); mid, other, short, tiny on the other.
    assert _book_execution.finish_order(costs, 2) == ["mid", "other", "short", "tiny", "cluster"]
    assert _book_execution.finish_order(costs, 5) == sorted(costs, key=costs.__getitem__)


def test_a_page_costs_its_last_run_or_its_cells() -> None:
    code, markdown = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    cells = [new(text) for _ in range(3) for new, text in ((code, "1"), (markdown, "text"))]
    notebook = nbformat.v4.new_notebook(cells=cells)
    assert _book_execution.page_cost(notebook, None) == pytest.approx(1.9)
    assert _book_execution.page_cost(notebook, 0.4) == 0.4


def test_a_pool_of_no_kernels_is_refused_by_value() -> None:
    with pytest.raises(ValueError, match="expected at least one kernel at a time, got 0"):
        _book_execution.finish_order({"a": 1.0}, 0)
    with pytest.raises(ValueError, match="expected livekit_book_kernels >= 0, got -1"):
        _book_execution.kernels_at_once(-1)


def test_a_clean_build_takes_page_times_from_the_users_record_then_the_estimates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf, docs, record = tmp_path / "conf", tmp_path / "docs", tmp_path / "cache" / "times.json"
    conf.mkdir()
    (conf / "times.json").write_text(json.dumps({"pages": {"cluster": 15.0, "index": 3.0}}))
    monkeypatch.setenv(_book_execution.TIMINGS_ENV, str(record))
    app = SimpleNamespace(
        config=SimpleNamespace(livekit_book_estimates="times.json"), confdir=conf, srcdir=docs
    )
    # No record yet (a fresh machine): the committed estimates.
    assert _book_execution._load_timings(app) == {"cluster": 15.0, "index": 3.0}
    # A build of another book, then two of this one: each page's last time.
    other = SimpleNamespace(**{**vars(app), "srcdir": tmp_path / "other"})
    _book_execution._remember_timings(other, {"index": 99.0})
    _book_execution._remember_timings(app, {"cluster": 9.5, "trees": 4.0})
    _book_execution._remember_timings(app, {"trees": 5.0})
    assert _book_execution._load_timings(app) == {"cluster": 9.5, "index": 3.0, "trees": 5.0}
    assert _book_execution._load_timings(other)["index"] == 99.0
    assert [p.name for p in record.parent.iterdir()] == ["times.json"]  # no partial file left


def test_page_times_that_cannot_be_kept_or_read_change_nothing_but_the_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(_book_execution.TIMINGS_ENV, str(blocker / "times.json"))
    app = SimpleNamespace(
        config=SimpleNamespace(livekit_book_estimates=""), confdir=tmp_path, srcdir=tmp_path
    )
    _book_execution._remember_timings(app, {"cluster": 9.5})  # its folder cannot be made
    assert _book_execution._load_timings(app) == {}
    garbled = tmp_path / "garbled.json"
    garbled.write_text('{"pages": {"cluster": "slow", "index": 2}, "x": ')
    monkeypatch.setenv(_book_execution.TIMINGS_ENV, str(garbled))
    assert _book_execution._load_timings(app) == {}
    garbled.write_text(json.dumps({str(tmp_path.resolve()): {"cluster": "slow", "index": 2}}))
    assert _book_execution._load_timings(app) == {"index": 2.0}


@pytest.mark.docs
def test_pages_execute_at_once_in_kernels_of_their_own(tmp_path: Path) -> None:
    record = tmp_path / "ran.jsonl"
    pages = {f"p{n}": PAGE.format(n=n, record=str(record)) for n in range(3)}
    write_book(tmp_path / "docs", pages)
    # A serial build: myst-nb alone would run the three pages one after another.
    args = ("-j", "1", "-D", "livekit_book_kernels=3")
    result = build_book(tmp_path / "docs", tmp_path / "html", *args)
    assert result.returncode == 0, result.stderr[-4000:]
    for n in range(3):
        assert f"page {n} is {n * 7}" in (tmp_path / "html" / f"p{n}.html").read_text()
        # The executed notebook, as a force build of myst-nb writes it.
        executed = nbformat.read(tmp_path / "jupyter_execute" / f"p{n}.ipynb", as_version=4)
        assert executed.cells[-1].outputs[0].text == f"page {n} is {n * 7}\n"
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(run["page"] for run in runs) == [0, 1, 2]  # each page ran once
    assert len({run["pid"] for run in runs}) == 3
    assert max(run["start"] for run in runs) < min(run["end"] for run in runs)  # all at once
    timings = json.loads((tmp_path / "html" / ".doctrees" / _book_execution.TIMINGS).read_text())
    assert timings["kernels_at_once"] == 3
    assert sorted(timings["pages"]) == ["index", "p0", "p1", "p2"]  # every page read
    assert list(timings["pages"]["index"]) == ["read"]  # nothing executed
    for name in ("p0", "p1", "p2"):
        page = timings["pages"][name]
        assert page["read"] > 0
        assert page["wall"] >= 3
        assert page["kernel_start"] + page["cells"] == pytest.approx(page["wall"], abs=0.01)
        assert 0 < page["kernel_start_cpu"] <= page["kernel_cpu"]
    # Kept for the next clean build too, outside the output folder.
    kept = json.loads((tmp_path / "page-times.json").read_text())
    walls = {name: timings["pages"][name]["wall"] for name in ("p0", "p1", "p2")}
    assert kept == {str((tmp_path / "docs").resolve()): walls}


@pytest.mark.docs
def test_a_cached_rebuild_executes_only_the_changed_page(tmp_path: Path) -> None:
    record = tmp_path / "ran.jsonl"
    pages = {f"p{n}": PAGE.format(n=n, record=str(record)) for n in range(2)}
    write_book(tmp_path / "docs", pages)
    args = ("-j", "2", "-D", f"nb_execution_cache_path={tmp_path / 'cache'}")
    env = {"LIVEKIT_NB_EXECUTION": "cache"}
    first = build_book(tmp_path / "docs", tmp_path / "html", *args, env=env)
    assert first.returncode == 0, first.stderr[-4000:]
    page = tmp_path / "docs" / "p1.md"
    page.write_text(page.read_text().replace("* 7)", "* 6)"))
    second = build_book(tmp_path / "docs", tmp_path / "html", *args, env=env)
    assert second.returncode == 0, second.stderr[-4000:]
    runs = [json.loads(line)["page"] for line in record.read_text().splitlines()]
    assert sorted(runs) == [0, 1, 1]
    assert "page 1 is 6" in (tmp_path / "html" / "p1.html").read_text()


@pytest.mark.docs
def test_a_failing_page_fails_the_build_with_its_traceback_and_leaves_no_kernel(
    tmp_path: Path,
) -> None:
    record = tmp_path / "kernel.pid"
    write_book(
        tmp_path / "docs",
        {"fails": FAILING.format(record=str(record)), "p0": PAGE.format(n=0, record="/dev/null")},
    )
    result = build_book(tmp_path / "docs", tmp_path / "html", "-j", "2")
    assert result.returncode != 0
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # no colours
    assert str(tmp_path / "docs" / "fails.md") in output
    assert "Executing notebook failed: CellExecutionError" in output
    assert "ValueError: the page's own failure" in output
    assert not psutil.pid_exists(int(record.read_text()))


SLOW = (
    FRONT
    + "\n# Slow\n"
    + NOTES_ITS_KERNEL
    + """with open({parent!r}, "w") as f:
    f.write(str(os.getppid()))
time.sleep(60)
```
"""
)


@pytest.mark.docs
def test_a_build_killed_while_pages_execute_leaves_no_kernel_and_no_files(tmp_path: Path) -> None:
    record, parent = tmp_path / "kernel.pid", tmp_path / "parent.pid"
    write_book(tmp_path / "docs", {"slow": SLOW.format(record=str(record), parent=str(parent))})
    scratch = tmp_path / "tmp"  # the build's temporary folders, and its kernels'
    scratch.mkdir()
    command = [sys.executable, "-m", "sphinx", "-j", "2", "-c", str(ROOT / "conf")]
    command += [str(tmp_path / "docs"), str(tmp_path / "html")]
    env = {**os.environ, "LIVEKIT_NB_EXECUTION": "force", "TMPDIR": str(scratch)}
    build = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not parent.exists() or not parent.read_text():
            assert time.monotonic() < deadline, "the page never started"
            assert build.poll() is None
            time.sleep(0.1)
        # The kernel, and the zygote it was forked from.
        kernel, zygote = int(record.read_text()), int(parent.read_text())
        assert "_zygote_main" in " ".join(psutil.Process(zygote).cmdline())
        os.killpg(build.pid, signal.SIGTERM)  # the build and its readers, as a kill would
        build.wait(timeout=30)
        deadline = time.monotonic() + 30
        while psutil.pid_exists(kernel) or psutil.pid_exists(zygote) or list(scratch.iterdir()):
            assert time.monotonic() < deadline, (kernel, zygote, list(scratch.iterdir()))
            time.sleep(0.1)
    finally:
        if build.poll() is None:
            os.killpg(build.pid, signal.SIGKILL)
            build.wait()


# A page that notes its kernel, and changes what a next page in the same
# process would see: a module's attribute, a builtin, the random state.
FORKED = (
    FRONT
    + """
# Forked {n}

```{{code-cell}} ipython3
import builtins, json, os, random, sys
seen = {{
    "pid": os.getpid(),
    "parent": " ".join(open(f"/proc/{{os.getppid()}}/cmdline").read().split("\\0")),
    "jpy_parent": os.environ.get("JPY_PARENT_PID") == str(os.getppid()),
    "session": os.getsid(0) == os.getpid(),
    "cwd": os.getcwd(),
    "argv": sys.argv,
    "random": random.random(),
    "left_by_another": hasattr(json, "left_here") or hasattr(builtins, "left_here"),
    # conf.py's livekit_book_preload: imported by the zygote, not by the page.
    "altair_imported": "altair" in sys.modules,
    "names": sorted(name for name in dir() if not name.startswith("_")),
}}
json.left_here = builtins.left_here = {n}
with open({record!r}, "a") as f:
    f.write(json.dumps(seen) + "\\n")
```
"""
)


@pytest.mark.docs
@pytest.mark.parametrize("fork", [True, False])
def test_each_page_runs_in_a_fresh_kernel_forked_or_started(tmp_path: Path, fork: bool) -> None:
    record = tmp_path / "kernels.jsonl"
    pages = {f"p{n}": FORKED.format(n=n, record=str(record)) for n in range(3)}
    write_book(tmp_path / "docs", pages)
    # Two kernels at a time for three pages: the third kernel comes after one ended.
    args = ("-j", "1", "-D", "livekit_book_kernels=2", "-D", f"livekit_book_fork_kernels={fork:d}")
    result = build_book(tmp_path / "docs", tmp_path / "html", *args)
    assert result.returncode == 0, result.stderr[-4000:]
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(seen) == 3
    assert len({kernel["pid"] for kernel in seen}) == 3
    assert len({kernel["random"] for kernel in seen}) == 3  # reseeded in each fork
    parent = "_zygote_main" if fork else "livekit._book_execution"
    for kernel in seen:
        assert parent in kernel["parent"], kernel["parent"]
        assert kernel["jpy_parent"]
        assert kernel["session"]
        assert kernel["cwd"] == str(tmp_path / "docs")
        assert kernel["argv"][:2] == ["-c", "-f"]
        assert not kernel["left_by_another"]
        assert kernel["altair_imported"] is fork
        # IPython's own names, and the page's imports: nothing else.
        ipython = ["In", "Out", "exit", "get_ipython", "open", "quit"]
        assert kernel["names"] == sorted([*ipython, "builtins", "json", "os", "random", "sys"])
    assert "ipython kernel" not in result.stdout + result.stderr  # ipykernel's own banner


FOLDERS = (
    FRONT
    + """
# Where imports come from

```{{code-cell}} ipython3
import json, os, sys
with open({record!r}, "w") as f:
    json.dump({{
        "path_head": sys.path[0],
        "cwd": os.getcwd(),
        "build_folder_module": "only_in_the_build_folder" in sys.modules,
    }}, f)
```
"""
)


@pytest.mark.docs
@pytest.mark.parametrize("fork", [True, False])
def test_a_kernel_imports_from_its_page_s_folder_not_the_build_s(
    tmp_path: Path, fork: bool
) -> None:
    # A module in the folder the build runs in (a checkout's livekit/ is
    # one), named for preloading: a new kernel, in its page's folder,
    # cannot import it, so neither may the zygote the kernel is forked from.
    record = tmp_path / "kernel.json"
    write_book(tmp_path / "docs", {"p0": FOLDERS.format(record=str(record))})
    folder = tmp_path / "build-folder"
    folder.mkdir()
    (folder / "only_in_the_build_folder.py").write_text("")
    args = (
        "-D",
        "livekit_book_preload=only_in_the_build_folder",
        "-D",
        f"livekit_book_fork_kernels={fork:d}",
    )
    result = build_book(tmp_path / "docs", tmp_path / "html", *args, cwd=folder)
    assert result.returncode == 0, result.stderr[-4000:]
    kernel = json.loads(record.read_text())
    assert kernel["cwd"] == str(tmp_path / "docs")
    assert kernel["path_head"] == ""  # the page's folder, as for python -c
    assert kernel["build_folder_module"] is False


@pytest.mark.docs
def test_a_zygote_that_dies_leaves_the_kernels_to_start_as_new_pythons(tmp_path: Path) -> None:
    record = tmp_path / "kernels.jsonl"
    write_book(tmp_path / "docs", {"p0": FORKED.format(n=0, record=str(record))})
    # A module the zygote is to preload, whose import kills it.
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "kills_the_zygote.py").write_text("import os\nos._exit(3)\n")
    env = {"PYTHONPATH": os.pathsep.join([str(modules), os.environ.get("PYTHONPATH", "")])}
    args = ("-D", "livekit_book_preload=kills_the_zygote")
    result = build_book(tmp_path / "docs", tmp_path / "html", *args, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    (kernel,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert "livekit._book_execution" in kernel["parent"]
    assert not kernel["left_by_another"]
