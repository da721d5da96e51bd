"""Sphinx configuration of the livekit book.

Build with ``sphinx-build -n -W -c conf docs build/html`` (``tox -e docs``
does this).  Every page executes at build time; a failing cell fails the
build.  The built pages make no request to any other host and work opened
from disk.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

# Before myst-nb imports nbformat, which imports jsonschema: where
# rfc3987-syntax is installed (JupyterLab brings it into the test
# environment), jsonschema builds its RFC 3987 parser at import, 2.3
# CPU-seconds at this build's start, for two string formats that no
# notebook schema uses. The book's kernels go without it too
# (livekit._book_startup), as does a build with the docs extra alone.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

import livekit  # noqa: E402

project = "livekit"
author = "The livekit authors"
copyright = "2026, The livekit authors"
release = livekit.__version__
version = release

extensions = [
    "myst_nb",
    "livekit.sphinxext",
    "sphinx_copybutton",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

root_doc = "index"
exclude_patterns = ["jupyter_execute", "**.ipynb_checkpoints", "_build"]
templates_path: list[str] = []
html_static_path: list[str] = []

# -- Execution -----------------------------------------------------------------
# The pages make this build a livekit node and read its cookie. Give the
# kernels their own livekit home, so the build never prints or touches the
# cookie in the builder's ~/.livekit (kernels inherit this environment).
_home = Path(__file__).resolve().parent.parent / "build" / ".livekit-home"
_home.mkdir(mode=0o700, parents=True, exist_ok=True)
os.environ.setdefault("LIVEKIT_HOME", str(_home))

# "cache" (jupyter-cache) makes a local rebuild with nothing changed quick;
# tox and CI set LIVEKIT_NB_EXECUTION=force, because the cache keys on the
# page's code only and cannot see a change to livekit itself.
nb_execution_mode = os.environ.get("LIVEKIT_NB_EXECUTION", "cache")
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 180
nb_execution_cache_path = str(Path(__file__).resolve().parent.parent / "build" / ".jupyter_cache")
nb_merge_streams = True
# How long each page ran in a clean build: a build with no earlier timings
# of its own (a fresh machine, build/ removed) starts the longest page first.
livekit_book_estimates = "page-times.json"
# The pages' kernels are forked from one process that has imported the
# kernel's own modules (livekit._book_kernels); most pages draw charts, so
# it imports Altair for them too (0.5 CPU-s a kernel). A page still has to
# import what it uses: its namespace is empty as in any new kernel.
livekit_book_preload = ["altair"]
myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]
myst_heading_anchors = 3

# -- HTML ----------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "livekit"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
}
html_last_updated_fmt = None
html_copy_source = True
# livekit serve answers /favicon.ico with the same file.
html_favicon = str(Path(livekit.__file__).parent / "static" / "livekit-favicon.svg")

# Copy code, not outputs: outputs sit in div.output, inputs do not.
copybutton_selector = "div:not(.output) > div.highlight pre"
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

# -- API reference -------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_numpy_docstring = True
napoleon_google_docstring = False

# The book builds offline, so there is no intersphinx to link the standard
# library and third-party types; they stay unlinked rather than warn.
nitpick_ignore_regex = [
    (
        "py:class",
        r"(os|pathlib|collections\.abc|typing|types|threading|queue|asyncio|concurrent\.futures|multiprocessing|psutil|altair|docutils|sphinx)(\..*)?",
    ),
    ("py:class", r"(Path|PathLike|Any|Callable|Iterable|Iterator|Mapping|Sequence)"),
    # Type aliases of callables (livekit.trace.sources): the signature names
    # them, and their parameters are described in the docstring beside it.
    ("py:class", r"(NewParticipant|Who)"),
]

# pydata-sphinx-theme logs a console error on pages opened from disk unless
# the starting mode is named.
html_context = {"default_mode": "auto"}


# -- Download as a notebook ----------------------------------------------------
def _offer_executed_notebook(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Put the page's executed notebook in the theme's download menu (.ipynb).

    myst-nb writes it beside the output folder; sphinx-book-theme offers
    ``context["ipynb_source"]`` from ``_sources`` but only fills it in when
    launch buttons are configured, which an offline book has none of.
    """
    notebook = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if doctree is None or not notebook.is_file():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(notebook, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def _source_in_livekit_only(app: Any, modname: str, attribute: str) -> str | None:
    """Link a documented name to livekit's own source, never to another package's.

    viewcode follows a value to the module its ``__module__`` names: for
    ``Reason``, a ``typing.Literal``, that is ``typing``, whose 3,000
    highlighted lines made a source page nothing links to (0.4 s of every
    build).  Such a value is looked for in the livekit module that defines
    the name instead.
    """
    module = sys.modules.get(modname)
    value = getattr(module, attribute.partition(".")[0], None)
    origin = getattr(value, "__module__", None)
    if isinstance(origin, str) and origin.partition(".")[0] != "livekit":
        return modname
    return None


def setup(app: Any) -> None:
    # Before sphinx-book-theme builds its header buttons (priority 501).
    app.connect("html-page-context", _offer_executed_notebook, priority=400)
    app.connect("viewcode-follow-imported", _source_in_livekit_only)
