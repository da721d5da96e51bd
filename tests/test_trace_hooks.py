"""The hook table: rows checked when made, read alike by both backends."""

from __future__ import annotations

import inspect
import queue
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from livekit.trace import SequenceTrace, hooks
from livekit.trace.events import Message
from livekit.trace.hooks import GATE, RETURN, Hook


class Mailbox:
    """A channel of its own, not built on any queue that livekit knows."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._ready = threading.Condition()

    def deliver(self, item: Any, *, urgent: bool = False) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def take(self) -> Any:
        with self._ready:
            self._ready.wait_for(lambda: self._items)
            return self._items.pop(0)


MAILBOX_ROWS = [
    Hook(
        Mailbox, "deliver", "start", (GATE, "self", "item"), "recorder.put_by", "recorder.sending"
    ),
    Hook(Mailbox, "take", "return", ("self", RETURN), "recorder.got", "recorder.waiting"),
]


@pytest.fixture
def mailbox_rows() -> Iterator[list[Hook]]:
    hooks.register(MAILBOX_ROWS)
    try:
        yield MAILBOX_ROWS
    finally:
        hooks.unregister(MAILBOX_ROWS)


def test_registered_rows_are_watched_by_either_backend(
    backend: str, mailbox_rows: list[Hook]
) -> None:
    inbox, outbox = Mailbox(), Mailbox()
    with SequenceTrace(backend=backend) as trace:
        worker = threading.Thread(target=lambda: outbox.deliver(inbox.take() + "!"), name="echo")
        worker.start()
        inbox.deliver("hi", urgent=True)
        answer = outbox.take()
        worker.join()
    assert answer == "hi!"
    messages = [e for e in trace.events if isinstance(e, Message)]
    assert [(m.sender.name, m.receiver.name, m.label) for m in messages] == [
        ("caller (MainThread)", "echo", "'hi'"),
        ("echo", "caller (MainThread)", "'hi!'"),
    ]


def test_rows_are_unwatched_after_the_trace_and_after_unregister(
    backend: str, mailbox_rows: list[Hook]
) -> None:
    deliver = Mailbox.__dict__["deliver"]
    with SequenceTrace(backend=backend):
        pass
    assert Mailbox.__dict__["deliver"] is deliver
    hooks.unregister(mailbox_rows)
    box = Mailbox()
    with SequenceTrace(backend=backend) as trace:
        box.deliver(1)
        box.take()
    assert trace.events == ()


def test_every_standard_row_names_a_recorder_or_process_event() -> None:
    from livekit.trace.processes import HOOKS

    for row in (*hooks.STANDARD, *HOOKS):
        assert row.event.split(".")[0] in {"recorder", "processes"}, row


def test_a_row_at_start_cannot_read_the_return_value() -> None:
    with pytest.raises(ValueError, match="<return> can be read only at return"):
        Hook(queue.Queue, "_put", "start", (RETURN,), "recorder.got")


def test_a_row_that_reads_an_unknown_parameter_names_the_parameters() -> None:
    expected = "expected a parameter of Queue._put (self, item), got 'value'"
    with pytest.raises(ValueError, match=re.escape(expected)):
        Hook(queue.Queue, "_put", "start", ("value",), "recorder.got")


def test_a_row_must_name_a_function_the_owner_defines() -> None:
    with pytest.raises(ValueError, match="expected LifoQueue to define 'put' itself"):
        Hook(queue.LifoQueue, "put", "start", (), "recorder.got")


def test_a_row_of_a_c_function_is_refused() -> None:
    with pytest.raises(ValueError, match=r"expected a Python function at SimpleQueue\.put, got"):
        Hook(queue.SimpleQueue, "put", "start", (), "recorder.got")


def test_bad_at_and_event_values_are_refused() -> None:
    with pytest.raises(ValueError, match="expected at 'start' or 'return', got 'end'"):
        Hook(queue.Queue, "_put", "end", (), "recorder.got")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expected event 'sink\.method', got 'got'"):
        Hook(queue.Queue, "_put", "start", (), "got")


def test_an_event_of_an_unknown_sink_fails_when_the_trace_starts(backend: str) -> None:
    row = Hook(Mailbox, "take", "return", (RETURN,), "mail.took")
    hooks.register([row])
    try:
        with (
            pytest.raises(ValueError, match=r"expected a sink among .*'recorder'.*, got 'mail'"),
            SequenceTrace(backend=backend),
        ):
            pass
    finally:
        hooks.unregister([row])
    assert Mailbox.__dict__["take"].__name__ == "take"


def test_register_refuses_what_is_not_a_row() -> None:
    with pytest.raises(TypeError, match="expected a Hook, got tuple"):
        hooks.register([(Mailbox, "take")])  # type: ignore[list-item]


class Postbox:
    """A channel whose deliver() takes an argument by keyword too."""

    def __init__(self) -> None:
        self._items: list[Any] = []

    def deliver(self, item: Any, priority: int) -> None:
        self._items.append((priority, item))

    def take(self) -> Any:
        return self._items.pop(0)[1]


POSTBOX_ROWS = [
    Hook(Postbox, "deliver", "start", ("self", "item"), "recorder.put", wrap=True),
    Hook(
        Postbox, "take", "return", ("self", RETURN), "recorder.got", "recorder.pending", wrap=True
    ),
]


def test_a_wrapped_row_is_a_wrapper_with_the_functions_signature_on_either_backend(
    backend: str,
) -> None:
    deliver, take = Postbox.__dict__["deliver"], Postbox.__dict__["take"]
    box = Postbox()
    hooks.register(POSTBOX_ROWS)
    try:
        with SequenceTrace(backend=backend) as trace:
            wrapper = Postbox.__dict__["deliver"]
            box.deliver("a", 1)
            box.deliver(priority=2, item="b")  # by keyword: the wrapper's own parameters
            taken = [box.take(), box.take()]
    finally:
        hooks.unregister(POSTBOX_ROWS)
    assert taken == ["a", "b"]
    assert wrapper is not deliver
    assert wrapper.__wrapped__ is deliver
    # Its own signature, not one read through __wrapped__: no *args, **kwargs.
    own = inspect.signature(wrapper, follow_wrapped=False)
    assert list(own.parameters) == ["self", "item", "priority"]
    assert own == inspect.signature(deliver)
    assert (Postbox.__dict__["deliver"], Postbox.__dict__["take"]) == (deliver, take)
    assert [(m.sender.name, m.receiver.name, m.label) for m in trace.events] == [
        ("caller (MainThread)", "caller (MainThread)", "'a'"),
        ("caller (MainThread)", "caller (MainThread)", "'b'"),
    ]


def test_a_wrapped_row_s_wrapper_is_compiled_once_for_every_trace(backend: str) -> None:
    """Each trace gets its own wrapper (its own recorder's event), from one compiled code."""
    box = Postbox()
    hooks.register(POSTBOX_ROWS)
    try:
        wrappers, traces = [], []
        for _ in range(2):
            with SequenceTrace(backend=backend) as trace:
                wrappers.append(Postbox.__dict__["deliver"])
                box.deliver("a", 1)
                box.take()
            traces.append(trace)
    finally:
        hooks.unregister(POSTBOX_ROWS)
    first, second = wrappers
    assert first is not second
    assert first.__code__ is second.__code__
    assert first.__globals__["_lk_event"] != second.__globals__["_lk_event"]
    for trace in traces:
        assert [m.label for m in trace.events] == ["'a'"]


def test_the_standard_queue_rows_are_wrapped_and_say_so() -> None:
    wrapped = [row for row in hooks.STANDARD if row.wrap]
    assert {(row.owner, row.name) for row in wrapped} == {
        (cls, name) for cls, _ in hooks.QUEUE_CLASSES for name in ("_put", "_get")
    }
    assert repr(wrapped[0]) == "Hook(Queue._put at start: recorder.put(self, item), wrapped)"
