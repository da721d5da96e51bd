"""Execute a book's pages ahead of reading, several kernels at a time.

myst-nb executes a page while Sphinx reads it, one kernel per reader, in
the order Sphinx hands pages to its readers.  Most of a page's time is its
kernel: start-up, then cells that often wait (for a subprocess, a cluster,
a chart's samples).  Under ``sphinx -j`` two readers read chunks of pages
in name order, so a chunk with the heavy pages sets the reading time while
the other reader idles, and a waiting kernel leaves a core unused.

Here the main Sphinx process, before the readers start
(``env-before-read-docs``), hands every page that would execute to one
executor process (``python -m livekit._book_execution``).  That process
runs a bounded number of kernels at once, taking the page expected to run
longest first whenever a kernel slot frees (dynamic scheduling), and
writes each executed notebook into a jupyter-cache, as myst-nb's cache
mode does.  The readers read the pages that execute nothing first; when a
reader comes to an executed page, it waits until the executor has written
it (``source-read``), and myst-nb takes the outputs from the cache.

Every page still executes at build time, from scratch:

* ``nb_execution_mode = "force"``: the executor writes into a cache of its
  own, made empty for this build and removed after it, and the readers'
  myst-nb reads that cache (its mode becomes ``"cache"`` for the build);
* ``"cache"``: the executor executes only the pages that the book's
  jupyter-cache has no match for, and adds them to it, as myst-nb would;
* any other mode: nothing is executed ahead; myst-nb does as it always does.

A page whose execution fails fails the build as myst-nb's would
(``nb_execution_raise_on_error``), with the cell's traceback.  Anything
the executor did not write (a page whose source an extension rewrote, an
executor that died) is executed by myst-nb in the reader, as before.

The expected run time of a page is the time it took in the user's last
build of the same book (:func:`expected_times_path`, outside any build
folder, so that a clean build knows it too), else the book's committed
estimate (``livekit_book_estimates``), else an estimate from its code
cells.  Each build's page timings (queued, kernel start, cells, kernel
CPU) are kept beside its doctrees, in ``livekit-pages.json``, which
``bench/bench_book.py --pages`` prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

#: The file beside the doctrees that keeps each page's timings.
TIMINGS = "livekit-pages.json"
#: The environment variable that names the file of the user's page times.
TIMINGS_ENV = "LIVEKIT_BOOK_TIMINGS"
#: A marker's suffix: the page executed and is in the cache.
DONE = ".done"
#: A marker's suffix: the page's execution failed.
FAILED = ".failed"
#: A marker's suffix: the executed notebook, as myst-nb writes it.
EXECUTED = ".ipynb.executed"
#: The executor holds an exclusive lock on this file while it runs.
LOCK = "running.lock"

# What a page costs when there is no earlier timing: a kernel's start-up,
# and a share per code cell (the book's pages: 0.2-1 s a cell).
_START = 1.0
_PER_CELL = 0.3


@dataclass
class Page:
    """One page to execute ahead: what the executor needs to run it."""

    docname: str
    #: The page's source file (the jupyter-cache's URI for it).
    source: str
    #: The kernel's working folder ("" for a temporary one).
    cwd: str
    timeout: int | None
    allow_errors: bool
    #: Expected run time in seconds: the executor takes the longest first.
    cost: float


@dataclass
class Ahead:
    """The executor of one build, as the main process and its readers see it."""

    work: Path
    pages: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    raise_on_error: bool = True
    show_tb: bool = True

    def marker(self, index: int, suffix: str) -> Path:
        return self.work / f"{index}{suffix}"


def page_cost(notebook: Any, last: float | None) -> float:
    """Return the expected run time of a page in seconds.

    Parameters
    ----------
    notebook : nbformat.NotebookNode
        The page as myst-nb reads it.
    last : float or None
        Its run time in the last build, if there was one.

    Examples
    --------
    >>> import nbformat
    >>> cells = [nbformat.v4.new_code_cell(str(n)) for n in range(4)]
    >>> nb = nbformat.v4.new_notebook(cells=cells)
    >>> page_cost(nb, None)
    2.2
    >>> page_cost(nb, 6.5)
    6.5
    """
    if last is not None:
        return last
    cells = sum(1 for cell in notebook.cells if cell.cell_type == "code")
    return round(_START + _PER_CELL * cells, 3)


def finish_order(costs: dict[str, float], workers: int) -> list[str]:
    """Return the pages in the order a pool of ``workers`` kernels finishes them.

    The pool takes the longest page first whenever a kernel slot frees.

    Examples
    --------
    >>> finish_order({"a": 5.0, "b": 1.0, "c": 3.0, "d": 1.0}, 2)
    ['c', 'b', 'a', 'd']
    """
    if workers < 1:
        raise ValueError(f"expected at least one kernel at a time, got {workers}")
    free = [0.0] * workers
    finish: dict[str, float] = {}
    for name in sorted(costs, key=lambda n: -costs[n]):
        slot = min(range(workers), key=free.__getitem__)
        free[slot] += costs[name]
        finish[name] = free[slot]
    return sorted(finish, key=lambda n: finish[n])


def kernels_at_once(configured: int) -> int:
    """Return how many kernels the executor runs at once.

    ``configured`` is ``livekit_book_kernels``; 0 means one more than twice
    the machine's cores, since a page's kernel spends most of its time
    waiting (the book's: 13 CPU-seconds in 49 seconds of kernels).

    Examples
    --------
    >>> kernels_at_once(3)
    3
    >>> kernels_at_once(0) >= 2
    True
    """
    if configured < 0:
        raise ValueError(f"expected livekit_book_kernels >= 0, got {configured}")
    return configured or 2 * (os.cpu_count() or 1) + 1


# -- The Sphinx side ---------------------------------------------------------


def setup(app: Any) -> None:
    """Connect the executor to a Sphinx application (from :mod:`livekit.sphinxext`)."""
    app.add_config_value("livekit_book_kernels", 0, "", int)
    app.add_config_value("livekit_book_estimates", "", "", str)
    app.add_config_value("livekit_book_fork_kernels", True, "", bool)
    app.add_config_value("livekit_book_preload", [], "", list)
    app.connect("env-before-read-docs", _execute_ahead)
    # After every other handler: the wait is not part of the page's reading.
    app.connect("source-read", _wait_for_page, priority=900)
    app.connect("doctree-read", _note_read_time)
    app.connect("doctree-read", _write_executed_notebook)
    app.connect("env-merge-info", _merge_read_times)
    app.connect("env-purge-doc", _purge_read_time)
    app.connect("build-finished", _finish)


# When this process began parsing each page (after its wait, if any).
_parse_started: dict[str, float] = {}


def _read_times(env: Any) -> dict[str, float]:
    """Seconds each page took to parse, in this build (readers merge theirs)."""
    if not hasattr(env, "livekit_read_seconds"):
        env.livekit_read_seconds = {}
    times: dict[str, float] = env.livekit_read_seconds
    return times


def _note_read_time(app: Any, doctree: Any) -> None:
    docname = app.env.docname
    if docname in _parse_started:
        seconds = time.perf_counter() - _parse_started.pop(docname)
        _read_times(app.env)[docname] = round(seconds, 3)


def _write_executed_notebook(app: Any, doctree: Any) -> None:
    """Put the page's executed notebook where myst-nb writes it (``jupyter_execute``).

    From a cache, myst-nb writes the page's notebook without the outputs it
    took from the cache; a force build wrote it executed, and the book
    offers it for download.
    """
    ahead: Ahead | None = getattr(app, "livekit_ahead", None)
    docname = app.env.docname
    if ahead is None or docname not in ahead.pages:
        return
    executed = ahead.marker(ahead.pages[docname], EXECUTED)
    if executed.exists():
        *folders, name = docname.split("/")
        target = Path(app.env.mystnb_config.output_folder, *folders, f"{name}.ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(executed, target)


def _merge_read_times(app: Any, env: Any, docnames: Any, other: Any) -> None:
    theirs = _read_times(other)
    _read_times(env).update({name: theirs[name] for name in docnames if name in theirs})


def _purge_read_time(app: Any, env: Any, docname: str) -> None:
    _read_times(env).pop(docname, None)


def _execute_ahead(app: Any, env: Any, docnames: list[str]) -> None:
    from jupyter_cache import get_cache  # type: ignore[import-untyped]

    app.livekit_read_docs = list(docnames)
    config = getattr(env, "mystnb_config", None)
    if config is None or config.execution_mode not in ("force", "cache") or not docnames:
        return
    last = _load_timings(app)
    pages, notebooks = _pages_to_execute(env, docnames, config, last)
    if not pages:
        return
    work = Path(tempfile.mkdtemp(prefix="livekit-book-exec-"))
    ahead = Ahead(
        work, raise_on_error=config.execution_raise_on_error, show_tb=config.execution_show_tb
    )
    if config.execution_mode == "force":
        # A cache of this build only: every page executes from scratch.
        cache = work / "cache"
        env.mystnb_config = config.copy(execution_mode="cache", execution_cache_path=str(cache))
    else:
        cache = Path(config.execution_cache_path)
    import nbformat

    for index, (page, notebook) in enumerate(zip(pages, notebooks, strict=True)):
        nbformat.write(notebook, str(work / f"{index}.ipynb"))  # type: ignore[no-untyped-call]
        ahead.pages[page.docname] = index
    workers = kernels_at_once(app.config.livekit_book_kernels)
    jobs = {
        "cache": str(cache),
        "workers": workers,
        "fork": app.config.livekit_book_fork_kernels,
        "preload": list(app.config.livekit_book_preload),
        "pages": [asdict(page) for page in pages],
    }
    (work / "jobs.json").write_text(json.dumps(jobs), encoding="utf-8")
    # Made here, not by the executor and a reader at once (see sphinxext).
    get_cache(str(cache)).db  # noqa: B018
    # The lock is taken here and handed over, so that no reader finds it
    # free before the executor has started.  Its own session: a Ctrl-C
    # reaches the build and its readers, not the executor, which sees EOF
    # on its stdin once they are all gone and shuts its kernels down
    # instead of dying with them still running.
    with (work / LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ahead.process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", "livekit._book_execution", str(work), str(lock.fileno())],
            stdin=subprocess.PIPE,
            start_new_session=True,
            pass_fds=(lock.fileno(),),
        )
    app.livekit_ahead = ahead
    # Pages that execute nothing first, then the executed ones in the order
    # they are expected to be ready, so a reader waits as little as it can.
    order = finish_order({page.docname: page.cost for page in pages}, workers)
    docnames[:] = [name for name in docnames if name not in ahead.pages] + order


def _pages_to_execute(
    env: Any, docnames: list[str], config: Any, last: dict[str, float]
) -> tuple[list[Page], list[Any]]:
    """Return the pages myst-nb would execute, each with the notebook it would run."""
    from jupyter_cache import get_cache
    from myst_nb.core.read import create_nb_reader

    cache = None
    if config.execution_mode == "cache":
        cache = get_cache(config.execution_cache_path)
    pages: list[Page] = []
    notebooks: list[Any] = []
    for docname in docnames:
        path = env.doc2path(docname)
        source = Path(path).read_text(encoding=env.config.source_encoding)
        reader = create_nb_reader(str(path), env.myst_config, config, source)
        if reader is None:
            continue
        notebook = reader.read(source)
        if _settings_of_its_own(notebook, config) or _excluded(path, config):
            continue
        _alias_kernel(notebook, config)
        if cache is not None and _cached(cache, notebook):
            continue
        execution = notebook.metadata.get("execution", {})
        pages.append(
            Page(
                docname=docname,
                source=str(path),
                cwd="" if config.execution_in_temp else str(Path(path).parent),
                timeout=execution.get("timeout", config.execution_timeout),
                allow_errors=execution.get("allow_errors", config.execution_allow_errors),
                cost=page_cost(notebook, last.get(docname)),
            )
        )
        notebooks.append(notebook)
    return pages, notebooks


def _settings_of_its_own(notebook: Any, config: Any) -> bool:
    # A page that sets its own execution options is left to myst-nb.
    overrides = notebook.metadata.get(config.metadata_key, {})
    return any(key.startswith("execution_") for key in overrides)


def _excluded(path: Any, config: Any) -> bool:
    from pathlib import PurePosixPath

    posix = PurePosixPath(Path(path).as_posix())
    return any(posix.match(pattern) for pattern in config.execution_excludepatterns)


def _alias_kernel(notebook: Any, config: Any) -> None:
    import re

    kernelspec = notebook.metadata.get("kernelspec", {})
    name = kernelspec.get("name")
    for pattern, alias in config.kernel_rgx_aliases.items():
        if name is not None and re.fullmatch(pattern, name):
            kernelspec["name"] = alias
            return


def _cached(cache: Any, notebook: Any) -> bool:
    try:
        cache.match_cache_notebook(notebook)
    except KeyError:
        return False
    return True


def _wait_for_page(app: Any, docname: str, source: list[str]) -> None:
    ahead: Ahead | None = getattr(app, "livekit_ahead", None)
    if ahead is not None and docname in ahead.pages:
        _wait(app, docname, ahead)
    _parse_started[docname] = time.perf_counter()


def _wait(app: Any, docname: str, ahead: Ahead) -> None:
    index = ahead.pages[docname]
    done, failed = ahead.marker(index, DONE), ahead.marker(index, FAILED)
    while not (done.exists() or failed.exists()) and _executor_running(ahead.work):
        time.sleep(0.02)
    if failed.exists():
        _report_failure(app, docname, json.loads(failed.read_text(encoding="utf-8")), ahead)
    elif done.exists():
        from sphinx.util import logging

        timing = json.loads(done.read_text(encoding="utf-8"))
        logging.getLogger(__name__).info(
            "Executed ahead in %.2f seconds (kernel start %.2f s, kernel CPU %.2f s)",
            timing["wall"],
            timing["kernel_start"],
            timing["kernel_cpu"],
            location=docname,
        )


def _executor_running(work: Path) -> bool:
    # The executor holds the lock for as long as it runs, and a process
    # that died holds no lock: no marker and a free lock means myst-nb
    # executes the page itself.
    with (work / LOCK).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def _report_failure(app: Any, docname: str, failure: dict[str, str], ahead: Ahead) -> None:
    """Fail the build as myst-nb would, with the failing cell's traceback.

    The cell's error is in the exception's message: Sphinx drops what a
    reader of ``sphinx -j`` logged when the reader fails.
    """
    path = app.env.doc2path(docname)
    message = f"Executing notebook failed: {failure['error']}"
    if ahead.show_tb:
        message += f"\n{failure['message']}"
    if ahead.raise_on_error:
        from myst_nb.core.execute import ExecutionError

        raise ExecutionError(f"{path}\n{message}")
    # Not to raise: myst-nb executes the page again and renders what it got.
    from sphinx.util import logging

    logging.getLogger(__name__).warning(message, location=docname, type="mystnb", subtype="exec")


def _finish(app: Any, exception: BaseException | None) -> None:
    ahead: Ahead | None = getattr(app, "livekit_ahead", None)
    app.livekit_ahead = None
    try:
        # Before the executor is stopped: it removes its folder as it ends.
        _save_timings(app, ahead, exception)
        if ahead is not None and ahead.process is not None:
            _stop(ahead.process)
    finally:
        if ahead is not None:
            shutil.rmtree(ahead.work, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    # EOF on its stdin ends the executor: after its last page it waits for
    # it; after a failed build it shuts down the kernels still running.
    try:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _timings_path(app: Any) -> Path:
    return Path(app.doctreedir) / TIMINGS


def expected_times_path() -> Path | None:
    """Return the file that keeps each page's last run time for this user.

    ``$LIVEKIT_BOOK_TIMINGS`` names it; by default it is
    ``livekit/book-pages.json`` in the user's cache folder
    (``$XDG_CACHE_HOME``, else ``~/.cache``), outside any build folder, so
    that a clean build still knows which page runs longest.  None when
    there is no home to keep it in.

    Examples
    --------
    >>> import os
    >>> os.environ["LIVEKIT_BOOK_TIMINGS"] = "/tmp/book-pages.json"
    >>> expected_times_path()
    PosixPath('/tmp/book-pages.json')
    >>> del os.environ["LIVEKIT_BOOK_TIMINGS"]
    >>> expected_times_path().name
    'book-pages.json'
    """
    override = os.environ.get(TIMINGS_ENV)
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME")
    try:
        base = Path(cache) if cache else Path.home() / ".cache"
    except RuntimeError:  # no HOME and no password entry
        return None
    return base / "livekit" / "book-pages.json"


def _book_key(app: Any) -> str:
    # One entry per book: its source folder.
    return str(Path(app.srcdir).resolve())


def _read_json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def _walls(pages: Any) -> dict[str, float]:
    if not isinstance(pages, dict):
        return {}
    walls: dict[str, float] = {}
    for name, wall in pages.items():
        with contextlib.suppress(TypeError, ValueError):
            walls[str(name)] = float(wall)
    return walls


def _load_timings(app: Any) -> dict[str, float]:
    """Return each page's expected run time, from what earlier builds measured.

    The user's own record of this book's last builds
    (:func:`expected_times_path`) comes first; a page it does not know takes
    its time from the book's committed estimates (``livekit_book_estimates``,
    a JSON file beside ``conf.py``: ``{"pages": {docname: seconds}}``); a
    page neither knows is estimated from its code cells (:func:`page_cost`).
    """
    times: dict[str, float] = {}
    if app.config.livekit_book_estimates:
        estimates = Path(app.confdir, app.config.livekit_book_estimates)
        times.update(_walls(_read_json(estimates).get("pages")))
    times.update(_walls(_read_json(expected_times_path()).get(_book_key(app))))
    return times


def _remember_timings(app: Any, walls: dict[str, float]) -> None:
    """Add this build's page times to the user's record (nothing if it cannot be written)."""
    path = expected_times_path()
    if path is None or not walls:
        return
    record = _read_json(path)
    key = _book_key(app)
    record[key] = {**_walls(record.get(key)), **walls}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Whole, then renamed: two builds at once each write a file of their own.
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8"
        ) as partial:
            json.dump(record, partial, indent=1)
        Path(partial.name).replace(path)
    except OSError as error:
        from sphinx.util import logging

        logging.getLogger(__name__).verbose("page timings not kept in %s: %s", path, error)


def _save_timings(app: Any, ahead: Ahead | None, exception: BaseException | None) -> None:
    """Write where this build's time went, page by page (none if nothing was read)."""
    read = getattr(app, "livekit_read_docs", [])
    if exception is not None or not read:
        return
    parsed = _read_times(app.env)
    pages: dict[str, dict[str, float]] = {
        name: {"read": parsed[name]} for name in read if name in parsed
    }
    record: dict[str, Any] = {"kernels_at_once": 0, "executor_cpu": 0.0, "pages": pages}
    if ahead is not None:
        for docname, index in ahead.pages.items():
            marker = ahead.marker(index, DONE)
            if marker.exists():
                timing = json.loads(marker.read_text(encoding="utf-8"))
                pages.setdefault(docname, {}).update(timing)
        executor = ahead.work / "executor.json"
        if executor.exists():
            record["executor_cpu"] = json.loads(executor.read_text(encoding="utf-8"))["cpu"]
        jobs = json.loads((ahead.work / "jobs.json").read_text(encoding="utf-8"))
        record["kernels_at_once"] = jobs["workers"]
    path = _timings_path(app)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    _remember_timings(app, {name: page["wall"] for name, page in pages.items() if "wall" in page})


# -- The executor process ----------------------------------------------------


def main(work: Path, lock: int) -> int:
    """Execute the pages in ``work/jobs.json``; the process's entry point.

    ``lock`` is the descriptor of the lock the build took for it, released
    once every page has its marker (or when this process ends, however it
    ends).  The process then waits for EOF on its stdin, which comes when
    the build and its readers are done with ``work`` (or have died), and
    removes ``work``: a build stopped by Ctrl-C leaves nothing behind.
    """
    # As the build's conf.py and its kernels do: nbformat imports jsonschema,
    # which would build an RFC 3987 parser no notebook uses (2.3 CPU-s).
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    jobs = json.loads((work / "jobs.json").read_text(encoding="utf-8"))
    held = [lock]
    zygote = None
    if jobs.get("fork", False):
        from livekit import _book_kernels

        # First, so that it imports a kernel's modules while this process
        # imports its own.
        if _book_kernels.can_fork():
            zygote = _book_kernels.Zygote.start(jobs.get("preload", []))

    def release() -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _write_marker(work / "executor.json", {"cpu": round(usage.ru_utime + usage.ru_stime, 3)})
        os.close(held.pop())

    try:
        asyncio.run(_execute_all(work, jobs, release))
    finally:
        if zygote is not None:
            zygote.stop()
        for descriptor in held:
            os.close(descriptor)
    shutil.rmtree(work, ignore_errors=True)
    return 0


async def _execute_all(work: Path, jobs: dict[str, Any], done: Callable[[], None]) -> None:
    """Execute every page, call ``done``, then wait for EOF on stdin (or stop at it)."""
    from jupyter_cache import get_cache

    cache = get_cache(jobs["cache"])
    pages = [Page(**page) for page in jobs["pages"]]
    queue = sorted(range(len(pages)), key=lambda i: -pages[i].cost)
    started = time.monotonic()

    async def worker() -> None:
        while queue:
            index = queue.pop(0)
            await _execute_one(work, index, pages[index], cache, started)

    runners: asyncio.Future[Any] = asyncio.gather(
        *(worker() for _ in range(min(jobs["workers"], len(pages))))
    )
    stop: asyncio.Future[Any] = asyncio.ensure_future(_stdin_closed())
    await asyncio.wait({runners, stop}, return_when=asyncio.FIRST_COMPLETED)
    if not runners.done():
        # The build stopped before its pages were read: cancelling the
        # runners shuts their kernels down (nbclient's finally).
        runners.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runners
        return
    runners.result()  # a runner's own error ends the process here
    done()
    await stop


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()


async def _execute_one(work: Path, index: int, page: Page, cache: Any, started: float) -> None:
    import nbformat
    import psutil
    from jupyter_cache.base import CacheBundleIn  # type: ignore[import-untyped]
    from nbclient import NotebookClient

    notebook = nbformat.read(str(work / f"{index}.ipynb"), as_version=4)  # type: ignore[no-untyped-call]
    queued = time.monotonic() - started
    times: dict[str, float] = {}

    def kernel_cpu() -> float:
        try:
            kernel = psutil.Process(client.km.provisioner.pid)  # type: ignore[union-attr]
            processes = [kernel, *kernel.children(recursive=True)]
            return sum(_cpu(process) for process in processes)
        except (psutil.Error, AttributeError, TypeError):
            return 0.0

    def on_start(**_: Any) -> None:
        times["ready"] = time.monotonic()
        times["cpu_ready"] = kernel_cpu()

    # Once, after the last cell: psutil reads every process of the machine
    # to find a kernel's children.
    last = max((i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"), default=-1)

    def on_cell(cell_index: int, **_: Any) -> None:
        if cell_index == last:
            times["cpu"] = kernel_cpu()

    with contextlib.ExitStack() as stack:
        cwd = page.cwd or stack.enter_context(tempfile.TemporaryDirectory())
        client = NotebookClient(
            notebook,
            timeout=page.timeout,
            allow_errors=page.allow_errors,
            # As myst-nb runs it: timings in a cell's metadata would change its hash.
            record_timing=False,
            resources={"metadata": {"path": cwd}},
            on_notebook_start=on_start,
            on_cell_executed=on_cell,
        )
        begin = time.monotonic()
        try:
            await client.async_execute()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the page's failure, which its reader reports
            failure = {"error": type(error).__name__, "message": str(error)}
            _write_marker(work / f"{index}{FAILED}", failure)
            return
    end = time.monotonic()
    wall = end - begin
    text = nbformat.writes(notebook)  # type: ignore[no-untyped-call]
    (work / f"{index}{EXECUTED}").write_text(text, encoding="utf-8")
    cache.cache_notebook_bundle(
        CacheBundleIn(notebook, page.source, data={"execution_seconds": wall}),
        check_validity=False,
        overwrite=True,
    )
    ready = times.get("ready", begin)
    timing = {
        "queued": round(queued, 3),
        "kernel_start": round(ready - begin, 3),
        "cells": round(end - ready, 3),
        "wall": round(wall, 3),
        "kernel_start_cpu": round(times.get("cpu_ready", 0.0), 3),
        "kernel_cpu": round(times.get("cpu", 0.0), 3),
    }
    _write_marker(work / f"{index}{DONE}", timing)


def _cpu(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def _write_marker(path: Path, content: dict[str, Any]) -> None:
    # Written whole, then renamed: a reader never sees half a marker.
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(content), encoding="utf-8")
    partial.replace(path)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2])))
