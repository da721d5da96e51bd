"""The book builds with -n -W, executing every page, and stays offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

# Addresses a built page may name in a link a reader clicks (never loads).
SCHEMA_URL = re.compile(r"https://vega\.github\.io/schema/vega-lite/v\d[\d.]*\.json")


def pages(book: Path) -> list[Path]:
    skip = {"genindex.html", "search.html", "py-modindex.html"}
    return sorted(
        p for p in book.rglob("*.html") if p.name not in skip and "_static" not in p.parts
    )


def test_every_page_of_the_book_is_built(built_book: Path) -> None:
    docs = Path(__file__).resolve().parent.parent / "docs"
    sources = {
        p.relative_to(docs).with_suffix("").as_posix()
        for p in docs.rglob("*.md")
        if "jupyter_execute" not in p.parts
    }
    built = {p.relative_to(built_book).with_suffix("").as_posix() for p in pages(built_book)}
    assert sources <= built, f"pages not built: {sorted(sources - built)}"
    assert {"index", "first-look"} <= built


def test_no_page_loads_anything_from_another_host(built_book: Path) -> None:
    for page in pages(built_book):
        text = page.read_text(encoding="utf-8")
        remote = re.findall(
            r'<(?:script|link|img|iframe)\b[^>]*(?:src|href)="((?:https?:)?//[^"]+)"', text
        )
        assert remote == [], f"{page.name} loads {remote}"
        assert 'type="module"' not in text, page.name
        assert "require.min.js" not in text, page.name
        assert "html-manager" not in text, page.name


def test_no_page_holds_a_widget_view_output(built_book: Path) -> None:
    for page in pages(built_book):
        assert "application/vnd.jupyter.widget-view+json" not in page.read_text(encoding="utf-8"), (
            page.name
        )


def test_the_book_kernels_run_over_ipc_not_tcp(built_book: Path) -> None:
    # Each page's kernel once logged "Kernel is running over TCP without
    # encryption": its five ports on 127.0.0.1 were open to every local user.
    log = (built_book.parent / "build.log").read_text(encoding="utf-8")
    assert "Kernel is running over TCP" not in log
    assert "without encryption" not in log


def test_vendored_licences_ship_with_the_scripts(built_book: Path) -> None:
    static = built_book / "_static"
    for name in ("mermaid", "vega", "vega-lite", "vega-embed"):
        assert (static / "vendor" / "LICENSES" / f"{name}.LICENSE").is_file()


def test_no_cookie_in_force_in_any_kernel_appears_in_a_built_page(built_book: Path) -> None:
    from tests.conftest import book_cookie_record

    # What every kernel of the build had in force after each of its cells.
    records = [json.loads(line) for line in book_cookie_record(built_book).read_text().splitlines()]
    kernels = {r["pid"] for r in records}
    cookies = {c for r in records for c in (r["own"], r["file"]) if c}
    # The record is not empty: the tutorial's kernel and the server page's were nodes.
    assert len(kernels) >= 5
    assert len(cookies) >= 2
    built = [p for p in built_book.rglob("*") if p.is_file() and "_static" not in p.parts]
    leaks = {
        str(path.relative_to(built_book))
        for path in built
        for text in [path.read_bytes()]
        for cookie in cookies
        if cookie.encode() in text
    }
    assert leaks == set()
    print(f"{len(records)} cells in {len(kernels)} kernels had {len(cookies)} cookies in force")


def test_a_page_outside_the_contents_has_the_books_navigation_from_its_own_folder(
    built_book: Path,
) -> None:
    # Viewcode's source pages and the index pages share their folder's
    # navigation (livekit.sphinxext): it must link every page of the book,
    # relative to each page's own folder, and mark none as current.
    def sidebar(page: Path) -> tuple[set[Path], bool]:
        html = page.read_text(encoding="utf-8")
        nav = html[html.index('<nav class="bd-links bd-docs-nav"') :]
        nav = nav[: nav.index("</nav>")]
        links = {(page.parent / href).resolve() for href in re.findall(r'href="([^"#]+)', nav)}
        return links, "current" in nav

    book, _ = sidebar(built_book / "index.html")
    assert len(book) > 20
    assert all(link.is_file() for link in book)
    outside = [built_book / "genindex.html", *sorted((built_book / "_modules").rglob("*.html"))]
    assert len({page.parent for page in outside}) > 5
    for page in outside:
        assert sidebar(page) == (book, False), page.relative_to(built_book)


def test_the_book_shows_the_source_of_livekit_s_modules_only(built_book: Path) -> None:
    # A documented value of another package's type (Reason, a typing.Literal)
    # must not make a page of that package's source.
    modules = built_book / "_modules"
    pages = sorted(page.relative_to(modules) for page in modules.rglob("*.html"))
    assert Path("livekit/trace/format.html") in pages
    assert [
        page for page in pages if page.parts[0] not in ("livekit", "livekit.html", "index.html")
    ] == []
