"""How a book build starts the kernels that execute its pages: over IPC.

myst-nb starts each page's kernel through nbclient with jupyter_client's
defaults, which put the kernel on five TCP ports of 127.0.0.1.  Any user of
the machine can connect to those; messages are signed but not encrypted,
so another user could subscribe to a page's outputs while it builds, and
every kernel logs ``Kernel is running over TCP without encryption`` into
the build log.  ``livekit serve`` starts its kernels on Unix sockets in a
private folder instead (:mod:`livekit.kernel.session`); this provisioner
does the same for the build.  :mod:`livekit.sphinxext` selects it through
jupyter_client's ``JUPYTER_DEFAULT_PROVISIONER_NAME``; it is registered
under the entry point group ``jupyter_client.kernel_provisioners``.

Kernels forked from a warm process
----------------------------------
A kernel spends most of its start-up importing ipykernel, IPython,
jupyter_client, zmq and livekit (0.6 of its 0.7 CPU-seconds), the same for
every page.  The executor of a book build (:mod:`livekit._book_execution`)
starts one :class:`Zygote` first: a process that imports all that once and
then only forks.  Each page's kernel is a fresh child of it, in a session
of its own, with the environment, working folder and arguments that
jupyter_client would have started it with; it then runs ipykernel from the
start, as ``python -m ipykernel_launcher`` does.  So every page still gets
a new process with a fresh namespace and nothing left of any other page:
the zygote never runs a cell, and what a page changes stays in its own
copy.  Anything the zygote cannot do (no zygote, another interpreter in
the kernel spec, the zygote gone) starts the kernel as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.provisioning.local_provisioner import LocalProvisioner

#: What a book kernel runs instead of ``python -m ipykernel_launcher``: the
#: same kernel, without the debugger.  ipykernel imports debugpy for it at
#: start-up (0.1-0.15 CPU-seconds of the 0.5 a kernel takes to start), and
#: nothing debugs a kernel that executes a page at build time; with
#: ``debugpy`` unimportable ipykernel leaves its debugger off, as it does
#: where debugpy is not installed.
LAUNCH = (
    "import sys; sys.modules['debugpy'] = None; "
    "from ipykernel import kernelapp; kernelapp.launch_new_instance()"
)

#: The entry point name of :class:`IpcProvisioner`.
NAME = "livekit-ipc"
GROUP = "jupyter_client.kernel_provisioners"


def registered() -> bool:
    """Return True if jupyter_client can find :class:`IpcProvisioner` by name.

    It cannot in an environment that installed livekit before the entry
    point existed; a build there keeps jupyter_client's TCP default rather
    than fail to start any kernel.

    Examples
    --------
    >>> isinstance(registered(), bool)
    True
    """
    from importlib.metadata import entry_points

    return any(True for _ in entry_points(group=GROUP, name=NAME))


class IpcProvisioner(LocalProvisioner):
    """A local kernel whose sockets are Unix sockets in a folder of its own.

    The folder is made with mode 0700 (``tempfile.mkdtemp``), so no other
    user can reach the sockets; it is removed when the kernel is cleaned up.
    An IPython kernel starts without its debugger (:data:`LAUNCH`).

    Examples
    --------
    >>> IpcProvisioner().sockets is None
    True
    """

    sockets: Path | None = None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        km = self.parent
        if km is not None and km.transport == "tcp" and self.sockets is None:
            self.sockets = Path(tempfile.mkdtemp(prefix="livekit-book-kernel-"))
            km.transport = "ipc"
            km.ip = str(self.sockets / "kernel")
        result: dict[str, Any] = await super().pre_launch(**kwargs)
        return result

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        if cmd[1:3] == ["-m", "ipykernel_launcher"]:
            zygote = Zygote.current
            if zygote is not None and cmd[0] == sys.executable:
                cwd = str(kwargs.get("cwd") or Path.cwd())
                env = dict(kwargs.get("env") or os.environ)
                pid = await zygote.fork(cmd[3:], env, cwd)
                if pid is not None:
                    # All of Popen that a provisioner uses.
                    self.process = ForkedKernel(pid)  # type: ignore[assignment]
                    self.pid = self.pgid = pid  # the leader of a session of its own
                    self.cwd = cwd
                    return self.connection_info
            cmd = [cmd[0], "-c", LAUNCH, *cmd[3:]]
        return await super().launch_kernel(cmd, **kwargs)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if not restart and self.sockets is not None:
            shutil.rmtree(self.sockets, ignore_errors=True)
            self.sockets = None


# -- Kernels forked from a warm process -------------------------------------

#: What the zygote runs (``python -c``, as a kernel is launched, so that its
#: ``__main__`` is no module that a page's subprocesses would import again).
#: ``python -c`` puts its working folder first on ``sys.path`` (as ``""``),
#: and a kernel's is its page's folder, but the zygote's is the build's:
#: a checkout's ``livekit/`` there would be imported instead of the
#: installed one.  So the zygote imports without it, and each kernel puts
#: it back, in its page's folder, before it runs.
ZYGOTE = (
    "import sys\n"
    "if sys.path[:1] == ['']:\n    del sys.path[0]\n"
    "from livekit._book_kernels import _zygote_main\n"
    "_zygote_main(int(sys.argv[1]), sys.argv[2:])"
)


def can_fork() -> bool:
    """Return True if this process's book kernels can be forked from a :class:`Zygote`.

    That takes Linux (``os.pidfd_open``: the zygote waits for each kernel
    without a signal handler that the kernel would inherit) and this
    module's provisioner in use (:mod:`livekit.sphinxext` selects it).

    Examples
    --------
    >>> isinstance(can_fork(), bool)
    True
    """
    return (
        sys.platform == "linux"
        and hasattr(os, "pidfd_open")
        and os.environ.get("JUPYTER_DEFAULT_PROVISIONER_NAME") == NAME
    )


class ForkedKernel:
    """The part of :class:`subprocess.Popen` that a provisioner uses, for a forked kernel.

    The kernel is the zygote's child, not this process's: the zygote reaps
    it, and this object sees it gone (``poll``) once it has.

    Examples
    --------
    >>> gone = ForkedKernel(2**22 + 1)  # above any pid Linux gives out
    >>> gone.poll()
    0
    """

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = 0  # its status went to the zygote
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0.0)
            time.sleep(0.02)
        return code

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """A process that has imported a kernel's modules and forks a kernel on request.

    Start it with :meth:`start` in the process that starts the kernels (the
    book's executor); while it is :attr:`current`, :class:`IpcProvisioner`
    forks kernels from it.  :meth:`stop` ends it; it also ends by itself
    when the process that started it is gone (EOF on its socket).

    Examples
    --------
    >>> Zygote.current is None
    True
    """

    #: The zygote the provisioners of this process fork from, if any.
    current: Zygote | None = None

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.process = process
        self._sock = sock
        self._lock = asyncio.Lock()

    @classmethod
    def start(cls, preload: list[str] | tuple[str, ...] = ()) -> Zygote:
        """Start a zygote; it also imports the modules named in ``preload``."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with theirs:
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-c", ZYGOTE, str(theirs.fileno()), *preload],
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
            )
        zygote = cls(process, ours)
        cls.current = zygote
        return zygote

    async def fork(self, argv: list[str], env: dict[str, str], cwd: str) -> int | None:
        """Return the pid of a new kernel run with ``argv``, or None if the zygote cannot."""
        request = json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode() + b"\n"
        loop = asyncio.get_running_loop()
        async with self._lock:
            try:
                self._sock.setblocking(False)
                await loop.sock_sendall(self._sock, request)
                reply = b""
                while not reply.endswith(b"\n"):
                    data = await loop.sock_recv(self._sock, 4096)
                    if not data:
                        return None
                    reply += data
                pid = json.loads(reply).get("pid")
            except (OSError, ValueError, AttributeError):
                return None
        return pid if isinstance(pid, int) else None

    def stop(self) -> None:
        """End the zygote (its kernels are each in a session of their own)."""
        if Zygote.current is self:
            Zygote.current = None
        self._sock.close()  # EOF: the zygote ends
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _zygote_main(descriptor: int, preload: list[str]) -> None:
    """Import what a kernel imports, then fork a kernel for each request on ``descriptor``.

    ``preload`` names modules that the pages import, to import once here
    too (one that fails to import is left to the pages).  A request is one
    JSON line (``argv``, ``env``, ``cwd``); the reply is one JSON line with
    the kernel's ``pid`` (or an ``error``).  The zygote waits for each of
    its kernels, so their CPU time is counted as its children's, and ends
    at EOF.  A process with a thread cannot fork safely: if an import
    started one, every reply is an error, and the kernels start as new
    Pythons.
    """
    # As LAUNCH does: no debugger in a book's kernel.
    sys.modules["debugpy"] = None  # type: ignore[assignment]
    # As livekit._book_startup does (it runs again in each kernel).
    if "rfc3987_syntax" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]
    from ipykernel import ipkernel, kernelapp  # noqa: F401 (imported to be inherited)

    import livekit  # noqa: F401 (the startup file imports it in every kernel)

    for name in filter(None, preload):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    import threading

    threads = threading.active_count()
    sock = socket.socket(fileno=descriptor)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    pending = b""
    while True:
        for key, _ in selector.select():
            if key.fileobj is not sock:
                pid, pidfd = key.data
                selector.unregister(pidfd)
                os.close(pidfd)
                os.waitpid(pid, 0)
                continue
            data = sock.recv(1 << 20)
            if not data:
                _end_kernels(selector)
                return
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if threads > 1:
                    refusal = {"error": f"{threads} threads: not forking"}
                    sock.sendall(json.dumps(refusal).encode() + b"\n")
                    continue
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    sock.close()
                    _run_kernel(json.loads(line))  # never returns
                try:
                    pidfd = os.pidfd_open(pid)
                except OSError as error:
                    sock.sendall(json.dumps({"error": str(error)}).encode() + b"\n")
                    os.waitpid(pid, 0)
                    continue
                selector.register(pidfd, selectors.EVENT_READ, (pid, pidfd))
                sock.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def _end_kernels(selector: selectors.BaseSelector) -> None:
    # The executor is gone: its kernels go too (each leads its own group).
    kernels = [key.data for key in selector.get_map().values() if key.data is not None]
    for pid, _ in kernels:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)
    for pid, pidfd in kernels:
        os.waitpid(pid, 0)
        os.close(pidfd)


def _run_kernel(request: dict[str, Any]) -> None:
    """Become the kernel ``request`` asks for (in the forked child), and exit with it."""
    try:
        os.setsid()
        os.environ.clear()
        os.environ.update(request["env"])
        # The kernel ends itself if its parent, this zygote, goes.  ipykernel
        # read JPY_PARENT_PID when the zygote imported it: it is given again.
        parent = os.getppid()
        os.environ["JPY_PARENT_PID"] = str(parent)
        os.chdir(request["cwd"])
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        sys.argv = ["-c", *request["argv"]]
        if not sys.flags.safe_path:
            sys.path.insert(0, "")  # as ``python -c`` has it (see ZYGOTE)
        from ipykernel import kernelapp

        kernelapp.launch_new_instance([*sys.argv[1:], f"--IPKernelApp.parent_handle={parent}"])
    except SystemExit:
        raise
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.exit(1)
    sys.exit(0)
