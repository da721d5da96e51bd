"""Where livekit is running, and how to show a value there.

``render_*`` functions call :func:`show`: inside a Jupyter kernel (JupyterLab,
VS Code, the book build) the value is displayed through IPython's rich
display; anywhere else, such as a script in a terminal or a log on a server,
its text is printed so that a pasted snippet still says something useful.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Literal

Host = Literal["book", "vscode", "jupyter", "ipython", "terminal"]

#: Set by livekit's Sphinx configuration before cells execute; the kernels
#: that myst-nb starts inherit it.
BOOK_ENV = "LIVEKIT_BOOK"


def host() -> Host:
    """Return which kind of front end will show livekit's output.

    Examples
    --------
    >>> host() in {"book", "vscode", "jupyter", "ipython", "terminal"}
    True
    """
    shell = _ipython()
    if shell is None:
        return "terminal"
    if getattr(shell, "kernel", None) is None:
        return "ipython"
    if os.environ.get(BOOK_ENV):
        return "book"
    # VS Code starts its kernels with its own variables in the environment.
    if any(name.startswith("VSCODE_") for name in os.environ):
        return "vscode"
    return "jupyter"


def show(value: Any) -> None:
    """Display ``value`` richly in a notebook, or print its text elsewhere.

    Examples
    --------
    A value with a MIME bundle prints its ``text/plain`` form, as IPython's
    terminal would: for a diagram, its caption as a ``%%`` comment, then its
    Mermaid source.

    >>> show("plain text outside a notebook")
    plain text outside a notebook
    >>> from livekit import Mermaid
    >>> show(Mermaid("graph LR\\n  a --> b", caption="a calls b"))
    %% a calls b
    graph LR
      a --> b
    """
    if host() in {"terminal", "ipython"} and not hasattr(value, "_ipython_display_"):
        print(plain_text(value))
        return
    from IPython.display import display

    display(value)  # type: ignore[no-untyped-call]


def plain_text(value: Any) -> str:
    """Return the ``text/plain`` form of ``value``'s MIME bundle, else ``str(value)``.

    Examples
    --------
    >>> plain_text(3)
    '3'
    """
    bundle = getattr(value, "_repr_mimebundle_", None)
    if callable(bundle):
        data = bundle(include=["text/plain"])
        # IPython accepts a (data, metadata) pair or the data alone.
        if isinstance(data, tuple):
            data = data[0]
        text = data.get("text/plain") if isinstance(data, dict) else None
        if isinstance(text, str):
            return text
    return str(value)


def _ipython() -> Any:
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def enable_book_renderer() -> None:
    """Enable livekit's Altair renderer when running inside a book build.

    Only the book build sets :data:`BOOK_ENV`; a user's Jupyter keeps the
    renderer it had.
    """
    if os.environ.get(BOOK_ENV):
        import altair

        altair.renderers.enable("livekit")


_library_runs: dict[str, object] = {}


def library_due(library: str) -> bool:
    """Return True if this output must carry ``library`` (vega, mermaid) itself.

    Once per cell run, not once per kernel: a saved notebook is drawn again
    from its outputs alone when it is reopened or the page reloads, and the
    output that carried the library may be gone by then (its cell run again,
    or cleared), leaving every other output blank.  That was seen in a real
    JupyterLab (tests/test_jupyterlab.py).  The cost is one copy of the
    library per cell run that draws.

    Examples
    --------
    >>> library_due("example"), library_due("example")
    (True, False)
    """
    shell = _ipython()
    run = getattr(shell, "execution_count", None)
    if library in _library_runs and _library_runs[library] == run:
        return False
    _library_runs[library] = run
    return True
