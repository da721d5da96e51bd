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
"""

from __future__ import annotations

import shutil
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
            cmd = [cmd[0], "-c", LAUNCH, *cmd[3:]]
        return await super().launch_kernel(cmd, **kwargs)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if not restart and self.sockets is not None:
            shutil.rmtree(self.sockets, ignore_errors=True)
            self.sockets = None
