"""Getting in on CPython 3.11-3.13: gdb calls the interpreter, then detaches at once.

gdb attaches (every thread of the target stops), lets the target run to a
safe point, calls ``PyRun_SimpleString(...)`` of one line that runs the
bootstrap file, and detaches at once.

The safe point is the entry of ``PyEval_SaveThread``, where a thread that
holds the GIL is about to let go of it for a blocking call. Calling into
the interpreter wherever gdb happened to stop a thread is not safe: in the
stress test, the ``PyGILState_Ensure()`` that pyrasite and viztracer call
first waited forever on a busy target, most likely because gdb had stopped
a thread inside the GIL's own code while it held the GIL's mutex. (memray
stops at ``malloc`` for a like reason.) At that entry the thread holds the GIL by
contract, so ``PyGILState_Ensure()``/``PyGILState_Release()`` would take
and give back nothing; they are left out, because each call from gdb
stops and resumes every thread once more, which on a loaded machine cost
tens of milliseconds apiece. A process whose threads never release the
GIL (one thread computing in pure Python, or a thread stuck in C with the
GIL held) never gets there: the attach times out, and gdb detaches
without having called anything.

Measured here: what stopped the target longest was gdb reading symbol
tables after it had attached. So gdb reads them before: ``--readnever``
skips the debug information (DWARF) that pyenv builds carry (the exported
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

from livekit.attaching._target import ptrace_advice
from livekit.attaching.errors import AttachError

#: How to get gdb, by family of distribution.
INSTALL_GDB = (
    "install gdb: `apt-get install gdb` (Debian, Ubuntu), `dnf install gdb` (Fedora), "
    "`apk add gdb` (Alpine); or attach from Python 3.14+, which needs no debugger"
)

_TIMES = re.compile(
    r"^livekit-(attaching|attached|stopped|calling|called|detached) ([\d.]+)$", re.MULTILINE
)
_PRELOADED = re.compile(r"(libpython3\.\d+t?d?\.so[.\d]*|libc\.so\.6|libc-[\d.]+\.so)\Z")

#: gdb's Python script; CODE is the quoted C string of the line to run.
_SCRIPT = """\
import time
import gdb

def now(tag):
    print("livekit-%s %r" % (tag, time.time()), flush=True)

now("attached")
gdb.execute("set unwindonsignal on")
safe = gdb.Breakpoint("PyEval_SaveThread", internal=True)
try:
    gdb.execute("continue")
except BaseException:
    pass  # interrupted by the caller's timeout: call nothing, only detach
hit = safe.hit_count > 0
safe.delete()
now("stopped")
if hit:
    now("calling")  # while a called function runs, all the target's threads run
    ran = int(gdb.parse_and_eval("(int)PyRun_SimpleString(%s)" % CODE))
    now("called")
    print("livekit-ran %d" % ran, flush=True)
else:
    print("livekit-no-safe-point", flush=True)
gdb.execute("detach")
now("detached")
"""


def gdb_path() -> str:
    """Return the gdb to use, or raise ``AttachError('no-gdb')`` saying how to install it."""
    found = shutil.which("gdb")
    if found is None:
        raise AttachError("no-gdb", f"gdb is not installed (not found on PATH): {INSTALL_GDB}")
    return found


def commands(script: Path) -> str:
    r"""Return gdb's Python script that runs the bootstrap file ``script`` in the target.

    The target's line is quoted three times: for the target's Python, for
    gdb's C parser, and as a literal of gdb's own Python.

    Examples
    --------
    >>> text = commands(Path('/h/a"b.py'))
    >>> print(text.splitlines()[0])
    CODE = '"exec(open(\'/h/a\\"b.py\').read(), {})"'
    >>> compile(text, "<gdb script>", "exec") is not None
    True
    """
    line = f"exec(open({str(script)!r}).read(), {{}})"
    quoted = '"' + line.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"CODE = {quoted!r}\n" + _SCRIPT


def inject(pid: int, script: Path, command_file: Path, *, timeout: float) -> float:
    """Run the bootstrap ``script`` in process ``pid``; return how long it was held (seconds).

    The time held is while gdb attaches, and from the safe point to the
    detach less the calls: the longest the target can have been stopped
    (its threads run while gdb waits for the safe point, and while the
    called functions run).

    Raises
    ------
    AttachError
        ``no-gdb``, ``ptrace`` (with what the kernel's policy allows),
        ``not-cpython``, ``timeout`` (no safe point: gdb called nothing and
        the target runs on as before), ``failed`` with gdb's own words.
    """
    gdb = gdb_path()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(command_file, flags, 0o600), "w", encoding="utf-8") as file:
        file.write(commands(script))
    argv = [gdb, "-batch", "-nx", "--readnever"]
    for command in ("set debuginfod enabled off", "set auto-load no", *_preload(pid)):
        argv += ["-iex", command]
    # The program is read first; then the clock starts, and gdb attaches.
    argv += [
        _program(pid),
        "-ex",
        'python import time; print("livekit-attaching %r" % time.time())',
    ]
    argv += ["-ex", f"attach {pid}", "-x", str(command_file)]
    try:
        output = _run(argv, pid, timeout)
    finally:
        command_file.unlink(missing_ok=True)
    return _outcome(pid, output, timeout)


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
            # SIGINT stops the target where it runs, while gdb waits for the safe
            # point; the script then calls nothing and detaches.
            gdb.send_signal(signal.SIGINT)
            try:
                output, _ = gdb.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                gdb.kill()
                output, _ = gdb.communicate()
    return output


def _outcome(pid: int, output: str, timeout: float) -> float:
    """Read gdb's output: the time the target was held, or why nothing ran."""
    if "ptrace: Operation not permitted" in output or "ptrace: Permission denied" in output:
        raise AttachError(
            "ptrace",
            f"the kernel did not let gdb trace process {pid} (ptrace: operation not "
            f"permitted): {ptrace_advice(pid)}",
        )
    if "Python scripting is not supported" in output:
        raise AttachError("no-gdb", f"this gdb was built without Python scripting: {INSTALL_GDB}")
    if 'Function "PyEval_SaveThread" not defined' in output or "No symbol" in output:
        raise AttachError(
            "not-cpython",
            f"gdb found no CPython C API in process {pid} (PyEval_SaveThread, "
            "PyGILState_Ensure): a stripped, statically linked interpreter cannot be attached",
        )
    times = {tag: float(t) for tag, t in _TIMES.findall(output)}
    if "livekit-no-safe-point" in output:
        raise AttachError(
            "timeout",
            f"no thread of process {pid} released the GIL within {timeout:g} s, so there was "
            "no safe point to run code at: one thread computes in pure Python, or holds the "
            "GIL inside C code. gdb called nothing and detached: the process runs on as "
            f"before. Try again later, or look without running code: "
            f"`livekit attach --dump {pid}`",
        )
    ran = re.search(r"^livekit-ran (-?\d+)$", output, re.MULTILINE)
    stamps = {"attached", "stopped", "calling", "called", "detached"}
    if ran is None or ran.group(1) != "0" or not stamps <= set(times):
        last = "\n".join(line for line in output.splitlines()[-6:] if line.strip())
        raise AttachError(
            "failed", f"gdb could not run the bootstrap in process {pid}; gdb said:\n{last}"
        )
    # Stopped while gdb attaches, and from the safe point to the detach, except
    # while the called functions ran (every thread runs then).
    begin = times.get("attaching", times["attached"])
    held = (times["attached"] - begin) + (times["calling"] - times["stopped"])
    return held + (times["detached"] - times["called"])
