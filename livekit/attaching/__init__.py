"""Attach: make a running Python process a node without changing its code.

The package is ``livekit.attaching``, not ``livekit.attach``: a subpackage
of that name would shadow the function :func:`livekit.attach` (as a
``node/`` package once shadowed :func:`livekit.node`).

:func:`attach` gets into an unmodified CPython 3.11+ process of this host
and of the caller's own user, and starts a livekit node there; from then on
:func:`livekit.rpc.call`, :func:`~livekit.spawn` and everything built on
them work on it. :func:`detach` stops that node and leaves the process as
it found it. :func:`dump` looks at a process's threads and stacks without
running anything in it.

How it gets in: gdb on 3.11-3.13 (:mod:`livekit.attaching._gdb`),
``sys.remote_exec`` on 3.14+ (:mod:`livekit.attaching._remote`); what runs in
the target: :mod:`livekit.attaching._bootstrap`, then
:mod:`livekit.attaching._agent`.

The node gets a fresh random cookie, written (mode 0600) to
``<livekit home>/attach/<name>.cookie`` of the attaching user, so only that
user can connect; calling :func:`attach` again, from any interpreter of
that user, returns the node's name and loads that cookie.

Importing this package is cheap: the attach machinery loads on use.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from livekit.attaching.errors import AttachError, Reason
from livekit.mermaid import Mermaid

if TYPE_CHECKING:
    from livekit.attaching._bootstrap import Exchange

__all__ = ["AttachError", "Attached", "attach", "detach", "dump", "inject"]


@dataclass(frozen=True)
class Attached:
    """What an attach did: the node's name, and what it cost the target.

    Examples
    --------
    >>> Attached("python42@box", 42, "3.11", "gdb", 0.08, 0.9, False).pause
    0.08
    """

    #: The node's full name, for :func:`livekit.rpc.call` and the rest.
    name: str
    pid: int
    #: The target's Python version, ``3.11``.
    python: str
    #: ``"gdb"`` (3.11-3.13), ``"remote_exec"`` (3.14+), or ``"existing"``.
    method: str
    #: How long the target was held, in seconds. With gdb, while it attached
    #: and from the safe point to the detach, less the call, during which
    #: every thread runs; with ``remote_exec``, 0, since nothing stops it.
    pause: float
    #: Seconds from the call to the node's answer.
    elapsed: float
    #: Whether the process was already a node, so that nothing was injected.
    existing: bool


def inject(pid: int, *, name: str | None = None, timeout: float = 10.0) -> Attached:
    """Attach to process ``pid`` like :func:`~livekit.attach`, and say what it took.

    Parameters
    ----------
    pid
        A process of this host, of your own user, running CPython 3.11+
        of the same version as this interpreter.
    name
        The node's short name; ``python<pid>`` when None.
    timeout
        Seconds to wait for the node to answer.

    Raises
    ------
    AttachError
        Its ``reason`` says why, its message what to do. In every case the
        target runs on as before.

    Examples
    --------
    >>> inject(os.getpid())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    livekit.attaching.errors.AttachError: process ... is this process: make it a node with ...
    """
    from livekit.attaching import _bootstrap, _target
    from livekit.nodes import registry
    from livekit.nodes.cookie import read_cookie_file, set_cookie

    began = time.monotonic()
    if name is not None:
        registry.check_short_name(name)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"expected a timeout in seconds greater than 0, got {timeout!r}")
    target = _target.inspect(pid)
    existing = _node_of(target.pid)
    if existing is not None:
        full = f"{existing}@{registry.this_host()}"
        cookie_file = _bootstrap.cookie_file(existing)
        if cookie_file.exists():
            set_cookie(full, read_cookie_file(cookie_file))
        return Attached(
            full, target.pid, target.version, "existing", 0.0, time.monotonic() - began, True
        )
    _target.check_version(target)
    short = name or f"python{target.pid}"
    holder = registry.lookup(short)
    if holder is not None:
        raise AttachError(
            "failed",
            f"the node name {short!r} is in use by process {holder.pid} on this host: "
            "choose another with name=...",
        )
    cookie_file = _bootstrap.cookie_file(short)
    cookie = _new_cookie()
    _bootstrap.write_cookie(cookie_file, cookie)
    deadline = time.time() + timeout
    exchange = _bootstrap.Exchange.create(_bootstrap.request_for(short, deadline))
    answer = None
    try:
        pause = _inject(target.pid, exchange, timeout)
        # One second past the deadline: the agent may have checked it just in time.
        answer = exchange.answer(deadline + 1.0, lambda: _alive(target.pid))
    finally:
        exchange.remove(script=sys_remote_exec() is None or answer is not None)
        if answer is None or not answer.get("ok"):
            cookie_file.unlink(missing_ok=True)
    if answer is None:
        raise AttachError(
            "timeout" if _alive(target.pid) else "no-process",
            _silent(target.pid, timeout),
        )
    if not answer.get("ok"):
        reason = cast(Reason, answer.get("reason", "failed"))
        raise AttachError(reason, str(answer.get("message")))
    full = str(answer["name"])
    set_cookie(full, cookie)
    return Attached(
        full,
        target.pid,
        target.version,
        "gdb" if sys_remote_exec() is None else "remote_exec",
        pause,
        time.monotonic() - began,
        bool(answer.get("existing")),
    )


def attach(pid: int, *, name: str | None = None, timeout: float = 10.0) -> str:
    """Make the running Python process ``pid`` a node, without changing its code; return its name.

    The process must run on this host, as your own user, the same CPython
    version (3.11 or later) as this interpreter. On 3.11-3.13 livekit gets
    in through gdb, which stops the process for a moment (about 0.1 s
    here); on 3.14+ through ``sys.remote_exec``, which does not stop it.
    A small bootstrap then starts a node there with a fresh random cookie,
    which only your user can read. Attaching to a process that is already
    a node returns its name; from any interpreter of yours, that also
    loads its cookie, so ``rpc.call`` works at once.

    Parameters
    ----------
    pid
        The process to attach to.
    name
        The node's short name; ``python<pid>`` when None.
    timeout
        Seconds to wait for the node to answer.

    Returns
    -------
    str
        The node's full name, ``name@host``.

    Raises
    ------
    AttachError
        With a ``reason`` (``no-gdb``, ``ptrace``, ``not-cpython``,
        ``version``, ``timeout``, ``other-user``, ...) and a message that
        says what to do. The target runs on as before in every case.

    Examples
    --------
    >>> import subprocess, sys, livekit
    >>> target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    >>> attach(target.pid, timeout=0)
    Traceback (most recent call last):
    ValueError: expected a timeout in seconds greater than 0, got 0
    >>> target.kill(); target.wait()
    -9
    """
    return inject(pid, name=name, timeout=timeout).name


def detach(name: str, *, timeout: float = 10.0) -> None:
    """Stop the node that :func:`~livekit.attach` started in another process.

    Its threads end, its socket and registry entry go, ``sys.path`` and
    the environment are as they were: the process's threads and file
    descriptors are back to their count before the attach. The modules
    livekit imported stay loaded (Python cannot unload them).

    Parameters
    ----------
    name
        The node's name, full (``python42@host``) or short (``python42``).
    timeout
        Seconds to wait for the node to stop.

    Raises
    ------
    AttachError
        ``not-attached`` if no such node runs, or it was not started by
        an attach; ``timeout``.

    Examples
    --------
    >>> detach("no-such-node")
    Traceback (most recent call last):
    livekit.attaching.errors.AttachError: no node named 'no-such-node' runs on this host
    """
    from livekit.attaching import _bootstrap
    from livekit.nodes import NodeError, disconnect, registry
    from livekit.nodes.client import call
    from livekit.nodes.cookie import read_cookie_file, set_cookie

    short = registry.check_short_name(name.partition("@")[0] if isinstance(name, str) else name)
    entry = registry.lookup(short)
    if entry is None:
        raise AttachError("not-attached", f"no node named {short!r} runs on this host")
    cookie_file = _bootstrap.cookie_file(short)
    if not cookie_file.exists():
        raise AttachError(
            "not-attached",
            f"node {short!r} (process {entry.pid}) was not started by livekit attach "
            f"(there is no {cookie_file}): stop it from inside with livekit.stop_node()",
        )
    full = f"{short}@{registry.this_host()}"
    set_cookie(full, read_cookie_file(cookie_file))
    done = _bootstrap.detached_file(short)
    done.unlink(missing_ok=True)
    deadline = time.monotonic() + timeout
    try:
        try:
            asked = call(full, "livekit.attaching._agent", "detach", timeout=timeout)
        except NodeError:
            asked = True  # the node may close the link before its answer is out
        if not asked:
            raise AttachError("not-attached", f"node {full} was not started by livekit attach")
        while not done.exists():
            if not _alive(entry.pid):
                return
            if time.monotonic() > deadline:
                raise AttachError(
                    "timeout", f"node {full} did not stop within {timeout:g} s; it still runs"
                )
            time.sleep(0.01)
    finally:
        disconnect(full)
    cookie_file.unlink(missing_ok=True)
    done.unlink(missing_ok=True)


def dump(pid: int) -> Mermaid:
    """Draw the threads of process ``pid`` and their stacks, without running code in it.

    Uses py-spy on 3.11-3.13 (``pip install livekit-introspect[attach]``)
    and CPython's remote unwinder on 3.14+, which also draws asyncio tasks
    and what each awaits. Works where :func:`~livekit.attach` is refused, within
    what the kernel lets you read: root may look at any process.

    Examples
    --------
    >>> dump(-1)
    Traceback (most recent call last):
    ValueError: expected a positive process id, got -1
    """
    from livekit.attaching import stacks

    return stacks.dump(pid)


def sys_remote_exec() -> object:
    """Return ``sys.remote_exec`` where livekit uses it (3.14+), else None."""
    import sys

    return getattr(sys, "remote_exec", None) if sys.version_info >= (3, 14) else None


def _inject(pid: int, exchange: Exchange, timeout: float) -> float:
    if sys_remote_exec() is None:
        from livekit.attaching import _gdb

        return _gdb.inject(
            pid, exchange.script, exchange.script.with_suffix(".gdb.py"), timeout=timeout
        )
    from livekit.attaching import _remote

    _remote.inject(pid, exchange.script)
    return 0.0


def _node_of(pid: int) -> str | None:
    """The short name of the live node that process ``pid`` serves, if any."""
    from livekit.nodes import registry

    for entry in registry.entries():
        if entry.pid == pid:
            return entry.name
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited, though its pid stays until it is reaped.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            return file.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _new_cookie() -> str:
    import secrets

    return secrets.token_urlsafe(32)


def _silent(pid: int, timeout: float) -> str:
    if not _alive(pid):
        return f"process {pid} exited before its node answered"
    if sys_remote_exec() is not None:
        return (
            f"process {pid} did not run the bootstrap within {timeout:g} s: sys.remote_exec "
            "runs it on the main thread at its next safe point, and that thread is busy in C "
            "code (a long sleep, a lock, a system call without timeout). Nothing was started; "
            "if the bootstrap runs later it sees that it is too late and does nothing. "
            f"`livekit attach --dump {pid}` shows what the main thread waits for"
        )
    return (
        f"the node in process {pid} did not answer within {timeout:g} s after gdb ran the "
        "bootstrap (importing livekit there may be slow): try a longer timeout"
    )
