"""One escaping for every label of every diagram, checked in the vendored mermaid.

Each awkward name goes through the real formatters (a tree's nodes and
edges, a supervisor's children, the interpreter's threads, a sequence
diagram's participants, messages and notes) and is drawn by mermaid in
chromium: it must parse, change no configuration, and show as written.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from livekit import Supervisor, app_tree, child, sup_tree
from livekit._labels import MAX_NAME, escape, needs_escape, short_name, visible
from livekit.trace.events import Exit, Message, Participant, Spawn
from livekit.trace.format import sequence_diagram
from livekit.trees import TreeNode, format_tree
from tests.conftest import mermaid_page

pytestmark = pytest.mark.usefixtures("no_thread_left_behind")

AWKWARD = [
    "say \"hi\" and 'bye'",
    "a;b",
    "#1 and #35;",
    "100%% done",
    "%%{init: {'theme':'dark'}}%%",
    "%% a comment",
    "a-->b ->> c",
    "a & b",
    "a &amp; b &lt;",
    "`**md**`",
    "**bold** _it_",
    "<b>html</b><br>x<script>alert(1)</script>",
    "line one\nline two",
    "carriage\rreturn",
    "nul\x00byte",
    "esc\x1b[31mred",
    "line\u2028separator",
    "emoji 🎉 日本",
    "end",
    "pipe | and (brackets) [x] {y}",
    "wrap: me",
    ":nowrap:too",
    "n" * 300,
]

# Control characters without a visible form are written as Python writes them.
_WRITTEN = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]}
del _WRITTEN[ord("\n")], _WRITTEN[ord("\t")]


def shown(label: str) -> str:
    """What the drawing must show for ``label``."""
    return label.translate(_WRITTEN)


def test_escape_writes_every_syntax_character_as_an_entity_code() -> None:
    assert escape('"#;%<>&|`\n\t\u2028\u2029') == (
        "#quot;#35;#59;#37;#lt;#gt;#amp;#124;#96;#10;#9;#8232;#8233;"
    )
    assert escape("nul\x00 esc\x1b cr\r del\x7f nel\x85") == (
        "nul\\x00 esc\\x1b cr\\x0d del\\x7f nel\\x85"
    )


def test_escape_changes_exactly_the_characters_it_must() -> None:
    must = set('#;%<>&"|`\u2028\u2029') | {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]}
    for code in [*range(0x3000), 0x1F389, 0x10FFFF]:
        char = chr(code)
        assert (escape(f"a{char}b") != f"a{char}b") == (char in must), hex(code)


def test_visible_writes_out_every_control_character_for_a_terminal() -> None:
    assert visible("a\nb\tc\x1b[0m\x00") == "a\\x0ab\\x09c\\x1b[0m\\x00"
    assert visible("plain é 🎉 | ; #") == "plain é 🎉 | ; #"


def test_tree_nodes_and_edges_escape_the_same_way() -> None:
    tree = TreeNode("%%{x}%%", "root", children=[TreeNode("`b`", "worker", "a (b) & c")])
    assert format_tree(tree).splitlines()[1:3] == [
        '  n0["#37;#37;{x}#37;#37;"]:::root',
        '  n0 -->|"a (b) #amp; c"| n1["#96;b#96;"]:::worker',
    ]


def test_sequence_names_messages_and_notes_escape_the_same_way() -> None:
    odd = Participant(1, "%%{x}%%", "thread")
    text = sequence_diagram(odd, [Message(odd, odd, "`b` & c"), Exit(odd, "a|b")])
    assert text.splitlines()[1:] == [
        "    participant p1 as #37;#37;{x}#37;#37;",
        "    p1->>p1: #96;b#96; #amp; c",
        "    Note over p1: EXIT: a#124;b",
    ]


def test_a_very_long_node_name_is_shortened_and_kept_whole_as_its_tooltip() -> None:
    name = "worker-" + "x" * 100 + "-7"
    tree = TreeNode("pool", "root", children=[TreeNode(name, "worker", "owns")])
    short = "worker-" + "x" * 45 + "…" + "x" * 25 + "-7"
    assert len(short) == MAX_NAME
    assert format_tree(tree).splitlines()[1:4] == [
        '  n0["pool"]:::root',
        f'  n0 -->|owns| n1["{short}"]:::worker',
        f'  click n1 call String() "{name}"',
    ]


def test_a_very_long_participant_name_is_shortened_with_a_note_holding_it_whole() -> None:
    name = "Thread-" + "y" * 100
    caller, odd = Participant(0, "caller", "caller"), Participant(1, name, "thread")
    assert sequence_diagram(caller, [Message(caller, odd, "'hi'")]).splitlines() == [
        "sequenceDiagram",
        "    participant p0 as caller",
        f"    participant p1 as Thread-{'y' * 45}…{'y' * 27}",
        f"    Note over p1: wrap: {name}",
        "    p0->>p1: 'hi'",
    ]


# ── in the vendored mermaid ──────────────────────────────────────────

_DRAW = """async ([id, source]) => {
    const {svg} = await mermaid.render(id, source);
    const box = document.createElement('div');
    box.innerHTML = svg;
    const texts = selector => [...box.querySelectorAll(selector)].map(e => e.textContent);
    const style = box.querySelector('style');
    return {
        nodes: texts('.node .nodeLabel'),
        titles: [...box.querySelectorAll('.node')].map(e => e.getAttribute('title')),
        edges: texts('.edgeLabel .edgeLabel, .edgeLabel p'),
        actors: texts('text.actor'),
        messages: texts('.messageText'),
        notes: texts('.noteText'),
        style: style ? style.textContent.replaceAll(id, 'ID') : '',
    };
}"""


class Mermaid:
    """The vendored mermaid in a chromium page."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.count = 0

    def draw(self, source: str) -> dict[str, Any]:
        self.count += 1
        drawn: dict[str, Any] = self.page.evaluate(_DRAW, [f"d{self.count}", source])
        return drawn


@pytest.fixture
def mermaid(browser: Any, tmp_path: Path) -> Any:
    page = browser.new_page()
    try:
        page.goto(mermaid_page(tmp_path).as_uri())
        yield Mermaid(page)
    finally:
        page.close()


@pytest.mark.browser
def test_every_awkward_label_is_drawn_as_written_in_a_tree(mermaid: Mermaid) -> None:
    plain = mermaid.draw(format_tree(TreeNode("plain", "root")))
    for label in AWKWARD:
        tree = TreeNode(label, "root", children=[TreeNode("x", "worker", edge=label)])
        drawn = mermaid.draw(format_tree(tree))
        assert drawn["nodes"] == [shown(short_name(label)), "x"], label
        # A shortened name stays whole in the drawing, as its box's tooltip.
        assert drawn["titles"] == [shown(label) if len(label) > MAX_NAME else None, None]
        assert set(drawn["edges"]) == {shown(label)}, label
        # A directive in a label is text, not configuration: same theme, same styles.
        assert drawn["style"] == plain["style"], label


@pytest.mark.browser
def test_every_awkward_name_is_drawn_as_written_in_a_sequence_diagram(mermaid: Mermaid) -> None:
    caller = Participant(0, "caller", "caller")
    plain = mermaid.draw(sequence_diagram(caller, [Message(caller, caller, "x")]))
    for label in AWKWARD:
        odd = Participant(1, label, "thread")
        events = [Spawn(caller, odd), Message(odd, caller, label), Exit(odd, label)]
        drawn = mermaid.draw(sequence_diagram(caller, events))
        assert shown(short_name(label)) in drawn["actors"], label
        assert drawn["messages"] == ["SPAWN", shown(label)], label
        assert drawn["notes"][-1] == f"EXIT: {shown(label)}", label
        # A shortened name stays whole in the drawing, in a note under it
        # that mermaid wraps (breaking a long word with a hyphen).
        whole = "".join(line.removesuffix("-") for line in drawn["notes"][:-1])
        assert whole == (shown(label) if len(label) > MAX_NAME else ""), label
        assert drawn["style"] == plain["style"], label


@pytest.mark.browser
def test_supervisor_children_with_awkward_names_are_drawn_as_written(mermaid: Mermaid) -> None:
    children = [child(lambda: None, name=label, restart="temporary") for label in AWKWARD]
    directive = "%%{init: {'theme':'dark'}}%%"
    drawn = mermaid.draw(str(sup_tree(Supervisor(children, name=directive))))
    plain = mermaid.draw(str(sup_tree(Supervisor([child(lambda: None, name="w")], name="s"))))
    names = [shown(short_name(label)) for label in AWKWARD]
    assert drawn["nodes"] == [shown(f"{directive} (one_for_one)"), *names]
    assert drawn["style"] == plain["style"]


@pytest.mark.browser
def test_threads_with_awkward_names_are_drawn_as_written_in_the_interpreter_tree(
    mermaid: Mermaid,
) -> None:
    release = threading.Event()
    threads = [threading.Thread(target=release.wait, name=label) for label in AWKWARD]
    for thread in threads:
        thread.start()
    try:
        drawn = mermaid.draw(str(app_tree(None)))
    finally:
        release.set()
        for thread in threads:
            thread.join()
    for label in AWKWARD:
        assert shown(short_name(label)) in drawn["nodes"], label


def test_needs_escape_says_whether_escape_changes_the_text() -> None:
    """Every character below U+3000, alone, among ASCII and among other text."""
    for code in range(0x3000):
        char = chr(code)
        for text in (char, f"ab{char}cd", f"é{char}", f"{char}wrap"):
            assert needs_escape(text) == (escape(text) != text), repr(text)
    # A "wrap:" anywhere may begin one of the labels joined: looked at again.
    assert needs_escape("x wrap: y")
    assert not needs_escape("wrap me")
