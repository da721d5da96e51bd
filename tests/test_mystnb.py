"""The myst-nb plugins and the Sphinx extension, on small test books.

The books in tests/roots hold notebooks with stored outputs, so these tests
need no kernel: they check what livekit turns each MIME type into.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import altair as alt
import pytest

from livekit import mystnb, sphinxext
from tests.conftest import MYSTNB_FRONT, require

ROOTS = Path(__file__).parent / "roots"


@pytest.fixture
def rootdir() -> Path:
    return ROOTS


@pytest.mark.sphinx("html", testroot="outputs")
def test_mermaid_output_becomes_a_mermaid_block_with_its_caption(app: Any) -> None:
    app.build()
    assert app._warning.getvalue() == ""
    page = (Path(app.outdir) / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<pre\s+class="mermaid">\s*graph TD\n  root --&gt; worker\s*</pre>', page)
    assert "A root supervises one worker." in page


@pytest.mark.sphinx("html", testroot="outputs")
def test_mermaid_is_preferred_to_the_html_form_of_the_same_output(app: Any) -> None:
    app.build()
    page = (Path(app.outdir) / "index.html").read_text(encoding="utf-8")
    assert "html form" not in page
    assert re.search(r'<pre\s+class="mermaid">\s*graph LR', page)


@pytest.mark.sphinx("html", testroot="outputs")
def test_vegalite_v5_and_v6_become_offline_chart_blocks(app: Any) -> None:
    app.build()
    page = (Path(app.outdir) / "index.html").read_text(encoding="utf-8")
    specs = re.findall(r'<script type="application/json">(.*?)</script>', page)
    assert [json.loads(s)["title"] for s in specs] == ["Memory (MB)", "v5 chart"]
    assert 'aria-label="Memory (MB)"' in page


@pytest.mark.sphinx("html", testroot="outputs")
def test_pages_that_draw_load_the_vendored_scripts_and_nothing_remote(app: Any) -> None:
    app.build()
    out = Path(app.outdir)
    page = (out / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', page)
    for name in (
        "vendor/mermaid.min.js",
        "livekit-mermaid.js",
        "vendor/vega.min.js",
        "vendor/vega-lite.min.js",
        "vendor/vega-embed.min.js",
        "livekit-vega.js",
    ):
        assert any(name in src for src in scripts), name
        assert (out / "_static" / name).exists()
    assert not [src for src in scripts if "://" in src or src.startswith("//")]
    assert 'type="module"' not in page
    assert "cdn.jsdelivr" not in page


@pytest.mark.sphinx("html", testroot="plain")
def test_pages_without_diagrams_do_not_load_mermaid_or_vega(app: Any) -> None:
    app.build()
    page = (Path(app.outdir) / "index.html").read_text(encoding="utf-8")
    assert "mermaid.min.js" not in page
    assert "vega.min.js" not in page


def test_chart_html_escapes_a_closing_script_inside_the_spec() -> None:
    block = mystnb.chart_html({"title": "</script><b>"}, None)
    assert "</script><b>" not in block
    assert json.loads(re.search(r'json">(.*)</script>', block).group(1)) == {
        "title": "</script><b>"
    }  # type: ignore[union-attr]


def test_altair_renderer_emits_valid_vegalite_mime_that_nbformat_accepts() -> None:
    import nbformat

    chart = alt.Chart(alt.Data(values=[{"x": 1}])).mark_point().encode(x="x:Q")
    with alt.renderers.enable("livekit"):
        bundle = chart._repr_mimebundle_()
    assert set(bundle) == {"application/vnd.vegalite.v6+json", "text/plain"}
    output = nbformat.v4.new_output("display_data", data=bundle)
    nbformat.validate(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("c", outputs=[output])])
    )


def test_jupyter_gets_offline_html_with_vega_inlined_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mystnb._display, "host", lambda: "jupyter")
    monkeypatch.setattr(mystnb._display, "_library_runs", {})
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v6.json", "mark": "point"}
    first = mystnb.vegalite_bundle(spec)["text/html"]
    second = mystnb.vegalite_bundle(spec)["text/html"]
    assert "vegaEmbed" in first
    assert len(first) > 500_000
    assert len(second) < 20_000
    assert "livekitVega" in second
    assert "://cdn" not in first


def test_a_v5_schema_keeps_the_v5_mime_type() -> None:
    bundle = mystnb.vegalite_bundle({"$schema": "https://vega.github.io/schema/vega-lite/v5.json"})
    assert "application/vnd.vegalite.v5+json" in bundle


def test_jupyter_gets_vega_again_in_each_cell_run_and_a_page_runs_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A reloaded notebook draws from saved outputs only: each cell run's
    # first chart must carry vega, or re-running the cell that had it
    # leaves every other chart blank (seen in tests/test_jupyterlab.py).
    shell = types.SimpleNamespace(execution_count=7)
    monkeypatch.setattr(mystnb._display, "host", lambda: "jupyter")
    monkeypatch.setattr(mystnb._display, "_ipython", lambda: shell)
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v6.json", "mark": "point"}
    carries_vega = []
    for run in (7, 7, 8, 8, 9):
        shell.execution_count = run
        html = mystnb.vegalite_bundle(spec)["text/html"]
        carries_vega.append(len(html) > 500_000)
    assert carries_vega == [True, False, True, False, True]
    # A page that has vega already (an earlier output) skips each script.
    guards = re.findall(r"if \(window\.(\w+)\) return;", html)
    assert guards == ["vega", "vegaLite", "vegaEmbed"]


@pytest.mark.docs
def test_a_book_page_draws_altair_offline_without_importing_livekit(tmp_path: Path) -> None:
    from tests.conftest import build_book

    result = build_book(ROOTS / "test-altair", tmp_path / "html")
    assert result.returncode == 0, result.stderr[-4000:]
    page = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    assert 'class="livekit-vega"' in page
    assert "cdn.jsdelivr" not in page


def test_a_book_kernel_enables_the_renderer_when_altair_is_first_imported() -> None:
    # Importing altair costs more than livekit itself; a page without a
    # chart should not pay for it, and one with a chart still draws offline.
    code = (
        "import sys, livekit\n"
        "print('altair' in sys.modules)\n"
        "import altair\n"
        "print(altair.renderers.active)\n"
    )
    env = {**os.environ, "LIVEKIT_BOOK": "1"}
    command = [sys.executable, "-c", code]
    out = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=True
    ).stdout
    assert out == "False\nlivekit\n"


def test_a_book_kernel_imports_altair_without_building_the_rfc3987_parser() -> None:
    # jsonschema imports rfc3987_syntax where it is installed (JupyterLab
    # pulls it into the test environment), which builds an Earley parser with
    # lark: seconds of CPU in every book kernel that imports Altair.
    # PYTHONSTARTUP runs before the first input of an interactive
    # interpreter, as it does before the first cell of a book's kernel.
    code = "import sys, altair\nprint('lark' in sys.modules)\n"
    startup = Path(sphinxext.__file__).with_name("_book_startup.py")

    def lark_imported(env: dict[str, str]) -> str:
        return subprocess.run(
            [sys.executable, "-i", "-q"],
            input=code,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        ).stdout.strip()

    plain = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    require(
        lark_imported(plain) == "True",
        "rfc3987-syntax is not installed, so no parser is built to avoid",
    )
    assert lark_imported({**plain, "PYTHONSTARTUP": str(startup)}) == "False"


@pytest.mark.docs
def test_a_first_cached_build_with_parallel_readers_makes_one_cache(tmp_path: Path) -> None:
    # With sphinx -j, every reader process used to find no jupyter-cache yet
    # and create it, and the second one failed (FileExistsError).
    from tests.conftest import build_book

    source = tmp_path / "docs"
    source.mkdir()
    pages = [f"a{n}" for n in range(4)]  # sorted before index: both readers start on a page
    toctree = "\n".join(pages)
    (source / "index.md").write_text(f"# Pages\n\n```{{toctree}}\n{toctree}\n```\n")
    for n, page in enumerate(pages):
        (source / f"{page}.md").write_text(
            MYSTNB_FRONT + f"\n# Page {n}\n\n```{{code-cell}} ipython3\nprint({n} * 7)\n```\n"
        )
    cache = tmp_path / "cache"
    args = ("-j", "2", "-D", f"nb_execution_cache_path={cache}")
    result = build_book(source, tmp_path / "html", *args, env={"LIVEKIT_NB_EXECUTION": "cache"})
    assert result.returncode == 0, result.stderr[-4000:]
    for n, page in enumerate(pages):
        assert f"{n * 7}" in (tmp_path / "html" / f"{page}.html").read_text(encoding="utf-8")
    assert (cache / "global.db").is_file()
