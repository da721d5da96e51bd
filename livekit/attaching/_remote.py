"""Getting in on CPython 3.14+: ``sys.remote_exec`` (PEP 768), no debugger needed.

The attacher writes the bootstrap's path into the target's memory; the
target's main thread runs the file at its next safe point, as it runs a
signal handler, and nothing says when that was. So the attacher polls
for the bootstrap's answer, and the bootstrap does nothing once the
attacher's deadline has passed. The target is never stopped: the pause is
the bootstrap's own run on the main thread, which only starts a thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

from livekit.attaching._target import ptrace_advice
from livekit.attaching.errors import AttachError


def inject(pid: int, script: Path) -> None:
    """Ask process ``pid`` to run the bootstrap ``script`` at its next safe point.

    Raises
    ------
    AttachError
        ``ptrace`` when the kernel refuses to let this process write into
        the target's memory, ``failed`` when the target refuses remote
        execution (``PYTHON_DISABLE_REMOTE_DEBUG``, ``-X disable-remote-debug``)
        or is not a CPython this one can read.
    """
    remote_exec = getattr(sys, "remote_exec", None)
    if remote_exec is None:  # pragma: no cover - the caller picks gdb below 3.14
        raise AttachError("failed", "sys.remote_exec needs Python 3.14 or later")
    try:
        remote_exec(pid, str(script))
    except PermissionError as error:
        raise AttachError(
            "ptrace",
            f"the kernel did not let this process write into process {pid} "
            f"({error}): {ptrace_advice(pid)}",
        ) from None
    except (RuntimeError, OSError) as error:
        cause: BaseException = error
        while cause.__context__ is not None:
            cause = cause.__context__
        raise AttachError(
            "failed",
            f"sys.remote_exec could not reach process {pid}: {cause}. If it runs with "
            "PYTHON_DISABLE_REMOTE_DEBUG or -X disable_remote_debug, it refuses remote "
            f"code on purpose; `livekit attach --dump {pid}` still shows its stacks",
        ) from None
