"""Capture by scoped patching: Python 3.11 (and a fallback on newer ones).

While a trace runs, each function named by a row of the hook table
(:mod:`livekit.trace.hooks`) is replaced by a thin wrapper that reads the
row's values, hands them to the row's event, and calls the original.
Unrelated code runs at full speed; the classes get their own functions
back when the trace ends, even when the traced code raised.
"""

from __future__ import annotations

import functools
import inspect
import keyword
import operator
import sys
from collections.abc import Callable, Mapping, Sequence
from types import CodeType
from typing import Any

from livekit.trace import hooks
from livekit.trace._patches import Patches
from livekit.trace.hooks import Hook

# Reads (args, kwargs, returned, gate value, caller frame) -> the row's values.
Fire = Callable[[tuple[Any, ...], dict[str, Any], Any], None]

_MISSING = object()


# Every wrapper passes on whatever else it is given: signatures grow
# between versions.  A wrapper of ``_WorkItem.run(self)`` refused the
# context that 3.14 passes it, so every pool worker died and the traced
# program waited forever in ``Future.result()``.


class PatchingBackend(hooks.Backend):
    """Install and remove the wrappers that the rows ask for."""

    name = "patching"

    def __init__(self, rows: Sequence[Hook], sinks: Mapping[str, object]) -> None:
        super().__init__(rows, sinks)
        self._patches = Patches()

    def install(self) -> None:
        try:
            for group in hooks.grouped(self._rows).values():
                first = group[0]
                original = vars(first.owner)[first.name]
                made = _quick_wrapper(group[0], original, self._sinks) if len(group) == 1 else None
                if made is None:
                    starts = [
                        _fire(row, original, self._sinks) for row in group if row.at == "start"
                    ]
                    returns = [
                        _fire(row, original, self._sinks) for row in group if row.at == "return"
                    ]
                    made = _wrapper(original, starts, returns)
                self._patches.set(first.owner, first.name, functools.wraps(original)(made))
        except BaseException:
            self.uninstall()
            raise

    def uninstall(self) -> None:
        self._patches.restore()


def _wrapper(original: Any, starts: list[Fire], returns: list[Fire]) -> Callable[..., Any]:
    if returns and inspect.iscoroutinefunction(original):
        # What a coroutine function returns is its coroutine: read the value
        # the coroutine returns.
        async def around_coroutine(*args: Any, **kwargs: Any) -> Any:
            for fire in starts:
                fire(args, kwargs, None)
            result = await original(*args, **kwargs)
            for fire in returns:
                fire(args, kwargs, result)
            return result

        return around_coroutine
    # The common shapes get a wrapper of their own: it runs on every call.
    if len(starts) == 1 and not returns:
        start = starts[0]

        def at_one_start(*args: Any, **kwargs: Any) -> Any:
            start(args, kwargs, None)
            # Without keywords, args is passed on as it is: no dict is copied.
            return original(*args, **kwargs) if kwargs else original(*args)

        return at_one_start
    if len(returns) == 1 and not starts:
        end = returns[0]

        def at_one_return(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs) if kwargs else original(*args)
            end(args, kwargs, result)
            return result

        return at_one_return
    if not returns:

        def at_start(*args: Any, **kwargs: Any) -> Any:
            for fire in starts:
                fire(args, kwargs, None)
            return original(*args, **kwargs)

        return at_start

    def around(*args: Any, **kwargs: Any) -> Any:
        for fire in starts:
            fire(args, kwargs, None)
        result = original(*args, **kwargs)
        for fire in returns:
            fire(args, kwargs, result)
        return result

    return around


def _fire(row: Hook, original: Any, sinks: Mapping[str, object]) -> Fire:
    """The function that reads ``row``'s values from a call and hands them on."""
    event = hooks.resolve(row.event, sinks)
    gate = hooks.resolve_gate(row.gate, sinks) if row.gate else None
    calls = callable(gate)
    called_from, not_from, adapt = row.called_from, row.not_from, row.adapt
    steps = hooks.plan(row)
    plain = gate is None and called_from is None and not_from is None and adapt is None
    if plain and steps == (("return", ""),):
        # create_task's row, run for every task: the value returned, as it is.
        def fire_returned(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
            event(result)

        return fire_returned
    getters = _getters(row, original)
    getframe = sys._getframe

    def fire(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        passed = None
        if gate is not None:
            passed = gate() if calls else gate
            if not passed:
                return
        caller = None
        if called_from is not None or not_from is not None:
            caller = getframe(2)  # this, the wrapper, its caller
            if called_from is not None and caller.f_code is not called_from:
                return
            if caller.f_code is not_from:
                return
        values = [get(args, kwargs, result, passed, caller) for get in getters]
        event(*(values if adapt is None else adapt(*values)))

    return fire


@hooks.per_row
def _getters(row: Hook, original: Any) -> tuple[Callable[..., Any], ...]:
    """The readers of ``row``'s values from a call of ``original`` (made once
    per row and function: they depend on neither the trace nor its sinks)."""
    code = original.__code__
    return tuple(_getter(kind, name, code, original) for kind, name in hooks.plan(row))


def _getter(kind: str, name: str, code: CodeType, function: Any) -> Callable[..., Any]:
    """Read one value from ``(args, kwargs, result, gate value, caller frame)``."""
    if kind == "return":
        return lambda args, kwargs, result, passed, caller: result
    if kind == "gate":
        return lambda args, kwargs, result, passed, caller: passed
    if kind == "caller":
        return lambda args, kwargs, result, passed, caller: caller.f_locals[name]
    return _argument(name, code, function)


def _argument(name: str, code: CodeType, function: Any) -> Callable[..., Any]:
    """Read the argument ``name`` of a call of ``function`` from its ``args``, ``kwargs``."""
    positional = code.co_varnames[: code.co_argcount]
    varargs_at = code.co_argcount + code.co_kwonlyargcount
    has_varargs = bool(code.co_flags & 0x04)
    if has_varargs and code.co_varnames[varargs_at] == name:
        count = code.co_argcount
        return lambda args, kwargs, result, passed, caller: args[count:]
    if code.co_flags & 0x08 and code.co_varnames[varargs_at + has_varargs] == name:
        named = set(code.co_varnames[:varargs_at])
        return lambda args, kwargs, result, passed, caller: {
            k: v for k, v in kwargs.items() if k not in named
        }
    defaults = dict(function.__kwdefaults__ or {})
    if function.__defaults__:
        defaults.update(
            zip(positional[-len(function.__defaults__) :], function.__defaults__, strict=True)
        )
    default = defaults.get(name, _MISSING)
    if name in positional:
        index = positional.index(name)

        def positional_value(
            args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, passed: Any, caller: Any
        ) -> Any:
            if index < len(args):
                return args[index]
            return kwargs.get(name, default)

        return positional_value
    return lambda args, kwargs, result, passed, caller: kwargs.get(name, default)


@hooks.per_row
def _quick_shape(row: Hook, original: Any) -> tuple[bool, tuple[int, ...]] | None:
    """Whether ``row`` reads a gate, and the indices of the arguments it reads,
    if it has the shape of :func:`_quick_wrapper`'s rows; else None.

    Worked out once per row and function: every trace starts with the table.
    """
    steps = hooks.plan(row)
    kinds = [kind for kind, _ in steps]
    with_gate = kinds[:1] == ["gate"]
    with_return = kinds[-1:] == ["return"]
    middle = steps[with_gate : len(steps) - with_return]
    code = original.__code__
    positional = code.co_varnames[: code.co_argcount]
    other_shape = (
        row.called_from is not None
        or row.not_from is not None
        or row.adapt is not None
        or not middle
        or inspect.iscoroutinefunction(original)
        or any(kind != "local" or name not in positional for kind, name in middle)
        or with_return != (row.at == "return")
        or (with_gate and with_return)
        or (with_gate and row.gate is None)
    )
    if other_shape:
        return None
    return with_gate, tuple(positional.index(name) for _, name in middle)


def _quick_wrapper(row: Hook, original: Any, sinks: Mapping[str, object]) -> Any:
    """A wrapper for a row that reads [gate], positional arguments, [returned].

    Such are the queue rows, which run for every message: the wrapper
    calls the gate and the event itself and picks the arguments from
    ``args`` by index; only a call that passes one of them by keyword takes
    the general way.  None for a row of another shape.
    """
    shape = _quick_shape(row, original)
    if shape is None:
        return None
    with_gate, indices = shape
    event = hooks.resolve(row.event, sinks)
    gate = hooks.resolve_gate(row.gate, sinks) if row.gate else None
    calls = callable(gate)
    names = [original.__code__.co_varnames[index] for index in indices]
    exact = _exact_wrapper(row, original, tuple(names), event, gate, with_gate=with_gate)
    if exact is not None:
        return exact
    need = max(indices) + 1
    single = len(indices) == 1
    pick = operator.itemgetter(*indices)
    general = _fire(row, original, sinks)

    if row.at == "start":

        def at_start(*args: Any, **kwargs: Any) -> Any:
            if len(args) < need:
                general(args, kwargs, None)
                return original(*args, **kwargs)
            passed = None
            if gate is not None:
                passed = gate() if calls else gate
                if not passed:
                    return original(*args, **kwargs)
            values = (pick(args),) if single else pick(args)
            if with_gate:
                event(passed, *values)
            else:
                event(*values)
            return original(*args, **kwargs)

        return at_start

    def at_return(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if len(args) < need:
            general(args, kwargs, result)
            return result
        if gate is not None:
            passed = gate() if calls else gate
            if not passed:
                return result
        if single:
            event(pick(args), result)
        else:
            event(*pick(args), result)
        return result

    return at_return


# The names a generated wrapper's body uses besides the watched function's
# parameters (checked not to clash with them).
_OWN_NAMES = ("_lk_wrapper", "_lk_original", "_lk_event", "_lk_gate", "_lk_passed", "_lk_result")


def _exact_wrapper(
    row: Hook,
    original: Any,
    names: tuple[str, ...],
    event: Callable[..., Any],
    gate: Any,
    *,
    with_gate: bool,
) -> Any:
    """A wrapper with the very signature of ``original``, for a function of positional parameters.

    ``def _put(self, item)`` gets ``def _put(self, item)``: its caller's
    call is a plain call (no ``*args`` tuple or ``**kwargs`` dict is made),
    and so is the call of the original, which the interpreter runs in the
    same evaluation loop.  The queue rows run for every message, and these
    calls were a good part of what a trace cost them.  The source is made
    only from the parameters' names, which are checked to be identifiers.
    None when ``original`` has defaults, keyword-only or variable
    parameters: the general wrapper passes those on.
    """
    gate_kind = "none" if gate is None else ("call" if callable(gate) else "value")
    code = _exact_code(row, original, names, gate_kind, with_gate)
    if code is None:
        return None
    namespace = {"_lk_original": original, "_lk_event": event, "_lk_gate": gate}
    exec(code, namespace)  # noqa: S102 - made from checked identifiers only
    return namespace["_lk_wrapper"]


@hooks.per_row
def _exact_code(
    row: Hook, original: Any, names: tuple[str, ...], gate_kind: str, with_gate: bool
) -> CodeType | None:
    """The compiled module of :func:`_exact_wrapper`'s wrapper, or None.

    ``gate_kind`` is ``"none"``, ``"call"`` (a gate to call) or ``"value"``.
    The code depends only on the row and the function, not on the trace
    whose event and gate its namespace gets: compiled once, not on every
    trace start.
    """
    code = original.__code__
    parameters = code.co_varnames[: code.co_argcount]
    plain = (
        code.co_kwonlyargcount == 0
        and not code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
        and not original.__defaults__
        and not original.__kwdefaults__
        and all(p.isidentifier() and not keyword.iskeyword(p) for p in parameters)
        and not set(parameters) & set(_OWN_NAMES)
    )
    if not plain:
        return None
    signature = ", ".join(parameters)
    values = ", ".join(names)
    called = gate_kind == "call"
    if with_gate:
        # The gate's value is the event's first value: a participant, say.
        check = "_lk_passed = _lk_gate()" if called else "_lk_passed = _lk_gate"
        values = f"_lk_passed, {values}"
        test = "_lk_passed"
    else:
        check = ""
        test = "" if gate_kind == "none" else ("_lk_gate()" if called else "_lk_gate")
    if row.at == "start":
        fire = f"_lk_event({values})"
        body = [check, f"if {test}:\n        {fire}" if test else fire]
        body.append(f"return _lk_original({signature})")
    else:
        fire = f"_lk_event({values}, _lk_result)"
        body = [f"_lk_result = _lk_original({signature})", check]
        body.append(f"if {test}:\n        {fire}" if test else fire)
        body.append("return _lk_result")
    source = f"def _lk_wrapper({signature}):\n" + "".join(f"    {line}\n" for line in body if line)
    return compile(source, f"<livekit wrapper of {code.co_qualname}>", "exec")
