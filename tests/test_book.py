"""The book ports every section of the seed notebook, and each one runs.

The seed is Livebook's "Runtime introspection with Mermaid and VegaLite"
(``../shared/seed/runtime-introspection.exs`` when this repository was
written).  Each of its sections has a Python counterpart in
``docs/tutorial.md`` under a fixed anchor, and each counterpart holds a code
cell that the build executes and that calls the Python twin of the seed's
code.  The fast tests read the page source; the ``docs`` tests look for the
anchors in the built HTML.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
TUTORIAL = DOCS / "tutorial.md"


@dataclass(frozen=True)
class Counterpart:
    """A section of the seed and where its Python telling lives."""

    seed: str
    anchor: str
    #: Code that an executed cell of the section must contain.
    code: tuple[str, ...]


SEED_SECTIONS = (
    Counterpart(
        "Mix.install and import Kino.Shorts",
        "tutorial-setup",
        ("import livekit", "from livekit.shorts import *"),
    ),
    Counterpart(
        "self(), spawn, send and receive: the ping/pong",
        "tutorial-threads",
        ("threading.current_thread()", "queue.Queue()", "asyncio.Queue()"),
    ),
    Counterpart(
        "Kino.Process.render_seq_trace of the ping/pong",
        "tutorial-trace",
        ("livekit.render_seq_trace(ping_pong)",),
    ),
    Counterpart(
        "Task.async_stream with random sleeps",
        "tutorial-executor",
        ("random.uniform(0.1, 0.3)", "pool.map(", "livekit.render_seq_trace(four_naps)"),
    ),
    Counterpart(
        "Supervisor.start_link with a Task and an Agent",
        "tutorial-supervisors",
        ("livekit.Supervisor(", "livekit.Agent(list)", 'strategy="one_for_one"'),
    ),
    Counterpart(
        "Kino.Process.render_sup_tree(supervisor)",
        "tutorial-sup-tree",
        ("livekit.render_sup_tree(supervisor)",),
    ),
    Counterpart("a supervisor as a cell's value", "tutorial-sup-value", ("supervisor\n",)),
    Counterpart(
        "render_app_tree(:kino) and render_app_tree(:elixir)",
        "tutorial-app-tree",
        ('livekit.render_app_tree("livekit")', "livekit.render_app_tree(direction="),
    ),
    Counterpart(
        "Application.started_applications()",
        "tutorial-started-apps",
        ("livekit.started_applications()",),
    ),
    Counterpart(
        "node() and Node.get_cookie()",
        "tutorial-node-name",
        # The seed prints the cookie; a page never does (a published cookie is a
        # password given away): it sets a random one and shows a fingerprint.
        ("print(livekit.node())", "livekit.set_cookie(secrets.token_urlsafe(32))"),
    ),
    Counterpart(
        "read_text inputs, Node.set_cookie and Node.connect",
        "tutorial-connect",
        (
            'read_text("Node", default=livekit.node())',
            'read_text("Cookie", default="") or livekit.get_cookie()',
            "livekit.set_cookie(node, cookie)",
            "livekit.connect(node)",
        ),
    ),
    Counterpart("Node.spawn with IO.inspect", "tutorial-spawn", ("livekit.spawn(node,",)),
    Counterpart(
        ":erpc.call(node, Process, :list, [])",
        "tutorial-rpc",
        ('livekit.rpc.call(node, "psutil", "pids")',),
    ),
    Counterpart(
        "Process.info per pid and the VegaLite scatter",
        "tutorial-processes",
        (
            'livekit.rpc.call(node, "livekit", "process_info", [pid])',
            'alt.Scale(type="log", base=10)',
            'alt.Color("status:N"',
            "tooltip=",
        ),
    ),
    Counterpart(":erlang.memory()", "tutorial-memory-call", ("livekit.memory()",)),
    Counterpart(
        "Kino.VegaLite.new, Kino.listen(200, ...) and push(window: 1000)",
        "tutorial-live-chart",
        (
            "livekit.VegaLite(",
            ".repeat(layer=categories)",
            'livekit.rpc.call(node, "livekit", "memory")',
            "memory_plot.push(point, window=1000)",
            "livekit.listen(0.2, sample)",
        ),
    ),
    Counterpart(
        "the binary and ETS spikes",
        "tutorial-spikes",
        ('"cat" * i for i in range(1, 10_001)', 'f"User {i}" for i in range(1_000_000)'),
    ),
    Counterpart("the pointer to custom Kinos", "tutorial-where-next", ()),
)


@dataclass(frozen=True)
class Cell:
    code: str
    tags: tuple[str, ...]

    @property
    def executed(self) -> bool:
        return "skip-execution" not in self.tags


_LABEL = re.compile(r"^\(([\w-]+)\)=\n(#+ .+)$", re.MULTILINE)
_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_TAGS = re.compile(r"^:tags: \[([^\]]*)\]\n", re.MULTILINE)


def sections(text: str) -> dict[str, tuple[str, list[Cell]]]:
    """Map each labelled heading to its heading line and its code cells.

    A section runs from its label to the next label, so a ``###`` section's
    cells belong to it and not to the ``##`` above it.
    """
    found: dict[str, tuple[str, list[Cell]]] = {}
    matches = list(_LABEL.finditer(text))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(text)
        cells = []
        for cell in _CELL.finditer(text, match.end(), end):
            body = cell.group(1)
            tags_match = _TAGS.match(body)
            tags = tuple(t.strip() for t in tags_match.group(1).split(",")) if tags_match else ()
            cells.append(Cell(body[tags_match.end() :] if tags_match else body, tags))
        found[match.group(1)] = (match.group(2), cells)
    return found


def test_sections_reads_labels_headings_cells_and_tags() -> None:
    text = (
        "(a)=\n## First\n\n```{code-cell} ipython3\nx = 1\n```\n\n"
        "(b)=\n### Second\n\n```{code-cell} ipython3\n:tags: [skip-execution]\ny = 2\n```\n"
    )
    assert sections(text) == {
        "a": ("## First", [Cell("x = 1\n", ())]),
        "b": ("### Second", [Cell("y = 2\n", ("skip-execution",))]),
    }


@pytest.mark.parametrize("part", SEED_SECTIONS, ids=lambda part: part.anchor)
def test_each_seed_section_has_a_python_counterpart_under_its_anchor(part: Counterpart) -> None:
    found = sections(TUTORIAL.read_text(encoding="utf-8"))
    assert part.anchor in found, f"no section for the seed's {part.seed}"
    heading, _cells = found[part.anchor]
    assert heading.startswith(("## ", "### ")), heading


@pytest.mark.parametrize("part", [p for p in SEED_SECTIONS if p.code], ids=lambda part: part.anchor)
def test_each_ported_section_runs_the_python_twin_of_the_seed_code(part: Counterpart) -> None:
    _heading, cells = sections(TUTORIAL.read_text(encoding="utf-8"))[part.anchor]
    executed = "\n".join(cell.code for cell in cells if cell.executed)
    missing = [snippet for snippet in part.code if snippet not in executed]
    assert missing == [], f"{part.anchor}: no executed cell calls {missing}"


def test_every_seed_section_but_the_closing_pointer_names_the_code_it_runs() -> None:
    assert [p.anchor for p in SEED_SECTIONS if not p.code] == ["tutorial-where-next"]


def test_every_cell_of_the_tutorial_runs_when_the_book_is_built() -> None:
    cells = [c for _h, cs in sections(TUTORIAL.read_text(encoding="utf-8")).values() for c in cs]
    assert len(cells) > 20
    assert [c.code for c in cells if not c.executed] == []


def test_the_seed_sections_come_in_the_seed_order() -> None:
    found = list(sections(TUTORIAL.read_text(encoding="utf-8")))
    anchors = [part.anchor for part in SEED_SECTIONS]
    assert [a for a in found if a in anchors] == anchors


def test_the_tutorial_ends_pointing_at_the_custom_widget_page() -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    where_next = text[text.index("(tutorial-where-next)=") :]
    assert "{doc}`custom-widget`" in where_next
    assert (DOCS / "custom-widget.md").is_file()


@pytest.mark.parametrize("page", ["tutorial.md", "vega-lite.md", "first-look.md"])
def test_each_start_here_page_says_what_you_will_learn_and_where_next(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    assert "**What you will learn:**" in text.split("\n## ", 1)[0]
    assert text.rstrip().rsplit("\n## ", 1)[1].startswith("Where next")


@pytest.mark.docs
def test_the_built_tutorial_carries_every_seed_anchor(built_book: Path) -> None:
    html = (built_book / "tutorial.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'id="([\w-]+)"', html))
    assert [p.anchor for p in SEED_SECTIONS if p.anchor not in ids] == []


@pytest.mark.docs
def test_the_landing_page_lists_the_start_here_pages_in_reading_order(built_book: Path) -> None:
    html = (built_book / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'<a class="reference internal" href="([\w-]+)\.html">', html)
    order = ["first-look", "tutorial", "vega-lite", "traces", "trees", "custom-widget"]
    assert [link for link in dict.fromkeys(links) if link in order] == order


EXECUTED_PAGES = ["index", "first-look", "tutorial", "vega-lite"]
#: Every page of the book that is a notebook, whoever wrote it.
NOTEBOOK_PAGES = sorted(
    page.relative_to(DOCS).with_suffix("").as_posix()
    for page in DOCS.rglob("*.md")
    if "\nfile_format: mystnb\n" in page.read_text(encoding="utf-8").split("\n---", 1)[0] + "\n"
)


def test_the_start_here_pages_are_notebooks() -> None:
    assert set(EXECUTED_PAGES) <= set(NOTEBOOK_PAGES)


@pytest.mark.docs
@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_each_executed_page_offers_its_notebook_with_outputs(built_book: Path, page: str) -> None:
    html = (built_book / f"{page}.html").read_text(encoding="utf-8")
    up = "../" * page.count("/")
    assert f'href="{up}_sources/{page}.ipynb"' in html
    notebook = json.loads((built_book / "_sources" / f"{page}.ipynb").read_text(encoding="utf-8"))
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code, page
    assert any(cell["outputs"] for cell in code), f"{page}.ipynb has no outputs"


@pytest.mark.docs
@pytest.mark.browser
@pytest.mark.parametrize("page", EXECUTED_PAGES)
def test_copy_buttons_copy_code_cells_and_never_outputs(
    built_book: Path, browser: Any, page: str
) -> None:
    tab = browser.new_page()
    try:
        tab.goto((built_book / f"{page}.html").as_uri())
        tab.wait_for_selector("button.copybtn", state="attached")
        counts = tab.evaluate(
            """() => {
              const targets = [...document.querySelectorAll('button.copybtn')]
                .map(b => document.querySelector(b.dataset.clipboardTarget));
              return {
                inputs: document.querySelectorAll('.cell_input').length,
                onInputs: targets.filter(t => t.closest('.cell_input')).length,
                onOutputs: targets.filter(t => t.closest('.cell_output')).length,
              };
            }"""
        )
    finally:
        tab.close()
    assert counts["onOutputs"] == 0
    assert counts["onInputs"] == counts["inputs"] > 0


def _encodings(spec: Any) -> list[dict[str, Any]]:
    """Every x and y encoding anywhere in a (possibly layered or repeated) spec."""
    found: list[dict[str, Any]] = []
    if isinstance(spec, dict):
        for channel in ("x", "y"):
            encoding = spec.get("encoding", {}).get(channel)
            if isinstance(encoding, dict):
                found.append(encoding)
        for value in spec.values():
            found.extend(_encodings(value))
    elif isinstance(spec, list):
        for value in spec:
            found.extend(_encodings(value))
    return found


def test_encodings_finds_axes_inside_repeat_and_layer() -> None:
    spec = {
        "repeat": {"layer": ["a"]},
        "spec": {"encoding": {"x": {"title": "X (s)"}, "color": {}}},
        "layer": [{"encoding": {"y": {"title": "Y (MB)"}}}],
    }
    assert _encodings(spec) == [{"title": "X (s)"}, {"title": "Y (MB)"}]


@pytest.mark.docs
@pytest.mark.parametrize("page", EXECUTED_PAGES)
def test_every_chart_has_a_title_a_caption_and_axes_with_units(built_book: Path, page: str) -> None:
    html = (built_book / f"{page}.html").read_text(encoding="utf-8")
    charts = re.findall(
        r'<figure class="livekit-chart">\s*<div class="livekit-vega"[^>]*>'
        r'<script type="application/json">(.*?)</script></div>(.*?)</figure>',
        html,
        re.DOTALL,
    )
    assert charts, f"{page} draws no chart"
    for payload, tail in charts:
        spec = json.loads(payload.replace("<\\/", "</"))
        assert spec.get("title"), f"{page}: a chart without a title"
        assert "<figcaption>" in tail, f"{page}: chart {spec['title']!r} has no caption"
        for axis in _encodings(spec):
            title = axis.get("title", "")
            assert title, f"{page}: an axis of {spec['title']!r} has no title"
            if "memory" in title.lower():
                assert "(MB)" in title or "(bytes)" in title, f"{page}: {title!r} gives no unit"
            if "cpu time" in title.lower():
                assert "(s)" in title, f"{page}: {title!r} gives no unit"


@pytest.mark.docs
@pytest.mark.parametrize("page", EXECUTED_PAGES)
def test_every_diagram_has_a_caption(built_book: Path, page: str) -> None:
    html = (built_book / f"{page}.html").read_text(encoding="utf-8")
    diagrams = html.count('<pre  class="mermaid">') + html.count('<pre class="mermaid">')
    captioned = len(
        re.findall(
            r'<figure class="livekit-diagram[^"]*"[^>]*>\s*<pre\s+class="mermaid">.*?'
            r"<figcaption>",
            html,
            re.DOTALL,
        )
    )
    assert diagrams == captioned
