"""Capture by scoped patching: Python 3.11 (and a fallback on newer ones).

While a trace runs, a handful of methods of the standard library's
classes (listed in :mod:`livekit.trace.hooks`) are replaced by thin
wrappers that report to the recorder and call the original.  Unrelated
code runs at full speed; the classes get their own methods back when the
trace ends, even when the traced code raised.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from livekit.trace import hooks
from livekit.trace.recorder import Recorder

# (class or module, attribute name, original value)
Patch = tuple[Any, str, Any]


# Every wrapper passes on whatever else it is given: signatures grow
# between versions.  A wrapper of ``_WorkItem.run(self)`` refused the
# context that 3.14 passes it, so every pool worker died and the traced
# program waited forever in ``Future.result()``.


class PatchingBackend:
    """Install and remove the wrappers for one recorder."""

    name = "patching"

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._saved: list[Patch] = []

    def install(self) -> None:
        recorder = self._recorder
        try:
            for cls, newest_first in hooks.QUEUE_CLASSES:
                self._wrap(cls, "_put", _put_wrapper(recorder))
                self._wrap(cls, "_get", _get_wrapper(recorder, newest_first))
            self._wrap(hooks.THREAD, "start", _start_wrapper(recorder))
            self._wrap(hooks.FUTURE, "__init__", _future_init_wrapper(recorder))
            self._wrap(hooks.FUTURE, "set_running_or_notify_cancel", _running_wrapper(recorder))
            self._wrap(hooks.FUTURE, "set_result", _set_result_wrapper(recorder))
            self._wrap(hooks.FUTURE, "set_exception", _set_exception_wrapper(recorder))
            self._wrap(hooks.EVENT_LOOP, "create_task", _create_task_wrapper(recorder))
            for cls, name, make in EXTRA_PATCHES:
                self._wrap(cls, name, make(recorder))
        except BaseException:
            self.uninstall()
            raise

    def uninstall(self) -> None:
        # Newest first, so that a method patched twice ends as it began.
        while self._saved:
            cls, name, original = self._saved.pop()
            setattr(cls, name, original)

    def _wrap(self, cls: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = cls.__dict__[name]
        wrapper = functools.wraps(original)(make(original))
        self._saved.append((cls, name, original))
        setattr(cls, name, wrapper)


#: (class, method, make(recorder) -> make(original) -> wrapper) added by
#: other capture modules (multiprocessing).
EXTRA_PATCHES: list[tuple[Any, str, Callable[[Recorder], Callable[[Any], Any]]]] = []


def _put_wrapper(recorder: Recorder) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        def _put(self: Any, item: Any, *args: Any, **kwargs: Any) -> None:
            original(self, item, *args, **kwargs)
            recorder.put(self, item)

        return _put

    return make


def _get_wrapper(recorder: Recorder, newest_first: bool) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        def _get(self: Any, *args: Any, **kwargs: Any) -> Any:
            item = original(self, *args, **kwargs)
            recorder.got(self, item, newest_first)
            return item

        return _get

    return make


def _start_wrapper(recorder: Recorder) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        def start(self: Any, *args: Any, **kwargs: Any) -> None:
            recorder.thread_starting(self)
            original(self, *args, **kwargs)

        return start

    return make


def _future_init_wrapper(recorder: Recorder) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807 - the name it replaces
            original(self, *args, **kwargs)
            caller = sys._getframe(1)
            if caller.f_code is hooks.SUBMIT_CODE:
                local = caller.f_locals
                recorder.work_submitted(self, local["fn"], local["args"], local["kwargs"])

        return __init__

    return make


def _running_wrapper(recorder: Recorder) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        def set_running_or_notify_cancel(self: Any, *args: Any, **kwargs: Any) -> bool:
            running: bool = original(self, *args, **kwargs)
            if running:
                recorder.work_started(self)
            return running

        return set_running_or_notify_cancel

    return make


def _set_result_wrapper(recorder: Recorder) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        def set_result(self: Any, result: Any, *args: Any, **kwargs: Any) -> None:
            recorder.future_settled(self, result, None)
            original(self, result, *args, **kwargs)

        return set_result

    return make


def _set_exception_wrapper(recorder: Recorder) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        def set_exception(self: Any, exception: Any, *args: Any, **kwargs: Any) -> None:
            recorder.future_settled(self, None, exception)
            original(self, exception, *args, **kwargs)

        return set_exception

    return make


def _create_task_wrapper(recorder: Recorder) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        def create_task(self: Any, *args: Any, **kwargs: Any) -> Any:
            task = original(self, *args, **kwargs)
            recorder.task_created(task)
            return task

        return create_task

    return make
