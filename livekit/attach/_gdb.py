"""Getting in on CPython 3.11-3.13: gdb calls the interpreter, then detaches at once.

gdb attaches (every thread of the target stops), calls
``PyGILState_Ensure()``, ``PyRun_SimpleString(...)`` of one line that runs
the bootstrap file, and ``PyGILState_Release()``, then detaches; what pyrasite,
memray's and viztracer's attach do. While gdb runs a called function, all
of the target's threads run too (gdb's default), so the thread that holds
the GIL can hand it over.

Measured here: what stops the target longest is gdb reading symbol
tables after it attached. So gdb reads them before: ``--readnever`` skips
the debug information (DWARF) that pyenv builds carry (the exported
symbols are all the calls need; reading the DWARF stopped the target for
0.8 s instead of 0.1 s), and the program, libpython and libc are loaded at
the addresses ``/proc/PID/maps`` gives, with gdb's own reading of shared
libraries off.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from livekit.attach._target import ptrace_advice
from livekit.attach.errors import AttachError

#: How to get gdb, by family of distribution.
INSTALL_GDB = (
    "install gdb: `apt-get install gdb` (Debian, Ubuntu), `dnf install gdb` (Fedora), "
    "`apk add gdb` (Alpine); or attach from Python 3.14+, which needs no debugger"
)

_PRELOADED = re.compile(r"(libpython3\.\d+t?d?\.so[.\d]*|libc\.so\.6|libc-[\d.]+\.so)\Z")

_COMMANDS = """\
set unwindonsignal on
python import time; print("livekit-attached", time.time())
call (int)PyGILState_Ensure()
call (int)PyRun_SimpleString({code})
call (void)PyGILState_Release((int)$1)
detach
python import time; print("livekit-detached", time.time())
"""


def gdb_path() -> str:
    """Return the gdb to use, or raise ``AttachError('no-gdb')`` saying how to install it."""
    found = shutil.which("gdb")
    if found is None:
        raise AttachError("no-gdb", f"gdb is not installed (not found on PATH): {INSTALL_GDB}")
    return found


def commands(script: Path) -> str:
    """Return gdb's commands that run the bootstrap file ``script`` in the target.

    The Python line is quoted twice, once for Python and once for gdb's C
    parser.

    Examples
    --------
    >>> print(commands(Path('/h/a"b.py')).splitlines()[3])
    call (int)PyRun_SimpleString("exec(open('/h/a\\"b.py').read(), {})")
    """
    line = f"exec(open({str(script)!r}).read(), {{}})"
    quoted = '"' + line.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _COMMANDS.format(code=quoted)


def inject(pid: int, script: Path, command_file: Path, *, timeout: float) -> float:
    """Run the bootstrap ``script`` in process ``pid``; return how long it was held (seconds).

    The time is from the moment gdb had attached to the moment it had
    detached: the longest the target can have been stopped.

    Raises
    ------
    AttachError
        ``no-gdb``, ``ptrace`` (with what the kernel's policy allows),
        ``not-cpython``, ``timeout`` (gdb undid its call: the target runs on
        as before), ``failed`` with gdb's own words.
    """
    gdb = gdb_path()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(command_file, flags, 0o600), "w", encoding="utf-8") as file:
        file.write(commands(script))
    argv = [gdb, "-batch", "-nx", "--readnever"]
    for command in ("set debuginfod enabled off", "set auto-load no", *_preload(pid)):
        argv += ["-iex", command]
    argv += ["-iex", 'python import time; print("livekit-attaching", time.time())']
    argv += [_program(pid), "-p", str(pid), "-x", str(command_file)]
    try:
        output = _run(argv, pid, timeout)
    finally:
        command_file.unlink(missing_ok=True)
    return _outcome(pid, output)


def _preload(pid: int) -> list[str]:
    """gdb commands that read libpython's and libc's symbols before attaching.

    libc is needed too: gdb copies a string argument into the target with
    the target's ``malloc``.
    """
    bases: dict[str, int] = {}
    try:
        maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and int(fields[2], 16) == 0:
            path = fields[5].strip()
            if _PRELOADED.match(os.path.basename(path)) and " " not in path:
                bases[path] = int(fields[0].partition("-")[0], 16)
    if not any(os.path.basename(path).startswith("libc") for path in bases):
        return []  # an unusual libc: let gdb find everything itself
    commands = ["set auto-solib-add off"]
    commands += [f"add-symbol-file {path} -o {base:#x}" for path, base in bases.items()]
    return commands


def _program(pid: int) -> str:
    """The target's program file, so that gdb reads it before attaching."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return f"/proc/{pid}/exe"


def _run(argv: list[str], pid: int, timeout: float) -> str:
    with subprocess.Popen(  # noqa: S603 -- gdb found on PATH, arguments built here
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,  # a Ctrl-C in the caller's terminal must not reach gdb mid-call
    ) as gdb:
        try:
            output, _ = gdb.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGINT interrupts the called function; with unwindonsignal gdb
            # restores the thread as it was before the call, then detaches.
            gdb.send_signal(signal.SIGINT)
            try:
                gdb.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                gdb.kill()
                gdb.communicate()
            raise AttachError(
                "timeout",
                f"gdb could not run code in process {pid} within {timeout:g} s: most likely "
                "one of its threads holds the GIL inside C code and never lets go "
                "(PyGILState_Ensure waited for it). gdb undid its call and detached: the "
                "process runs on as before. Try again when it is less busy, or look without "
                f"running code there: `livekit attach --dump {pid}`",
            ) from None
    return output


def _outcome(pid: int, output: str) -> float:
    if "ptrace: Operation not permitted" in output or "ptrace: Permission denied" in output:
        raise AttachError(
            "ptrace",
            f"the kernel did not let gdb trace process {pid} (ptrace: operation not "
            f"permitted): {ptrace_advice(pid)}",
        )
    if "No symbol" in output and "PyGILState_Ensure" in output:
        raise AttachError(
            "not-cpython",
            f"gdb found no PyGILState_Ensure in process {pid}: it does not export CPython's "
            "C API (a statically linked, stripped interpreter cannot be attached)",
        )
    if "Python scripting is not supported" in output:
        raise AttachError("no-gdb", f"this gdb was built without Python scripting: {INSTALL_GDB}")
    ran = re.search(r"^\$2 = (-?\d+)$", output, re.MULTILINE)
    times = dict(re.findall(r"^livekit-(attached|detached) ([\d.]+)$", output, re.MULTILINE))
    if ran is None or ran.group(1) != "0" or len(times) != 2:
        last = "\n".join(line for line in output.splitlines()[-6:] if line.strip())
        raise AttachError(
            "failed", f"gdb could not run the bootstrap in process {pid}; gdb said:\n{last}"
        )
    start = re.search(r"^livekit-attaching ([\d.]+)$", output, re.MULTILINE)
    begin = float(start.group(1)) if start else float(times["attached"])
    return float(times["detached"]) - begin
