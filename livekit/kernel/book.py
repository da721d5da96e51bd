"""The book's own pages, read from disk: the only code ``livekit serve`` runs.

The browser never sends code.  It names a page (Sphinx's page name, such as
``"tutorial"`` or ``"howto/live-book"``) and a cell (myst-nb's index of the
cell in that page's notebook); :class:`Book` finds the page's source under
the book's source folder and reads its code cells with myst-nb's own reader,
the same one the build used, so the indices agree with the built page.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

_PAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*")


class UnknownPageError(LookupError):
    """The page is not one of the book's executable pages."""


class UnknownCellError(LookupError):
    """The page has no code cell with that index."""


@dataclass(frozen=True)
class Cell:
    """One code cell of a page: its index in the page's notebook, its code, its tags.

    Examples
    --------
    >>> cell = Cell(3, "1 / 0", ("raises-exception",))
    >>> cell.index, cell.raises
    (3, True)
    """

    index: int
    source: str
    tags: tuple[str, ...] = ()

    @property
    def raises(self) -> bool:
        """Whether the page expects this cell to raise (tag ``raises-exception``)."""
        return "raises-exception" in self.tags


class Book:
    """The executable pages under a book's source folder.

    Parameters
    ----------
    source_dir
        The folder ``sphinx-build`` read the pages from (``docs``).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "page.md").write_text(
    ...     "---\\nfile_format: mystnb\\nkernelspec:\\n  name: python3\\n---\\n# Page\\n\\n"
    ...     "```{code-cell} ipython3\\nx = 1\\n```\\n\\nText.\\n\\n"
    ...     "```{code-cell} ipython3\\nx + 1\\n```\\n"
    ... )
    >>> book = Book(folder)
    >>> [(cell.index, cell.source) for cell in book.cells("page")]
    [(1, 'x = 1'), (3, 'x + 1')]
    >>> book.cell("../etc/passwd", 0)
    Traceback (most recent call last):
    ...
    livekit.kernel.book.UnknownPageError: no executable page '../etc/passwd' in the book
    """

    def __init__(self, source_dir: str | Path) -> None:
        self.source_dir = Path(source_dir).resolve()
        if not self.source_dir.is_dir():
            raise ValueError(f"expected the book's source folder, got {str(source_dir)!r}")
        self._cache: dict[Path, tuple[float, list[Cell]]] = {}

    def path(self, page: str) -> Path:
        """Return the source file of ``page``, or raise :class:`UnknownPageError`."""
        if not isinstance(page, str) or not _PAGE_NAME.fullmatch(page) or ".." in page:
            raise UnknownPageError(f"no executable page {page!r} in the book")
        try:
            path = (self.source_dir / f"{page}.md").resolve()
            found = path.is_relative_to(self.source_dir) and path.is_file()
            found = found and _is_text_notebook(path)
        except OSError:  # a name too long for the file system (ENAMETOOLONG), say
            found = False
        if not found:
            raise UnknownPageError(f"no executable page {page!r} in the book")
        return path

    def cells(self, page: str) -> list[Cell]:
        """Return the code cells of ``page``, read again when the file changed."""
        path = self.path(page)
        mtime = path.stat().st_mtime
        cached = self._cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        from myst_nb.core.read import read_myst_markdown_notebook

        notebook = read_myst_markdown_notebook(path.read_text("utf8"), path=str(path))
        cells = [
            Cell(index, "".join(cell.source), tuple(cell.metadata.get("tags", ())))
            for index, cell in enumerate(notebook.cells)
            if cell.cell_type == "code"
        ]
        self._cache[path] = (mtime, cells)
        return cells

    def cell(self, page: str, index: int) -> Cell:
        """Return cell ``index`` of ``page``, or raise the matching lookup error."""
        for cell in self.cells(page):
            if cell.index == index:
                return cell
        raise UnknownCellError(f"page {page!r} has no code cell {index!r}")


def _is_text_notebook(path: Path) -> bool:
    # The same test myst-nb applies: front matter naming the mystnb format or
    # a kernelspec.  Plain Markdown pages have no cells to run.
    head = path.read_text("utf8")[:4096]
    if not head.startswith("---"):
        return False
    front = head.split("\n---", 1)[0]
    return "file_format: mystnb" in front or "kernelspec:" in front


def dependents(cells: list[Cell], changed: int, *, ran: set[int] | None = None) -> list[int]:
    """Return the cells to run again after cell ``changed``, in page order.

    That is ``changed`` itself and every later cell that reads a name which
    ``changed`` (or another dependent) assigns, transitively: the cells that
    read an input.  With ``ran``, only cells already run are returned, so an
    input change never starts a cell the reader has not run.

    A re-run must not fail on what an earlier run deleted.  When a cell to
    run again reads or deletes a name that some cell deletes (``del
    strings``), and no cell before it in the re-run assigns that name, the
    cell that last assigned it before runs again too.

    Examples
    --------
    >>> cells = [Cell(0, "name = read_text('Node')"), Cell(1, "other = 2"),
    ...          Cell(2, "greeting = 'hi ' + name"), Cell(3, "print(greeting)")]
    >>> dependents(cells, 0)
    [0, 2, 3]
    >>> dependents(cells, 0, ran={0, 1, 2})
    [0, 2]

    The page's last cell reads the chart made from the input, and deletes
    what cell 1 made: cell 1 runs again before it.

    >>> cells = [Cell(0, "node = read_text('Node')"), Cell(1, "big = [0] * 10"),
    ...          Cell(2, "chart = plot(node)"), Cell(3, "del big; chart")]
    >>> dependents(cells, 0)
    [0, 1, 2, 3]
    """
    order = [cell.index for cell in cells]
    if changed not in order:
        raise UnknownCellError(f"no code cell {changed!r}")
    names = {cell.index: _names(cell.source) for cell in cells}
    start = order.index(changed)
    chosen = [changed]
    defined = set(names[changed].assigned)
    for cell in cells[start + 1 :]:
        if names[cell.index].needs & defined:
            chosen.append(cell.index)
            defined |= names[cell.index].assigned
    if ran is not None:
        chosen = [index for index in chosen if index == changed or index in ran]
    deleted = set().union(
        *(n.deleted for index, n in names.items() if ran is None or index in ran or index in chosen)
    )
    return sorted(_restore_deleted(order, names, set(chosen), deleted), key=order.index)


def _restore_deleted(
    order: list[int], names: dict[int, _Names], chosen: set[int], deleted: set[str]
) -> set[int]:
    """Add to ``chosen`` the cells that make again what ``chosen`` needs and a run deleted."""
    while True:
        added = False
        for position, index in enumerate(order):
            if index not in chosen:
                continue
            before = order[:position]
            made = set().union(*(names[i].assigned for i in before if i in chosen))
            for name in sorted((names[index].needs & deleted) - made):
                makers = [i for i in before if name in names[i].assigned]
                if makers and makers[-1] not in chosen:
                    chosen.add(makers[-1])
                    added = True
        if not added:
            return chosen


@dataclass(frozen=True)
class _Names:
    """The names a cell assigns, reads and deletes (``del``)."""

    assigned: frozenset[str]
    read: frozenset[str]
    deleted: frozenset[str]

    @property
    def needs(self) -> frozenset[str]:
        """The names that must exist for the cell to run: read or deleted."""
        return self.read | self.deleted


def _names(source: str) -> _Names:
    """Return the names a cell assigns, reads and deletes."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: treat as reading and assigning nothing
        return _Names(frozenset(), frozenset(), frozenset())
    assigned: set[str] = set()
    read: set[str] = set()
    deleted: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                read.add(node.id)
            elif isinstance(node.ctx, ast.Del):
                deleted.add(node.id)
            else:
                assigned.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            assigned.add(node.name)
        elif isinstance(node, ast.alias):
            assigned.add((node.asname or node.name).split(".")[0])
    return _Names(frozenset(assigned), frozenset(read), frozenset(deleted))
