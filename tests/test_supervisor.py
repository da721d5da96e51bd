"""Supervisor, child, Agent and app_supervisor: OTP's restart semantics for threads.

Children here are driven by events, not sleeps: a :class:`Probe` child
reports each start on a queue, publishes its stop event, and waits on it;
the test crashes or finishes a child by setting that event after choosing
what the child does next.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import pytest

from livekit.supervisor import (
    Agent,
    ChildInfo,
    Supervisor,
    SupervisorExit,
    app_supervisor,
    child,
    stopping,
)

TIMEOUT = 10.0


class BoomError(Exception):
    """The exception a probe raises when told to crash."""


class Probe:
    """Children whose starts, stops and crashes a test controls with events."""

    def __init__(self) -> None:
        self.starts: queue.Queue[str] = queue.Queue()
        self.stops: list[str] = []
        self.events: dict[str, threading.Event] = {}
        self.next_action: dict[str, str] = {}
        self._lock = threading.Lock()

    def worker(self, name: str) -> Callable[[], None]:
        def run() -> None:
            event = stopping()
            with self._lock:
                self.events[name] = event
            self.starts.put(name)
            event.wait()
            with self._lock:
                action = self.next_action.pop(name, "stop")
                if action == "stop":
                    self.stops.append(name)
            if action == "crash":
                raise BoomError(name)

        run.__name__ = name
        return run

    def crash(self, name: str) -> None:
        self._act(name, "crash")

    def finish(self, name: str) -> None:
        self._act(name, "return")

    def _act(self, name: str, action: str) -> None:
        with self._lock:
            self.next_action[name] = action
            event = self.events.pop(name)
        event.set()

    def started(self, count: int) -> list[str]:
        """Wait for ``count`` starts; return them sorted (threads race to report)."""
        return sorted(self.starts.get(timeout=TIMEOUT) for _ in range(count))

    def no_more_starts(self) -> bool:
        return self.starts.empty()


# Every test must stop every thread it started; crashes the tests provoke on
# purpose are not reported in the log.
pytestmark = pytest.mark.usefixtures("no_thread_left_behind", "quiet_crash_reports")


@pytest.fixture
def probe() -> Probe:
    return Probe()


def restarts(sup: Supervisor) -> dict[str, int]:
    return {row.name: row.restarts for row in sup.which_children()}


# ── strategies ──────────────────────────────────────────────────────


def test_one_for_one_restarts_only_the_crashed_child(probe: Probe) -> None:
    with Supervisor([probe.worker(n) for n in "abc"], strategy="one_for_one") as sup:
        assert probe.started(3) == ["a", "b", "c"]
        probe.crash("b")
        assert probe.started(1) == ["b"]
        assert restarts(sup) == {"a": 0, "b": 1, "c": 0}
    assert probe.no_more_starts()
    assert probe.stops == ["c", "b", "a"]


def test_one_for_all_stops_the_others_in_reverse_order_then_restarts_all(probe: Probe) -> None:
    with Supervisor([probe.worker(n) for n in "abc"], strategy="one_for_all") as sup:
        assert probe.started(3) == ["a", "b", "c"]
        probe.crash("b")
        assert probe.started(3) == ["a", "b", "c"]
        assert probe.stops == ["c", "a"]
        assert restarts(sup) == {"a": 1, "b": 1, "c": 1}
    assert probe.no_more_starts()


def test_rest_for_one_restarts_the_crashed_child_and_those_started_after_it(
    probe: Probe,
) -> None:
    with Supervisor([probe.worker(n) for n in "abcd"], strategy="rest_for_one") as sup:
        assert probe.started(4) == ["a", "b", "c", "d"]
        probe.crash("b")
        assert probe.started(3) == ["b", "c", "d"]
        assert probe.stops == ["d", "c"]
        assert restarts(sup) == {"a": 0, "b": 1, "c": 1, "d": 1}
    assert probe.no_more_starts()


def test_one_for_all_forgets_temporary_siblings_instead_of_restarting_them(
    probe: Probe,
) -> None:
    children = [probe.worker("a"), child(probe.worker("t"), restart="temporary")]
    with Supervisor(children, strategy="one_for_all") as sup:
        assert probe.started(2) == ["a", "t"]
        probe.crash("a")
        assert probe.started(1) == ["a"]
        assert [row.name for row in sup.which_children()] == ["a"]


# ── restart types ───────────────────────────────────────────────────


def test_permanent_child_is_restarted_even_when_it_returns(probe: Probe) -> None:
    with Supervisor([probe.worker("p")]) as sup:
        probe.started(1)
        probe.finish("p")
        assert probe.started(1) == ["p"]
        assert sup.which_children() == [ChildInfo("p", "worker", True, 1)]


def test_transient_child_that_returns_is_not_restarted(probe: Probe) -> None:
    with Supervisor([child(probe.worker("t"), restart="transient")]) as sup:
        probe.started(1)
        probe.finish("t")
        # Its exit reaches the supervisor through the supervisor's thread;
        # a second child started after it proves that exit was handled.
        sup.start_child(probe.worker("marker"))
        probe.started(1)
        _wait_until(lambda: not sup.which_children()[0].alive)
        assert sup.which_children()[0] == ChildInfo("t", "worker", False, 0)
    assert probe.no_more_starts()


def test_transient_child_that_crashes_is_restarted(probe: Probe) -> None:
    with Supervisor([child(probe.worker("t"), restart="transient")]) as sup:
        probe.started(1)
        probe.crash("t")
        assert probe.started(1) == ["t"]
        assert restarts(sup) == {"t": 1}


def test_temporary_child_is_never_restarted_and_is_forgotten(probe: Probe) -> None:
    with Supervisor([child(probe.worker("t"), restart="temporary"), probe.worker("k")]) as sup:
        probe.started(2)
        probe.crash("t")
        _wait_until(lambda: len(sup.which_children()) == 1)
        assert sup.which_children() == [ChildInfo("k", "worker", True, 0)]
    assert probe.no_more_starts()


# ── intensity ───────────────────────────────────────────────────────


def test_child_crashing_in_a_loop_makes_the_supervisor_give_up() -> None:
    starts: queue.Queue[str] = queue.Queue()
    probe = Probe()

    def crashy() -> None:
        starts.put("crashy")
        raise BoomError("again")

    sup = Supervisor([probe.worker("first"), crashy, probe.worker("last")], max_restarts=3)
    sup.start()
    assert sup.wait(TIMEOUT)
    assert sup.alive is False
    assert (
        sup.exit_reason == "child 'crashy' raised BoomError('again'); more than 3 restarts in 5 s"
    )
    assert starts.qsize() == 4  # the first run and 3 restarts
    assert probe.stops == ["last", "first"]  # reverse start order
    assert [row.alive for row in sup.which_children()] == [False, False, False]


def test_restarts_older_than_max_seconds_do_not_count(probe: Probe) -> None:
    now = [0.0]
    sup = Supervisor([probe.worker("w")], max_restarts=1, max_seconds=5, clock=lambda: now[0])
    with sup:
        for step in range(4):
            probe.started(1)
            now[0] = step * 10.0
            probe.crash("w")
        assert probe.started(1) == ["w"]
        assert sup.alive
        assert restarts(sup) == {"w": 4}


def test_two_restarts_within_max_seconds_exceed_max_restarts_of_one(probe: Probe) -> None:
    sup = Supervisor([probe.worker("w")], max_restarts=1, max_seconds=5, clock=lambda: 1.0)
    sup.start()
    probe.started(1)
    probe.crash("w")
    probe.started(1)
    probe.crash("w")
    assert sup.wait(TIMEOUT)
    assert sup.exit_reason == "child 'w' raised BoomError('w'); more than 1 restarts in 5 s"


def test_max_restarts_zero_gives_up_at_the_first_crash(probe: Probe) -> None:
    sup = Supervisor([probe.worker("w")], max_restarts=0).start()
    probe.started(1)
    probe.crash("w")
    assert sup.wait(TIMEOUT)
    assert not sup.alive
    assert probe.no_more_starts()


# ── nesting ─────────────────────────────────────────────────────────


def test_stop_stops_nested_supervisors_and_their_children(probe: Probe) -> None:
    inner = Supervisor([probe.worker("x"), probe.worker("y")], name="inner")
    outer = Supervisor([probe.worker("a"), inner, probe.worker("b")], name="outer").start()
    assert probe.started(4) == ["a", "b", "x", "y"]
    assert outer.count_children() == {"specs": 3, "active": 3, "supervisors": 1, "workers": 2}
    assert outer.stop() == []
    assert probe.stops == ["b", "y", "x", "a"]
    assert not inner.alive


def test_nested_supervisor_that_gives_up_is_restarted_by_its_parent(probe: Probe) -> None:
    inner = Supervisor([probe.worker("x")], name="inner", max_restarts=0)
    with Supervisor([inner, probe.worker("a")], name="outer") as outer:
        assert probe.started(2) == ["a", "x"]
        probe.crash("x")
        assert probe.started(1) == ["x"]
        assert restarts(outer) == {"inner": 1, "a": 0}
        assert inner.alive


def test_sub_supervisor_crash_reaches_its_parent_as_supervisor_exit(probe: Probe) -> None:
    inner = Supervisor([probe.worker("x")], name="inner", max_restarts=0)
    outer = Supervisor([inner], name="outer", max_restarts=0).start()
    probe.started(1)
    probe.crash("x")
    assert outer.wait(TIMEOUT)
    assert outer.exit_reason == (
        "child 'inner' raised SupervisorExit(\"supervisor 'inner' gave up: child 'x' "
        "raised BoomError('x'); more than 0 restarts in 5 s\"); more than 0 restarts in 5 s"
    )
    assert SupervisorExit.__name__ in outer.exit_reason


# ── stopping ────────────────────────────────────────────────────────


def test_stop_leaves_no_thread_behind() -> None:
    before = set(threading.enumerate())
    probe = Probe()
    inner = Supervisor([probe.worker("x"), Agent(list)], name="inner")
    sup = Supervisor([probe.worker("a"), inner, Agent(dict, name="cache")], name="outer").start()
    try:
        probe.started(2)
        names = {t.name for t in set(threading.enumerate()) - before}
        assert names == {"outer", "a", "inner", "x", "agent", "cache"}
    finally:
        sup.stop()
    assert set(threading.enumerate()) - before == set()


RACE_TRIES = 100


def test_stop_at_any_moment_of_start_stops_the_supervisor() -> None:
    # A second thread calls stop() as soon as the first child runs, which is
    # while start() is still under way.  Before the loop thread was started
    # under the lock, about half of these tries raised "cannot join thread
    # before it is started".
    errors: list[BaseException] = []
    for _ in range(RACE_TRIES):
        began = threading.Event()

        def first(began: threading.Event = began) -> None:
            began.set()
            stopping().wait()

        sup = Supervisor([first, Agent(list)], name="race")

        def stop_when_begun(sup: Supervisor = sup, began: threading.Event = began) -> None:
            try:
                assert began.wait(TIMEOUT)
                assert sup.stop() == []
            except BaseException as exc:  # reported below, with the try it failed in
                errors.append(exc)

        stopper = threading.Thread(target=stop_when_begun)
        stopper.start()
        sup.start()
        stopper.join(TIMEOUT)
        assert sup.wait(TIMEOUT)
        assert not sup.alive
        assert sup.exit_reason is None
    assert errors == []


def test_a_child_that_stops_its_own_supervisor_does_not_wait_for_itself() -> None:
    # The child's stop() cannot wait for its own end: it asks, returns at
    # once, and the supervisor stops the tree, this child included, with no
    # child reported late (that took the child's whole shutdown time before).
    errors: list[BaseException] = []
    for _ in range(RACE_TRIES // 5):
        box: list[Supervisor] = []
        ready = threading.Event()

        def quitter(box: list[Supervisor] = box, ready: threading.Event = ready) -> None:
            assert ready.wait(TIMEOUT)
            try:
                assert box[0].stop() == []
            except BaseException as exc:  # reported below
                errors.append(exc)
            stopping().wait()

        def bystander() -> None:
            stopping().wait()

        inner = Supervisor([child(quitter, shutdown=TIMEOUT)], name="inner")
        sup = Supervisor([bystander, inner], name="self-stop")
        box.append(sup)
        ready.set()  # the child stops the tree while start() may still run
        sup.start()
        assert sup.wait(TIMEOUT)
        assert not sup.alive
        assert not inner.alive
    assert errors == []


def test_stop_reports_a_child_that_ignores_its_stop_event() -> None:
    release = threading.Event()
    started = threading.Event()

    def stubborn() -> None:
        started.set()
        release.wait()

    sup = Supervisor([child(stubborn, shutdown=0.01)], name="s").start()
    assert started.wait(TIMEOUT)
    with pytest.warns(RuntimeWarning, match=r"child 'stubborn' did not stop in time"):
        assert sup.stop() == ["stubborn"]
    assert not sup.alive
    release.set()


def test_terminate_child_reports_a_child_that_does_not_stop() -> None:
    release = threading.Event()
    started = threading.Event()

    def stubborn() -> None:
        started.set()
        release.wait()

    with Supervisor([child(stubborn, shutdown=0.01)], name="s") as sup:
        assert started.wait(TIMEOUT)
        with pytest.warns(RuntimeWarning, match="cannot be killed"):
            assert sup.terminate_child("stubborn") is False
        release.set()


class Stubborn:
    """A child whose first copy ignores its stop event until the test releases it.

    It counts the copies that run at once; later copies stop when asked.
    """

    def __init__(self) -> None:
        self.release = threading.Event()
        self.starts: queue.Queue[int] = queue.Queue()
        self.most_at_once = 0
        self._running = 0
        self._copies = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self._copies += 1
            copy = self._copies
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        self.starts.put(copy)
        try:
            if copy == 1:
                self.release.wait()  # never looks at stopping()
            else:
                stopping().wait()
        finally:
            with self._lock:
                self._running -= 1

    def started(self) -> int:
        return self.starts.get(timeout=TIMEOUT)


def test_a_restart_waits_until_the_copy_that_ignored_its_stop_request_returns(
    probe: Probe,
) -> None:
    stubborn = Stubborn()
    sup = Supervisor(
        [child(stubborn, name="stubborn", shutdown=0.01), probe.worker("crasher")],
        strategy="one_for_all",
        name="s",
    )
    with sup:
        assert stubborn.started() == 1
        probe.started(1)
        probe.crash("crasher")  # one_for_all: stubborn is asked to stop, and ignores it
        assert probe.started(1) == ["crasher"]
        assert sup.which_children() == [
            ChildInfo("stubborn", "worker", alive=False, restarts=1, stopping=True),
            ChildInfo("crasher", "worker", alive=True, restarts=1, stopping=False),
        ]
        assert sup.summary().splitlines()[1].split() == [
            "worker",
            "stubborn",
            "stopping",
            "permanent",
            "restarts=1",
        ]
        assert stubborn.starts.empty()  # no second copy beside the first
        stubborn.release.set()
        assert stubborn.started() == 2  # the old copy returned: now the new one runs
        _wait_until(lambda: sup.which_children()[0].alive)
        assert sup.which_children()[0] == ChildInfo("stubborn", "worker", True, 1)
    assert stubborn.most_at_once == 1


def test_restart_child_of_a_child_still_stopping_starts_it_once_the_old_copy_returns() -> None:
    stubborn = Stubborn()
    with Supervisor([child(stubborn, name="stubborn", shutdown=0.01)], name="s") as sup:
        assert stubborn.started() == 1
        with pytest.warns(RuntimeWarning, match="'stubborn' did not stop in time"):
            assert sup.terminate_child("stubborn") is False
        assert sup.which_children() == [ChildInfo("stubborn", "worker", False, 0, True)]
        sup.restart_child("stubborn")
        assert sup.which_children() == [ChildInfo("stubborn", "worker", False, 0, True)]
        assert stubborn.starts.empty()
        stubborn.release.set()
        assert stubborn.started() == 2
    assert stubborn.most_at_once == 1


def test_a_supervisor_started_again_waits_for_a_child_its_stop_left_running() -> None:
    stubborn = Stubborn()
    sup = Supervisor([child(stubborn, name="stubborn", shutdown=0.01)], name="s").start()
    assert stubborn.started() == 1
    with pytest.warns(RuntimeWarning, match="did not stop in time"):
        assert sup.stop() == ["stubborn"]
    with sup:
        assert sup.which_children() == [ChildInfo("stubborn", "worker", False, 0, True)]
        stubborn.release.set()
        assert stubborn.started() == 2
    assert stubborn.most_at_once == 1


def test_a_stop_cancels_the_start_that_waited_for_an_old_copy() -> None:
    stubborn = Stubborn()
    sup = Supervisor([child(stubborn, name="stubborn", shutdown=0.01)], name="s").start()
    assert stubborn.started() == 1
    with pytest.warns(RuntimeWarning, match="did not stop in time"):
        sup.terminate_child("stubborn")
    sup.restart_child("stubborn")  # waits for the old copy
    assert sup.stop() == []
    stubborn.release.set()
    _wait_until(lambda: not sup.which_children()[0].stopping)
    assert stubborn.starts.empty()  # the stopped supervisor started nothing
    assert sup.which_children() == [ChildInfo("stubborn", "worker", False, 0, False)]


def test_stopping_outside_a_supervised_child_raises() -> None:
    with pytest.raises(RuntimeError, match=r"outside a supervised child, in thread 'MainThread'"):
        stopping()


def test_supervisor_is_a_context_manager_that_returns_itself() -> None:
    sup = Supervisor(name="ctx")
    with sup as entered:
        assert entered is sup
        assert sup.alive
    assert not sup.alive
    assert sup.stop() == []


# ── dynamic children ────────────────────────────────────────────────


def test_start_terminate_restart_and_delete_a_dynamic_child(probe: Probe) -> None:
    with Supervisor(name="dyn") as sup:
        name = sup.start_child(child(probe.worker("listener-3"), restart="transient"))
        assert name == "listener-3"
        probe.started(1)
        assert sup.terminate_child(name) is True
        assert sup.which_children() == [ChildInfo("listener-3", "worker", False, 0)]
        sup.restart_child(name)
        probe.started(1)
        with pytest.raises(RuntimeError, match="'listener-3' of 'dyn' is running"):
            sup.restart_child(name)
        with pytest.raises(RuntimeError, match="terminate_child"):
            sup.delete_child(name)
        sup.terminate_child(name)
        sup.delete_child(name)
        assert sup.which_children() == []


def test_unnamed_children_get_unique_names_and_named_duplicates_raise() -> None:
    def work() -> None:
        stopping().wait()

    sup = Supervisor([work, work], name="s")
    assert sup.start_child(work) == "work-3"
    assert [r.name for r in sup.which_children()] == ["work", "work-2", "work-3"]
    sup.start_child(child(work, name="fixed"))
    with pytest.raises(ValueError, match="'s' already has a child named 'fixed'"):
        sup.start_child(child(work, name="fixed"))


def test_terminate_child_of_unknown_name_raises_naming_it() -> None:
    with pytest.raises(KeyError, match="no child named 'ghost'"):
        Supervisor(name="s").terminate_child("ghost")


def test_temporary_child_is_forgotten_when_terminated(probe: Probe) -> None:
    with Supervisor([child(probe.worker("t"), restart="temporary")]) as sup:
        probe.started(1)
        sup.terminate_child("t")
        assert sup.which_children() == []


# ── Agent ───────────────────────────────────────────────────────────


def test_agent_gets_updates_and_gets_and_updates_its_state() -> None:
    agent: Agent[list[int]] = Agent(list)
    with Supervisor([agent]):
        agent.update(lambda xs: [*xs, 1])
        assert agent.get_and_update(lambda xs: (sum(xs), [*xs, 2])) == 1
        assert agent.get(lambda xs: xs) == [1, 2]


def test_agent_that_raises_crashes_and_restarts_with_its_initial_state() -> None:
    agent: Agent[int] = Agent(lambda: 0, name="counter")
    with Supervisor([agent]) as sup:
        agent.update(lambda n: n + 5)
        with pytest.raises(ZeroDivisionError):
            agent.update(lambda n: n // 0)
        _wait_until(lambda: sup.which_children()[0].restarts == 1)
        _wait_until(lambda: sup.which_children()[0].alive)
        assert agent.get(lambda n: n) == 0


def test_agent_outside_a_running_supervisor_raises() -> None:
    with pytest.raises(RuntimeError, match="agent 'agent' is not running"):
        Agent(list).get(len)


def test_agent_needs_a_function_for_its_initial_state() -> None:
    with pytest.raises(TypeError, match=r"such as Agent\(list\).*got int: 0"):
        Agent(0)  # type: ignore[arg-type]


def test_a_child_can_have_only_one_supervisor() -> None:
    agent = Agent(list)
    Supervisor([agent], name="first")
    with pytest.raises(ValueError, match="already has a supervisor, 'first'"):
        Supervisor([agent], name="second")


# ── bad input ───────────────────────────────────────────────────────


def test_bad_strategy_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="got 'one_for_some'"):
        Supervisor(strategy="one_for_some")  # type: ignore[arg-type]


def test_bad_restart_type_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="got 'sometimes'"):
        child(print, restart="sometimes")  # type: ignore[arg-type]


def test_non_callable_child_raises_naming_it() -> None:
    with pytest.raises(TypeError, match="got str: 'not a function'"):
        Supervisor(["not a function"])


def test_bad_intensity_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="got -1"):
        Supervisor(max_restarts=-1)
    with pytest.raises(ValueError, match="got 0"):
        Supervisor(max_seconds=0)


# ── display ─────────────────────────────────────────────────────────


def test_supervisor_displays_its_tree_with_a_text_summary(probe: Probe) -> None:
    with Supervisor([probe.worker("w"), Agent(list)], name="demo") as sup:
        probe.started(1)
        data, metadata = sup._repr_mimebundle_()
        assert data["text/plain"] == (
            "Supervisor 'demo' (one_for_one, running)\n"
            "  worker  w      alive  permanent  restarts=0\n"
            "  agent   agent  alive  permanent  restarts=0"
        )
        assert data["text/vnd.mermaid"].startswith(
            'graph TD\n  n0["demo (one_for_one)"]:::root\n'
            '  n0 -->|supervises| n1["w"]:::worker\n'
            '  n0 -->|supervises| n2["agent"]:::worker\n'
        )
        assert metadata == {"text/vnd.mermaid": {"caption": "Supervision tree of 'demo'."}}


# ── livekit's own root ──────────────────────────────────────────────


def test_app_supervisor_runs_livekit_background_work_and_stops_cleanly(probe: Probe) -> None:
    sup = app_supervisor()
    try:
        assert sup is app_supervisor()
        assert sup.name == "livekit"
        name = sup.start_child(child(probe.worker("listener-3"), restart="transient"))
        assert probe.started(1) == [name]
        assert sup.terminate_child(name) is True
        assert probe.stops == ["listener-3"]
        sup.delete_child(name)
    finally:
        sup.stop()
    assert app_supervisor() is not sup  # a stopped root is replaced on next use
    app_supervisor().stop()


def _wait_until(condition: Callable[[], bool]) -> None:
    """Wait for state that another thread changes without an event to wait on."""
    done = threading.Event()
    for _ in range(int(TIMEOUT / 0.005)):
        if condition():
            return
        done.wait(0.005)
    raise AssertionError("condition not met in time")
