"""Capture with ``sys.monitoring`` (PEP 669): Python 3.12 and later.

livekit takes a free monitoring tool id and turns on *local* events
(``PY_START``, ``PY_RETURN``) on just the code objects listed in
:mod:`livekit.trace.hooks`.  Every other function runs exactly as fast
as without a trace (``sys.setprofile`` would slow every call about ten
times), and a function that was already running when the trace began,
such as a worker blocked in ``Queue.get``, is seen when it next calls
the watched code.  The events are turned off and the tool id is freed
when the trace ends.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import CodeType
from typing import Any

from livekit.trace import hooks
from livekit.trace.recorder import Recorder

# Ids 0-2 and 5 are named for debuggers, coverage, profilers, optimizers;
# 3 and 4 are unclaimed, so livekit asks for those first.
_PREFERRED_TOOL_IDS = (4, 3, 2, 1, 0, 5)
_TOOL_NAME = "livekit.seq_trace"

# A handler that needs the watched function's locals reads them from
# ``sys._getframe(2)`` (itself, the callback, then the watched frame): most
# calls need none, and fetching a frame costs.
StartHandler = Callable[[], None]
ReturnHandler = Callable[[Any], None]

#: (code, on_start, on_return) added by other capture modules (multiprocessing).
EXTRA_HOOKS: list[
    Callable[[Recorder], list[tuple[CodeType, StartHandler | None, ReturnHandler | None]]]
] = []


class MonitoringBackend:
    """Register local monitoring events for one recorder."""

    name = "monitoring"

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._tool: int | None = None
        self._starts: dict[CodeType, StartHandler] = {}
        self._returns: dict[CodeType, ReturnHandler] = {}

    def install(self) -> None:
        monitoring = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        events = monitoring.events
        self._collect()
        for tool in _PREFERRED_TOOL_IDS:
            if monitoring.get_tool(tool) is None:
                monitoring.use_tool_id(tool, _TOOL_NAME)
                self._tool = tool
                break
        else:
            raise RuntimeError(
                "cannot trace: all six sys.monitoring tool ids are in use "
                "(debuggers, coverage or profilers); stop one and try again"
            )
        try:
            starts, returns = self._starts, self._returns

            def on_start(code: CodeType, offset: int) -> None:
                starts[code]()

            def on_return(code: CodeType, offset: int, value: Any) -> None:
                returns[code](value)

            monitoring.register_callback(self._tool, events.PY_START, on_start)
            monitoring.register_callback(self._tool, events.PY_RETURN, on_return)
            for code in {*starts, *returns}:
                wanted = (events.PY_START if code in starts else 0) | (
                    events.PY_RETURN if code in returns else 0
                )
                monitoring.set_local_events(self._tool, code, wanted)
        except BaseException:
            self.uninstall()
            raise

    def uninstall(self) -> None:
        if self._tool is None:
            return
        monitoring = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        events = monitoring.events
        for code in {*self._starts, *self._returns}:
            monitoring.set_local_events(self._tool, code, 0)
        monitoring.register_callback(self._tool, events.PY_START, None)
        monitoring.register_callback(self._tool, events.PY_RETURN, None)
        monitoring.free_tool_id(self._tool)
        self._tool = None

    def _collect(self) -> None:
        recorder = self._recorder
        getframe = sys._getframe

        # Reading a frame's locals is the dearest step on 3.12 (it builds
        # a dict): do it only for a message that will be drawn.
        def put() -> None:
            sender = recorder.who()
            if sender is None:
                return
            if recorder.arrows >= recorder.max_messages and not recorder.narrowed:
                recorder.count()
                return
            local = getframe(2).f_locals
            recorder.put_by(sender, local["self"], local["item"])

        def getter(newest_first: bool) -> ReturnHandler:
            def got(item: Any) -> None:
                if recorder._pending:
                    recorder.got(getframe(2).f_locals["self"], item, newest_first)

            return got

        def this() -> Any:
            return getframe(3).f_locals["self"]

        for cls, newest_first in hooks.QUEUE_CLASSES:
            self._starts[cls._put.__code__] = put
            self._returns[cls._get.__code__] = getter(newest_first)
        self._starts[hooks.THREAD.start.__code__] = lambda: recorder.thread_starting(this())

        def future_made(_: None) -> None:
            frame = getframe(2)
            caller = frame.f_back
            if caller is not None and caller.f_code is hooks.SUBMIT_CODE:
                local = caller.f_locals
                recorder.work_submitted(
                    frame.f_locals["self"], local["fn"], local["args"], local["kwargs"]
                )

        def work_running(running: bool) -> None:
            if running:
                recorder.work_started(getframe(2).f_locals["self"])

        self._returns[hooks.FUTURE.__init__.__code__] = future_made
        self._returns[hooks.FUTURE.set_running_or_notify_cancel.__code__] = work_running

        def set_result() -> None:
            local = getframe(2).f_locals
            recorder.future_settled(local["self"], local["result"], None)

        def set_exception() -> None:
            local = getframe(2).f_locals
            recorder.future_settled(local["self"], None, local["exception"])

        self._starts[hooks.FUTURE.set_result.__code__] = set_result
        self._starts[hooks.FUTURE.set_exception.__code__] = set_exception
        self._returns[hooks.EVENT_LOOP.create_task.__code__] = recorder.task_created
        for extra in EXTRA_HOOKS:
            for code, on_start, on_return in extra(recorder):
                if on_start is not None:
                    self._starts[code] = on_start
                if on_return is not None:
                    self._returns[code] = on_return
