"""Where livekit is running, and how to show a value there.

``render_*`` functions call :func:`show`: inside a Jupyter kernel (JupyterLab,
VS Code, the book build) the value is displayed through IPython's rich
display; anywhere else, such as a script in a terminal or a log on a server,
its text is printed so that a pasted snippet still says something useful.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
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
    A value with a ``__livekit_terminal__()`` method prints what it returns:
    a diagram its plain-text drawing (:meth:`livekit.Mermaid.terminal`), or,
    if it has none, its caption as a ``%%`` comment, then its Mermaid source.
    Another value with a MIME bundle prints its ``text/plain`` form, as
    IPython's terminal would.

    >>> show("plain text outside a notebook")
    plain text outside a notebook
    >>> from livekit import Mermaid
    >>> show(Mermaid("graph LR\\n  a --> b", caption="a calls b"))
    %% a calls b
    graph LR
      a --> b
    """
    if host() in {"terminal", "ipython"} and not hasattr(value, "_ipython_display_"):
        terminal = getattr(value, "__livekit_terminal__", None)
        print(terminal() if callable(terminal) else plain_text(value))
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
    renderer it had.  Importing altair costs a kernel about 0.7 s of CPU,
    more than livekit itself, and several pages draw no chart: so the
    renderer is enabled the moment a page imports altair, not before.
    """
    if not os.environ.get(BOOK_ENV):
        return
    if "altair" in sys.modules:
        _enable_livekit_renderer(sys.modules["altair"])
    elif not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport("altair", _enable_livekit_renderer))


def _enable_livekit_renderer(altair: Any) -> None:
    altair.renderers.enable("livekit")


class _AfterImport(importlib.abc.MetaPathFinder):
    """Call ``then(module)`` once, right after module ``name`` is first imported."""

    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self._name = name
        self._then = then

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self._name:
            return None
        # Once only; and the finders after this one find the real module.
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        run, then = spec.loader.exec_module, self._then

        def exec_module(module: ModuleType) -> None:
            run(module)
            then(module)

        # The module keeps its own loader (resources are read through it).
        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


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
