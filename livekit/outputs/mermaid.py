"""Mermaid diagrams: the value, and everything about showing one.

* the MIME type, :data:`MIME_TYPE`;
* the bundle for each front end, ``Mermaid._repr_mimebundle_``: VS Code
  draws no Mermaid MIME, so there the diagram also travels as HTML
  (:data:`HTML_HOSTS`); a terminal gets :meth:`livekit.Mermaid.terminal`;
* the figure HTML, drawn by ``livekit-mermaid.js``;
* the vendored mermaid (``VENDORED``);
* the myst-nb plugin, :class:`RenderPlugin`.

Every diagram livekit draws (sequence traces, supervision and application
trees) is a :class:`livekit.Mermaid`.  ``str(diagram)`` is its Mermaid source;
Jupyter, the book and ``livekit serve`` display it through
``_repr_mimebundle_``; a terminal gets a plain-text drawing
(:meth:`livekit.Mermaid.terminal`); :meth:`livekit.Mermaid.save` writes it to disk for a
trace taken somewhere without a notebook.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from livekit import _assets, _display
from livekit.outputs import _html

if TYPE_CHECKING:
    from docutils import nodes

#: The MIME type JupyterLab >= 4.1, Notebook >= 7.1 and nbconvert draw natively.
MIME_TYPE = "text/vnd.mermaid"
MIME_TYPES = (MIME_TYPE,)

#: The front ends that get the diagram as HTML too.  VS Code runs the
#: scripts of text/html outputs but draws no text/vnd.mermaid.
HTML_HOSTS = frozenset({"vscode"})

VENDORED = (_assets.Asset("mermaid", "12.3.0", "dist/mermaid.min.js"),)
(MERMAID,) = VENDORED
#: livekit's own script that draws every ``<pre class="mermaid">`` of a page.
BOOT = _assets.Asset("", "", "livekit-mermaid.js")

_SAVE_SUFFIXES = (".mmd", ".html")

#: Set to ``mermaid`` for a terminal to get Mermaid source instead of the
#: plain-text drawing, for a script whose output goes to a Mermaid tool.
TERMINAL_ENV = "LIVEKIT_TERMINAL"
_TERMINAL_FORMS = ("text", "mermaid")

#: The last line of a terminal drawing, which says how to get the picture.
SAVE_HINT = 'Save it as a page: diagram.save("diagram.html")'


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
        diagram, for a terminal (:meth:`terminal`); it is called only when a
        terminal shows the diagram.  None: a terminal shows the source.

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
        # isspace() copies nothing (strip() copied the whole source).
        if not source or source.isspace():
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
        # A caption that quotes a name such as "%%{init: ...}%%" must stay a
        # comment: mermaid reads a directive anywhere, a comment included.
        lines = (line.replace("%", "#37;") for line in self._caption.splitlines())
        comment = "\n".join(f"%% {line}" for line in lines)
        return f"{comment}\n{self._source}"

    def terminal(self, *, hint: str = SAVE_HINT) -> str:
        """Return what a terminal shows: the caption, the drawing, how to save it.

        The drawing is the plain text that the ``text`` argument makes.  A
        diagram made without one, or any diagram while the environment
        variable ``LIVEKIT_TERMINAL`` is ``mermaid``, shows :meth:`text`
        instead: Mermaid source, for a script whose output is piped on.

        Parameters
        ----------
        hint
            The last line, which says how to get the picture itself.

        Examples
        --------
        >>> diagram = Mermaid("graph LR\\n  a --> b", caption="a calls b",
        ...                   text=lambda: "a → b")
        >>> print(diagram.terminal())
        a calls b
        <BLANKLINE>
        a → b
        <BLANKLINE>
        Save it as a page: diagram.save("diagram.html")
        >>> print(Mermaid("graph LR\\n  a --> b").terminal())
        graph LR
          a --> b
        """
        if self._drawing is None or terminal_form() == "mermaid":
            return self.text()
        lines = [self._caption or ""]
        drawing = self._drawing()
        if drawing:
            lines += ["", drawing]
        lines += ["", hint]
        return "\n".join(lines)

    def __livekit_terminal__(self) -> str:
        """What :func:`livekit._display.show` prints outside a notebook."""
        return self.terminal()

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
        if _display.host() in HTML_HOSTS:
            due = _display.library_due("mermaid")
            bundle["text/html"] = self.to_html(full_page=False, library=due)
        metadata = {MIME_TYPE: {"caption": self._caption}} if self._caption else {}
        if include is not None or exclude is not None:
            bundle = _html.filter_bundle(bundle, include, exclude)
        return bundle, metadata

    def to_html(self, *, full_page: bool = True, library: bool = True) -> str:
        """Return HTML that draws the diagram offline, with mermaid inlined.

        Parameters
        ----------
        full_page
            True for a whole document (what :meth:`save` writes), which
            carries mermaid gzipped and unpacks it in the browser; False for
            a fragment to embed in another page, with mermaid as it is.
        library
            False leaves mermaid itself out, for a page that loads it already.

        Examples
        --------
        >>> page = Mermaid("graph LR\\n  a --> b").to_html()
        >>> page.startswith("<!DOCTYPE html>") and "a --&gt; b" in page
        True
        """
        figure = _figure_html(self._source, self._caption)
        boot = _html.boot_scripts(BOOT)
        if not full_page:
            script = _assets.inline_script(_assets.read(MERMAID)) if library else ""
            return f"{figure}\n{script}\n{boot}"
        # A file carries mermaid gzipped (2.1 MB, not 5.5): the page unpacks
        # it itself, then draws.
        script = _assets.packed_script(MERMAID, then=_DRAW) if library else ""
        title = html.escape(self._caption or "Mermaid diagram")
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{title}</title>\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            "</head>\n<body>\n"
            f"{figure}\n{boot}\n{script}\n</body>\n</html>\n"
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


#: What a page runs once it has unpacked mermaid.
_DRAW = "if (window.livekitMermaid) window.livekitMermaid.run();"


def terminal_form() -> str:
    """Return what a terminal shows for a diagram: ``"text"`` or ``"mermaid"``.

    It is the environment variable ``LIVEKIT_TERMINAL`` (:data:`TERMINAL_ENV`),
    ``text`` when it is unset or empty.

    Examples
    --------
    >>> import os
    >>> os.environ.get("LIVEKIT_TERMINAL", "text") == terminal_form()
    True
    """
    form = os.environ.get(TERMINAL_ENV) or "text"
    if form not in _TERMINAL_FORMS:
        raise ValueError(f"expected {TERMINAL_ENV} to be 'text' or 'mermaid', got {form!r}")
    return form


def _figure_html(source: str, caption: str | None) -> str:
    body = f'<pre class="mermaid">{html.escape(source)}</pre>'
    return _html.figure("livekit-diagram", body, caption, labelled=True)


class RenderPlugin:
    """myst-nb: render ``text/vnd.mermaid`` outputs as sphinxcontrib-mermaid nodes."""

    # Prefer the diagram to any HTML or text form of the same output.
    mime_priority_overrides: ClassVar[Sequence[tuple[str, str, int | None]]] = [
        (builder, MIME_TYPE, 1) for builder in _html.BUILDERS
    ]

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list[nodes.Element] | None:
        if data.mime_type != MIME_TYPE:
            return None
        from docutils import nodes
        from sphinxcontrib.mermaid import mermaid

        node = mermaid()
        node["code"] = data.string
        node["options"] = {}
        caption = _html.caption_of(data.output_metadata, MIME_TYPE)
        if not caption:
            return [node]
        figure = nodes.figure("", node, classes=["livekit-diagram"])
        figure += nodes.caption(caption, caption)
        return [figure]


def drawn_on(doctree: Any) -> bool:
    """Return True if a page's doctree holds a diagram (its scripts go on the page).

    Examples
    --------
    >>> from docutils import nodes
    >>> from sphinxcontrib.mermaid import mermaid
    >>> drawn_on(nodes.section("", mermaid())), drawn_on(nodes.section())
    (True, False)
    """
    from sphinxcontrib.mermaid import mermaid

    return any(True for _ in doctree.findall(mermaid))
