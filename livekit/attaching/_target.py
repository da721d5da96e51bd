"""What can be learnt about a target process from outside, without touching it.

Everything here reads ``/proc`` (through psutil where it can): who owns the
process, which CPython it runs, whether a debugger already traces it, and
what the kernel's ptrace policy allows.  Nothing here stops or writes to
the target.
"""

from __future__ import annotations

import os
import pwd
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from livekit.attaching.errors import AttachError

#: The file names of a CPython interpreter or its shared library:
#: ``python3.11``, ``python3.13t``, ``libpython3.12.so.1.0``, ``libpython3.14d.so``.
_CPYTHON_FILE = re.compile(r"(?:lib)?python(\d)\.(\d+)(t?)d?(?:\.so(?:\.[\d.]+)?)?\Z")

#: Yama's ptrace scopes: https://www.kernel.org/doc/html/latest/admin-guide/LSM/Yama.html
YAMA_SCOPE = Path("/proc/sys/kernel/yama/ptrace_scope")
_SCOPES = {
    0: "0 (classic): you may trace any process of your own user that is dumpable",
    1: (
        "1 (restricted): only a process's ancestors may trace it, unless it allowed a "
        "tracer with prctl(PR_SET_PTRACER); allow all of your own processes with "
        "`sudo sysctl kernel.yama.ptrace_scope=0` (until reboot), or attach as root"
    ),
    2: (
        "2 (admin-only): only a process with CAP_SYS_PTRACE may trace; attach as root "
        "(sudo), or lower it with `sudo sysctl kernel.yama.ptrace_scope=1`"
    ),
    3: "3 (no attach): no process may be traced at all until the next reboot",
}


@dataclass(frozen=True)
class Target:
    """A process that may be attached: its pid, its program and its CPython."""

    pid: int
    name: str
    #: ``(major, minor)`` of the CPython it runs.
    python: tuple[int, int]
    #: ``"t"`` for a free-threaded build, else ``""``.
    threading: str

    @property
    def version(self) -> str:
        """The version as Python prints it, ``3.11`` or ``3.13t``."""
        return f"{self.python[0]}.{self.python[1]}{self.threading}"


def this_python() -> str:
    """Return this interpreter's version as :attr:`Target.version` writes it.

    Examples
    --------
    >>> this_python() == f"{sys.version_info[0]}.{sys.version_info[1]}" + (
    ...     "t" if "t" in getattr(sys, "abiflags", "") else "")
    True
    """
    free = "t" if "t" in getattr(sys, "abiflags", "") else ""
    return f"{sys.version_info[0]}.{sys.version_info[1]}{free}"


def process(pid: object) -> psutil.Process:
    """Return the live process ``pid``, or raise ``AttachError('no-process')``.

    Examples
    --------
    >>> process(os.getpid()).pid == os.getpid()
    True
    >>> process("42")
    Traceback (most recent call last):
    TypeError: expected a process id as an int, got '42'
    """
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError(f"expected a process id as an int, got {pid!r}")
    if pid <= 0:
        raise ValueError(f"expected a positive process id, got {pid}")
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        raise AttachError("no-process", f"no process with id {pid} runs on this host") from None


def check_owner(proc: psutil.Process) -> None:
    """Refuse a process that does not run as the caller, all three uids of it.

    Root is no exception. The attached node's cookie and registry entry
    live in the caller's livekit home; another user's process would have to
    read them there, and nothing of the caller's may be handed to it.
    """
    me = os.getuid()
    try:
        uids = proc.uids()
        name = proc.name()
    except psutil.NoSuchProcess:
        raise AttachError("no-process", f"process {proc.pid} has exited") from None
    if {uids.real, uids.effective, uids.saved} == {me}:
        return
    owner = uids.effective if uids.effective != me else uids.real
    raise AttachError(
        "other-user",
        f"process {proc.pid} ({name}) runs as {_user(owner)} (uid {owner}), not as you "
        f"({_user(me)}, uid {me}): livekit attaches only to your own processes, root "
        f"included, because the attached node's cookie lives in your livekit home. "
        f"Run `livekit attach {proc.pid}` as {_user(owner)} instead, or look without "
        f"running anything there: `livekit attach --dump {proc.pid}`.",
    )


def inspect(pid: object) -> Target:
    """Return what an attach needs to know about ``pid``, refusing what it must not touch.

    Raises
    ------
    AttachError
        ``no-process``, ``other-user`` (see :func:`check_owner`), ``failed``
        for this very process, ``not-cpython``.

    Examples
    --------
    >>> inspect(os.getpid())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    livekit.attaching.errors.AttachError: ... is this process: make it a node with ...
    """
    proc = process(pid)
    if proc.pid == os.getpid():
        raise AttachError(
            "failed",
            f"process {proc.pid} is this process: make it a node with livekit.start_node()",
        )
    check_owner(proc)
    major, minor, free = _cpython_of(proc)
    return Target(proc.pid, proc.name(), (major, minor), free)


def inspect_version(proc: psutil.Process) -> str:
    """Return the CPython version ``proc`` runs (``3.11``, ``3.13t``), or raise ``not-cpython``."""
    major, minor, free = _cpython_of(proc)
    return f"{major}.{minor}{free}"


def _cpython_of(proc: psutil.Process) -> tuple[int, int, str]:
    try:
        name = proc.name()
        files = [proc.exe(), *(m.path for m in proc.memory_maps(grouped=True))]
    except psutil.NoSuchProcess:
        raise AttachError("no-process", f"process {proc.pid} has exited") from None
    except psutil.AccessDenied:
        raise AttachError(
            "ptrace",
            f"not allowed to read the memory map of process {proc.pid} (reading it needs "
            f"the same permission as tracing it): {ptrace_advice(proc.pid)}",
        ) from None
    for path in files:
        found = _CPYTHON_FILE.match(os.path.basename(path))
        if found:
            major, minor, free = found.groups()
            return int(major), int(minor), free
    raise AttachError(
        "not-cpython",
        f"process {proc.pid} ({name}) is not a CPython interpreter: neither its program "
        f"nor any library it has loaded is a python3.X or libpython3.X "
        f"(PyPy and other Pythons cannot be attached)",
    )


def check_version(target: Target) -> None:
    """Refuse a target whose CPython is not this one's: livekit's modules would not load there.

    Examples
    --------
    >>> check_version(Target(1, "python3.99", (3, 99), ""))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    livekit.attaching.errors.AttachError: process 1 runs Python 3.99 but this livekit runs on ...
    """
    if target.version == this_python():
        return
    raise AttachError(
        "version",
        f"process {target.pid} runs Python {target.version} but this livekit runs on Python "
        f"{this_python()} ({sys.executable}): its modules would not load there. Attach from an "
        f"environment of Python {target.version} with livekit installed, e.g. "
        f"`python{target.version} -m livekit attach {target.pid}`",
    )


def tracer(pid: int) -> int:
    """Return the pid of the process tracing ``pid``, 0 if none (``TracerPid``)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return 0
    found = re.search(r"^TracerPid:\s*(\d+)", status, re.MULTILINE)
    return int(found.group(1)) if found else 0


def ptrace_advice(pid: int) -> str:
    """Explain why tracing ``pid`` may be refused here, and how to allow it."""
    by = tracer(pid)
    try:
        # A process that is not dumpable has the files under /proc/PID made root's.
        undumpable = os.stat(f"/proc/{pid}/stat").st_uid != psutil.Process(pid).uids().real
    except (OSError, psutil.Error):
        undumpable = False
    if undumpable:
        return (
            f"process {pid} is not dumpable (it called prctl(PR_SET_DUMPABLE, 0), or changed "
            "its credentials as setuid programs do), so only root (CAP_SYS_PTRACE) may trace "
            "or read it"
        )
    if by:
        return (
            f"process {pid} is already traced by process {by} ({_name(by)}); a process has "
            "one tracer at a time: detach that debugger (or strace) first"
        )
    try:
        scope: int | None = int(YAMA_SCOPE.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        scope = None
    if scope is None:
        policy = (
            f"this kernel has no Yama ptrace policy ({YAMA_SCOPE} does not exist), so the "
            "classic rules apply: you may trace your own processes unless they made "
            "themselves non-dumpable (prctl(PR_SET_DUMPABLE, 0), setuid programs), and root "
            "(CAP_SYS_PTRACE) may trace any"
        )
    else:
        policy = f"kernel.yama.ptrace_scope is {_SCOPES.get(scope, str(scope))}"
    return (
        f"{policy}. In a container, ptrace also needs CAP_SYS_PTRACE and a seccomp profile "
        "that allows it (docker run --cap-add=SYS_PTRACE)"
    )


def counts(pid: int) -> tuple[int, int]:
    """Return the OS threads and open file descriptors of ``pid``."""
    proc = psutil.Process(pid)
    return proc.num_threads(), proc.num_fds()


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return "unknown"
