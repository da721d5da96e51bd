"""Capture with ``sys.monitoring`` (PEP 669): Python 3.12 and later.

livekit takes a free monitoring tool id and turns on *local* events
(``PY_START``, ``PY_RETURN``) on just the code objects that the rows of the hook table
(:mod:`livekit.trace.hooks`) name.  Every other function runs exactly as fast
as without a trace (``sys.setprofile`` would slow every call about ten
times), and a function that was already running when the trace began,
such as a worker blocked in ``Queue.get``, is seen when it next calls
the watched code.  The events are turned off and the tool id is freed
when the trace ends.

Rows marked ``wrap`` (:class:`~livekit.trace.hooks.Hook`), the queue
methods that every message passes through, get the patching backend's
wrappers instead: a wrapper is handed the values a handler would read from
the watched frame's locals, which cost more than the rest of the event.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Mapping, Sequence
from types import CodeType
from typing import Any

from livekit.trace import hooks
from livekit.trace.hooks import Hook
from livekit.trace.patching import PatchingBackend

# Ids 0-2 and 5 are named for debuggers, coverage, profilers, optimizers;
# 3 and 4 are unclaimed, so livekit asks for those first.
_PREFERRED_TOOL_IDS = (4, 3, 2, 1, 0, 5)
_TOOL_NAME = "livekit.seq_trace"

# A handler reads the watched function's locals from ``sys._getframe(2)``
# (itself, the callback, then the watched frame), and only after the row's
# gate let it: most calls need nothing, and fetching a frame costs.
Handler = Callable[[Any], None]


class MonitoringBackend(hooks.Backend):
    """Register local monitoring events for the rows of the hook table."""

    name = "monitoring"

    def __init__(self, rows: Sequence[Hook], sinks: Mapping[str, object]) -> None:
        super().__init__(rows, sinks)
        self._tool: int | None = None
        self._starts: dict[CodeType, Handler] = {}
        self._returns: dict[CodeType, Handler] = {}
        # Rows that ask for a wrapper (Hook.wrap) get the patching backend's.
        self._wrapped = PatchingBackend([row for row in self._rows if row.wrap], sinks)

    def install(self) -> None:
        monitoring = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        events = monitoring.events
        self._collect()  # before the wrappers go in: the code of the originals
        self._wrapped.install()
        for tool in _PREFERRED_TOOL_IDS:
            if monitoring.get_tool(tool) is None:
                monitoring.use_tool_id(tool, _TOOL_NAME)
                self._tool = tool
                break
        else:
            self._wrapped.uninstall()
            raise RuntimeError(
                "cannot trace: all six sys.monitoring tool ids are in use "
                "(debuggers, coverage or profilers); stop one and try again"
            )
        try:
            starts, returns = self._starts, self._returns

            def on_start(code: CodeType, offset: int) -> None:
                starts[code](None)

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
        self._wrapped.uninstall()
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
        rows: dict[tuple[CodeType, str], list[Hook]] = {}
        for row in self._rows:
            if not row.wrap:
                rows.setdefault((hooks.code_of(row), row.at), []).append(row)
        for (code, at), group in rows.items():
            table = self._starts if at == "start" else self._returns
            if len(group) == 1:
                table[code] = _handler(group[0], self._sinks, 2)
            else:
                table[code] = _together([_handler(row, self._sinks, 3) for row in group])


def _together(handlers: list[Handler]) -> Handler:
    """One handler for several rows of one function (each reads one frame deeper)."""

    def together(returned: Any) -> None:
        for handler in handlers:
            handler(returned)

    return together


def _handler(row: Hook, sinks: Mapping[str, object], depth: int) -> Handler:
    """The handler that reads ``row``'s values from the watched frame.

    ``depth`` is how far up the watched frame is: this, the callback (and
    :func:`_together`), then the watched frame.
    """
    event = hooks.resolve(row.event, sinks)
    gate = hooks.resolve_gate(row.gate, sinks) if row.gate else None
    calls = callable(gate)
    called_from, not_from, adapt = row.called_from, row.not_from, row.adapt
    steps = hooks.plan(row)
    getframe = sys._getframe
    plain = called_from is None and not_from is None and adapt is None
    if plain and gate is None and steps == (("return", ""),):
        returned_only: Handler = event  # it reads the value returned, all a handler is given
        return returned_only
    quick = _quick_handler(steps, event, gate, depth) if plain else None
    if quick is not None:
        return quick

    def handler(returned: Any) -> None:
        passed = None
        if gate is not None:
            passed = gate() if calls else gate
            if not passed:
                return
        frame = getframe(depth)
        caller = frame.f_back
        if called_from is not None and (caller is None or caller.f_code is not called_from):
            return
        if not_from is not None and caller is not None and caller.f_code is not_from:
            return
        values = []
        local = None
        for kind, name in steps:
            if kind == "local":
                if local is None:
                    local = frame.f_locals
                values.append(local[name])
            elif kind == "return":
                values.append(returned)
            elif kind == "gate":
                values.append(passed)
            else:
                assert caller is not None  # noqa: S101 - checked with called_from
                values.append(caller.f_locals[name])
        event(*(values if adapt is None else adapt(*values)))

    return handler


def _quick_handler(
    steps: tuple[hooks.Read, ...],
    event: Callable[..., Any],
    gate: Callable[[], Any] | None,
    depth: int,
) -> Handler | None:
    """A handler for rows that read [gate], locals, [returned], as the queue rows do.

    They run for every message: reading the frame's locals (a dict built on
    3.12, a proxy on 3.13) is their dearest step, and happens once.
    """
    kinds = [kind for kind, _ in steps]
    with_gate = kinds[:1] == ["gate"]
    with_return = kinds[-1:] == ["return"]
    middle = steps[with_gate : len(steps) - with_return]
    if not middle or any(kind != "local" for kind, _ in middle) or (with_gate and with_return):
        return None
    if with_gate and gate is None:
        return None
    names = [name for _, name in middle]
    calls = callable(gate)
    pick = operator.itemgetter(*names)
    single = len(names) == 1
    getframe = sys._getframe

    if with_gate:
        assert gate is not None  # noqa: S101 - checked above

        def gated(returned: Any) -> None:
            passed = gate() if calls else gate
            if not passed:
                return
            local = getframe(depth).f_locals
            if single:
                event(passed, pick(local))
            else:
                event(passed, *pick(local))

        return gated

    def plain(returned: Any) -> None:
        if gate is not None:
            passed = gate() if calls else gate
            if not passed:
                return
        local = getframe(depth).f_locals
        values = (pick(local),) if single else pick(local)
        if with_return:
            event(*values, returned)
        else:
            event(*values)

    return plain
