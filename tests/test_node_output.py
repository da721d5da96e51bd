from __future__ import annotations

import io
import threading

from livekit.nodes import _output


def route_in_a_thread(body: object) -> list[tuple[str, str]]:
    sent: list[tuple[str, str]] = []
    router = _output._Router(io.StringIO(), "out")

    def run() -> None:
        _output.route_current_thread(lambda kind, text: sent.append((kind, text)))
        try:
            body(router)  # type: ignore[operator]
        finally:
            _output.route_current_thread(None)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return sent


def test_a_print_reaches_the_caller_as_one_whole_line() -> None:
    sent = route_in_a_thread(lambda out: print("hello from", "node", 42, file=out))
    assert sent == [("out", "hello from node 42\n")]


def test_an_unfinished_line_is_sent_when_the_function_ends() -> None:
    def body(out: io.StringIO) -> None:
        print("one", file=out)
        print("two", end="", file=out)

    assert route_in_a_thread(body) == [("out", "one\n"), ("out", "two")]


def test_flush_sends_the_unfinished_line_at_once() -> None:
    def body(out: io.StringIO) -> None:
        out.write("progress: 50%")
        out.flush()
        out.write(" done\n")

    assert route_in_a_thread(body) == [("out", "progress: 50%"), ("out", " done\n")]


def test_threads_without_a_sink_write_to_the_original_stream() -> None:
    original = io.StringIO()
    router = _output._Router(original, "out")
    router.write("plain\n")
    assert original.getvalue() == "plain\n"
