"""The Mermaid value: a diagram that knows how to show itself.

Every diagram livekit draws (sequence traces, supervision and application
trees) is a :class:`Mermaid`.  ``str(diagram)`` is its Mermaid source;
Jupyter, the book and ``livekit serve`` display it through
``_repr_mimebundle_``; :meth:`Mermaid.save` writes it to disk for a trace
taken somewhere without a notebook.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from livekit import _assets, _display

#: The MIME type JupyterLab >= 4.1, Notebook >= 7.1 and nbconvert draw natively.
MIME_TYPE = "text/vnd.mermaid"

_SAVE_SUFFIXES = (".mmd", ".html")


class Mermaid:
    """A Mermaid diagram with an optional caption.

    Parameters
    ----------
    source
        Mermaid source text, such as ``"graph TD; a-->b"``.
    caption
        A sentence that says what the diagram shows.  The book prints it
        under the diagram, and it is the diagram's text for screen readers.
    text
        A function of no arguments that returns a plain-text drawing of the
        diagram, for a terminal; it is called only when a terminal shows the
        diagram.  None: a terminal shows the source.

    Examples
    --------
    >>> diagram = Mermaid("graph TD\\n  a --> b", caption="a calls b")
    >>> print(diagram)
    graph TD
      a --> b
    >>> data, metadata = diagram._repr_mimebundle_()
    >>> sorted(data), metadata
    (['text/plain', 'text/vnd.mermaid'], {'text/vnd.mermaid': {'caption': 'a calls b'}})
    """

    __slots__ = ("_caption", "_drawing", "_source")

    def __init__(
        self,
        source: str,
        *,
        caption: str | None = None,
        text: Callable[[], str] | None = None,
    ) -> None:
        if not isinstance(source, str):
            raise TypeError(
                f"Mermaid source must be a str, got {type(source).__name__}: {source!r}"
            )
        if caption is not None and not isinstance(caption, str):
            raise TypeError(
                f"caption must be a str or None, got {type(caption).__name__}: {caption!r}"
            )
        if text is not None and not callable(text):
            raise TypeError(
                f"text must be a function returning a str, or None, got "
                f"{type(text).__name__}: {text!r}"
            )
        if not source.strip():
            raise ValueError("Mermaid source is empty")
        self._source = source
        self._caption = caption
        self._drawing = text

    @property
    def source(self) -> str:
        """The Mermaid source text."""
        return self._source

    @property
    def caption(self) -> str | None:
        """The caption, or None."""
        return self._caption

    def __str__(self) -> str:
        return self._source

    def __repr__(self) -> str:
        first = self._source.splitlines()[0]
        lines = self._source.count("\n") + 1
        caption = f", caption={self._caption!r}" if self._caption else ""
        return f"<Mermaid {first!r} ({lines} lines){caption}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mermaid):
            return NotImplemented
        return (self._source, self._caption) == (other._source, other._caption)

    def __hash__(self) -> int:
        return hash((self._source, self._caption))

    def text(self) -> str:
        """Return the source with the caption as a leading Mermaid comment.

        This is the ``text/plain`` form: readable in a terminal and still
        valid Mermaid when pasted into an editor.

        Examples
        --------
        >>> print(Mermaid("graph LR\\n  a --> b", caption="a to b").text())
        %% a to b
        graph LR
          a --> b
        """
        if not self._caption:
            return self._source
        comment = "\n".join(f"%% {line}" for line in self._caption.splitlines())
        return f"{comment}\n{self._source}"

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return the MIME data and metadata that IPython displays.

        The caption rides in the metadata, where the book's renderer finds
        it and prints it under the diagram.
        """
        bundle: dict[str, Any] = {MIME_TYPE: self._source, "text/plain": self.text()}
        # VS Code draws no text/vnd.mermaid; it runs the scripts of text/html
        # outputs, so there (and only there) the diagram also travels as HTML
        # with mermaid inlined.  The book never gets this type.
        # The 5 MB library goes into the first such output of each cell run
        # only: VS Code shows all outputs of a notebook in one web view.
        if _display.host() == "vscode":
            due = _display.library_due("mermaid")
            bundle["text/html"] = self.to_html(full_page=False, library=due)
        metadata = {MIME_TYPE: {"caption": self._caption}} if self._caption else {}
        return _filter_bundle(bundle, include, exclude), metadata

    def to_html(self, *, full_page: bool = True, library: bool = True) -> str:
        """Return HTML that draws the diagram offline, with mermaid inlined.

        Parameters
        ----------
        full_page
            True for a whole document (what :meth:`save` writes); False for a
            fragment to embed in another page.
        library
            False leaves mermaid itself out, for a page that loads it already.

        Examples
        --------
        >>> page = Mermaid("graph LR\\n  a --> b").to_html()
        >>> page.startswith("<!DOCTYPE html>") and "a --&gt; b" in page
        True
        """
        figure = _figure_html(self._source, self._caption)
        script = _assets.inline_script(_assets.read(_assets.MERMAID)) if library else ""
        boot = _assets.inline_script(_assets.read(_assets.MERMAID_BOOT))
        if not full_page:
            return f"{figure}\n{script}\n{boot}"
        title = html.escape(self._caption or "Mermaid diagram")
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{title}</title>\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            "</head>\n<body>\n"
            f"{figure}\n{script}\n{boot}\n</body>\n</html>\n"
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the diagram to ``path`` and return the path.

        A ``.mmd`` file holds the Mermaid source (with the caption as a
        comment); an ``.html`` file is a self-contained page that draws the
        diagram offline, so a trace taken on a server opens anywhere.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> Mermaid("graph LR\\n  a --> b").save(folder / "calls.mmd").read_text()
        'graph LR\\n  a --> b\\n'
        """
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix == ".mmd":
            target.write_text(self.text() + "\n", encoding="utf-8")
        elif suffix == ".html":
            target.write_text(self.to_html(), encoding="utf-8")
        else:
            raise ValueError(
                f"expected a path ending in {' or '.join(_SAVE_SUFFIXES)}, got {str(path)!r}"
            )
        return target


def _figure_html(source: str, caption: str | None) -> str:
    label = f' aria-label="{html.escape(caption)}"' if caption else ""
    figcaption = f"\n<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (
        f'<figure class="livekit-diagram"{label}>\n'
        f'<pre class="mermaid">{html.escape(source)}</pre>{figcaption}\n</figure>'
    )


def _filter_bundle(
    bundle: dict[str, Any], include: Iterable[str] | None, exclude: Iterable[str] | None
) -> dict[str, Any]:
    """Honour IPython's include/exclude arguments to ``_repr_mimebundle_``."""
    if include is not None:
        wanted = set(include)
        bundle = {k: v for k, v in bundle.items() if k in wanted}
    if exclude is not None:
        unwanted = set(exclude)
        bundle = {k: v for k, v in bundle.items() if k not in unwanted}
    return bundle
