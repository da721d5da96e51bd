"""Labels of process messages come from their pickles, rebuilt without running code."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

from livekit.trace._rebuild import Placeholder, rebuild


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Touch:
    """Unpickling this for real would create a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_plain_values_come_back_as_they_were() -> None:
    value = ("ping", 1, 2.5, None, True, b"x", [1, {"a": (2, 3)}], {1, 2}, frozenset({3}))
    assert rebuild(pickle.dumps(value)) == value


def test_builtin_exceptions_come_back_as_exceptions() -> None:
    error = rebuild(pickle.dumps(KeyError("k")))
    assert isinstance(error, KeyError)
    assert error.args == ("k",)


def test_an_object_of_another_class_reads_as_its_class_and_fields() -> None:
    point = rebuild(pickle.dumps(Point(1, 2)))
    assert isinstance(point, Placeholder)
    assert repr(point) == "Point(x=1, y=2)"
    assert point.fields == {"x": 1, "y": 2}


def test_a_pickle_that_would_run_code_runs_nothing(tmp_path: Path) -> None:
    target = tmp_path / "created"
    value = rebuild(pickle.dumps(Touch(str(target))))
    assert not target.exists()
    assert repr(value) == f"open({str(target)!r}, 'w')"
    assert repr(rebuild(pickle.dumps((os.system, "true")))) == "(system, 'true')"


def test_bytes_that_are_no_pickle_stay_bytes() -> None:
    assert rebuild(b"hello") == b"hello"
    assert rebuild(pickle.dumps("complete") + b"trailing") == pickle.dumps("complete") + b"trailing"


class _PickledByTblib:
    """Pickles as tblib does once Dask has installed it for a class."""

    def __init__(self, error: BaseException, with_attrs: bool) -> None:
        self.error, self.with_attrs = error, with_attrs

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        from tblib import pickling_support

        error = self.error
        if self.with_attrs:
            attrs = {"args": error.args, "__dict__": {}}
            return (
                pickling_support.unpickle_exception_with_attrs,
                (type(error), attrs, None, None, None, False, None),
            )
        return (pickling_support.unpickle_exception, (type(error), error.args, None, None))


def test_exceptions_pickled_by_tblib_come_back_as_exceptions() -> None:
    for with_attrs in (True, False):
        error = rebuild(pickle.dumps(_PickledByTblib(KeyError("k"), with_attrs)))
        assert isinstance(error, KeyError), with_attrs
        assert error.args == ("k",)
