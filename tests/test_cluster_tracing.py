"""Dask's records turned into trace events (livekit.clusters.tracing), with hand-made records."""

from __future__ import annotations

from typing import Any

from livekit.clusters.tracing import cluster_events, submit_label
from livekit.trace.events import Participant

CLIENT = Participant(0, "caller (MainThread)", "caller")
SCHEDULER = Participant(1, "scheduler", "process")
WORKERS = {
    "tcp://a": Participant(2, "worker a", "process"),
    "tcp://b": Participant(3, "worker b", "process"),
}


def lines(records: list[tuple[Any, ...]], logs: dict[str, Any]) -> list[str]:
    events = cluster_events(
        records,
        logs,
        client=CLIENT,
        scheduler=SCHEDULER,
        worker=WORKERS.__getitem__,
        clock=lambda t: t - 100.0,
    )
    return [str(event) for event in events]


def test_a_transfer_logged_before_the_data_existed_is_drawn_after_its_task() -> None:
    # The worker's clock runs a little ahead of the scheduler's.
    records = [
        ("submit", 1.0, ["y"], ["x", "y"]),
        ("assign", 1.1, "x", "tcp://a", []),
        ("done", 1.3, "x", "tcp://a"),
        ("assign", 1.4, "y", "tcp://b", ["x"]),
    ]
    logs = {"tcp://b": {"incoming": [{"start": 1.2, "who": "tcp://a", "keys": {"x": 10}}]}}
    assert lines(records, logs) == [
        "caller (MainThread) -> scheduler: submit y (2 tasks)",
        "scheduler -> worker a: x",
        "scheduler -> worker b: y",
        "worker a -> worker b: x (10 B)",
    ]


def test_other_clients_transfers_and_results_are_left_out() -> None:
    records = [("submit", 1.0, ["x"], ["x"]), ("assign", 1.1, "x", "tcp://a", [])]
    logs = {
        "tcp://a": {
            "incoming": [{"start": 1.2, "who": "tcp://b", "keys": {"theirs": 5}}],
            "outgoing": [
                {"start": 1.3, "who": None, "keys": {"x": 8, "theirs-too": 9}},
                {"start": 1.4, "who": "tcp://b", "keys": {"x": 8}},
            ],
        }
    }
    assert lines(records, logs) == [
        "caller (MainThread) -> scheduler: submit x",
        "scheduler -> worker a: x",
        "worker a -> caller (MainThread): REPLY: x (8 B)",
    ]


def test_data_the_traced_tasks_need_is_drawn_even_if_it_was_made_before() -> None:
    records = [
        ("submit", 1.0, ["total"], ["total"]),
        ("assign", 1.1, "total", "tcp://b", ["made-earlier"]),
    ]
    logs = {
        "tcp://b": {"incoming": [{"start": 1.2, "who": "tcp://a", "keys": {"made-earlier": 2048}}]}
    }
    assert lines(records, logs)[-1] == "worker a -> worker b: made-earlier (2.0 KiB)"


def test_event_times_are_on_this_processs_clock() -> None:
    records = [("submit", 101.5, ["x"], ["x"])]
    (event,) = cluster_events(
        records, {}, client=CLIENT, scheduler=SCHEDULER, worker=WORKERS.__getitem__,
        clock=lambda t: t - 100.0,
    )  # fmt: skip
    assert event.time == 1.5


def test_a_submission_of_many_keys_names_the_first_two() -> None:
    assert submit_label(["a", "b", "c"], ["a", "b", "c", "d"]) == "submit a, b, … (4 tasks)"
    assert submit_label([("sum", 0)], []) == "submit ('sum', 0)"


def test_a_transfer_logged_late_is_drawn_before_the_result_that_needed_it() -> None:
    # The receiving worker's clock moved between its two log entries.
    records = [
        ("submit", 1.0, ["y"], ["x", "y"]),
        ("assign", 1.1, "x", "tcp://a", []),
        ("done", 1.2, "x", "tcp://a"),
        ("assign", 1.3, "y", "tcp://b", ["x"]),
        ("done", 1.5, "y", "tcp://b"),
    ]
    logs = {
        "tcp://b": {
            "incoming": [{"start": 1.9, "who": "tcp://a", "keys": {"x": 10}}],
            "outgoing": [{"start": 1.6, "who": None, "keys": {"y": 28}}],
        }
    }
    assert lines(records, logs)[-2:] == [
        "worker a -> worker b: x (10 B)",
        "worker b -> caller (MainThread): REPLY: y (28 B)",
    ]
