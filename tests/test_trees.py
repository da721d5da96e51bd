"""sup_tree, app_tree, started_applications and the pure tree formatter."""

from __future__ import annotations

import asyncio
import itertools
import os
import pathlib
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import psutil
import pytest

import livekit
from livekit.supervisor import Agent, Supervisor, app_supervisor, child, stopping
from livekit.trees import (
    TreeNode,
    app_tree,
    format_tree,
    render_app_tree,
    started_applications,
    sup_tree,
    track_tasks,
    tree_text,
)
from livekit.trees.diagrams import ADAPTERS
from livekit.trees.protocol import describe
from livekit.trees.supervisors import supervisor_tree

TIMEOUT = 10.0

CLASS_DEFS = (
    "  classDef root fill:#c4b5fd,color:#111827,stroke:#374151,stroke-width:4px\n"
    "  classDef supervisor fill:#c4b5fd,color:#111827,stroke:#374151,stroke-width:1px\n"
    "  classDef owner fill:#ddd6fe,color:#111827,stroke:#374151,stroke-width:1px,"
    "stroke-dasharray:4 2\n"
    "  classDef worker fill:#93c5fd,color:#111827,stroke:#374151,stroke-width:1px\n"
    "  classDef notstarted color:#777,fill:#d9d9d9,stroke:#777,stroke-width:1px\n"
    "  classDef stopping fill:#fde68a,color:#111827,stroke:#92400e,stroke-width:1px,"
    "stroke-dasharray:4 2\n"
    "  classDef failed fill:#fca5a5,color:#111827,stroke:#991b1b,stroke-width:2px"
)


# Every test must stop every thread it started; crashes the tests provoke on
# purpose are not reported in the log.
pytestmark = pytest.mark.usefixtures("no_thread_left_behind", "quiet_crash_reports")


def body(diagram: object) -> str:
    """The diagram's source without the classDef lines every tree ends with."""
    text = str(diagram)
    assert text.endswith(CLASS_DEFS)
    return text[: -len(CLASS_DEFS)].rstrip("\n")


# ── the formatter ───────────────────────────────────────────────────


def test_format_tree_numbers_nodes_depth_first_and_styles_them_by_class() -> None:
    tree = TreeNode(
        "app",
        "root",
        children=[
            TreeNode("sup", "supervisor", "supervises", [TreeNode("w", "worker", "supervises")]),
            TreeNode("idle", "notstarted", "owns"),
        ],
    )
    assert format_tree(tree) == (
        "graph TD\n"
        '  n0["app"]:::root\n'
        '  n0 -->|supervises| n1["sup"]:::supervisor\n'
        '  n1 -->|supervises| n2["w"]:::worker\n'
        '  n0 -->|owns| n3["idle"]:::notstarted\n' + CLASS_DEFS
    )


def test_format_tree_escapes_characters_mermaid_would_parse() -> None:
    tree = TreeNode('a "b" <c> #d', "root", children=[TreeNode("x", "worker", "a|b")])
    assert body(format_tree(tree)) == (
        "graph TD\n"
        '  n0["a #quot;b#quot; #lt;c#gt; #35;d"]:::root\n'
        '  n0 -->|a#124;b| n1["x"]:::worker'
    )


def test_left_right_direction_draws_graph_lr() -> None:
    assert str(sup_tree(Supervisor(name="s"), direction="left_right")).startswith("graph LR\n")


def test_bad_direction_raises_naming_it() -> None:
    with pytest.raises(
        ValueError, match=r"^expected direction 'top_down' or 'left_right', got 'diagonal'$"
    ):
        sup_tree(Supervisor(name="s"), direction="diagonal")
    with pytest.raises(ValueError, match="got 'up'"):
        app_tree("livekit", direction="up")


def test_object_with_no_tree_raises_naming_it() -> None:
    with pytest.raises(TypeError, match=r"got dict: \{'a': 1\}$"):
        sup_tree({"a": 1})
    with pytest.raises(TypeError, match="got bool: True"):
        sup_tree(True)


# ── the protocol: objects that describe their own tree ──────────────


class Pipeline:
    """A user's object that says what its tree is."""

    def __init__(self, stages: list[str]) -> None:
        self.stages = stages

    def __livekit_tree__(self) -> tuple[TreeNode, str]:
        stages = [TreeNode(stage, "worker", "owns") for stage in self.stages]
        return TreeNode("pipeline", "root", children=stages), "A pipeline of two stages."


def test_an_object_with_livekit_tree_is_drawn_as_it_describes_itself() -> None:
    diagram = sup_tree(Pipeline(["read", "write"]))
    assert body(diagram) == (
        "graph TD\n"
        '  n0["pipeline"]:::root\n'
        '  n0 -->|owns| n1["read"]:::worker\n'
        '  n0 -->|owns| n2["write"]:::worker'
    )
    assert diagram.caption == "A pipeline of two stages."


def test_a_tree_without_a_caption_gets_one_naming_its_root() -> None:
    class Bare:
        def __livekit_tree__(self) -> TreeNode:
            return TreeNode("bare", "root")

    assert sup_tree(Bare()).caption == "The tree of bare."


def test_a_livekit_tree_that_returns_something_else_raises_naming_it() -> None:
    class Wrong:
        def __livekit_tree__(self) -> object:
            return "a tree"

    class BadKind:
        def __livekit_tree__(self) -> TreeNode:
            return TreeNode("x", "purple")  # type: ignore[arg-type]

    with pytest.raises(TypeError, match=r"Wrong.__livekit_tree__\(\) must return .* got str"):
        sup_tree(Wrong())
    with pytest.raises(ValueError, match=r"BadKind.__livekit_tree__\(\): .* got 'purple'"):
        sup_tree(BadKind())

    class BadChild:
        def __livekit_tree__(self) -> TreeNode:
            deep = TreeNode("y", "worker", "owns", ["not a node"])  # type: ignore[list-item]
            return TreeNode("x", "root", children=[deep])

    with pytest.raises(TypeError, match=r"BadChild.__livekit_tree__\(\): .* got str: 'not a"):
        sup_tree(BadChild())


def test_the_trees_package_never_imports_the_supervisor() -> None:
    root = pathlib.Path(livekit.__file__).parent
    trees = "\n".join(p.read_text() for p in (root / "trees").glob("*.py"))
    # The supervisor uses the drawing (its tree(), its display): one way only.
    assert not re.search(r"^\s*(from|import) livekit\.supervisor", trees, re.M)


# ── supervisors ─────────────────────────────────────────────────────


def test_nested_supervisor_tree_golden_text() -> None:
    started = threading.Barrier(5)  # four workers and this test
    crashed = threading.Event()

    def worker() -> None:
        started.wait(TIMEOUT)
        stopping().wait()

    def flaky() -> None:
        if not crashed.is_set():
            crashed.set()
            raise RuntimeError("first run fails")
        started.wait(TIMEOUT)
        stopping().wait()

    inner = Supervisor(
        [child(flaky, name="flaky"), Agent(dict, name="cache")],
        name="inner",
        strategy="rest_for_one",
    )
    outer = Supervisor(
        [
            child(worker, name="web"),
            inner,
            child(worker, name="job", restart="temporary"),
            child(worker, name="idle", restart="transient"),
        ],
        name="app",
    )
    with outer:
        started.wait(TIMEOUT)  # web, job, idle and the restarted flaky are running
        assert outer.terminate_child("idle")
        assert str(outer.tree(caption="The app.")) == (
            "graph TD\n"
            '  n0["app (one_for_one)"]:::root\n'
            '  n0 -->|supervises| n1["web"]:::worker\n'
            '  n0 -->|supervises| n2["inner (rest_for_one)"]:::supervisor\n'
            '  n2 -->|supervises| n3["flaky (restarts: 1)"]:::worker\n'
            '  n2 -->|supervises| n4["cache (restarts: 1)"]:::worker\n'
            '  n0 -->|started| n5["job"]:::worker\n'
            '  n0 -->|supervises| n6["idle"]:::notstarted\n' + CLASS_DEFS
        )


def test_a_child_still_stopping_is_drawn_with_what_its_new_copy_waits_for() -> None:
    release = threading.Event()
    copies: queue.Queue[int] = queue.Queue()
    count = itertools.count(1)

    def slow() -> None:
        copy = next(count)
        copies.put(copy)
        if copy == 1:
            release.wait()  # the first copy ignores its stop request
        else:
            stopping().wait()

    def quick() -> None:
        stopping().wait()

    sup = Supervisor([child(slow, shutdown=0.01), quick], name="s")
    with sup:
        assert copies.get(timeout=TIMEOUT) == 1
        with pytest.warns(RuntimeWarning, match="did not stop in time"):
            sup.terminate_child("slow")
        sup.terminate_child("quick")
        sup.restart_child("slow")
        assert body(sup.tree()) == (
            "graph TD\n"
            '  n0["s (one_for_one)"]:::root\n'
            '  n0 -->|supervises| n1["slow: stopping (waiting for the old copy to return)"]'
            ":::stopping\n"
            '  n0 -->|supervises| n2["quick"]:::notstarted'
        )
        release.set()
        assert copies.get(timeout=TIMEOUT) == 2  # the new copy, once the old one returned
        _wait_until(lambda: sup.which_children()[0].alive)
        assert body(sup.tree()).splitlines()[2] == '  n0 -->|supervises| n1["slow"]:::worker'


def test_a_child_that_outlived_terminate_child_is_drawn_as_stopping() -> None:
    release = threading.Event()
    started = threading.Event()

    def stubborn() -> None:
        started.set()
        release.wait()

    with Supervisor([child(stubborn, name="slow", shutdown=0.01)], name="s") as sup:
        assert started.wait(TIMEOUT)
        with pytest.warns(RuntimeWarning, match="did not stop in time"):
            sup.terminate_child("slow")
        lines = body(sup.tree()).splitlines()
        release.set()
    assert lines[2] == (
        '  n0 -->|supervises| n1["slow: stopping (the old copy has not returned)"]:::stopping'
    )


def _crash() -> None:
    raise ValueError("boom")


def test_a_supervisor_that_gave_up_draws_that_it_stopped_and_why_golden_text() -> None:
    def children() -> list[object]:
        return [
            child(lambda: stopping().wait(), name="web"),
            child(_crash, name="crashy"),
            Agent(dict, name="cache"),
        ]

    never = Supervisor(children(), name="app", max_restarts=1)
    sup = Supervisor(children(), name="app", max_restarts=1).start()
    assert sup.wait(TIMEOUT)
    diagram = sup_tree(sup)
    assert str(diagram) == (
        "graph TD\n"
        '  n0["app (one_for_one): gave up, more than 1 restarts in 5 s"]:::failed\n'
        '  n0 -->|supervises| n1["web"]:::notstarted\n'
        "  n0 -->|supervises| n2[\"crashy (restarts: 1): raised ValueError('boom')\"]:::failed\n"
        '  n0 -->|supervises| n3["cache"]:::notstarted\n' + CLASS_DEFS
    )
    caption = (
        "Supervision tree of 'app', which gave up: "
        "child 'crashy' raised ValueError('boom'); more than 1 restarts in 5 s."
    )
    assert diagram.caption == caption
    assert sup._repr_mimebundle_()[1] == {"text/vnd.mermaid": {"caption": caption}}
    # One that never started still looks as it did: grey children, a plain caption.
    assert body(sup_tree(never)) == (
        "graph TD\n"
        '  n0["app (one_for_one)"]:::root\n'
        '  n0 -->|supervises| n1["web"]:::notstarted\n'
        '  n0 -->|supervises| n2["crashy"]:::notstarted\n'
        '  n0 -->|supervises| n3["cache"]:::notstarted'
    )
    assert sup_tree(never).caption == "Supervision tree of 'app'."


def test_a_nested_supervisor_that_gave_up_is_drawn_as_the_reason_its_parent_did() -> None:
    inner = Supervisor([child(_crash, name="x")], name="inner", max_restarts=0)
    outer = Supervisor(
        [inner, child(lambda: stopping().wait(), name="web")], name="outer", max_restarts=0
    ).start()
    assert outer.wait(TIMEOUT)
    assert body(sup_tree(outer)) == (
        "graph TD\n"
        '  n0["outer (one_for_one): gave up, more than 0 restarts in 5 s"]:::failed\n'
        '  n0 -->|supervises| n1["inner (one_for_one): gave up, more than 0 restarts in 5 s"]'
        ":::failed\n"
        "  n1 -->|supervises| n2[\"x: raised ValueError('boom')\"]:::failed\n"
        '  n0 -->|supervises| n3["web"]:::notstarted'
    )
    assert sup_tree(outer).caption == (
        "Supervision tree of 'outer', which gave up: child 'inner' raised "
        "SupervisorExit(\"supervisor 'inner' gave up: child 'x' raised ValueError('boom'); "
        'more than 0 restarts in 5 s"); more than 0 restarts in 5 s.'
    )


def test_sup_tree_caption_defaults_to_naming_the_supervisor() -> None:
    assert sup_tree(Supervisor(name="s")).caption == "Supervision tree of 's'."
    assert sup_tree(Supervisor(name="s"), caption="Mine.").caption == "Mine."


# ── executors and pools ─────────────────────────────────────────────


def test_thread_pool_executor_tree_shows_started_and_not_started_threads() -> None:
    release = threading.Event()
    pool = ThreadPoolExecutor(3, thread_name_prefix="fetch")
    try:
        futures = [pool.submit(release.wait, TIMEOUT) for _ in range(2)]
        assert body(sup_tree(pool)) == (
            "graph TD\n"
            '  n0["ThreadPoolExecutor fetch (max_workers=3)"]:::root\n'
            '  n0 -->|owns| n1["fetch_0"]:::worker\n'
            '  n0 -->|owns| n2["fetch_1"]:::worker\n'
            '  n0 -->|owns| n3["1 thread not started yet"]:::notstarted'
        )
        release.set()
        assert [f.result(TIMEOUT) for f in futures] == [True, True]
    finally:
        release.set()
        pool.shutdown()


def test_process_pool_executor_tree_shows_its_real_worker_processes() -> None:
    with ProcessPoolExecutor(2) as pool:
        assert sorted(pool.map(abs, [-1, -2])) == [1, 2]
        pids = sorted(pool._processes)  # what the tree must show
        manager = pool._executor_manager_thread
        assert manager is not None
        text = body(sup_tree(pool))
    lines = text.splitlines()
    assert lines[:3] == [
        "graph TD",
        '  n0["ProcessPoolExecutor (max_workers=2)"]:::root',
        f'  n0 -->|owns| n1["{manager.name} (manager thread)"]:::worker',
    ]
    assert len(lines) == 5
    for line, pid in zip(lines[3:], pids, strict=True):
        assert re.fullmatch(rf'  n0 -->\|owns\| n\d\["\w+-\d+ \(pid {pid}\)"\]:::worker', line)


def test_multiprocessing_pool_tree_shows_its_worker_handler_supervising_workers() -> None:
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(abs, (-3,)) == 3
        text = body(sup_tree(pool))
        pool.terminate()
        pool.join()
    assert re.fullmatch(
        r"graph TD\n"
        r'  n0\["multiprocessing Pool \(processes=1, run\)"\]:::root\n'
        r'  n0 -->\|owns\| n1\["Thread-\d+ \(_handle_workers\) \(worker handler\)"\]:::supervisor\n'
        r'  n1 -->\|supervises\| n2\["SpawnPoolWorker-\d+ \(pid \d+\)"\]:::worker\n'
        r'  n0 -->\|owns\| n3\["Thread-\d+ \(_handle_tasks\) \(task handler\)"\]:::worker\n'
        r'  n0 -->\|owns\| n4\["Thread-\d+ \(_handle_results\) \(result handler\)"\]:::worker',
        text,
    ), text


def test_thread_pool_tree_draws_its_worker_threads() -> None:
    from multiprocessing.pool import ThreadPool

    with ThreadPool(1) as pool:
        assert pool.apply(abs, (-3,)) == 3
        text = body(sup_tree(pool))
        pool.terminate()
        pool.join()
    assert re.fullmatch(
        r"graph TD\n"
        r'  n0\["multiprocessing ThreadPool \(processes=1, run\)"\]:::root\n'
        r'  n0 -->\|owns\| n1\["Thread-\d+ \(_handle_workers\) \(worker handler\)"\]:::supervisor\n'
        r'  n1 -->\|supervises\| n2\["Thread-\d+ \(worker\)"\]:::worker\n'
        r".*",
        text,
        re.DOTALL,
    ), text


# ── OS processes ────────────────────────────────────────────────────


def test_pid_tree_shows_the_processes_this_one_started() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        mine = str(sup_tree(os.getpid()))
        theirs = sup_tree(psutil.Process(proc.pid))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(TIMEOUT)
    assert mine.splitlines()[1].startswith('  n0["')
    assert f"(pid {os.getpid()})" in mine
    assert re.search(rf'-->\|started\| n\d+\["python[\w.]* \(pid {proc.pid}\)"\]:::worker', mine)
    assert theirs.caption == f"OS process tree of pid {proc.pid}."


def test_missing_pid_raises_naming_it() -> None:
    missing = max(psutil.pids()) + 10_000_000  # above any pid_max
    with pytest.raises(ValueError, match=f"^no process with pid {missing}$"):
        sup_tree(missing)


# ── asyncio tasks ───────────────────────────────────────────────────


def test_task_tree_shows_awaited_and_started_tasks() -> None:
    async def leaf(release: asyncio.Event) -> None:
        await release.wait()

    async def fan_out(release: asyncio.Event) -> None:
        await asyncio.gather(
            asyncio.create_task(leaf(release), name="leaf-1"),
            asyncio.create_task(leaf(release), name="leaf-2"),
        )

    async def main() -> str:
        track_tasks()
        release = asyncio.Event()
        fan = asyncio.create_task(fan_out(release), name="fan")
        background = asyncio.create_task(leaf(release), name="background")
        for _ in range(3):  # let fan_out start its children and reach gather
            await asyncio.sleep(0)
        text = body(sup_tree(fan))
        owner = body(sup_tree(asyncio.current_task()))
        release.set()
        await asyncio.gather(fan, background)
        return text + "\n--\n" + owner

    text, owner = asyncio.run(main()).split("\n--\n")
    assert text == (
        "graph TD\n"
        '  n0["fan: fan_out()"]:::root\n'
        '  n0 -->|awaits| n1["leaf-1: leaf()"]:::worker\n'
        '  n0 -->|awaits| n2["leaf-2: leaf()"]:::worker'
    )
    assert owner.splitlines()[2:] == [
        '  n0 -->|started| n1["background: leaf()"]:::worker',
        '  n0 -->|started| n2["fan: fan_out()"]:::worker',
        '  n2 -->|awaits| n3["leaf-1: leaf()"]:::worker',
        '  n2 -->|awaits| n4["leaf-2: leaf()"]:::worker',
    ]


# ── the terminal drawing ────────────────────────────────────────────


def test_terminal_drawing_of_a_nested_supervisor_golden_text() -> None:
    inner = Supervisor(
        [child(lambda: None, name="flaky"), Agent(dict, name="cache")],
        name="inner",
        strategy="rest_for_one",
    )
    outer = Supervisor(
        [child(lambda: None, name="web"), inner, child(abs, name="job", restart="temporary")],
        name="app",
    )
    assert tree_text(supervisor_tree(outer)[0]) == (
        "app (one_for_one)\n"
        "├─ supervises ─ web [not running]\n"
        "├─ supervises ─ inner (rest_for_one) [not running]\n"
        "│  ├─ supervises ─ flaky [not running]\n"
        "│  └─ supervises ─ cache [not running]\n"
        "└─ started ─ job [not running]"
    )


def test_terminal_drawing_of_a_supervisor_that_gave_up_says_why_golden_text() -> None:
    sup = Supervisor(
        [child(lambda: stopping().wait(), name="web"), child(_crash, name="crashy")],
        name="app",
        max_restarts=1,
    ).start()
    assert sup.wait(TIMEOUT)
    assert tree_text(supervisor_tree(sup)[0]) == (
        "app (one_for_one): gave up, more than 1 restarts in 5 s [failed]\n"
        "├─ supervises ─ web [not running]\n"
        "└─ supervises ─ crashy (restarts: 1): raised ValueError('boom') [failed]"
    )


def test_terminal_drawing_of_a_running_pool_names_its_threads() -> None:
    with ThreadPoolExecutor(2, thread_name_prefix="io") as pool:
        pool.submit(abs, 1).result(TIMEOUT)
        text = tree_text(sup_tree_root(pool))
    assert text == (
        "ThreadPoolExecutor io (max_workers=2)\n"
        "├─ owns ─ io_0\n"
        "└─ owns ─ 1 thread not started yet [not running]"
    )


def sup_tree_root(obj: object) -> TreeNode:
    found = describe(obj, ADAPTERS)
    assert found is not None
    return found[0]


def test_every_tree_diagram_carries_its_terminal_drawing() -> None:
    sup = Supervisor([child(lambda: None, name="web")], name="app")
    # What a terminal prints instead of the Mermaid source (the display layer calls it).
    drawing = sup_tree(sup)._drawing
    assert drawing is not None
    assert drawing() == "app (one_for_one)\n└─ supervises ─ web [not running]"
    assert app_tree("livekit")._drawing is not None


def test_terminal_drawing_writes_out_control_characters_in_names() -> None:
    tree = TreeNode("red\x1b[31m", "root", children=[TreeNode("a\nb", "worker", "x\ty")])
    assert tree_text(tree) == "red\\x1b[31m\n└─ x\\x09y ─ a\\x0ab"


def test_terminal_drawing_of_a_very_deep_tree_does_not_recurse() -> None:
    root = node = TreeNode("0", "root")
    for depth in range(1, 5000):
        node.children.append(TreeNode(str(depth), "worker", "owns"))
        node = node.children[0]
    lines = tree_text(root).splitlines()
    assert len(lines) == 5000
    assert lines[-1] == " " * 3 * 4998 + "└─ owns ─ 4999"


# ── app_tree ────────────────────────────────────────────────────────


def test_app_tree_of_livekit_draws_its_root_supervisor() -> None:
    app = app_supervisor()
    # Other tests' background work (a node server, a listener) may run here too.
    others = [
        f'  n0 -->|supervises| n{i}["{row.name}"]:::worker'
        for i, row in enumerate(app.which_children(), start=1)
    ]
    try:
        app.start_child(child(lambda: stopping().wait(), name="listener-1"))
        assert body(app_tree("livekit")) == "\n".join(
            [
                "graph TD",
                '  n0["livekit (one_for_one)"]:::root',
                *others,
                f'  n0 -->|supervises| n{len(others) + 1}["listener-1"]:::worker',
            ]
        )
    finally:
        app.stop()
    assert body(app_tree("livekit")) == (
        'graph TD\n  n0["livekit (no background work started)"]:::root'
    )


def test_app_tree_of_the_interpreter_groups_threads_by_owner() -> None:
    release = threading.Event()
    user = threading.Thread(target=release.wait, name="user-thread")
    pool = ThreadPoolExecutor(1, thread_name_prefix="pool")
    sup = Supervisor([child(lambda: stopping().wait(), name="sup-worker")], name="mine").start()
    try:
        user.start()
        pool.submit(abs, 1).result(TIMEOUT)
        text = str(app_tree())
    finally:
        release.set()
        user.join(TIMEOUT)
        pool.shutdown()
        sup.stop()
    assert re.search(r'n0\["python 3\.\d+\.\d+ \(pid \d+\)"\]:::root', text)
    assert '  n0 -->|owns| n1["MainThread"]' in text
    assert re.search(
        r'n0 -->\|owns\| (n\d+)\["mine \(one_for_one\)"\]:::supervisor\n'
        r'  \1 -->\|supervises\| n\d+\["sup-worker"\]:::worker',
        text,
    )
    assert re.search(
        r'-->\|owns\| (n\d+)\["executor pools"\]:::owner\n'
        r'  \1 -->\|owns\| (n\d+)\["pool"\]:::owner\n'
        r'  \2 -->\|owns\| n\d+\["pool_0"\]:::worker',
        text,
    )
    # Event.wait lives in threading: a thread's owner is the code it was made to run.
    assert re.search(
        r'(n\d+)\["threads of threading"\]:::owner\n'
        r'  \1 -->\|owns\| n\d+\["user-thread"\]:::worker',
        text,
    )


def test_app_tree_of_the_interpreter_draws_each_event_loop_under_its_thread() -> None:
    ready = threading.Event()
    holder: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def waiter(done: asyncio.Event) -> None:
        await done.wait()

    async def serve() -> None:
        done = asyncio.Event()
        holder.append((asyncio.get_running_loop(), done))
        task = asyncio.create_task(waiter(done), name="waiter")
        ready.set()
        await task

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="loop-thread")
    thread.start()
    try:
        assert ready.wait(TIMEOUT)
        text = str(app_tree())
    finally:
        loop, done = holder[0]
        loop.call_soon_threadsafe(done.set)
        thread.join(TIMEOUT)
    assert re.search(
        r'(n\d+)\["loop-thread"\]:::owner\n'
        r'  \1 -->\|runs\| (n\d+)\["event loop _UnixSelectorEventLoop"\]:::owner\n'
        r'  \2 -->\|runs\| (n\d+)\["Task-\d+: serve\(\)"\]:::worker\n'
        r'  \3 -->\|awaits\| n\d+\["waiter: waiter\(\)"\]:::worker\n',
        text,
    ), text


def test_app_tree_of_a_package_shows_threads_running_its_code() -> None:
    pool = ThreadPoolExecutor(1, thread_name_prefix="pkgpool")
    try:
        pool.submit(abs, 1).result(TIMEOUT)
        text = body(app_tree("concurrent"))
    finally:
        pool.shutdown()
    assert text.splitlines()[1] == '  n0["concurrent"]:::root'
    assert '  n0 -->|thread target| n1["pkgpool_0"]:::worker' in text.splitlines()


def test_app_tree_accepts_a_distribution_name_from_started_applications() -> None:
    assert app_tree("livekit-introspect") == app_tree("livekit")
    assert app_tree("LiveKit_Introspect") == app_tree("livekit")
    assert body(app_tree("psutil")).splitlines()[1] == f'  n0["psutil {psutil.__version__}"]:::root'


def test_app_tree_of_an_unknown_package_raises_naming_it() -> None:
    with pytest.raises(ValueError, match=r"^unknown package 'nonexistent_pkg': not imported"):
        app_tree("nonexistent_pkg")


def test_render_app_tree_prints_the_tree_and_its_caption_outside_a_notebook(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert render_app_tree("livekit", direction="left_right") is None
    tree = app_tree("livekit", direction="left_right")
    assert capsys.readouterr().out == tree.terminal() + "\n"
    assert tree.terminal().startswith(f"{tree.caption}\n\nlivekit (")


# ── started_applications ────────────────────────────────────────────


def test_started_applications_lists_imported_distributions_with_versions() -> None:
    import livekit

    apps = {app.name: app for app in started_applications()}
    assert apps["psutil"] == (
        "psutil",
        "Cross-platform lib for process and system monitoring.",
        psutil.__version__,
    )
    assert apps["livekit-introspect"].version == livekit.__version__
    assert "pytest" in apps
    names = [app.name.lower() for app in started_applications()]
    assert names == sorted(names)


def _wait_until(condition: Callable[[], bool]) -> None:
    """Wait for state that another thread changes without an event to wait on."""
    done = threading.Event()
    for _ in range(int(TIMEOUT / 0.005)):
        if condition():
            return
        done.wait(0.005)
    raise AssertionError("condition not met in time")
