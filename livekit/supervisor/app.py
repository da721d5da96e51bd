"""livekit's own application: the root supervisor of livekit's background work.

livekit's live chart listeners, node server and local kernel run as
children of :func:`app_supervisor`, named ``"livekit"``, so that
``app_tree("livekit")`` draws what really runs and no livekit thread
outlives the interpreter.
"""

from __future__ import annotations

import atexit
import threading

from livekit.supervisor.core import Supervisor

_app_lock = threading.Lock()
_app: Supervisor | None = None
_atexit_registered = False


def app_supervisor() -> Supervisor:
    """Return livekit's root supervisor, named ``"livekit"``, starting it on first use.

    livekit's background work (live chart listeners, the node server, the
    local kernel) runs as its children, added with
    :meth:`~livekit.Supervisor.start_child`; ``app_tree("livekit")`` draws it.  It
    is stopped when the interpreter exits, so no livekit thread outlives
    the program.  If it gave up (restart intensity), the next call starts
    a fresh one.

    Examples
    --------
    >>> from livekit import child, stopping
    >>> sup = app_supervisor()
    >>> sup.name, sup.alive
    ('livekit', True)
    >>> def listen():
    ...     stopping().wait()
    >>> name = sup.start_child(child(listen, name="doctest-listener", restart="transient"))
    >>> sup.terminate_child(name)
    True
    >>> sup.delete_child(name)
    """
    global _app, _atexit_registered  # noqa: PLW0603 - one root per interpreter, on purpose
    with _app_lock:
        if _app is None or not _app.alive:
            _app = Supervisor([], name="livekit", strategy="one_for_one").start()
            # What app_tree("livekit") draws.
            from livekit.trees.protocol import add_root

            add_root(_app, app="livekit")
        if not _atexit_registered:
            atexit.register(_stop_app)
            _atexit_registered = True
        return _app


def _stop_app() -> None:
    with _app_lock:
        app = _app
    if app is not None:
        app.stop()
