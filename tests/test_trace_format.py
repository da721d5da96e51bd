"""The sequence-diagram formatter, fed hand-made events: exact Mermaid text."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from livekit.trace import format as trace_format
from livekit.trace._compact import expand
from livekit.trace.events import MAX_LABEL, Activation, Exit, Message, Participant, Spawn
from livekit.trace.format import (
    default_caption,
    describe,
    escape,
    participants_in_order,
    sequence_diagram,
    shorten,
)
from tests.conftest import mermaid_page

CALLER = Participant(0, "caller (MainThread)", "caller")
PONG = Participant(1, "Thread-1 (pong)", "thread")
WORKER = Participant(2, "ThreadPoolExecutor-0_0", "thread")


def test_ping_pong_diagram_is_exact() -> None:
    events = [
        Spawn(CALLER, PONG),
        Message(CALLER, PONG, "'ping'"),
        Message(PONG, CALLER, "'pong'"),
        Exit(PONG, "normal"),
    ]
    assert sequence_diagram(CALLER, events) == (
        "sequenceDiagram\n"
        "    participant p0 as caller (MainThread)\n"
        "    participant p1 as Thread-1 (pong)\n"
        "    p0->>p1: SPAWN\n"
        "    activate p1\n"
        "    p0->>p1: 'ping'\n"
        "    p1->>p0: 'pong'\n"
        "    Note over p1: EXIT: normal\n"
        "    deactivate p1"
    )


def test_calls_are_solid_and_replies_dashed_with_their_prefix() -> None:
    events = [
        Message(CALLER, WORKER, "work(1)", "call"),
        Message(WORKER, CALLER, "raised ValueError", "reply"),
    ]
    assert sequence_diagram(CALLER, events) == (
        "sequenceDiagram\n"
        "    participant p0 as caller (MainThread)\n"
        "    participant p2 as ThreadPoolExecutor-0_0\n"
        "    p0->>p2: CALL: work(1)\n"
        "    p2-->>p0: REPLY: raised ValueError"
    )


def test_a_pick_up_starts_the_workers_bar_and_the_end_after_its_reply_ends_it() -> None:
    events = [
        Message(CALLER, WORKER, "work(1)", "call"),
        Message(CALLER, WORKER, "work(2)", "call"),
        Activation(WORKER),
        Message(WORKER, CALLER, "1", "reply"),
        Activation(WORKER, ends=True),
        Activation(WORKER),
        Message(WORKER, CALLER, "2", "reply"),
        Activation(WORKER, ends=True),
    ]
    assert sequence_diagram(CALLER, events).splitlines()[3:] == [
        "    p0->>p2: CALL: work(1)",
        "    p0->>p2: CALL: work(2)",
        "    activate p2",
        "    p2-->>p0: REPLY: 1",
        "    deactivate p2",
        "    activate p2",
        "    p2-->>p0: REPLY: 2",
        "    deactivate p2",
    ]


def test_an_end_of_work_whose_pick_up_was_not_drawn_ends_no_bar() -> None:
    # Mermaid refuses "deactivate" of an inactive participant.
    events = [
        Message(CALLER, WORKER, "work(1)", "call"),
        Message(WORKER, CALLER, "1", "reply"),
        Activation(WORKER, ends=True),
    ]
    assert "deactivate" not in sequence_diagram(CALLER, events)


def test_a_spawned_workers_pick_up_nests_in_its_spawn_bar() -> None:
    events = [
        Spawn(CALLER, WORKER),
        Activation(WORKER),
        Activation(WORKER, ends=True),
        Activation(WORKER, ends=True),  # one end too many: not drawn
        Exit(WORKER, "normal"),
    ]
    assert sequence_diagram(CALLER, events).splitlines()[3:] == [
        "    p0->>p2: SPAWN",
        "    activate p2",
        "    activate p2",
        "    deactivate p2",
        "    Note over p2: EXIT: normal",
        "    deactivate p2",
    ]


def test_a_trace_with_no_events_declares_only_the_caller() -> None:
    assert sequence_diagram(CALLER, []) == (
        "sequenceDiagram\n    participant p0 as caller (MainThread)"
    )


def test_participants_are_declared_in_order_of_first_appearance() -> None:
    a, b, c = (Participant(k, name, "thread") for k, name in [(5, "a"), (3, "b"), (9, "c")])
    events = [Message(b, c, "x"), Spawn(CALLER, a), Message(a, b, "y")]
    assert [p.name for p in participants_in_order(CALLER, events)] == [
        "caller (MainThread)",
        "b",
        "c",
        "a",
    ]
    lines = sequence_diagram(CALLER, events).splitlines()
    assert lines[1:5] == [
        "    participant p0 as caller (MainThread)",
        "    participant p3 as b",
        "    participant p9 as c",
        "    participant p5 as a",
    ]


def test_exit_without_a_recorded_spawn_does_not_end_a_bar_that_never_began() -> None:
    # Mermaid refuses "deactivate" of an inactive participant.
    text = sequence_diagram(CALLER, [Message(CALLER, PONG, "1"), Exit(PONG, "KeyError")])
    assert text.endswith("    p0->>p1: 1\n    Note over p1: EXIT: KeyError")


def test_a_cut_trace_ends_with_a_note_over_all_participants() -> None:
    text = sequence_diagram(CALLER, [Message(CALLER, PONG, "1")], omitted=41)
    assert text.splitlines()[-1] == (
        "    Note over p0,p1: 41 more messages not shown (max_messages)"
    )


def test_a_cut_trace_of_the_caller_alone_says_message_in_the_singular() -> None:
    text = sequence_diagram(CALLER, [], omitted=1)
    assert text.splitlines()[-1] == "    Note over p0: 1 more message not shown (max_messages)"


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a;b", "a#59;b"),
        ("#1", "#35;1"),
        ('say "hi"', "say #quot;hi#quot;"),
        ("it's", "it's"),
        ("a<br>b", "a#lt;br#gt;b"),
        ("x > y", "x #gt; y"),
        ("line1\nline2", "line1#10;line2"),
        ("tab\there", "tab#9;here"),
        ("héllo 日本 🎉", "héllo 日本 🎉"),
        ("100%% done", "100#37;#37; done"),
        ("a&amp;b", "a#amp;amp#59;b"),
        ("#35;", "#35;35#59;"),
    ],
)
def test_escape_writes_entity_codes_for_mermaid_syntax(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped


def test_participant_names_are_escaped() -> None:
    odd = Participant(1, 'worker; #2 "<x>"\nnext', "thread")
    text = sequence_diagram(CALLER, [Spawn(CALLER, odd)])
    assert "    participant p1 as worker#59; #35;2 #quot;#lt;x#gt;#quot;#10;next" in text


def test_labels_and_exit_reasons_are_escaped() -> None:
    text = sequence_diagram(CALLER, [Message(CALLER, PONG, "a;b"), Exit(PONG, "x#y")])
    assert "    p0->>p1: a#59;b" in text
    assert "    Note over p1: EXIT: x#35;y" in text


def test_a_run_of_messages_between_the_same_two_is_escaped_label_by_label() -> None:
    """Clean labels stay as they are beside one that needs escaping, in one run."""
    labels = ["1", "'wr", "ap: x'", "wrap: y", "a|b", "-2"]
    text = sequence_diagram(CALLER, [Message(CALLER, PONG, label) for label in labels])
    assert text.splitlines()[3:] == [
        "    p0->>p1: 1",
        "    p0->>p1: 'wr",
        "    p0->>p1: ap: x'",
        "    p0->>p1: wrap#58; y",
        "    p0->>p1: a#124;b",
        "    p0->>p1: -2",
    ]


def test_runs_of_messages_keep_their_order_and_starts() -> None:
    events = [
        Message(CALLER, PONG, "1"),
        Message(CALLER, PONG, "2"),
        Message(PONG, CALLER, "3", "reply"),
        Exit(PONG, "normal"),
        Message(PONG, CALLER, "4", "reply"),
        Message(CALLER, PONG, "5", "call"),
    ]
    assert sequence_diagram(CALLER, events).splitlines()[3:] == [
        "    p0->>p1: 1",
        "    p0->>p1: 2",
        "    p1-->>p0: REPLY: 3",
        "    Note over p1: EXIT: normal",
        "    p1-->>p0: REPLY: 4",
        "    p0->>p1: CALL: 5",
    ]


def test_shorten_keeps_short_text_and_cuts_long_text_with_an_ellipsis() -> None:
    assert shorten("x" * MAX_LABEL) == "x" * MAX_LABEL
    assert shorten("x" * (MAX_LABEL + 1)) == "x" * (MAX_LABEL - 1) + "…"


def test_describe_cuts_a_long_string_in_its_middle_as_reprlib_does() -> None:
    assert describe("a" * 1000) == "'" + "a" * 17 + "..." + "a" * 18 + "'"


def test_describe_cuts_a_long_repr_with_an_ellipsis() -> None:
    class Wordy:
        def __repr__(self) -> str:
            return "Wordy(" + "x" * 100 + ")"

    assert describe(Wordy()) == "Wordy(" + "x" * 33 + "…"


def test_describe_labels_a_message_whose_repr_raises() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    assert describe(Broken()) == "<Broken: repr raised RuntimeError>"


def test_describe_uses_message_label_and_none_keeps_the_default() -> None:
    def label(message: Any) -> str | None:
        return f"#{message}" if isinstance(message, int) else None

    assert describe(7, label) == "#7"
    assert describe("seven", label) == "'seven'"


def test_describe_survives_a_message_label_that_raises() -> None:
    def label(message: Any) -> str:
        raise KeyError(message)

    assert describe(1, label) == "<message_label raised KeyError>"


def test_default_caption_counts_messages_starts_and_omissions() -> None:
    events = [Spawn(CALLER, PONG), Message(CALLER, PONG, "1"), Message(PONG, CALLER, "2")]
    assert default_caption("ping_pong", events, omitted=3) == (
        "Messages exchanged while ping_pong ran: 2 messages and 1 start, and 3 more not shown."
    )


SPECIAL_LABELS = [
    "a;b",
    "#1",
    'say "hi"',
    "<b>bold?</b> a<br>b",
    "x > y",
    "line1\nline2",
    "héllo 日本 🎉",
    "100%% done",
    "a&amp;b",
    "#35;",
    "{'a': 1}",
]


@pytest.mark.browser
def test_mermaid_draws_every_escaped_label_and_name_as_it_was(browser: Any, tmp_path: Path) -> None:
    """The real parser: each label comes back, character for character."""
    page_file = mermaid_page(tmp_path)
    page = browser.new_page()
    try:
        page.goto(page_file.as_uri())
        for number, label in enumerate(SPECIAL_LABELS):
            who = Participant(1, label, "thread")
            source = sequence_diagram(CALLER, [Message(CALLER, who, label)])
            drawn = page.evaluate(
                """async ([id, source]) => {
                    const {svg} = await mermaid.render(id, source);
                    const box = document.createElement('div');
                    box.innerHTML = svg;
                    return {
                        messages: [...box.querySelectorAll('.messageText')].map(e => e.textContent),
                        actors: [...box.querySelectorAll('text.actor')].map(e => e.textContent),
                    };
                }""",
                [f"d{number}", source],
            )
            # Mermaid draws a newline as a line break: two text nodes.
            expected = label.replace("\n", "")
            assert [m.replace("\n", "") for m in drawn["messages"]] == [expected]
            assert expected in [a.replace("\n", "") for a in drawn["actors"]]
    finally:
        page.close()


# The participants of the random traces below: names Mermaid must escape
# among them, and a key far from the others.
MIXED_PEOPLE = [
    CALLER,
    PONG,
    WORKER,
    Participant(3, "x;y #1", "task"),
    Participant(300, "far", "process"),
]


def test_compact_queue_messages_are_drawn_as_their_messages_would_be() -> None:
    """A trace keeps queue messages as (sender key, receiver key, label, time, sent).

    Mixed with every other kind of event, in random runs, they give the
    very text (and caption) that their Messages give.
    """
    people = MIXED_PEOPLE
    by_key = {p.key: p for p in people}
    labels = ["1", "'ping'", "a;b", "#x", "%%{init}%%", "<b>", "é", "end", "x" * MAX_LABEL]
    chance = random.Random(13)  # noqa: S311 - the same cases on every run, not secrets
    for _ in range(300):
        records: list[Any] = []
        for _ in range(chance.randrange(0, 30)):
            a, b = chance.choice(people[:3]), chance.choice(people)
            label = chance.choice(labels)
            roll = chance.random()
            if roll < 0.5:
                records.extend([(a.key, b.key, label, 2.0, 1.0)] * chance.randrange(1, 4))
            elif roll < 0.7:
                kind = chance.choice(["send", "call", "reply"])
                records.append(Message(a, b, label, kind, 2.0, 1.0))
            elif roll < 0.8:
                records.append(Spawn(a, b))
            elif roll < 0.9:
                records.append(Exit(b, label))
            else:
                records.append(Activation(b, ends=chance.random() < 0.5))
        omitted = chance.choice([0, 0, 1, 7])
        events = expand(records, by_key)
        assert all(type(e) is not tuple for e in events)
        assert trace_format._diagram(CALLER, records, by_key, omitted) == sequence_diagram(
            CALLER, events, omitted
        )
        assert trace_format._caption("t", records, omitted) == default_caption("t", events, omitted)


def test_a_ping_pong_escapes_the_one_label_that_needs_it_compact_or_not() -> None:
    """Every message turns: each is a run of one, its label looked at with all the others."""
    a, b = Participant(0, "a", "caller"), Participant(1, "b", "thread")
    for records in (
        [(0, 1, "'1'", 0.0, 0.0), (1, 0, "'<b>'", 0.0, 0.0), (0, 1, "'3'", 0.0, 0.0)],
        [Message(a, b, "'1'"), Message(b, a, "'<b>'"), Message(a, b, "'3'")],
    ):
        drawn = trace_format._diagram(a, records, {0: a, 1: b}, 0)
        assert drawn.splitlines()[3:] == [
            "    p0->>p1: '1'",
            "    p1->>p0: '#lt;b#gt;'",
            "    p0->>p1: '3'",
        ]


def _line_by_line(caller: Participant, events: list[Any], omitted: int) -> str:
    """The diagram made from the small functions alone, one event at a time."""
    order = trace_format.participants_in_order(caller, events)
    lines = ["sequenceDiagram", *map(trace_format.participant_line, order)]
    lines += [line for line in map(trace_format.full_name_line, order) if line is not None]
    active: set[int] = set()
    busy: dict[int, int] = {}
    for event in events:
        if isinstance(event, Spawn):
            active.add(event.child.key)
            lines += trace_format.spawn_lines(event)
        elif isinstance(event, Message):
            lines.append(trace_format.message_line(event))
        elif isinstance(event, Activation):
            line = trace_format.activation_line(event, busy)
            lines += [line] if line is not None else []
        else:
            lines += trace_format.exit_lines(event, event.who.key in active)
            active.discard(event.who.key)
    if omitted:
        lines.append(trace_format.omitted_line(omitted, order[0], order[-1]))
    return "\n".join(lines)


def test_the_written_out_diagram_is_the_one_its_small_functions_make() -> None:
    """Runs, pairs that turn back, compact records among Messages: line for line the same."""
    people = MIXED_PEOPLE
    by_key = {p.key: p for p in people}
    labels = ["1", "'ping'", "a;b", "<b>", "é", "wrap: x", "end"]
    chance = random.Random(7)  # noqa: S311 - the same cases on every run, not secrets
    for _ in range(500):
        records: list[Any] = []
        for _ in range(chance.randrange(0, 40)):
            a, b = chance.choice(people[:3]), chance.choice(people[:3])
            label = chance.choice(labels if chance.random() < 0.2 else labels[:1] + labels[-1:])
            roll = chance.random()
            if roll < 0.5:
                records.append((a.key, b.key, label, 2.0, 1.0))
            elif roll < 0.9:
                kind = chance.choice(["send", "send", "reply"])
                records.append(Message(a, b, label, kind, 2.0, 1.0))
            elif roll < 0.95:
                records.append(Spawn(a, b))
            else:
                records.append(Exit(b, label))
        events = expand(records, by_key)
        assert trace_format._diagram(CALLER, records, by_key, 1) == _line_by_line(
            CALLER, list(events), 1
        )
