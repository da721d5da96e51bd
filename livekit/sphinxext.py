"""Sphinx extension that makes livekit's outputs draw in a built book, offline.

Add ``"livekit.sphinxext"`` to ``extensions``.  It

* loads sphinxcontrib-mermaid for its node, but not its page script, which
  imports mermaid as an ES module from a CDN: browsers refuse module imports
  from ``file://`` pages, and the book must make no request to another host;
* copies the vendored scripts of every kind of output
  (:mod:`livekit.outputs`: mermaid, vega, vega-lite and vega-embed) into
  ``_static`` and adds them as classic scripts, only to pages that draw
  that kind;
* marks the environment so that notebook kernels started by myst-nb enable
  livekit's Altair renderer (see :mod:`livekit.mystnb`);
* starts those kernels on private Unix sockets rather than TCP ports
  (``livekit._book_kernels``);
* creates myst-nb's jupyter-cache before the pages are read, so that the
  readers of ``sphinx -j`` do not each try to;
* executes the pages ahead of reading, several kernels at a time, longest
  first (``livekit._book_execution``);
* builds the navigation of the pages that are not part of the book's table
  of contents (viewcode's source pages, the index, the search page) once
  per folder, not once per page.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from livekit import __version__, _assets, _book_execution, _book_kernels, _display
from livekit.kernel import _sphinx as _live
from livekit.outputs import _html, kinds


def setup(app: Any) -> dict[str, Any]:
    # Kernels that myst-nb starts inherit this process's environment.
    os.environ[_display.BOOK_ENV] = "1"
    os.environ.setdefault("PYTHONSTARTUP", str(Path(__file__).with_name("_book_startup.py")))
    # jupyter_client reads it when this process starts its first kernel.
    if _book_kernels.registered():
        os.environ.setdefault("JUPYTER_DEFAULT_PROVISIONER_NAME", _book_kernels.NAME)
    app.setup_extension("sphinxcontrib.mermaid")
    _drop_cdn_mermaid_loader(app)
    app.connect("builder-inited", _add_static_path)
    app.connect("builder-inited", _make_cache)
    _book_execution.setup(app)
    app.connect("html-page-context", _add_page_scripts)
    # Before the theme's handlers, which render the sidebar's templates.
    app.connect("html-page-context", _share_navigation, priority=400)
    app.connect("build-finished", _forget_navigation)
    app.add_css_file("livekit.css")
    # livekit serve: mark each code cell with its page and index, and add the
    # page script that makes cells live when a kernel is there.
    app.connect("doctree-resolved", _live.mark_cells)
    app.add_js_file(_live.LIVE_JS)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}


def _drop_cdn_mermaid_loader(app: Any) -> None:
    from sphinxcontrib.mermaid import install_js

    listeners = app.events.listeners.get("html-page-context", [])
    for listener in list(listeners):
        if listener.handler is install_js:
            app.disconnect(listener.id)


def _add_static_path(app: Any) -> None:
    app.config.html_static_path.append(str(_assets.STATIC))


def _make_cache(app: Any) -> None:
    """Create the jupyter-cache of a cached build in this process, once.

    myst-nb opens it when it reads the first page to execute.  Under
    ``sphinx -j`` each reader process is forked before that, and on a first
    build each one finds no cache and makes it: the folder, then its
    database's tables, and every reader but the first fails
    (``FileExistsError``, ``table ... already exists``).
    """
    if getattr(app.config, "nb_execution_mode", None) != "cache":
        return
    from jupyter_cache import get_cache  # type: ignore[import-untyped]

    get_cache(app.config.nb_execution_cache_path or ".jupyter_cache").db  # noqa: B018


def _share_navigation(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Give a page outside the table of contents the navigation of its folder.

    Each page's sidebar is the book's whole table of contents, which Sphinx
    resolves and renders for every page it writes (the template function
    ``toctree``): a quarter of the build's Sphinx time, most of it for
    viewcode's source pages, written one after another at the end.  For a
    page that is not a document of the book (a source page, ``genindex``,
    ``search``), that navigation marks no entry as current and opens none,
    so it is the same for every such page of a folder but for nothing: its
    links are relative to the folder.  It is made once per folder and
    arguments, and the pages of the book keep their own.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> calls = []
    >>> def toctree(**kwargs):
    ...     calls.append(kwargs)
    ...     return "<ul>...</ul>"
    >>> app = SimpleNamespace(env=SimpleNamespace(all_docs={"index": 0}))
    >>> for page in ("_modules/livekit/rpc", "_modules/livekit/trace", "index"):
    ...     context = {"toctree": toctree}
    ...     _share_navigation(app, page, "page.html", context, None)
    ...     html = context["toctree"](collapse=True, maxdepth=3)
    >>> len(calls)  # once for the folder, once for the book's own page
    2
    """
    toctree = context.get("toctree")
    if toctree is None or pagename in app.env.all_docs:
        return
    shared: dict[tuple[Any, ...], str] = app.__dict__.setdefault("livekit_navigation", {})
    folder = pagename.rpartition("/")[0]

    def folder_toctree(**kwargs: Any) -> str:
        key = (folder, *sorted(kwargs.items()))
        try:
            return shared[key]
        except KeyError:
            html: str = toctree(**kwargs)
            shared[key] = html
            return html

    context["toctree"] = folder_toctree


def _forget_navigation(app: Any, exception: BaseException | None) -> None:
    # The next build of the same application may have another table of contents.
    app.__dict__.pop("livekit_navigation", None)


def _add_page_scripts(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    if doctree is None:
        return
    drawn = [kind for kind in kinds() if kind.drawn_on(doctree)]
    if drawn:
        app.add_js_file(_html.PAGE_BOOT.filename)
    for kind in drawn:
        for asset in kind.VENDORED:
            app.add_js_file(f"vendor/{asset.filename}")
        app.add_js_file(kind.BOOT.filename)
