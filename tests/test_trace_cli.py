"""``livekit trace``: a real script, run by a real interpreter, in each format."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from livekit.trace.events import Activation, Exit, Message, Participant, Spawn
from livekit.trace.text import sequence_text
from tests.conftest import mermaid_page

ROOT = Path(__file__).resolve().parent.parent

# Threads passing a queue, and asyncio tasks passing an asyncio.Queue.
SCRIPT = """\
import asyncio, queue, sys, threading

inbox, outbox = queue.Queue(), queue.Queue()

def pong():
    outbox.put(inbox.get().upper())

worker = threading.Thread(target=pong, name="pong")
worker.start()
inbox.put("ping")
print("got", outbox.get())
worker.join()

async def doubler(numbers):
    return await numbers.get() * 2

async def main():
    numbers = asyncio.Queue()
    task = asyncio.create_task(doubler(numbers), name="doubler")
    await numbers.put(21)
    print("task", await task)

asyncio.run(main())
print("args", sys.argv[1:], file=sys.stderr)
"""

# (sender, receiver, label) of every arrow the script draws, in order.
ARROWS = [
    ("caller (MainThread)", "pong", "SPAWN"),
    ("caller (MainThread)", "pong", "'ping'"),
    ("pong", "caller (MainThread)", "'PING'"),
    ("caller (MainThread)", "Task-1 (main)", "SPAWN"),
    ("Task-1 (main)", "doubler", "SPAWN"),
    ("Task-1 (main)", "doubler", "21"),
    ("doubler", "Task-1 (main)", "REPLY: 42"),
    ("Task-1 (main)", "caller (MainThread)", "REPLY: None"),
]


def livekit_trace(
    tmp_path: Path, *args: str, script: str = SCRIPT
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "job.py"
    path.write_text(script, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "livekit", "trace", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_output_the_script_runs_as_itself_and_the_trace_is_drawn_as_text(
    tmp_path: Path,
) -> None:
    done = livekit_trace(tmp_path, "job.py", "--verbose", "-o", "x")
    assert done.returncode == 0, done.stderr
    # The script's own output, and its own argv, untouched.
    assert done.stdout == "got PING\ntask 42\n"
    assert "args ['--verbose', '-o', 'x']\n" in done.stderr
    drawing = done.stderr.split("args ['--verbose', '-o', 'x']\n", 1)[1]
    assert drawing == textwrap.dedent(
        """\
        Messages exchanged while job.py ran: 5 messages and 3 starts.

        caller (MainThread) → pong               : SPAWN
        caller (MainThread) → pong               : 'ping'
        pong                → caller (MainThread): 'PING'
        pong                : EXIT: normal
        caller (MainThread) → Task-1 (main)      : SPAWN
        Task-1 (main)       → doubler            : SPAWN
        Task-1 (main)       → doubler            : 21
        doubler             ⇢ Task-1 (main)      : REPLY: 42
        doubler             : EXIT: normal
        Task-1 (main)       ⇢ caller (MainThread): REPLY: None
        Task-1 (main)       : EXIT: normal

        Save it as a page: livekit trace -o trace.html job.py --verbose -o x
        """
    )


def test_a_json_trace_is_trace_event_format_with_a_flow_for_every_message(
    tmp_path: Path,
) -> None:
    done = livekit_trace(tmp_path, "-o", "trace.json", "job.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "got PING\ntask 42\n"
    document = json.loads((tmp_path / "trace.json").read_text(encoding="utf-8"))
    events = document["traceEvents"]
    names = {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in events
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    # One track per thread and task.
    assert sorted(names.values()) == sorted(
        ["caller (MainThread)", "pong", "Task-1 (main)", "doubler"]
    )
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert starts.keys() == ends.keys()
    slices = {(e["pid"], e["tid"], e["ts"]) for e in events if e["ph"] == "X"}
    flows = []
    for flow_id, start in sorted(starts.items()):
        end = ends[flow_id]
        assert end["bp"] == "e"
        assert start["name"] == end["name"]
        assert start["ts"] <= end["ts"]
        # Each end sits in a slice on its own track, where Perfetto binds it.
        assert (start["pid"], start["tid"], start["ts"]) in slices
        assert (end["pid"], end["tid"], end["ts"]) in slices
        track = (start["pid"], start["tid"]), (end["pid"], end["tid"])
        flows.append((names[track[0]], names[track[1]], start["name"]))
    assert flows == [arrow for arrow in ARROWS if arrow[2] != "SPAWN"]
    instants = [(names[(e["pid"], e["tid"])], e["name"]) for e in events if e["ph"] == "i"]
    assert ("caller (MainThread)", "SPAWN pong") in instants
    assert ("pong", "EXIT: normal") in instants
    assert ("doubler", "EXIT: normal") in instants
    assert document["otherData"]["omitted_messages"] == 0


def test_an_mmd_trace_is_the_mermaid_source_with_its_caption(tmp_path: Path) -> None:
    done = livekit_trace(tmp_path, "-o", "trace.mmd", "--caption", "Ping, then a task", "job.py")
    assert done.returncode == 0, done.stderr
    source = (tmp_path / "trace.mmd").read_text(encoding="utf-8")
    assert source.startswith("%% Ping, then a task\nsequenceDiagram\n")
    assert "livekit trace: wrote 11 events to trace.mmd" in done.stderr


def test_a_script_that_raises_still_writes_its_partial_trace_then_exits_1(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """\
        import queue, threading
        inbox = queue.Queue()
        worker = threading.Thread(target=inbox.get, name="worker")
        worker.start()
        inbox.put("last words")
        worker.join()
        raise LookupError("no such thing")
        """
    )
    done = livekit_trace(tmp_path, "-o", "trace.mmd", "job.py", script=script)
    assert done.returncode == 1
    assert "LookupError: no such thing" in done.stderr
    source = (tmp_path / "trace.mmd").read_text(encoding="utf-8")
    assert "p0->>p1: 'last words'" in source


def test_the_scripts_exit_status_is_the_commands(tmp_path: Path) -> None:
    script = "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)\n"
    done = livekit_trace(tmp_path, "job.py", script=script)
    assert (done.returncode, done.stdout) == (3, "out\n")
    assert done.stderr.startswith("err\n")


def test_a_module_runs_with_dash_m_as_python_runs_it(tmp_path: Path) -> None:
    (tmp_path / "pinger.py").write_text(SCRIPT, encoding="utf-8")
    done = livekit_trace(tmp_path, "-o", "trace.json", "-m", "pinger", "extra")
    assert done.returncode == 0, done.stderr
    assert "args ['extra']" in done.stderr
    assert json.loads((tmp_path / "trace.json").read_text())["traceEvents"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-o", "trace.png", "job.py"],
            "expected -o to end in .html, .mmd, .json, got 'trace.png'",
        ),
        (["missing.py"], "expected a Python script, got 'missing.py': no such file"),
        ([], "expected a script to run (livekit trace script.py, or -m module)"),
        (
            ["--max-messages", "0", "job.py"],
            "expected --max-messages to be a positive number, got 0",
        ),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = livekit_trace(tmp_path, *args, script="print('ran')\n")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"livekit trace: {message}\n"


def test_the_console_script_is_the_same_command(tmp_path: Path) -> None:
    command = Path(sys.executable).with_name("livekit")
    (tmp_path / "job.py").write_text("print('hello')\n", encoding="utf-8")
    done = subprocess.run(
        [str(command), "trace", "job.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "hello\n")
    assert done.stderr.startswith("Messages exchanged while job.py ran: none were recorded.")


# -- the terminal drawing, from hand-made events ---------------------------

MAIN = Participant(0, "caller (MainThread)", "caller")


def test_names_too_wide_for_the_terminal_are_not_aligned() -> None:
    long = Participant(1, "w" * 60, "thread")
    events = [Spawn(MAIN, long), Message(long, MAIN, "1", "reply"), Exit(long, "normal")]
    assert sequence_text(events, width=80) == (
        f"caller (MainThread) → {'w' * 60}: SPAWN\n"
        f"{'w' * 60} ⇢ caller (MainThread): REPLY: 1\n"
        f"{'w' * 60} : EXIT: normal"
    )


def test_control_characters_are_shown_not_sent_to_the_terminal() -> None:
    evil = Participant(1, "\x1b[2Jname", "thread")
    text = sequence_text([Message(MAIN, evil, "a\nb\x07")])
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\n" not in text
    assert text.endswith("\\x1b[2Jname: a\\x0ab\\x07")


def test_messages_not_kept_are_counted_on_a_last_line() -> None:
    worker = Participant(1, "worker", "thread")
    assert sequence_text([Message(MAIN, worker, "1")], omitted=499) == (
        "caller (MainThread) → worker: 1\n… and 499 more messages, not recorded (max_messages)"
    )


# -- in a browser: the page and the source draw ---------------------------


def _arrows_drawn(page: Any) -> list[str]:
    page.wait_for_function("() => document.querySelector('pre.mermaid svg')", timeout=30_000)
    return page.evaluate(
        "() => [...document.querySelectorAll('pre.mermaid svg .messageText')]"
        ".map(e => e.textContent)"
    )


@pytest.mark.browser
def test_an_html_trace_opens_from_disk_and_draws_every_arrow(tmp_path: Path, browser: Any) -> None:
    done = livekit_trace(tmp_path, "-o", "trace.html", "job.py")
    assert done.returncode == 0, done.stderr
    page = browser.new_page()
    errors: list[str] = []
    remote: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: remote.append(r.url) if not r.url.startswith("file:") else None)
    try:
        page.goto((tmp_path / "trace.html").as_uri())
        labels = _arrows_drawn(page)
        caption = page.locator("figcaption").inner_text()
        buttons = page.locator("figure button").all_inner_texts()
    finally:
        page.close()
    assert labels == [label for _, _, label in ARROWS]
    assert caption == "Messages exchanged while job.py ran: 5 messages and 3 starts."
    assert len(buttons) >= 2
    assert errors == []
    assert remote == []


@pytest.mark.browser
def test_an_mmd_trace_parses_in_the_vendored_mermaid(tmp_path: Path, browser: Any) -> None:

    done = livekit_trace(tmp_path, "-o", "trace.mmd", "job.py")
    assert done.returncode == 0, done.stderr
    page_file = mermaid_page(tmp_path)
    page = browser.new_page()
    try:
        page.goto(page_file.as_uri())
        drawn = page.evaluate(
            """async (source) => {
                await mermaid.parse(source);
                const {svg} = await mermaid.render('trace', source);
                const box = document.createElement('div');
                box.innerHTML = svg;
                return [...box.querySelectorAll('.messageText')].map(e => e.textContent);
            }""",
            (tmp_path / "trace.mmd").read_text(encoding="utf-8"),
        )
    finally:
        page.close()
    assert drawn == [label for _, _, label in ARROWS]


def test_tracks_group_messages_by_participant_in_the_json(tmp_path: Path) -> None:
    """A child process gets a process track of its own."""
    import io

    from livekit.trace.export import write_trace_events

    child = Participant(1, "Process-1", "process")
    out = io.StringIO()
    write_trace_events([Message(MAIN, child, "'x'", time=1.0)], out)
    lines = json.loads(out.getvalue())["traceEvents"]
    by_pid: dict[int, set[str]] = defaultdict(set)
    for event in lines:
        if event["ph"] == "M" and event["name"] == "thread_name":
            by_pid[event["pid"]].add(event["args"]["name"])
    assert dict(by_pid) == {1: {"caller (MainThread)"}, 2: {"Process-1"}}


POOL_SCRIPT = """\
import concurrent.futures

with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="pool") as pool:
    print(list(pool.map(abs, range(-6, 0))))
"""


@pytest.mark.browser
@pytest.mark.parametrize("max_messages", ["100", "4"])
def test_a_pools_activations_parse_and_draw_in_the_vendored_mermaid(
    tmp_path: Path, browser: Any, max_messages: str
) -> None:
    """Each worker's bar from its pick-up to its REPLY, kept whole when the trace is cut."""
    done = livekit_trace(
        tmp_path, "--max-messages", max_messages, "-o", "trace.mmd", "job.py", script=POOL_SCRIPT
    )
    assert done.returncode == 0, done.stderr
    source = (tmp_path / "trace.mmd").read_text(encoding="utf-8")
    lines = source.splitlines()
    calls = sum(": CALL: abs(" in line for line in lines)
    spawns = sum(line.endswith(": SPAWN") for line in lines)
    picked = sum(line.lstrip().startswith("activate ") for line in lines)
    # One bar per SPAWN and one per CALL kept; each ends exactly once.
    assert picked == spawns + calls
    assert sum(line.lstrip().startswith("deactivate ") for line in lines) == picked
    if max_messages == "100":
        assert calls == 6
    else:
        assert 0 < calls < 6
        assert lines[-1].endswith("more messages not shown (max_messages)")
    page_file = mermaid_page(tmp_path)
    page = browser.new_page()
    try:
        page.goto(page_file.as_uri())
        bars = page.evaluate(
            """async (source) => {
                await mermaid.parse(source);
                const {svg} = await mermaid.render('trace', source);
                const box = document.createElement('div');
                box.innerHTML = svg;
                return box.querySelectorAll('rect[class^="activation"]').length;
            }""",
            source,
        )
    finally:
        page.close()
    assert bars == picked


def test_a_workers_work_is_a_slice_from_pick_up_to_its_end_in_the_json() -> None:
    import io

    from livekit.trace.export import write_trace_events

    worker = Participant(1, "pool_0", "thread")
    events = [
        Message(MAIN, worker, "abs(-1)", "call", 2.0, 1.0),
        Activation(worker, time=2.0),
        Message(worker, MAIN, "1", "reply", 3.0),
        Activation(worker, ends=True, time=3.5),
        Activation(worker, ends=True, time=4.0),  # its start was not kept: no E
    ]
    out = io.StringIO()
    count = write_trace_events(events, out)
    traced = json.loads(out.getvalue())["traceEvents"]
    assert len(traced) == count
    slices = [(e["ph"], e["ts"], e["tid"]) for e in traced if e["ph"] in "BE"]
    assert slices == [("B", 1_000_000.0, 2), ("E", 2_500_000.0, 2)]


def test_the_terminal_drawing_shows_a_pick_up_and_its_end() -> None:
    worker = Participant(1, "pool_0", "thread")
    events = [
        Message(MAIN, worker, "abs(-1)", "call"),
        Activation(worker),
        Message(worker, MAIN, "1", "reply"),
        Activation(worker, ends=True),
    ]
    assert sequence_text(events) == (
        "caller (MainThread) → pool_0             : CALL: abs(-1)\n"
        "pool_0              : PICK-UP\n"
        "pool_0              ⇢ caller (MainThread): REPLY: 1\n"
        "pool_0              : DONE"
    )
