"""Read a message's pickle without running anything: for its label only.

A message between processes is recorded as the bytes of its pickle (see
:mod:`livekit.trace._child`).  Unpickling them for real could run code,
and would even take file descriptors away from their receiver (a pickled
``Connection`` is rebuilt by fetching its descriptor).  :func:`rebuild`
makes only built-in values (numbers, strings, bytes, containers, built-in
exceptions); every other class or function named in the pickle becomes a
placeholder named after it, which keeps the arguments and state it was
given and runs nothing.

>>> import pickle
>>> rebuild(pickle.dumps(("ping", [1, 2], {"n": 3})))
('ping', [1, 2], {'n': 3})
>>> import decimal
>>> rebuild(pickle.dumps(decimal.Decimal("1.5")))
Decimal('1.5')
>>> rebuild(b"not a pickle")
b'not a pickle'
"""

from __future__ import annotations

import builtins
import io
import pickle
from typing import Any

_SAFE_BUILTINS = {"set", "frozenset", "bytearray", "complex", "slice", "range"}


class _Named(type):
    """The type of placeholders: a placeholder class reads as its name."""

    def __repr__(cls) -> str:
        return cls.__qualname__


class Placeholder(metaclass=_Named):
    """An object of a class the pickle named; it holds what it was given."""

    args: tuple[Any, ...]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:
        self = object.__new__(cls)
        self.args, self.state = args, None
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # A subclass of list or dict is filled after it is made.
    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    @property
    def fields(self) -> dict[str, Any]:
        """The instance attributes the pickle set (its state dict), if any."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            return merged
        return dict(state) if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        fields = self.fields
        if fields:
            inner = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        else:
            inner = ", ".join(repr(a) for a in self.args)
        return f"{type(self).__qualname__}({inner})"


# tblib (which Dask installs for the exceptions it sees) pickles an
# exception as unpickle_exception[_with_attrs](cls, args or attrs, cause,
# traceback, ...): once installed, even a KeyError travels that way.
_TBLIB_REBUILDERS = {"unpickle_exception", "unpickle_exception_with_attrs"}


def _exception_from_tblib(cls: Any, given: Any, *rest: Any) -> Any:
    """The exception tblib pickled, made from its (safe) class and arguments only."""
    args = given.get("args", ()) if isinstance(given, dict) else given
    try:
        return cls(*args)
    except Exception:  # arguments its class refuses: keep the class's name
        name = str(getattr(cls, "__name__", "exception"))
        named: type = _Named(name, (Placeholder,), {})
        return named(*args)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self._made: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "tblib.pickling_support" and name in _TBLIB_REBUILDERS:
            return _exception_from_tblib
        if module == "builtins":
            value = getattr(builtins, name, None)
            if name in _SAFE_BUILTINS or (
                isinstance(value, type) and issubclass(value, BaseException)
            ):
                return value
        made = self._made.get((module, name))
        if made is None:
            short = name.rsplit(".", 1)[-1]
            attributes = {"__module__": module, "__qualname__": name}
            made = self._made[(module, name)] = _Named(short, (Placeholder,), attributes)
        return made


def rebuild(data: bytes) -> Any:
    """The value pickled in ``data``, with placeholders; ``data`` itself if it is no pickle."""
    file = io.BytesIO(data)
    try:
        value = _Unpickler(file).load()
    except Exception:  # raw bytes (send_bytes), or a pickle of a newer protocol
        return data
    return value if file.tell() == len(data) else data


def name_of(value: Any) -> str:
    """The name of a function or class as rebuilt (placeholder or not)."""
    return str(getattr(value, "__name__", None) or value)


__all__ = ["Placeholder", "name_of", "rebuild"]
